#!/usr/bin/env bash
# No model volume: the container starts, finds no model, exits; Kubernetes restarts it, again and again.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
deployment = yaml.safe_load(open("deployment.yaml"))
spec = deployment["spec"]["template"]["spec"]
del spec["volumes"]
del spec["containers"][0]["volumeMounts"]
yaml.safe_dump(deployment, open("deployment.yaml", "w"), sort_keys=False)
PY
kubectl apply -f deployment.yaml -f service.yaml
# What a learner sees: the pod restarting (on a simulated node it would pretend to run instead). Each
# start counts as ready for the second the server needs to find no model (no readiness probe), so wait
# for the back-off between restarts, when the pod and the Deployment both say not ready.
for _ in $(seq 90); do
  restarts=$(kubectl get pods -l app=iris -o jsonpath='{.items[*].status.containerStatuses[0].restartCount}')
  pod_ready=$(kubectl get pods -l app=iris -o jsonpath='{.items[*].status.containerStatuses[0].ready}')
  ready=$(kubectl get deployment iris -o jsonpath='{.status.readyReplicas}')
  [ "${restarts:-0}" != 0 ] && [ "$pod_ready" = false ] && [ "${ready:-0}" = 0 ] && break
  sleep 1
done
kubectl get pods -l app=iris
kubectl logs deployment/iris --tail=3 || true
