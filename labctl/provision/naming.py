"""Learner identity -> Kubernetes names: valid, stable and collision-free.

``Alice.Smith@uni.edu`` and ``alice_smith@uni.edu`` slug alike, so every name ends with a
hash of the normalised e-mail: the slug is for people reading ``kubectl get ns``, the hash
makes names distinct. The name depends only on (cohort, e-mail), so it never changes when
the roster is reordered or re-applied.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

NAMESPACE_MAX = 63
HASH_LEN = 10  # 40 bits: a collision inside one roster is checked, not hoped away


def normalise_email(email: str) -> str:
    """The identity of a learner: NFKC, trimmed, lower-case."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def slug(text: str) -> str:
    """ASCII, lower-case, runs of anything else turned into one '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def email_hash(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()[:HASH_LEN]


def learner_name(cohort: str, email: str) -> str:
    """The Learner object's name, which is also its namespace: ``<cohort>-<local part>-<hash>``."""
    local = slug(normalise_email(email).split("@", 1)[0]) or "learner"
    room = NAMESPACE_MAX - len(cohort) - HASH_LEN - 2
    local = local[:room].strip("-") or "learner"
    return f"{cohort}-{local}-{email_hash(email)}"


def learner_namespace(learner: dict[str, Any]) -> str:
    """A Learner object's namespace: its status says; until then, it bears the Learner's name."""
    return str((learner.get("status") or {}).get("namespace") or learner["metadata"]["name"])
