"""Label keys and naming rules shared by every part of labctl."""

from __future__ import annotations

import re

GROUP = "labctl.dev"
FIELD_MANAGER = "labctl"
MANAGED_BY = {"app.kubernetes.io/managed-by": "labctl"}

# RFC 1123 label: what a Kubernetes namespace or node-name prefix must be.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def dns_label_problem(value: str, *, max_len: int = 63) -> str | None:
    """Why ``value`` is not a valid DNS-1123 label, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > max_len:
        return f"must be at most {max_len} characters (got {len(value)})"
    if not DNS_LABEL.match(value):
        return "must be lower-case letters, digits and '-', starting and ending with a letter or digit"
    return None
