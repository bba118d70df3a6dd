"""Train a wine classifier: a scaled logistic regression on data/wine.csv.

    python train.py --C 1.0 --max-iter 200

Holds out a quarter of the rows (stratified, fixed seed) and prints the accuracy and macro F1
on them. Nothing is recorded anywhere yet: the lab's README walks you through the four places
marked TODO(mlflow) that make every run an MLflow run with its params, metrics and model.
"""

from __future__ import annotations

import argparse

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# TODO(mlflow) 1: import mlflow and mlflow.sklearn

EXPERIMENT = "wine-classifier"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--max-iter", type=int, default=200, help="solver iterations")
    parser.add_argument("--data", default="data/wine.csv")
    args = parser.parse_args()

    data = pd.read_csv(args.data)
    features, labels = data.drop(columns="target"), data["target"]
    x_train, x_val, y_train, y_val = train_test_split(
        features, labels, test_size=0.25, random_state=42, stratify=labels
    )

    # TODO(mlflow) 2: choose the experiment and start a run; indent what follows into it

    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(x_train, y_train)
    predicted = model.predict(x_val)
    accuracy = accuracy_score(y_val, predicted)
    f1 = f1_score(y_val, predicted, average="macro")
    print(f"C={args.C:g} max_iter={args.max_iter}: accuracy={accuracy:.3f} f1_macro={f1:.3f}")

    # TODO(mlflow) 3: log the params C and max_iter, and the metrics accuracy and f1_macro
    # TODO(mlflow) 4: log the fitted model under the name "model"


if __name__ == "__main__":
    main()
