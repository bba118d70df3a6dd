"""``python -m labctl.localcluster.toolchain [--force]``: build the toolchain without the CLI."""

from __future__ import annotations

import sys

from labctl.localcluster.toolchain.build import BuildError, build

if __name__ == "__main__":
    try:
        build(force="--force" in sys.argv[1:])
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
