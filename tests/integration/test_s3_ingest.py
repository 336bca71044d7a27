"""`feedlake ingest` from an s3:// landing zone into an s3:// warehouse, on a real S3 server.

SeaweedFS runs on 127.0.0.1 (tests/integration/conftest.py); feedlake sees it only
through the standard AWS variables (or a profile, or conf's ``s3.endpoint_url``).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from feedlake.delta.engines import engine_for
from feedlake.ingest.hooks import IngestHook
from feedlake.ingest.pipeline import IngestRequest, run_ingest
from feedlake.landing.layouts import discover
from feedlake.landing.storage import read_text, write_text
from tests.conftest import jsonl, run_cli, without_quality
from tests.integration.conftest import BUCKET, put_files, read_s3_table, s3_keys, subprocess_env

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[2]

LANDING = {
    "tenant=acme/identify/dt=2024-03-01/identify.jsonl": jsonl(
        '{"contact_key":"abc1234", "email":"paul@madkudu.com", "plan":"pro"}',
        '{"contact_key":"432535", "email":"anna@madkudu.com"}',
        '{"contact_key":"no-email"}',
    ),
    "tenant=acme/track/dt=2024-03-01/track.jsonl.gz": jsonl(
        '{"event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234"}',
        '{"event_text":"logged in", "event_timestamp":1234567900, "contact_key":"abc1234"}',
        '{"event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234", "key": "val"ue"}',
        '{"event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234", "dupe": true}',
    ),
    "tenant=globex/group/dt=2024-03-02/group.csv": (
        "contact_key,account_key,name\r\nk1,globex.com,Globex\r\nk2,globex.com,\r\n"
    ),
}
EXPECTED_COUNTS = {  # (read, accepted, quarantined, duplicates)
    ("acme", "identify"): (3, 2, 1, 0),
    ("acme", "track"): (4, 2, 1, 1),
    ("globex", "group"): (2, 2, 0, 0),
}
CONTACTS_SCHEMA = "tenant_id STRING, contact_key STRING, email STRING, properties STRING"
EXPECTED_CONTACTS = [
    ("acme", "432535", "anna@madkudu.com", "{}"),
    ("acme", "abc1234", "paul@madkudu.com", '{"plan":"pro"}'),
]


def roots(prefix: str) -> tuple[str, str]:
    return f"{prefix}/landing", f"{prefix}/warehouse"


def ingest(landing: str, warehouse: str, *extra: str) -> None:
    """One run without the quality gate: quality on an S3 warehouse is under test in test_report_html_s3."""
    assert run_cli("ingest", "--landing", landing, "--warehouse", warehouse, "--engine", "delta-rs", *extra,
                   *without_quality()) == 0


def reports(server, warehouse: str) -> list[dict]:
    """Every run report written to the S3 warehouse, oldest first (run ids start with the time)."""
    keys = sorted(k for k in s3_keys(server.client(), warehouse) if k.startswith("_reports/") and k.endswith(".json"))
    return [json.loads(read_text(f"{warehouse}/{k}")) for k in keys]


def counts(report: dict) -> dict:
    return {
        (s["tenant_id"], s["stream"]): (s["records_read"], s["accepted"], s["quarantined"], s["duplicates_dropped"])
        for s in report["streams"] if s["records_read"]
    }


def assert_contacts(spark, server, warehouse: str, expected=tuple(EXPECTED_CONTACTS)) -> None:
    contacts = read_s3_table(spark, server, warehouse, "contacts", ["tenant_id", "contact_key", "email", "properties"])
    assert_df_equality(contacts, spark.createDataFrame(sorted(expected), CONTACTS_SCHEMA), ignore_nullable=True)


def test_s3_landing_to_s3_warehouse_rerun_skips_changed_object_reread(spark, s3_env, s3_prefix, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    landing, warehouse = roots(s3_prefix)
    client = s3_env.client()
    put_files(client, landing, LANDING)
    spool = tmp_path / "spool"

    ingest(landing, warehouse, "--set", f"s3.spool_dir={spool}")

    (report,) = reports(s3_env, warehouse)
    assert counts(report) == EXPECTED_COUNTS
    assert report["landing"] == landing and report["warehouse"] == warehouse
    assert report["extras"]["s3_landing_read"].startswith("spool (3 objects, ")
    assert list(spool.iterdir()) == []  # the spool was used and removed
    assert_contacts(spark, s3_env, warehouse)
    event_columns = ["tenant_id", "contact_key", "event_text", "event_timestamp"]
    events = read_s3_table(spark, s3_env, warehouse, "contact_events", event_columns)
    assert_df_equality(
        events,
        spark.createDataFrame(
            [("acme", "abc1234", "logged in", 1234567900), ("acme", "abc1234", "signed up", 1234567890)],
            "tenant_id STRING, contact_key STRING, event_text STRING, event_timestamp BIGINT",
        ),
        ignore_nullable=True,
    )
    quarantine = read_s3_table(spark, s3_env, warehouse, "quarantine", ["tenant_id", "source_file", "line_number", "error_code"])
    assert_df_equality(
        quarantine,
        spark.createDataFrame(
            [
                ("acme", "tenant=acme/identify/dt=2024-03-01/identify.jsonl", 3, "missing_required_field"),
                ("acme", "tenant=acme/track/dt=2024-03-01/track.jsonl.gz", 3, "malformed_json"),
            ],
            "tenant_id STRING, source_file STRING, line_number BIGINT, error_code STRING",
        ),
        ignore_nullable=True,
    )
    # The manifest names every object by its S3 ETag and size.
    manifest = read_s3_table(spark, s3_env, warehouse, "ingest_files", ["source_file", "size_bytes", "etag", "status"])
    heads = {rel: client.head_object(Bucket=BUCKET, Key=f"{landing.removeprefix(f's3://{BUCKET}/')}/{rel}") for rel in LANDING}
    assert_df_equality(
        manifest,
        spark.createDataFrame(
            sorted((rel, h["ContentLength"], h["ETag"].strip('"'), "processed") for rel, h in heads.items()),
            "source_file STRING, size_bytes BIGINT, etag STRING, status STRING",
        ),
        ignore_nullable=True,
    )
    versions = {t: DeltaTable(f"{warehouse}/{t}", storage_options=s3_env.delta_options()).version()
                for t in ("contacts", "contact_events", "contact_accounts", "quarantine", "ingest_files")}

    ingest(landing, warehouse, "--set", f"s3.spool_dir={spool}")

    first, second = reports(s3_env, warehouse)
    assert first["run_id"] == report["run_id"]
    assert second["totals"]["files_skipped"] == 3 and second["totals"]["records_read"] == 0
    assert "s3_landing_read" not in second["extras"]  # nothing new: nothing downloaded
    for table, version in versions.items():
        assert DeltaTable(f"{warehouse}/{table}", storage_options=s3_env.delta_options()).version() == version
    assert_contacts(spark, s3_env, warehouse)

    # A rewritten object of the same size: only its ETag tells the versions apart.
    changed = "tenant=acme/identify/dt=2024-03-01/identify.jsonl"
    rewritten = LANDING[changed].replace('"432535"', '"999999"')
    assert len(rewritten) == len(LANDING[changed])
    put_files(client, landing, {changed: rewritten})

    ingest(landing, warehouse, "--set", f"s3.spool_dir={spool}")

    *_, third = reports(s3_env, warehouse)
    assert third["totals"]["files_read"] == 1 and third["totals"]["files_skipped"] == 2
    assert third["extras"]["s3_landing_read"].startswith("spool (1 objects, ")
    assert_contacts(spark, s3_env, warehouse, [*EXPECTED_CONTACTS, ("acme", "999999", "anna@madkudu.com", "{}")])
    head = client.head_object(Bucket=BUCKET, Key=f"{landing.removeprefix(f's3://{BUCKET}/')}/{changed}")
    manifest = read_s3_table(spark, s3_env, warehouse, "ingest_files", ["source_file", "etag", "run_id"])
    assert manifest.where(f"source_file = '{changed}'").select("etag", "run_id").collect() == [
        (head["ETag"].strip('"'), third["run_id"])
    ]
    quarantine = read_s3_table(spark, s3_env, warehouse, "quarantine", ["source_file", "line_number"])
    assert quarantine.count() == 2  # the changed file's old quarantine row was replaced, not doubled
    assert list(spool.iterdir()) == []

    # Nothing secret in the console, the logs or the reports.
    output = capsys.readouterr()
    texts = [output.out, output.err, caplog.text, json.dumps(first), json.dumps(second), json.dumps(third)]
    assert "feedlake run" in output.out
    for secret in (s3_env.secret_key, s3_env.access_key):
        assert not any(secret in text for text in texts)


class FailBeforeMerge(IngestHook):
    def before_merge(self, context, stream, batch):
        raise RuntimeError("merge refused by the test")


def test_the_spool_is_removed_when_the_run_fails(spark, config, s3_env, s3_prefix, tmp_path):
    landing, warehouse = roots(s3_prefix)
    put_files(s3_env.client(), landing, LANDING)
    spool = tmp_path / "spool"
    run_config = replace(config, job={**config.job, "s3": {"read_mode": "spool", "spool_dir": str(spool)}})
    engine = engine_for(spark, warehouse, run_config)
    with pytest.raises(RuntimeError, match="merge refused by the test"):
        run_ingest(spark, run_config, engine, IngestRequest(landing, warehouse), hooks=[FailBeforeMerge()])
    assert spool.is_dir() and list(spool.iterdir()) == []


def test_credentials_from_a_profile(spark, config, s3_env, s3_prefix, tmp_path, monkeypatch):
    """No key variables: boto3 (listing, reports) and delta-rs (tables) find the keys through AWS_PROFILE."""
    (tmp_path / "aws-config").write_text("[profile feedlake-test]\nregion = us-east-1\n")
    (tmp_path / "aws-credentials").write_text(
        f"[feedlake-test]\naws_access_key_id = {s3_env.access_key}\naws_secret_access_key = {s3_env.secret_key}\n"
    )
    landing, warehouse = roots(s3_prefix)
    put_files(s3_env.client(), landing, LANDING)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_PROFILE", "feedlake-test")

    assert [f.source_file for f in discover(landing)] == sorted(LANDING)
    write_text(f"{warehouse}/_reports/profile.json", "{}")
    engine = engine_for(spark, warehouse, config)
    engine.ensure(config.table("contacts"))

    assert read_text(f"{warehouse}/_reports/profile.json") == "{}"
    assert engine.version(config.table("contacts")) == 0
    assert DeltaTable(f"{warehouse}/contacts", storage_options=s3_env.delta_options()).version() == 0


@pytest.mark.system  # a fresh process with its own Spark (process boundary, issue 14)
def test_direct_reads_in_the_tasks_with_the_endpoint_from_conf_only(spark, s3_env, s3_prefix):
    """A fresh process (its own Spark): tasks stream the objects; AWS_ENDPOINT_URL is unset,
    so boto3 on the driver, boto3 in the tasks and delta-rs all get the endpoint from conf."""
    landing, warehouse = roots(s3_prefix)
    put_files(s3_env.client(), landing, LANDING)
    command = [
        sys.executable, "-m", "feedlake.app.cli", "ingest", "--landing", landing, "--warehouse", warehouse,
        "--engine", "delta-rs", "--set", "s3.read_mode=direct", "--set", f"s3.endpoint_url={s3_env.endpoint_url}",
        "--set", "spark.conf.spark.driver.memory=1g",
    ]
    done = subprocess.run(
        command, cwd=REPO, env=subprocess_env(s3_env, AWS_ENDPOINT_URL=None), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (report,) = reports(s3_env, warehouse)
    assert report["extras"]["s3_landing_read"] == "direct"
    assert counts(report) == EXPECTED_COUNTS
    assert_contacts(spark, s3_env, warehouse)
    for secret in (s3_env.secret_key, s3_env.access_key):
        assert secret not in done.stdout and secret not in done.stderr
