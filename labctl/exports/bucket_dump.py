"""Save every object of every bucket of a learner's S3-compatible object store as files.

``dump_buckets(endpoint, access_key, secret_key, target)`` writes::

    target/
      _manifest.json                 {bucket: {key: {file, size, etag, sha256, last_modified,
                                      content_type, metadata}}}, sorted: the index of the dump
      <bucket>/<key>                 each object, byte for byte (an empty object is an empty file;
                                      a zero-byte "folder/" marker is an empty folder)
      _unsafe-keys/<bucket>/<sha256 of the key>
                                     objects whose key cannot be a path inside <bucket>/

No valid bucket name starts with ``_``, so the two ``_`` names never clash with a bucket.

Keys are the learner's choice and are never trusted as paths. A key is written at
``<bucket>/<key>`` only if it is a plain relative path (no leading ``/``, no empty, ``.`` or
``..`` segment, no NUL, segments short enough for a file name) and is not also the folder of
another key (``a`` and ``a/b`` can both exist in S3, not on a disk). Any other key is
**rejected from the tree but not lost**: its bytes go to ``_unsafe-keys/`` under the hash of the
key, which no key can steer, and the manifest maps the real key to that file. So nothing is
written outside ``target``, and nothing the learner stored is silently dropped before their
namespace is deleted. The summary lists those keys so the CLI can say so.

Every object is checked as it is saved: its size against the listing and, for a single-part
upload (an ETag that is an MD5), its MD5 against the ETag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from labctl.exports import _files
from labctl.exports._files import DumpError, component, write_json
from labctl.provision.stacks.object_store import REGION

MANIFEST = "_manifest.json"
UNSAFE = "_unsafe-keys"
PAGE_SIZE = 1000  # S3's own maximum for ListObjectsV2
TIMEOUT_S = 120.0
ATTEMPTS = 3  # per object, on a connection dropped mid-body (botocore retries the request itself)
_CHUNK = 1 << 20
_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')  # multipart ETags end in "-<parts>" and are no MD5


@dataclass(frozen=True)
class BucketSummary:
    """What a dump saved, for the CLI to print; ``unsafe_keys`` as ``bucket/key``."""

    buckets: int
    objects: int
    bytes: int
    unsafe_keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.buckets} buckets, {self.objects} objects ({self.bytes} bytes)"
        if self.unsafe_keys:
            text += f"; {len(self.unsafe_keys)} keys not usable as paths, saved under {UNSAFE}/"
        return text


@dataclass(frozen=True)
class Placement:
    """Where one key goes, relative to its bucket's folder (``unsafe``: under ``_unsafe-keys``)."""

    kind: Literal["file", "folder", "unsafe"]
    segments: tuple[str, ...]
    reason: str = ""


def place_keys(keys: Iterable[str]) -> dict[str, Placement]:
    """Decide, for every key of one bucket, where it may be written (pure: no I/O)."""
    keys = list(keys)
    placed: dict[str, Placement] = {}
    folders: set[tuple[str, ...]] = set()
    for key in keys:
        is_marker = key.endswith("/")
        segments = _files.relative_path(key, allow_trailing_slash=True)
        if segments is None:
            placed[key] = _unsafe(key, "not a plain relative path (/, //, . or .. segments, NUL, too long)")
            continue
        placed[key] = Placement("folder" if is_marker else "file", segments)
        folders.update(segments[:i] for i in range(1, len(segments)))
        if is_marker:
            folders.add(segments)
    for key, place in placed.items():
        if place.kind == "file" and place.segments in folders:
            placed[key] = _unsafe(key, "also the folder of other keys")
    return placed


def _unsafe(key: str, reason: str) -> Placement:
    return Placement("unsafe", (hashlib.sha256(key.encode()).hexdigest(),), reason)


def dump_buckets(
    endpoint: str,
    access_key: str,
    secret_key: str,
    target: Path,
    *,
    region: str = REGION,
    learner: str | None = None,
    exclude: Collection[str] = (),
    page_size: int = PAGE_SIZE,
    timeout_s: float = TIMEOUT_S,
) -> BucketSummary:
    """Save every object of every bucket (but ``exclude``) at ``endpoint`` under ``target``.

    ``target`` must be absent or empty. ``learner`` names whose store it is in error messages.
    Raises :class:`DumpError` (a ``LabctlError``) naming the learner, endpoint, bucket and key;
    the files written until then are left in place and are incomplete.
    """
    where = f"{f'learner {learner}: ' if learner else ''}object store at {endpoint}"
    _files.fresh_folder(target, where)
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            connect_timeout=10,
            read_timeout=timeout_s,
            retries={"max_attempts": 4, "mode": "standard"},
            s3={"addressing_style": "path"},
            # S3-compatible stores may not know the CRC checksums botocore now sends and checks.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    dumper = _Dumper(client, target, where, page_size)
    try:
        return dumper.run(exclude)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        what = f"{exc.operation_name} {dumper.at()}".rstrip()
        raise DumpError(f"{where}: {what}: {error.get('Code')} {error.get('Message', '')}".rstrip()) from None
    except BotoCoreError as exc:
        raise DumpError(f"{where}: {dumper.at() or 'listing buckets'}: {exc}") from None
    except OSError as exc:  # the export's own disk: full, read-only, ...
        raise DumpError(f"{where}: cannot write the export under {target}: {exc}") from None


class _Dumper:
    """One dump's client, folder and progress (what it was doing, for error messages)."""

    def __init__(self, client: Any, target: Path, where: str, page_size: int) -> None:
        self.client, self.target, self.where, self.page_size = client, target, where, page_size
        self.bucket = self.key = ""

    def at(self) -> str:
        if not self.bucket:
            return ""
        return f"{self.bucket}/{self.key}" if self.key else f"bucket {self.bucket}"

    def run(self, exclude: Collection[str]) -> BucketSummary:
        manifest: dict[str, dict[str, Any]] = {}
        unsafe: list[str] = []
        objects = size = 0
        for bucket in sorted(set(self._buckets()) - set(exclude)):
            self.bucket, self.key = bucket, ""
            folder = component(bucket)
            if folder in (MANIFEST, UNSAFE):
                raise DumpError(f"{self.where}: bucket name {bucket!r} is not a valid S3 bucket name")
            listed = {obj["Key"]: obj for obj in self._objects(bucket)}
            manifest[bucket] = {}
            for key, place in sorted(place_keys(listed).items()):
                self.key = key
                entry = self._save(bucket, folder, key, place, listed[key])
                manifest[bucket][key] = entry
                objects += 1
                size += entry["size"]
                if "unsafe" in entry:  # set aside by place_keys, or found unusable when saved
                    unsafe.append(f"{bucket}/{key}")
        self.bucket = self.key = ""
        write_json(self.target / MANIFEST, manifest)
        return BucketSummary(buckets=len(manifest), objects=objects, bytes=size, unsafe_keys=tuple(unsafe))

    def _buckets(self) -> Iterator[str]:
        if self.client.can_paginate("list_buckets"):
            for page in self.client.get_paginator("list_buckets").paginate():
                yield from (b["Name"] for b in page.get("Buckets") or [])
        else:
            yield from (b["Name"] for b in self.client.list_buckets().get("Buckets") or [])

    def _objects(self, bucket: str) -> Iterator[dict[str, Any]]:
        # botocore asks for url-encoded keys and decodes them: any byte in a key survives the XML.
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            yield from page.get("Contents") or []

    def _save(
        self, bucket: str, folder: str, key: str, place: Placement, listed: dict[str, Any]
    ) -> dict[str, Any]:
        relative = (UNSAFE, folder, *place.segments) if place.kind == "unsafe" else (folder, *place.segments)
        path = _files.inside(self.target, relative)
        entry: dict[str, Any] = {
            "file": "/".join(relative) + ("/" if place.kind == "folder" else ""),
            "etag": listed.get("ETag"),
            "last_modified": _utc(listed.get("LastModified")),
        }
        if place.reason:
            entry["unsafe"] = place.reason
        if place.kind == "folder" and int(listed.get("Size") or 0) == 0:
            path.mkdir(parents=True, exist_ok=True)
            return {**entry, "size": 0, "sha256": hashlib.sha256(b"").hexdigest(), "folder": True}
        if place.kind == "folder":  # a "folder/" key with bytes: keep them beside the folder's files
            place = _unsafe(key, "a folder key (ending in /) with content")
            return self._save(bucket, folder, key, place, listed)
        return {**entry, **self._download(bucket, key, path, listed)}

    def _download(self, bucket: str, key: str, path: Path, listed: dict[str, Any]) -> dict[str, Any]:
        path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(ATTEMPTS):
            response = self.client.get_object(Bucket=bucket, Key=key)
            sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
            try:
                with path.open("wb") as out:
                    for chunk in response["Body"].iter_chunks(_CHUNK):
                        out.write(chunk)
                        sha256.update(chunk)
                        md5.update(chunk)
                        size += len(chunk)
            except BotoCoreError:
                if attempt == ATTEMPTS - 1:
                    raise
                continue  # dropped mid-body (a port-forward hiccup): fetch it again
            finally:
                response["Body"].close()
            break
        if size != int(listed.get("Size", size)):
            raise DumpError(f"{self.where}: {bucket}/{key}: got {size} bytes, listed as {listed['Size']}")
        etag = _MD5_ETAG.match(str(response.get("ETag") or ""))
        if etag and etag.group(1) != md5.hexdigest():
            raise DumpError(f"{self.where}: {bucket}/{key}: the bytes saved do not match the object's ETag")
        return {
            "size": size,
            "sha256": sha256.hexdigest(),
            "content_type": response.get("ContentType"),
            "metadata": response.get("Metadata") or {},
        }


def _utc(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return None if value is None else str(value)
