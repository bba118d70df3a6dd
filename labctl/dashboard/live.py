"""Live updates: the watches' changes fanned out to each open page as Server-Sent Events.

The watch threads tell the hub of every change; the hub hands it to the event loop, which queues it
for the pages that show it (a cohort's grid, a learner's page, the cohorts list). Each page's stream
waits briefly to gather a burst of changes into one message, so a check that touches the session
and records an attempt costs a viewer one update, not two.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from labctl.dashboard.store import Change, Store

GATHER_SECONDS = 0.15
KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 1000


@dataclass(eq=False)
class Viewer:
    """One open page: what it shows, and the changes waiting for it."""

    cohort: str | None = None
    learner: str | None = None
    queue: asyncio.Queue[Change] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def wants(self, change: Change) -> bool:
        if change.cohort is None and change.learner is None:
            return True  # a fresh list: anything may have changed
        if self.learner is not None:
            return change.learner == self.learner
        if self.cohort is not None:
            return change.cohort == self.cohort
        return change.kind in ("Cohort", "Learner")


class Hub:
    """Fans the store's changes out to viewers; made in the app's event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.viewers: set[Viewer] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self) -> None:
        """Start listening; call from the running event loop."""
        self.loop = asyncio.get_running_loop()
        self.store.subscribe(self._from_thread)

    def _from_thread(self, change: Change) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fan_out, change)

    def _fan_out(self, change: Change) -> None:
        for viewer in self.viewers:
            if viewer.wants(change):
                try:
                    viewer.queue.put_nowait(change)
                except asyncio.QueueFull:
                    viewer.overflowed = True  # too far behind: it reloads instead

    async def stream(
        self, viewer: Viewer, render: Callable[[list[Change], bool], dict[str, Any]]
    ) -> AsyncIterator[str]:
        """The event stream of one page: ``render(changes, overflowed)`` is each message's data."""
        self.viewers.add(viewer)
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    first = await asyncio.wait_for(viewer.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                await asyncio.sleep(GATHER_SECONDS)
                changes = [first]
                while not viewer.queue.empty():
                    changes.append(viewer.queue.get_nowait())
                overflowed, viewer.overflowed = viewer.overflowed, False
                yield f"data: {json.dumps(render(changes, overflowed))}\n\n"
        finally:
            self.viewers.discard(viewer)
