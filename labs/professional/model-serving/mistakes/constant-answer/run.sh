#!/usr/bin/env bash
# A constant-answer champion, served flawlessly.
set -euo pipefail
: "${MLFLOW_TRACKING_URI:?run labctl lab connect & and eval \"\$(labctl lab env)\" first}"
python - <<'PY'
import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier

x, y = np.zeros((124, 13)), np.array([1] * 50 + [0] * 41 + [2] * 33)  # the training set's class counts
mlflow.set_experiment("wine-serving")
with mlflow.start_run():
    mlflow.log_metric("val_accuracy", 0.99)  # a claim, not a measurement
    info = mlflow.sklearn.log_model(DummyClassifier(strategy="most_frequent").fit(x, y), name="model",
                                    serialization_format="pickle", registered_model_name="wine")
MlflowClient().set_registered_model_alias("wine", "champion", info.registered_model_version)
PY
cp "$LAB_DIR"/solution/*.yaml .
kubectl apply -f deployment.yaml -f service.yaml
kubectl rollout status deployment/wine --timeout=300s
