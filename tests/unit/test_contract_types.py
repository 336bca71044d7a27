"""The `timestamp` and `object` field types (issue #3; seeds 001, 002, 004)."""

from datetime import datetime, timezone

from chispa import assert_df_equality

from feedlake.rules.contracts import typed, validate
from feedlake.settings.config import FieldSpec, StreamSpec

SCHEMA = "line INT, values MAP<STRING,STRING>, json_values MAP<STRING,STRING>, error_code STRING, error_message STRING"
STREAM = StreamSpec(
    name="objects",
    mapper="x",
    targets=("t",),
    precedence="last",
    fields=(FieldSpec("at", "timestamp"), FieldSpec("props", "object")),
    spec="seed 001",
)
EXPECTED_TS = "field 'at' must be a UTC timestamp: ISO 8601 with a time zone (e.g. 2024-03-01T10:00:00Z), a date (2024-03-01) or Unix seconds, got '"


def rec(line, at=None, props=None):
    values, json_values = {}, {}
    if at is not None:
        values["at"], json_values["at"] = at, f'"{at}"'
    if props is not None:
        values["props"], json_values["props"] = props, props
    return (line, values, json_values, None, None)


def test_timestamp_and_object_checks_and_values(spark):
    utc = timezone.utc
    rows = [
        rec(1, "2016-03-12T19:11:01.266Z", '{"a":1}'),
        rec(2, "2024-03-01T10:00:00+02:00"),
        rec(3, "2024-03-01"),
        rec(4, "1436172703"),
        rec(5, "2024-03-01T10:00:00"),
        rec(6, "1436172703000"),
        rec(7, "2024-02-30T00:00:00Z"),
        rec(8, "yesterday"),
        rec(9, None, '["a"]'),
        rec(10, None, "42"),
        rec(11),
    ]
    df = validate(spark.createDataFrame(rows, SCHEMA), STREAM)
    result = df.select("line", "error_code", "error_message", typed("at", "timestamp").alias("at"))
    expected = spark.createDataFrame(
        [
            (1, None, None, datetime(2016, 3, 12, 19, 11, 1, 266000, tzinfo=utc)),
            (2, None, None, datetime(2024, 3, 1, 8, 0, tzinfo=utc)),
            (3, None, None, datetime(2024, 3, 1, tzinfo=utc)),
            (4, None, None, datetime(2015, 7, 6, 8, 51, 43, tzinfo=utc)),
            (5, "invalid_type", EXPECTED_TS + "2024-03-01T10:00:00' (add the time zone, e.g. Z for UTC)", None),
            (6, "invalid_type", EXPECTED_TS + "1436172703000' (it looks like milliseconds: divide by 1000)", None),
            (7, "invalid_type", EXPECTED_TS + "2024-02-30T00:00:00Z'", None),
            (8, "invalid_type", EXPECTED_TS + "yesterday'", None),
            (9, "invalid_type", "field 'props' must be a JSON object, got '[\"a\"]'", None),
            (10, "invalid_type", "field 'props' must be a JSON object, got '42'", None),
            (11, None, None, None),
        ],
        "line INT, error_code STRING, error_message STRING, at TIMESTAMP",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)
