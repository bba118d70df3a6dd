#!/usr/bin/env bash
# The reference train.py without its set_experiment line (TODO(mlflow) 2 half done).
set -euo pipefail
cp -r "$LAB_DIR/files/." .
grep -v 'set_experiment' "$LAB_DIR/solution/train.py" > train.py
for c in 0.01 0.1 1 10; do python train.py --C "$c"; done
