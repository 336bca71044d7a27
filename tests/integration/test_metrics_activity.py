"""activity_weekly (issue #4) end to end: re-sent events, batch order, reruns, account moves."""

import datetime as dt
import json
from pathlib import Path

from chispa import assert_df_equality

from tests.conftest import ingest_report, jsonl, read_table, write_files

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
    in_order, reverse = tmp_path / "wh_in_order", tmp_path / "wh_reverse"
    landing_a = write_files(tmp_path / "landing_a", FIRST)
    ingest(landing_a, in_order)
    second = ingest(write_files(landing_a, SECOND), in_order)
    landing_b = write_files(tmp_path / "landing_b", SECOND)
    ingest(landing_b, reverse)
    ingest(write_files(landing_b, FIRST), reverse)
    rerun = ingest(landing_b, reverse)

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
    for warehouse in (in_order, reverse):
        assert_df_equality(read_table(spark, warehouse, "activity_weekly", COLUMNS), expected, ignore_nullable=True)

    # The second batch recomputed its own weeks only (not 2024-02-26) and c1's older rows
    # were re-pointed to acc3 when the group file moved it.
    activity = second["extras"]["activity"]["acme"]
    assert activity["weeks_recomputed"] == ["2024-03-04", "2024-03-11"]
    assert "activity_weekly +0 ~2 -0 (contacts re-pointed to their account)" in activity["writes"]
    assert "activity_weekly +2 ~0 -0" in activity["writes"]  # W10 unchanged by the re-sent event; W11 new
    assert "activity" not in rerun["extras"]
