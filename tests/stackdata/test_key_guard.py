"""Keys and names a learner chose never become paths outside the dump's folder.

Pure rules first (no I/O), then ``dump_buckets`` against a hostile S3 server: a real HTTP server
on loopback that lists keys no well-behaved store would (versitygw normalises or refuses them,
so it cannot serve them), to show the guard sits on the path every object takes.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from labctl.exports._files import component, relative_path
from labctl.exports.bucket_dump import Placement, dump_buckets, place_keys


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../b", "/etc/passwd", "a//b", "a/./b", ".", "..", "", "nul\0byte", "x" * 256],
)
def test_keys_that_are_not_plain_relative_paths_are_refused(key: str) -> None:
    assert relative_path(key) is None
    place = place_keys([key])[key]
    assert place == Placement("unsafe", (hashlib.sha256(key.encode()).hexdigest(),), place.reason)


def test_plain_keys_keep_their_path() -> None:
    keys = ["a/b/c.txt", "sp ace/%2e%2e", "back\\slash", "...", "été/ü", "folder/"]
    placed = place_keys(keys)
    assert placed["a/b/c.txt"] == Placement("file", ("a", "b", "c.txt"))
    assert placed["sp ace/%2e%2e"].segments == ("sp ace", "%2e%2e")  # never %-decoded
    assert placed["..."].kind == "file"  # three dots is a name, not a parent
    assert placed["folder/"] == Placement("folder", ("folder",))


def test_a_key_that_is_also_a_folder_is_set_aside() -> None:
    placed = place_keys(["a", "a/b", "m", "m/"])
    assert placed["a"].kind == "unsafe" and placed["a"].reason == "also the folder of other keys"
    assert placed["a/b"].kind == "file"
    assert placed["m"].kind == "unsafe"


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("iris-clf", "iris-clf"),
        ("team/model", "team%2Fmodel"),
        ("..", "%2E."),
        (".hidden", "%2Ehidden"),
        ("", "%"),
    ],
)
def test_component_encodes_one_safe_segment(name: str, encoded: str) -> None:
    assert component(name) == encoded


def test_component_of_a_long_name_fits_a_file_name() -> None:
    assert len(component("é" * 300).encode()) <= 255
    assert component("é" * 300) != component("é" * 301)


# -- a hostile store --------------------------------------------------------------------------------

HOSTILE_KEYS = [
    "../../escape.txt",
    "/abs.txt",
    "ok/../../../deep.txt",
    "a//b",
    "nul\0byte",
    "dir",
    "dir/inner.txt",
    "marker/",  # a folder key, but with content
    "normal.txt",
]
BODY = b"hostile"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


class HostileS3(http.server.BaseHTTPRequestHandler):
    """Lists one bucket, ``evil``, with HOSTILE_KEYS; every object is BODY."""

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            xml = (
                f"<ListAllMyBucketsResult {NS}><Owner><ID>o</ID></Owner><Buckets><Bucket><Name>evil</Name>"
                "<CreationDate>2024-01-01T00:00:00.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"
            )
            self._send(xml.encode(), "application/xml")
        elif url.path == "/evil" and parse_qs(url.query).get("list-type") == ["2"]:
            assert parse_qs(url.query).get("encoding-type") == ["url"]
            etag = hashlib.md5(BODY).hexdigest()
            contents = "".join(
                f"<Contents><Key>{quote(key, safe='')}</Key>"
                "<LastModified>2024-01-01T00:00:00.000Z</LastModified>"
                f'<ETag>"{etag}"</ETag><Size>{len(BODY)}</Size>'
                "<StorageClass>STANDARD</StorageClass></Contents>"
                for key in sorted(HOSTILE_KEYS)
            )
            xml = (
                f"<ListBucketResult {NS}><Name>evil</Name><Prefix></Prefix>"
                f"<KeyCount>{len(HOSTILE_KEYS)}</KeyCount><MaxKeys>1000</MaxKeys>"
                "<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
                f"{contents}</ListBucketResult>"
            )
            self._send(xml.encode(), "application/xml")
        else:
            self._send(BODY, "application/octet-stream", etag=hashlib.md5(BODY).hexdigest())

    def _send(self, body: bytes, content_type: str, etag: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile_store() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_hostile_keys_stay_inside_the_dump_and_are_not_lost(hostile_store: str, tmp_path: Path) -> None:
    target = tmp_path / "exports" / "ada" / "buckets"
    summary = dump_buckets(hostile_store, "key", "secret", target, learner="ada@uni.edu")

    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert all(name.startswith("exports/ada/buckets/") for name in written), written
    safe = {"dir/inner.txt", "normal.txt"}
    assert sorted(summary.unsafe_keys) == sorted(f"evil/{k}" for k in HOSTILE_KEYS if k not in safe)
    assert summary.objects == len(HOSTILE_KEYS)

    manifest = json.loads((target / "_manifest.json").read_text())["evil"]
    assert sorted(manifest) == sorted(HOSTILE_KEYS)
    for key in HOSTILE_KEYS:
        entry = manifest[key]
        assert (target / entry["file"]).read_bytes() == BODY  # every object's bytes were kept
        if key in safe:
            assert entry["file"] == f"evil/{key}" and "unsafe" not in entry
        else:
            assert entry["file"] == f"_unsafe-keys/evil/{hashlib.sha256(key.encode()).hexdigest()}"
            assert entry["unsafe"]
