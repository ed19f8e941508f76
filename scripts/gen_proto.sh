#!/usr/bin/env bash
# Regenerates the committed Python stubs from proto/ (grpcio-tools==1.85.1, see pyproject dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/guard/v1/guard.proto
