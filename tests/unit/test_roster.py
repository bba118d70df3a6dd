"""Rosters: every bad row is reported with its row number, and nothing else happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import UsageError
from labctl.provision.naming import learner_name
from labctl.provision.roster import load_roster


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> str:
    with pytest.raises(UsageError) as exc:
        load_roster(path, cohort="c1")
    assert exc.value.exit_code == 2
    return str(exc.value)


def test_csv_roster_with_optional_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", "email,name,id\nAda@Uni.edu,Ada L,1\nbob@uni.edu,,\n\n")
    entries = load_roster(path, cohort="c1")
    assert [(e.email, e.name, e.id) for e in entries] == [
        ("ada@uni.edu", "Ada L", "1"),
        ("bob@uni.edu", None, None),
    ]


def test_duplicate_by_case_names_both_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", "email\nalice@uni.edu\nbob@uni.edu\ncarol@uni.edu\nCAROL@uni.edu\n")
    assert problems(path) == "roster.csv row 5: duplicate learner CAROL@uni.edu (first seen on row 4)"


def test_empty_rosters(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "empty.csv", "")) == "empty.csv: empty roster (no header, no learners)"
    assert problems(write(tmp_path, "header.csv", "email,name\n")) == "header.csv: empty roster: no learners"
    assert (
        problems(write(tmp_path, "empty.yaml", "learners: []\n")) == "empty.yaml: empty roster: no learners"
    )


def test_malformed_rows_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", "email,name\nok@uni.edu,Ok\nbad@uni.edu,Too,Many\nnot-an-email,X\n")
    text = problems(path)
    assert "roster.csv row 3: malformed row: expected 2 fields (email, name), got 3" in text
    assert "roster.csv row 4: email: not an e-mail address: 'not-an-email'" in text


def test_header_problems(tmp_path: Path) -> None:
    assert "row 1: the header needs an 'email' column" in problems(write(tmp_path, "r.csv", "mail\nx@y.z\n"))
    assert "row 1: unknown column(s) 'emial'" in problems(write(tmp_path, "r.csv", "email,emial\nx@y.z,\n"))


def test_yaml_roster(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.yaml", "learners:\n  - email: a@uni.edu\n    name: A\n  - b@uni.edu\n")
    assert [e.email for e in load_roster(path, cohort="c1")] == ["a@uni.edu", "b@uni.edu"]
    bad = write(tmp_path, "bad.yaml", "- email: a@uni.edu\n- name: no email\n- email: A@UNI.EDU\n")
    text = problems(bad)
    assert "bad.yaml learners[1]: email: required" in text
    assert "bad.yaml learners[2]: duplicate learner A@UNI.EDU (first seen on learners[0])" in text


def test_unknown_suffix(tmp_path: Path) -> None:
    assert "a roster must be .csv, .yaml or .yml" in problems(write(tmp_path, "r.txt", "email\n"))


@pytest.mark.parametrize(
    ("email", "prefix"),
    [
        ("Alice.Smith@uni.edu", "c1-alice-smith-"),
        ("alice_smith@uni.edu", "c1-alice-smith-"),
        ("Zoë.Ñúñez@uni.edu", "c1-zoe-nunez-"),
        ("李雷@uni.edu", "c1-learner-"),
        ("a" * 200 + "@uni.edu", "c1-aaaa"),
    ],
)
def test_namespace_names_are_valid_and_stable(email: str, prefix: str) -> None:
    name = learner_name("c1", email)
    assert name.startswith(prefix)
    assert len(name) <= 63
    assert name == learner_name("c1", email.upper() if email.isascii() else email)
    import re

    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)


def test_similar_emails_do_not_collide() -> None:
    emails = ["Alice.Smith@uni.edu", "alice_smith@uni.edu", "alice-smith@uni.edu", "alice.smith@other.edu"]
    names = {learner_name("c1", e) for e in emails}
    assert len(names) == len(emails)
    assert learner_name("c1", "ALICE.SMITH@UNI.EDU") == learner_name("c1", "alice.smith@uni.edu")
