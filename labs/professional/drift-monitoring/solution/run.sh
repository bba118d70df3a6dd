#!/usr/bin/env bash
# Reference solution, as a learner does it: train and ship the model in a ConfigMap, deploy the
# model server with the scrape annotations added (this folder's model-server.yaml), write the drift
# alert (this folder's rules.yaml) into the alert-rules ConfigMap, then wait until Prometheus
# scrapes the server and has loaded the rule.
set -euo pipefail

mkdir -p work
cp -r "$LAB_DIR/files/." work/     # `labctl lab files professional/drift-monitoring work`
cp model-server.yaml rules.yaml work/
cd work

python train.py
kubectl create configmap wine-model --from-file=model.joblib --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f model-server.yaml
kubectl rollout status deployment/wine-model --timeout=300s
kubectl create configmap alert-rules --from-file=rules.yaml --dry-run=client -o yaml | kubectl apply -f -

# The kubelet syncs the ConfigMap into Prometheus's pod within about a minute, then the reloader
# reloads it: wait for the rule (and the scrape) as the README's step 6 shows.
python "$LAB_DIR/solution/wait_for_prometheus.py" "$PROMETHEUS_URL" WineFeatureDrift --scraped
