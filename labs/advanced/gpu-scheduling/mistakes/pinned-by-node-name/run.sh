#!/usr/bin/env bash
# Skip the scheduler: find a GPU node with a probe pod, then write its name into train's template.
# The labctl-no-node-name admission policy must refuse that Job; the rest of the lab goes on without it.
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
if kubectl apply -f train-job.yaml 2>refused.txt; then
  echo "Job train pinned to $node was admitted: the labctl-no-node-name policy is not in force" >&2
  exit 1
fi
grep -q "spec.nodeName is not allowed" refused.txt || { cat refused.txt >&2; exit 1; }
cat refused.txt

# The solution's other steps (run.sh there would stop at train): CPU work, then the second GPU Job.
kubectl apply -f prepare-job.yaml
kubectl wait --for=condition=complete job/prepare --timeout=120s
kubectl apply -f finetune-job.yaml
for _ in $(seq 120); do
  [ -n "$(kubectl get pods -l job-name=finetune -o name)" ] && exit 0
  sleep 1
done
echo "Job finetune never got a pod" >&2
kubectl get jobs,pods -o wide >&2 || true
exit 1
