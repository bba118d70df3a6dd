#!/usr/bin/env bash
# Version 1 done right; "version 2" is a hand-edited md5 (a friend's, say) with no data behind it.
set -euo pipefail
export DVC_NO_ANALYTICS=1
mkdir wine-data && cd wine-data
git init -q && git config user.name "Ada Lovelace" && git config user.email ada@example.org
cp -r "$LAB_DIR/files/." .
dvc init -q
dvc add data/wine.csv
dvc remote add -d store s3://dvc/wine-data
dvc remote modify --local store endpointurl "$AWS_ENDPOINT_URL"
git add .dvc/config .dvc/.gitignore .dvcignore data/.gitignore data/wine.csv.dvc add_batch.py
git commit -q -m "Data v1" && git tag v1
dvc push
sed -i 's/md5: .*/md5: 0123456789abcdef0123456789abcdef/' data/wine.csv.dvc
grep -q 'md5: 0123456789abcdef' data/wine.csv.dvc
git add data/wine.csv.dvc && git commit -q -m "Data v2" && git tag v2
dvc push || true   # pushes nothing: the cache has no object with that hash
labctl lab submit --lab foundation/data-versioning --endpoint "$AWS_ENDPOINT_URL"
