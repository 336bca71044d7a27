"""feedlake.landing.storage without a server: URIs, conf, listing rules, delta-rs options, read mode."""

from datetime import datetime, timedelta, timezone

import pytest

from feedlake.landing.layouts import LandingFile, discover_local
from feedlake.landing.storage import (
    S3Access,
    S3Location,
    S3Settings,
    choose_read_mode,
    delta_rs_options,
    landing_files_from_listing,
    open_binary,
    parse_s3_uri,
    spark_reads_s3,
    task_settings,
)
from feedlake.settings.config import ConfigError

MODIFIED = datetime(2024, 3, 5, 10, 0, 0, tzinfo=timezone.utc)


def listed(key: str, etag: str = '"0cc175b9c0f1b6a831c399e269772661"', size: int = 10, modified=MODIFIED) -> dict:
    """One ``Contents`` entry as ``list_objects_v2`` returns it."""
    return {"Key": key, "ETag": etag, "Size": size, "LastModified": modified}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://lake/landing", S3Location("s3", "lake", "landing")),
        ("s3a://lake/landing/", S3Location("s3a", "lake", "landing/")),
        ("S3://lake", S3Location("s3", "lake", "")),
        ("s3://my.lake-01/a/b=c/d.jsonl", S3Location("s3", "my.lake-01", "a/b=c/d.jsonl")),
    ],
)
def test_parse_s3_uri(uri, expected):
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://lake/x", "not an s3:// or s3a:// URI"),
        ("s3:///landing", "is not a bucket name"),
        ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@lake/landing", "credentials or ports in the URI are not supported"),
    ],
)
def test_parse_s3_uri_rejects(uri, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_s3_uri(uri)
    assert "wJalrXUtnFEMI" not in str(info.value)


def test_prefix_is_a_folder():
    assert parse_s3_uri("s3://lake/landing").prefix == "landing/"
    assert parse_s3_uri("s3://lake/landing/").prefix == "landing/"
    assert parse_s3_uri("s3://lake/").prefix == ""


def test_settings_from_job():
    job = {"s3": {"endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1", "read_mode": "spool",
                  "download_threads": 3, "spool_dir": "/tmp/spool"}}
    assert S3Settings.from_job(job) == S3Settings("http://127.0.0.1:9000", "eu-west-1", "spool", 3, "/tmp/spool")
    assert S3Settings.from_job({}) == S3Settings()
    assert S3Settings.from_job({"s3": {"endpoint_url": None, "read_mode": None}}) == S3Settings()


@pytest.mark.parametrize(
    ("s3", "message"),
    [
        ({"aws_secret_access_key": "x"}, "credentials are not read from conf"),
        ({"session_token": "x"}, "credentials are not read from conf"),
        ({"endpoint": "http://x"}, "unknown setting"),
        ({"read_mode": "stream"}, "read_mode"),
        ({"download_threads": 0}, "download_threads"),
        ({"download_threads": "8"}, "download_threads"),
        ({"endpoint_url": "127.0.0.1:9000"}, "endpoint_url"),
        ("s3://x", "expected a mapping"),
    ],
)
def test_settings_refuse_bad_conf(s3, message):
    with pytest.raises(ConfigError, match=message):
        S3Settings.from_job({"s3": s3})


def test_listing_follows_the_local_layout_rules(tmp_path):
    """The same keys give the same landing files as the same paths on disk (one rule for both)."""
    keys = [
        "tenant=acme/track/dt=2024-03-01/a.jsonl",
        "tenant=acme/track/_SUCCESS",
        "tenant=acme/track/.a.jsonl.crc",
        "tenant=acme/track/_tmp/b.jsonl",
        "tenant=acme/identify/u.csv.gz",
        "tenant=other/identify/u.csv",
        "tenant=bad id/track/a.jsonl",
        "stray.jsonl",
        "tenant=acme/group/",  # a folder marker
    ]
    root = parse_s3_uri("s3://lake/landing")
    found = landing_files_from_listing(root, [listed("landing/" + k) for k in keys] + [listed("elsewhere/tenant=acme/track/x.jsonl")])
    for key in keys:
        if not key.endswith("/"):
            (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / key).write_text("{}\n")
    local = discover_local(tmp_path)
    assert [(f.tenant_id, f.stream, f.source_file, f.format, f.compression) for f in found] == [
        (f.tenant_id, f.stream, f.source_file, f.format, f.compression) for f in sorted(local, key=lambda f: f.source_file)
    ]
    # Keys outside the layout are listed too, refused as unattributed (issue 13, item 2).
    assert [(f.source_file, f.refusal[0] if f.refusal else None) for f in found] == [
        ("stray.jsonl", "unattributed"), ("tenant=acme/identify/u.csv.gz", None),
        ("tenant=acme/track/dt=2024-03-01/a.jsonl", None), ("tenant=bad id/track/a.jsonl", "unattributed"),
        ("tenant=other/identify/u.csv", None),
    ]


def test_listing_records_etag_size_times_and_location():
    root = parse_s3_uri("s3a://lake/landing")
    modified = datetime(2024, 3, 5, 11, 30, 15, 123000, tzinfo=timezone(timedelta(hours=1)))
    found = landing_files_from_listing(
        root,
        [
            listed("landing/tenant=acme/track/dt=2024-03-01-14-30/a.jsonl", size=42, modified=modified),
            listed("landing/tenant=acme/track/b.jsonl", etag='"9b2cf535f27731c974343645a3985328-2"'),
        ],
    )
    first, second = sorted(found, key=lambda f: f.size_bytes, reverse=True)
    assert first.location == "s3a://lake/landing/tenant=acme/track/dt=2024-03-01-14-30/a.jsonl"
    assert (first.etag, first.size_bytes) == ("0cc175b9c0f1b6a831c399e269772661", 42)
    assert first.modified_at == datetime(2024, 3, 5, 10, 30, 15, tzinfo=timezone.utc)
    assert first.landing_time == datetime(2024, 3, 1, 14, 30, tzinfo=timezone.utc)  # the dt= folder
    assert second.etag == "9b2cf535f27731c974343645a3985328-2"  # multipart ETags kept whole
    assert second.landing_time == MODIFIED  # no dt= folder: the modification time
    assert first.fingerprint != second.fingerprint


@pytest.mark.parametrize(
    ("tenants", "streams", "expected"),
    [
        (["acme"], None, ["tenant=acme/identify/u.csv", "tenant=acme/track/a.jsonl"]),
        (None, ["track"], ["tenant=acme/track/a.jsonl", "tenant=globex/track/a.jsonl"]),
        (["globex"], ["identify"], []),
    ],
)
def test_listing_filters_tenants_and_streams(tenants, streams, expected):
    keys = ["tenant=acme/identify/u.csv", "tenant=acme/track/a.jsonl", "tenant=globex/track/a.jsonl"]
    found = landing_files_from_listing(parse_s3_uri("s3://lake"), [listed(k) for k in keys], tenants, streams)
    assert [f.source_file for f in found] == expected


def test_listing_supports_the_objects_layout():
    key = "objects/account/source_system=dataapi/tenant=3303/dt=2025-06-27-07-26/a.jsonl"
    found = landing_files_from_listing(
        parse_s3_uri("s3://lake/root"), [listed("root/" + key)], layouts=("tenant_stream", "objects")
    )
    assert [(f.tenant_id, f.stream, f.source_system, f.landing_time) for f in found] == [
        ("3303", "account", "dataapi", datetime(2025, 6, 27, 7, 26, tzinfo=timezone.utc))
    ]


ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.mark.parametrize(
    ("env", "settings", "expected"),
    [
        ({}, S3Settings(), {}),
        ({}, S3Settings(region="eu-west-1"), {"AWS_REGION": "eu-west-1"}),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333"}, S3Settings(),
            {"AWS_FORCE_CREDENTIAL_LOAD": "true", "AWS_ALLOW_HTTP": "true"},
        ),
        (
            {}, S3Settings(endpoint_url="https://s3.example.test"),
            {"AWS_ENDPOINT_URL": "https://s3.example.test", "AWS_FORCE_CREDENTIAL_LOAD": "true"},
        ),
        (
            {"AWS_ENDPOINT_URL_S3": "https://s3.example.test"}, S3Settings(endpoint_url="http://127.0.0.1:1"),
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_FORCE_CREDENTIAL_LOAD": "true", "AWS_ALLOW_HTTP": "true"},
        ),
    ],
)
def test_delta_rs_options(monkeypatch, env, settings, expected):
    for name in ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert delta_rs_options(settings) == expected


def test_a_session_set_up_for_another_endpoint_spools(spark):
    """The test session has S3A (hadoop-aws), started before this endpoint was known: the driver spools."""
    assert spark_reads_s3(spark) is True
    assert choose_read_mode(spark, S3Settings(endpoint_url="http://127.0.0.1:9")) == "spool"


@pytest.mark.parametrize("mode", ["direct", "spool"])
def test_conf_forces_the_read_mode(spark, mode):
    assert choose_read_mode(spark, S3Settings(read_mode=mode)) == mode


def test_local_files_pass_through_untouched(spark, tmp_path):
    (tmp_path / "tenant=acme/track").mkdir(parents=True)
    (tmp_path / "tenant=acme/track/a.jsonl").write_text('{"a":1}\n')
    files = discover_local(tmp_path)
    with S3Access(spark, S3Settings(spool_dir=str(tmp_path / "spool"))) as access:
        assert access.readable(files) == files
        assert access.mode is None and access.summary() is None
    assert not (tmp_path / "spool").exists()
    with open_binary(files[0].location) as fh:
        assert fh.read() == b'{"a":1}\n'


def test_direct_mode_hands_conf_endpoint_and_region_to_the_tasks(spark):
    """Spark local properties carry them to every task of the run (never credentials), then are cleared."""
    remote = LandingFile("acme", "track", "tenant=acme/track/a.jsonl", "s3://lake/tenant=acme/track/a.jsonl", 1,
                         MODIFIED, MODIFIED, "json", None, etag="e")
    settings = S3Settings(endpoint_url="http://127.0.0.1:9", region="eu-west-3", read_mode="direct")

    def in_a_task():
        return spark.sparkContext.parallelize([0], 1).map(lambda _: task_settings()).collect()

    with S3Access(spark, settings) as access:
        assert access.readable([remote]) == [remote]  # direct: the tasks open s3:// themselves
        assert access.summary() == "direct"
        assert in_a_task() == [S3Settings(endpoint_url="http://127.0.0.1:9", region="eu-west-3")]
    assert in_a_task() == [S3Settings()]
    assert task_settings() == S3Settings()  # outside a task: the environment decides
