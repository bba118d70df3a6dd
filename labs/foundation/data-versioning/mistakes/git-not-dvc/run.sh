#!/usr/bin/env bash
# Both versions committed to git directly: "git is version control, isn't that enough?"
set -euo pipefail
export DVC_NO_ANALYTICS=1
mkdir wine-data && cd wine-data
git init -q && git config user.name "Ada Lovelace" && git config user.email ada@example.org
cp -r "$LAB_DIR/files/." .
dvc init -q
dvc remote add -d store s3://dvc/wine-data
git add .dvc/config .dvc/.gitignore .dvcignore data/wine.csv add_batch.py
git commit -q -m "Data v1" && git tag v1
python add_batch.py --seed "$LAB_SEED"
git add data/wine.csv && git commit -q -m "Data v2" && git tag v2
labctl lab submit --lab foundation/data-versioning --endpoint "$AWS_ENDPOINT_URL"
