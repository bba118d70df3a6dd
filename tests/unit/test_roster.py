"""Rosters: every bad row is reported with its row number, and nothing else happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core.errors import UsageError
from labctl.provision.naming import learner_name
from labctl.provision.roster import load_roster, validate_rows


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


def test_an_unbalanced_quote_at_the_end_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", 'email,name\na@uni.edu,"Ada\n')
    assert problems(path) == (
        'roster.csv row 2: name: unbalanced quote: "Ada is not closed on this row (a field cannot span rows)'
    )


def test_a_quote_never_swallows_the_next_learners(tmp_path: Path) -> None:
    """The csv module reads this as two learners, the first named 'Ada\\nb@uni.edu,Bob'."""
    path = write(tmp_path, "roster.csv", 'email,name\na@uni.edu,"Ada\nb@uni.edu,Bob"\nc@uni.edu,Cy\n')
    assert problems(path).splitlines() == [
        'roster.csv row 2: name: unbalanced quote: "Ada is not closed on this row (a field cannot span rows)',
        'roster.csv row 3: name: stray quote in Bob" (a quote belongs at both ends of a field, '
        'or doubled inside a quoted one: "Robert ""Bob"" Smith")',
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            'a@uni.edu,Ad"a',
            'name: stray quote in Ad"a (a quote belongs at both ends of a field, '
            'or doubled inside a quoted one: "Robert ""Bob"" Smith")',
        ),
        (
            'a@uni.edu,"Ada" Lovelace',
            'name: text after the closing quote: "Ada" Lovelace (quote the whole field, '
            "and double a quote inside it)",
        ),
        (
            '"a@uni.edu,Ada',
            'email: unbalanced quote: "a@uni.edu,Ada is not closed on this row (a field cannot span rows)',
        ),
        (
            'a@uni.edu,Ada,"x',
            'column 3: unbalanced quote: "x is not closed on this row (a field cannot span rows)',
        ),
    ],
)
def test_stray_quotes_name_the_row_and_column(tmp_path: Path, row: str, message: str) -> None:
    assert problems(write(tmp_path, "roster.csv", f"email,name\n{row}\n")) == f"roster.csv row 2: {message}"


def test_quoted_fields_as_rfc_4180_writes_them(tmp_path: Path) -> None:
    text = 'email,name\n"a@uni.edu","Robert ""Bob"" Smith"\nb@uni.edu, "Lovelace, Ada" \nc@uni.edu,""\n'
    entries = load_roster(write(tmp_path, "roster.csv", text), cohort="c1")
    assert [(e.email, e.name) for e in entries] == [
        ("a@uni.edu", 'Robert "Bob" Smith'),
        ("b@uni.edu", "Lovelace, Ada"),
        ("c@uni.edu", None),
    ]


def test_a_quoted_header_cell_left_open_stops_at_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", 'email,"name\na@uni.edu,Ada\n')
    assert problems(path) == (
        'roster.csv row 1: column 2: unbalanced quote: "name is not closed on this row '
        "(a field cannot span rows)"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a@uni.edu,Ada\tLovelace,", "name: 'Ada\\tLovelace' contains a tab"),
        ("a@uni.edu,Ada\t,", "name: 'Ada\\t' contains a tab"),  # not trimmed: nobody sees it
        ("a@uni.edu,\x00Ada,", "name: '\\x00Ada' contains a NUL byte"),
        ("a@uni.edu,Ada\x1b[31m,", "name: 'Ada\\x1b[31m' contains control character (U+001B)"),
        ("a@uni.edu,Ada\x0bL,", "name: 'Ada\\x0bL' contains control character (U+000B)"),
        ("a\u200b@uni.edu,Ada,", "email: 'a\\u200b@uni.edu' contains zero width space (U+200B)"),
        ("a@uni.edu,\u202eAda,", "name: '\\u202eAda' contains right-to-left override (U+202E)"),
        ("a@uni.edu,Ada\u2028L,", "name: 'Ada\\u2028L' contains line separator (U+2028)"),
        ("a@uni.edu,Ada,\ufeff1", "id: '\\ufeff1' contains zero width no-break space (U+FEFF)"),
    ],
)
def test_characters_nobody_can_see_are_refused(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, "roster.csv", f"email,name,id\n{row}\n")
    assert problems(path) == f"roster.csv row 2: {message}"


def test_a_name_may_hold_zero_width_joiners(tmp_path: Path) -> None:
    """Persian and Indic names are spelt with ZWNJ/ZWJ: they are letters there, not noise."""
    name = "\u0641\u0631\u200c\u0647"
    entries = load_roster(write(tmp_path, "roster.csv", f"email,name\na@uni.edu,{name}\n"), cohort="c1")
    assert entries[0].name == name
    assert "contains zero width non-joiner" in problems(
        write(tmp_path, "roster.csv", "email,name,id\na@uni.edu,A,1\u200c2\n")
    )


def test_spaces_around_fields_are_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", " Email , Name \n  Ada@Uni.edu  ,  Ada Lovelace  \n")
    assert [(e.email, e.name) for e in load_roster(path, cohort="c1")] == [("ada@uni.edu", "Ada Lovelace")]


def test_bom_crlf_and_blank_lines_are_harmless(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(b"\xef\xbb\xbfemail,name\r\n\r\na@uni.edu,Ada\r\n,,\r\n   \r\nb@uni.edu,Bob\r\n\r\n")
    assert [(e.email, e.name) for e in load_roster(path, cohort="c1")] == [
        ("a@uni.edu", "Ada"),
        ("b@uni.edu", "Bob"),
    ]
    path.write_bytes(b"email\ra@uni.edu\rb@uni.edu\r")  # classic Mac line ends, as an editor reads them
    assert [e.email for e in load_roster(path, cohort="c1")] == ["a@uni.edu", "b@uni.edu"]


def test_rows_are_counted_as_an_editor_numbers_lines(tmp_path: Path) -> None:
    """Blank lines count, the header too: the row in a message is the line the editor shows."""
    path = tmp_path / "roster.csv"
    path.write_bytes(b"\r\nemail,name\r\n\r\na@uni.edu,Ada\r\nbad,X\r\n")
    assert problems(path) == "roster.csv row 5: email: not an e-mail address: 'bad'"
    path.write_bytes(b"\r\nmail\r\na@uni.edu\r\n")
    assert problems(path).startswith("roster.csv row 2: the header needs an 'email' column")


def test_duplicates_by_case_name_both_rows_however_far_apart(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", "email\nAda@uni.edu\n\nbob@uni.edu\n\n ADA@UNI.EDU \n")
    assert problems(path) == "roster.csv row 6: duplicate learner ADA@UNI.EDU (first seen on row 2)"


def test_one_id_for_two_learners_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", "email,id\na@uni.edu,1001\nb@uni.edu,1002\nc@uni.edu,1001\n")
    assert problems(path) == "roster.csv row 4: id: '1001' is also the id of row 2"


def test_too_few_and_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.csv", "email,name\na@uni.edu,Lovelace, Ada\nb@uni.edu\n")
    assert problems(path).splitlines() == [
        "roster.csv row 2: malformed row: expected 2 fields (email, name), got 3 "
        '(a field holding a comma is quoted: "Lovelace, Ada")',
        "roster.csv row 3: malformed row: expected 2 fields (email, name), got 1",
    ]


def test_an_empty_email_is_required(tmp_path: Path) -> None:
    assert (
        problems(write(tmp_path, "roster.csv", "email,name\n  ,Nobody\n"))
        == "roster.csv row 2: email: required"
    )


def test_a_semicolon_separated_file_says_so(tmp_path: Path) -> None:
    text = problems(write(tmp_path, "roster.csv", "email;name\na@uni.edu;Ada\n"))
    assert text.startswith(
        "roster.csv row 1: the header needs an 'email' column (got email;name) "
        "(columns are separated by commas, not ';')"
    )


def test_text_that_is_not_utf8_names_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes("email,name\na@uni.edu,Adèle\nb@uni.edu,Bob\nc@uni.edu,Cléo\n".encode("latin-1"))
    assert problems(path) == (
        "roster.csv row 2: not UTF-8 text (byte 0xe8), nor is row 4: "
        "save the roster as UTF-8 (in Excel: CSV UTF-8)"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = 'email,name\na@uni.edu,"Ada\nb@uni.edu,B\tob\nc@uni.edu,C,x\nA@uni.edu,Ada\nnope,N\n'
    assert [line.split(":")[0] for line in problems(write(tmp_path, "roster.csv", text)).splitlines()] == [
        "roster.csv row 2",
        "roster.csv row 3",
        "roster.csv row 4",
        "roster.csv row 6",
    ]


def test_yaml_scalars_are_read_as_written(tmp_path: Path) -> None:
    """Plain YAML would make id 0123 the number 83 and the name No the boolean False."""
    path = write(
        tmp_path, "roster.yaml", "- email: a@uni.edu\n  id: 0123\n  name: No\n- email: b@uni.edu\n  id: 1e3\n"
    )
    assert [(e.email, e.name, e.id) for e in load_roster(path, cohort="c1")] == [
        ("a@uni.edu", "No", "0123"),
        ("b@uni.edu", None, "1e3"),
    ]


def test_bad_yaml_learners_are_all_reported(tmp_path: Path) -> None:
    text = "learners:\n  - email: a@uni.edu\n    name: |\n      Ada\n  - [b@uni.edu]\n  - email: {x: 1}\n"
    assert problems(write(tmp_path, "roster.yaml", text)).splitlines() == [
        "roster.yaml learners[0]: name: 'Ada\\n' contains a line break",
        "roster.yaml learners[1]: expected a mapping with 'email' (got list)",
        "roster.yaml learners[2]: email: expected text, got dict",
    ]


def test_a_yaml_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "roster.yaml", "- email: a@uni.edu\n  name: Ada\n  email: b@uni.edu\n")
    assert problems(path) == "roster.yaml line 3: not valid YAML: key 'email' given twice (column 3)"


def test_add_learner_flags_are_checked_alike() -> None:
    with pytest.raises(UsageError) as exc:
        validate_rows([("--email", {"email": "a@uni.edu", "name": "Ada\n"})], source="flags", cohort="c1")
    assert str(exc.value) == "--email: name: 'Ada\\n' contains a line break"


def test_a_misspelt_column_or_field_gets_a_did_you_mean(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "r.csv", "email,nmae\nx@y.z,X\n")) == (
        "r.csv row 1: unknown column(s) 'nmae' (did you mean 'name'?); allowed: email, name, id"
    )
    assert problems(write(tmp_path, "r.yaml", "- email: x@y.z\n  nmae: X\n")) == (
        "r.yaml learners[0]: nmae: unknown field (did you mean 'name'?); allowed: email, name, id"
    )


def test_cohort_create_refuses_a_bad_roster_before_the_cluster(tmp_path: Path) -> None:
    """The issue's roster: exit 2 with every bad row, and no request made (the kubeconfig's server
    does not exist: any request would have failed with exit 1 instead)."""
    from click.testing import CliRunner

    from labctl.cli.main import cli
    from tests.unit.test_did_you_mean import KUBECONFIG

    config = write(tmp_path, "kubeconfig", KUBECONFIG)
    roster = write(tmp_path, "roster.csv", 'email,name\na@uni.edu,"Ada\nb@uni.edu,Bob\n')
    args = ["create", "c1", "--roster", str(roster), "--level", "foundation", "--kubeconfig", str(config)]
    result = CliRunner().invoke(cli, ["cohort", *args])
    assert result.exit_code == 2, result.output
    assert result.output == (
        'Error: roster.csv row 2: name: unbalanced quote: "Ada is not closed on this row '
        "(a field cannot span rows)\n"
    )
