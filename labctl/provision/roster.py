"""Read a roster (CSV with a header, or YAML) and report every problem with its row.

Validation is complete before anything is written: the caller gets either the whole
list of learners or a UsageError listing every bad row.

A roster is refused rather than guessed at: a quote the csv module would let run on over line
ends (swallowing the next learners into one name), a character no one can see in a field (a
tab, NUL, a zero-width space), a row with the wrong number of fields, the same e-mail or id
twice. A UTF-8 BOM, CRLF line ends, blank lines and spaces around a field are harmless and
accepted. Rows are counted as an editor numbers lines: from 1, the header included.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from labctl.api.v1alpha1 import RosterEntry
from labctl.core.errors import UsageError
from labctl.core.suggest import did_you_mean
from labctl.provision.naming import learner_name, normalise_email

COLUMNS = ("email", "name", "id")


@dataclass(frozen=True)
class Unread:
    """A row the reader could make no fields of, and why (a stray quote, too many fields)."""

    problems: tuple[str, ...]


# A row: where it is (``roster.csv row 3``) and its fields, or why it could not be read.
Row = tuple[str, dict[str, Any] | Unread]

# The line ends an editor counts rows by (str.splitlines would also split at \v, \f, \x1c...).
LINE_END = re.compile(r"\r\n|\r|\n")
# Characters nobody can see or type into a form: control characters (a line break, a tab, NUL),
# line and paragraph separators, invisible formatting (zero-width space, bidi overrides, a BOM).
INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# ...except the zero-width (non-)joiners: Persian and Indic names are spelt with them.
JOINERS = frozenset({"\u200c", "\u200d"})
NAMED = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}
# What to do about each quoting mistake.
UNCLOSED = "is not closed on this row (a field cannot span rows)"
AFTER = "(quote the whole field, and double a quote inside it)"
STRAY = '(a quote belongs at both ends of a field, or doubled inside a quoted one: "Robert ""Bob"" Smith")'
MAX_LISTED = 10  # rows named in a "not UTF-8" message before "and N more"


def load_roster(path: Path, *, cohort: str) -> list[RosterEntry]:
    """Parse and validate ``path`` (``.csv``, ``.yaml`` or ``.yml``)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise UsageError(f"{path}: a roster must be .csv, .yaml or .yml")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read roster ({exc})") from None
    text = _decode(data, path.name, row="row" if suffix == ".csv" else "line")
    read = _csv_rows if suffix == ".csv" else _yaml_rows
    return validate_rows(read(text, path.name), source=path.name, cohort=cohort)


def _decode(data: bytes, source: str, *, row: str) -> str:
    """The text (without the BOM Excel writes), or a UsageError naming the rows that are not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # A byte 0x0a is never part of a UTF-8 sequence: each line decodes, or not, on its own.
    bad = []
    for number, line in enumerate(data.split(b"\n"), 1):
        try:
            line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, line[exc.start]))
    (first, byte), rest = bad[0], [str(n) for n, _ in bad[1:]]
    more = ""
    if len(rest) == 1:
        more = f", nor is {row} {rest[0]}"
    elif rest:
        more = f", nor are {row}s {', '.join(rest[:MAX_LISTED])}" + (
            f" and {len(rest) - MAX_LISTED} more" if len(rest) > MAX_LISTED else ""
        )
    raise UsageError(
        f"{source} {row} {first}: not UTF-8 text (byte 0x{byte:02x}){more}: "
        "save the roster as UTF-8 (in Excel: CSV UTF-8)"
    )


def _csv_rows(text: str, source: str) -> list[Row]:
    """Rows keyed by their line; a malformed row holds its problems (the rest is still checked).

    One line is one row: a quoted field cannot run on over a line end (the csv module would
    let it, and an unbalanced quote would swallow every learner after it into one name)."""
    header: list[str] | None = None
    rows: list[Row] = []
    for number, line in enumerate(LINE_END.split(text), 1):
        where = f"{source} row {number}"
        fields, bad = split_line(line)
        if not bad and not any(f.strip() for f in fields):
            continue  # a blank line, or only commas (what a spreadsheet leaves below the data)
        if header is None:
            header = _header(fields, bad, where)
            continue
        column = [*header, *(f"column {i + 1}" for i in range(len(header), len(fields)))]
        if bad:  # the fields cannot be trusted, nor counted: say what is wrong and go on
            rows.append((where, Unread(tuple(f"{column[i]}: {message}" for i, message in bad))))
            continue
        if len(fields) != len(header):
            expected = f"expected {len(header)} fields ({', '.join(header)}), got {len(fields)}"
            hint = (
                ' (a field holding a comma is quoted: "Lovelace, Ada")' if len(fields) > len(header) else ""
            )
            rows.append((where, Unread((f"malformed row: {expected}{hint}",))))
            continue
        rows.append((where, dict(zip(header, fields, strict=True))))
    if header is None:
        raise UsageError(f"{source}: empty roster (no header, no learners)")
    return rows


def _header(fields: list[str], bad: list[tuple[int, str]], where: str) -> list[str]:
    """The column names; a bad header makes every row unreadable, so it stops here."""
    if bad:
        raise UsageError("\n".join(f"{where}: column {i + 1}: {message}" for i, message in bad))
    header = [h.strip().lower() for h in fields]
    problems = []
    if "email" not in header:
        separator = next((name for c, name in ((";", "';'"), ("\t", "tabs")) if c in fields[0]), None)
        hint = f" (columns are separated by commas, not {separator})" if separator else ""
        problems.append(f"{where}: the header needs an 'email' column (got {', '.join(header)}){hint}")
    if unknown := [h for h in header if h not in COLUMNS]:
        problems.append(
            f"{where}: unknown column(s) {', '.join(repr(h) + did_you_mean(h, COLUMNS) for h in unknown)}; "
            f"allowed: {', '.join(COLUMNS)}"
        )
    if dupes := sorted({h for h in header if header.count(h) > 1}):
        problems.append(f"{where}: duplicate column(s) {', '.join(dupes)}")
    if problems:
        raise UsageError("\n".join(problems))
    return header


def split_line(line: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The fields of one CSV line (RFC 4180, one line per row) and what is wrong with its quotes,
    by field index: a quote never closed, a quote inside an unquoted field, text after a
    closing quote. Spaces around a quoted field are allowed."""
    fields: list[str] = []
    problems: list[tuple[int, str]] = []
    pos = 0
    while True:
        start = pos
        while pos < len(line) and line[pos] == " ":
            pos += 1
        if pos < len(line) and line[pos] == '"':
            value, closed_at = _quoted(line, pos)
            if closed_at is None:  # the rest of the line is inside the quote
                problems.append((len(fields), f"unbalanced quote: {_excerpt(line[pos:])} {UNCLOSED}"))
                return [*fields, value], problems
            end = _comma(line, closed_at)
            if line[closed_at:end].strip(" "):
                problems.append(
                    (len(fields), f"text after the closing quote: {_excerpt(line[pos:end])} {AFTER}")
                )
        else:
            end = _comma(line, start)
            value = line[start:end]
            if '"' in value:
                problems.append((len(fields), f"stray quote in {_excerpt(value.strip())} {STRAY}"))
        fields.append(value)
        if end == len(line):
            return fields, problems
        pos = end + 1


def _quoted(line: str, pos: int) -> tuple[str, int | None]:
    """The value of the quoted field opening at ``pos`` and where its closing quote ends (None: never)."""
    parts = []
    pos += 1
    while (quote := line.find('"', pos)) >= 0:
        parts.append(line[pos:quote])
        if not line.startswith('"', quote + 1):
            return "".join(parts), quote + 1
        parts.append('"')  # "" is a quote inside the field
        pos = quote + 2
    return "".join(parts) + line[pos:], None


def _comma(line: str, pos: int) -> int:
    """Where the field from ``pos`` ends: its comma, or the end of the line."""
    comma = line.find(",", pos)
    return len(line) if comma < 0 else comma


def _excerpt(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _TextLoader(yaml.SafeLoader):
    """Every scalar as the text written, so ``id: 0123`` stays '0123' (not 83) and ``name: No``
    stays 'No' (not False); only null is not text. A key given twice is an error, not the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key.value!r} given twice", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag.endswith((":null", ":merge"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_error(source: str, exc: yaml.YAMLError) -> str:
    """``roster.yaml line 4: not valid YAML: ...``: the line, not PyYAML's multi-line report."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return f"{source}: not valid YAML ({exc})"
    what = ": ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    return f"{source} line {mark.line + 1}: not valid YAML: {what} (column {mark.column + 1})"


def _yaml_rows(text: str, source: str) -> list[Row]:
    try:
        data = yaml.load(text, Loader=_TextLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise UsageError(_yaml_error(source, exc)) from None
    if isinstance(data, dict) and "learners" in data:
        data = data["learners"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise UsageError(f"{source}: expected a list of learners (or a mapping with 'learners:')")
    rows: list[Row] = []
    for i, item in enumerate(data):
        where = f"{source} learners[{i}]"
        if isinstance(item, str):
            item = {"email": item}
        if not isinstance(item, dict):
            rows.append((where, Unread((f"expected a mapping with 'email' (got {type(item).__name__})",))))
            continue
        rows.append((where, {str(k): v for k, v in item.items()}))
    return rows


def validate_rows(rows: Sequence[Row], *, source: str, cohort: str) -> list[RosterEntry]:
    """Every row a valid, unique learner whose namespace name and id are unique too; every
    problem is reported, in the order of the rows."""
    if not rows:
        raise UsageError(f"{source}: empty roster: no learners")
    problems: list[str] = []
    entries: list[RosterEntry] = []
    first_seen: dict[str, str] = {}
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    for where, raw in rows:
        if isinstance(raw, Unread):
            problems += [f"{where}: {p}" for p in raw.problems]
            continue
        row, invisible = _clean(raw) if isinstance(raw, dict) else (raw, [])
        if invisible:
            problems += [f"{where}: {p}" for p in invisible]
            continue
        try:
            entry = RosterEntry.model_validate(row)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(f"{where}: {field}: {_friendly(err, row)}")
            continue
        here = where.removeprefix(f"{source} ")
        key = normalise_email(entry.email)
        if key in first_seen:
            problems.append(f"{where}: duplicate learner {entry.email} (first seen on {first_seen[key]})")
            continue
        first_seen[key] = here
        name = learner_name(cohort, entry.email)
        if name in names:  # practically impossible (40-bit hash), but never silently merged
            problems.append(f"{where}: {entry.email} maps to the same namespace as {names[name]}")
            continue
        names[name] = entry.email
        if entry.id is not None:
            # One student under two e-mails: their grades would land twice on one gradebook line.
            if entry.id in ids:
                problems.append(f"{where}: id: {entry.id!r} is also the id of {ids[entry.id]}")
                continue
            ids[entry.id] = here
        entries.append(entry.model_copy(update={"email": key}))
    if problems:
        raise UsageError("\n".join(problems))
    return entries


def _clean(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``row`` with spaces around each text trimmed (empty -> None), and a problem per field holding
    a character no one can see: refused, not trimmed, wherever it is (a name ``Ada\\n`` is a
    quote gone wrong)."""
    clean: dict[str, Any] = {}
    problems = []
    for field, value in row.items():
        if isinstance(value, str):
            if found := invisible(value, allowed=JOINERS if field == "name" else frozenset()):
                problems.append(f"{field}: {value!r} contains {found}")
                continue
            value = value.strip() or None
        clean[field] = value
    return clean, problems


def invisible(text: str, *, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first character of ``text`` no one can see, described (``a tab``), or None."""
    for char in text:
        if char not in allowed and unicodedata.category(char) in INVISIBLE:
            what = unicodedata.name(char, "control character").lower()
            return NAMED.get(char) or f"{what} (U+{ord(char):04X})"
    return None


def _friendly(err: Any, row: dict[str, Any]) -> str:
    if err["type"] == "missing" or err.get("input", "") is None:
        return "required"
    if err["type"] == "string_pattern_mismatch":
        return f"not an e-mail address: {row.get('email')!r}"
    if err["type"] == "extra_forbidden":
        return f"unknown field{did_you_mean(str(err['loc'][-1]), COLUMNS)}; allowed: {', '.join(COLUMNS)}"
    if err["type"] == "string_type":
        return f"expected text, got {type(err['input']).__name__}"
    return str(err["msg"])
