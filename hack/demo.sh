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

step "A cohort: labctl install, the controller, three learners with GPU quotas"
labctl install --local-controller
state=$(dirname "$KUBECONFIG")
setsid labctl controller run >"$state/demo-controller.log" 2>&1 &
controller=$!
trap 'kill -TERM -- -"$controller" 2>/dev/null || true' EXIT  # end its whole process group
labctl cohort create demo-cohort --roster hack/demo/roster.csv --level advanced \
  --labs advanced/gpu-training --quota-profile gpu --wait --timeout 3m
labctl cohort status demo-cohort

step "Learners at work, each with the kubeconfig labctl gave them"
work=$(mktemp -d)
for who in ada grace; do
  labctl learner kubeconfig demo-cohort "$who@uni.edu" --out "$work/$who.kubeconfig" --duration 1h
done
# Ada follows the lab: her Job tolerates the GPU taint and asks for one GPU.
"$kubectl" --kubeconfig "$work/ada.kubeconfig" apply -f hack/demo/learner-train-job.yaml
# Grace forgot the toleration; Linus has not started yet.
sed '/tolerations:/d' hack/demo/learner-train-job.yaml | "$kubectl" --kubeconfig "$work/grace.kubeconfig" apply -f -
echo "  Ada trying to list every namespace's pods (she may only see her own):"
"$kubectl" --kubeconfig "$work/ada.kubeconfig" get pods --all-namespaces 2>&1 | sed 's/^/  /' || true
sleep 3  # let the scheduler decide

step "Grading: labctl grade (every attempt is recorded; learners cannot read or change it)"
labctl grade --cohort demo-cohort --lab advanced/gpu-training --plan hack/demo/grading.yaml || true
labctl grades --cohort demo-cohort

step "Gradebook for Canvas"
labctl gradebook export --cohort demo-cohort --format canvas
rm -rf "$work"

cat <<MSG

What happened: train-resnet (3 GPUs, tolerates the GPU taint) was bound to a GPU node and
holds its GPUs; train-bert (2 more) would exceed the namespace quota of 4, so its pod is
refused at admission and the Job waits; forgot-toleration asks for a GPU without tolerating
nvidia.com/gpu=present:NoSchedule and stays Pending; feature-api runs on CPU nodes only.

In the cohort, Ada's training Job was placed on a GPU node within her quota and she passed;
Grace's pod stays Pending (no toleration), so the required check fails; Linus has no
Job yet. Each grading is a new GradeAttempt: run the demo again and the history grows.

Explore:  export KUBECONFIG=$KUBECONFIG;  $kubectl get pods -A -o wide;  $kubectl get grades
Tear down: labctl sim down
MSG
