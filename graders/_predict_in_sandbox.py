"""Runs inside the sandbox, never in a grader: load a learner's MLflow model, predict, write JSON.

``python -I predict.py MODEL_DIR FEATURES_CSV OUT_JSON``. Loading the model is running the
learner's code (unpickling), so this file is the whole program the sandbox runs: it imports
nothing of ``graders`` (the sandbox sees only this file, the model's folder and the features,
never the labels) and writes either ``{"predictions": [...]}`` or ``{"error": {"stage", "type",
"message"}}``. The grader trusts neither: the model's code runs in this process and may have
written the file itself, so the grader checks the shape and scores the values against labels
the sandbox never saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MESSAGE_CHARS = 300  # of an exception's text: enough for "No module named 'xgboost'"


def as_list(raw: Any) -> list[Any]:
    """Predictions as a flat list: numpy arrays, pandas Series or one-column DataFrames, lists."""
    if hasattr(raw, "columns") and hasattr(raw, "iloc"):  # a DataFrame: its only (or first) column
        raw = raw.iloc[:, 0] if len(raw.columns) == 1 else raw
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    values = list(raw)
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]


def main(argv: list[str]) -> int:
    model_dir, features, out = argv[1:4]
    stage = "start"
    try:
        stage = "load"
        import mlflow.pyfunc
        import pandas

        model = mlflow.pyfunc.load_model(model_dir)
        stage = "read"
        frame = pandas.read_csv(features)
        stage = "predict"
        values = as_list(model.predict(frame))
        result: dict[str, Any] = {"predictions": values}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from the model's code too
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result = {"error": {"stage": stage, "type": type(exc).__name__, "message": message[:MESSAGE_CHARS]}}
    with open(out, "w") as handle:
        json.dump(result, handle, default=str)
    return 0 if "predictions" in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
