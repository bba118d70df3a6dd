#!/usr/bin/env bash
# `make demo`: the simulated cluster and the GPU-scheduling scenario, step by step.
# Idempotent: run it again and it starts from the same state.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }

step "Cluster: labctl sim up (real etcd, kube-apiserver, scheduler, controller-manager; kwok nodes)"
KUBECONFIG=$(labctl sim up)
export KUBECONFIG
kubectl=$(labctl toolchain which kubectl)
echo "kubeconfig: $KUBECONFIG"
"$kubectl" version 2>/dev/null | sed 's/^/  /'

step "Nodes and their GPUs"
labctl sim nodes

step "A team namespace (Pod Security: restricted) with a GPU quota of 4"
"$kubectl" delete namespace demo-gpu --ignore-not-found --wait=true >/dev/null
"$kubectl" apply -f hack/demo/gpu-scheduling.yaml
"$kubectl" wait --for=jsonpath='{.status.hard.requests\.nvidia\.com/gpu}'=4 -n demo-gpu resourcequota/gpu-budget --timeout=30s >/dev/null

step "Workloads: train-resnet (3 GPUs), train-bert (2 GPUs), a GPU pod without toleration, a CPU service"
"$kubectl" apply -f hack/demo/workloads.yaml
"$kubectl" wait --for=condition=Ready -n demo-gpu pod -l app=train-resnet --timeout=60s >/dev/null
"$kubectl" rollout status -n demo-gpu deployment/feature-api --timeout=60s >/dev/null
"$kubectl" wait --for=jsonpath='{.status.conditions[?(@.reason=="Unschedulable")].status}'=False \
  -n demo-gpu pod/forgot-toleration --timeout=30s >/dev/null
sleep 1  # let the Job controller record its quota rejection

step "Where kube-scheduler put each pod"
"$kubectl" get pods -n demo-gpu -o custom-columns='POD:.metadata.name,PHASE:.status.phase,NODE:.spec.nodeName,GPUS:.spec.containers[0].resources.limits.nvidia\.com/gpu'

step "Why: scheduler and quota decisions (events)"
"$kubectl" get events -n demo-gpu --field-selector reason=FailedScheduling -o custom-columns='OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message'
"$kubectl" get events -n demo-gpu --field-selector reason=FailedCreate -o custom-columns='OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message' | cut -c1-200

step "GPU quota in the namespace"
"$kubectl" get resourcequota gpu-budget -n demo-gpu -o custom-columns='QUOTA:.metadata.name,USED:.status.used.requests\.nvidia\.com/gpu,HARD:.status.hard.requests\.nvidia\.com/gpu'

step "Nodes after scheduling"
labctl sim nodes

cat <<MSG

What happened: train-resnet (3 GPUs, tolerates the GPU taint) was bound to a GPU node and
holds its GPUs; train-bert (2 more) would exceed the namespace quota of 4, so its pod is
refused at admission and the Job waits; forgot-toleration asks for a GPU without tolerating
nvidia.com/gpu=present:NoSchedule and stays Pending; feature-api runs on CPU nodes only.

Explore:  export KUBECONFIG=$KUBECONFIG;  $kubectl get pods -A -o wide
Tear down: labctl sim down
MSG
