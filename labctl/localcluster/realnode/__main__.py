"""``python -m labctl.localcluster.realnode build``: build what a real node needs (no apt, no cluster).

Builds kubelet and kube-proxy (toolchain group ``kubernetes-node``), CoreDNS (group
``coredns``) and the pause image archive. ``make e2e`` runs it; ``labctl sim up --real-node`` names it
when something is missing.
"""

from __future__ import annotations

import sys

from labctl.core.errors import LabctlError
from labctl.localcluster.images.pause import pause_archive
from labctl.localcluster.toolchain import paths
from labctl.localcluster.toolchain.build import BuildError, build


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "build":
        print("usage: python -m labctl.localcluster.realnode build", file=sys.stderr)
        return 2
    try:
        build(groups=paths.NODE_GROUPS)
        print(f"pause image: {pause_archive()}")
    except (BuildError, LabctlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
