"""One commit per table per run, whichever streams write it (issue 12 item 3).

``identify`` (tenant_stream layout) and ``contact`` (objects layout) both write
``contacts``; ``track`` and ``contact_event`` both write ``contact_events``. A run that
reads all four makes one MERGE per table, and its tables equal those of the same files
read stream by stream in separate runs, in either order (the one ordering rule of
:mod:`feedlake.rules.dedupe`: batch order never changes the final tables).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from chispa import assert_df_equality

from feedlake.ingest import stages
from tests.conftest import ingest_report, read_table, write_files

BOTH_LAYOUTS = "landing_layout=[tenant_stream, objects]"
OBJECTS = "objects/{stream}/source_system=dataapi/tenant=3303/dt=2025-06-27-07-24/{name}"


def line(**record) -> str:
    return json.dumps(record)


FILES = {
    "tenant=3303/identify/dt=2025-06-26/users.jsonl": "\n".join([
        line(contact_key="c-1", email="ada@acme.com", plan="pro"),
        line(contact_key="c-2", email="bob@acme.com"),
        line(contact_key=None, email="nobody@acme.com"),
    ]) + "\n",
    OBJECTS.format(stream="contact", name="c.jsonl"): "\n".join([
        line(type="contact", contact_id="c-1", contact_properties={"first_name": "Ada", "plan": "enterprise"}),
        line(type="contact", contact_id="c-3", email="cy@acme.com"),
    ]) + "\n",
    "tenant=3303/track/dt=2025-06-26/events.jsonl": "\n".join([
        line(contact_key="c-1", event_text="signed_up", event_timestamp=1751007600, channel="web"),
        line(contact_key="c-2", event_text="login", event_timestamp=1751007600),
    ]) + "\n",
    OBJECTS.format(stream="contact_event", name="e.jsonl"): "\n".join([
        # The same event key as track's first line, landed later: it wins across the two streams.
        line(type="contact_event", contact_id="c-1", event_name="signed_up", event_timestamp=1751007600,
             event_properties={"channel": "api"}),
    ]) + "\n",
}
STREAMS = {"identify": "tenant=3303/identify/", "contact": "objects/contact/", "track": "tenant=3303/track/",
           "contact_event": "objects/contact_event/"}
TABLES = ("contacts", "contact_events")


def only(*streams: str) -> dict[str, str]:
    return {path: text for path, text in FILES.items() if any(path.startswith(STREAMS[s]) for s in streams)}


def ingest(landing: Path, warehouse: Path) -> dict:
    return ingest_report(landing, warehouse, "--set", BOTH_LAYOUTS, quality=False)


def commits(warehouse: Path, table: str) -> int:
    return len(list((warehouse / table / "_delta_log").glob("*.json")))


def watched_ingest(landing: Path, warehouse: Path) -> tuple[dict, bool]:
    """:func:`ingest`, and whether the second stream was being prepared while the first was counted.

    The first stream's ``count_stage`` (after its gate, before its MERGE, on the run's
    thread) waits up to 30 s for another stream's ``prepare_stream`` to start.
    """
    prepare, count = stages.prepare_stream, stages.count_stage
    started: list[str] = []
    another = threading.Event()
    overlapped: list[bool] = []

    def preparing(ctx, stream, records):
        started.append(stream.name)
        if len(started) > 1:
            another.set()
        return prepare(ctx, stream, records)

    def counting(ctx, stream, counts):
        if not overlapped:
            overlapped.append(another.wait(timeout=30))
        return count(ctx, stream, counts)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "prepare_stream", preparing)
        patch.setattr(stages, "count_stage", counting)
        report = ingest(landing, warehouse)
    return report, overlapped == [True]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run of every file (watched: :func:`watched_ingest`); the same files in two runs, each order."""
    base = tmp_path_factory.mktemp("one_merge")
    together = base / "together"
    report, overlapped = watched_ingest(write_files(base / "landing", FILES), together)
    orders = {}
    for name, first in {"people_first": ("identify", "track"), "objects_first": ("contact", "contact_event")}.items():
        landing, warehouse = base / f"landing_{name}", base / name
        ingest(write_files(landing, only(*first)), warehouse)
        ingest(write_files(landing, FILES), warehouse)
        orders[name] = warehouse
    return together, report, orders, overlapped


def test_the_next_stream_is_prepared_while_one_is_gated_counted_and_merged(runs):
    """Streams that read nothing another writes are prepared (validated, mapped, ranked) one ahead on
    another thread (``stages.STREAMS_AHEAD``); the tables below still equal a run per stream."""
    _, _, _, overlapped = runs
    assert overlapped


@pytest.mark.parametrize("table", TABLES)
def test_one_run_commits_each_table_once(runs, table):
    together, _, _, _ = runs
    assert commits(together, table) == 2  # the table's creation, then one MERGE of both streams


@pytest.mark.parametrize("order", ["people_first", "objects_first"])
@pytest.mark.parametrize("table", TABLES)
def test_one_merge_of_several_streams_equals_a_run_per_stream(spark, runs, order, table):
    together, _, orders, _ = runs
    expected = read_table(spark, orders[order], table)
    assert_df_equality(read_table(spark, together, table), expected, ignore_nullable=True)


def test_the_cross_stream_winners(spark, runs):
    together, _, _, _ = runs
    contacts = read_table(spark, together, "contacts", ["contact_key", "email", "first_name", "source_system"])
    expected = spark.createDataFrame(
        [("c-1", "ada@acme.com", "Ada", "dataapi"), ("c-2", "bob@acme.com", None, None), ("c-3", "cy@acme.com", None, "dataapi")],
        "contact_key STRING, email STRING, first_name STRING, source_system STRING",
    )
    assert_df_equality(contacts, expected, ignore_nullable=True)
    events = read_table(spark, together, "contact_events", ["contact_key", "event_text", "properties", "source_system"])
    expected = spark.createDataFrame(
        [("c-1", "signed_up", '{"channel":"api"}', "dataapi"), ("c-2", "login", "{}", None)],
        "contact_key STRING, event_text STRING, properties STRING, source_system STRING",
    )
    assert_df_equality(events, expected, ignore_nullable=True)


def test_the_report_splits_one_merge_per_stream(runs):
    """Each row the MERGE writes counts once, for the stream whose record it stores (its ``_batch_id``)."""
    _, report, _, _ = runs
    tables = {(s["stream"], t): (c["inserted"], c["updated"]) for s in report["streams"] for t, c in s["tables"].items()}
    assert tables == {
        # c-1's resolved row carries the lineage of its latest record: the contact file landed later.
        ("identify", "contacts"): (1, 0),
        ("contact", "contacts"): (2, 0),
        ("track", "contact_events"): (1, 0),
        ("contact_event", "contact_events"): (1, 0),
    }
    accepted = {s["stream"]: (s["records_read"], s["accepted"], s["quarantined"]) for s in report["streams"]}
    assert accepted == {"identify": (3, 2, 1), "contact": (2, 2, 0), "track": (2, 2, 0), "contact_event": (1, 1, 0)}
