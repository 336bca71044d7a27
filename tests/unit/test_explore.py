"""The tenant views of notebooks/explore_tenant.py, on tiny inline tables."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality

from feedlake.app.explore import activity_by_week, dedupe_effect, metrics_by_week, quarantine_by_reason

QUARANTINE = "stream STRING, source_file STRING, error_code STRING, error_message STRING"
MANIFEST = "stream STRING, records_read BIGINT, records_accepted BIGINT, records_quarantined BIGINT, duplicates_dropped BIGINT"


def test_quarantine_by_reason_counts_records_and_files(spark):
    quarantine = spark.createDataFrame(
        [
            ("track", "a.jsonl", "malformed_json", "invalid JSON at column 9"),
            ("track", "a.jsonl", "malformed_json", "invalid JSON at column 3"),
            ("track", "b.jsonl", "malformed_json", "invalid JSON at column 5"),
            ("identify", "u.csv", "csv_field_count", None),
        ],
        QUARANTINE,
    )
    expected = spark.createDataFrame(
        [("track", "malformed_json", 3, 2, "invalid JSON at column 3"), ("identify", "csv_field_count", 1, 1, None)],
        "stream STRING, error_code STRING, records BIGINT, files BIGINT, example_message STRING",
    )
    assert_df_equality(quarantine_by_reason(quarantine), expected, ignore_nullable=True)


def test_dedupe_effect_sums_the_manifest_per_stream(spark):
    manifest = spark.createDataFrame(
        [("track", 10, 6, 2, 2), ("track", 10, 10, 0, 0), ("identify", 0, 0, 0, 0), ("identify", None, None, None, None)],
        MANIFEST,
    )
    expected = spark.createDataFrame(
        [("identify", 2, 0, 0, 0, 0, None), ("track", 2, 20, 16, 2, 2, 0.1)],
        "stream STRING, files BIGINT, records_read BIGINT, records_accepted BIGINT, records_quarantined BIGINT, "
        "duplicates_dropped BIGINT, duplicate_share DOUBLE",
    )
    assert_df_equality(dedupe_effect(manifest), expected, ignore_nullable=True)


def test_weekly_views_sum_per_week_newest_first(spark):
    monday, next_monday = dt.date(2024, 3, 4), dt.date(2024, 3, 11)
    activity = spark.createDataFrame(
        [("acc", "c1", "login", monday, "2024-W10", 3), (None, "c2", "login", monday, "2024-W10", 1),
         ("acc", "c1", "login", next_monday, "2024-W11", 2)],
        "account_key STRING, contact_key STRING, event_text STRING, week_start DATE, iso_week STRING, event_count BIGINT",
    )
    expected = spark.createDataFrame(
        [(next_monday, "2024-W11", 2, 1, 1), (monday, "2024-W10", 4, 2, 1)],
        "week_start DATE, iso_week STRING, events BIGINT, active_contacts BIGINT, active_accounts BIGINT",
    )
    assert_df_equality(activity_by_week(activity), expected, ignore_nullable=True)

    weekly = spark.createDataFrame(
        [("a1", "seats", "stock", monday, 5.0), ("a2", "seats", "stock", monday, None), ("a1", "seats", "stock", next_monday, 6.0)],
        "account_key STRING, metric STRING, kind STRING, week_start DATE, value DOUBLE",
    )
    expected = spark.createDataFrame(
        [("seats", "stock", next_monday, 1, 6.0), ("seats", "stock", monday, 2, 5.0)],
        "metric STRING, kind STRING, week_start DATE, accounts BIGINT, total_value DOUBLE",
    )
    assert_df_equality(metrics_by_week(weekly), expected, ignore_nullable=True)
