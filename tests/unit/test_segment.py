"""Segment message routing and messageId dedupe (seed 002; feedlake.streams.segment)."""

import json
from datetime import datetime, timezone

from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.rules.contracts import render_properties
from feedlake.streams.mappers import DUPLICATES, REJECTED
from feedlake.streams.segment import segment_rows
from tests.unit.stream_records import accepted, validated

LEDGER = (
    "tenant_id STRING, message_id STRING, type STRING, contact_key STRING, is_anonymous BOOLEAN, timestamp TIMESTAMP, "
    "_seq STRING, _batch_id STRING, _source_file STRING, _line_number BIGINT"
)
MAP_SCHEMA = "tenant_id STRING, source_system STRING, source_id STRING, account_key STRING"
# The seed's MadKudu examples (seed 002), completed with the ids Segment always sets.
IDENTIFY = {
    "type": "identify", "messageId": "m-1", "userId": "97980cfea0067", "anonymousId": "a-1",
    "traits": {"email": "peter@initech.com", "mk_customer_fit_segment": "medium", "mk_likelihood_to_buy_score": "0.72",
               "first_name": "Peter", "is_active": False},
}
TRACK = {"type": "track", "messageId": "m-2", "userId": "97980cfea0067", "timestamp": "2016-03-12T19:11:01.266Z",
         "event": "mk_ready_to_buy", "properties": {"score": 0.72}, "context": {"ip": "1.2.3.4"}}
GROUP = {"type": "group", "messageId": "m-3", "anonymousId": "a-7", "groupId": "g-1", "traits": {"name": "Initech", "is_trial": True}}


def lines(*messages):
    return [m if isinstance(m, str) else json.dumps(m) for m in messages]


def run(spark, config, messages, ledger_rows=(), mappings=(), source_file="f1.jsonl", landed=datetime(2024, 3, 1, tzinfo=timezone.utc)):
    stream = config.stream("segment")
    records = validated(spark, stream, lines(*messages), source_file=source_file, landed=landed)
    stored = {
        "segment_messages": spark.createDataFrame(list(ledger_rows), LEDGER),
        "entity_map": spark.createDataFrame(list(mappings), MAP_SCHEMA),
    }
    return records, segment_rows(accepted(records), stream, stored)


def test_routing_by_type(spark, config):
    page = {"type": "page", "messageId": "m-4", "userId": "u", "name": "Pricing"}
    screen = {"type": "screen", "messageId": "m-5", "userId": "u"}
    alias = {"type": "alias", "messageId": "m-6", "userId": "u", "previousId": "a-1"}
    weird = {"type": "Track", "messageId": "m-7", "userId": "u", "event": "x", "timestamp": "2016-03-12T19:11:01Z"}
    no_event = {"type": "track", "messageId": "m-8", "userId": "u", "timestamp": "2016-03-12T19:11:01Z"}
    no_user = {"type": "identify", "messageId": "m-9", "traits": {"email": "x@y.z"}}
    no_group = {"type": "group", "messageId": "m-10", "userId": "u"}
    nested = {"type": "identify", "messageId": "m-11", "userId": "u", "traits": {"company": {"name": "Initech"}}}
    no_message_id = {"type": "track", "userId": "u", "event": "x", "timestamp": "2016-03-12T19:11:01Z"}
    records, out = run(
        spark, config,
        [IDENTIFY, TRACK, GROUP, page, screen, alias, weird, no_event, no_user, no_group, nested, no_message_id],
        mappings=[("t1", "segment", "g-1", "initech.com")],
    )
    contacts = out["contacts"].select(
        "contact_key", "email", render_properties(F.col("props")).alias("properties"), "source_system", "anonymous_id"
    )
    assert_df_equality(
        contacts,
        spark.createDataFrame(
            [("97980cfea0067", "peter@initech.com",
              '{"first_name":"Peter","is_active":false,"mk_customer_fit_segment":"medium","mk_likelihood_to_buy_score":"0.72"}',
              "segment", "a-1")],
            "contact_key STRING, email STRING, properties STRING, source_system STRING, anonymous_id STRING",
        ),
        ignore_nullable=True,
    )
    events = out["contact_events"].select(
        "event_key", "contact_key", "event_text", "event_timestamp", "event_ts", "properties", "is_anonymous"
    )
    assert_df_equality(
        events,
        spark.createDataFrame(
            [("m-2", "97980cfea0067", "mk_ready_to_buy", 1457809861,
              datetime(2016, 3, 12, 19, 11, 1, 266000, tzinfo=timezone.utc), '{"score":0.72}', False)],
            "event_key STRING, contact_key STRING, event_text STRING, event_timestamp BIGINT, event_ts TIMESTAMP, "
            "properties STRING, is_anonymous BOOLEAN",
        ),
        ignore_nullable=True,
    )
    assert [tuple(r) for r in out["contact_accounts"].select("contact_key", "account_key").collect()] == [("a-7", "initech.com")]
    accounts = out["accounts"].select("account_key", render_properties(F.col("props")).alias("properties"), "source_system")
    assert [tuple(r) for r in accounts.collect()] == [("initech.com", '{"is_trial":true,"name":"Initech"}', "segment")]
    messages = out["segment_messages"].select("message_id", "type", "contact_key", "is_anonymous")
    assert_df_equality(
        messages,
        spark.createDataFrame(
            [("m-1", "identify", "97980cfea0067", False), ("m-2", "track", "97980cfea0067", False), ("m-3", "group", "a-7", True)],
            "message_id STRING, type STRING, contact_key STRING, is_anonymous BOOLEAN",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    refused = records.where(F.col("error_code").isNotNull()).select("line_number", "error_code", "error_message").unionByName(
        out[REJECTED].select("line_number", "error_code", "error_message")
    )
    kept = "calls are not ingested (only identify, track, group; seed 002); the message is kept here"
    expected = spark.createDataFrame(
        [
            (4, "unsupported_type", f"Segment 'page' {kept}"),
            (5, "unsupported_type", f"Segment 'screen' {kept}"),
            (6, "unsupported_type", f"Segment 'alias' {kept}"),
            (7, "unsupported_type", f"Segment 'Track' {kept}"),
            (8, "missing_required_field", "a Segment track call needs 'event' (missing or empty; seed 002)"),
            (9, "missing_required_field", "a Segment message needs 'userId' or 'anonymousId' (both are missing or empty; seed 002)"),
            (10, "missing_required_field", "a Segment group call needs 'groupId' (missing or empty; seed 002)"),
            (11, "invalid_trait", "trait 'company' is a nested JSON object: custom traits must be a number, boolean, string "
                "(UTC timestamp) or an array of strings or of numbers, nested objects are not allowed (seed 004)"),
            (12, "missing_required_field", "required field 'messageId' is missing or empty (seed 002)"),
        ],
        "line_number BIGINT, error_code STRING, error_message STRING",
    )
    assert_df_equality(refused, expected, ignore_row_order=True, ignore_nullable=True)
    assert out[DUPLICATES].count() == 0


def test_message_id_dedupe_within_and_across_batches(spark, config):
    landed = datetime(2024, 3, 2, tzinfo=timezone.utc)
    # The ledger: m-1 from a more recent file, m-2 from an older one, m-3 from this same file, m-9 another tenant's.
    ledger = [
        ("t1", "m-1", "identify", "97980cfea0067", False, None, "2024-03-05T00:00:00.000000Z new.jsonl 0000000001", "b0", "new.jsonl", 1),
        ("t1", "m-2", "track", "97980cfea0067", False, None, "2024-03-01T00:00:00.000000Z old.jsonl 0000000001", "b0", "old.jsonl", 1),
        ("t1", "m-3", "group", "a-7", True, None, "2024-03-09T00:00:00.000000Z f2.jsonl 0000000003", "b0", "f2.jsonl", 3),
        ("t2", "m-9", "track", "u", False, None, "2024-03-09T00:00:00.000000Z other.jsonl 0000000001", "b0", "other.jsonl", 1),
    ]
    track_copy = dict(TRACK, context={"ip": "5.6.7.8"})
    m9 = dict(TRACK, messageId="m-9")
    records, out = run(spark, config, [IDENTIFY, TRACK, track_copy, GROUP, m9, IDENTIFY], ledger, source_file="f2.jsonl", landed=landed)
    # Counted as duplicates across batches: m-1 and m-2 (stored from other files), once each (their other copy in
    # this file is an in-batch duplicate, counted by the pipeline on segment_messages); m-3 was stored from this
    # same file (a changed file being reprocessed) and m-9 by another tenant: not duplicates.
    assert sorted((r["tenant_id"], r["source_file"]) for r in out[DUPLICATES].collect()) == [("t1", "f2.jsonl")] * 2
    messages = out["segment_messages"].select("message_id", "_line_number")
    assert_df_equality(
        messages,
        spark.createDataFrame(
            [("m-1", 1), ("m-2", 2), ("m-2", 3), ("m-3", 4), ("m-9", 5), ("m-1", 6)], "message_id STRING, _line_number BIGINT"
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # Every copy is routed: the tables' keys absorb identical copies (contact_events: user, event, time).
    assert [r["_line_number"] for r in out["contact_events"].orderBy("_line_number").collect()] == [2, 3, 5]
    assert [r["_line_number"] for r in out["contacts"].orderBy("_line_number").collect()] == [1, 6]
