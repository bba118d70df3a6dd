set -euo pipefail
kubectl create configmap greeting --from-literal=message=hi --from-literal=seed="$LAB_SEED"
kubectl create service clusterip web --tcp=8080:8080
