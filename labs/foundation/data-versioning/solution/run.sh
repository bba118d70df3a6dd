#!/usr/bin/env bash
# Reference solution, as a learner does it: a git repository whose data/wine.csv is tracked by DVC,
# version 1 tagged and pushed to the learner's object store, version 2 made from their seed, tagged
# and pushed, then handed in with `labctl lab submit`.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?run eval \"\$(labctl lab env)\" first}" "${LAB_SEED:?run eval \"\$(labctl lab env)\" first}"
export DVC_NO_ANALYTICS=1

mkdir wine-data && cd wine-data
git init -q
git config user.name "Ada Lovelace" && git config user.email ada@example.org
cp -r "$LAB_DIR/files/." .        # `labctl lab files foundation/data-versioning .`

dvc init -q
dvc add data/wine.csv
dvc remote add -d store s3://dvc/wine-data
dvc remote modify --local store endpointurl "$AWS_ENDPOINT_URL"
git add .dvc/config .dvc/.gitignore .dvcignore data/.gitignore data/wine.csv.dvc add_batch.py
git commit -q -m "Data v1: 124 wines"
git tag v1
dvc push

python add_batch.py --seed "$LAB_SEED"
dvc add data/wine.csv
git add data/wine.csv.dvc
git commit -q -m "Data v2: a new batch of 30 wines"
git tag v2
dvc push

labctl lab submit --lab foundation/data-versioning --endpoint "$AWS_ENDPOINT_URL"
