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
from typing import Any, Literal, TypeVar, overload

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


class Listing(builtins.list[T]):
    """A list's items and the resourceVersion to watch from (where nothing is missed)."""

    resource_version: str = ""


class Kube:
    """A connection to one cluster. Build it with :meth:`connect`.

    One verb per operation, each with options rather than twins: ``get``, ``list`` (``pick``
    reduces each object as its page is decoded), ``watch``, ``apply`` (one object or many;
    ``quiet`` drops the answer undecoded), ``create`` (also of a subresource, e.g. a
    ServiceAccount's token), ``patch`` (``quiet`` likewise), ``delete``, ``logs``,
    ``port_forward``. No client model leaves this class: everything is a plain dict.
    """

    def __init__(self, api_client: k8s_client.ApiClient, namespace: str = "default") -> None:
        self._api_client = api_client
        # Every request holds a slot; the connection pool is as big as the slots. Without the
        # bound, hundreds of reconciling threads overflow the pool, and each discarded
        # connection costs a new TLS handshake: CPU in the client, 429s from the server.
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.namespace = namespace  # the context's namespace, as kubectl would use it
        self._dynamic: DynamicClient | None = None
        self._bulk: ThreadPoolExecutor | None = None  # apply's pool for many objects, made on first use
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
    def configuration(self) -> k8s_client.Configuration:
        """Where and as whom this connection talks (server, CA, credentials): for writing a
        kubeconfig or handing the same connection to kopf. Not a way to make calls."""
        configuration: k8s_client.Configuration = self._api_client.configuration
        return configuration

    @property
    def _discovery(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = with_retries(lambda: DynamicClient(self._api_client), what="API discovery")
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

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._discovery.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise KubeError(f"the server has no resource kind {kind} in {api_version}", status=404) from None

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object as a dict, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        ref = ObjectRef(api_version, kind, name, namespace)
        try:
            return dict(
                with_retries(
                    self._slotted(lambda: resource.get(name=name, namespace=namespace).to_dict()),
                    what=f"get {ref}",
                )
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    @overload
    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> Listing[dict[str, Any]]: ...

    @overload
    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        pick: Callable[[dict[str, Any]], T],
    ) -> Listing[T]: ...

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        pick: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Listing[Any]:
        """Every object of a kind (in ``namespace``, or all), as plain dicts read page by page,
        with the list's resourceVersion to watch from.

        ``pick`` reduces each object as its page is decoded: watchers that keep a few fields of
        many objects hold one page at a time, never the whole list.
        """
        path = self._resource(api_version, kind).path(namespace=namespace)
        items: Listing[Any] = Listing()
        token: str | None = None
        what = f"list {kind}" + (f" in {namespace}" if namespace else "")
        while True:
            params = {
                "label_selector": label_selector,
                "field_selector": field_selector,
                "limit": page_size,
                "_continue": token,
            }
            get = partial(self._raw_data, path, **{k: v for k, v in params.items() if v is not None})
            page = _loads(with_retries(self._slotted(get), what=what))
            found = page.get("items") or []
            items.extend(map(pick, found) if pick is not None else found)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                items.resource_version = str(meta.get("resourceVersion") or "")
                return items

    @overload
    def apply(
        self,
        obj: dict[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        subresource: str | None = None,
        quiet: bool = False,
    ) -> ApplyResult: ...

    @overload
    def apply(
        self,
        obj: Sequence[dict[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        subresource: str | None = None,
        quiet: bool = False,
    ) -> builtins.list[ApplyResult]: ...

    def apply(
        self,
        obj: dict[str, Any] | Sequence[dict[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        force: bool = True,
        subresource: str | None = None,
        quiet: bool = False,
    ) -> ApplyResult | builtins.list[ApplyResult]:
        """Server-side apply one object, telling whether the server created, changed or kept it;
        or many, concurrently, in order.

        ``quiet`` skips the GET that tells those apart and drops the server's answer undecoded
        (action "applied", the object as sent): for bulk reconcilers that track their own
        hashes. Decoding each applied object cost the controller more CPU than anything else.
        Many objects share one pool as big as the connection's request slots, rather than
        threads of their own per call (a reconcile per learner did, hundreds at once).
        """
        options = {"field_manager": field_manager, "force": force, "subresource": subresource, "quiet": quiet}
        if isinstance(obj, dict):
            return self._apply_one(obj, **options)  # type: ignore[arg-type]
        objects = builtins.list(obj)
        if len(objects) <= 1:
            return [self._apply_one(o, **options) for o in objects]  # type: ignore[arg-type]
        with self._bulk_lock:
            if self._bulk is None:
                self._bulk = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="apply")
            pool = self._bulk
        return builtins.list(pool.map(partial(self._apply_one, **options), objects))  # type: ignore[arg-type]

    def _apply_one(
        self, obj: dict[str, Any], *, field_manager: str, force: bool, subresource: str | None, quiet: bool
    ) -> ApplyResult:
        ref = ObjectRef.of(obj)
        resource = self._resource(ref.api_version, ref.kind)
        if subresource:
            resource = resource.subresources[subresource]
        send = self._applier(resource, obj, field_manager=field_manager, force=force, decode=not quiet)
        if quiet:
            with_retries(self._slotted(lambda: _drained(send())), what=f"apply {ref}")
            return ApplyResult(obj, "applied")
        before = self.get(ref.api_version, ref.kind, ref.name, ref.namespace)
        result = with_retries(self._slotted(lambda: send().to_dict()), what=f"apply {ref}")
        action: Action
        if before is None:
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

    def create(
        self,
        obj: dict[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        of: ObjectRef | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Create ``obj`` as given (POST): for the rare kinds whose status is set on create (Nodes),
        and for objects posted to another's subresource: a TokenRequest to a ServiceAccount's
        ``token`` (``of=ObjectRef("v1", "ServiceAccount", name, namespace), subresource="token"``)."""
        target = of or ObjectRef.of(obj)
        resource = self._resource(target.api_version, target.kind)
        what = f"create {ObjectRef.of(obj)}"
        if subresource:
            if of is None:
                raise ValueError("a subresource is created on another object: pass of=ObjectRef(...)")
            resource = resource.subresources[subresource]
            what = f"create {subresource} of {of}"
            call = partial(resource.create, body=obj, name=of.name, namespace=of.namespace)
        else:
            call = partial(resource.create, body=obj, namespace=target.namespace, field_manager=field_manager)
        return dict(with_retries(self._slotted(lambda: call().to_dict()), what=what))

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        quiet: bool = False,
    ) -> dict[str, Any]:
        """A JSON merge patch, e.g. of a ``status`` we own; the object after it, or ``{}`` when
        ``quiet`` (the answer dropped undecoded)."""
        resource = self._resource(api_version, kind)
        if subresource:
            resource = resource.subresources[subresource]
        send = partial(
            self._discovery.patch,
            resource,
            body=body,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            serialize=not quiet,
        )
        what = f"patch {ObjectRef(api_version, kind, name, namespace)}" + (
            f" {subresource}" if subresource else ""
        )
        if quiet:
            with_retries(self._slotted(lambda: _drained(send())), what=what)
            return {}
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
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) pairs of a watch across all namespaces; ends after the timeout.

        The selector is sent to the API server, so only matching objects cross the wire; each
        line is decoded as plain JSON. Bookmarks are asked for (type BOOKMARK: only the
        resourceVersion to resume from). A watch the server ended with an error, e.g. 410 Gone
        when ``resource_version`` is too old, raises KubeError with that status. Callers list
        (``list``'s resource_version) and watch again when it ends: a watch is a hint, the list
        is the truth.
        """
        path = self._resource(api_version, kind).path()
        params: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout_seconds,
            "_request_timeout": (10, timeout_seconds + 30),
        }
        if label_selector:
            params["label_selector"] = label_selector
        if resource_version:
            params["resource_version"] = resource_version
        try:
            response = self._raw_get(path, **params)
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

    def logs(
        self, namespace: str, pod: str, *, container: str | None = None, limit_bytes: int | None = None
    ) -> bytes:
        """A container's log as bytes, as `kubectl logs` prints it (at most ``limit_bytes``)."""
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        query = [(k, v) for k, v in (("container", container), ("limitBytes", limit_bytes)) if v is not None]
        get = partial(self._raw_data, path, query_params=query, header_params={"Accept": "*/*"})
        return with_retries(self._slotted(get), what=f"logs of pod {namespace}/{pod}")

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
        api = k8s_client.CoreV1Api(k8s_client.ApiClient(self._api_client.configuration))

        def open_stream() -> Any:
            return portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))

        return with_retries(open_stream, what=f"port-forward to pod {namespace}/{pod}:{port}")

    def server_version(self) -> str:
        info = with_retries(
            self._slotted(lambda: k8s_client.VersionApi(self._api_client).get_code()), what="get version"
        )
        return str(info.git_version)

    def _applier(
        self, resource: Any, obj: dict[str, Any], *, field_manager: str, force: bool, decode: bool
    ) -> Callable[[], Any]:
        """The server-side apply request of ``obj``; ``decode=False`` leaves the answer undecoded."""
        # NB: serialised here as UTF-8 JSON. The client would json.dumps() with ASCII escapes, and the
        # API server's YAML decoder refuses the surrogate-pair escapes of characters beyond the BMP
        # (an emoji in a lab's README): "found invalid Unicode character escape code".
        return partial(
            self._discovery.server_side_apply,
            resource,
            body=json.dumps(obj, ensure_ascii=False).encode(),
            name=obj["metadata"]["name"],
            namespace=obj["metadata"].get("namespace"),
            field_manager=field_manager,
            force_conflicts=force,
            serialize=decode,
        )

    def _raw_get(self, path: str, **params: Any) -> Any:
        """GET ``path``: the undecoded urllib3 response (raises ApiException on HTTP errors)."""
        return self._discovery.request("get", path, serialize=False, **params)

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
