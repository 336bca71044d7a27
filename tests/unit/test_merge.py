"""MERGE plans (declared once) applied through the embedded delta-rs engine on real tables."""

import datetime as dt

import pytest
from chispa import assert_df_equality

from feedlake.delta.engines import DeltaRsEngine
from feedlake.delta.merge import UnsafeLiteralError, plan_for, render_sql
from feedlake.settings.config import build_config

TABLES = {
    "events": {
        "key": ["tenant_id", "k"],
        "policy": "row",
        "columns": {"tenant_id": "string", "k": "string", "v": "string", "_seq": "string"},
    },
    "log": {
        "key": ["tenant_id", "f", "line"],
        "policy": "replace",
        "columns": {"tenant_id": "string", "f": "string", "line": "bigint", "msg": "string"},
    },
    "daily": {
        "key": ["tenant_id", "d"],
        "policy": "replace",
        "columns": {"tenant_id": "string", "d": "date", "n": "bigint"},
    },
}
EVENTS = "tenant_id STRING, k STRING, v STRING, _seq STRING"
LOG = "tenant_id STRING, f STRING, line BIGINT, msg STRING"


@pytest.fixture
def tables():
    return build_config({}, TABLES).tables


@pytest.mark.parametrize(
    ("table", "tenants", "on", "update_when"),
    [
        ("events", "acme", "t.tenant_id IN ('acme') AND t.`tenant_id` = s.`tenant_id` AND t.`k` = s.`k`", "s._seq >= t._seq"),
        ("log", ["b", "a", "b"], "t.tenant_id IN ('a', 'b') AND (t.`tenant_id` IS NOT DISTINCT FROM s.`tenant_id`) AND "
         "(t.`f` IS NOT DISTINCT FROM s.`f`) AND (t.`line` IS NOT DISTINCT FROM s.`line`)", None),
    ],
)
def test_plans_render_policy_as_sql(tables, table, tenants, on, update_when):
    assert render_sql(plan_for(tables[table], tenants)) == (on, update_when)


@pytest.mark.parametrize("tenant", ["o'brien", "a\\", "x') OR 1=1 --", "a b", "a\n", ""])
def test_a_tenant_outside_the_id_pattern_is_never_rendered(tables, tenant):
    with pytest.raises(UnsafeLiteralError):
        plan_for(tables["events"], tenant)


def test_row_policy_keeps_the_higher_sequence_whatever_the_order(spark, tmp_path, tables):
    newer = spark.createDataFrame([("a", "k1", "new", "2"), ("a", "k2", "only", "1")], EVENTS)
    older = spark.createDataFrame([("a", "k1", "old", "1"), ("a", None, "null key", "1")], EVENTS)
    results = []
    for name, order in (("forward", [older, newer]), ("reverse", [newer, older])):
        engine = DeltaRsEngine(spark, str(tmp_path / name))
        for batch in order:
            engine.merge(tables["events"], batch, plan_for(tables["events"], "a"))
        results.append(engine.read(tables["events"]).orderBy("k"))
    assert_df_equality(results[0], results[1], ignore_row_order=True)
    expected = spark.createDataFrame([("a", None, "null key", "1"), ("a", "k1", "new", "2"), ("a", "k2", "only", "1")], EVENTS)
    assert_df_equality(results[0], expected, ignore_row_order=True, ignore_nullable=True)


def test_replace_policy_matches_null_keys_and_reruns_are_stable(spark, tmp_path, tables):
    engine = DeltaRsEngine(spark, str(tmp_path / "wh"))
    rows = spark.createDataFrame([("a", "f", None, "whole file"), ("a", "f", 3, "line 3")], LOG)
    first = engine.merge(tables["log"], rows, plan_for(tables["log"], "a"))
    again = engine.merge(tables["log"], rows, plan_for(tables["log"], "a"))
    assert (first.inserted, again.inserted, again.updated) == (2, 0, 2)
    assert_df_equality(engine.read(tables["log"]), rows, ignore_row_order=True, ignore_nullable=True)


def test_merge_is_scoped_to_one_tenant(spark, tmp_path, tables):
    engine = DeltaRsEngine(spark, str(tmp_path / "wh"))
    engine.merge(tables["events"], spark.createDataFrame([("a", "k", "A", "1")], EVENTS), plan_for(tables["events"], "a"))
    engine.merge(tables["events"], spark.createDataFrame([("b", "k", "B", "9")], EVENTS), plan_for(tables["events"], "b"))
    expected = spark.createDataFrame([("a", "k", "A", "1"), ("b", "k", "B", "9")], EVENTS)
    assert_df_equality(engine.read(tables["events"]), expected, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(engine.read(tables["events"], ["b"]), expected.where("tenant_id = 'b'"), ignore_nullable=True)


def test_ensure_migrates_an_older_table_by_adding_declared_columns(spark, tmp_path, tables):
    engine = DeltaRsEngine(spark, str(tmp_path / "wh"))
    engine.merge(tables["events"], spark.createDataFrame([("a", "k", "v", "1")], EVENTS), plan_for(tables["events"], "a"))
    grown = build_config({}, {"events": {**TABLES["events"], "columns": {**TABLES["events"]["columns"], "seen": "timestamp"}}})
    engine.ensure(grown.tables["events"])
    expected = spark.createDataFrame([("a", "k", "v", "1", None)], EVENTS + ", seen TIMESTAMP")
    assert_df_equality(engine.read(grown.tables["events"]), expected, ignore_nullable=True)


def test_ensure_all_creates_every_table_then_migrates_columns_and_properties(spark, any_engine, tables):
    """Every declared table exists after ``ensure_all``; a later declaration's new column and
    property reach the stored table, and its rows stay (conf/tables.yaml: additive migrations)."""
    from deltalake import DeltaTable

    engine = any_engine
    assert [(engine.exists(t), engine.version(t)) for t in tables.values()] == [(False, None)] * len(tables)
    engine.ensure_all(list(tables.values()))
    assert [(engine.exists(t), engine.version(t)) for t in tables.values()] == [(True, 0)] * len(tables)
    stored = {name: DeltaTable(f"{engine.warehouse}/{name}") for name in tables}
    assert {name: dt.schema().to_arrow().names for name, dt in stored.items()} == {
        name: list(t.column_names) for name, t in tables.items()
    }
    engine.merge(tables["events"], spark.createDataFrame([("a", "k", "v", "1")], EVENTS), plan_for(tables["events"], "a"))
    grown = {**TABLES["events"], "columns": {**TABLES["events"]["columns"], "seen": "timestamp"},
             "properties": {"delta.dataSkippingNumIndexedCols": "3"}}
    later = type(engine)(spark, engine.warehouse)  # a later run: nothing cached from the first
    later.ensure_all(list(build_config({}, {**TABLES, "events": grown}).tables.values()))
    events = DeltaTable(f"{engine.warehouse}/events")
    assert events.metadata().configuration.get("delta.dataSkippingNumIndexedCols") == "3"
    assert events.schema().to_arrow().names == ["tenant_id", "k", "v", "_seq", "seen"]
    expected = spark.createDataFrame([("a", "k", "v", "1", None)], EVENTS + ", seen TIMESTAMP")
    assert_df_equality(later.read(build_config({}, {"events": grown}).tables["events"]), expected, ignore_nullable=True)


TYPED = {
    "key": ["tenant_id", "k"],
    "policy": "row",
    "columns": {
        "tenant_id": "string", "k": "string", "n": "bigint", "i": "int", "x": "double", "b": "boolean",
        "d": "date", "ts": "timestamp", "_seq": "string",
    },
}
TYPED_DDL = "tenant_id STRING, k STRING, n BIGINT, i INT, x DOUBLE, b BOOLEAN, d DATE, ts TIMESTAMP, _seq STRING"


@pytest.mark.parametrize("staged", [True, False], ids=["parquet-staging", "arrow-collect"])
def test_every_column_type_crosses_to_delta_rs_unchanged_and_staging_is_removed(spark, tmp_path, monkeypatch, staged):
    import tempfile

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    table = build_config({}, {"typed": TYPED}).tables["typed"]
    rows = spark.createDataFrame(
        [
            ("a", "k1", 2**40, 7, 1.5, True, dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 23, 59, 59, 123456), "1"),
            ("a", "k2", None, None, None, None, None, None, "1"),
            ("a", "k3", -1, 0, -0.25, False, dt.date(1999, 12, 31), dt.datetime(1970, 1, 1), "1"),
        ],
        TYPED_DDL,
    ).repartition(3)
    engine = DeltaRsEngine(spark, str(tmp_path / "wh"))
    engine.stage_locally = staged
    result = engine.merge(table, rows, plan_for(table, "a"))
    assert (result.inserted, result.updated) == (3, 0)
    assert_df_equality(engine.read(table), rows, ignore_row_order=True, ignore_nullable=True)
    assert list(spool.iterdir()) == []



@pytest.mark.parametrize("driver_read_rows", [0, 1_000], ids=["parquet-scan", "arrow"])
def test_a_change_feed_past_driver_read_rows_is_a_parquet_scan_of_every_column_type(spark, tmp_path, driver_read_rows):
    """delta-rs's change feed crosses the driver batch by batch: past ``driver_read_rows``
    rows Spark scans a staged Parquet file (a backfill's feed is the table's whole history)."""
    table = build_config({}, {"typed": {**TYPED, "properties": {"delta.enableChangeDataFeed": True}}}).tables["typed"]
    first = spark.createDataFrame(
        [
            ("a", "k1", 2**40, 7, 1.5, True, dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 23, 59, 59, 123456), "1"),
            ("a", "k2", None, None, None, None, None, None, "1"),
        ],
        TYPED_DDL,
    )
    second = spark.createDataFrame([("a", "k1", -1, 0, -0.25, False, dt.date(1999, 12, 31), dt.datetime(1970, 1, 1), "2")],
                                   TYPED_DDL)
    engine = DeltaRsEngine(spark, str(tmp_path / "wh"), driver_read_rows=driver_read_rows)
    for rows in (first, second):
        engine.merge(table, rows, plan_for(table, "a"))
    feed = engine.changes(table, 0)
    staged = feed.inputFiles()
    assert bool(staged) == (driver_read_rows == 0)
    assert all(f.endswith(".parquet") and "feedlake-staging-" in f for f in staged)
    stored = [tuple(r) for r in first.collect()], [tuple(r) for r in second.collect()]
    expected = spark.createDataFrame(
        [(*stored[0][0], "insert", 1), (*stored[0][1], "insert", 1), (*stored[0][0], "update_preimage", 2),
         (*stored[1][0], "update_postimage", 2)],
        f"{TYPED_DDL}, _change_type STRING, _commit_version BIGINT",
    )
    assert_df_equality(feed, expected, ignore_row_order=True, ignore_nullable=True)
    assert engine.changes(table, 3).count() == 0

SPLITS = {
    # row policy: a newer or equal _seq updates, an older one does not, a new key inserts.
    "events": (
        [("a", "k1", "x", "1"), ("a", "k2", "x", "9"), ("b", "k1", "x", "1")],
        [("a", "k1", "y", "2"), ("a", "k2", "y", "1"), ("a", "k3", "y", "1"), ("b", "k1", "y", "1"), ("c", "k1", "y", "1")],
        {"a": (1, 1), "b": (0, 1), "c": (1, 0)},
    ),
    # replace policy: null keys match null-safe, as in the MERGE.
    "log": (
        [("a", "f", None, "x"), ("a", "f", 3, "x")],
        [("a", "f", None, "y"), ("a", "f", 4, "y"), ("b", "g", None, "y")],
        {"a": (1, 1), "b": (1, 0)},
    ),
    # replace policy on a date key (e.g. the weekly tables): a null date matches only a null date.
    "daily": (
        [("a", dt.date(2024, 3, 4), 1), ("a", None, 1)],
        [("a", dt.date(2024, 3, 4), 2), ("a", None, 2), ("a", dt.date(2024, 3, 11), 2), ("b", None, 2)],
        {"a": (1, 2), "b": (1, 0)},
    ),
}
DDL = {"events": EVENTS, "log": LOG, "daily": "tenant_id STRING, d DATE, n BIGINT"}


@pytest.mark.parametrize("table_name", sorted(SPLITS))
def test_a_multi_tenant_merge_splits_its_counts_per_tenant(spark, any_engine, tables, table_name):
    from feedlake.delta.merge import split_frame

    engine = any_engine
    table = tables[table_name]
    ddl = DDL[table_name]
    stored_rows, incoming_rows, expected = SPLITS[table_name]
    stored = spark.createDataFrame(stored_rows, ddl)
    engine.merge(table, stored, plan_for(table, sorted({r[0] for r in stored_rows})))
    incoming = spark.createDataFrame(incoming_rows, ddl)
    plan = plan_for(table, sorted(expected))
    by_spark = {r["tenant_id"]: (r["inserted"], r["updated"]) for r in split_frame(plan, incoming, engine.read(table)).collect()}
    result = engine.merge(table, incoming, plan, split=True)
    assert result.by_tenant == expected == by_spark
    assert (result.inserted, result.updated) == tuple(map(sum, zip(*expected.values(), strict=True)))


def test_a_merge_splits_its_counts_by_tenant_and_another_column(spark, any_engine, tables):
    """The split the run uses when several streams write one table: per ``tenant_id, _batch_id``."""
    table = tables["events"]
    stored_rows, incoming_rows, _ = SPLITS["events"]
    any_engine.merge(table, spark.createDataFrame(stored_rows, EVENTS), plan_for(table, ["a", "b"]))
    result = any_engine.merge(
        table, spark.createDataFrame(incoming_rows, EVENTS), plan_for(table, ["a", "b", "c"]), split=("tenant_id", "_seq")
    )
    assert result.by_group == {("a", "2"): (0, 1), ("a", "1"): (1, 0), ("b", "1"): (0, 1), ("c", "1"): (1, 0)}
    assert result.by_tenant == {"a": (1, 1), "b": (0, 1), "c": (1, 0)}


@pytest.mark.parametrize("split", [("k",), ("tenant_id", "missing"), ()])
def test_a_split_names_columns_of_the_table_tenant_first(spark, tmp_path, tables, split):
    table = tables["events"]
    rows = spark.createDataFrame([("a", "k", "v", "1")], EVENTS)
    with pytest.raises(ValueError, match="split columns"):
        DeltaRsEngine(spark, str(tmp_path / "wh")).merge(table, rows, plan_for(table, ["a"]), split=split)


def test_a_replayed_split_merge_reports_nothing_for_any_tenant(spark, tmp_path, tables):
    from feedlake.delta.engines import idempotent_writes

    engine = DeltaRsEngine(spark, str(tmp_path / "wh"))
    rows = spark.createDataFrame([("a", "k", "v", "1"), ("b", "k", "v", "1")], EVENTS)
    results = []
    for _ in range(2):
        with idempotent_writes(engine, "batch-1"):
            results.append(engine.merge(tables["events"], rows, plan_for(tables["events"], ["a", "b"]), split=True))
    assert [r.by_tenant for r in results] == [{"a": (1, 0), "b": (1, 0)}, {}]


def test_a_pinned_read_holds_the_rows_read_whatever_is_committed_after(spark, any_engine, tables):
    """``read_pinned``: the rows of ``read`` (a null value too), resolved when read, so a plan
    that refers to them many times plans no table scan again (the moments); a later
    commit does not change them."""
    from feedlake.settings.session import release

    table = tables["events"]
    rows = [("a", "k1", None, "1"), ("a", "k2", "v", "1"), ("b", "k1", "other tenant", "1")]
    any_engine.merge(table, spark.createDataFrame(rows, EVENTS), plan_for(table, ["a", "b"]))
    pinned = any_engine.read_pinned(table, ["a"])
    expected = spark.createDataFrame(rows[:2], EVENTS)
    assert_df_equality(pinned, any_engine.read(table, ["a"]), ignore_row_order=True, ignore_nullable=True)
    any_engine.merge(table, spark.createDataFrame([("a", "k1", "newer", "2"), ("a", "k3", "new", "2")], EVENTS),
                     plan_for(table, ["a"]))
    assert_df_equality(pinned, expected, ignore_row_order=True, ignore_nullable=True)
    moved_on = spark.createDataFrame([("a", "k1", "newer", "2"), ("a", "k2", "v", "1"), ("a", "k3", "new", "2")], EVENTS)
    assert_df_equality(any_engine.read(table, ["a"]), moved_on, ignore_row_order=True, ignore_nullable=True)
    release(pinned)
