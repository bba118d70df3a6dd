"""Human durations as kubectl and Go print them: 90s, 30m, 8h, 14d, 1h30m."""

from __future__ import annotations

import re
from datetime import timedelta

from labctl.core.errors import UsageError

_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, flag: str) -> timedelta:
    """``14d`` -> 14 days. Raise a UsageError naming ``flag`` on anything else."""
    value = text.strip().lower()
    if not value or _PART.sub("", value) or not _PART.search(value):
        raise UsageError(f"{flag}: invalid duration {text!r} (use e.g. 90s, 30m, 8h, 14d, 1h30m)")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
    if seconds <= 0:
        raise UsageError(f"{flag}: duration must be positive (got {text!r})")
    return timedelta(seconds=seconds)
