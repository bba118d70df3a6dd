#!/usr/bin/env bash
# The reference register.py without its set_model_version_tag line.
set -euo pipefail
cp -r "$LAB_DIR/files/." .
grep -v 'set_model_version_tag' "$LAB_DIR/solution/register.py" > register.py
for c in 0.001 0.1 1 10; do python train.py --C "$c"; done
python register.py
