"""Stream contracts (seed 000 §1) rendered as Spark column rules."""

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.rules.contracts import apply_checks, validate
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


def test_splitting_on_the_verdict_evaluates_each_check_once(spark, capsys):
    """Accepted and refused rows split on ``error_code`` without copying the checks into the filter.

    A filter on a projected column is normally rewritten in terms of its inputs and pushed
    below the projection: every check would be planned and evaluated twice, and a mapper's
    plan grew 5x (a Segment unit test spent most of its time optimizing it).
    """
    marker = "zz-only-here"
    rows = [record(1, {"f": "a"}), record(2, {"f": marker}), record(3, {"f": "b"}, "malformed_json"), record(4, None)]
    checks = [(F.col("values").getItem("f").rlike(f"^{marker}$"), "invalid_type", F.lit("f is the marker"))]
    # Checkpointed, as the pipeline pins its validated records: over an in-memory relation
    # Spark would compute the filter while optimizing (ConvertToLocalRelation).
    checked = apply_checks(spark.createDataFrame(rows, SCHEMA).localCheckpoint(), checks)
    accepted = checked.where(F.col("error_code").isNull())
    refused = checked.where(F.col("error_code").isNotNull()).select("line", "error_code", "error_message")

    accepted.explain(mode="extended")
    plan = capsys.readouterr().out.split("== Optimized Logical Plan ==")[1].split("== Physical Plan ==")[0]
    assert plan.count(marker) == 1, plan
    assert_df_equality(
        accepted.select("line", "error_code"),
        spark.createDataFrame([(1, None), (4, None)], "line INT, error_code STRING"),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert_df_equality(
        refused,
        spark.createDataFrame(
            [(2, "invalid_type", "f is the marker"), (3, "malformed_json", "parse problem")],
            "line INT, error_code STRING, error_message STRING",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
