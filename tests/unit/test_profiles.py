"""Seed 004 profile fields and custom traits (feedlake.rules.profiles)."""

from datetime import datetime, timezone

from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.rules.profiles import object_members, profile_columns, trait_check

TRAIT = ": custom traits must be a number, boolean, string (UTC timestamp) or an array of strings or of numbers, " \
    "nested objects are not allowed (seed 004)"


def test_trait_check_names_every_nested_object_and_bad_array(spark):
    cases = [
        (1, {"plan": '"pro"', "seats": "500", "ratio": "12.5", "ok": "true", "tags": '["a","b"]', "scores": "[1,2.5]", "none": "[]"}),
        (2, {"address": '{"city":"Paris"}', "plan": '"pro"'}),
        (3, {"b": '[{"x":1}]', "a": '[1,"a"]', "c": "[true]", "d": "[[1]]"}),
        (4, {}),
        (5, None),
    ]
    df = spark.createDataFrame(cases, "line INT, attrs MAP<STRING,STRING>")
    failed, code, message = trait_check(F.col("attrs"))
    result = df.select("line", F.when(failed, F.lit(code)).alias("code"), F.when(failed, message).alias("message"))
    array = "' is an array that is not all strings or all numbers"
    expected = spark.createDataFrame(
        [
            (1, None, None),
            (2, "invalid_trait", "trait 'address' is a nested JSON object" + TRAIT),
            (3, "invalid_trait", f"trait 'a{array}; trait 'b{array}; trait 'c{array}; trait 'd{array}" + TRAIT),
            (4, None, None),
            (5, None, None),
        ],
        "line INT, code STRING, message STRING",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_object_members_keep_json_types_and_drop_nulls(spark):
    df = spark.createDataFrame(
        [(1, '{"name":"Acme","employees":500,"tags":["a"],"gone":null}'), (2, None)], "line INT, obj STRING"
    )
    # Maps cannot be sorted on: compare their entries in key order, rows in line order.
    result = df.select("line", F.array_sort(F.map_entries(object_members(F.col("obj")))).alias("members")).orderBy("line")
    expected = spark.createDataFrame(
        [(1, [("employees", "500"), ("name", '"Acme"'), ("tags", '["a"]')]), (2, [])],
        "line INT, members ARRAY<STRUCT<key: STRING, value: STRING>>",
    )
    assert_df_equality(result, expected, ignore_nullable=True)


def test_account_profile_columns_and_lifecycle_from_resolved_properties(spark, config):
    accounts = config.table("accounts")
    rows = [
        ("churned", '{"is_churned":true,"is_trial":true,"mrr":"2499","domain":"acme.com"}'),
        ("trial", '{"is_trial":"TRUE","name":"Initech","website":"initech.com","domain":"other.com","trial_expiry_date":"2024-05-01"}'),
        ("default", '{"created_at":"2024-03-01T10:00:00+02:00","is_churned":false,"plan_name":"pro"}'),
        ("unchecked", '{"is_trial":"maybe","mrr":"lots","name":["a"]}'),
        ("empty", None),
    ]
    df = spark.createDataFrame(rows, "account_key STRING, properties STRING")
    result = profile_columns(accounts)(df).select(
        "account_key", "name", "website", "mrr", "plan_name", "created_at", "is_trial", "trial_expiry_date", "is_churned",
        "lifecycle_stage",
    )
    utc = timezone.utc
    expected = spark.createDataFrame(
        [
            ("churned", None, "acme.com", 2499.0, None, None, True, None, True, "churned"),
            ("trial", "Initech", "initech.com", None, None, None, True, datetime(2024, 5, 1, tzinfo=utc), None, "trial"),
            ("default", None, None, None, "pro", datetime(2024, 3, 1, 8, 0, tzinfo=utc), None, None, False, "subscribed"),
            ("unchecked", None, None, None, None, None, None, None, None, "subscribed"),
            ("empty", None, None, None, None, None, None, None, None, "subscribed"),
        ],
        "account_key STRING, name STRING, website STRING, mrr DOUBLE, plan_name STRING, created_at TIMESTAMP, "
        "is_trial BOOLEAN, trial_expiry_date TIMESTAMP, is_churned BOOLEAN, lifecycle_stage STRING",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_contact_status_and_anonymous_flag(spark, config):
    contacts = config.table("contacts")
    rows = [
        ("u1", '{"is_active":false,"first_name":"Ada","title":"CTO"}', None),
        ("u2", '{"is_active":"true","last_name":"Lovelace"}', "anon-9"),
        ("anon-1", "{}", "anon-1"),
        ("u3", None, None),
    ]
    df = spark.createDataFrame(rows, "contact_key STRING, properties STRING, anonymous_id STRING")
    result = profile_columns(contacts)(df).select(
        "contact_key", "first_name", "last_name", "title", "is_active", "status", "is_anonymous"
    )
    expected = spark.createDataFrame(
        [
            ("u1", "Ada", None, "CTO", False, "inactive", False),
            ("u2", None, "Lovelace", None, True, "active", False),
            ("anon-1", None, None, None, None, "active", True),
            ("u3", None, None, None, None, "active", False),
        ],
        "contact_key STRING, first_name STRING, last_name STRING, title STRING, is_active BOOLEAN, status STRING, "
        "is_anonymous BOOLEAN",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_tables_without_profile_get_no_derive_step(config):
    assert profile_columns(config.table("contact_events")) is None
