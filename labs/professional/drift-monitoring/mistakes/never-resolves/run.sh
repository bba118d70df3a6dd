#!/usr/bin/env bash
# The reference solution with a 15-minute look-back in the rule.
set -euo pipefail
mkdir -p work
cp -r "$LAB_DIR/files/." work/
cp "$LAB_DIR/solution/model-server.yaml" "$LAB_DIR/solution/rules.yaml" work/
cd work
sed -i 's/expr: model_drift_score > 1.5/expr: max_over_time(model_drift_score[15m]) > 1.5/' rules.yaml
grep -q 'max_over_time' rules.yaml
python train.py
kubectl create configmap wine-model --from-file=model.joblib --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f model-server.yaml
kubectl rollout status deployment/wine-model --timeout=300s
kubectl create configmap alert-rules --from-file=rules.yaml --dry-run=client -o yaml | kubectl apply -f -
# Graded with its rule loaded and the server scraped, as the solution is: the rule itself is the mistake.
python "$LAB_DIR/solution/wait_for_prometheus.py" "$PROMETHEUS_URL" WineFeatureDrift --scraped
