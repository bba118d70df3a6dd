"""Append a new batch of wine measurements to data/wine.csv: version 2 of the data set.

    python add_batch.py --seed "$LAB_SEED"

The batch is 30 wines, 10 per cultivar, measured again from wines already in the file with a
little measurement noise. Which wines and which noise depend only on ``--seed``: the same seed
always appends the same bytes, and your seed (``$LAB_SEED``, from ``labctl lab env``) gives you a
batch, and so a version 2, that no one else has. Run it once: a second run appends a second batch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

PER_CLASS = 10
NOISE = 0.05  # of each column's standard deviation: a remeasurement, not a new kind of wine


def new_batch(data: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``PER_CLASS`` remeasured wines of each cultivar, rounded like the originals."""
    rng = np.random.default_rng(seed)
    features = [c for c in data.columns if c != "target"]
    std = data[features].std()
    rows = []
    for label in sorted(data["target"].unique()):
        group = data[data["target"] == label]
        picked = group.iloc[rng.choice(len(group), size=PER_CLASS, replace=False)]
        noisy = picked[features] + rng.normal(0.0, NOISE, size=(PER_CLASS, len(features))) * std.to_numpy()
        rows.append(noisy.clip(lower=0).assign(target=label))
    batch = pd.concat(rows, ignore_index=True)
    decimals = {c: _decimals(data[c]) for c in features}
    return batch.round(decimals).astype(data.dtypes.to_dict())


def _decimals(column: pd.Series) -> int:
    """How many decimals the column's values are written with (at most 3)."""
    return max(len(f"{v:g}".partition(".")[2]) for v in column.head(50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help='your seed: --seed "$LAB_SEED"')
    parser.add_argument("--data", type=Path, default=Path("data/wine.csv"))
    args = parser.parse_args()
    data = pd.read_csv(args.data)
    batch = new_batch(data, args.seed)
    pd.concat([data, batch], ignore_index=True).to_csv(args.data, index=False)
    print(f"added {len(batch)} wines (seed {args.seed}): {args.data} now has {len(data) + len(batch)} rows")


if __name__ == "__main__":
    main()
