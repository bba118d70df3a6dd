#!/usr/bin/env bash
# `make demo`: the GPU-scheduling scenario and a cohort, step by step, on the simulated cluster.
# When this machine can run a real node (root; containerd, runc, CNI plugins from Debian) the
# cluster gets one and the learners' stacks (MLflow, object store, Prometheus, Alertmanager) and
# the controller run there as real containers; otherwise kwok pretends to run every pod.
# LABCTL_DEMO_REAL_NODE=no keeps to kwok. Idempotent: run it again and it starts from the same state.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }

SIM=labctl  # hack/demo/stack-settings.yaml pins the stacks to this sim's real node
LAB=advanced/gpu-scheduling
MISTAKE=${LABCTL_DEMO_MISTAKE:-no-gpu-request}  # a planted mistake that games the grader
IMAGES=(object-store prometheus alertmanager config-reloader mlflow controller)
NODE_DEBS=(containerd runc containernetworking-plugins iptables iproute2 debootstrap)

# Everything a real node needs, or the reason it cannot have one (in $why).
why=""
real_node_ready() {
  if [ "${LABCTL_DEMO_REAL_NODE:-auto}" = no ]; then why="LABCTL_DEMO_REAL_NODE=no"; return 1; fi
  if [ "$(id -u)" != 0 ]; then why="a real node needs root"; return 1; fi
  hack/install-debian-deps "${NODE_DEBS[@]}" || { why="could not install ${NODE_DEBS[*]}"; return 1; }
  python -m labctl.localcluster.realnode build || { why="could not build kubelet, kube-proxy or CoreDNS"; return 1; }
  labctl images build "${IMAGES[@]}" >/dev/null || { why="could not build the stack images"; return 1; }
}

step "Cluster: labctl sim up (real etcd, kube-apiserver, scheduler, controller-manager; kwok nodes)"
if real_node_ready && KUBECONFIG=$(labctl sim up "$SIM" --real-node); then
  real_node=yes
else
  real_node=no
  [ -n "$why" ] || why="labctl sim up --real-node failed (above)"
  KUBECONFIG=$(labctl sim up "$SIM")
fi
export KUBECONFIG
kubectl=$(labctl toolchain which kubectl)
if [ "$real_node" = yes ]; then
  step "Images built here, loaded into the real node's containerd (no registry)"
  labctl images load "${IMAGES[@]}" --sim "$SIM" >/dev/null
  cluster="sim '$SIM': kwok nodes + the real node $SIM-node (kubelet, containerd, runc): the stacks really run"
else
  cluster="sim '$SIM': kwok nodes only, every pod pretends to run (no real node: $why)"
fi
printf '\n\033[1mUsing %s\033[0m\nkubeconfig: %s\n' "$cluster" "$KUBECONFIG"
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
if [ "$real_node" = yes ]; then
  # The controller runs in-cluster from its image; the stacks use the local images, on the real node.
  labctl install --stack-settings hack/demo/stack-settings.yaml --node-selector "labctl.dev/real-node=$SIM"
  "$kubectl" rollout status -n labctl-system deployment/labctl-controller --timeout=5m
else
  labctl install --local-controller
  state=$(dirname "$KUBECONFIG")
  setsid labctl controller run >"$state/demo-controller.log" 2>&1 &
  controller=$!
  trap 'kill -TERM -- -"$controller" 2>/dev/null || true' EXIT  # end its whole process group
fi
step "The lab catalog: validated whole, then published (each version once; hidden data kept from learners)"
labctl lab validate
labctl lab publish >/dev/null
labctl lab list

step "A cohort of three at advanced level, with GPU quotas"
labctl cohort create demo-cohort --roster hack/demo/roster.csv --level advanced \
  --labs "$LAB" --quota-profile gpu --wait --timeout 10m
labctl cohort status demo-cohort

if [ "$real_node" = yes ]; then
  step "Ada's stack runs for real on $SIM-node"
  ns=$("$kubectl" get learners.labctl.dev -o jsonpath='{.items[?(@.spec.email=="ada@uni.edu")].status.namespace}')
  "$kubectl" get pods -n "$ns" -o custom-columns='POD:.metadata.name,STATUS:.status.phase,NODE:.spec.nodeName,IP:.status.podIP'
  forward() {  # forward VAR SERVICE PORT: VAR = a local port kubectl forwards to the service
    local log
    log="$(dirname "$KUBECONFIG")/demo-forward-$2.log"
    setsid "$kubectl" port-forward -n "$ns" "svc/$2" ":$3" >"$log" 2>&1 &  # its own process group
    forwards+=("$!")
    for _ in $(seq 50); do
      grep -q '^Forwarding from 127.0.0.1:' "$log" && break
      sleep 0.2
    done
    printf -v "$1" '%s' "$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$log" | head -1)"
  }
  get() { python -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode())' "$1"; }
  forwards=()
  trap 'for f in "${forwards[@]}"; do kill -TERM -- -"$f" 2>/dev/null || true; done' EXIT
  forward mlflow mlflow 5000
  forward prometheus prometheus 9090
  echo "  MLflow (kubectl port-forward svc/mlflow): experiments:"
  get "http://127.0.0.1:$mlflow/api/2.0/mlflow/experiments/search?max_results=10" |
    python -c 'import json,sys; [print("    -", e["name"]) for e in json.load(sys.stdin)["experiments"]]'
  echo "  Prometheus (kubectl port-forward svc/prometheus): what it scrapes:"
  get "http://127.0.0.1:$prometheus/api/v1/targets" |
    python -c 'import json,sys; [print("    -", t["scrapeUrl"], t["health"]) for t in json.load(sys.stdin)["data"]["activeTargets"]]'
fi

step "Learners start $LAB, each with the kubeconfig labctl gave them"
work=$(mktemp -d)
for who in ada grace linus; do
  labctl learner kubeconfig demo-cohort "$who@uni.edu" --out "$work/$who.kubeconfig" --duration 1h
  labctl lab start "$LAB" --kubeconfig "$work/$who.kubeconfig" 2>/dev/null | head -1
done
echo "  Ada trying to list every namespace's pods (she may only see her own):"
"$kubectl" --kubeconfig "$work/ada.kubeconfig" get pods --all-namespaces 2>&1 | sed 's/^/  /' || true

step "Ada and Grace follow the lab (its reference solution); Linus games it (a planted mistake: $MISTAKE)"
labctl lab solve "$LAB" --kubeconfig "$work/ada.kubeconfig" | sed 's/^/  ada:   /'
labctl lab solve "$LAB" --kubeconfig "$work/grace.kubeconfig" | sed 's/^/  grace: /'
labctl lab solve "$LAB" --mistake "$MISTAKE" --kubeconfig "$work/linus.kubeconfig" | sed 's/^/  linus: /'

step "labctl lab check: each learner asks; the controller grades (never the learner's side)"
for who in ada linus; do
  echo "--- $who"
  labctl lab check "$LAB" --kubeconfig "$work/$who.kubeconfig" 2>/dev/null || true
done
labctl lab check "$LAB" --kubeconfig "$work/grace.kubeconfig" >/dev/null 2>&1 || true

step "The instructor: the cohort grid, a grading run, every attempt recorded"
labctl cohort status demo-cohort
out=$(dirname "$KUBECONFIG")/demo-reports
mkdir -p "$out"
labctl grade --cohort demo-cohort --lab "$LAB" || true
labctl grade --cohort demo-cohort --lab "$LAB" -o html --out "$out/report.html" >/dev/null 2>&1 || true
labctl grades --cohort demo-cohort

step "Gradebook for Canvas"
labctl gradebook export --cohort demo-cohort --format canvas --out "$out/gradebook.csv"
cat "$out/gradebook.csv"
rm -rf "$work"

step "The instructor's dashboard: the cohort's grid, live in the browser (read-only, on 127.0.0.1)"
state=$(dirname "$KUBECONFIG")
pidfile="$state/demo-dashboard.pid"
if [ -s "$pidfile" ] && grep -qa dashboard "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
  kill -TERM -- -"$(cat "$pidfile")" 2>/dev/null || true  # the previous demo's, by its process group
fi
# Its own session: it outlives the demo, for you to open; the pid file lets the next demo end it.
setsid labctl dashboard --cohort demo-cohort --port "${LABCTL_DEMO_DASHBOARD_PORT:-0}" \
  </dev/null >"$state/demo-dashboard.out" 2>"$state/demo-dashboard.log" &
dashboard_pid=$!
echo "$dashboard_pid" >"$pidfile"
for _ in $(seq 150); do
  grep -q '^dashboard: http' "$state/demo-dashboard.out" && break
  sleep 0.2
done
dashboard_url=$(sed -n 's/^dashboard: \(http[^ ]*\).*/\1/p' "$state/demo-dashboard.out")
[ -n "$dashboard_url" ] || { echo "the dashboard did not start: see $state/demo-dashboard.log" >&2; exit 1; }
echo "  serving $dashboard_url (pid $dashboard_pid)"

real_note="" teardown_note=""
if [ "$real_node" = yes ]; then
  real_note="
Each learner's MLflow, object store, Prometheus and Alertmanager run as real containers on
$SIM-node; labctl cohort delete demo-cohort --export DIR would save their runs, models and data.
"
  teardown_note="   (the real node goes with it)"
fi
cat <<MSG

Cluster: $cluster.

What happened: train-resnet (3 GPUs, tolerates the GPU taint) was bound to a GPU node and
holds its GPUs; train-bert (2 more) would exceed the namespace quota of 4, so its pod is
refused at admission and the Job waits; forgot-toleration asks for a GPU without tolerating
nvidia.com/gpu=present:NoSchedule and stays Pending; feature-api runs on CPU nodes only.

In the cohort, Ada and Grace followed $LAB (its reference solution, run with their own
kubeconfigs) and passed; Linus tried to game it ($MISTAKE) and the checks that guard
against it failed him, with feedback saying what to fix. Each check is a GradeAttempt the
learners cannot read or change: run the demo again and the history grows.

  HTML report: $out/report.html
  Gradebook:   $out/gradebook.csv
$real_note
Explore:  export KUBECONFIG=$KUBECONFIG;  $kubectl get pods -A -o wide;  $kubectl get grades
Tear down: labctl sim down$teardown_note;  kill $dashboard_pid  (the dashboard)

Dashboard for demo-cohort, live and read-only: $dashboard_url
MSG
