#!/usr/bin/env bash
# The reference train.py, run twice instead of three or more times.
set -euo pipefail
cp -r "$LAB_DIR/files/." .
cp "$LAB_DIR/solution/train.py" train.py
for c in 0.1 1; do python train.py --C "$c"; done
