"""``feedlake forget`` end to end on both Delta engines (issue 15: erasure requests, GDPR Art. 17 / CCPA).

One warehouse per engine, built once per module: ingest a landing zone where Ada
(email Ada@Acme.com, contact key c-ada, Segment user u-ada / anonymous anon-ada) sits
in every table of tenant acme next to Bob, and tenant globex has another person with
the same contact key; then bad requests, ``forget --purge-now --rewrite-landing``, a
rerun, a new file naming Ada, a backfill replaying the original files, and a second
forget that finds her only in a landing zone it may not rewrite. The tests read what
each step left: tables (chispa), Parquet files and ``_delta_log`` scanned byte by byte.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from feedlake.erasure.forget import EXIT_INCOMPLETE
from feedlake.streams.subjects import names_identifier, subject_hash, warehouse_salt
from tests.conftest import jsonl, read_table, run_cli, write_files

pytestmark = pytest.mark.system

ENGINES = ["delta-rs", "delta-spark"]
SUBJECT_TABLES = ["contacts", "contact_events", "contact_accounts", "crm_leads", "segment_messages", "quarantine", "activity_weekly"]
COMPARED = [*SUBJECT_TABLES, "accounts"]
# What names Ada: her email (any case) and her keys; "c-ada" is also a globex person's key.
ADA_EMAIL = "ada@acme.com"
ADA_KEYS = ("c-ada", "u-ada", "anon-ada")

ORIGINAL = {
    "tenant=acme/identify/dt=2024-03-04/contacts.jsonl": jsonl(
        '{"contact_key":"c-ada","email":"Ada@Acme.com","plan":"pro"}',
        '{"contact_key":"c-bob","email":"bob@acme.com","plan":"free"}',
    ),
    "tenant=acme/track/dt=2024-03-04/events.jsonl.gz": jsonl(
        '{"event_text":"signed up","event_timestamp":1709546400,"contact_key":"c-ada"}',
        '{"event_text":"signed up","event_timestamp":1709550000,"contact_key":"c-bob"}',
        '{"event_text":"logged in","event_timestamp":1709640000,"contact_key":"c-ada"}',
        '{"event_text":"logged in","event_timestamp":1709640000,"contact_key":"c-bob"}',
        '{"event_text":"logged in", "contact_key":"c-ada", oops',
        '{"event_text":"logged in", "contact_key":"c-bob", oops',
    ),
    "tenant=acme/group/dt=2024-03-04/links.csv": "contact_key,account_key\nc-ada,acme.com\nc-bob,acme.com\n",
    "tenant=acme/crm/dt=2024-03-04/leads.jsonl": jsonl(
        '{"email":"ada@acme.com","account":"acme","created_at":"1709546400","is_worked":"true","is_converted":"false","amount":"100"}',
        '{"email":"bob@acme.com","account":"acme","created_at":"1709546400","is_worked":"false","is_converted":"false","amount":"50"}',
    ),
    "tenant=acme/segment/dt=2024-03-04/calls.jsonl": jsonl(
        '{"type":"identify","messageId":"m-1","userId":"u-ada","anonymousId":"anon-ada","traits":{"email":"ADA@acme.com","first_name":"Ada"}}',
        '{"type":"track","messageId":"m-2","anonymousId":"anon-ada","timestamp":"2024-03-05T09:00:00Z","event":"viewed pricing"}',
        '{"type":"track","messageId":"m-3","userId":"u-bob","timestamp":"2024-03-05T09:00:00Z","event":"viewed pricing"}',
    ),
    "tenant=globex/identify/dt=2024-03-04/contacts.jsonl": jsonl('{"contact_key":"c-ada","email":"ada@globex.io"}'),
    "tenant=globex/track/dt=2024-03-04/events.jsonl": jsonl(
        '{"event_text":"signed up","event_timestamp":1709546400,"contact_key":"c-ada"}',
    ),
}
NEW_FILES = {
    "tenant=acme/track/dt=2024-03-11/new.jsonl": jsonl(
        '{"event_text":"came back","event_timestamp":1710151200,"contact_key":"c-ada"}',
        '{"event_text":"came back","event_timestamp":1710151200,"contact_key":"c-bob"}',
        '{"event_text":"came back", "contact_key":"anon-ada" oops',
    ),
    "tenant=acme/identify/dt=2024-03-11/again.jsonl": jsonl('{"contact_key":"c-ada-2","email":" ada@ACME.com"}'),
    "tenant=acme/segment/dt=2024-03-11/calls.jsonl": jsonl(
        '{"type":"identify","messageId":"m-9","userId":"u-ada","traits":{"first_name":"Ada"}}',
    ),
}


def names_ada(row: dict) -> bool:
    """A stored row of acme naming Ada (the test's own oracle, row by row)."""
    if row.get("tenant_id") != "acme":
        return False
    texts = [v for v in row.values() if isinstance(v, str)]
    return any(names_identifier(t, "email", ADA_EMAIL) or any(names_identifier(t, "contact_key", k) for k in ADA_KEYS) for t in texts)


def needle_in(needle: str, text: str) -> bool:
    """``needle`` as a whole token of ``text`` (any case): not inside a longer word or hex run.

    Data file names in the Delta log and in ``_source_file``-like columns hold random UUIDs,
    and ``…4f1c-ada3…`` holds ``c-ada`` by chance: not the person's key (a checkpoint was once
    reported holding ``c-ada`` though no row named the person).
    """
    return re.search(r"(?<![0-9a-z])" + re.escape(needle.lower()) + r"(?![0-9a-z])", text.lower()) is not None


def holders(root: Path, needles: dict[str, bool]) -> list[str]:
    """Files under ``root`` holding a needle: Parquet decoded (every column), anything else as bytes.

    ``needles``: value → whether globex's files (its partitions, its landing folder) may hold it
    (c-ada is also globex's key).
    """
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
        elif path.name.endswith(".gz"):
            text = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        else:
            text = path.read_bytes().decode("utf-8", "replace")
        for needle, globex_may in needles.items():
            if needle_in(needle, text) and not (globex_may and "globex" in str(path.relative_to(root))):
                found.append(f"{path.relative_to(root)}: {needle}")
    return found


def log_listing(warehouse: Path) -> dict[str, list[str]]:
    return {t.name: sorted(p.name for p in (t / "_delta_log").iterdir()) for t in warehouse.iterdir() if (t / "_delta_log").is_dir()}


def latest_reports(warehouse: Path, since: set[str]) -> list[dict]:
    paths = sorted(p for p in (warehouse / "_reports").glob("*.json") if p.name not in since)
    return [json.loads(p.read_text()) for p in paths]


def suppressed_of(reports: list[dict]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for report in reports:
        for s in report["streams"]:
            if s.get("suppressed"):
                out[(s["tenant_id"], s["stream"])] = out.get((s["tenant_id"], s["stream"]), 0) + s["suppressed"]
    return out


def rows_of(spark: SparkSession, warehouse: Path, table: str, drop: tuple[str, ...] = ()) -> DataFrame:
    df = read_table(spark, warehouse, table)
    return df.drop(*[c for c in drop if c in df.columns])


def without_ada(spark: SparkSession, df: DataFrame) -> DataFrame:
    return spark.createDataFrame([r for r in df.collect() if not names_ada(r.asDict())], df.schema)


@dataclass
class Scenario:
    engine: str
    landing: Path
    replay: Path
    warehouse: Path
    bad_codes: dict[str, int] = field(default_factory=dict)
    bad_changed: dict[str, bool] = field(default_factory=dict)
    forget_code: int = -1
    before: dict[str, DataFrame] = field(default_factory=dict)
    after: dict[str, DataFrame] = field(default_factory=dict)
    held_after_purge: list[str] = field(default_factory=list)
    landing_held_after: list[str] = field(default_factory=list)
    rerun: list[dict] = field(default_factory=list)
    new_run: list[dict] = field(default_factory=list)
    backfill: list[dict] = field(default_factory=list)
    after_new: dict[str, DataFrame] = field(default_factory=dict)
    after_backfill: dict[str, DataFrame] = field(default_factory=dict)
    held_at_end: list[str] = field(default_factory=list)
    second_code: int = -1
    audit: list[dict] = field(default_factory=list)


NEEDLES = {ADA_EMAIL: False, "u-ada": False, "anon-ada": False, "c-ada": True}


@pytest.fixture(scope="module", params=ENGINES)
def scenario(request, spark, tmp_path_factory) -> Scenario:
    engine = request.param
    root = tmp_path_factory.mktemp(engine)
    s = Scenario(engine, write_files(root / "landing", ORIGINAL), root / "replay", root / "warehouse")
    common = ["--warehouse", str(s.warehouse), "--engine", engine]
    assert run_cli("ingest", "--landing", str(s.landing), *common) == 0
    s.before = {t: rows_of(spark, s.warehouse, t).cache() for t in COMPARED}

    # Bad requests: a clear usage error (2), nothing written (no log entry, no key created).
    listing = log_listing(s.warehouse)
    (root / "bad.csv").write_text('email,contact_key\n"ada@acme.com,\n')
    (root / "both.csv").write_text("email,contact_key\nada@acme.com,c-ada\n")
    bad = {
        "unknown tenant": ["--tenant", "nobody", "--email", ADA_EMAIL],
        "invalid tenant": ["--tenant", "../acme", "--email", ADA_EMAIL],
        "empty email": ["--tenant", "acme", "--email", "  "],
        "empty key": ["--tenant", "acme", "--contact-key", ""],
        "malformed csv": ["--tenant", "acme", "--requests", str(root / "bad.csv")],
        "two identifiers in a row": ["--tenant", "acme", "--requests", str(root / "both.csv")],
    }
    for name, args in bad.items():
        s.bad_codes[name] = run_cli("forget", *args, *common)
        s.bad_changed[name] = log_listing(s.warehouse) != listing or (s.warehouse / "_privacy").exists()

    s.forget_code = run_cli(
        "forget", "--tenant", "acme", "--email", " ADA@Acme.com ", "--landing", str(s.landing), "--rewrite-landing",
        "--purge-now", *common,
    )
    s.after = {t: rows_of(spark, s.warehouse, t).cache() for t in COMPARED}
    s.held_after_purge = holders(s.warehouse, NEEDLES)
    s.landing_held_after = holders(s.landing, NEEDLES)

    seen = {p.name for p in (s.warehouse / "_reports").glob("*.json")}
    assert run_cli("ingest", "--landing", str(s.landing), *common) == 0  # a rerun
    s.rerun = latest_reports(s.warehouse, seen)

    seen = {p.name for p in (s.warehouse / "_reports").glob("*.json")}
    write_files(s.landing, NEW_FILES)  # a new file with the person
    assert run_cli("ingest", "--landing", str(s.landing), *common) == 0
    s.new_run = latest_reports(s.warehouse, seen)
    s.after_new = {t: rows_of(spark, s.warehouse, t, ("_batch_id", "batch_id")).cache() for t in COMPARED}

    seen = {p.name for p in (s.warehouse / "_reports").glob("*.json")}
    write_files(s.replay, {**ORIGINAL, **NEW_FILES})  # a replay of the original files: a backfill over the same days
    assert run_cli("backfill", "--landing", str(s.replay), "--from", "2024-03-04", "--to", "2024-03-11", *common) == 0
    s.backfill = latest_reports(s.warehouse, seen)
    s.after_backfill = {t: rows_of(spark, s.warehouse, t, ("_batch_id", "batch_id")).cache() for t in COMPARED}
    s.held_at_end = holders(s.warehouse, NEEDLES)

    # Forget again, by key, listing a landing zone that still holds her without rewriting it: exit 4.
    s.second_code = run_cli("forget", "--tenant", "acme", "--contact-key", "c-ada", "--landing", str(s.replay), *common)
    s.audit = [r.asDict() for r in read_table(spark, s.warehouse, "privacy_requests").collect()]
    yield s
    shutil.rmtree(root, ignore_errors=True)


def test_bad_requests_are_usage_errors_and_change_nothing(scenario):
    assert scenario.bad_codes == {name: 2 for name in scenario.bad_codes}
    assert not any(scenario.bad_changed.values()), scenario.bad_changed


def test_forget_removes_the_person_from_every_table_and_nothing_else(spark, scenario):
    assert scenario.forget_code == 0
    for table in COMPARED:
        before = scenario.before[table]
        assert any(names_ada(r.asDict()) for r in before.collect()) == (table != "accounts"), table
        assert_df_equality(scenario.after[table], without_ada(spark, before), ignore_row_order=True, ignore_nullable=True)


def test_after_purge_the_value_is_in_no_data_file_and_no_log_entry(scenario):
    assert scenario.held_after_purge == []
    assert scenario.held_at_end == []


def test_audit_row_holds_hashes_counts_and_purge_status(scenario):
    salt = warehouse_salt(str(scenario.warehouse), create=False)
    first = next(a for a in scenario.audit if a["identifier_kind"] == "email")
    assert first["identifier_hash"] == subject_hash(salt, "email", ADA_EMAIL)
    assert first["status"] == "complete" and first["purge_status"].startswith("purged")
    assert json.loads(first["rows_removed"]) == {
        "contacts": 2, "contact_events": 3, "contact_accounts": 1, "crm_leads": 1, "segment_messages": 2,
        "quarantine": 1, "activity_weekly": 3,
        "quality_results": 1,  # the all-tenant contact_events check whose sample named acme/anon-ada
    }
    assert json.loads(first["rows_left"]) == {}
    assert json.loads(first["landing_files"]) == {"holding": 5, "rewritten": 5, "errors": 0}
    hashes = set(json.loads(first["subject_hashes"]))
    assert {subject_hash(salt, "contact_key", k) for k in ADA_KEYS} <= hashes
    second = next(a for a in scenario.audit if a["identifier_kind"] == "contact_key")
    assert second["status"] == "incomplete" and json.loads(second["landing_files"])["holding"] > 0
    assert scenario.second_code == EXIT_INCOMPLETE


def test_landing_files_are_rewritten_without_the_person_and_not_read_again(scenario):
    assert scenario.landing_held_after == []
    events = scenario.landing / "tenant=acme/track/dt=2024-03-04/events.jsonl.gz"
    lines = gzip.decompress(events.read_bytes()).decode().splitlines()  # still gzip
    assert len(lines) == 3 and all("c-bob" in line for line in lines)
    assert (scenario.landing / "tenant=acme/group/dt=2024-03-04/links.csv").read_text() == "contact_key,account_key\nc-bob,acme.com\n"
    totals = [r["totals"] for r in scenario.rerun]
    assert totals and all(t["files_read"] == 0 and t["files_skipped"] == 7 for t in totals), totals


def test_a_new_file_and_a_backfill_replay_bring_nothing_back(spark, scenario):
    assert suppressed_of(scenario.new_run) == {("acme", "track"): 2, ("acme", "identify"): 1, ("acme", "segment"): 1}
    bob = [r for r in scenario.after_new["contact_events"].collect() if r["event_text"] == "came back"]
    assert [r["contact_key"] for r in bob] == ["c-bob"]
    for table in COMPARED:
        assert not [r for r in scenario.after_new[table].collect() if names_ada(r.asDict())], table
        assert_df_equality(scenario.after_backfill[table], scenario.after_new[table], ignore_row_order=True, ignore_nullable=True)
    replayed = suppressed_of(scenario.backfill)
    assert replayed[("acme", "track")] >= 4 and replayed[("acme", "identify")] == 2 and replayed[("acme", "crm")] == 1
    for report in scenario.backfill:
        for s in report["streams"]:
            assert s["records_read"] == (
                s["accepted"] + s["quarantined"] + s["duplicates_dropped"] + s.get("blocked_records", 0) + s["suppressed"]
            )
