"""Both Delta engines build identical warehouses from one scenario (issue #11, item 3).

The scenario is run once per warehouse (module-scoped fixtures) and asserted many ways:

* ``forward``: batches A, B, C in landing order, each batch ingested into a **delta-rs**
  and a **delta-spark** warehouse from one shared landing zone, then a rerun of each
  (nothing new: no table gets a new version);
* ``reverse``: the same files on **delta-rs** in the order B, A, C (seed 000 FAQ:
  "the order in which batches are processed does not change the final tables"),
  compared with the forward **delta-spark** warehouse: order and engine both differ,
  so one comparison covers both (and delta-rs runs a local batch in less time).

Batch A (older) holds, for tenant ``acme``: the seed-000 feeds (identify/track/group,
JSON lines and CSV, gzip), every other stream of conf/streams.yaml (seed-001 objects
layout contact/account/contact_event/account_event, crm, segment, metrics), quarantined
lines and whole files; for tenant ``evil`` (:mod:`tests.integration.hostile_keys`) the
same kinds of records keyed by hostile values. Batch B (newer) restates and extends them:
newer identify/track/group records (contacts move account: activity re-pointed), entity
maps naming accounts and account events that arrived in A (entity-map moves), a second
metrics week and a restated day (account_metrics slice deletes), Segment retries, a newer
CRM file. Batch C rewrites one file of A in place (the quarantine rows of its previous
version are deleted and replaced).

Every table of conf/tables.yaml is compared between the warehouses with chispa, all
columns but those naming a run or a wall-clock time (``run_id``, ``processed_at``,
``checked_at``) and, across two landing zones, the file-system identity of a landing
file (``modified_at``, ``modified_ns``, ``stat_token``: another copy of the same file).
The hostile-key assertions (issue #11, item 6) are in test_engine_hostile_keys.py and
reuse these warehouses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from feedlake.settings.config import load_config
from tests.conftest import run_cli, without_quality, write_files
from tests.integration import hostile_keys as evil
from tests.integration.test_ingest_cli import BATCH_NEW, BATCH_OLD, SEED_000
from tests.integration.test_metrics_activity import FIRST as ACTIVITY_FIRST
from tests.integration.test_metrics_activity import SECOND as ACTIVITY_SECOND
from tests.integration.test_metrics_weekly import FIRST as METRICS_FIRST
from tests.integration.test_metrics_weekly import SECOND as METRICS_SECOND
from tests.integration.test_streams_api_objects import MAPS, SEED_ACCOUNT, SF_ACCOUNTS, line, objects
from tests.integration.test_streams_crm import SEED as CRM_SEED
from tests.integration.test_streams_segment import FIRST as SEGMENT_FIRST
from tests.integration.test_streams_segment import LATER as SEGMENT_LATER

pytestmark = [pytest.mark.delta_spark, pytest.mark.system, pytest.mark.parity]

LAYOUTS = "landing_layout=[tenant_stream, objects]"
ENGINES = ("delta-rs", "delta-spark")

# Columns that name a run or a wall-clock time (conf/tables.yaml), never compared.
RUN_COLUMNS = frozenset({"run_id", "processed_at", "checked_at"})
# The file-system identity of a landing file: another copy of the same file has another.
COPY_COLUMNS = frozenset({"modified_at", "modified_ns", "stat_token"})
# Manifest counts that depend on which run read a record first (see the batch-order test).
FIRST_SEEN_COUNTS = frozenset({"records_accepted", "duplicates_dropped"})
# Tables that record runs (one row per expectation and run), compared only between runs of the same batches.
RUN_TABLES = frozenset({"quality_results"})
STREAM_COUNTS = ("records_read", "accepted", "quarantined", "duplicates_dropped", "quarantined_by_code", "tables",
                 "files_read")


def _retenant(files: Mapping[str, str | bytes], old: str, new: str) -> dict[str, str | bytes]:
    return {path.replace(f"tenant={old}/", f"tenant={new}/"): content for path, content in files.items()}


def _gzip(files: Mapping[str, str | bytes]) -> dict[str, str | bytes]:
    return {f"{path}.gz": content for path, content in files.items()}


# --- tenant acme: every stream, with the records of the stream tests ---------------------
ACME_A: dict[str, str | bytes] = {
    **SEED_000,  # seed 000 identify/track (JSON lines: a corrupt line, a duplicate) and group (CSV, CRLF)
    **_gzip(BATCH_OLD),  # the same feeds gzip-compressed
    **ACTIVITY_FIRST,  # events over three weeks, contacts linked to accounts
    **METRICS_FIRST,  # metrics week of 2024-03-04 (CSV, declared cumulative and stock metrics)
    **_retenant(SEGMENT_FIRST, "initech", "acme"),  # Segment: identify/track/group, unsupported calls, gzip
    # seed 001 objects layout: accounts and account events of two systems, contacts, contact events
    **_retenant(SF_ACCOUNTS, "3303", "acme"),
    objects("account", "dataapi", "acme", "2025-06-01-00-00", "seed.jsonl"): SEED_ACCOUNT + "\n",
    objects("contact", "dataapi", "acme", "2025-06-01-00-00", "c.jsonl"): "".join(
        s + "\n" for s in (
            line(type="contact", contact_id="c-1", email="ada@acme.com",
                 contact_properties={"first_name": "Ada", "is_active": False}),
            line(type="contact", email="bob@acme.com", contact_properties={"title": "CTO"}),
            line(type="account", account_id="acme-corp"),  # type_mismatch
        )
    ),
    objects("contact_event", "dataapi", "acme", "2025-06-01-00-00", "e.jsonl.gz"): "".join(
        s + "\n" for s in (
            line(type="contact_event", contact_id="c-1", event_name="signed_up", event_timestamp="2025-06-01T07:00:00Z",
                 event_properties={"plan": "pro"}),
            line(type="contact_event", contact_id="c-1", event_name="login", event_timestamp="2025-06-01 07:00"),
        )
    ),
    "tenant=acme/crm/dt=2024-03-01/leads.jsonl.gz": "".join(s + "\n" for s in CRM_SEED),
    # whole files the landing zone refuses: a stream that does not exist, a format that is not read
    "tenant=acme/clicks/dt=2024-03-01/x.jsonl": '{"a":1}\n',
    "tenant=acme/identify/dt=2024-03-01/data.parquet": b"PAR1",
}
ACME_B: dict[str, str | bytes] = {
    **BATCH_NEW,  # newer identify/track (CSV)/group: c1 moves to acct-new
    **ACTIVITY_SECOND,  # a new week, a re-sent event, c1 moves account: activity re-pointed
    **METRICS_SECOND,  # the week of 2024-03-11, 2024-03-07 restated without "active users" (slice deletes)
    **_retenant(SEGMENT_LATER, "initech", "acme"),  # retries in an older folder, a newer copy that differs
    **_retenant(MAPS, "3303", "acme"),  # 001A mapped (then corrected) after its account and events landed: moves
    "tenant=acme/crm/dt=2024-03-02/leads.csv": (
        "email,account,created_at,is_worked,is_converted,amount,converted_date,deal_amount,lead_source\n"
        "elon@tesla.com,tesla,1234567890,TRUE,true,2999.5,1234600000,36000,webinar\n"
        'eve@tesla.com,tesla,1234567890,true,true,"1,000",,,\n'
    ),
}

BATCH_A = {**ACME_A, **evil.BATCH_A}
BATCH_B = {**ACME_B, **evil.BATCH_B}
BATCH_C = dict(evil.BATCH_C)  # a file of batch A rewritten in place


@dataclass
class Warehouse:
    """A warehouse built by one engine from a sequence of batches: its run reports and table versions."""

    engine: str
    path: Path
    landing: Path
    reports: list[dict] = field(default_factory=list)
    versions: dict[str, dict[str, int]] = field(default_factory=dict)

    def ingest(self, *extra: str) -> dict:
        report = ingest(self.engine, self.landing, self.path, *extra)
        self.reports.append(report)
        return report


def ingest(engine: str, landing: Path, warehouse: Path, *extra: str) -> dict:
    """``feedlake ingest`` in-process (the test session has both engines' jars) → the run's JSON report."""
    code = run_cli("ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", engine,
                   "--set", LAYOUTS, *extra)
    assert code == 0, f"feedlake ingest --engine {engine} exited {code}"
    reports = sorted((warehouse / "_reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())


def build(root: Path, batches: Iterable[Mapping[str, str | bytes]], engines: Iterable[str], *extra: str,
          rerun: bool = False) -> dict[str, Warehouse]:
    """One landing zone written batch by batch; after each batch, every engine's warehouse ingests it."""
    landing = root / "landing"
    houses = {e: Warehouse(e, root / f"warehouse-{e}", landing) for e in engines}
    for batch in batches:
        write_files(landing, batch)
        for house in houses.values():
            house.ingest(*extra)
    if rerun:
        for house in houses.values():
            house.versions["before_rerun"] = delta_versions(house.path)
            house.ingest(*extra)
            house.versions["after_rerun"] = delta_versions(house.path)
    return houses


def table_names() -> list[str]:
    """Every table declared in conf/tables.yaml."""
    return sorted(load_config().tables)


def read(spark: SparkSession, warehouse: Path, name: str, drop: Iterable[str] = ()) -> DataFrame:
    """A table of a warehouse (declared columns, minus ``drop``), read by Spark's Delta reader, sorted."""
    table = load_config().table(name)
    columns = [c for c in table.column_names if c not in set(drop)]
    path = warehouse / name
    if not (path / "_delta_log").is_dir():
        return spark.createDataFrame([], table.ddl).select(*columns)
    df = spark.read.format("delta").load(str(path)).select(*columns)
    return df.orderBy(*columns)


def assert_same_table(spark: SparkSession, left: Path, right: Path, name: str, drop: Iterable[str] = (),
                      where: str | None = None) -> None:
    """Table ``name`` holds the same rows in both warehouses (columns in ``drop`` and run columns aside)."""
    dropped = RUN_COLUMNS | set(drop)
    assert (left / name / "_delta_log").is_dir() == (right / name / "_delta_log").is_dir(), f"{name} exists in one only"
    mine, theirs = read(spark, left, name, dropped), read(spark, right, name, dropped)
    if where is not None:
        mine, theirs = mine.where(where), theirs.where(where)
    assert_df_equality(mine, theirs, ignore_row_order=True, ignore_nullable=True)


def delta_versions(warehouse: Path) -> dict[str, int]:
    """Number of commits of every table of the warehouse."""
    return {p.parent.name: len(list(p.glob("*.json"))) for p in sorted(warehouse.glob("*/_delta_log"))}


@pytest.fixture(scope="module")
def forward(spark, tmp_path_factory) -> dict[str, Warehouse]:
    """Batches A, B, C in order into a delta-rs and a delta-spark warehouse (one landing zone), then a rerun."""
    return build(tmp_path_factory.mktemp("forward"), [BATCH_A, BATCH_B, BATCH_C], ENGINES, rerun=True)


@pytest.fixture(scope="module")
def reverse(spark, tmp_path_factory) -> Warehouse:
    """The same batches on delta-rs in the order B, A, then C.

    Without the quality hooks (their table, quality_results, is compared between the
    engines in ``forward`` only): the gate blocks nothing in this scenario, so the
    business tables must still equal the forward ones.
    """
    return build(tmp_path_factory.mktemp("reverse"), [BATCH_B, BATCH_A, BATCH_C], ["delta-rs"], *without_quality())["delta-rs"]


@pytest.fixture(scope="module")
def acme_alone(spark, tmp_path_factory) -> Warehouse:
    """Tenant acme's batches A and B alone (no hostile tenant ever landed), with delta-rs, without the quality hooks."""
    return build(tmp_path_factory.mktemp("acme_alone"), [ACME_A, ACME_B], ["delta-rs"], *without_quality())["delta-rs"]


@pytest.mark.parametrize("name", table_names())
def test_delta_spark_builds_the_tables_delta_rs_builds(spark, forward, name):
    """Same batches, same runs, one landing zone: every table identical, file identity and quality results included."""
    assert_same_table(spark, forward["delta-spark"].path, forward["delta-rs"].path, name)


@pytest.mark.parametrize("name", sorted(set(table_names()) - RUN_TABLES))
def test_batch_order_does_not_change_the_tables(spark, forward, reverse, name):
    """delta-rs, batches B, A, C ↔ delta-spark, batches A, B, C (seed 000 FAQ), in another copy of the landing zone.

    The manifest records what the run that read a file did with its records: whether a
    record was accepted or dropped as a duplicate depends on which file a run saw first
    (the final tables do not), so those two counts are not compared; records read and
    quarantined are.
    """
    drop = COPY_COLUMNS | (FIRST_SEEN_COUNTS if name == "ingest_files" else frozenset())
    assert_same_table(spark, reverse.path, forward["delta-spark"].path, name, drop=drop)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rerun_writes_nothing(forward, engine):
    """A rerun over unchanged files skips them all and commits no new version of any table."""
    house = forward[engine]
    rerun = house.reports[-1]
    assert (rerun["totals"]["records_read"], rerun["totals"]["files_skipped"]) == (
        0, sum(1 for p in house.landing.rglob("*") if p.is_file())
    )
    assert house.versions["after_rerun"] == house.versions["before_rerun"]


def test_the_same_runs_report_the_same_counts(forward):
    """Each delta-spark run reports what the same delta-rs run reported: records, quarantine, duplicates,
    rows inserted/updated per table, entity-map moves."""

    def counts(report: dict) -> dict:
        return {
            "streams": {(s["tenant_id"], s["stream"]): {k: s.get(k) for k in STREAM_COUNTS} for s in report["streams"]},
            "moved": report.get("extras", {}).get("entity_map_moved"),
        }

    assert [counts(r) for r in forward["delta-spark"].reports] == [counts(r) for r in forward["delta-rs"].reports]
    assert [counts(r)["moved"] for r in forward["delta-rs"].reports] == [
        None,
        {"acme": {"account_events": 1, "accounts": 1}, "evil": {"account_events": 5, "accounts": 5}},
        None,
        None,
    ]


# --- hostile keys (issue #11, item 6) ----------------------------------------------------
EVIL = f"tenant_id = '{evil.TENANT}'"
WEEK = dt.date(2024, 3, 4)


def evil_rows(spark: SparkSession, warehouse: Path, name: str, columns: list[str]) -> DataFrame:
    return read(spark, warehouse, name).where(EVIL).select(*columns)


def hostile_expectations(spark: SparkSession) -> dict[str, tuple[list[str], DataFrame]]:
    """Tenant evil's rows after batches A, B, C: table → (columns, rows), derived from tests.integration.hostile_keys."""
    h, csv_keys, m = evil.HOSTILE, evil.IN_CSV, evil.METRICS
    landed = 1709632800  # 2024-03-05T10:00:00Z, the Segment track calls
    account_event_at = 1709683200  # 2024-03-06T00:00:00Z
    out = {
        "contacts": ("contact_key STRING, email STRING",
                     [(k, f"u{i}@evil.io") for i, k in enumerate(h)] + [("q1", "q1@evil.io"), ("q2", "q2@evil.io")]),
        "contact_events": ("contact_key STRING, event_text STRING, event_timestamp BIGINT, event_key STRING",
                           [(k, k, landed, f"t-{i}") for i, k in enumerate(h)]),
        # the group feed of batch B is newer than the Segment group calls of batch A
        "contact_accounts": ("contact_key STRING, account_key STRING", [(k, evil.canonical(i)) for i, k in enumerate(h)]),
        # moved from the hostile ids: Segment traits (older) and crm account properties (newer) merged
        "accounts": ("account_key STRING, name STRING, industry STRING, source_system STRING",
                     [(evil.canonical(i), f"CRM {i}", k, "crm") for i, k in enumerate(h)]),
        "account_events": ("account_key STRING, event_text STRING, event_timestamp BIGINT, source_account_id STRING, "
                           "source_system STRING",
                           [(evil.canonical(i), k, account_event_at, k, "crm") for i, k in enumerate(h)]),
        "entity_map": ("source_system STRING, source_id STRING, account_key STRING",
                       [(s, k, evil.canonical(i)) for i, k in enumerate(h) for s in ("segment", "crm")]),
        "segment_messages": ("message_id STRING, type STRING, contact_key STRING",
                             [(f"{p}-{i}", t, k) for i, k in enumerate(h)
                              for p, t in (("i", "identify"), ("t", "track"), ("g", "group"))]),
        # re-pointed from the Segment group's id to acct-<i> by the group feed of batch B
        "activity_weekly": ("account_key STRING, contact_key STRING, event_text STRING, week_start DATE, "
                            "event_count BIGINT, active_days BIGINT",
                            [(evil.canonical(i), k, k, WEEK, 1, 1) for i, k in enumerate(h)]),
        # 2024-03-04: the first CSV metric restated away (deleted); 2024-03-05: the JSON metric restated away
        "account_metrics": ("account_key STRING, metric STRING, metric_date DATE, value DOUBLE, sources BIGINT",
                            [(k, m[1], WEEK, 30.0 + j, 1) for j, k in enumerate(csv_keys)]
                            + [(k, m[2], WEEK, 40.0 + j, 1) for j, k in enumerate(csv_keys)]
                            + [(k, m[0], dt.date(2024, 3, 5), 300.0 + i, 1) for i, k in enumerate(h)]),
        "account_metrics_weekly": ("account_key STRING, metric STRING, week_start DATE, value DOUBLE, days_reported BIGINT",
                                   [(k, m[1], WEEK, 30.0 + j, 1) for j, k in enumerate(csv_keys)]
                                   + [(k, m[2], WEEK, 40.0 + j, 1) for j, k in enumerate(csv_keys)]
                                   + [(k, m[0], WEEK, 300.0 + i, 1) for i, k in enumerate(h)]),
        "metric_records": ("source_id STRING, metric_date DATE",
                           [(k, WEEK) for k in csv_keys] + [(k, dt.date(2024, 3, 5)) for k in h]),
        # the rewritten file's old rows (lines 2, 3) were deleted by its name; the page call stays
        "quarantine": ("source_file STRING, line_number BIGINT, error_code STRING",
                       [("tenant=evil/segment/dt=2024-03-02/calls.jsonl", evil.SEGMENT_PAGE_LINE, "unsupported_type")]),
    }
    frames = {name: spark.createDataFrame(rows, schema) for name, (schema, rows) in out.items()}
    return {name: (frame.columns, frame) for name, frame in frames.items()}


HOSTILE_TABLES = ("contacts", "contact_events", "contact_accounts", "accounts", "account_events", "entity_map",
                  "segment_messages", "activity_weekly", "account_metrics", "account_metrics_weekly", "metric_records",
                  "quarantine")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", HOSTILE_TABLES)
def test_hostile_keys_land_exactly_as_sent(spark, forward, engine, name):
    """Keys with ', \\, a trailing \\, --, ;, newlines and non-ASCII are matched, moved, re-pointed and deleted as
    values, never as SQL text (issue #11, item 6): tenant evil holds exactly the expected rows on both engines."""
    columns, rows = hostile_expectations(spark)[name]
    assert_df_equality(evil_rows(spark, forward[engine].path, name, columns), rows,
                       ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_rewritten_hostile_file_had_its_quarantine_replaced(forward, engine):
    """The file named with ', ;, -- and \\ quarantined two lines in batch A; its rewrite (batch C) was read again."""
    first, changed = forward[engine].reports[0], forward[engine].reports[2]
    streams = {(s["tenant_id"], s["stream"]): s for s in first["streams"]}
    assert streams[(evil.TENANT, "identify")]["quarantined_by_code"] == {"malformed_json": 1, "missing_required_field": 1}
    read = [(s["tenant_id"], s["stream"], s["records_read"], s["quarantined"]) for s in changed["streams"] if s["files_read"]]
    assert read == [(evil.TENANT, "identify", 2, 0)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(set(table_names()) - RUN_TABLES))
def test_hostile_keys_never_change_another_tenants_rows(spark, forward, acme_alone, engine, name):
    """Tenant acme's rows are those of a warehouse where tenant evil never landed (issue #11: one tenant's hostile
    values never change another tenant's rows)."""
    assert_same_table(spark, forward[engine].path, acme_alone.path, name, drop=COPY_COLUMNS, where="tenant_id = 'acme'")
