"""The committed guard/v1 stubs are exactly what grpcio-tools generates from the .proto."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUBS = ("guard_pb2.py", "guard_pb2.pyi", "guard_pb2_grpc.py")


def test_committed_stubs_match_the_proto(tmp_path):
    protoc = pytest.importorskip("grpc_tools.protoc")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / "proto/guard/v1/guard.proto"),
        ]
    )
    assert rc == 0
    for name in STUBS:
        generated = (tmp_path / "guard/v1" / name).read_text()
        committed = (ROOT / "guard/v1" / name).read_text()
        assert committed == generated, f"guard/v1/{name} is stale: run scripts/gen_proto.sh and commit"
