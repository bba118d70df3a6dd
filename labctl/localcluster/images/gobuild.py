"""Build small static Go programs (stdlib only) for images, cached by a hash of their source."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from labctl.core.errors import LabctlError
from labctl.localcluster.toolchain.build import go_env
from labctl.localcluster.toolchain.paths import cache_root

GO_DIRECTIVE = "1.22"


def source_hash(name: str, sources: dict[str, str]) -> str:
    digest = hashlib.sha256(name.encode())
    for filename in sorted(sources):
        digest.update(b"\0" + filename.encode() + b"\0" + sources[filename].encode())
    return digest.hexdigest()[:16]


def build_program(name: str, sources: dict[str, str]) -> Path:
    """A static binary built from ``sources`` (file name -> Go source); reused when unchanged."""
    out = cache_root() / "images" / "bin" / f"{name}-{source_hash(name, sources)}"
    if os.access(out, os.X_OK):
        return out
    if shutil.which("go") is None:
        raise LabctlError(f"building the {name} image needs Go: `go` is not on PATH (install go1.26)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=out.parent) as scratch:
        src = Path(scratch)
        (src / "go.mod").write_text(f"module labctl.local/images/{name}\n\ngo {GO_DIRECTIVE}\n")
        for filename, text in sources.items():
            (src / filename).write_text(text)
        env = {**go_env(), "GOFLAGS": "-mod=mod -buildvcs=false", "GOPROXY": "off"}
        proc = subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(src / name), "."],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LabctlError(f"go build of {name} failed:\n{(proc.stdout + proc.stderr).strip()[-2000:]}")
        os.replace(src / name, out)
    return out
