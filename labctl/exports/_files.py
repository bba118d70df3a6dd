"""Turning names a learner chose into paths under a dump's folder, and writing files there.

Every name that becomes a path (an S3 key, an artifact path, a model name, an id) comes from
the learner's servers, so none is trusted: :func:`relative_path` refuses anything that is not a
plain relative path, :func:`component` encodes a name into one safe path segment, and
:func:`inside` checks the final path once more after symlinks are resolved.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from labctl.core.errors import LabctlError

MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux file systems
MAX_PATH_BYTES = 3000  # well under PATH_MAX (4096) once the dump's own prefix is added
_SAFE = "-_.~ +=,@()[]{}!$&'"  # left as they are by component(); the rest is %-encoded


class DumpError(LabctlError):
    """Saving a learner's stack data failed; the message names the learner, server and object."""


def component(name: str) -> str:
    """One path segment for ``name``, the same every time: %-encoded, never ``.``/``..``/empty.

    ``"iris-clf"`` stays ``iris-clf``; ``"team/model"`` becomes ``team%2Fmodel``. Names too long
    for a file name keep a readable prefix and end in a hash of the whole name.
    """
    encoded = quote(name, safe=_SAFE)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]  # no ".", "..", or hidden files
    if not encoded:
        encoded = "%"  # the empty name; "%" alone is never the encoding of anything else
    if len(encoded.encode()) > MAX_SEGMENT_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        encoded = f"{encoded[:200]}~{digest}"
    return encoded


def relative_path(path: str, *, allow_trailing_slash: bool = False) -> tuple[str, ...] | None:
    """The segments of ``path`` if it is a plain relative path that stays inside a folder, else None.

    Refused: empty, absolute (``/x``), empty segments (``a//b``), ``.`` or ``..`` segments, NUL,
    a segment longer than a file name may be, or a path longer than ``MAX_PATH_BYTES``.
    """
    if allow_trailing_slash and path.endswith("/"):
        path = path[:-1]
    if not path or "\0" in path or len(path.encode()) > MAX_PATH_BYTES:
        return None
    segments = tuple(path.split("/"))
    for segment in segments:
        if segment in ("", ".", "..") or len(segment.encode()) > MAX_SEGMENT_BYTES:
            return None
    return segments


def inside(root: Path, segments: tuple[str, ...]) -> Path:
    """``root/seg/...``, checked to resolve inside ``root`` (a symlink in the way would not)."""
    path = root.joinpath(*segments)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise DumpError(f"refusing to write {path}: it resolves outside {root}")
    return path


def fresh_folder(target: Path, what: str) -> None:
    """Make ``target``; refuse one that already has files (a dump never mixes with another)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DumpError(f"{what}: {target} already exists and is not an empty folder")
    target.mkdir(parents=True, exist_ok=True)


def json_text(data: Any) -> str:
    """Sorted keys, two-space indent, trailing newline: a re-export diffs line by line."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(data), encoding="utf-8")
