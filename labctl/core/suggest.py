"""Did-you-mean hints for a name the user got slightly wrong: a check, a grader, a key, a lab.

One helper, so every message reads alike. Standard library only: graders and the CLI's
help path import it too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6  # difflib's default: close enough to be a typo, not just a shared prefix


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``, or None when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=CUTOFF)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing when none is close."""
    close = closest(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def did_you_mean_lab(lab_id: str, known: Iterable[str]) -> str:
    """:func:`did_you_mean` for lab ids (``<level>/<name>``), matched by name: the level prefix
    every id shares would make any two labs of a level look alike. A name given without its
    level, or with the wrong one, still finds the lab (``first`` -> ``foundation/first``)."""
    level, _, name = lab_id.rpartition("/")
    by_name: dict[str, list[str]] = {}
    for lab in sorted(set(known)):
        by_name.setdefault(lab.rpartition("/")[2], []).append(lab)
    close = closest(name, by_name)
    if close is None:
        return ""
    labs = [lab for lab in by_name[close] if lab.startswith(f"{level}/")] or by_name[close]
    # One name under several levels, none of them the one typed: name them all rather than guess.
    return f" (did you mean {' or '.join(map(repr, labs))}?)"
