"""Metric exports (issue #4, seed 003) end to end through `feedlake ingest`.

Tenant ``acme`` uses the packaged conf/metrics.yaml: ``Total Journeys`` is cumulative,
``active users`` stock, ``account_name`` a descriptive column.
"""

import datetime as dt
import shutil
from pathlib import Path

import yaml
from chispa import assert_df_equality

from feedlake.settings.config import default_conf_dir
from tests.conftest import ingest_report, read_table, write_files

HEADER = "account_id,account_name,metric_date,Total Journeys,active users\n"
# Two batches (dt= folders); the second restates 2024-03-07 for a1 without "active users".
FIRST = {
    "tenant=acme/metrics/dt=2024-03-05/hook_export_20240304.csv": HEADER + "a1,One,2024-03-04,100,10\na2,Two,2024-03-04,50,5\n",
    "tenant=acme/metrics/dt=2024-03-08/hook_export_20240307.csv": HEADER + "a1,One,2024-03-07,120,12\n",
}
SECOND = {
    "tenant=acme/metrics/dt=2024-03-12/hook_export_20240311.csv": (
        HEADER + "a1,One,2024-03-11,130,9\na2,Two,2024-03-12,60,6\n"  # a2's date is not the file's
    ),
    "tenant=acme/metrics/dt=2024-03-12/hook_export_20240307.csv": HEADER + "a1,One,2024-03-07,125,\n",
}
WEEKLY_COLUMNS = ["tenant_id", "account_key", "metric", "week_start", "value", "kind", "days_reported", "week_change"]
DAILY_COLUMNS = ["tenant_id", "account_key", "metric", "metric_date", "value", "kind", "sources"]


def ingest(landing: Path, warehouse: Path, *extra: str) -> dict:
    return ingest_report(landing, warehouse, *extra, quality=False)  # quality is not under test here


def d(day: int) -> dt.date:
    return dt.date(2024, 3, day)


def test_weeks_restatements_and_batch_order(spark, tmp_path):
    """Out of order (second batch first) + rerun gives the same tables as one run with everything."""
    out_of_order, at_once = tmp_path / "wh_out_of_order", tmp_path / "wh_at_once"
    landing = write_files(tmp_path / "landing", SECOND)
    late_first = ingest(landing, out_of_order)
    write_files(landing, FIRST)
    ingest(landing, out_of_order)
    rerun = ingest(landing, out_of_order)
    ingest(landing, at_once)

    weekly = read_table(spark, out_of_order, "account_metrics_weekly", WEEKLY_COLUMNS)
    expected_weekly = spark.createDataFrame(
        [
            # cumulative: value at the end of the week (03-07 restated to 125), change vs previous week
            ("acme", "a1", "Total Journeys", d(4), 125.0, "cumulative", 2, None),
            ("acme", "a1", "Total Journeys", d(11), 130.0, "cumulative", 1, 5.0),
            # stock: last value of the week; the restated 03-07 has no value any more
            ("acme", "a1", "active users", d(4), 10.0, "stock", 1, None),
            ("acme", "a1", "active users", d(11), 9.0, "stock", 1, None),
            ("acme", "a2", "Total Journeys", d(4), 50.0, "cumulative", 1, None),
            ("acme", "a2", "active users", d(4), 5.0, "stock", 1, None),
        ],
        "tenant_id STRING, account_key STRING, metric STRING, week_start DATE, value DOUBLE, kind STRING, "
        "days_reported BIGINT, week_change DOUBLE",
    )
    assert_df_equality(weekly, expected_weekly.orderBy(*WEEKLY_COLUMNS), ignore_nullable=True)

    daily = read_table(spark, out_of_order, "account_metrics", DAILY_COLUMNS)
    expected_daily = spark.createDataFrame(
        [
            ("acme", "a1", "Total Journeys", d(4), 100.0, "cumulative", 1),
            ("acme", "a1", "Total Journeys", d(7), 125.0, "cumulative", 1),
            ("acme", "a1", "Total Journeys", d(11), 130.0, "cumulative", 1),
            ("acme", "a1", "active users", d(4), 10.0, "stock", 1),
            ("acme", "a1", "active users", d(11), 9.0, "stock", 1),
            ("acme", "a2", "Total Journeys", d(4), 50.0, "cumulative", 1),
            ("acme", "a2", "active users", d(4), 5.0, "stock", 1),
        ],
        "tenant_id STRING, account_key STRING, metric STRING, metric_date DATE, value DOUBLE, kind STRING, sources BIGINT",
    )
    assert_df_equality(daily, expected_daily.orderBy(*DAILY_COLUMNS), ignore_nullable=True)

    for table in ("account_metrics", "account_metrics_weekly", "metric_files"):
        columns = [c for c in read_table(spark, at_once, table).columns if c != "batch_id"]
        assert_df_equality(read_table(spark, out_of_order, table, columns), read_table(spark, at_once, table, columns))
    records = ["tenant_id", "source_id", "metric_date", "metrics", "properties", "_source_file", "_line_number"]
    assert_df_equality(read_table(spark, out_of_order, "metric_records", records), read_table(spark, at_once, "metric_records", records))
    assert read_table(spark, out_of_order, "metric_records", ["properties"]).first().properties == '{"account_name":"One"}'

    quarantine = read_table(spark, out_of_order, "quarantine", ["source_file", "line_number", "error_code", "error_message"])
    assert [tuple(r) for r in quarantine.collect()] == [(
        "tenant=acme/metrics/dt=2024-03-12/hook_export_20240311.csv", 3, "metric_date_mismatch",
        "metric_date 2024-03-12 does not match the date 2024-03-11 in the file name 'hook_export_20240311.csv' "
        "(seed 003: the file name and the metric_date column carry the same date)",
    )]
    first = {s["stream"]: s for s in late_first["streams"]}["metrics"]
    assert (first["records_read"], first["accepted"], first["quarantined"]) == (3, 2, 1)
    # Only the weeks of the batch were recomputed; the rerun found nothing to do.
    assert late_first["extras"]["metrics"]["acme"]["weeks_recomputed"] == ["2024-03-04", "2024-03-11"]
    assert "metrics" not in rerun["extras"] and rerun["totals"]["files_skipped"] == 4


def test_column_drift_is_reported_and_values_follow_their_column_name(spark, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(Path(str(default_conf_dir())), conf, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    rules = {"defaults": {"account_column": "account_id", "undeclared_columns": "ingest"},
             "tenants": {"strict": {"undeclared_columns": "keep", "metrics": {"logins": "cumulative", "seats": "stock"}}}}
    (conf / "metrics.yaml").write_text(yaml.safe_dump(rules))
    files = {}
    for tenant in ("open", "strict"):
        files[f"tenant={tenant}/metrics/export_2024-03-04.csv"] = "account_id,metric_date,logins,seats\na1,2024-03-04,10,3\n"
        # next day: columns reordered, `seats` gone, `exports` new (a JSON export this time)
        files[f"tenant={tenant}/metrics/export_2024-03-05.jsonl"] = (
            '{"metric_date":"2024-03-05","exports":7,"account_id":"a1","logins":12}\n'
        )
    report = ingest(write_files(tmp_path / "landing", files), tmp_path / "wh", "--conf", str(conf))

    for tenant in ("open", "strict"):
        entry = report["extras"]["metrics"][tenant]
        assert entry["column_drift"] == [{
            "file": f"tenant={tenant}/metrics/export_2024-03-05.jsonl",
            "previous_file": f"tenant={tenant}/metrics/export_2024-03-04.csv",
            "new_columns": ["exports"],
            "new_columns_loaded": ["exports"] if tenant == "open" else [],
            "missing_columns": ["seats"],
        }]
    assert report["extras"]["metrics"]["open"]["undeclared_metrics_as_stock"] == ["exports", "logins", "seats"]
    assert report["extras"]["metrics"]["strict"]["undeclared_columns_not_loaded"] == ["exports"]

    daily = read_table(spark, tmp_path / "wh", "account_metrics", ["tenant_id", "metric", "metric_date", "value", "kind"])
    expected = spark.createDataFrame(
        [
            ("open", "exports", d(5), 7.0, "stock"),
            ("open", "logins", d(4), 10.0, "stock"),
            ("open", "logins", d(5), 12.0, "stock"),
            ("open", "seats", d(4), 3.0, "stock"),
            ("strict", "logins", d(4), 10.0, "cumulative"),
            ("strict", "logins", d(5), 12.0, "cumulative"),
            ("strict", "seats", d(4), 3.0, "stock"),
        ],
        "tenant_id STRING, metric STRING, metric_date DATE, value DOUBLE, kind STRING",
    )
    assert_df_equality(daily, expected.orderBy(*expected.columns), ignore_nullable=True)
    kept = read_table(spark, tmp_path / "wh", "metric_records", ["tenant_id", "metric_date", "properties"])
    assert [tuple(r) for r in kept.where("tenant_id = 'strict'").collect()] == [("strict", d(4), "{}"), ("strict", d(5), '{"exports":7}')]
