"""What every handler shares: the API connection, the credentials key, stack settings."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import kopf

from labctl.controller.apiserver import ApiServerWatch
from labctl.controller.refresh import Seen, StatusWriter
from labctl.controller.stacks import StackWatch
from labctl.grading.reach import PortForwards, in_cluster
from labctl.kube import Kube
from labctl.provision.stacks import StackSettings

log = logging.getLogger(__name__)


class Learners:
    """Learners as last seen, and status refreshes run for them outside kopf's handlers.

    One instance is shared by every copy of the memo (kopf gives each object a shallow copy),
    and only the event loop touches it.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Seen] = {}
        self._context: contextvars.Context | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def seen(self, seen: Seen, *, gone: bool) -> None:
        """Remember the learner; called in a kopf handler, whose context lets ``spawn`` post Events."""
        if self._context is None:
            self._context = contextvars.copy_context()
        if gone:
            self._by_name.pop(seen.name, None)
        else:
            self._by_name[seen.name] = seen

    def get(self, name: str) -> Seen | None:
        return self._by_name.get(name)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the event loop, able to post Events as a handler does."""
        context = self._context.copy() if self._context is not None else None  # one per task
        task = asyncio.get_running_loop().create_task(work, context=context)
        self._tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # as kopf does for event handlers
            log.error("status refresh failed", exc_info=task.exception())


@dataclass
class Memo:
    kube: Kube
    key: bytes
    stack_settings: StackSettings | None = None
    status: StatusWriter = field(init=False)  # status writes, apart from reconciles
    stacks: StackWatch = field(init=False)  # stack Deployments' readiness, from a watch of our own
    learners: Learners = field(init=False, default_factory=Learners)
    api_server: ApiServerWatch = field(init=False)  # its endpoints, for learners' egress policies
    # How lab checks reach learners' Services: cluster DNS in a pod, else port-forwards.
    reach: Callable[[str], str] = field(init=False)

    def __post_init__(self) -> None:
        self.status = StatusWriter(self.kube)
        self.stacks = StackWatch(self.kube)
        self.api_server = ApiServerWatch(self.kube)
        self.reach = (lambda url: url) if in_cluster() else PortForwards(self.kube)

    def connection_info(self) -> kopf.ConnectionInfo:
        """kopf's own connection, from the same kubeconfig/context labctl was given."""
        conf = self.kube.configuration
        header = conf.get_api_key_with_prefix("BearerToken") or conf.get_api_key_with_prefix("authorization")
        scheme, _, token = (header or "").partition(" ")
        return kopf.ConnectionInfo(
            server=conf.host,
            ca_path=conf.ssl_ca_cert,
            insecure=not conf.verify_ssl,
            scheme=scheme or None,
            token=token or None,
            certificate_path=conf.cert_file,
            private_key_path=conf.key_file,
        )
