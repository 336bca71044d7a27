"""Smoke test: the delta-spark engine loads in the test session and MERGEs (issue #11).

The test session loads the pinned Delta JVM jar from the local Ivy cache (``python -m
feedlake.app.jars`` warms it; ``.ci/run`` does it in its install step). Nothing here skips:
when the jar does not load, this test fails. The end-to-end proof that both engines build
the same tables is tests/integration/test_engine_parity.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from chispa import assert_df_equality

from feedlake.delta.engines import RETENTION_CHECK, DeltaRsEngine, DeltaSparkEngine, make_engine
from feedlake.delta.merge import plan_for
from feedlake.erasure.forget import ForgetResult, vacuum_tables
from feedlake.settings.config import TableSpec
from feedlake.settings.session import sql_conf_overlay

pytestmark = pytest.mark.delta_spark

TABLE = TableSpec(
    "smoke", (("tenant_id", "string"), ("k", "string"), ("v", "string"), ("_seq", "string")), ("tenant_id", "k"), "row"
)
SCHEMA = "tenant_id STRING, k STRING, v STRING, _seq STRING"


def group_stages(spark, group: str, action: Callable[[], object]) -> list[int]:
    """The stage ids of the Spark jobs ``action`` runs, tagged with job group ``group``."""
    tracker, context = spark.sparkContext.statusTracker(), spark.sparkContext
    context.setJobGroup(group, group)
    try:
        action()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    return [s for j in tracker.getJobIdsForGroup(group) for s in tracker.getJobInfo(j).stageIds]


def test_delta_spark_engine_loads_and_merges_by_sequence(spark, tmp_path):
    """engine delta-spark is chosen (no fallback) and a MERGE keeps the row of the higher sequence (seed 000 FAQ)."""
    engine = make_engine(spark, str(tmp_path / "wh"), "delta-spark")
    assert isinstance(engine, DeltaSparkEngine)
    first = spark.createDataFrame([("t", "a", "old", "2"), ("t", "b", "b1", "1")], SCHEMA)
    engine.merge(TABLE, first, plan_for(TABLE, "t"))
    result = engine.merge(TABLE, spark.createDataFrame([("t", "a", "older", "1"), ("t", "b", "b2", "3")], SCHEMA),
                          plan_for(TABLE, "t"))
    assert (result.inserted, result.updated) == (0, 1)
    expected = spark.createDataFrame([("t", "a", "old", "2"), ("t", "b", "b2", "3")], SCHEMA)
    assert_df_equality(engine.read(TABLE, ["t"]), expected, ignore_row_order=True, ignore_nullable=True)


def test_a_local_vacuum_lists_the_table_in_a_few_tasks_and_purges(spark, tmp_path):
    """A purge VACUUM on a local master: old files gone, in tens of tasks, not Spark's 10,000 listing tasks.

    ``LOCAL_MASTER_CONF`` (feedlake.settings.session) caps
    ``spark.sql.sources.parallelPartitionDiscovery.parallelism``, the partition count
    delta-spark's VACUUM repartitions its folder listing to (measured: 38 s → 2 s a table).
    """
    engine = make_engine(spark, str(tmp_path / "wh"), "delta-spark")
    engine.merge(TABLE, spark.createDataFrame([("t", "a", "old", "1")], SCHEMA), plan_for(TABLE, "t"))
    engine.merge(TABLE, spark.createDataFrame([("t", "a", "new", "2")], SCHEMA), plan_for(TABLE, "t"))
    folder = tmp_path / "wh" / "smoke" / "tenant_id=t"
    assert len(list(folder.glob("*.parquet"))) == 2
    stages = group_stages(spark, "feedlake-vacuum-probe", lambda: engine.vacuum(TABLE, 0, purge=True))
    tracker = spark.sparkContext.statusTracker()
    tasks = sum(tracker.getStageInfo(s).numTasks for s in stages if tracker.getStageInfo(s) is not None)
    assert 0 < tasks <= 200, tasks  # 70,054 with Spark's default listing parallelism
    assert len(list(folder.glob("*.parquet"))) == 1
    assert_df_equality(engine.read(TABLE, ["t"]), spark.createDataFrame([("t", "a", "new", "2")], SCHEMA), ignore_nullable=True)


def merge_stages(spark, engine, rows, group: str) -> int:
    """The number of stages of one MERGE's Spark jobs (skipped ones included)."""
    return len(group_stages(spark, group, lambda: engine.merge(TABLE, spark.createDataFrame(rows, SCHEMA),
                                                               plan_for(TABLE, ["t", "u"]))))


def test_a_local_merge_writes_without_shuffling_by_tenant_first(spark, tmp_path):
    """On a local master (``LOCAL_MASTER_CONF``) a MERGE writes its output as it is: Delta's shuffle by the
    partition column before the write, meant for fewer files per partition on a cluster, is a stage fewer."""
    engine = make_engine(spark, str(tmp_path / "wh"), "delta-spark")
    engine.merge(TABLE, spark.createDataFrame([("t", "a", "a1", "1"), ("u", "a", "a1", "1")], SCHEMA), plan_for(TABLE, ["t", "u"]))
    local = merge_stages(spark, engine, [("t", "a", "a2", "2"), ("u", "b", "b1", "1")], "feedlake-merge-local")
    with sql_conf_overlay(spark, {"spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true"}):
        shuffled = merge_stages(spark, engine, [("t", "a", "a3", "3"), ("u", "c", "c1", "1")], "feedlake-merge-shuffled")
    assert local < shuffled, (local, shuffled)
    expected = spark.createDataFrame(
        [("t", "a", "a3", "3"), ("u", "a", "a1", "1"), ("u", "b", "b1", "1"), ("u", "c", "c1", "1")], SCHEMA
    )
    assert_df_equality(engine.read(TABLE), expected, ignore_row_order=True, ignore_nullable=True)


def test_purge_vacuums_run_at_once_under_one_retention_overlay(spark, tmp_path, monkeypatch):
    """``feedlake forget --purge-now`` VACUUMs its touched tables at once (``vacuum_tables``), all under one
    overlay of Delta's retention check: each table loses its old files, and the session's check is as before.

    The tables are written with delta-rs (milliseconds a commit; the same Delta protocol) and
    vacuumed by delta-spark, whose VACUUMs take long enough to overlap.
    """
    writer = DeltaRsEngine(spark, str(tmp_path / "wh"))
    tables = [replace(TABLE, name=f"smoke_{i}") for i in range(2)]
    for table in tables:
        writer.merge(table, spark.createDataFrame([("t", "a", "old", "1")], SCHEMA), plan_for(table, "t"))
        writer.merge(table, spark.createDataFrame([("t", "a", "new", "2")], SCHEMA), plan_for(table, "t"))
    engine = make_engine(spark, str(tmp_path / "wh"), "delta-spark")
    spans: list[tuple[float, float]] = []
    vacuum = engine.vacuum

    def timed(table: TableSpec, hours: int, purge: bool = False) -> int | None:
        start = time.monotonic()
        try:
            return vacuum(table, hours, purge)
        finally:
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(engine, "vacuum", timed)
    before = spark.conf.get(RETENTION_CHECK, None)
    result = ForgetResult("t", [])
    status = vacuum_tables(engine, tables, 168, True, result)
    assert (status, result.vacuumed) == (
        "purged: old data files and log entries removed", {t.name: "purged" for t in tables}
    )
    at_once = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert at_once > 1, spans
    assert spark.conf.get(RETENTION_CHECK, None) == before
    for table in tables:
        assert len(list((tmp_path / "wh" / table.name / "tenant_id=t").glob("*.parquet"))) == 1
        assert_df_equality(writer.read(table, ["t"]), spark.createDataFrame([("t", "a", "new", "2")], SCHEMA),
                           ignore_nullable=True)
