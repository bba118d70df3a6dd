#!/usr/bin/env bash
# The reference register.py, tagging the champion with a commit of the project's git repository.
set -euo pipefail
cp -r "$LAB_DIR/files/." .
git init -q . && git -c user.name=Ada -c user.email=ada@example.org commit -q --allow-empty -m "training code"
sha=$(git rev-parse HEAD)
sed "s/best\[\"params.data_version\"\])$/\"$sha\")/" "$LAB_DIR/solution/register.py" > register.py
grep -q "\"$sha\")" register.py
for c in 0.001 0.1 1 10; do python train.py --C "$c"; done
python register.py
