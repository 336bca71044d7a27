"""Metric exports (issue #4, seed 003): settings, the mapper, daily/weekly rollups, drift."""

import datetime as dt
import json

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.derived.metric_rollup import column_drift, daily_metrics, weekly_metrics, with_accounts
from feedlake.settings.config import ConfigError, StreamSpec
from feedlake.streams.metrics import file_date, metric_records, parse_settings

RECORD_SCHEMA = (
    "tenant_id STRING, stream STRING, source_file STRING, line_number BIGINT, raw_record STRING, "
    "batch_id STRING, _seq STRING, values MAP<STRING,STRING>, json_values MAP<STRING,STRING>"
)
OPTIONS = {
    "defaults": {"account_column": "account_id", "undeclared_columns": "ingest"},
    "tenants": {
        "acme": {"ignore_columns": ["account_name"], "metrics": {"logins": "cumulative", "seats": "stock"}},
        "strict": {"account_column": "workspace", "undeclared_columns": "keep", "metrics": {"seats": "stock"}},
    },
}
STREAM = StreamSpec("metrics", "feedlake.streams.metrics:metric_records", ("metric_records", "metric_files"), "last", (),
                    spec="seed 003", options=OPTIONS)
FILE = "tenant={t}/metrics/dt=2024-03-02/hook_export_20240301.csv"
DAY = dt.date(2024, 3, 1)


def record(tenant, line, cells, source_file=None):
    """One parsed CSV line as the pipeline hands it to a mapper (empty cells are absent)."""
    path = source_file or FILE.format(t=tenant)
    return (tenant, "metrics", path, line, ",".join(cells.values()), "b1", f"s{line}", cells,
            {k: json.dumps(v) for k, v in cells.items()})


@pytest.fixture(scope="module")
def mapped(spark):
    rows = [
        record("acme", 2, {"account_id": "a1", "account_name": "A", "metric_date": "2024-03-01", "logins": "10", "seats": "3"}),
        record("acme", 3, {"account_id": "a2", "metric_date": "2024-03-01", "logins": "7"}),  # seats empty: no value
        record("acme", 4, {"account_name": "no id", "metric_date": "2024-03-01", "logins": "1"}),
        record("acme", 5, {"account_id": "a3", "metric_date": "2024-03-02", "logins": "1"}),
        record("acme", 6, {"account_id": "a4", "metric_date": "2024-03-01", "logins": "n/a", "seats": "true"}),
        record("acme", 1, {"account_id": "a5", "metric_date": "2024-03-01"}, source_file="tenant=acme/metrics/export.csv"),
        record("strict", 2, {"workspace": "w1", "metric_date": "2024-03-01", "seats": "4", "visits": "9"}),
        record("other", 2, {"account_id": "o1", "metric_date": "2024-03-01", "Total Journeys": "1.5e3"}),
    ]
    return metric_records(spark.createDataFrame(rows, RECORD_SCHEMA), STREAM)


def test_records_keep_loaded_metrics_as_numbers_and_every_other_column_in_properties(spark, mapped):
    expected = spark.createDataFrame(
        [
            ("acme", "account_id", "a1", DAY, DAY, '{"logins":10.0,"seats":3.0}', '{"account_name":"A"}'),
            ("acme", "account_id", "a2", DAY, DAY, '{"logins":7.0}', "{}"),
            ("other", "account_id", "o1", DAY, DAY, '{"Total Journeys":1500.0}', "{}"),
            # undeclared_columns: keep → visits is not a metric but is kept as sent
            ("strict", "workspace", "w1", DAY, DAY, '{"seats":4.0}', '{"visits":"9"}'),
        ],
        "tenant_id STRING, id_column STRING, source_id STRING, metric_date DATE, file_date DATE, metrics STRING, properties STRING",
    )
    got = mapped["metric_records"].select(*expected.columns)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    lineage = mapped["metric_records"].where(F.col("source_id") == "a1").select("_seq", "_source_file", "_line_number").first()
    assert tuple(lineage) == ("s2", FILE.format(t="acme"), 2)


def test_refused_lines_are_quarantined_with_the_reason(spark, mapped):
    got = {r.line_number: (r.error_code, r.error_message) for r in mapped["_rejected"].collect()}
    assert sorted(got) == [1, 4, 5, 6]
    assert got[4][0] == "missing_required_field" and "'account_id'" in got[4][1]
    assert got[5] == (
        "metric_date_mismatch",
        "metric_date 2024-03-02 does not match the date 2024-03-01 in the file name 'hook_export_20240301.csv' "
        "(seed 003: the file name and the metric_date column carry the same date)",
    )
    assert got[6] == ("invalid_type", "metric columns must be numbers: 'logins' is 'n/a', 'seats' is 'true'")
    assert got[1][0] == "missing_file_date" and "'export.csv' carries no date" in got[1][1]
    raw = mapped["_rejected"].where(F.col("line_number") == 6).first()
    assert (raw.tenant_id, raw.stream, raw.batch_id, raw.raw_record) == ("acme", "metrics", "b1", "a4,2024-03-01,n/a,true")


def test_files_list_every_column_seen(spark, mapped):
    expected = spark.createDataFrame(
        [
            ("acme", FILE.format(t="acme"), DAY, '["account_id","account_name","logins","metric_date","seats"]'),
            ("acme", "tenant=acme/metrics/export.csv", None, '["account_id","metric_date"]'),
            ("other", FILE.format(t="other"), DAY, '["Total Journeys","account_id","metric_date"]'),
            ("strict", FILE.format(t="strict"), DAY, '["metric_date","seats","visits","workspace"]'),
        ],
        "tenant_id STRING, source_file STRING, file_date DATE, columns STRING",
    )
    got = mapped["metric_files"].select(*expected.columns)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tenant=a/metrics/hook_export_20240301.csv", dt.date(2024, 3, 1)),
        ("tenant=a/metrics/dt=2024-03-05/hook_export_2024-03-01.jsonl.gz", dt.date(2024, 3, 1)),
        ("tenant=a/metrics/dt=2024-03-05/export.csv", None),
        ("tenant=a/metrics/hook_export_20241341.csv", None),
        ("tenant=a/metrics/hook_export_202403011.csv", None),
        (None, None),
    ],
)
def test_file_date_comes_from_the_file_name_only(spark, path, expected):
    df = spark.createDataFrame([(path,)], "source_file STRING")
    assert df.select(file_date(F.col("source_file"))).first()[0] == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"defaults": {"metrics": {"x": "ytd"}}}, "kind 'ytd'"),
        ({"tenants": {"t": {"undeclared_columns": "drop"}}}, "undeclared_columns 'drop'"),
        ({"tenants": {"t": {"acount_column": "id"}}}, "unknown keys ['acount_column']"),
        ({"tenants": {"t": {"entity_map": "hubspot"}}}, "entity_map must be"),
        ({"tenants": {"t": {"account_column": "metric_date"}}}, "cannot be metric_date"),
    ],
)
def test_settings_errors_name_the_problem(options, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_settings(options)


def test_tenant_rules_extend_the_defaults():
    s = parse_settings({"defaults": {"metrics": {"logins": "cumulative"}, "ignore_columns": ["name"]},
                        "tenants": {"t": {"metrics": {"seats": "stock"}, "entity_map": {"source_system": "product"}}}})
    rules = s.for_tenant("t")
    assert dict(rules.kinds) == {"logins": "cumulative", "seats": "stock"}
    assert rules.ignore_columns == ("name",) and rules.entity_map_source == "product"
    assert s.for_tenant("u").entity_map_source is None


RECORDS_SCHEMA = "tenant_id STRING, source_id STRING, metric_date DATE, metrics STRING"
MAP_SCHEMA = "tenant_id STRING, source_system STRING, source_id STRING, account_key STRING"


def test_ids_mapped_to_one_account_are_summed_and_unmapped_ids_wait(spark):
    records = spark.createDataFrame(
        [
            ("t", "u1", DAY, '{"seats":2.0,"logins":5.0}'),
            ("t", "u2", DAY, '{"seats":3.0}'),
            ("t", "u3", DAY, '{"seats":1.0}'),  # not mapped (yet)
            ("t", "u4", DAY, "{}"),
        ],
        RECORDS_SCHEMA,
    )
    mapping = spark.createDataFrame(
        [("t", "product", "u1", "acc"), ("t", "product", "u2", "acc"), ("t", "crm", "u3", "other"), ("t", "product", "u4", "acc")],
        MAP_SCHEMA,
    )
    rules = parse_settings({"tenants": {"t": {"account_column": "user_id", "entity_map": {"source_system": "product"},
                                              "metrics": {"logins": "cumulative"}}}}).for_tenant("t")
    got = daily_metrics(with_accounts(records, rules, mapping), rules)
    expected = spark.createDataFrame(
        [("t", "acc", "logins", DAY, 5.0, "cumulative", 1), ("t", "acc", "seats", DAY, 5.0, "stock", 2)],
        "tenant_id STRING, account_key STRING, metric STRING, metric_date DATE, value DOUBLE, kind STRING, sources BIGINT",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_direct_account_ids_are_the_account_key(spark):
    records = spark.createDataFrame([("t", "acc", DAY, '{"seats":2.0}'), ("t", None, DAY, None)], RECORDS_SCHEMA)
    rules = parse_settings({}).for_tenant("t")
    got = with_accounts(records, rules, None).select("source_id", "account_key")
    assert_df_equality(got, records.select("source_id", F.col("source_id").alias("account_key")), ignore_nullable=True)


DAILY_SCHEMA = "tenant_id STRING, account_key STRING, metric STRING, metric_date DATE, value DOUBLE, kind STRING"
WEEKLY_SCHEMA = (
    "tenant_id STRING, account_key STRING, metric STRING, week_start DATE, value DOUBLE, kind STRING, "
    "days_reported BIGINT, week_change DOUBLE"
)


def d(month, day):
    return dt.date(2024, month, day)


def test_stock_week_is_its_last_value(spark):
    daily = spark.createDataFrame(
        [
            ("t", "a", "seats", d(3, 4), 10.0, "stock"),  # Monday
            ("t", "a", "seats", d(3, 10), 7.0, "stock"),  # Sunday: last day of the same week
            ("t", "a", "seats", d(3, 6), 12.0, "stock"),
            ("t", "a", "seats", d(3, 11), 8.0, "stock"),  # next Monday: next week
            ("t", "b", "seats", d(3, 5), None, "stock"),
        ],
        DAILY_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            ("t", "a", "seats", d(3, 4), 7.0, "stock", 3, None),
            ("t", "a", "seats", d(3, 11), 8.0, "stock", 1, None),
            ("t", "b", "seats", d(3, 4), None, "stock", 1, None),
        ],
        WEEKLY_SCHEMA,
    )
    assert_df_equality(weekly_metrics(daily), expected, ignore_row_order=True, ignore_nullable=True)


def test_cumulative_week_is_its_end_value_and_change_versus_previous_week(spark):
    daily = spark.createDataFrame(
        [
            ("t", "a", "orders", d(2, 26), 100.0, "cumulative"),
            ("t", "a", "orders", d(3, 1), 110.0, "cumulative"),
            ("t", "a", "orders", d(3, 5), 125.0, "cumulative"),
            ("t", "a", "orders", d(3, 8), 130.0, "cumulative"),
            ("t", "a", "orders", d(3, 25), 150.0, "cumulative"),  # two weeks without data before it
            ("u", "a", "orders", d(3, 5), 1.0, "cumulative"),  # another tenant: its own series
        ],
        DAILY_SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            ("t", "a", "orders", d(2, 26), 110.0, "cumulative", 2, None),
            ("t", "a", "orders", d(3, 4), 130.0, "cumulative", 2, 20.0),
            ("t", "a", "orders", d(3, 25), 150.0, "cumulative", 1, None),
            ("u", "a", "orders", d(3, 4), 1.0, "cumulative", 1, None),
        ],
        WEEKLY_SCHEMA,
    )
    assert_df_equality(weekly_metrics(daily), expected, ignore_row_order=True, ignore_nullable=True)


def test_drift_compares_each_file_with_the_previous_one_by_file_date(spark):
    files = spark.createDataFrame(
        [
            ("t", "f/hook_export_20240303.csv", d(3, 3), '["a","id","metric_date"]'),
            ("t", "f/hook_export_20240301.csv", d(3, 1), '["a","b","id","metric_date"]'),
            ("t", "f/hook_export_20240302.csv", d(3, 2), '["a","b","id","metric_date"]'),
            ("t", "f/export.csv", None, '["id"]'),
            ("u", "f/hook_export_20240302.csv", d(3, 2), '["c","id","metric_date"]'),
        ],
        "tenant_id STRING, source_file STRING, file_date DATE, columns STRING",
    )
    expected = spark.createDataFrame(
        [
            ("t", "f/export.csv", None, None, None, None),
            ("t", "f/hook_export_20240301.csv", d(3, 1), "f/export.csv", ["a", "b", "metric_date"], []),
            ("t", "f/hook_export_20240302.csv", d(3, 2), "f/hook_export_20240301.csv", [], []),
            ("t", "f/hook_export_20240303.csv", d(3, 3), "f/hook_export_20240302.csv", [], ["b"]),
            ("u", "f/hook_export_20240302.csv", d(3, 2), None, None, None),
        ],
        "tenant_id STRING, source_file STRING, file_date DATE, previous_file STRING, "
        "new_columns ARRAY<STRING>, missing_columns ARRAY<STRING>",
    )
    assert_df_equality(column_drift(files), expected, ignore_row_order=True, ignore_nullable=True)
