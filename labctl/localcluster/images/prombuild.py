"""Prometheus for the prometheus image, built from its Go module (the upstream default's version).

Debian's prometheus package (2.42) cannot be used: Debian builds it without Kubernetes service
discovery (``field kubernetes_sd_configs not found in type config.ScrapeConfig``), and the
learner's Prometheus finds its scrape targets with ``kubernetes_sd_configs``. Upstream 3.5 has no
build tags to leave service discovery plugins out, so the build copies the module and narrows
``plugins/plugins.go`` to the Kubernetes plugin (file and HTTP discovery are always in): the AWS,
Azure, GCE... SDKs are neither compiled nor linked. The web UI's assets are not in the Go module:
the API, ``/-/ready``, ``/-/reload`` and ``/metrics`` work, the UI pages do not.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from labctl.core.errors import LabctlError
from labctl.localcluster.toolchain.build import go_env
from labctl.localcluster.toolchain.paths import cache_root

VERSION = "3.5.0"  # quay.io/prometheus/prometheus:v3.5.0, StackImages' default
MODULE = "github.com/prometheus/prometheus"
MODULE_VERSION = "v0.305.0"  # Prometheus 3.x tags its Go module v0.3xx.y
PLUGINS = """\
// Narrowed by labctl: Kubernetes service discovery only (file and http are in minimum.go).
package plugins

import (
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // Register kubernetes plugin.
)
"""
RECIPE = "1"


def binary_path() -> Path:
    return cache_root() / "images" / "bin" / f"prometheus-{VERSION}-k8s-{RECIPE}"


def build() -> Path:
    """The prometheus binary (cached; the first build compiles client-go: minutes)."""
    out = binary_path()
    if os.access(out, os.X_OK):
        return out
    if shutil.which("go") is None:
        raise LabctlError("building the prometheus image needs Go: `go` is not on PATH")
    env = {**go_env(), "GOFLAGS": "-mod=mod -buildvcs=false"}
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@{MODULE_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    source = Path(env["GOMODCACHE"]) / f"{MODULE}@{MODULE_VERSION}"
    if proc.returncode != 0 or not source.is_dir():
        raise LabctlError(f"go mod download {MODULE}@{MODULE_VERSION} failed:\n{proc.stdout + proc.stderr}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prometheus-", dir=out.parent) as scratch:
        src = Path(scratch) / "src"
        shutil.copytree(
            source, src, ignore=shutil.ignore_patterns("*_test.go", "testdata", "web/ui/mantine-ui")
        )
        for path in [src, *src.rglob("*")]:  # the module cache is read-only
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        (src / "plugins" / "plugins.go").write_text(PLUGINS)
        version_pkg = "github.com/prometheus/common/version"
        ldflags = f"-s -w -X {version_pkg}.Version={VERSION} -X {version_pkg}.Branch=labctl"
        proc = subprocess.run(
            [
                "nice",
                "-n",
                "10",
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                ldflags,
                "-o",
                str(src / "prometheus"),
                "./cmd/prometheus",
            ],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LabctlError(f"go build of prometheus failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        os.replace(src / "prometheus", out)
    return out
