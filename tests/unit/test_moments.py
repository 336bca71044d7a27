"""Moments as data (issue 17 item 1, seed 002): the conf vocabulary, its validation and its Column compilation."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import yaml

from feedlake.derived.moments import (
    Condition,
    compare,
    load_moments,
    membership,
    moment_changes,
    parse_moments,
    week_window,
)
from feedlake.settings.config import ConfigError, default_conf_dir, load_config

CONFIG = load_config(None)


def one(condition: dict) -> dict:
    return {"default": {"m": {"all": [condition]}}}


def test_packaged_moments_parse_with_default_and_tenant_sets():
    moments = load_moments(None, CONFIG)
    names = [m.name for m in moments.default]
    assert {"ready_to_buy", "upsell_opportunity", "at_risk", "trial_ending_soon"} <= set(names)
    acme = [m.name for m in moments.for_tenant("acme")]
    assert set(names) < set(acme) and "power_user" in acme  # extends: default
    assert [m.name for m in moments.for_tenant("other")] == names
    assert moments.default[0].event == f"mk_{names[0]}"
    raw = yaml.safe_load((default_conf_dir() / "moments.yaml").read_text())
    assert set(raw) == {"default", "tenants"}


@pytest.mark.parametrize(
    "condition, message",
    [
        ({"table": "events", "column": "x", "op": "eq", "value": 1}, "table 'events'"),
        ({"table": "accounts", "column": "nope", "op": "eq", "value": 1}, "not a column"),
        ({"table": "activity_weekly", "column": "active_days", "aggregate": "sum", "op": "ge", "value": 1}, "weeks"),
        ({"table": "activity_weekly", "column": "active_days", "weeks": 2, "aggregate": "median", "op": "ge", "value": 1},
         "aggregate"),
        ({"table": "accounts", "column": "mrr", "weeks": 2, "op": "ge", "value": 1}, "weeks only applies"),
        ({"table": "accounts", "column": "mrr", "op": "between", "value": 1}, "op 'between'"),
        ({"table": "accounts", "column": "mrr", "op": "ge"}, "needs a single value"),
        ({"table": "accounts", "column": "plan_name", "op": "in", "value": "pro"}, "non-empty list"),
        ({"table": "accounts", "column": "mrr", "op": "is_null", "value": 1}, "takes no value"),
        ({"table": "accounts", "column": "mrr", "op": "ge", "value": 1, "sql": "1=1"}, "unknown key"),
        ({"table": "activity_weekly", "column": "active_days", "weeks": 1, "op": "ge", "value": 1,
          "where": {"no_such": "x"}}, "where"),
    ],
)
def test_invalid_conditions_are_config_errors(condition, message):
    with pytest.raises(ConfigError, match=message):
        parse_moments(one(condition), CONFIG.tables)


def test_invalid_names_and_tenants():
    with pytest.raises(ConfigError, match="lower_snake_case"):
        parse_moments({"default": {"Ready To Buy": {"all": []}}}, CONFIG.tables)
    with pytest.raises(ConfigError, match="at least one condition"):
        parse_moments({"default": {"m": {"all": []}}}, CONFIG.tables)
    with pytest.raises(ConfigError, match="extends"):
        parse_moments({"tenants": {"t": {"extends": "other", "moments": {}}}}, CONFIG.tables)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_moments({"defaults": {}}, CONFIG.tables)


def test_week_window_ends_with_the_week_of_as_of():
    assert week_window(date(2024, 3, 13), 1) == (date(2024, 3, 11), date(2024, 3, 11))
    assert week_window(date(2024, 3, 17), 4) == (date(2024, 2, 19), date(2024, 3, 11))


def test_compare_compiles_to_columns_null_is_false(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(1, 5.0, "pro"), (2, None, None), (3, 1.0, "free")], "id int, v double, s string")
    picked = lambda c: sorted(r["id"] for r in df.where(compare(F.col("v"), c)).collect())  # noqa: E731
    assert picked(Condition("accounts", "mrr", "ge", 2)) == [1]
    assert picked(Condition("accounts", "mrr", "ne", 5)) == [3]  # NULL is not "not 5"
    assert picked(Condition("accounts", "mrr", "is_null")) == [2]
    assert picked(Condition("accounts", "mrr", "in", (1.0, 5.0))) == [1, 3]
    assert picked(Condition("accounts", "mrr", "not_in", (1.0,))) == [1]
    # a threshold that looks like SQL is a bound value compared as data, never parsed
    text = lambda c: sorted(r["id"] for r in df.where(compare(F.col("s"), c)).collect())  # noqa: E731
    assert text(Condition("accounts", "plan_name", "eq", "pro")) == [1]
    assert text(Condition("accounts", "plan_name", "eq", "x' OR '1'='1")) == []


def _tables(spark):
    contacts = spark.createDataFrame(
        [("t", "u1", False), ("t", "u2", False), ("t", "anon", True), ("t", "u3", False)],
        "tenant_id string, contact_key string, is_anonymous boolean",
    )
    links = spark.createDataFrame([("t", "u1", "a1"), ("t", "u2", "a2")], "tenant_id string, contact_key string, account_key string")
    accounts = spark.createDataFrame(
        [("t", "a1", "trial", datetime(2024, 3, 15, tzinfo=timezone.utc)), ("t", "a2", "subscribed", None)],
        "tenant_id string, account_key string, lifecycle_stage string, trial_expiry_date timestamp",
    )
    activity = spark.createDataFrame(
        [("t", "u1", "login", date(2024, 3, 4), 2, 3), ("t", "u1", "login", date(2024, 3, 11), 2, 2),
         ("t", "u1", "login", date(2024, 2, 19), 9, 9), ("t", "u2", "other", date(2024, 3, 11), 1, 1)],
        "tenant_id string, contact_key string, event_text string, week_start date, active_days bigint, event_count bigint",
    )
    metrics = spark.createDataFrame(
        [("t", "a2", "Total Journeys", date(2024, 3, 11), 12.0), ("t", "a2", "Total Journeys", date(2024, 3, 4), 1.0)],
        "tenant_id string, account_key string, metric string, week_start date, week_change double",
    )
    return {"contacts": contacts, "contact_accounts": links, "accounts": accounts, "activity_weekly": activity,
            "account_metrics_weekly": metrics}


def test_membership_over_profile_activity_and_metrics(spark):
    conf = parse_moments(
        {
            "default": {
                "ready_to_buy": {"all": [
                    {"table": "accounts", "column": "lifecycle_stage", "op": "eq", "value": "trial"},
                    {"table": "activity_weekly", "column": "active_days", "weeks": 2, "aggregate": "sum", "op": "ge",
                     "value": 4, "where": {"event_text": "login"}},
                ]},
                "trial_ending": {"all": [
                    {"table": "accounts", "column": "trial_expiry_date", "aggregate": "days_until", "op": "le", "value": 7},
                ]},
                "upsell": {"all": [
                    {"table": "account_metrics_weekly", "column": "week_change", "weeks": 1, "aggregate": "max",
                     "op": "ge", "value": 5, "where": {"metric": "Total Journeys"}},
                ]},
                "inactive": {"all": [
                    {"table": "activity_weekly", "column": "active_days", "weeks": 2, "aggregate": "sum", "op": "lt",
                     "value": 1},
                ]},
            },
            "tenants": {"other": {"moments": {}}},
        },
        CONFIG.tables,
    )
    found = membership(conf, ["t", "other"], _tables(spark), date(2024, 3, 13))
    got = sorted((r["contact_key"], r["moment"]) for r in found.collect())
    # u1: 2+2 login days in the 2 weeks (the 02-19 week is outside), trial ends in 2 days;
    # u2: Total Journeys +12 in the week of 03-11, 1 active day; u3: no rows = 0 days; anon never.
    assert got == [("u1", "ready_to_buy"), ("u1", "trial_ending"), ("u2", "upsell"), ("u3", "inactive")]


def test_entering_staying_leaving_and_reentering(spark):
    now = datetime(2024, 3, 13, 12, tzinfo=timezone.utc)
    key = "tenant_id string, contact_key string, moment string"
    stored_ddl = CONFIG.table("moments").ddl
    stored = spark.createDataFrame(
        [("t", "stay", "m", True, datetime(2024, 3, 1, tzinfo=timezone.utc), None, 1, None),
         ("t", "leave", "m", True, datetime(2024, 3, 1, tzinfo=timezone.utc), None, 1, None),
         ("t", "back", "m", False, datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 5, tzinfo=timezone.utc),
          1, None)],
        stored_ddl,
    )
    current = spark.createDataFrame([("t", "stay", "m"), ("t", "back", "m"), ("t", "new", "m")], key)
    rows = {r["contact_key"]: r for r in moment_changes(current, stored, now).collect()}
    assert set(rows) == {"leave", "back", "new"}  # staying writes nothing
    assert rows["new"]["is_active"] and rows["new"]["entries"] == 1 and rows["new"]["entered_at"] == now.replace(tzinfo=None)
    assert rows["back"]["is_active"] and rows["back"]["entries"] == 2 and rows["back"]["left_at"] is None
    assert not rows["leave"]["is_active"] and rows["leave"]["left_at"] == now.replace(tzinfo=None)
    assert rows["leave"]["entered_at"] == datetime(2024, 3, 1)
