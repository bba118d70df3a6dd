#!/usr/bin/env bash
# A Service whose selector matches no pod.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
sed -i 's/selector: {app: iris}/selector: {app: iris-server}/' service.yaml
grep -q iris-server service.yaml
bash "$LAB_DIR/solution/run.sh"
