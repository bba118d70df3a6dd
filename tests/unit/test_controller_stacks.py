"""The controller's own watch of stack Deployments: what it keeps, and whom it tells."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from labctl.controller.stacks import SELECTOR, StackWatch, pick
from labctl.kube import KubeError, Listing, _lines

T = TypeVar("T")


def deployment(
    namespace: str, name: str, stack: str, *, ready: int | None, replicas: int = 1
) -> dict[str, Any]:
    status = {} if ready is None else {"readyReplicas": ready}
    meta = {
        "namespace": namespace,
        "name": name,
        "labels": {"labctl.dev/stack": stack},
        "resourceVersion": "7",
    }
    return {"metadata": meta, "spec": {"replicas": replicas}, "status": status}


def test_the_selector_asks_the_server_for_labctls_stack_deployments_only() -> None:
    assert SELECTOR == "labctl.dev/stack,app.kubernetes.io/managed-by=labctl"


def test_pick_keeps_where_which_stack_and_whether_ready() -> None:
    assert pick(deployment("ada", "mlflow", "mlflow", ready=1)) == ("ada", "mlflow", "mlflow", True)
    assert pick(deployment("ada", "mlflow", "mlflow", ready=None)) == ("ada", "mlflow", "mlflow", False)
    assert pick(deployment("ada", "minio", "minio", ready=1, replicas=2))[3] is False
    assert pick(deployment("ada", "off", "minio", ready=None, replicas=0))[3] is True


class FakeKube:
    """A list, the given watch events, 410 Gone, then a re-list (``relisted``) and watches that end."""

    def __init__(
        self,
        listed: list[dict[str, Any]],
        events: list[tuple[str, dict[str, Any]]],
        relisted: list[dict[str, Any]] | None = None,
    ) -> None:
        self.listed, self.events = listed, events
        self.relisted = listed if relisted is None else relisted
        self.lists = 0
        self.selectors: list[str | None] = []
        self.done = threading.Event()

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        label_selector: str | None = None,
        pick: Callable[[dict[str, Any]], T],
    ) -> Listing[T]:
        self.lists += 1
        self.selectors.append(label_selector)
        items = Listing(pick(obj) for obj in (self.listed if self.lists == 1 else self.relisted))
        items.resource_version = "5"
        return items

    def watch(self, api_version: str, kind: str, **kwargs: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        self.selectors.append(kwargs["label_selector"])
        if self.lists == 1:
            yield from self.events
            raise KubeError("watch Deployment: too old resource version", status=410)
        self.done.set()
        threading.Event().wait(0.05)
        return


def run_watch(kube: FakeKube) -> tuple[StackWatch, list[str]]:
    changed: list[str] = []

    async def main() -> StackWatch:
        watch = StackWatch(kube)  # type: ignore[arg-type]
        watch.start(asyncio.get_running_loop(), changed.append)
        await watch.listed()
        while not kube.done.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the last notifications are delivered through the loop
        watch.stop()
        return watch

    return asyncio.run(main()), changed


def test_the_watch_tracks_readiness_per_stack_and_names_the_namespaces_that_changed() -> None:
    kube = FakeKube(
        listed=[
            deployment("ada", "mlflow", "mlflow", ready=1),
            deployment("bob", "mlflow", "mlflow", ready=None),
        ],
        events=[
            ("MODIFIED", deployment("bob", "mlflow", "mlflow", ready=None)),  # status churn: no news
            ("BOOKMARK", {"metadata": {"resourceVersion": "9"}}),
            ("ADDED", deployment("ada", "minio", "minio", ready=None)),
            ("MODIFIED", deployment("bob", "mlflow", "mlflow", ready=1)),
            ("DELETED", deployment("ada", "mlflow", "mlflow", ready=1)),
        ],
        # what changed while the watch was down: ada's minio turned ready
        relisted=[
            deployment("ada", "minio", "minio", ready=1),
            deployment("bob", "mlflow", "mlflow", ready=1),
        ],
    )
    watch, changed = run_watch(kube)
    assert set(kube.selectors) == {SELECTOR}
    assert changed[:2] == ["ada", "bob"]  # the first list: every namespace is news
    assert changed[2:5] == ["ada", "bob", "ada"]  # then only what changed readiness or membership
    assert kube.lists == 2  # re-listed after 410 Gone: told of what differs from before
    assert changed[5:] == ["ada"]
    assert watch.ready_by_stack("ada") == {"minio": True}
    assert watch.ready_by_stack("bob") == {"mlflow": True}
    assert watch.ready_by_stack("nobody") == {}


def test_a_stack_is_ready_only_when_all_its_deployments_are() -> None:
    kube = FakeKube(
        listed=[deployment("ada", "a", "mlflow", ready=1), deployment("ada", "b", "mlflow", ready=0)],
        events=[],
    )
    watch, _ = run_watch(kube)
    assert watch.ready_by_stack("ada") == {"mlflow": False}


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]:
        yield from self.chunks


@pytest.mark.parametrize(
    "chunks",
    [
        (b'{"a": 1}\n{"b": 2}\n',),
        (b'{"a"', b': 1}\n{"b', b'": 2}'),
        (b'{"a": 1}\n\n', b'{"b": 2}\n'),
    ],
)
def test_watch_lines_are_whole_events_however_the_body_is_chunked(chunks: tuple[bytes, ...]) -> None:
    assert list(_lines(Chunks(*chunks))) == [b'{"a": 1}', b'{"b": 2}']
