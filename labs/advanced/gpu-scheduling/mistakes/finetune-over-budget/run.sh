#!/usr/bin/env bash
# finetune asks for more GPUs than the namespace may ever use at once.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
job = yaml.safe_load(open("finetune-job.yaml"))
job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "2"
yaml.safe_dump(job, open("finetune-job.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
