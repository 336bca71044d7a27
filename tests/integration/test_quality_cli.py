"""Quality end to end through the CLI: the batch gate, `feedlake quality`, results and Data Docs (issue #5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from feedlake.quality.checks import EXIT_QUALITY
from tests.conftest import jsonl, read_table, run_cli, write_files
from tests.integration.browser import dom, screenshot

MARCH_2024 = 1709251200
YEAR_2100 = 4102444800  # more than a day in the future: the track gate's critical range check


def _event(text: str, ts: int, contact: str) -> str:
    return json.dumps({"event_text": text, "event_timestamp": ts, "contact_key": contact})


def test_critical_failure_blocks_one_tenant_and_stream_and_is_retried(spark, tmp_path: Path):
    landing = write_files(tmp_path / "landing", {
        "tenant=good/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c1"),
                                                              _event("logged in", MARCH_2024 + 60, "c1")),
        "tenant=good/identify/dt=2024-03-01/users.jsonl": jsonl('{"contact_key": "c1", "email": "c1@good.io"}'),
        "tenant=bad/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c9"),
                                                             _event("time travel", YEAR_2100, "c9")),
        "tenant=bad/identify/dt=2024-03-01/users.jsonl": jsonl('{"contact_key": "c9", "email": "c9@bad.io"}'),
    })
    warehouse = tmp_path / "warehouse"
    args = ("ingest", "--landing", str(landing), "--warehouse", str(warehouse))
    assert run_cli(*args, "--fail-on", "critical") == EXIT_QUALITY

    events = read_table(spark, warehouse, "contact_events", ["tenant_id", "contact_key", "event_text"])
    expected = spark.createDataFrame(
        [("good", "c1", "logged in"), ("good", "c1", "signed up")], "tenant_id string, contact_key string, event_text string"
    )
    assert_df_equality(events, expected, ignore_nullable=True)
    # The same tenant's other stream passed its gate and landed.
    contacts = read_table(spark, warehouse, "contacts", ["tenant_id", "contact_key"])
    assert_df_equality(contacts, spark.createDataFrame([("bad", "c9"), ("good", "c1")], "tenant_id string, contact_key string"),
                       ignore_nullable=True)
    manifest = read_table(spark, warehouse, "ingest_files", ["tenant_id", "stream", "status"])
    expected_manifest = spark.createDataFrame(
        [("bad", "identify", "processed"), ("bad", "track", "blocked"), ("good", "identify", "processed"),
         ("good", "track", "processed")],
        "tenant_id string, stream string, status string",
    )
    assert_df_equality(manifest, expected_manifest, ignore_nullable=True)
    (report_file,) = (warehouse / "_reports").glob("*.json")
    report = json.loads(report_file.read_text())
    blocked = {(s["tenant_id"], s["stream"]): s["blocked"] for s in report["streams"]}
    assert blocked == {
        ("bad", "identify"): None,
        ("bad", "track"): "quality gate contact_events: expect_column_values_to_be_between(event_timestamp) (1 unexpected)",
        ("good", "identify"): None,
        ("good", "track"): None,
    }
    assert "blocked: bad/track" in report["extras"]["quality"]

    # Without --fail-on the run exits 0; the blocked file is read again (not skipped) and blocked again.
    assert run_cli(*args) == 0
    (rerun,) = [p for p in (warehouse / "_reports").glob("*.json") if p != report_file]
    counts = {(s["tenant_id"], s["stream"]): (s["files_read"], s["files_skipped"]) for s in json.loads(rerun.read_text())["streams"]}
    assert counts == {("bad", "identify"): (0, 1), ("bad", "track"): (1, 0), ("good", "identify"): (0, 1),
                      ("good", "track"): (0, 1)}
    assert read_table(spark, warehouse, "contact_events").where("tenant_id = 'bad'").count() == 0


@pytest.fixture(scope="module")
def warned(spark, tmp_path_factory) -> Path:
    """A warehouse after one ingest with a bad email (gate warning) and an event of an unknown contact."""
    root = tmp_path_factory.mktemp("quality")
    landing = write_files(root / "landing", {
        "tenant=w/identify/dt=2024-03-01/users.jsonl": jsonl('{"contact_key": "c1", "email": "c1@w.io"}',
                                                             '{"contact_key": "c2", "email": "not-an-email"}'),
        "tenant=w/track/dt=2024-03-01/events.jsonl": jsonl(_event("signed up", MARCH_2024, "c1"),
                                                           _event("signed up", MARCH_2024, "ghost")),
    })
    code = run_cli("ingest", "--landing", str(landing), "--warehouse", str(root / "warehouse"), "--fail-on", "critical")
    assert code == 0  # a warning never blocks nor fails the run under --fail-on critical
    return root / "warehouse"


def test_a_warning_does_not_block(spark, warned: Path):
    contacts = read_table(spark, warned, "contacts", ["tenant_id", "contact_key", "email"])
    expected = spark.createDataFrame([("w", "c1", "c1@w.io"), ("w", "c2", "not-an-email")],
                                     "tenant_id string, contact_key string, email string")
    assert_df_equality(contacts, expected, ignore_nullable=True)
    failed = read_table(spark, warned, "quality_results",
                        ["tenant_id", "kind", "stream", "table_name", "expectation", "severity", "unexpected_count", "sample"]
                        ).where("NOT success")
    expected_failed = spark.createDataFrame(
        [("*", "table", None, "contact_events",
          "expect_column_pair_values_to_be_equal(tenant_id/contact_key, contacts:tenant_id/contact_key)", "warning", 1,
          '[["w/ghost", null]]'),
         ("w", "gate", "identify", "contacts", "expect_column_values_to_match_regex(email)", "warning", 1,
          '["not-an-email"]')],
        "tenant_id string, kind string, stream string, table_name string, expectation string, severity string, "
        "unexpected_count bigint, sample string",
    )
    assert_df_equality(failed, expected_failed, ignore_nullable=True)
    (results,) = (warned / "_quality" / "results").glob("*.json")
    assert json.loads(results.read_text())["failed_warning"] == 2


def test_feedlake_quality_exit_codes(spark, warned: Path):
    wh = str(warned)
    assert run_cli("quality", "--warehouse", wh) == 0
    assert run_cli("quality", "--warehouse", wh, "--fail-on", "critical") == 0
    assert run_cli("quality", "--warehouse", wh, "--fail-on", "warning") == EXIT_QUALITY  # the unknown contact
    assert run_cli("quality", "--warehouse", wh, "--table", "contacts", "--fail-on", "warning") == 0
    assert run_cli("quality", "--warehouse", wh, "--table", "no_such_table") == 2
    # A table losing rows behind feedlake's back fails the critical row-count check of that tenant.
    DeltaTable(str(warned / "contacts")).delete("contact_key = 'c2'")
    assert run_cli("quality", "--warehouse", wh, "--table", "contacts", "--fail-on", "critical") == EXIT_QUALITY
    latest = max((warned / "_quality" / "results").glob("*.json"), key=os.path.getmtime)
    failed = [o for o in json.loads(latest.read_text())["outcomes"] if not o["success"]]
    assert [(o["tenant_id"], o["expectation"], o["sample"]) for o in failed] == [
        ("w", "row_count_never_shrinks", [{"previous_rows": 2, "rows": 1}])
    ]


def test_data_docs_render_in_headless_chromium(warned: Path, tmp_path: Path):
    index = warned / "_quality" / "data_docs" / "index.html"
    assert index.is_file()
    pages = sorted((index.parent / "validations").rglob("*.html"))
    gate_page = next(p for p in pages if "contacts/gate" in p.as_posix())
    screenshot(index, tmp_path / "data_docs.png", tmp_path / "profile", height=1400)
    gate = dom(gate_page, tmp_path / "profile")
    for text in ("Expectation Validation Result", "contacts.gate", "Unsuccessful Expectations", "not-an-email"):
        assert text in gate
    # The validation list of the index is drawn by bootstrap-table (jQuery, Bootstrap): offline
    # it exists only when those scripts load from the vendored copies.
    listing = dom(index, tmp_path / "profile")
    assert "Showing 1 to" in listing and "contacts.gate" in listing
