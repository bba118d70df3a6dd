#!/usr/bin/env bash
# The server container without its readinessProbe.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
deployment = yaml.safe_load(open("deployment.yaml"))
del deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
yaml.safe_dump(deployment, open("deployment.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
# Without the probe, ready means only "the container started": wait for each server's own word
# that it listens, as a learner reading `kubectl logs` would, so only the probe check is at stake.
for pod in $(kubectl get pods -l app=wine -o name); do
  for _ in $(seq 60); do
    kubectl logs "$pod" -c server 2>/dev/null | grep -q serving && break
    sleep 1
  done
done
