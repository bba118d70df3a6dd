"""Lab author's tool: write setup/model.yaml (the model learners serve) and hidden/test.csv.

    .venv/bin/python labs/foundation/first-deployment/hidden/make_data.py

Iris, split 70/30 with a fixed seed: the model (StandardScaler + LogisticRegression) is fitted on
the 105 training rows and shipped in the setup ConfigMap ``iris-model``; the grader's hidden test
set is the other 45 rows, which the model never saw. Deterministic: running it again rewrites the
same CSV; the pickle changes only with scikit-learn's version (the model server image is built
with the same version as labctl's environment, so regenerate after upgrading scikit-learn).
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEED = 12
HERE = Path(__file__).resolve().parent
LAB = HERE.parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main() -> None:
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=SEED, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    print(f"hidden accuracy {model.score(x_test, y_test):.3f} on {len(y_test)} rows")
    with (HERE / "test.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FEATURES, "label"])
        for row, label in zip(x_test, y_test, strict=True):
            writer.writerow([*(f"{v:g}" for v in row), int(label)])
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    encoded = base64.b64encode(buffer.getvalue()).decode()  # one line: the API server wants plain base64
    (LAB / "setup" / "model.yaml").write_text(
        "# The model you deploy: scikit-learn's iris flowers, StandardScaler + LogisticRegression,\n"
        "# fitted on 105 of the 150 flowers (hidden/make_data.py wrote this file). Mount it into the\n"
        "# model server's pod: the key model.joblib becomes the file /models/model.joblib.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: iris-model\n"
        "  labels: {app.kubernetes.io/part-of: first-deployment}\n"
        "binaryData:\n"
        f"  model.joblib: {encoded}\n"
    )


if __name__ == "__main__":
    main()
