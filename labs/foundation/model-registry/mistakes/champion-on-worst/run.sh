#!/usr/bin/env bash
# The reference register.py, but the champion is the last run of the list (the worst) instead of the first.
set -euo pipefail
cp -r "$LAB_DIR/files/." .
sed 's/best = runs.iloc\[0\]/best = runs.iloc[-1]/' "$LAB_DIR/solution/register.py" > register.py
grep -q 'runs.iloc\[-1\]' register.py
for c in 0.001 0.1 1 10; do python train.py --C "$c"; done
python register.py
