"""Make this lab's version 1 data set from scikit-learn's bundled wine data (the learner's file).

    python hidden/make_data.py        # from the lab's folder; rewrites files/data/wine.csv byte for byte

Writes ``files/data/wine.csv``: the same 124 wines as foundation/experiment-tracking and
foundation/model-registry get (a stratified split with a fixed seed; the other 54 are those labs'
hidden test set), so a learner who does the three labs versions the data they train on. This lab
grades a git repository and its DVC remote, so it has no hidden data of its own; the generator
lives under hidden/ only so learners never get it.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

SEED = 1203  # the foundation labs' split; never change (the data's md5 is quoted in their READMEs)
LAB = Path(__file__).resolve().parents[1]


def main() -> None:
    frame = load_wine(as_frame=True).frame
    train, _ = train_test_split(frame, test_size=0.3, random_state=SEED, stratify=frame["target"])
    (LAB / "files" / "data").mkdir(parents=True, exist_ok=True)
    train.sort_index().to_csv(LAB / "files" / "data" / "wine.csv", index=False)


if __name__ == "__main__":
    main()
