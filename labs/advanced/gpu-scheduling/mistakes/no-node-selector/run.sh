#!/usr/bin/env bash
# train without a nodeSelector: on a GPU node by luck of this pool, not by what it asks for.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
job = yaml.safe_load(open("train-job.yaml"))
del job["spec"]["template"]["spec"]["nodeSelector"]
yaml.safe_dump(job, open("train-job.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
