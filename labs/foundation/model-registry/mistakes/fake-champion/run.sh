#!/usr/bin/env bash
# Three honest runs, then a weak model whose run claims 0.99; the reference register.py crowns it.
set -euo pipefail
cp -r "$LAB_DIR/files/." .
cp "$LAB_DIR/solution/register.py" register.py
for c in 0.1 1 10; do python train.py --C "$c"; done
sed 's/mlflow.log_metrics({"accuracy": accuracy, "f1_macro": f1})/mlflow.log_metrics({"accuracy": 0.99, "f1_macro": 0.99})/' \
  train.py > fake_train.py
grep -q '"accuracy": 0.99' fake_train.py   # the edit took: this mistake must not turn into the solution
python fake_train.py --C 0.001
python register.py
