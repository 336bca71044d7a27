"""Ingestion API object mappers (seed 001; feedlake.streams.api_objects) on records shaped as in the seed."""

import hashlib
from datetime import datetime, timezone

from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.rules.contracts import render_properties
from feedlake.streams.api_objects import account_event_rows, account_rows, contact_event_rows, contact_rows
from feedlake.streams.mappers import REJECTED
from tests.unit.stream_records import accepted, validated

ERRORS = "line_number BIGINT, error_code STRING, error_message STRING"
MAP_SCHEMA = "tenant_id STRING, source_system STRING, source_id STRING, account_key STRING"
SEED_ACCOUNT = (
    '{"type":"account","account_id":"acme-corp","domain":"acme.com",'
    '"account_properties":{"name":"Acme Corporation","industry":"Technology","employees":500}}'
)
TRAIT = ": custom traits must be a number, boolean, string (UTC timestamp) or an array of strings or of numbers, " \
    "nested objects are not allowed (seed 004)"


def quarantined(records, mapped):
    """Every refused record: contract errors (pipeline) and the mapper's rejects, as (line, code, message)."""
    contract = records.where(F.col("error_code").isNotNull()).select("line_number", "error_code", "error_message")
    return contract.unionByName(mapped[REJECTED].select("line_number", "error_code", "error_message"))


def test_account_rows_seed_example_checks_and_entity_map(spark, config):
    stream = config.stream("account")
    lines = [
        SEED_ACCOUNT,
        '{"type":"contact","account_id":"acme-corp"}',
        '{"type":"account","account_id":"x","account_properties":{"address":{"city":"Paris"},"tags":["a",1]}}',
        '{"type":"account","account_id":"y","account_properties":{"is_trial":"maybe","mrr":"a lot"}}',
        '{"type":"account","account_properties":{"name":"no id"}}',
        '{"type":"account","account_id":"z","account_properties":["not","an","object"]}',
        '{"type":"account","account_id":"001A","account_properties":{"name":"Acme (Salesforce)","is_churned":false}}',
        '{"type":"account","account_id":"b","plan_name":"free","account_properties":{"plan_name":"pro","created_at":"2024-03-01"}}',
    ]
    records = validated(spark, stream, lines, source_system="salesforce")
    entity_map = spark.createDataFrame(
        [("t1", "salesforce", "001A", "acme-corp"), ("t1", "dataapi", "b", "wrong-system"), ("t2", "salesforce", "b", "wrong-tenant")],
        MAP_SCHEMA,
    )
    mapped = account_rows(accepted(records), stream, {"entity_map": entity_map})

    accounts = mapped["accounts"].select(
        "_line_number", "account_key", render_properties(F.col("props")).alias("properties"), "source_system"
    )
    expected = spark.createDataFrame(
        [
            (1, "acme-corp", '{"domain":"acme.com","employees":500,"industry":"Technology","name":"Acme Corporation"}', "salesforce"),
            (7, "acme-corp", '{"is_churned":false,"name":"Acme (Salesforce)"}', "salesforce"),
            (8, "b", '{"created_at":"2024-03-01","plan_name":"pro"}', "salesforce"),
        ],
        "_line_number BIGINT, account_key STRING, properties STRING, source_system STRING",
    )
    assert_df_equality(accounts, expected, ignore_row_order=True, ignore_nullable=True)

    errors = spark.createDataFrame(
        [
            (2, "type_mismatch", "record type 'contact' does not match stream 'account': files of this stream hold "
                '"type": "account" records (seed 001)'),
            (3, "invalid_trait", "trait 'address' is a nested JSON object; trait 'tags' is an array that is not all strings "
                "or all numbers" + TRAIT),
            (4, "invalid_type", "field 'mrr' must be a number (e.g. 42 or 12.5), got 'a lot'; "
                "field 'is_trial' must be a boolean: true or false, got 'maybe'"),
            (5, "missing_required_field", "required field 'account_id' is missing or empty (seed 001)"),
            (6, "invalid_type", "field 'account_properties' must be a JSON object, got '[\"not\",\"an\",\"object\"]'"),
        ],
        ERRORS,
    )
    assert_df_equality(quarantined(records, mapped), errors, ignore_row_order=True, ignore_nullable=True)


def test_contact_rows_key_is_contact_id_else_email(spark, config):
    stream = config.stream("contact")
    lines = [
        '{"type":"contact","contact_id":"c-1","email":"ada@acme.com","contact_properties":{"first_name":"Ada","is_active":false}}',
        '{"type":"contact","email":"bob@acme.com","contact_properties":{"title":"CTO"}}',
        '{"type":"contact","contact_properties":{"first_name":"Nobody"}}',
        '{"type":"account","contact_id":"c-2"}',
        '{"type":"contact","contact_id":"c-3","contact_properties":{"created_at":"2024-03-01T10:00:00"}}',
    ]
    records = validated(spark, stream, lines, source_system="dataapi")
    mapped = contact_rows(accepted(records), stream)
    contacts = mapped["contacts"].select(
        "_line_number", "contact_key", "email", render_properties(F.col("props")).alias("properties"), "source_system",
        "anonymous_id",
    )
    expected = spark.createDataFrame(
        [
            (1, "c-1", "ada@acme.com", '{"first_name":"Ada","is_active":false}', "dataapi", None),
            (2, "bob@acme.com", "bob@acme.com", '{"title":"CTO"}', "dataapi", None),
        ],
        "_line_number BIGINT, contact_key STRING, email STRING, properties STRING, source_system STRING, anonymous_id STRING",
    )
    assert_df_equality(contacts, expected, ignore_row_order=True, ignore_nullable=True)
    errors = spark.createDataFrame(
        [
            (3, "missing_required_field", "a contact needs 'contact_id' or 'email' (both are missing or empty; seed 001)"),
            (4, "type_mismatch", "record type 'account' does not match stream 'contact': files of this stream hold "
                '"type": "contact" records (seed 001)'),
            (5, "invalid_type", "field 'created_at' must be a UTC timestamp: ISO 8601 with a time zone (e.g. "
                "2024-03-01T10:00:00Z), a date (2024-03-01) or Unix seconds, got '2024-03-01T10:00:00' "
                "(add the time zone, e.g. Z for UTC)"),
        ],
        ERRORS,
    )
    assert_df_equality(quarantined(records, mapped), errors, ignore_row_order=True, ignore_nullable=True)


def test_contact_event_rows_same_instant_same_key(spark, config):
    stream = config.stream("contact_event")
    lines = [
        '{"type":"contact_event","contact_id":"c-1","event_name":"signed_up","event_timestamp":"2015-07-06T08:51:43Z",'
        '"event_properties":{"plan":"pro","seats":[1,2]}}',
        '{"type":"contact_event","contact_id":"c-1","event_name":"signed_up","event_timestamp":1436172703}',
        '{"type":"contact_event","contact_id":"c-1","event_id":"e-9","event_name":"login","event_timestamp":"2015-07-06T08:51:43.500+00:00"}',
        '{"type":"contact_event","contact_id":"c-1","event_name":"login"}',
        '{"type":"contact_event","contact_id":"c-1","event_name":"login","event_timestamp":1436172703000}',
        '{"type":"contact_event","contact_id":"c-1","event_name":"x","event_timestamp":1,"event_properties":{"utm":{"source":"ads"}}}',
    ]
    records = validated(spark, stream, lines, source_system="dataapi")
    mapped = contact_event_rows(accepted(records), stream)
    key = hashlib.sha256(b"signed_up\x1fc-1\x1f1436172703").hexdigest()
    utc = timezone.utc
    events = mapped["contact_events"].select(
        "_line_number", "event_key", "contact_key", "event_text", "event_timestamp", "event_ts", "properties",
        "source_system", "is_anonymous",
    )
    expected = spark.createDataFrame(
        [
            (1, key, "c-1", "signed_up", 1436172703, datetime(2015, 7, 6, 8, 51, 43, tzinfo=utc), '{"plan":"pro","seats":[1,2]}',
             "dataapi", False),
            (2, key, "c-1", "signed_up", 1436172703, datetime(2015, 7, 6, 8, 51, 43, tzinfo=utc), "{}", "dataapi", False),
            (3, "e-9", "c-1", "login", 1436172703, datetime(2015, 7, 6, 8, 51, 43, 500000, tzinfo=utc), "{}", "dataapi", False),
        ],
        "_line_number BIGINT, event_key STRING, contact_key STRING, event_text STRING, event_timestamp BIGINT, "
        "event_ts TIMESTAMP, properties STRING, source_system STRING, is_anonymous BOOLEAN",
    )
    assert_df_equality(events, expected, ignore_row_order=True, ignore_nullable=True)
    assert sorted(r["error_code"] for r in quarantined(records, mapped).collect()) == [
        "invalid_trait", "invalid_type", "missing_required_field",
    ]


def test_account_event_rows_resolve_and_keep_source_id(spark, config):
    stream = config.stream("account_event")
    lines = [
        '{"type":"account_event","account_id":"001A","event_name":"new funding round","event_timestamp":"2025-06-27T07:26:00Z",'
        '"event_properties":{"amount":5000000}}',
        '{"type":"account_event","account_id":"002B","event_name":"churn risk","event_timestamp":1751009160}',
        '{"type":"contact_event","account_id":"001A","event_name":"x","event_timestamp":1}',
    ]
    records = validated(spark, stream, lines, source_system="salesforce")
    entity_map = spark.createDataFrame([("t1", "salesforce", "001A", "acme-corp")], MAP_SCHEMA)
    mapped = account_event_rows(accepted(records), stream, {"entity_map": entity_map})
    events = mapped["account_events"].select(
        "_line_number", "account_key", "event_text", "event_timestamp", "properties", "source_system", "source_account_id"
    )
    expected = spark.createDataFrame(
        [
            (1, "acme-corp", "new funding round", 1751009160, '{"amount":5000000}', "salesforce", "001A"),
            (2, "002B", "churn risk", 1751009160, "{}", "salesforce", "002B"),
        ],
        "_line_number BIGINT, account_key STRING, event_text STRING, event_timestamp BIGINT, properties STRING, "
        "source_system STRING, source_account_id STRING",
    )
    assert_df_equality(events, expected, ignore_row_order=True, ignore_nullable=True)
    assert [r["error_code"] for r in mapped[REJECTED].collect()] == ["type_mismatch"]
