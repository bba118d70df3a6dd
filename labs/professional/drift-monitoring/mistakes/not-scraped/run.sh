#!/usr/bin/env bash
# The reference solution with the starter model-server.yaml (TODO(metrics) left undone).
set -euo pipefail
mkdir -p work
cp -r "$LAB_DIR/files/." work/
cp "$LAB_DIR/solution/model-server.yaml" "$LAB_DIR/solution/rules.yaml" work/
cd work
cp "$LAB_DIR/files/model-server.yaml" model-server.yaml
python train.py
kubectl create configmap wine-model --from-file=model.joblib --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f model-server.yaml
kubectl rollout status deployment/wine-model --timeout=300s
kubectl create configmap alert-rules --from-file=rules.yaml --dry-run=client -o yaml | kubectl apply -f -
# Its rule loaded, as the solution is; the server is never scraped, so only the rule is waited for.
python "$LAB_DIR/solution/wait_for_prometheus.py" "$PROMETHEUS_URL" WineFeatureDrift
