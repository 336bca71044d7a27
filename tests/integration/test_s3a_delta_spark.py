"""delta-spark on S3 through S3A (issue #11 item 4), against the SeaweedFS server of the test run.

A fresh process, as a user runs it: only the standard AWS variables (keys, region,
``AWS_ENDPOINT_URL``) point it at the server. Spark gets ``hadoop-aws`` at the Hadoop
version pyspark ships (``feedlake.settings.session.jvm_packages``), reads the landing objects
itself in the tasks (``s3.read_mode=direct``), and delta-spark writes the warehouse
through S3A; ``s3://`` is served by S3A as EMR serves it. delta-rs then reads the same
tables, so both engines agree on what is on S3.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import without_quality
from tests.integration.conftest import put_files, s3_keys, subprocess_env
from tests.integration.test_s3_ingest import EXPECTED_COUNTS, LANDING, assert_contacts, counts, reports

pytestmark = [pytest.mark.s3, pytest.mark.delta_spark, pytest.mark.system]

REPO = Path(__file__).resolve().parents[2]


def ingest_with_delta_spark(server, landing: str, warehouse: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "feedlake.app.cli", "ingest", "--landing", landing, "--warehouse", warehouse,
        "--engine", "delta-spark", "--set", "s3.read_mode=direct", "--set", "spark.conf.spark.driver.memory=1g",
        *without_quality(),  # quality on S3 is under test in test_report_html_s3
    ]
    return subprocess.run(command, cwd=REPO, env=subprocess_env(server), capture_output=True, text=True, timeout=900)


def commit_engines(client, warehouse: str, table: str) -> set[str]:
    """The ``engineInfo`` of every commit in a table's ``_delta_log`` on S3."""
    bucket, _, prefix = warehouse.split("://", 1)[1].partition("/")
    engines = set()
    for key in s3_keys(client, warehouse):
        if key.startswith(f"{table}/_delta_log/") and key.endswith(".json"):
            body = client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read().decode()
            engines |= {json.loads(line)["commitInfo"].get("engineInfo", "") for line in body.splitlines() if "commitInfo" in line}
    return engines


def test_delta_spark_reads_s3a_landing_and_writes_an_s3_warehouse(spark, s3_env, s3_prefix):
    landing = s3_prefix.replace("s3://", "s3a://", 1) + "/landing"
    warehouse = f"{s3_prefix}/warehouse"
    put_files(s3_env.client(), landing.replace("s3a://", "s3://", 1), LANDING)

    done = ingest_with_delta_spark(s3_env, landing, warehouse)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    assert "(engine delta-spark)" in done.stdout
    (report,) = reports(s3_env, warehouse)
    assert report["engine"] == "delta-spark"
    assert report["extras"]["s3_landing_read"] == "direct"
    assert counts(report) == EXPECTED_COUNTS
    # delta-rs reads what delta-spark wrote through S3A.
    assert_contacts(spark, s3_env, warehouse)
    assert any("Delta-Lake" in e for e in commit_engines(s3_env.client(), warehouse, "contacts"))
    for secret in (s3_env.secret_key, s3_env.access_key):
        assert secret not in done.stdout and secret not in done.stderr

    rerun = ingest_with_delta_spark(s3_env, landing, warehouse)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert [r["totals"]["files_skipped"] for r in reports(s3_env, warehouse)] == [0, len(LANDING)]
    assert_contacts(spark, s3_env, warehouse)
