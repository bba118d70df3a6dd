#!/usr/bin/env bash
# Reference solution, as a learner does it (README steps 1-3), self-contained for a fresh
# learner: train and register the champion in their own MLflow, then deploy the starter
# manifests with their TODOs done (this folder's *.yaml) and wait for the rollout.
# Mistakes run this same script over their own manifests; arguments go to train.py.
set -euo pipefail
: "${MLFLOW_TRACKING_URI:?run labctl lab connect & and eval \"\$(labctl lab env)\" first}"

mkdir -p work                                                   # step 1: the champion
cp "$LAB_DIR"/files/train.py "$LAB_DIR"/files/wine-train.csv work/
(cd work && python train.py "$@")

kubectl apply -f deployment.yaml -f service.yaml                # step 2 and 3: serve it
kubectl rollout status deployment/wine --timeout=300s
kubectl get pods -l app=wine -o wide
kubectl describe service wine | grep -E '^(Selector|Endpoints)'
