"""activity_weekly (issue #4): weekly event counts and active days per contact and event."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.derived.activity import activity_weekly, event_weeks, reassigned
from feedlake.derived.slices import iso_week, monday, utc_day

EVENTS_SCHEMA = "tenant_id STRING, contact_key STRING, event_text STRING, event_timestamp BIGINT"
LINKS_SCHEMA = "tenant_id STRING, contact_key STRING, account_key STRING"
ACTIVITY_SCHEMA = (
    "tenant_id STRING, account_key STRING, contact_key STRING, event_text STRING, week_start DATE, "
    "iso_week STRING, event_count BIGINT, active_days BIGINT"
)


def ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


def test_counts_events_and_distinct_utc_days_per_iso_week(spark):
    events = spark.createDataFrame(
        [
            ("t", "c1", "login", ts("2024-03-04T00:00:00")),  # Monday, first second of the week
            ("t", "c1", "login", ts("2024-03-04T23:59:59")),
            ("t", "c1", "login", ts("2024-03-10T23:59:59")),  # Sunday, last second of the week
            ("t", "c1", "login", ts("2024-03-11T00:00:00")),  # next Monday: next week
            ("t", "c1", "export", ts("2024-03-05T12:00:00")),
            ("t", "c2", "login", ts("2024-12-30T08:00:00")),  # ISO week 1 of 2025
            ("u", "c1", "login", ts("2024-03-05T12:00:00")),  # another tenant's c1
        ],
        EVENTS_SCHEMA,
    )
    links = spark.createDataFrame([("t", "c1", "acc1"), ("u", "c1", "acc9"), ("t", "c3", None)], LINKS_SCHEMA)
    expected = spark.createDataFrame(
        [
            ("t", "acc1", "c1", "login", dt.date(2024, 3, 4), "2024-W10", 3, 2),
            ("t", "acc1", "c1", "login", dt.date(2024, 3, 11), "2024-W11", 1, 1),
            ("t", "acc1", "c1", "export", dt.date(2024, 3, 4), "2024-W10", 1, 1),
            ("t", None, "c2", "login", dt.date(2024, 12, 30), "2025-W01", 1, 1),  # no account yet
            ("u", "acc9", "c1", "login", dt.date(2024, 3, 4), "2024-W10", 1, 1),
        ],
        ACTIVITY_SCHEMA,
    )
    assert_df_equality(activity_weekly(events, links), expected, ignore_row_order=True, ignore_nullable=True)


def test_reassigned_points_rows_to_the_current_account(spark):
    stored = spark.createDataFrame(
        [
            ("t", "old", "c1", "login", dt.date(2024, 3, 4), "2024-W10", 3, 2),
            ("t", None, "c2", "login", dt.date(2024, 3, 4), "2024-W10", 1, 1),
        ],
        ACTIVITY_SCHEMA,
    )
    links = spark.createDataFrame([("t", "c1", "new"), ("t", "c2", "acc2")], LINKS_SCHEMA)
    expected = spark.createDataFrame(
        [
            ("t", "new", "c1", "login", dt.date(2024, 3, 4), "2024-W10", 3, 2),
            ("t", "acc2", "c2", "login", dt.date(2024, 3, 4), "2024-W10", 1, 1),
        ],
        ACTIVITY_SCHEMA,
    )
    assert_df_equality(reassigned(stored, links), expected, ignore_row_order=True, ignore_nullable=True)


def test_event_weeks_are_the_mondays_touched(spark):
    events = spark.createDataFrame(
        [("t", "c", "e", ts("2024-03-10T23:59:59")), ("t", "c", "e", ts("2024-03-04T10:00:00")),
         ("t", "c", "e", ts("2024-03-12T00:00:00")), ("t", "c", "e", None)],
        EVENTS_SCHEMA,
    )
    assert event_weeks(events) == [dt.date(2024, 3, 4), dt.date(2024, 3, 11)]


@pytest.mark.parametrize(
    ("day", "week_start", "label"),
    [
        (dt.date(2024, 3, 4), dt.date(2024, 3, 4), "2024-W10"),  # Monday
        (dt.date(2024, 3, 10), dt.date(2024, 3, 4), "2024-W10"),  # Sunday
        (dt.date(2021, 1, 3), dt.date(2020, 12, 28), "2020-W53"),  # a 53-week year
        (dt.date(2026, 1, 1), dt.date(2025, 12, 29), "2026-W01"),
    ],
)
def test_monday_and_iso_week_label(spark, day, week_start, label):
    row = spark.createDataFrame([(day,)], "d DATE").select(monday(F.col("d")).alias("w")).select(
        "w", iso_week(F.col("w")).alias("label")
    ).first()
    assert (row.w, row.label) == (week_start, label)


def test_utc_day_ignores_the_session_time_zone(spark):
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
    try:
        got = spark.createDataFrame([(ts("2024-03-04T02:00:00"),), (-1,)], "s BIGINT").select(utc_day(F.col("s"))).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assert [r[0] for r in got] == [dt.date(2024, 3, 4), dt.date(1969, 12, 31)]
