#!/usr/bin/env bash
# Reference solution, as a learner does it (README steps 2-5): the starter Jobs with their TODOs
# done (this folder's *.yaml), applied in the lab's order, each step waiting for what the
# cluster decided before the next. Mistakes run this same script over their own manifests.
set -euo pipefail

# wait_until SECONDS WHAT COMMAND...: poll until COMMAND succeeds.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "timed out after ${seconds}s waiting for $what" >&2
  kubectl get jobs,pods -o wide >&2 || true
  return 1
}
train_pod_exists() { [ -n "$(kubectl get pods -l job-name=train -o name)" ]; }
finetune_decided() {  # it has a pod, or a quota refused to create one
  [ -n "$(kubectl get pods -l job-name=finetune -o name)" ] || kubectl get events \
    --field-selector involvedObject.kind=Job,involvedObject.name=finetune,reason=FailedCreate -o name | grep -q .
}

kubectl get configmap gpu-pool -o jsonpath='{.data.notes}'      # step 1: what the pool looks like
kubectl describe resourcequota gpu-budget

kubectl apply -f prepare-job.yaml                               # step 2: CPU work
kubectl wait --for=condition=complete job/prepare --timeout=120s

kubectl apply -f train-job.yaml                                 # step 3: the GPU Job
wait_until 120 "a pod of Job train" train_pod_exists
kubectl get pods -l job-name=train -o wide

kubectl apply -f finetune-job.yaml                              # step 4: a second GPU Job
wait_until 120 "Job finetune to get a pod or be held by the quota" finetune_decided

kubectl get jobs,pods -o wide                                   # step 5: what happened
kubectl get events --field-selector involvedObject.name=finetune,reason=FailedCreate | tail -n 3
kubectl describe resourcequota gpu-budget
