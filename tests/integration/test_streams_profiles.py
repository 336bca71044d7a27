"""Seed 004 profile fields end to end through the CLI: typed columns, lifecycle_stage, status, trait rules."""

import json
from datetime import datetime, timezone

from chispa import assert_df_equality

from tests.conftest import jsonl, read_table, run_cli, without_quality


def obj(stream: str, dt: str, name: str = "part.jsonl") -> str:
    return f"objects/{stream}/source_system=dataapi/tenant=acme/dt={dt}/{name}"


def account(account_id: str, **properties) -> str:
    return json.dumps({"type": "account", "account_id": account_id, "account_properties": properties})


def contact(contact_id: str, **properties) -> str:
    email = f"{contact_id}@acme.com"
    return json.dumps({"type": "contact", "contact_id": contact_id, "email": email, "contact_properties": properties})


def test_profile_fields_across_batches(spark, landing, warehouse):
    root = landing({
        obj("account", "2024-01-01-00-00"): jsonl(
            account("acme", name="Acme", website="https://acme.com", industry="Technology", created_at="2023-12-31T12:00:00Z",
                    is_trial=True, trial_start_date="2024-01-01", trial_expiry_date="2024-02-01T00:00:00+01:00",
                    plan_name="trial", tags=["b2b", "saas"]),
            account("globex", name="Globex", is_trial=False, is_churned=False, plan_name="enterprise", mrr=12000.5,
                    next_renewal_date="2025-01-01T00:00:00Z"),
            account("bad", hq={"city": "Paris"}, scores=[1, "two"]),
            account("bad2", mrr="a lot", is_churned="maybe"),
        ),
        obj("account", "2024-02-15-00-00"): jsonl(account("acme", is_churned=True)),
        # A later record that only sends mrr keeps the account churned.
        obj("account", "2024-03-01-00-00"): jsonl(account("acme", mrr=500)),
        obj("contact", "2024-01-01-00-00"): jsonl(
            contact("c-1", first_name="Ada", last_name="Lovelace", title="CTO", created_at=1704067200, is_active=False),
            contact("c-2", first_name="Bob", is_active=True),
            contact("c-3", created_at="2024-01-01T10:00:00"),
        ),
        obj("contact", "2024-02-01-00-00"): jsonl(contact("c-1", title="CEO")),
        # The seed-000 group feed is not checked against profile types: what does not cast stays NULL.
        "tenant=acme/group/g.jsonl": jsonl('{"contact_key":"c-2","account_key":"initech","name":"Initech","is_trial":"maybe"}'),
    })
    assert run_cli("ingest", "--landing", str(root), "--warehouse", str(warehouse), "--engine", "delta-rs",
                   "--set", "landing_layout=[tenant_stream, objects]", *without_quality()) == 0

    utc = timezone.utc
    accounts = read_table(spark, warehouse, "accounts", [
        "account_key", "name", "website", "industry", "mrr", "plan_name", "created_at", "is_trial", "trial_start_date",
        "trial_expiry_date", "next_renewal_date", "is_churned", "lifecycle_stage",
    ])
    expected = spark.createDataFrame(
        [
            ("acme", "Acme", "https://acme.com", "Technology", 500.0, "trial", datetime(2023, 12, 31, 12, 0, tzinfo=utc), True,
             datetime(2024, 1, 1, tzinfo=utc), datetime(2024, 1, 31, 23, 0, tzinfo=utc), None, True, "churned"),
            ("globex", "Globex", None, None, 12000.5, "enterprise", None, False, None, None, datetime(2025, 1, 1, tzinfo=utc),
             False, "subscribed"),
            ("initech", "Initech", None, None, None, None, None, None, None, None, None, None, "subscribed"),
        ],
        "account_key STRING, name STRING, website STRING, industry STRING, mrr DOUBLE, plan_name STRING, created_at TIMESTAMP, "
        "is_trial BOOLEAN, trial_start_date TIMESTAMP, trial_expiry_date TIMESTAMP, next_renewal_date TIMESTAMP, "
        "is_churned BOOLEAN, lifecycle_stage STRING",
    )
    assert_df_equality(accounts, expected, ignore_nullable=True)
    properties = {r["account_key"]: r["properties"] for r in read_table(spark, warehouse, "accounts").collect()}
    assert properties["initech"] == '{"is_trial":"maybe","name":"Initech"}'
    assert json.loads(properties["acme"])["tags"] == ["b2b", "saas"]

    contacts = read_table(spark, warehouse, "contacts", ["contact_key", "first_name", "last_name", "title", "created_at",
                                                         "is_active", "status"])
    expected = spark.createDataFrame(
        [
            ("c-1", "Ada", "Lovelace", "CEO", datetime(2024, 1, 1, tzinfo=utc), False, "inactive"),
            ("c-2", "Bob", None, None, None, True, "active"),
        ],
        "contact_key STRING, first_name STRING, last_name STRING, title STRING, created_at TIMESTAMP, is_active BOOLEAN, "
        "status STRING",
    )
    assert_df_equality(contacts, expected, ignore_nullable=True)

    quarantine = read_table(spark, warehouse, "quarantine", ["stream", "line_number", "error_code", "error_message"])
    trait_rule = ("custom traits must be a number, boolean, string (UTC timestamp) or an array of strings or of numbers, "
                  "nested objects are not allowed (seed 004)")
    expected = spark.createDataFrame(
        [
            ("account", 3, "invalid_trait",
             f"trait 'hq' is a nested JSON object; trait 'scores' is an array that is not all strings or all numbers: {trait_rule}"),
            ("account", 4, "invalid_type",
             "field 'mrr' must be a number (e.g. 42 or 12.5), got 'a lot'; field 'is_churned' must be a boolean: true or false, "
             "got 'maybe'"),
            ("contact", 3, "invalid_type",
             "field 'created_at' must be a UTC timestamp: ISO 8601 with a time zone (e.g. 2024-03-01T10:00:00Z), a date "
             "(2024-03-01) or Unix seconds, got '2024-01-01T10:00:00' (add the time zone, e.g. Z for UTC)"),
        ],
        "stream STRING, line_number BIGINT, error_code STRING, error_message STRING",
    )
    assert_df_equality(quarantine, expected, ignore_nullable=True)
