"""Stream contracts (seed 000 §1) rendered as Spark column rules."""

import pytest
from chispa import assert_df_equality

from feedlake.rules.contracts import validate
from feedlake.settings.config import FieldSpec, StreamSpec

SCHEMA = "line INT, values MAP<STRING,STRING>, json_values MAP<STRING,STRING>, error_code STRING, error_message STRING"
TRACK = StreamSpec(
    name="track",
    mapper="contact_event",
    targets=("contact_events",),
    precedence="first",
    fields=(
        FieldSpec("event_text", "string", True),
        FieldSpec("event_timestamp", "unix_seconds", True),
        FieldSpec("contact_key", "string", True),
    ),
    spec="seed 000 §1.1",
)


def record(line, values, error=None):
    json_values = {k: (v if v.startswith("{") else f'"{v}"') for k, v in values.items()} if values is not None else None
    return (line, values, json_values, error, "parse problem" if error else None)


def test_required_fields_and_unix_seconds(spark):
    rows = [
        record(1, {"event_text": "signed up", "event_timestamp": "1234567890", "contact_key": "abc1234"}),
        record(2, {"event_text": "x", "event_timestamp": "1436172703.0", "contact_key": "k"}),
        record(3, {"event_text": "  ", "event_timestamp": "1234567890", "contact_key": "k"}),
        record(4, {"event_text": "x", "event_timestamp": "1436172703000", "contact_key": "k"}),
        record(5, {"event_text": "x", "event_timestamp": "2024-03-01", "contact_key": "k"}),
        record(6, {"event_timestamp": "-5"}),
        record(7, {"event_text": "x", "event_timestamp": "1", "contact_key": '{"a":1}'}),
        record(8, None, "malformed_json"),
    ]
    result = validate(spark.createDataFrame(rows, SCHEMA), TRACK).select("line", "error_code", "error_message")
    expected = spark.createDataFrame(
        [
            (1, None, None),
            (2, None, None),
            (3, "missing_required_field", "required field 'event_text' is missing or empty (seed 000 §1.1)"),
            (4, "invalid_type", "field 'event_timestamp' must be Unix time in seconds (digits only, e.g. 1436172703), "
                "got '1436172703000' (it looks like milliseconds: divide by 1000)"),
            (5, "invalid_type", "field 'event_timestamp' must be Unix time in seconds (digits only, e.g. 1436172703), got '2024-03-01'"),
            (6, "missing_required_field", "required field 'event_text' is missing or empty (seed 000 §1.1); "
                "field 'event_timestamp' must be Unix time in seconds (digits only, e.g. 1436172703), got '-5'; "
                "required field 'contact_key' is missing or empty (seed 000 §1.1)"),
            (7, "invalid_type", "field 'contact_key' must be a single value, got a JSON object or array"),
            (8, "malformed_json", "parse problem"),
        ],
        "line INT, error_code STRING, error_message STRING",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("ftype", "good", "bad"),
    [
        ("number", ["42", "-1.5", "1e3"], ["12abc", "1,5"]),
        ("boolean", ["true", "FALSE"], ["yes", "1"]),
        ("date", ["2024-03-01"], ["2024-02-31", "01/03/2024"]),
    ],
)
def test_simple_types(spark, ftype, good, bad):
    stream = StreamSpec("s", "m", ("t",), "last", (FieldSpec("f", ftype),))
    rows = [record(i, {"f": v}) for i, v in enumerate(good + bad)] + [record(99, {})]
    result = validate(spark.createDataFrame(rows, SCHEMA), stream).select("line", "error_code")
    expected = spark.createDataFrame(
        [(i, None if i < len(good) else "invalid_type") for i in range(len(good + bad))] + [(99, None)],
        "line INT, error_code STRING",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)
