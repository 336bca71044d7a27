"""Segment messages (seed 002) end to end through the CLI: routing, unsupported types, messageId dedupe."""

import json
from datetime import datetime, timezone
from pathlib import Path

from chispa import assert_df_equality

from tests.conftest import in_tenant, ingest_report, jsonl, latest_report, tenant_table, write_files

TENANT = "tenant=initech/segment"
RUN_COLUMNS = {"_batch_id", "batch_id"}
TABLES = ("contacts", "contact_events", "contact_accounts", "accounts", "segment_messages", "quarantine")


def msg(**fields) -> str:
    return json.dumps(fields)


# The seed's identify and track examples, completed with the ids Segment always sets.
IDENTIFY = msg(type="identify", messageId="m-1", userId="u-1", anonymousId="a-1",
               traits={"email": "peter@initech.com", "first_name": "Peter", "mk_customer_fit_segment": "medium"})
TRACK = msg(type="track", messageId="m-2", userId="u-1", timestamp="2016-03-12T19:11:01.266Z", event="mk_ready_to_buy",
            context={"ip": "10.0.0.1"})
FIRST = {
    f"{TENANT}/dt=2024-03-02/batch.jsonl.gz": jsonl(
        IDENTIFY,
        TRACK,
        TRACK,  # a retry in the same batch
        msg(type="group", messageId="m-3", anonymousId="a-7", groupId="g-1", traits={"name": "Initech", "is_trial": True}),
        msg(type="page", messageId="m-4", userId="u-1", name="Pricing"),
        msg(type="screen", messageId="m-5", userId="u-1", name="Home"),
        msg(type="alias", messageId="m-6", userId="u-1", previousId="a-1"),
        msg(type="flush", messageId="m-7", userId="u-1"),
        msg(type="identify", messageId="m-8", anonymousId="a-9", traits={"email": "anon@initech.com", "plan": "free"}),
        msg(type="identify", messageId="m-9", userId="u-2", traits={"address": {"city": "Paris"}}),
        msg(type="track", messageId="m-10", userId="u-1", timestamp="2016-03-12T19:11:01Z"),
        '{"type":"identify",',
    )
}
LATER = {
    # Retries landing late, in an older batch folder ...
    f"{TENANT}/dt=2024-03-01/late.jsonl": jsonl(TRACK, IDENTIFY),
    # ... and a newer copy of m-1 that differs: the most recent copy wins.
    f"{TENANT}/dt=2024-03-03/retry.jsonl": jsonl(
        msg(type="identify", messageId="m-1", userId="u-1", anonymousId="a-1",
            traits={"email": "peter@initech.com", "first_name": "Pete"})
    ),
}


def ingest(landing: Path, warehouse: Path, tenant: str = "initech") -> dict:
    """One run; the report of ``tenant``'s segment stream."""
    report = ingest_report(landing, warehouse, quality=False)  # quality is not under test here
    [segment] = [s for s in report["streams"] if s["stream"] == "segment" and s["tenant_id"] == tenant]
    return segment


def test_segment_routing_dedupe_and_batch_order(spark, tmp_path):
    # Tenant initech gets FIRST, then LATER; tenant umbrella gets them together in the first run.
    root, wh = tmp_path / "landing", tmp_path / "warehouse"
    write_files(root, {**FIRST, **in_tenant({**FIRST, **LATER}, "umbrella")})
    first = ingest(root, wh)
    whole = latest_report(wh)
    [whole] = [s for s in whole["streams"] if s["stream"] == "segment" and s["tenant_id"] == "umbrella"]
    assert (first["records_read"], first["accepted"], first["quarantined"], first["duplicates_dropped"]) == (12, 4, 7, 1)
    assert first["quarantined_by_code"] == {
        "unsupported_type": 4, "invalid_trait": 1, "missing_required_field": 1, "malformed_json": 1,
    }
    later = ingest(write_files(root, LATER), wh)
    # m-2 and m-1 were already ingested from the first file; m-1 also comes twice in this batch.
    assert (later["records_read"], later["accepted"], later["quarantined"], later["duplicates_dropped"]) == (3, 0, 0, 3)
    assert (whole["records_read"], whole["accepted"], whole["quarantined"], whole["duplicates_dropped"]) == (15, 4, 7, 4)

    def separate_table(name, columns):
        return tenant_table(spark, wh, name, "initech", columns)

    contacts = separate_table("contacts", ["contact_key", "email", "properties", "first_name", "anonymous_id",
                                                        "is_anonymous", "source_system"])
    expected = spark.createDataFrame(
        [
            ("a-9", "anon@initech.com", '{"plan":"free"}', None, "a-9", True, "segment"),
            ("u-1", "peter@initech.com", '{"first_name":"Pete","mk_customer_fit_segment":"medium"}', "Pete", "a-1", False, "segment"),
        ],
        "contact_key STRING, email STRING, properties STRING, first_name STRING, anonymous_id STRING, is_anonymous BOOLEAN, "
        "source_system STRING",
    )
    assert_df_equality(contacts, expected, ignore_nullable=True)
    events = separate_table("contact_events", ["event_key", "contact_key", "event_text", "event_timestamp",
                                                            "event_ts", "properties", "is_anonymous", "_source_file",
                                                            "_line_number"])
    expected = spark.createDataFrame(
        [("m-2", "u-1", "mk_ready_to_buy", 1457809861, datetime(2016, 3, 12, 19, 11, 1, 266000, tzinfo=timezone.utc), "{}",
          False, f"{TENANT}/dt=2024-03-02/batch.jsonl.gz", 3)],
        "event_key STRING, contact_key STRING, event_text STRING, event_timestamp BIGINT, event_ts TIMESTAMP, "
        "properties STRING, is_anonymous BOOLEAN, _source_file STRING, _line_number BIGINT",
    )
    assert_df_equality(events, expected, ignore_nullable=True)
    assert [tuple(r) for r in separate_table("contact_accounts", ["contact_key", "account_key"]).collect()] == [
        ("a-7", "g-1")
    ]
    accounts = separate_table("accounts", ["account_key", "name", "is_trial", "lifecycle_stage", "source_system"])
    assert [tuple(r) for r in accounts.collect()] == [("g-1", "Initech", True, "trial", "segment")]
    ledger = separate_table("segment_messages", ["message_id", "type", "contact_key", "is_anonymous", "_source_file"])
    assert [tuple(r) for r in ledger.collect()] == [
        ("m-1", "identify", "u-1", False, f"{TENANT}/dt=2024-03-03/retry.jsonl"),
        ("m-2", "track", "u-1", False, f"{TENANT}/dt=2024-03-02/batch.jsonl.gz"),
        ("m-3", "group", "a-7", True, f"{TENANT}/dt=2024-03-02/batch.jsonl.gz"),
        ("m-8", "identify", "a-9", True, f"{TENANT}/dt=2024-03-02/batch.jsonl.gz"),
    ]
    quarantine = separate_table("quarantine", ["line_number", "error_code", "error_message"])
    kept = "calls are not ingested (only identify, track, group; seed 002); the message is kept here"
    expected = spark.createDataFrame(
        [
            (5, "unsupported_type", f"Segment 'page' {kept}"),
            (6, "unsupported_type", f"Segment 'screen' {kept}"),
            (7, "unsupported_type", f"Segment 'alias' {kept}"),
            (8, "unsupported_type", f"Segment 'flush' {kept}"),
            (10, "invalid_trait", "trait 'address' is a nested JSON object: custom traits must be a number, boolean, string "
                 "(UTC timestamp) or an array of strings or of numbers, nested objects are not allowed (seed 004)"),
            (11, "missing_required_field", "a Segment track call needs 'event' (missing or empty; seed 002)"),
            (12, "malformed_json", "invalid JSON at column 20: Expecting property name enclosed in double quotes"),
        ],
        "line_number BIGINT, error_code STRING, error_message STRING",
    )
    assert_df_equality(quarantine, expected.orderBy(*expected.columns), ignore_nullable=True)

    # The same files in one batch make the same tables as in two batches, older retries last.
    for name in TABLES:
        expected = tenant_table(spark, wh, name, "umbrella", as_tenant="initech", drop=RUN_COLUMNS)
        assert_df_equality(tenant_table(spark, wh, name, "initech", drop=RUN_COLUMNS), expected, ignore_nullable=True)
