#!/usr/bin/env python3
"""Write docs/catalog.md: the catalog table, rendered from the lab files under labs/.

    .venv/bin/python hack/gen-lab-docs.py           # (re)write it: after adding or changing a lab
    .venv/bin/python hack/gen-lab-docs.py --check   # exit 1 if it is out of date

tests/unit/test_lab_generated.py fails when docs/catalog.md drifts from the labs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labctl.catalog.docs import catalog_labs, render

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "catalog.md"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is out of date")
    args = parser.parse_args(argv)
    text = render(catalog_labs(REPO / "labs"))
    current = TARGET.read_text() if TARGET.exists() else None
    if args.check:
        if current != text:
            print("docs/catalog.md is out of date: run hack/gen-lab-docs.py", file=sys.stderr)
        return 0 if current == text else 1
    if current == text:
        print("unchanged")
    else:
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        TARGET.write_text(text)
        print("wrote docs/catalog.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
