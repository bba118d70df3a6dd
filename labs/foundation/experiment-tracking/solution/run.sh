#!/usr/bin/env bash
# Reference solution, as a learner does it: the starter files, the four TODO(mlflow) places filled
# in (this folder's train.py), then a sweep of C: four runs, each with params, metrics and a model.
set -euo pipefail
: "${MLFLOW_TRACKING_URI:?run eval \"\$(labctl lab env)\" first}"

mkdir -p work
cp -r "$LAB_DIR/files/." work/     # what `labctl lab files foundation/experiment-tracking work` gives
cp train.py work/train.py          # the starter with its TODO(mlflow) places done
cd work
for c in 0.01 0.1 1 10; do
  python train.py --C "$c" --max-iter 200
done
