#!/usr/bin/env bash
# prepare gets the GPU scheduling (toleration + Ampere selector) without needing a GPU.
set -euo pipefail
cp "$LAB_DIR"/solution/*.yaml .
python - <<'PY'
import yaml
train = yaml.safe_load(open("train-job.yaml"))["spec"]["template"]["spec"]
prepare = yaml.safe_load(open("prepare-job.yaml"))
spec = prepare["spec"]["template"]["spec"]
spec["tolerations"], spec["nodeSelector"] = train["tolerations"], train["nodeSelector"]
yaml.safe_dump(prepare, open("prepare-job.yaml", "w"), sort_keys=False)
PY
bash "$LAB_DIR/solution/run.sh"
