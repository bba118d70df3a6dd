"""A real S3-compatible server for tests: versitygw over a posix directory, as the learner stacks run it.

The binary is the pinned one that ``labctl toolchain build`` builds from Go modules
(``labctl.localcluster.toolchain.paths``). Buckets are top-level directories of the gateway root
(versitygw's posix layout), made before the server starts, as the stack's init container does.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from labctl.localcluster.toolchain import paths
from tests.helpers.processes import free_port, server_process

ACCESS_KEY = "grader-test-access"
SECRET_KEY = "grader-test-secret-0123456789"  # a throwaway key for a loopback server


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    root: Path  # the gateway's root directory: one subdirectory per bucket
    access_key: str = ACCESS_KEY
    secret_key: str = field(default=SECRET_KEY, repr=False)

    def env(self) -> dict[str, str]:
        """The variables a learner's shell (and DVC) would have for this store."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


def versitygw_binary() -> Path:
    binary = paths.binary("versitygw")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(
            f"versitygw is not built ({binary}): run `labctl toolchain build` (or `make toolchain`)"
        )
    return binary


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def versitygw(root: Path, buckets: tuple[str, ...] = ("dvc",)) -> Iterator[S3Server]:
    """Run versitygw on a free loopback port until the block ends (its process group is ended)."""
    for bucket in buckets:
        (root / bucket).mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root.parent),
        # From the environment, as the stack does: the key pair is not in the process arguments.
        "ROOT_ACCESS_KEY_ID": ACCESS_KEY,
        "ROOT_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    cmd = [str(versitygw_binary()), "--port", f"127.0.0.1:{port}", "--health", "/health", "--quiet"]
    with (
        (root.parent / "versitygw.log").open("wb") as log,
        server_process(
            [*cmd, "posix", str(root)],
            ready=lambda: _healthy(f"http://127.0.0.1:{port}/health"),
            timeout=60,
            env=env,
            log=log,
        ),
    ):
        yield S3Server(f"http://127.0.0.1:{port}", root)
