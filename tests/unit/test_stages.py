"""Record outcomes and the per-stream counts of feedlake.ingest.stages (issue 13 item 4, issue 12 item 2)."""

from __future__ import annotations

from feedlake.ingest.stages import BLOCKED, DUPLICATE, blocked_frame, record_outcomes, stream_counts, with_blocked

ROWS = "tenant_id string, _source_file string, _line_number bigint, _rank int"


def _outcomes(df) -> list[tuple]:
    return sorted((r["tenant_id"], r["source_file"], r["what"]) for r in df.collect())


def test_a_record_losing_in_a_row_policy_table_is_a_duplicate(spark, config):
    segment = config.stream("segment")
    ranked = {
        # two messages, two message ids: both win in segment_messages ...
        "segment_messages": spark.createDataFrame([("t", "f", 1, 1), ("t", "f", 2, 1)], ROWS),
        # ... but collapse onto one contact_events key: line 1 is not stored
        "contact_events": spark.createDataFrame([("t", "f", 2, 1), ("t", "f", 1, 2)], ROWS),
        # attribute-policy rows never make a duplicate (their values merge)
        "contacts": spark.createDataFrame([("t", "f", 1, 2)], ROWS),
    }
    repeated = spark.createDataFrame([("u", "g", 7)], "tenant_id string, source_file string, line_number bigint")
    ranked["segment_messages"] = ranked["segment_messages"].unionByName(spark.createDataFrame([("u", "g", 7, 1)], ROWS))
    out = record_outcomes(config, segment, ranked, repeated)
    assert _outcomes(out) == [("t", "f", "accepted"), ("t", "f", DUPLICATE), ("u", "g", DUPLICATE)]


def test_blocked_tenants_and_counts(spark, config):
    track = config.stream("track")
    ranked = {"contact_events": spark.createDataFrame([("a", "f", 1, 1), ("a", "f", 2, 2), ("b", "g", 1, 1)], ROWS)}
    outcomes = with_blocked(record_outcomes(config, track, ranked, None), blocked_frame(spark, ["b"]))
    assert _outcomes(outcomes) == [("a", "f", "accepted"), ("a", "f", DUPLICATE), ("b", "g", BLOCKED)]
    validated = spark.createDataFrame(
        [("a", "f", None), ("a", "f", None), ("a", "f", "invalid_type"), ("b", "g", None)],
        "tenant_id string, source_file string, error_code string",
    )
    counts = {(r["tenant_id"], r["what"]): r["count"] for r in stream_counts(validated, None, outcomes, None).collect()}
    assert counts == {("a", "read"): 3, ("a", "q:invalid_type"): 1, ("a", "accepted"): 1, ("a", "duplicate"): 1,
                      ("b", "read"): 1, ("b", "blocked"): 1}
