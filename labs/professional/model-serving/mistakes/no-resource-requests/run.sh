#!/usr/bin/env bash
# No resources block on the server container (the LimitRange's defaults apply to its pods).
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
deployment = yaml.safe_load(open("deployment.yaml"))
del deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
yaml.safe_dump(deployment, open("deployment.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
