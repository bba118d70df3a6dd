"""Make this lab's data from scikit-learn's bundled wine data set: the learner's and the grader's.

    python hidden/make_data.py        # from the lab's folder; rewrites both files, byte for byte

Writes ``files/data/wine.csv`` (124 rows: what the learner trains on) and ``hidden/test.csv``
(54 rows: what endpoint.predict sends the learner's model server, so a constant or untrained
server fails). The split is stratified with a fixed seed (the Foundation labs' split), so the two
never share a row and a rerun writes the same bytes. The drift scenario draws its traffic from
scikit-learn's wine data itself (``dataset: wine``). Lives under hidden/ so learners never get the
generator; only ``test.csv`` is listed as hidden data in lab.yaml.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

SEED = 1203  # never change: the hidden rows, and the md5 of the training file, depend on it
LAB = Path(__file__).resolve().parents[1]


def main() -> None:
    frame = load_wine(as_frame=True).frame  # 13 features and `target` (0, 1, 2)
    train, test = train_test_split(frame, test_size=0.3, random_state=SEED, stratify=frame["target"])
    (LAB / "files" / "data").mkdir(parents=True, exist_ok=True)
    train.sort_index().to_csv(LAB / "files" / "data" / "wine.csv", index=False)
    test.sort_index().to_csv(LAB / "hidden" / "test.csv", index=False)


if __name__ == "__main__":
    main()
