"""Every record accounted for, from what the run wrote (issue 13 items 4 and 9; issue 12 items 2-3).

Each test fails on the code before the stages rework: the invariant there was computed
(``accepted = read - quarantined - duplicates``) and checked after the manifest commit,
Segment messages collapsing onto one event were counted accepted, gate-blocked
batches were counted accepted, and rejected or unreadable files were re-read and
re-reported on every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaRsEngine
from feedlake.ingest.pipeline import IngestRequest, run_ingest
from feedlake.ingest.report import ReportInvariantError
from feedlake.streams import mappers
from tests.conftest import jsonl, read_table, run_cli, without_quality, write_files

MARCH_2024 = 1709251200
YEAR_2100 = 4102444800


def _event(text: str, ts: int, contact: str) -> str:
    return json.dumps({"event_text": text, "event_timestamp": ts, "contact_key": contact})


def _reports(warehouse: Path) -> list[dict]:
    files = sorted((warehouse / "_reports").glob("*.json"), key=os.path.getmtime)
    return [json.loads(p.read_text()) for p in files]


def _streams(report: dict) -> dict[tuple[str, str], dict]:
    return {(s["tenant_id"], s["stream"]): s for s in report["streams"]}


def test_a_record_lost_before_the_merge_fails_the_run_before_the_manifest(spark, config, tmp_path, monkeypatch):
    real = mappers.MAPPERS["contact_event"]

    def lossy(records, stream):
        # A (simulated) bug: one accepted record never reaches a MERGE.
        return {"contact_events": real(records, stream)["contact_events"].where(F.col("contact_key") != "lost")}

    monkeypatch.setitem(mappers.MAPPERS, "contact_event", lossy)
    landing = write_files(tmp_path / "landing", {
        "tenant=acme/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c1"),
                                                              _event("signed up", MARCH_2024, "lost")),
    })
    warehouse = tmp_path / "warehouse"
    with pytest.raises(ReportInvariantError, match="read 2"):
        run_ingest(spark, config, DeltaRsEngine(spark, str(warehouse)), IngestRequest(str(landing), str(warehouse)))
    # The manifest was not committed: the next run reads the file again.
    assert read_table(spark, warehouse, "ingest_files").count() == 0


def test_segment_messages_collapsing_onto_one_event_are_duplicates(spark, tmp_path):
    track = {"type": "track", "userId": "u1", "event": "signed up", "timestamp": "2024-03-01T10:00:00Z"}
    landing = write_files(tmp_path / "landing", {
        "tenant=acme/segment/dt=2024-03-01/calls.jsonl": jsonl(
            json.dumps({**track, "messageId": "m-1"}),
            json.dumps({**track, "messageId": "m-2"}),  # another message id, the same event key
            json.dumps({**track, "messageId": "m-3", "event": "logged in"}),
        ),
    })
    warehouse = tmp_path / "warehouse"
    assert run_cli("ingest", "--landing", str(landing), "--warehouse", str(warehouse), *without_quality()) == 0
    assert read_table(spark, warehouse, "contact_events").count() == 2
    segment = _streams(_reports(warehouse)[0])[("acme", "segment")]
    assert (segment["records_read"], segment["accepted"], segment["duplicates_dropped"]) == (3, 2, 1)
    (manifest,) = read_table(spark, warehouse, "ingest_files").collect()
    assert (manifest.records_read, manifest.records_accepted, manifest.duplicates_dropped) == (3, 2, 1)


def test_a_gate_blocked_batch_is_reported_blocked_not_accepted(spark, tmp_path):
    landing = write_files(tmp_path / "landing", {
        "tenant=bad/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c9"),
                                                             _event("time travel", YEAR_2100, "c9")),
        "tenant=good/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c1")),
    })
    warehouse = tmp_path / "warehouse"
    assert run_cli("ingest", "--landing", str(landing), "--warehouse", str(warehouse)) == 0
    streams = _streams(_reports(warehouse)[0])
    bad, good = streams[("bad", "track")], streams[("good", "track")]
    assert (bad["records_read"], bad["accepted"], bad["blocked_records"]) == (2, 0, 2)
    assert bad["blocked"].startswith("quality gate contact_events")
    assert (good["records_read"], good["accepted"], good["blocked_records"]) == (1, 1, 0)
    manifest = {r.tenant_id: (r.status, r.records_accepted) for r in read_table(spark, warehouse, "ingest_files").collect()}
    assert manifest == {"bad": ("blocked", 0), "good": ("processed", 1)}


def test_rejected_and_unreadable_files_are_not_reread_until_they_change(spark, tmp_path):
    landing = write_files(tmp_path / "landing", {
        "tenant=acme/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c1")),
        "tenant=acme/track/dt=2024-03-01/notes.txt": "not a feed\n",
        "tenant=acme/tracks/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c2")),
    })
    corrupt = landing / "tenant=acme/track/dt=2024-03-02/broken.jsonl.gz"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage, not deflate")
    warehouse = tmp_path / "warehouse"
    args = ("ingest", "--landing", str(landing), "--warehouse", str(warehouse), *without_quality())
    assert run_cli(*args) == 0
    first = _reports(warehouse)[-1]
    codes = {k: v for s in first["streams"] for k, v in s["quarantined_by_code"].items()}
    assert codes == {"unsupported_file_format": 1, "unknown_stream": 1, "unreadable_file": 1}

    assert run_cli(*args) == 0
    second = _reports(warehouse)[-1]
    assert second["totals"]["records_read"] == 0 and second["totals"]["quarantined"] == 0
    assert second["totals"]["files_skipped"] == 4
    statuses = sorted(r.status for r in read_table(spark, warehouse, "ingest_files").collect())
    assert statuses == ["processed", "rejected", "rejected", "unreadable"]
    assert read_table(spark, warehouse, "quarantine").count() == 3

    # A changed file is taken up again.
    (landing / "tenant=acme/track/dt=2024-03-01/notes.txt").write_text("still not a feed, but longer\n")
    assert run_cli(*args) == 0
    third = _reports(warehouse)[-1]
    assert third["totals"]["quarantined"] == 1 and third["totals"]["files_skipped"] == 3
