"""``dump_buckets`` against a real S3 server: versitygw, the learner stack's object store.

The learner's objects are put with botocore as a learner's boto3 would (nested keys, an empty
object, a folder marker, odd characters, metadata, a multipart upload), then the store is dumped
with pages of 2 keys; the files, hashes and manifest must match what was put.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config

from labctl.core.errors import LabctlError
from labctl.exports.bucket_dump import BucketSummary, dump_buckets
from tests.graders.s3_server import S3Server, versitygw

BUCKETS = ("dvc", "mlflow", "submissions")
BIG = random.Random(7).randbytes(3 * (1 << 20) + 5)  # more than one 1 MiB read chunk
PART = random.Random(8).randbytes(5 * (1 << 20))  # S3's smallest non-final multipart part
OBJECTS: dict[tuple[str, str], bytes] = {
    ("dvc", "files/md5/ab/cdef0123"): b"data v1\n",
    ("dvc", "files/md5/ab/cdef0124"): b"data v2\n",
    ("dvc", "files/md5/01/23"): b"",  # an empty object
    ("dvc", "big.bin"): BIG,
    ("mlflow", "1/abc/artifacts/model/MLmodel"): b"flavors: {}\n",
    ("mlflow", "sp ace/%2e%2e"): b"a literal %2e%2e, not a parent folder",
    ("mlflow", "back\\slash"): b"\\",
    ("mlflow", "été/ü.txt"): "ü\n".encode(),
    ("submissions", "lab1/latest.json"): b'{"commit": "abc"}',
}
MULTIPART = ("submissions", "lab1/abc.bundle")


@dataclass(frozen=True)
class Store:
    server: S3Server
    root: Path  # where the test keeps its dumps


def s3_client(server: S3Server) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp("s3")
    with versitygw(tmp / "gateway", BUCKETS) as server:
        client = s3_client(server)
        for (bucket, key), data in OBJECTS.items():
            client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-test")
        client.put_object(Bucket="mlflow", Key="reports/", Body=b"")  # a console's "folder"
        client.put_object(Bucket="dvc", Key="tagged.txt", Body=b"t", Metadata={"owner": "ada"})
        bucket, key = MULTIPART
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = [
            {
                "PartNumber": n,
                "ETag": client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=body)[
                    "ETag"
                ],
            }
            for n, body in ((1, PART), (2, b"tail"))
        ]
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        yield Store(server, tmp)


def expected_objects() -> dict[tuple[str, str], bytes]:
    return {**OBJECTS, ("dvc", "tagged.txt"): b"t", MULTIPART: PART + b"tail"}


def test_every_object_saved_byte_for_byte(store: Store) -> None:
    target = store.root / "dump"
    summary = dump_buckets(
        store.server.endpoint,
        store.server.access_key,
        store.server.secret_key,
        target,
        learner="ada@uni.edu",
        page_size=2,
    )
    expected = expected_objects()
    assert summary == BucketSummary(
        buckets=3, objects=len(expected) + 1, bytes=sum(map(len, expected.values())), unsafe_keys=()
    )
    saved = {
        (p.relative_to(target).parts[0], "/".join(p.relative_to(target).parts[1:])): p.read_bytes()
        for p in target.rglob("*")
        if p.is_file() and p.name != "_manifest.json"
    }
    assert saved == expected
    assert (target / "mlflow" / "reports").is_dir()
    assert not any(target.joinpath("mlflow", "reports").iterdir())

    manifest = json.loads((target / "_manifest.json").read_text())
    assert sorted(manifest) == list(BUCKETS)
    for (bucket, key), data in expected.items():
        entry = manifest[bucket][key]
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert (target / entry["file"]).read_bytes() == data
    assert manifest["dvc"]["tagged.txt"]["metadata"] == {"owner": "ada"}
    assert manifest["dvc"]["big.bin"]["content_type"] == "application/x-test"
    assert manifest["mlflow"]["reports/"] == {**manifest["mlflow"]["reports/"], "folder": True, "size": 0}
    assert manifest[MULTIPART[0]][MULTIPART[1]]["etag"].strip('"').endswith("-2")  # not an MD5


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_re_export_is_identical(store: Store) -> None:
    args = (store.server.endpoint, store.server.access_key, store.server.secret_key)
    dump_buckets(*args, store.root / "first")
    dump_buckets(*args, store.root / "second")
    assert tree(store.root / "first") == tree(store.root / "second")


def test_exclude_skips_buckets(store: Store) -> None:
    target = store.root / "no-mlflow"
    args = (store.server.endpoint, store.server.access_key, store.server.secret_key)
    assert dump_buckets(*args, target, exclude={"mlflow"}).buckets == 2
    assert sorted(os.listdir(target)) == ["_manifest.json", "dvc", "submissions"]
    assert sorted(json.loads((target / "_manifest.json").read_text())) == ["dvc", "submissions"]


def test_wrong_key_names_learner_and_endpoint_not_the_secret(store: Store, tmp_path: Path) -> None:
    with pytest.raises(LabctlError) as caught:
        dump_buckets(
            store.server.endpoint, "nobody", "not-the-secret-xyz", tmp_path / "out", learner="bob@uni.edu"
        )
    message = str(caught.value)
    assert message.startswith(f"learner bob@uni.edu: object store at {store.server.endpoint}: ListBuckets")
    assert "not-the-secret-xyz" not in message
    assert os.listdir(tmp_path / "out") == []
