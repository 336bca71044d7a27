"""activity_weekly (issue #4) end to end: re-sent events, batch order, reruns, account moves."""

import datetime as dt
import json
from pathlib import Path

from chispa import assert_df_equality

from tests.conftest import in_tenant, ingest_report, jsonl, tenant_table, write_files

COLUMNS = ["tenant_id", "account_key", "contact_key", "event_text", "week_start", "iso_week", "event_count", "active_days"]


def event(contact: str, text: str, when: str) -> str:
    seconds = int(dt.datetime.fromisoformat(when).replace(tzinfo=dt.timezone.utc).timestamp())
    return json.dumps({"contact_key": contact, "event_text": text, "event_timestamp": seconds})


FIRST = {
    "tenant=acme/track/dt=2024-03-08/events.jsonl": jsonl(
        event("c1", "login", "2024-02-27T09:00:00"),
        event("c1", "login", "2024-03-04T09:00:00"),
        event("c1", "login", "2024-03-04T17:00:00"),
        event("c1", "login", "2024-03-06T08:00:00"),
        event("c2", "export", "2024-03-10T23:59:59"),
    ),
    "tenant=acme/group/dt=2024-03-08/groups.jsonl": jsonl(
        '{"contact_key":"c1","account_key":"acc1"}', '{"contact_key":"c2","account_key":"acc2"}'
    ),
}
SECOND = {
    # a later batch: one new week, one event re-sent from the first batch, c1 moves to acc3
    "tenant=acme/track/dt=2024-03-15/events.jsonl": jsonl(
        event("c1", "login", "2024-03-11T00:00:00"),
        event("c1", "login", "2024-03-04T17:00:00"),
        event("c3", "login", "2024-03-12T10:00:00"),
    ),
    "tenant=acme/group/dt=2024-03-15/groups.jsonl": jsonl('{"contact_key":"c1","account_key":"acc3"}'),
}


def ingest(landing: Path, warehouse: Path) -> dict:
    return ingest_report(landing, warehouse, quality=False)  # quality is not under test here


def test_activity_is_right_in_any_batch_order_with_resent_events_and_reruns(spark, tmp_path):
    # Tenant acme gets FIRST then SECOND; tenant reverse gets SECOND then FIRST. acme's second
    # batch runs alone: the hook's write counts in the report are those of the run's one commit.
    root, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    ingest(write_files(root, {**FIRST, **in_tenant(SECOND, "reverse")}), warehouse)
    second = ingest(write_files(root, SECOND), warehouse)
    ingest(write_files(root, in_tenant(FIRST, "reverse")), warehouse)
    rerun = ingest(root, warehouse)

    expected = spark.createDataFrame(
        [
            ("acme", "acc3", "c1", "login", dt.date(2024, 2, 26), "2024-W09", 1, 1),
            ("acme", "acc3", "c1", "login", dt.date(2024, 3, 4), "2024-W10", 3, 2),  # the re-sent event counts once
            ("acme", "acc3", "c1", "login", dt.date(2024, 3, 11), "2024-W11", 1, 1),
            ("acme", "acc2", "c2", "export", dt.date(2024, 3, 4), "2024-W10", 1, 1),
            ("acme", None, "c3", "login", dt.date(2024, 3, 11), "2024-W11", 1, 1),  # no account
        ],
        "tenant_id STRING, account_key STRING, contact_key STRING, event_text STRING, week_start DATE, iso_week STRING, "
        "event_count BIGINT, active_days BIGINT",
    ).orderBy(*COLUMNS)
    for tenant in ("acme", "reverse"):
        stored = tenant_table(spark, warehouse, "activity_weekly", tenant, COLUMNS, as_tenant="acme")
        assert_df_equality(stored, expected, ignore_nullable=True)

    # The second batch recomputed its own weeks only (not 2024-02-26) and c1's older rows
    # were re-pointed to acc3 when the group file moved it.
    activity = second["extras"]["activity"]["acme"]
    assert activity["weeks_recomputed"] == ["2024-03-04", "2024-03-11"]
    assert "activity_weekly +0 ~2 -0 (contacts re-pointed to their account)" in activity["writes"]
    assert "activity_weekly +2 ~0 -0" in activity["writes"]  # W10 unchanged by the re-sent event; W11 new
    assert "activity" not in rerun["extras"]
