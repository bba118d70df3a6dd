"""What ``Kube.apply`` counts as a change: content, not the server's bookkeeping."""

from __future__ import annotations

import copy
from typing import Any

from labctl.kube import _content

BEFORE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "x",
        "labels": {"a": "1"},
        "resourceVersion": "10",
        "managedFields": [{"manager": "labctl", "time": "2026-11-26T11:28:56Z"}],
    },
    "data": {"k": "v"},
    "status": {"observedGeneration": 1},
}


def changed(edit: Any, subresource: str | None = None) -> bool:
    after = copy.deepcopy(BEFORE)
    edit(after)
    return _content(BEFORE, subresource) != _content(after, subresource)


def test_bookkeeping_and_others_status_are_not_changes() -> None:
    assert not changed(lambda o: o["metadata"].update(resourceVersion="11"))
    assert not changed(lambda o: o["metadata"]["managedFields"][0].update(time="2026-11-26T11:28:57Z"))
    assert not changed(lambda o: o["status"].update(observedGeneration=2))


def test_content_changes_are() -> None:
    assert changed(lambda o: o["data"].update(k="w"))
    assert changed(lambda o: o["metadata"]["labels"].update(a="2"))
    assert changed(lambda o: o["status"].update(observedGeneration=2), subresource="status")
    assert not changed(lambda o: o["data"].update(k="w"), subresource="status")
