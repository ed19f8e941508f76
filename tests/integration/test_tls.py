"""TLS and mutual TLS on the gRPC port with real certificates, and the plaintext health port that
kubelet's gRPC probes use while TLS is on."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from guard.errors import ConfigError
from guard.settings import load_settings
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.support.certs import make_pki
from tests.support.server import running_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def secure_channel(address: str, pki, cert=None, key=None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.aio.secure_channel(address, credentials)


async def check(channel: grpc.aio.Channel):
    return await guard_pb2_grpc.GuardServiceStub(channel).Check(pb.CheckRequest(text="hello"), timeout=10)


async def test_tls_serves_encrypted_calls_and_refuses_plaintext(tiny_model_dir, pki):
    async with running_server(
        tiny_model_dir, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    ) as srv:
        async with secure_channel(srv.address, pki) as channel:
            assert (await check(channel)).decision.policy == "default"
        async with grpc.aio.insecure_channel(srv.address) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await check(plain)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_needs_a_client_certificate_from_the_configured_ca(tiny_model_dir, pki):
    async with running_server(
        tiny_model_dir, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca
    ) as srv:
        async with secure_channel(srv.address, pki, pki.client_cert, pki.client_key) as channel:
            assert (await check(channel)).decision.action
        for cert, key in ((None, None), (pki.other_client_cert, pki.other_client_key)):
            async with secure_channel(srv.address, pki, cert, key) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await check(channel)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_health_port_answers_in_plaintext_and_serves_nothing_else(tiny_model_dir, pki):
    async with running_server(
        tiny_model_dir, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, health_port=0
    ) as srv:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.server.health_port}") as channel:
            r = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await check(channel)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_tls_settings_are_checked_at_start_up(pki, tmp_path):
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file"):
        load_settings(None, tls_cert_file=pki.server_cert)
    with pytest.raises(ConfigError, match="tls_client_ca_file"):
        load_settings(None, tls_client_ca_file=pki.ca)
    with pytest.raises(ConfigError, match="tls_key_file"):
        load_settings(None, tls_cert_file=pki.server_cert, tls_key_file=tmp_path / "missing.key")
