"""Ingestion API objects (seed 001) and the entity map (seed 004) end to end through the CLI.

Files land in the seed's file_key layout
``objects/<stream>/source_system=<s>/tenant=<id>/dt=<YYYY-MM-DD-HH-MM>/<file>.jsonl[.gz]``.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

from chispa import assert_df_equality

from tests.conftest import in_tenant, ingest_report, jsonl, read_table, run_cli, tenant_table, write_files

BOTH_LAYOUTS = "landing_layout=[tenant_stream, objects]"
RUN_COLUMNS = {"_batch_id", "batch_id"}


def ingest(landing: Path, warehouse: Path, *extra: str) -> dict:
    """Run ``feedlake ingest`` with both layouts and return the run's JSON report."""
    return ingest_report(landing, warehouse, "--set", BOTH_LAYOUTS, *extra, quality=False)  # quality not under test


def counts(report: dict) -> dict:
    return {
        (s["tenant_id"], s["stream"]): (s["records_read"], s["accepted"], s["quarantined"], s["duplicates_dropped"],
                                        s["quarantined_by_code"])
        for s in report["streams"]
    }


def objects(stream: str, system: str, tenant: str, dt: str, name: str) -> str:
    return f"objects/{stream}/source_system={system}/tenant={tenant}/dt={dt}/{name}"


def line(**record) -> str:
    return json.dumps(record)


SEED_ACCOUNT = line(type="account", account_id="acme-corp", domain="acme.com",
                    account_properties={"name": "Acme Corporation", "industry": "Technology", "employees": 500})


def test_objects_layout_streams_end_to_end(spark, landing, warehouse):
    root = landing({
        objects("account", "dataapi", "3303", "2025-06-27-07-24", "de27963b.json"): jsonl(
            SEED_ACCOUNT,
            line(type="contact", account_id="acme-corp"),
            line(type="account", account_id="bad", account_properties={"hq": {"city": "Paris"}}),
            line(type="account", account_properties={"name": "no id"}),
        ),
        objects("contact", "dataapi", "3303", "2025-06-27-07-24", "c.jsonl"): jsonl(
            line(type="contact", contact_id="c-1", email="ada@acme.com",
                 contact_properties={"first_name": "Ada", "last_name": "Lovelace", "is_active": False}),
            line(type="contact", email="bob@acme.com", contact_properties={"title": "CTO"}),
            line(type="contact", contact_properties={"first_name": "Nobody"}),
            '{"type":"contact","contact_id":"c-9",',
        ),
        objects("contact_event", "dataapi", "3303", "2025-06-27-07-26", "a84118bb.jsonl.gz"): jsonl(
            line(type="contact_event", contact_id="c-1", event_name="signed_up", event_timestamp="2025-06-27T07:00:00Z",
                 event_properties={"plan": "pro"}),
            line(type="contact_event", contact_id="c-1", event_name="signed_up", event_timestamp=1751007600),
            line(type="contact_event", contact_id="c-1", event_name="login", event_timestamp="2025-06-27 07:00"),
        ),
        objects("account_event", "dataapi", "3303", "2025-06-27-07-26", "e.jsonl.gz"): jsonl(
            line(type="account_event", account_id="acme-corp", event_name="new funding round",
                 event_timestamp="2025-06-20T00:00:00Z", event_properties={"amount": 5000000, "series": "B"}),
            line(type="account_event", account_id="acme-corp", event_name="new funding round", event_timestamp=1750377600),
            line(type="account", account_id="acme-corp", event_name="x", event_timestamp=1),
        ),
        # Another tenant's folder: its records never mix with 3303's.
        objects("account", "dataapi", "4404", "2025-06-27-07-24", "a.jsonl"): jsonl(
            line(type="account", account_id="acme-corp", account_properties={"name": "Someone else"})
        ),
        # The tenant_stream layout, read in the same run.
        "tenant=3303/identify/users.jsonl": jsonl('{"contact_key":"c-1","email":"ada@acme.com","plan":"pro"}'),
    })
    report = ingest(root, warehouse)
    assert counts(report) == {
        ("3303", "account"): (4, 1, 3, 0, {"invalid_trait": 1, "missing_required_field": 1, "type_mismatch": 1}),
        ("3303", "account_event"): (3, 1, 1, 1, {"type_mismatch": 1}),
        ("3303", "contact"): (4, 2, 2, 0, {"malformed_json": 1, "missing_required_field": 1}),
        ("3303", "contact_event"): (3, 1, 1, 1, {"invalid_type": 1}),
        ("3303", "identify"): (1, 1, 0, 0, {}),
        ("4404", "account"): (1, 1, 0, 0, {}),
    }

    accounts = read_table(spark, warehouse, "accounts", ["tenant_id", "account_key", "properties", "name", "website",
                                                          "industry", "lifecycle_stage", "source_system"])
    expected = spark.createDataFrame(
        [
            ("3303", "acme-corp", '{"domain":"acme.com","employees":500,"industry":"Technology","name":"Acme Corporation"}',
             "Acme Corporation", "acme.com", "Technology", "subscribed", "dataapi"),
            ("4404", "acme-corp", '{"name":"Someone else"}', "Someone else", None, None, "subscribed", "dataapi"),
        ],
        "tenant_id STRING, account_key STRING, properties STRING, name STRING, website STRING, industry STRING, "
        "lifecycle_stage STRING, source_system STRING",
    )
    assert_df_equality(accounts, expected.orderBy(*expected.columns), ignore_nullable=True)

    contacts = read_table(spark, warehouse, "contacts", ["contact_key", "email", "properties", "first_name", "last_name",
                                                         "title", "is_active", "status", "source_system"])
    expected = spark.createDataFrame(
        [
            ("bob@acme.com", "bob@acme.com", '{"title":"CTO"}', None, None, "CTO", None, "active", "dataapi"),
            # identify (tenant_stream layout, no source system) and contact (dataapi) merge attribute by attribute.
            ("c-1", "ada@acme.com", '{"first_name":"Ada","is_active":false,"last_name":"Lovelace","plan":"pro"}', "Ada",
             "Lovelace", None, False, "inactive", "dataapi"),
        ],
        "contact_key STRING, email STRING, properties STRING, first_name STRING, last_name STRING, title STRING, "
        "is_active BOOLEAN, status STRING, source_system STRING",
    )
    assert_df_equality(contacts, expected.orderBy(*expected.columns), ignore_nullable=True)

    events = read_table(spark, warehouse, "contact_events", ["contact_key", "event_text", "event_timestamp", "event_ts",
                                                             "properties", "source_system"])
    utc = timezone.utc
    expected = spark.createDataFrame(
        [("c-1", "signed_up", 1751007600, datetime(2025, 6, 27, 7, 0, tzinfo=utc), '{"plan":"pro"}', "dataapi")],
        "contact_key STRING, event_text STRING, event_timestamp BIGINT, event_ts TIMESTAMP, properties STRING, source_system STRING",
    )
    assert_df_equality(events, expected, ignore_nullable=True)

    account_events = read_table(spark, warehouse, "account_events", ["account_key", "event_text", "event_timestamp",
                                                                     "properties", "source_system", "source_account_id"])
    expected = spark.createDataFrame(
        [("acme-corp", "new funding round", 1750377600, '{"amount":5000000,"series":"B"}', "dataapi", "acme-corp")],
        "account_key STRING, event_text STRING, event_timestamp BIGINT, properties STRING, source_system STRING, "
        "source_account_id STRING",
    )
    assert_df_equality(account_events, expected, ignore_nullable=True)

    quarantine = read_table(spark, warehouse, "quarantine", ["stream", "line_number", "error_code", "error_message"])
    by_line = {(r["stream"], r["line_number"]): (r["error_code"], r["error_message"]) for r in quarantine.collect()}
    assert by_line[("account", 2)] == (
        "type_mismatch",
        "record type 'contact' does not match stream 'account': files of this stream hold \"type\": \"account\" records (seed 001)",
    )
    assert by_line[("account", 3)][0] == "invalid_trait"
    assert by_line[("account", 3)][1].startswith("trait 'hq' is a nested JSON object: custom traits must be")
    assert by_line[("contact_event", 3)] == (
        "invalid_type",
        "field 'event_timestamp' must be a UTC timestamp: ISO 8601 with a time zone (e.g. 2024-03-01T10:00:00Z), a date "
        "(2024-03-01) or Unix seconds, got '2025-06-27 07:00' (add the time zone, e.g. Z for UTC)",
    )
    assert sorted(by_line) == [("account", 2), ("account", 3), ("account", 4), ("account_event", 3), ("contact", 3),
                               ("contact", 4), ("contact_event", 3)]


def test_unknown_landing_layout_is_a_configuration_error(landing, warehouse):
    root = landing({"tenant=3303/identify/u.jsonl": jsonl('{"contact_key":"a","email":"a@b.c"}')})
    code = run_cli("ingest", "--landing", str(root), "--warehouse", str(warehouse), "--engine", "delta-rs",
                   "--set", "landing_layout=file_key")
    assert code == 2


SF_ACCOUNTS = {
    # The product account, from the Ingestion API ...
    objects("account", "dataapi", "3303", "2025-06-01-00-00", "a.jsonl"): jsonl(
        line(type="account", account_id="acme-corp", account_properties={"name": "Acme", "plan_name": "pro", "mrr": 100}),
    ),
    # ... and the same company as Salesforce sees it, a week later, plus its events.
    objects("account", "salesforce", "3303", "2025-06-08-00-00", "a.jsonl"): jsonl(
        line(type="account", account_id="001A", account_properties={"industry": "Technology", "mrr": 120, "is_trial": True}),
        line(type="account", account_id="001Z", account_properties={"name": "Never mapped"}),
    ),
    objects("account_event", "salesforce", "3303", "2025-06-08-00-00", "e.jsonl"): jsonl(
        line(type="account_event", account_id="001A", event_name="opportunity won", event_timestamp="2025-06-05T10:00:00Z"),
        line(type="account_event", account_id="001Z", event_name="opportunity won", event_timestamp="2025-06-05T10:00:00Z"),
    ),
}
MAPS = {
    # A first mapping, then a correction: the latest mapping wins.
    "tenant=3303/entity_map/dt=2025-06-09/map.csv": "source_system,source_id,account_key\nsalesforce,001A,acme-old\n",
    "tenant=3303/entity_map/dt=2025-06-10/map.jsonl": jsonl(
        line(source_system="salesforce", source_id="001A", account_key="acme-corp"),
        line(source_system="salesforce", source_id="001B"),
    ),
}


def test_entity_map_resolves_whatever_order_the_batches_come_in(spark, tmp_path):
    # Tenant 3303 gets the accounts and their maps in one run; tenant 3304 the maps a run later.
    root, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    report = ingest(write_files(root, {**SF_ACCOUNTS, **MAPS, **in_tenant(SF_ACCOUNTS, "3304")}), warehouse)
    # Both map files map 001A: the older line is a duplicate of the newer one.
    assert counts(report)[("3303", "entity_map")] == (3, 1, 1, 1, {"missing_required_field": 1})

    later = ingest(write_files(root, in_tenant(MAPS, "3304")), warehouse)
    assert later["extras"]["entity_map_moved"] == {"3304": {"account_events": 1, "accounts": 1}}

    for tenant in ("3303", "3304"):
        accounts = tenant_table(spark, warehouse, "accounts", tenant, ["account_key", "name", "industry", "mrr", "plan_name",
                                                                        "lifecycle_stage", "source_system"])
        expected = spark.createDataFrame(
            [("001Z", "Never mapped", None, None, None, "subscribed", "salesforce"),
             ("acme-corp", "Acme", "Technology", 120.0, "pro", "trial", "salesforce")],
            "account_key STRING, name STRING, industry STRING, mrr DOUBLE, plan_name STRING, lifecycle_stage STRING, "
            "source_system STRING",
        )
        assert_df_equality(accounts, expected, ignore_nullable=True)
        events = tenant_table(spark, warehouse, "account_events", tenant, ["account_key", "source_account_id"])
        assert [tuple(r) for r in events.collect()] == [("001Z", "001Z"), ("acme-corp", "001A")]
        mapping = tenant_table(spark, warehouse, "entity_map", tenant, ["source_system", "source_id", "account_key"])
        assert [tuple(r) for r in mapping.collect()] == [("salesforce", "001A", "acme-corp")]
    for name in ("accounts", "account_events", "entity_map"):
        first = tenant_table(spark, warehouse, name, "3303", drop=RUN_COLUMNS)
        assert_df_equality(tenant_table(spark, warehouse, name, "3304", as_tenant="3303", drop=RUN_COLUMNS), first,
                           ignore_nullable=True)
