"""Train the wine classifier the model server will serve, and save it as model.joblib.

    python train.py

A scikit-learn Pipeline: StandardScaler, then logistic regression, trained on three quarters of
data/wine.csv and scored on the rest. The scaler matters beyond accuracy: it keeps the mean and
standard deviation of every feature in the training data, and the model server compares the
traffic it receives with them to compute model_drift_score.
"""

from __future__ import annotations

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

data = pd.read_csv("data/wine.csv")
features, labels = data.drop(columns="target"), data["target"]
x_train, x_val, y_train, y_val = train_test_split(
    features, labels, test_size=0.25, random_state=42, stratify=labels
)
# Plain arrays, not a DataFrame: the server is sent rows of numbers in the training column order.
model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
model.fit(x_train.to_numpy(), y_train.to_numpy())
print(f"validation accuracy: {model.score(x_val.to_numpy(), y_val.to_numpy()):.3f}")
joblib.dump(model, "model.joblib")
print("saved model.joblib")
