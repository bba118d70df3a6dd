#!/usr/bin/env bash
# Skip the scheduler: find a GPU node with a probe pod, then write its name into train's template.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
job = yaml.safe_load(open("train-job.yaml"))
spec = job["spec"]["template"]["spec"]
probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-probe"},
         "spec": {k: v for k, v in spec.items() if k != "restartPolicy"}}
probe["spec"]["containers"] = [dict(spec["containers"][0], name="probe", command=["true"],
                                    resources={"limits": {"cpu": "100m", "memory": "64Mi"}})]
yaml.safe_dump(probe, open("probe.yaml", "w"), sort_keys=False)
PY
kubectl apply -f probe.yaml
node=""
for _ in $(seq 60); do
  node=$(kubectl get pod gpu-probe -o jsonpath='{.spec.nodeName}')
  [ -n "$node" ] && break
  sleep 1
done
kubectl delete pod gpu-probe --wait=false
[ -n "$node" ] || { echo "the probe pod was never scheduled" >&2; exit 1; }
NODE=$node python - <<'PY'
import os, yaml
job = yaml.safe_load(open("train-job.yaml"))
job["spec"]["template"]["spec"]["nodeName"] = os.environ["NODE"]
yaml.safe_dump(job, open("train-job.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
