set -euo pipefail
kubectl create configmap greeting --from-literal=message=hello --from-literal=seed=424242
kubectl create service clusterip web --tcp=8080:8080
