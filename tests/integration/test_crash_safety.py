"""A run killed with SIGKILL at any point is finished by the next run: same tables as a clean run (issue #13).

The landing zone is the bundled sample (two tenants; identify, track, group and metric
exports, with quarantined records and duplicates). A watcher counts the Delta commits
of the warehouse (every ``_delta_log/<version>.json`` past a table's creation) and kills
the whole ``feedlake ingest`` process group after the k-th, for several k: between the
business tables, the quarantine, the derived weekly tables and the manifest. The next
run must leave every table exactly as one uninterrupted run does (run ids and times aside).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.same_tables import DATA_TABLES, assert_same_tables

# Process boundary (runs killed with SIGKILL in subprocesses): the second pytest call (issue 14).
pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
TABLES = (*DATA_TABLES, "ingest_files", "metric_records", "account_metrics", "account_metrics_weekly", "activity_weekly")
RUN_TIMEOUT_S = 900


def data_commits(warehouse: Path) -> int:
    """Delta commits after table creation (version 0) across every table of the warehouse."""
    return sum(
        1
        for log in warehouse.glob("*/_delta_log")
        for entry in log.glob("*.json")
        if entry.stem.isdigit() and int(entry.stem) > 0
    )


def ingest_killed_after(landing: Path, warehouse: Path, commits: int) -> int:
    """Start ``feedlake ingest`` in its own process group; SIGKILL it once ``commits`` data commits exist."""
    command = [sys.executable, "-m", "feedlake.app.cli", "ingest", "--landing", str(landing), "--warehouse", str(warehouse),
               "--engine", "delta-rs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if warehouse.exists() and data_commits(warehouse) >= commits:
                os.killpg(process.pid, signal.SIGKILL)  # the driver and its JVM, no chance to clean up
                break
            time.sleep(0.02)
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def sample_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("crash") / "landing"
    shutil.copytree(REPO / "sample" / "landing", landing)
    return landing


@pytest.fixture(scope="module")
def clean_warehouse(spark, sample_landing, tmp_path_factory) -> Path:
    warehouse = tmp_path_factory.mktemp("clean") / "warehouse"
    assert run_cli("ingest", "--landing", str(sample_landing), "--warehouse", str(warehouse), "--engine", "delta-rs") == 0
    return warehouse


def test_a_run_commits_each_table_once_at_most(clean_warehouse):
    """One commit per table per run (issue 12 item 3): after creation (version 0), one version each."""
    versions = {
        log.parent.name: max(int(entry.stem) for entry in log.glob("*.json") if entry.stem.isdigit())
        for log in clean_warehouse.glob("*/_delta_log")
    }
    assert set(TABLES) <= set(versions)
    assert {name: v for name, v in versions.items() if v > 1} == {}


# The sample run makes 12 data commits (one per table it writes): k stays below the last.
@pytest.mark.parametrize("commits", [1, 5, 11])
def test_a_run_killed_after_the_kth_commit_is_finished_by_the_next(spark, sample_landing, clean_warehouse, tmp_path, commits):
    warehouse = tmp_path / "warehouse"
    code = ingest_killed_after(sample_landing, warehouse, commits)
    assert code == -signal.SIGKILL, f"the run ended by itself (exit {code}) before {commits} commits: raise no k past a run"
    assert run_cli("ingest", "--landing", str(sample_landing), "--warehouse", str(warehouse), "--engine", "delta-rs") == 0
    assert_same_tables(spark, warehouse, clean_warehouse, TABLES)
    # And a third run has nothing left to do.
    before = data_commits(warehouse)
    assert run_cli("ingest", "--landing", str(sample_landing), "--warehouse", str(warehouse), "--engine", "delta-rs") == 0
    assert data_commits(warehouse) == before
