"""Entity map resolution (seed 004; feedlake.streams.entity_map)."""

from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.ingest.pipeline import processing_order
from feedlake.streams.entity_map import entity_map_rows, resolve_account
from tests.unit.stream_records import accepted, validated

MAP_SCHEMA = "tenant_id STRING, source_system STRING, source_id STRING, account_key STRING"


def test_resolve_account_only_maps_same_tenant_and_system(spark):
    frame = spark.createDataFrame(
        [
            ("t1", "salesforce", "001A", 1),
            ("t1", "salesforce", "001B", 2),
            ("t1", "hubspot", "001A", 3),
            ("t2", "salesforce", "001A", 4),
            ("t1", None, "001A", 5),
            ("t1", "salesforce", None, 6),
        ],
        "tenant_id STRING, source_system STRING, id STRING, line INT",
    )
    mappings = spark.createDataFrame(
        [("t1", "salesforce", "001A", "acme-corp"), ("t1", "hubspot", "001A", "acme-hub"), ("t3", "salesforce", "001A", "x")],
        MAP_SCHEMA,
    )
    result = resolve_account(frame, F.col("id"), mappings).select("line", "_account_key")
    expected = spark.createDataFrame(
        [(1, "acme-corp"), (2, "001B"), (3, "acme-hub"), (4, "001A"), (5, "001A"), (6, None)], "line INT, _account_key STRING"
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_entity_map_rows_require_all_three_fields(spark, config):
    stream = config.stream("entity_map")
    lines = [
        '{"source_system":"salesforce","source_id":"001A","account_key":"acme-corp"}',
        '{"source_system":"salesforce","source_id":"001B"}',
        '{"source_system":"salesforce","source_id":{"id":1},"account_key":"x"}',
    ]
    records = validated(spark, stream, lines)
    rows = entity_map_rows(accepted(records), stream)["entity_map"].select("source_system", "source_id", "account_key")
    assert [tuple(r) for r in rows.collect()] == [("salesforce", "001A", "acme-corp")]
    codes = sorted(r["error_code"] for r in records.where(F.col("error_code").isNotNull()).collect())
    assert codes == ["invalid_type", "missing_required_field"]


def test_streams_writing_a_read_table_are_processed_first(config):
    names = {"track", "segment", "account", "entity_map", "account_event", "identify"}
    # segment reads segment_messages, which it writes itself: that alone does not move it first.
    assert processing_order(config, names) == ["entity_map", "account", "account_event", "identify", "segment", "track"]
