"""Slice replacement of derived tables (feedlake.derived.slices) on a real delta-rs table."""

import datetime as dt

import pytest
from chispa import assert_df_equality

from feedlake.delta.engines import DeltaRsEngine
from feedlake.derived.slices import Slices, around, replace_slices
from feedlake.settings.config import build_config

TABLES = {
    "weekly": {
        "key": ["tenant_id", "account_key", "metric", "week_start"],
        "policy": "replace",
        "columns": {"tenant_id": "string", "account_key": "string", "metric": "string", "week_start": "date", "value": "double"},
    }
}
SCHEMA = "tenant_id STRING, account_key STRING, metric STRING, week_start DATE, value DOUBLE"
W1, W2, W3 = dt.date(2024, 3, 4), dt.date(2024, 3, 11), dt.date(2024, 3, 18)


@pytest.fixture
def table_and_engine(spark, tmp_path):
    config = build_config({}, TABLES)
    engine = DeltaRsEngine(spark, str(tmp_path / "warehouse"))
    table = config.table("weekly")
    stored = spark.createDataFrame(
        [("t", "a", "seats", W1, 1.0), ("t", "b", "seats", W1, 2.0), ("t", "a", "seats", W2, 3.0),
         ("t", "c", "seats", W2, None), ("u", "a", "seats", W2, 9.0)],
        SCHEMA,
    )
    for tenant in ("t", "u"):
        replace_slices(engine, table, tenant, stored.where(f"tenant_id = '{tenant}'"), Slices.of_weeks("week_start", [W1, W2]))
    return table, engine


def test_replacing_a_slice_upserts_changes_deletes_vanished_rows_and_leaves_other_slices(spark, table_and_engine):
    table, engine = table_and_engine
    fresh = spark.createDataFrame(
        [("t", "a", "seats", W2, 4.0), ("t", "c", "seats", W2, None), ("t", "d", "seats", W2, 5.0)], SCHEMA
    )
    write = replace_slices(engine, table, "t", fresh, Slices.of_weeks("week_start", [W2]))
    assert (write.inserted, write.updated, write.deleted) == (1, 1, 0)
    expected = spark.createDataFrame(
        [("t", "a", "seats", W1, 1.0), ("t", "b", "seats", W1, 2.0), ("t", "a", "seats", W2, 4.0),
         ("t", "c", "seats", W2, None), ("t", "d", "seats", W2, 5.0), ("u", "a", "seats", W2, 9.0)],
        SCHEMA,
    )
    assert_df_equality(engine.read(table), expected, ignore_row_order=True, ignore_nullable=True)

    # W1 recomputed without account b: its row goes; the same rows again change nothing.
    w1 = spark.createDataFrame([("t", "a", "seats", W1, 1.0)], SCHEMA)
    write = replace_slices(engine, table, "t", w1, Slices.of_weeks("week_start", [W1]))
    assert (write.inserted, write.updated, write.deleted) == (0, 0, 1)
    version = engine.version(table)
    again = replace_slices(engine, table, "t", w1, Slices.of_weeks("week_start", [W1]))
    assert (again.inserted, again.updated, again.deleted, engine.version(table)) == (0, 0, 0, version)
    assert engine.read(table, ["t"], within=Slices.of_weeks("week_start", [W1])).count() == 1


def test_slice_read_skips_files_outside_the_ranges(spark, table_and_engine):
    table, engine = table_and_engine
    got = engine.read(table, ["t"], within=Slices.of_weeks("week_start", [W3]))
    assert got.count() == 0
    got = engine.read(table, ["t"], within=Slices.of_weeks("week_start", around([W3], before=1)))
    assert sorted(r.account_key for r in got.collect()) == ["a", "c"]


@pytest.mark.parametrize(
    ("tenants", "within", "folders", "expected"),
    [
        (["u"], None, {"tenant_id=u"}, [("u", "a", "seats", W2, 9.0)]),
        (None, [W1], {"tenant_id=t", "tenant_id=u"}, [("t", "a", "seats", W1, 1.0), ("t", "b", "seats", W1, 2.0)]),
        (["t"], [W3], set(), []),
    ],
)
def test_a_large_read_scans_the_snapshot_files_on_the_executors(spark, table_and_engine, tenants, within, folders,
                                                                  expected):
    """Past driver_read_rows no stored row crosses the driver: the frame is a Parquet scan of
    the tenants' files; below it delta-rs reads the same rows as Arrow (issue 12)."""
    table, small = table_and_engine
    large = DeltaRsEngine(spark, small.warehouse, driver_read_rows=0)
    ranges = Slices.of_weeks("week_start", within) if within else None
    scanned, read = large.read(table, tenants, ranges), small.read(table, tenants, ranges)
    assert {f.split("/")[-2] for f in scanned.inputFiles()} <= folders
    assert read.inputFiles() == []
    for got in (scanned, read):
        assert_df_equality(got, spark.createDataFrame(expected, SCHEMA), ignore_row_order=True, ignore_nullable=True)


def test_row_counts_come_from_the_log(table_and_engine):
    table, engine = table_and_engine
    assert engine.row_counts(table) == {"t": 4, "u": 1}
    assert engine.row_counts(table, ["u", "nobody"]) == {"u": 1}


def test_sql_renders_merged_ranges_and_unix_seconds():
    assert Slices.of_weeks("week_start", [W3, W1, W2]).sql() == "(week_start >= DATE '2024-03-04' AND week_start < DATE '2024-03-25')"
    assert Slices.of_weeks("event_timestamp", [W1], unix_seconds=True).sql("t.") == (
        "(t.event_timestamp >= 1709510400 AND t.event_timestamp < 1710115200)"
    )
    assert Slices("d", ()).sql() == "FALSE"


def test_a_slice_replacement_is_one_commit_on_either_engine(spark, any_engine):
    """Upserts and deletes of one replacement land in one MERGE (issue 12 item 3), null keys included."""
    engine = any_engine
    table = build_config({}, TABLES).table("weekly")
    week1 = Slices.of_weeks("week_start", [W1])
    stored = spark.createDataFrame(
        [("t", "a", "seats", W1, 1.0), ("t", "b", "seats", W1, 2.0), ("t", None, "seats", W1, 7.0),
         ("t", "c", "seats", W2, None), ("u", "b", "seats", W1, 9.0)],
        SCHEMA,
    )
    replace_slices(engine, table, ["t", "u"], stored, Slices.of_weeks("week_start", [W1, W2]))
    version = engine.version(table)
    fresh = spark.createDataFrame(
        [("t", "a", "seats", W1, 1.0), ("t", "b", "seats", W1, 3.0), ("t", "e", "seats", W1, None)], SCHEMA
    )
    write = replace_slices(engine, table, "t", fresh, week1)
    assert (write.inserted, write.updated, write.deleted, engine.version(table)) == (1, 1, 1, version + 1)
    expected = spark.createDataFrame(
        [("t", "a", "seats", W1, 1.0), ("t", "b", "seats", W1, 3.0), ("t", "e", "seats", W1, None),
         ("t", "c", "seats", W2, None), ("u", "b", "seats", W1, 9.0)],
        SCHEMA,
    )
    assert_df_equality(engine.read(table), expected, ignore_row_order=True, ignore_nullable=True)
    again = replace_slices(engine, table, "t", fresh, week1)
    assert (again.inserted, again.updated, again.deleted, engine.version(table)) == (0, 0, 0, version + 1)
