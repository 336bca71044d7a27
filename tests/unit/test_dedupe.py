"""Precedence (seed 000 FAQ) and attribute-level resolution."""

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.rules.contracts import parse_properties, render_properties
from feedlake.rules.dedupe import latest_per_key, resolve_attributes, sequence

CONTACT_COLUMNS = ["tenant_id", "contact_key", "email", "properties", "_attr_seq", "_seq", "_batch_id", "_source_file", "_line_number"]
INCOMING_SCHEMA = (
    "tenant_id STRING, contact_key STRING, email STRING, props MAP<STRING,STRING>, "
    "_seq STRING, _batch_id STRING, _source_file STRING, _line_number BIGINT"
)
TABLE_SCHEMA = (
    "tenant_id STRING, contact_key STRING, email STRING, properties STRING, _attr_seq STRING, "
    "_seq STRING, _batch_id STRING, _source_file STRING, _line_number BIGINT"
)


def test_sequence_orders_by_landing_time_then_file_then_line(spark):
    day1, day2 = dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 2)
    df = spark.createDataFrame(
        [(day1, "a.jsonl", 1), (day1, "a.jsonl", 2), (day2, "a.jsonl", 1), (None, "z.jsonl", None)],
        "t TIMESTAMP, f STRING, l BIGINT",
    )
    last = [r[0] for r in df.select(sequence(F.col("t"), F.col("f"), F.col("l"), "last")).collect()]
    first = [r[0] for r in df.select(sequence(F.col("t"), F.col("f"), F.col("l"), "first")).collect()]
    assert last[1] > last[0] and first[0] > first[1]  # last vs first record of a file wins
    assert last[2] > last[1] and first[2] > first[0]  # a later landing always wins
    assert last[3] == "z.jsonl 0000000000"  # no landing time: sorts lowest, never fails


def test_latest_per_key_keeps_highest_sequence(spark):
    df = spark.createDataFrame(
        [("t", "k1", "2", "new"), ("t", "k1", "1", "old"), ("u", "k1", "0", "other tenant"), ("t", None, "5", "null key")],
        "tenant_id STRING, key STRING, _seq STRING, v STRING",
    )
    expected = spark.createDataFrame(
        [("t", "k1", "2", "new"), ("u", "k1", "0", "other tenant"), ("t", None, "5", "null key")],
        "tenant_id STRING, key STRING, _seq STRING, v STRING",
    )
    assert_df_equality(latest_per_key(df, ["tenant_id", "key"]), expected, ignore_row_order=True)


def test_properties_round_trip_keeps_json_types(spark):
    df = spark.createDataFrame([({"b": "5", "a": '"x"', "c": '{"d":[1,2]}', "e": "true"},), (None,)], "m MAP<STRING,STRING>")
    rendered = df.select(render_properties(F.col("m")).alias("p"))
    assert [r.p for r in rendered.collect()] == ['{"a":"x","b":5,"c":{"d":[1,2]},"e":true}', "{}"]
    back = rendered.select(render_properties(parse_properties(F.col("p"))).alias("p"))
    assert_df_equality(back, rendered)


def test_rendered_properties_are_to_json_of_the_parsed_values(spark):
    """The joined pairs print what ``to_json`` of the parsed values prints, for any canonical values."""
    objects = [
        '{"s":"plain","q":"a \\"quoted\\" \\\\ back\\/slash","u":"caf\u00e9 \\u00e9 \\ud83d\\ude00 \\u0001\\t\\n"}',
        '{"i":5,"n":-0.0,"d":1.50,"big":12345678901234567890123,"e":1e5,"tiny":1e-7,"t":true,"f":false}',
        '{"nested":{"b":[1,{"x":null,"y":1.0e2}],"a":"y"},"arr":[],"obj":{},"nz":-0e0,"v":"1.0 beta","w":"1.05"}',
        '{"k\\"ey":1,"\\u00e9t\\u00e9":"x","sp ace":"","ctl\\u0007":"v"}',
        "{}",
        None,
    ]
    maps = (
        spark.createDataFrame([(o,) for o in objects], "o STRING")
        .select(parse_properties(F.col("o")).alias("m"))
        .unionByName(spark.createDataFrame([({"null": None, "csv": '"x,y"'},)], "m MAP<STRING,STRING>"))
    )
    ordered = F.map_from_entries(F.array_sort(F.map_entries(F.coalesce(F.col("m"), F.create_map().cast("map<string,string>")))))
    reference = F.to_json(F.transform_values(ordered, lambda _k, v: F.parse_json(v)))
    assert_df_equality(
        maps.select(render_properties(F.col("m")).alias("p")), maps.select(reference.alias("p")), ignore_row_order=False
    )


def test_attributes_resolve_independently_and_late_batches_do_not_overwrite(spark):
    stored = spark.createDataFrame(
        [("t", "c1", "new@x.io", '{"plan":"pro"}', '{"c:email":"S2","p:plan":"S2"}', "S2", "b2", "f2", 1)], TABLE_SCHEMA
    )
    incoming = spark.createDataFrame(
        [
            # an older batch arriving late: its email must not win, its new attribute is kept
            ("t", "c1", "old@x.io", {"plan": '"free"', "seats": "3"}, "S1", "b1", "f1", 4),
            # a newer record without email: the known email is not erased
            ("t", "c2", None, {"plan": '"pro"'}, "S3", "b3", "f3", 2),
        ],
        INCOMING_SCHEMA,
    )
    resolved = resolve_attributes(incoming, stored, ["tenant_id", "contact_key"], ["email"], CONTACT_COLUMNS)
    expected = spark.createDataFrame(
        [
            ("t", "c1", "new@x.io", '{"plan":"pro","seats":3}', '{"c:email":"S2","p:plan":"S2","p:seats":"S1"}', "S2", "b2", "f2", 1),
            ("t", "c2", None, '{"plan":"pro"}', '{"p:plan":"S3"}', "S3", "b3", "f3", 2),
        ],
        TABLE_SCHEMA,
    )
    assert_df_equality(resolved, expected, ignore_row_order=True, ignore_nullable=True)


def test_resolution_sends_nothing_when_nothing_changes(spark):
    stored = spark.createDataFrame(
        [("t", "c1", "a@x.io", '{"plan":"pro"}', '{"c:email":"S2","p:plan":"S2"}', "S2", "b2", "f2", 1)], TABLE_SCHEMA
    )
    replay = spark.createDataFrame([("t", "c1", "a@x.io", {"plan": '"pro"'}, "S2", "b2", "f2", 1)], INCOMING_SCHEMA)
    resolved = resolve_attributes(replay, stored, ["tenant_id", "contact_key"], ["email"], CONTACT_COLUMNS)
    assert_df_equality(resolved, spark.createDataFrame([], TABLE_SCHEMA), ignore_nullable=True)
