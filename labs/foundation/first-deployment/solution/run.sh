#!/usr/bin/env bash
# Reference solution, as a learner does it (README steps 2-4): the starter manifests with their
# TODOs done (this folder's *.yaml), applied, then wait for the rollout. Mistakes run this same
# script over their own manifests.
set -euo pipefail

kubectl get configmap iris-model                                # step 1: the model is there
kubectl apply -f deployment.yaml                                # step 2: the server
kubectl rollout status deployment/iris --timeout=180s
for _ in $(seq 60); do                                          # ready = started; the log says listening
  kubectl logs deployment/iris 2>/dev/null | grep -q serving && break
  sleep 1
done
kubectl apply -f service.yaml                                   # step 3: its Service
for _ in $(seq 30); do                                          # the Service's endpoints follow the pods
  [ -n "$(kubectl get endpointslices -l kubernetes.io/service-name=iris \
          -o jsonpath='{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}')" ] && break
  sleep 1
done
kubectl get deployment iris
kubectl get pods -l app=iris -o wide
kubectl describe service iris
