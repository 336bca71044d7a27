"""The delta-spark engine renders the same merge plans as delta-rs and gives the same tables.

Needs the Delta Lake JVM jar, resolved by Spark from Maven (``spark.jars.packages``).
Where no Maven repository is reachable (e.g. a sandbox without internet) the test is
skipped with the reason; everything else in the suite runs with delta-rs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality

from tests.conftest import read_table
from tests.integration.test_ingest_cli import BATCH_NEW, BATCH_OLD, SEED_000, write_files

MAVEN = ("repo1.maven.org", 443)
TABLES = ["contacts", "contact_events", "contact_accounts", "accounts", "quarantine"]


def _ivy_has_delta() -> bool:
    cache = Path.home() / ".ivy2.5.2" / "jars"
    legacy = Path.home() / ".ivy2" / "jars"
    return any(p.is_dir() and any(p.glob("io.delta_delta-spark*.jar")) for p in (cache, legacy))


def _maven_reachable() -> bool:
    try:
        with socket.create_connection(MAVEN, timeout=3):
            return True
    except OSError:
        return False


requires_delta_jar = pytest.mark.skipif(
    not (_ivy_has_delta() or _maven_reachable()),
    reason="delta-spark needs the Delta Lake JVM jar: Maven Central (repo1.maven.org) is unreachable and no "
    "io.delta jar is in the local Ivy cache, so Spark cannot load io.delta.tables.DeltaTable here",
)


def _ingest(engine: str, landing: Path, warehouse: Path) -> None:
    cmd = [sys.executable, "-m", "feedlake.cli", "ingest", "--landing", str(landing), "--warehouse", str(warehouse),
           "--engine", engine, "--set", "spark.master=local[2]"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.delta_spark
@requires_delta_jar
def test_delta_spark_and_delta_rs_build_identical_tables(spark, tmp_path):
    for name in ("rs", "spark"):
        root = tmp_path / name / "landing"
        for batch in (SEED_000, BATCH_NEW, BATCH_OLD):
            write_files(root, batch)
            _ingest("delta-rs" if name == "rs" else "delta-spark", root, tmp_path / name / "warehouse")
    for table in TABLES:
        assert_df_equality(
            read_table(spark, tmp_path / "rs" / "warehouse", table),
            read_table(spark, tmp_path / "spark" / "warehouse", table),
        )
