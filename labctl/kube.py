"""The one module that talks to the Kubernetes API server.

Everything else in labctl hands plain dicts to :class:`Kube`. This module owns client
construction from ``--kubeconfig``/``--context``, server-side apply with labctl's field
manager, retries with backoff on 429/5xx (honouring ``Retry-After``) and on dropped
connections, and errors whose text names the object and never carries a credential.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from labctl.core.errors import LabctlError
from labctl.core.labels import FIELD_MANAGER
from labctl.core.retry import AGAIN, Retry, RetryPolicy


def _loads(data: bytes) -> Any:
    return orjson.loads(data)  # several times faster than json at decoding lists and watch events


T = TypeVar("T")
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
MAX_IN_FLIGHT = 32  # concurrent requests per connection (and the size of its connection pool)
Action = Literal["created", "configured", "unchanged", "applied"]


class KubeError(LabctlError):
    """An API call failed. ``status`` is the HTTP status, 0 when the server was unreachable."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ObjectRef:
    """Enough to name an object in messages: ``Pod team-a/web``."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta.get("name", ""), meta.get("namespace"))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class ApplyResult:
    object: dict[str, Any]
    action: Action


def _api_message(exc: ApiException) -> str:
    """The server's own message from a Status body, without headers (they may hold tokens)."""
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def with_retries(call: Callable[[], T], *, what: str, attempts: int = 6, base_delay: float = 0.2) -> T:
    """Run ``call`` under :mod:`labctl.core.retry`'s policy (429/5xx honouring ``Retry-After``,
    dropped connections); the last failure becomes a :class:`KubeError` naming ``what``."""
    policy = RetryPolicy(attempts=attempts, first_delay_s=base_delay)

    def judge(exc: Exception) -> Retry | None:
        if isinstance(exc, ApiException):
            headers = exc.headers or {}
            return policy.judge_status(
                exc.status or 0, headers.get("Retry-After") or headers.get("retry-after")
            )
        # urllib3's errors (timeouts included) are not the standard library's: all are the connection's.
        return AGAIN if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError) else None

    try:
        return policy.run(call, judge=judge)
    except ApiException as exc:
        raise KubeError(
            f"{what}: {_api_message(exc)} (HTTP {exc.status})",
            status=exc.status or 0,
            reason=str(exc.reason or ""),
        ) from None
    except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
        raise KubeError(f"{what}: API server unreachable ({type(exc).__name__})") from None


class Kube:
    """A connection to one cluster. Build it with :meth:`connect`."""

    def __init__(self, api_client: k8s_client.ApiClient, namespace: str = "default") -> None:
        self.api_client = api_client
        # Every request holds a slot; the connection pool is as big as the slots. Without the
        # bound, hundreds of reconciling threads overflow the pool, and each discarded
        # connection costs a new TLS handshake: CPU in the client, 429s from the server.
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.namespace = namespace  # the context's namespace, as kubectl would use it
        self._dynamic: DynamicClient | None = None
        self._bulk: ThreadPoolExecutor | None = None  # apply_many's, made on first use
        self._bulk_lock = threading.Lock()

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """Connect as kubectl would: ``--kubeconfig``, ``$KUBECONFIG``, ~/.kube/config, in-cluster."""
        configuration = k8s_client.Configuration()
        configuration.connection_pool_maxsize = MAX_IN_FLIGHT
        namespace = "default"
        try:
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
            contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active)
            namespace = (chosen.get("context") or {}).get("namespace") or "default"
        except (k8s_config.ConfigException, FileNotFoundError, TypeError) as exc:
            if kubeconfig or context:
                raise LabctlError(f"cannot load kubeconfig {kubeconfig or '(default)'}: {exc}") from None
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
                with contextlib.suppress(OSError):
                    namespace = Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or namespace
            except k8s_config.ConfigException:
                raise LabctlError(
                    "no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, "
                    "or start one with `labctl sim up`"
                ) from None
        return cls(k8s_client.ApiClient(configuration), namespace)

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = with_retries(lambda: DynamicClient(self.api_client), what="API discovery")
        return self._dynamic

    def _slotted(self, call: Callable[[], T]) -> Callable[[], T]:
        """``call`` run while holding one of the connection's request slots."""

        def run() -> T:
            with self._slots:
                return call()

        return run

    def forget_discovery(self) -> None:
        """Drop cached API discovery, e.g. after installing CRDs."""
        self._dynamic = None

    def core(self) -> k8s_client.CoreV1Api:
        return k8s_client.CoreV1Api(self.api_client)

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise KubeError(f"the server has no resource kind {kind} in {api_version}", status=404) from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The object as a dict, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        ref = ObjectRef(api_version, kind, name, namespace)
        try:
            return with_retries(
                self._slotted(lambda: resource.get(name=name, namespace=namespace).to_dict()),
                what=f"get {ref}",
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict]:
        resource = self._resource(api_version, kind)
        result = with_retries(
            self._slotted(
                lambda: resource.get(
                    namespace=namespace, label_selector=label_selector, field_selector=field_selector
                )
            ),
            what=f"list {kind}" + (f" in {namespace}" if namespace else ""),
        )
        return [item.to_dict() for item in result.items]

    def apply(
        self,
        obj: dict[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        subresource: str | None = None,
        detect_changes: bool = True,
    ) -> ApplyResult:
        """Server-side apply ``obj``; tell whether the server created, changed or kept it.

        ``detect_changes=False`` skips the GET that tells those apart (action "applied"):
        bulk reconcilers that track their own hashes do not need it.
        """
        ref = ObjectRef.of(obj)
        resource = self._resource(ref.api_version, ref.kind)
        if subresource:
            resource = resource.subresources[subresource]
        before = self.get(ref.api_version, ref.kind, ref.name, ref.namespace) if detect_changes else None
        send = self._applier(resource, obj, field_manager=field_manager, force=force, decode=True)
        result = with_retries(self._slotted(lambda: send().to_dict()), what=f"apply {ref}")
        if not detect_changes:
            action: Action = "applied"
        elif before is None:
            action = "created"
        elif before["metadata"]["resourceVersion"] == result["metadata"]["resourceVersion"]:
            action = "unchanged"  # a no-op apply does not bump resourceVersion...
        elif _content(before, subresource) == _content(result, subresource):
            # ...except once after another manager wrote the object (e.g. the status of a
            # ValidatingAdmissionPolicy): the server re-sorts managedFields and stores that.
            action = "unchanged"
        else:
            action = "configured"
        return ApplyResult(result, action)

    def create(self, obj: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Create ``obj`` as given (POST). For the rare kinds whose status is set on create, e.g. Nodes."""
        ref = ObjectRef.of(obj)
        resource = self._resource(ref.api_version, ref.kind)
        return with_retries(
            self._slotted(
                lambda: resource.create(
                    body=obj, namespace=ref.namespace, field_manager=field_manager
                ).to_dict()
            ),
            what=f"create {ref}",
        )

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch, e.g. of a ``status`` we own."""
        send, what = self._merge_patcher(api_version, kind, name, body, namespace, subresource, decode=True)
        return dict(with_retries(self._slotted(lambda: send().to_dict()), what=what))

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete an object; False when it was already gone."""
        resource = self._resource(api_version, kind)
        ref = ObjectRef(api_version, kind, name, namespace)
        try:
            with_retries(
                self._slotted(lambda: resource.delete(name=name, namespace=namespace)), what=f"delete {ref}"
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(
        self,
        api_version: str,
        kind: str,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 30,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) pairs from a watch across all namespaces; ends after the timeout.

        Callers re-list and watch again when it ends (or on 410 Gone): a watch is a hint, the
        list is the truth.
        """
        resource = self._resource(api_version, kind)
        try:
            for event in resource.watch(resource_version=resource_version, timeout=timeout_seconds):
                yield str(event["type"]), dict(event["raw_object"])
        except ApiException as exc:
            raise KubeError(f"watch {kind}: {_api_message(exc)}", status=exc.status or 0) from None
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise KubeError(f"watch {kind}: API server unreachable ({type(exc).__name__})") from None

    def wait_for(
        self, condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25
    ) -> T:
        """Poll ``condition`` until it returns something truthy; raise naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise LabctlError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def port_forward(self, namespace: str, pod: str, port: int) -> Any:
        """A stream to ``port`` of ``pod`` through the API server and the pod's kubelet, as
        `kubectl port-forward` opens per connection. Returns the client's PortForward: its
        ``socket(port)`` carries the bytes, ``close()`` ends it."""
        from kubernetes.stream import portforward

        # Its own ApiClient: kubernetes.stream swaps the client's call_api for a websocket call
        # while it runs, and any other thread's request through that client would go there too.
        api = k8s_client.CoreV1Api(k8s_client.ApiClient(self.api_client.configuration))

        def open_stream() -> Any:
            return portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))

        return with_retries(open_stream, what=f"port-forward to pod {namespace}/{pod}:{port}")

    def server_version(self) -> str:
        info = with_retries(
            self._slotted(lambda: k8s_client.VersionApi(self.api_client).get_code()), what="get version"
        )
        return str(info.git_version)

    def list_picked(
        self,
        api_version: str,
        kind: str,
        pick: Callable[[dict[str, Any]], T],
        *,
        label_selector: str | None = None,
        page_size: int = 250,
    ) -> tuple[Sequence[T], str]:
        """Every object of a list reduced by ``pick`` as it is decoded, and the list's resourceVersion.

        For watchers that keep a few fields of many objects: pages bound what is decoded at
        once, and no object outlives its page (``list`` keeps them all, twice over).
        """
        path = self._resource(api_version, kind).path()
        picked: builtins.list[T] = []
        token: str | None = None
        while True:
            params = {"label_selector": label_selector, "limit": page_size, "_continue": token}
            get = partial(self._raw_data, path, **params)
            page = _loads(with_retries(self._slotted(get), what=f"list {kind}"))
            picked.extend(pick(item) for item in page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return picked, str(meta.get("resourceVersion") or "")

    def watch_raw(
        self,
        api_version: str,
        kind: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) pairs of a label-selected watch across all namespaces.

        The selector is sent to the API server, so only matching objects cross the wire; each
        line is decoded as plain JSON, with no client model around it. Bookmarks are asked for
        (type BOOKMARK: only the resourceVersion to resume from). A watch the server ended
        with an error, e.g. 410 Gone when ``resource_version`` is too old, raises KubeError
        with that status: re-list, then watch again.
        """
        path = self._resource(api_version, kind).path()
        try:
            response = self._raw_get(
                path,
                label_selector=label_selector,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                _request_timeout=(10, timeout_seconds + 30),
            )
        except ApiException as exc:
            raise KubeError(f"watch {kind}: {_api_message(exc)}", status=exc.status or 0) from None
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise KubeError(f"watch {kind}: API server unreachable ({type(exc).__name__})") from None
        try:
            for line in _lines(response):
                event = _loads(line)
                kind_of_event, obj = str(event.get("type")), event.get("object") or {}
                if kind_of_event == "ERROR":
                    raise KubeError(f"watch {kind}: {obj.get('message')}", status=int(obj.get("code") or 0))
                yield kind_of_event, obj
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise KubeError(f"watch {kind}: API server unreachable ({type(exc).__name__})") from None
        finally:
            response.release_conn()

    def apply_quietly(
        self, obj: dict[str, Any], *, field_manager: str = FIELD_MANAGER, force: bool = True
    ) -> None:
        """Server-side apply ``obj``, dropping the server's answer undecoded.

        For bulk reconcilers that use none of the answers: decoding each applied object into
        the client's models cost the controller more CPU than anything else it did.
        """
        ref = ObjectRef.of(obj)
        resource = self._resource(ref.api_version, ref.kind)
        send = self._applier(resource, obj, field_manager=field_manager, force=force, decode=False)
        with_retries(self._slotted(lambda: _drained(send())), what=f"apply {ref}")

    def apply_many(self, objects: Sequence[dict[str, Any]]) -> int:
        """Apply many objects quietly and concurrently; returns the count.

        Every caller shares one pool as big as the connection's request slots, rather than
        starting threads of its own per call (a reconcile per learner did, hundreds at once).
        """
        if len(objects) <= 1:
            for obj in objects:
                self.apply_quietly(obj)
            return len(objects)
        with self._bulk_lock:
            if self._bulk is None:
                self._bulk = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="apply")
            pool = self._bulk
        for _ in pool.map(self.apply_quietly, objects):
            pass
        return len(objects)

    def patch_quietly(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> None:
        """A JSON merge patch, like :meth:`patch`, dropping the server's answer undecoded."""
        send, what = self._merge_patcher(api_version, kind, name, body, namespace, subresource, decode=False)
        with_retries(self._slotted(lambda: _drained(send())), what=what)

    def _applier(
        self, resource: Any, obj: dict[str, Any], *, field_manager: str, force: bool, decode: bool
    ) -> Callable[[], Any]:
        """The server-side apply request of ``obj``; ``decode=False`` leaves the answer undecoded."""
        # NB: serialised here as UTF-8 JSON. The client would json.dumps() with ASCII escapes, and the
        # API server's YAML decoder refuses the surrogate-pair escapes of characters beyond the BMP
        # (an emoji in a lab's README): "found invalid Unicode character escape code".
        return partial(
            self.dynamic.server_side_apply,
            resource,
            body=json.dumps(obj, ensure_ascii=False).encode(),
            name=obj["metadata"]["name"],
            namespace=obj["metadata"].get("namespace"),
            field_manager=field_manager,
            force_conflicts=force,
            serialize=decode,
        )

    def _merge_patcher(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: dict[str, Any],
        namespace: str | None,
        subresource: str | None,
        *,
        decode: bool,
    ) -> tuple[Callable[[], Any], str]:
        """The JSON merge patch request and what it is, for errors; ``decode=False`` leaves the
        answer undecoded."""
        resource = self._resource(api_version, kind)
        if subresource:
            resource = resource.subresources[subresource]
        send = partial(
            self.dynamic.patch,
            resource,
            body=body,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            serialize=decode,
        )
        what = f"patch {ObjectRef(api_version, kind, name, namespace)}"
        return send, what + (f" {subresource}" if subresource else "")

    def _raw_get(self, path: str, **params: Any) -> Any:
        """GET ``path``: the undecoded urllib3 response (raises ApiException on HTTP errors)."""
        return self.dynamic.request("get", path, serialize=False, **params)

    def _raw_data(self, path: str, **params: Any) -> bytes:
        return bytes(self._raw_get(path, **params).data)


def _content(obj: dict[str, Any], subresource: str | None) -> dict[str, Any]:
    """What an apply can change: ``obj`` without its bookkeeping (managedFields, resourceVersion)
    and, unless the status itself is applied, without the status other controllers keep writing."""
    metadata = {k: v for k, v in obj["metadata"].items() if k not in ("managedFields", "resourceVersion")}
    if subresource == "status":
        return {"metadata": metadata, "status": obj.get("status")}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": metadata}


def _drained(response: Any) -> None:
    """Read an undecoded response to its end, so its connection goes back to the pool."""
    response.drain_conn()
    response.release_conn()


def _lines(response: Any) -> Iterator[bytes]:
    """The newline-separated lines of a streamed HTTP body (a watch: one event per line)."""
    rest = b""
    for chunk in response.stream(64 * 1024, decode_content=True):
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from (line for line in lines if line.strip())
    if rest.strip():
        yield rest


def iter_conditions(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (obj.get("status") or {}).get("conditions") or []


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in iter_conditions(obj))
