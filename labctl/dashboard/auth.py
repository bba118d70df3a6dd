"""Who may look: each viewer's Kubernetes token, asked of the API server. No password store of ours.

A viewer brings a bearer token (the ``Authorization`` header, or the login form's cookie). The
API server says who it belongs to (TokenReview) and whether that user may list Learners
(SubjectAccessReview): the right `labctl cohort status` needs. No token, or one the server does
not recognise: 401. A user without the right: 403. Answers are kept for a minute, keyed by a hash
of the token, so a page's requests cost one review, not one each; the token itself is never kept
or logged.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from labctl.core.labels import GROUP
from labctl.kube import Kube

COOKIE = "labctl_dashboard_token"
CACHE_SECONDS = 60.0
RESOURCE = {"group": GROUP, "resource": "learners", "verb": "list"}


@dataclass(frozen=True)
class Decision:
    status: int  # 200, 401 or 403
    user: str = ""
    reason: str = ""


def token_review(token: str) -> dict[str, Any]:
    """The TokenReview asking who ``token`` belongs to."""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}


def access_review(user: dict[str, Any]) -> dict[str, Any]:
    """The SubjectAccessReview asking whether ``user`` (a TokenReview's userInfo) may list Learners."""
    spec: dict[str, Any] = {"user": user.get("username", ""), "resourceAttributes": dict(RESOURCE)}
    for key in ("groups", "uid", "extra"):
        if user.get(key):
            spec[key] = user[key]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class Authoriser:
    """Decides for a token, asking the API server with the dashboard's own identity."""

    def __init__(self, kube: Kube, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.kube = kube
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Decision]] = {}
        self._lock = threading.Lock()

    def decide(self, token: str | None) -> Decision:
        if not token:
            return Decision(401, reason="no token: sign in with a Kubernetes bearer token")
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            held = self._cache.get(key)
            if held and held[0] > now:
                return held[1]
        decision = self._review(token)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + self.cache_seconds, decision)
        return decision

    def _review(self, token: str) -> Decision:
        review = self.kube.create(token_review(token))
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return Decision(401, reason="the API server does not recognise this token")
        user = status.get("user") or {}
        name = str(user.get("username") or "")
        allowed = (self.kube.create(access_review(user)).get("status") or {}).get("allowed")
        if not allowed:
            return Decision(403, name, f"{name} may not list learners ({RESOURCE['resource']}.{GROUP})")
        return Decision(200, name)


def bearer(headers: Any, cookies: Any) -> str | None:
    """The token a request carries: ``Authorization: Bearer ...``, else the login cookie."""
    header = str(headers.get("authorization") or "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return cookies.get(COOKIE) or None
