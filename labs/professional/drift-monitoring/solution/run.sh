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
if [[ -n "${PROMETHEUS_URL:-}" ]]; then
  python - "$PROMETHEUS_URL" <<'PY'
import json, sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + 300
def get(path):
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return json.load(r)["data"]
while True:
    rules = [r["name"] for g in get("/api/v1/rules")["groups"] for r in g["rules"]]
    up = get("/api/v1/query?query=up%7Bapp%3D%22wine-model%22%7D")["result"]
    if "WineFeatureDrift" in rules and any(s["value"][1] == "1" for s in up):
        print("Prometheus scrapes wine-model and has WineFeatureDrift loaded")
        break
    if time.monotonic() > deadline:
        sys.exit(f"after 300 s: rules {rules}, up {up}")
    time.sleep(5)
PY
fi
