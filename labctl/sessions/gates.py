"""Whether a learner may start or check a lab, and when a session ends: pure rules, no API calls.

Every refusal is a sentence that says why and what to do, shown to the learner as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection

from labctl.api.labs import LEVELS, LabFile

CHECK_REFUSED = "check refused: "  # how the controller answers a check it will not run
INSTRUCTOR_HINT = "ask your instructor (they can start it for you with --override)"


def level_rank(level: str) -> int:
    return LEVELS.index(level)


def start_refusal(
    lab: LabFile, *, cohort_level: str, passed: Collection[str], override: bool = False
) -> str | None:
    """Why the learner may not start ``lab`` (None: they may). ``passed``: lab ids they passed."""
    if override:
        return None
    if level_rank(lab.level) > level_rank(cohort_level):
        return (
            f"{lab.id} is {'an' if lab.level[0] in 'aeiou' else 'a'} {lab.level} lab and your cohort is "
            f"at {cohort_level} level: "
            f"levels are taken in order; {INSTRUCTOR_HINT}"
        )
    missing = [p for p in lab.prerequisites if p not in passed]
    if missing:
        return (
            f"{lab.id} needs {', '.join(missing)} passed first: "
            f"labctl lab start {missing[0]}; or {INSTRUCTOR_HINT}"
        )
    return None


def expires_at(started: dt.datetime, lab: LabFile) -> dt.datetime:
    return started + dt.timedelta(seconds=lab.duration_seconds())


def cooldown_left(last_check: dt.datetime | None, now: dt.datetime, cooldown_s: int) -> float:
    """Seconds the learner must still wait before the next check (0: go)."""
    if last_check is None:
        return 0.0
    return max(0.0, cooldown_s - (now - last_check).total_seconds())


def seed(learner: str, lab_id: str) -> int:
    """A learner's data seed for a lab: stable, different per learner (a friend's answer fails)."""
    return int(hashlib.sha256(f"{learner}/{lab_id}".encode()).hexdigest()[:8], 16) % 1_000_000


def check_refused(message: str) -> bool:
    """Whether a session's message answers a check request by refusing it."""
    return message.startswith(CHECK_REFUSED)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
