"""Lab author's tool: write files/wine-train.csv (what learners train on) and hidden/test.csv.

    .venv/bin/python labs/professional/model-serving/hidden/make_data.py

scikit-learn's wine data set (178 wines, 13 measurements, 3 cultivars), split 70/30 with a fixed
seed and stratified by class: learners get the 124 training wines; the grader keeps the other 54,
so a served model is scored on wines it never saw. Deterministic: running it again rewrites the
same files.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

SEED = 2026
HERE = Path(__file__).resolve().parent
LAB = HERE.parent


def write(path: Path, columns: list[str], rows: Any, labels: Any) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "label"])
        for row, label in zip(rows, labels, strict=True):
            writer.writerow([*(f"{v:g}" for v in row), int(label)])


def main() -> None:
    wine = load_wine()
    columns = [c.replace("/", "_") for c in wine.feature_names]  # od280/od315_... -> od280_od315_...
    x_train, x_test, y_train, y_test = train_test_split(
        wine.data, wine.target, test_size=0.3, random_state=SEED, stratify=wine.target
    )
    write(LAB / "files" / "wine-train.csv", columns, x_train, y_train)
    write(HERE / "test.csv", columns, x_test, y_test)
    print(f"{len(y_train)} training wines, {len(y_test)} hidden")


if __name__ == "__main__":
    main()
