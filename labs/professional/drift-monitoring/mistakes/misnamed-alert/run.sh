#!/usr/bin/env bash
# The reference solution with the alert renamed.
set -euo pipefail
mkdir -p work
cp -r "$LAB_DIR/files/." work/
cp "$LAB_DIR/solution/model-server.yaml" "$LAB_DIR/solution/rules.yaml" work/
cd work
sed -i 's/alert: WineFeatureDrift/alert: WineDrift/' rules.yaml
grep -q 'alert: WineDrift$' rules.yaml
python train.py
kubectl create configmap wine-model --from-file=model.joblib --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f model-server.yaml
kubectl rollout status deployment/wine-model --timeout=300s
kubectl create configmap alert-rules --from-file=rules.yaml --dry-run=client -o yaml | kubectl apply -f -
# Its (misnamed) rule loaded and the server scraped, as the solution is: only the name is wrong.
python "$LAB_DIR/solution/wait_for_prometheus.py" "$PROMETHEUS_URL" WineDrift --scraped
