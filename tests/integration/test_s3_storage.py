"""feedlake.landing.storage against a real S3 server (SeaweedFS on 127.0.0.1): listing, reading, writing."""

from __future__ import annotations

import gzip
import os

import pytest

from feedlake.landing.layouts import LandingError, discover
from feedlake.landing.parsing import iter_physical_lines
from feedlake.landing.storage import (
    S3Access,
    S3Settings,
    StorageError,
    discover_s3,
    download_objects,
    open_binary,
    read_text,
    write_text,
)
from tests.conftest import jsonl
from tests.integration.conftest import BUCKET, put_files

pytestmark = pytest.mark.s3

LANDING = {
    "tenant=acme/track/dt=2024-03-01/a.jsonl": jsonl('{"n":1}', '{"n":2}'),
    "tenant=acme/track/dt=2024-03-02/b.jsonl.gz": jsonl('{"n":3}'),
    "tenant=acme/identify/u.csv": "contact_key,email\r\nk1,a@x.io\r\n",
    "tenant=acme/track/_SUCCESS": "1",  # not empty: SeaweedFS stalls the next PUT on a connection after an empty one
    "tenant=globex/track/c.jsonl": jsonl('{"n":4}'),
    "tenant=globex/track/d.parquet": "PAR1",
    "notes/readme.txt": "not a tenant's",
}


@pytest.fixture
def landing_root(s3_env, s3_prefix) -> str:
    root = f"{s3_prefix}/landing"
    put_files(s3_env.client(), root, LANDING)
    return root


def test_discovery_pages_through_every_object_and_records_etags(s3_env, landing_root):
    listed = discover_s3(landing_root, page_size=2)  # several pages on purpose
    # A key outside the layout is listed refused, never read (issue 13, item 2).
    assert [(f.source_file, f.tenant_id, f.refusal[0], f.location) for f in listed if f.refusal] == [
        ("notes/readme.txt", "_unattributed", "unattributed", ""),
    ]
    found = [f for f in listed if not f.refusal]
    assert [f.source_file for f in found] == [
        "tenant=acme/identify/u.csv",
        "tenant=acme/track/dt=2024-03-01/a.jsonl",
        "tenant=acme/track/dt=2024-03-02/b.jsonl.gz",
        "tenant=globex/track/c.jsonl",
        "tenant=globex/track/d.parquet",
    ]
    client = s3_env.client()
    for f in found:
        head = client.head_object(Bucket=BUCKET, Key=f.location.removeprefix(f"s3://{BUCKET}/"))
        assert (f.etag, f.size_bytes) == (head["ETag"].strip('"'), head["ContentLength"])
    assert found[2].compression == "gzip" and found[4].format is None


def test_discovery_through_landing_discover_filters_by_tenant_and_stream(s3_env, landing_root):
    found = discover(landing_root, tenants=["acme"], streams=["track"])
    assert [f.source_file for f in found] == [
        "tenant=acme/track/dt=2024-03-01/a.jsonl", "tenant=acme/track/dt=2024-03-02/b.jsonl.gz",
    ]
    assert all(f.tenant_id == "acme" for f in found)


def test_missing_bucket_is_a_clear_error(s3_env):
    with pytest.raises(LandingError, match="the bucket does not exist"):
        discover_s3("s3://no-such-bucket-feedlake/landing")


def test_reading_objects_directly_streams_and_gunzips(s3_env, landing_root):
    files = {f.source_file: f for f in discover_s3(landing_root)}
    lines = list(iter_physical_lines(files["tenant=acme/track/dt=2024-03-02/b.jsonl.gz"].location, "gzip"))
    assert lines == [(1, b'{"n":3}')]
    with open_binary(files["tenant=acme/identify/u.csv"].location) as fh:
        assert fh.read() == b"contact_key,email\r\nk1,a@x.io\r\n"
    with pytest.raises(StorageError, match="NoSuchKey"):
        open_binary(f"{landing_root}/tenant=acme/track/gone.jsonl")


def test_large_object_streams_in_chunks(s3_env, s3_prefix):
    """More than one read buffer and many gzip members' worth: line numbers stay exact."""
    body = jsonl(*(f'{{"n":{i},"pad":"{"x" * 200}"}}' for i in range(20_000)))
    put_files(s3_env.client(), s3_prefix, {"tenant=acme/track/big.jsonl.gz": body})
    (big,) = discover_s3(s3_prefix)
    lines = list(iter_physical_lines(big.location, "gzip"))
    assert len(lines) == 20_000 and lines[-1][0] == 20_000
    assert lines[12_345][1].startswith(b'{"n":12345,')


def test_spool_downloads_in_parallel_and_is_removed(spark, s3_env, landing_root, tmp_path):
    files = [f for f in discover_s3(landing_root) if f.format]
    spool_root = tmp_path / "spool"
    with S3Access(spark, S3Settings(read_mode="spool", download_threads=3, spool_dir=str(spool_root))) as access:
        local = access.readable(files)
        assert access.mode == "spool" and access.summary() == f"spool (4 objects, {sum(f.size_bytes for f in files)} bytes)"
        assert [f.source_file for f in local] == [f.source_file for f in files]
        for remote, copy in zip(files, local):
            assert copy.location.startswith(str(spool_root)) and os.path.getsize(copy.location) == remote.size_bytes
            assert (copy.etag, copy.size_bytes) == (remote.etag, remote.size_bytes)
        with open(local[2].location, "rb") as fh:
            assert gzip.decompress(fh.read()) == b'{"n":3}\n'
    assert list(spool_root.iterdir()) == []


def test_an_object_changed_after_listing_is_not_read(s3_env, landing_root, tmp_path):
    """If-Match on the listed ETag: the bytes read are always the version the manifest names."""
    first = next(f for f in discover_s3(landing_root) if not f.refusal)
    put_files(s3_env.client(), landing_root, {first.source_file: "contact_key,email\r\nk2,b@x.io\r\n"})
    with pytest.raises(StorageError, match="changed after it was listed"):
        download_objects([first], str(tmp_path), S3Settings())


def test_report_text_round_trip(s3_env, s3_prefix):
    write_text(f"{s3_prefix}/_reports/r1.json", '{"ok": true}')
    assert read_text(f"{s3_prefix}/_reports/r1.json") == '{"ok": true}'
    head = s3_env.client().head_object(Bucket=BUCKET, Key=f"{s3_prefix.removeprefix(f's3://{BUCKET}/')}/_reports/r1.json")
    assert head["ContentType"] == "application/json"


def test_endpoint_from_conf_alone(s3_env, landing_root, monkeypatch):
    """Without AWS_ENDPOINT_URL in the environment, conf's s3.endpoint_url is enough."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    found = discover_s3(landing_root, settings=S3Settings(endpoint_url=s3_env.endpoint_url))
    assert len([f for f in found if not f.refusal]) == 5 and len(found) == 6  # + notes/readme.txt, unattributed
