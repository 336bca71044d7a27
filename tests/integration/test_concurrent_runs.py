"""Concurrent `feedlake ingest` runs on one warehouse (issue #13 item 6).

Runs on different tenants write side by side; runs on the same tenant take turns
(the tenant lease, feedlake.ingest.lease) instead of failing on a commit conflict or losing
an interleaved update. Either way the tables end as one run over all the files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from feedlake.ingest.lease import tenant_leases
from tests.conftest import jsonl, run_cli, write_files
from tests.integration.same_tables import DATA_TABLES, assert_same_tables

# Process boundary (concurrent runs in their own processes): the second pytest call (issue 14).
pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]

FIRST = {
    "tenant=acme/identify/dt=2024-03-01/a.jsonl": jsonl(
        '{"contact_key":"c1", "email":"ada@acme.com", "plan":"free"}',
        '{"contact_key":"c2", "email":"bob@acme.com"}',
    ),
    "tenant=acme/track/dt=2024-03-01/a.jsonl": jsonl('{"event_text":"login", "event_timestamp":1709251200, "contact_key":"c1"}'),
    "tenant=globex/identify/dt=2024-03-01/g.jsonl": jsonl('{"contact_key":"g1", "email":"gus@globex.com"}'),
}
SECOND = {
    # The same contacts again, a day later: attribute by attribute, the later values win.
    "tenant=acme/identify/dt=2024-03-02/b.jsonl": jsonl(
        '{"contact_key":"c1", "email":"ada@acme.com", "plan":"pro"}',
        '{"contact_key":"c2", "email":"bob@acme.com", "title":"CTO"}',
    ),
    "tenant=acme/track/dt=2024-03-02/b.jsonl": jsonl('{"event_text":"export", "event_timestamp":1709337600, "contact_key":"c2"}'),
    "tenant=globex/identify/dt=2024-03-02/h.jsonl": jsonl('{"contact_key":"g1", "email":"gus@globex.com", "seats":3}'),
}


class Run:
    """A ``feedlake ingest`` process whose log lines are collected as they come."""

    def __init__(self, landing: Path, warehouse: Path, *tenants: str):
        self.process = start(landing, warehouse, *tenants)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self.reader.start()

    def waiting(self) -> bool:
        return any("waiting for it" in line for line in list(self.lines))

    def finish(self) -> str:
        out = self.process.stdout.read()
        self.process.wait(timeout=900)
        self.reader.join(timeout=60)
        log = "".join(self.lines)
        assert self.process.returncode == 0, out[-3000:] + log[-5000:]
        return log


def start(landing: Path, warehouse: Path, *tenants: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "feedlake.app.cli", "ingest", "--landing", str(landing), "--warehouse", str(warehouse),
               "--engine", "delta-rs", "--set", "spark.conf.spark.driver.memory=1g"]
    if tenants:
        command += ["--tenant", *tenants]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def expected(spark, tmp_path) -> Path:
    """One run over every file of both landing zones: what the concurrent runs must end with."""
    landing = write_files(tmp_path / "all", {**FIRST, **SECOND})
    warehouse = tmp_path / "expected"
    assert run_cli("ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", "delta-rs") == 0
    return warehouse


def test_same_tenant_runs_take_turns_and_lose_nothing(spark, tmp_path, expected):
    first, second = write_files(tmp_path / "first", FIRST), write_files(tmp_path / "second", SECOND)
    warehouse = tmp_path / "warehouse"
    # Hold both tenants until the two runs wait for them, so that they certainly meet at the lease.
    with tenant_leases(str(warehouse), ["acme", "globex"]):
        runs = [Run(first, warehouse), Run(second, warehouse)]
        deadline = time.monotonic() + 600
        while not all(run.waiting() for run in runs) and time.monotonic() < deadline:
            assert all(run.process.poll() is None for run in runs), "a run ended while the tenants were leased"
            time.sleep(0.2)
    logs = [run.finish() for run in runs]
    assert not any("CommitFailedError" in log or "Traceback" in log for log in logs)
    assert_same_tables(spark, warehouse, expected, [t for t in DATA_TABLES if t != "quarantine"])


def test_different_tenants_write_side_by_side(spark, tmp_path, expected):
    landing = write_files(tmp_path / "all", {**FIRST, **SECOND})
    warehouse = tmp_path / "warehouse"
    runs = [Run(landing, warehouse, "acme"), Run(landing, warehouse, "globex")]
    logs = [run.finish() for run in runs]
    assert not any("waiting for it" in log for log in logs)
    # A fresh CLI process listed a landing zone within spark.small_batch.max_bytes before starting its driver.
    assert all("small landing input" in log and "the driver JVM starts with -XX:TieredStopAtLevel=1" in log for log in logs)
    assert_same_tables(spark, warehouse, expected, [t for t in DATA_TABLES if t != "quarantine"])
