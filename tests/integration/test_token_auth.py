"""Optional bearer-token auth: UNAUTHENTICATED without a valid token, health exempt, tokens rotate
through the token file, and it works over mutual TLS with real certificates."""

from __future__ import annotations

import asyncio
import os
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from guard.errors import ConfigError
from guard.server.auth import TokenStore
from guard.settings import load_settings
from guard.v1 import guard_pb2 as pb
from guard.v1 import guard_pb2_grpc
from tests.integration.test_tls import secure_channel
from tests.support.certs import make_pki
from tests.support.metrics import scrape, value
from tests.support.server import running_server


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("tok-a\n\n")
    return path


async def test_calls_need_a_valid_token_and_health_needs_none(tiny_model_dir, token_file):
    async with running_server(tiny_model_dir, auth_token_file=token_file, metrics_port=0) as srv:
        request = pb.CheckRequest(text="hello")
        assert await code_of(srv.stub.Check(request, metadata=bearer("tok-a"))) == grpc.StatusCode.OK
        for metadata in (
            (),
            bearer("tok-b"),
            bearer("tok-a-longer"),
            (("authorization", "Basic tok-a"),),
            bearer(""),
        ):
            assert (
                await code_of(srv.stub.Check(request, metadata=metadata)) == grpc.StatusCode.UNAUTHENTICATED
            )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await srv.stub.GetInfo(pb.GetInfoRequest())
        assert err.value.details().startswith("missing or invalid bearer token")
        stream = srv.stub.CheckStream(iter([pb.StreamRequest(open=pb.StreamOpen())]))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stream.read()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # undecodable bytes from an unauthenticated caller are refused unread
        raw = srv.channel.unary_unary("/guard.v1.GuardService/Check")
        assert await code_of(raw(b"\xff\xff")) == grpc.StatusCode.UNAUTHENTICATED
        reflection = reflection_pb2_grpc.ServerReflectionStub(srv.channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await reflection.read()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(srv.channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        text = await asyncio.to_thread(scrape, srv.server.metrics_port)
        assert value(text, "guard_rejected_total", reason="unauthenticated") == 9
        assert value(text, "guard_rpc_requests_total", method="Check", code="UNAUTHENTICATED") == 6


async def test_tokens_rotate_through_the_file_without_a_restart(tiny_model_dir, token_file):
    async with running_server(tiny_model_dir, auth_token_file=token_file) as srv:
        request = pb.CheckRequest(text="hello")
        token_file.write_text("tok-a\ntok-b\n")  # add the new token
        os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        await asyncio.sleep(1.1)
        for token in ("tok-a", "tok-b"):
            assert await code_of(srv.stub.Check(request, metadata=bearer(token))) == grpc.StatusCode.OK
        token_file.write_text("tok-b\n")  # retire the old one
        os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 2_000_000))
        await asyncio.sleep(1.1)
        assert (
            await code_of(srv.stub.Check(request, metadata=bearer("tok-a")))
            == grpc.StatusCode.UNAUTHENTICATED
        )
        assert await code_of(srv.stub.Check(request, metadata=bearer("tok-b"))) == grpc.StatusCode.OK
        token_file.write_text("")  # an emptied file is a mistake: the last tokens stay
        os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 3_000_000))
        await asyncio.sleep(1.1)
        assert await code_of(srv.stub.Check(request, metadata=bearer("tok-b"))) == grpc.StatusCode.OK


async def test_a_token_from_the_environment_over_mutual_tls(tiny_model_dir, tmp_path, monkeypatch):
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("GUARD_AUTH_TOKEN", "env-token")
    async with running_server(
        tiny_model_dir, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca
    ) as srv:
        assert srv.server.settings.auth_token.get_secret_value() == "env-token"
        assert "env-token" not in repr(srv.server.settings)
        async with secure_channel(srv.address, pki, pki.client_cert, pki.client_key) as channel:
            stub = guard_pb2_grpc.GuardServiceStub(channel)
            ok = await stub.Check(pb.CheckRequest(text="hello"), metadata=bearer("env-token"), timeout=10)
            assert ok.decision.action
            assert (
                await code_of(stub.Check(pb.CheckRequest(text="hello"), timeout=10))
                == grpc.StatusCode.UNAUTHENTICATED
            )


def test_token_settings_are_validated(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n \n")
    with pytest.raises(ConfigError, match="auth_token_file"):
        TokenStore(None, empty)
    with pytest.raises(ConfigError, match="auth_token_file"):
        load_settings(None, auth_token_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match="auth_token"):
        load_settings(None, auth_token=" ")
    store = TokenStore("one", None)
    assert store.allows(b"one") and not store.allows(b"on") and not store.allows(b"one ")


def test_a_secret_swapped_like_kubernetes_does_is_seen_even_at_equal_size_and_time(tmp_path, monkeypatch):
    """kubelet updates a mounted Secret by pointing `..data` at a new folder: the path's size and
    mtime may be unchanged, the file behind it (its inode) is not."""
    old, new = tmp_path / "v1", tmp_path / "v2"
    for folder, token in ((old, "tok-a"), (new, "tok-b")):
        folder.mkdir()
        (folder / "tokens").write_text(token + "\n")
        os.utime(folder / "tokens", ns=(1_000_000_000, 1_000_000_000))
    (tmp_path / "..data").symlink_to(old)
    (tmp_path / "tokens").symlink_to(tmp_path / "..data" / "tokens")
    store = TokenStore(None, tmp_path / "tokens")
    assert store.allows(b"tok-a")
    swap = tmp_path / "..data.new"
    swap.symlink_to(new)
    os.replace(swap, tmp_path / "..data")
    monkeypatch.setattr(store, "_checked", 0.0)  # due for a re-check
    assert store.allows(b"tok-b") and not store.allows(b"tok-a")
