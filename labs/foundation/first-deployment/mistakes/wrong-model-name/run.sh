#!/usr/bin/env bash
# No MODEL_NAME: the server's default name, not the one clients ask for.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
deployment = yaml.safe_load(open("deployment.yaml"))
container = deployment["spec"]["template"]["spec"]["containers"][0]
container["env"] = [e for e in container["env"] if e["name"] != "MODEL_NAME"]
yaml.safe_dump(deployment, open("deployment.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
