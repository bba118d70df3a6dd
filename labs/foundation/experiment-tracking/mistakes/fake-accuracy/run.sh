#!/usr/bin/env bash
# Weak models that claim 0.99: the reference train.py with its measured metrics replaced by a typed-in one.
set -euo pipefail
cp -r "$LAB_DIR/files/." .
sed 's/mlflow.log_metrics({"accuracy": accuracy, "f1_macro": f1})/mlflow.log_metrics({"accuracy": 0.99, "f1_macro": 0.99})/' \
  "$LAB_DIR/solution/train.py" > train.py
grep -q '"accuracy": 0.99' train.py   # the edit took: this mistake must not turn into the solution
for c in 0.0002 0.0005 0.001 0.001; do python train.py --C "$c"; done
