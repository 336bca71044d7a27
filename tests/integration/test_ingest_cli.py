"""`feedlake ingest` end to end on landing zones in a tmp dir, with the seed's own records."""

import gzip
from dataclasses import dataclass
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import DataFrame

from tests.conftest import in_tenant, ingest_report, jsonl, read_table, run_cli, tenant_table, write_files

BUSINESS_TABLES = ["contacts", "contact_events", "contact_accounts", "accounts", "quarantine"]
RUN_COLUMNS = ("_batch_id", "batch_id")  # hashes of the batch's landing paths, tenant folder included

SEED_000 = {
    # seed 000 §1.2 identify examples, plus a record without email
    "tenant=acme/identify/dt=2024-03-01/identify.jsonl": jsonl(
        '{"contact_key":"abc1234", "email":"paul@madkudu.com"}',
        '{"contact_key":"432535", "email":"paul@madkudu.com", "some_other_contact_field":"some value"}',
        '{"contact_key":"no-email"}',
    ),
    # seed 000 §1.1 track examples (event_key absent: derived), the §2.3 corrupt line, a duplicate
    "tenant=acme/track/dt=2024-03-01/track.jsonl": jsonl(
        '{"eventid": "abcd1234", "event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234"}',
        '{"eventid": "abcd2345", "event_text":"added a friend", "event_timestamp":1234567890, '
        '"contact_key":"paul@madkudu.com", "some_other_event_field":"some_value"}',
        '{"event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234", "key": "val"ue"}',
        '{"eventid": "dupe", "event_text":"signed up", "event_timestamp":"1234567890", "contact_key":"abc1234"}',
    ),
    # seed 000 §1.3 group examples
    "tenant=acme/group/dt=2024-03-01/group.csv": (
        'contact_key,account_key,name,some_other_account_field\r\n'
        'abc1234,madkudu.com,madkudu,\r\n'
        '432535,madkudu.com,,some value\r\n'
    ),
}


def ingest(landing: Path, warehouse: Path, *extra: str, quality: bool = False) -> dict:
    """One run; without the quality gate (tested in test_quality_cli) unless ``quality``."""
    return ingest_report(landing, warehouse, *extra, quality=quality)


def by_stream(report: dict) -> dict:
    return {(s["tenant_id"], s["stream"]): s for s in report["streams"]}


@dataclass(frozen=True)
class SeedRuns:
    """SEED_000 ingested with the packaged conf whole (quality gate included), then the same files again."""

    warehouse: Path
    first: dict  # report of the first run
    second: dict  # report of the rerun
    tables: dict[str, DataFrame]  # BUSINESS_TABLES after the first run
    versions: dict[str, int]  # their Delta commits after the first run


@pytest.fixture(scope="module")
def seed_runs(spark, tmp_path_factory) -> SeedRuns:
    root = tmp_path_factory.mktemp("seed")
    landing, warehouse = write_files(root / "landing", SEED_000), root / "warehouse"
    first = ingest(landing, warehouse, quality=True)
    tables = {t: read_table(spark, warehouse, t) for t in BUSINESS_TABLES}  # rows read into the driver now
    versions = {t: len(list((warehouse / t / "_delta_log").glob("*.json"))) for t in BUSINESS_TABLES}
    return SeedRuns(warehouse, first, ingest(landing, warehouse), tables, versions)


def test_seed_examples_land_in_their_tables(spark, seed_runs):
    report, warehouse = seed_runs.first, seed_runs.warehouse
    contacts = read_table(spark, warehouse, "contacts", ["tenant_id", "contact_key", "email", "properties"])
    expected_contacts = spark.createDataFrame(
        [
            ("acme", "432535", "paul@madkudu.com", '{"some_other_contact_field":"some value"}'),
            ("acme", "abc1234", "paul@madkudu.com", "{}"),
        ],
        "tenant_id STRING, contact_key STRING, email STRING, properties STRING",
    )
    assert_df_equality(contacts, expected_contacts, ignore_nullable=True)

    events = read_table(spark, warehouse, "contact_events", ["contact_key", "event_text", "event_timestamp", "properties"])
    expected_events = spark.createDataFrame(
        [
            ("abc1234", "signed up", 1234567890, '{"eventid":"abcd1234"}'),  # first one in the file wins
            ("paul@madkudu.com", "added a friend", 1234567890, '{"eventid":"abcd2345","some_other_event_field":"some_value"}'),
        ],
        "contact_key STRING, event_text STRING, event_timestamp BIGINT, properties STRING",
    )
    assert_df_equality(events, expected_events, ignore_row_order=True, ignore_nullable=True)
    keys = {r.event_key for r in read_table(spark, warehouse, "contact_events").collect()}
    assert all(len(k) == 64 for k in keys)  # derived: sha-256 of event_text, contact_key, event_timestamp

    accounts = read_table(spark, warehouse, "accounts", ["account_key", "properties"])
    expected_accounts = spark.createDataFrame(
        [("madkudu.com", '{"name":"madkudu","some_other_account_field":"some value"}')], "account_key STRING, properties STRING"
    )
    assert_df_equality(accounts, expected_accounts, ignore_nullable=True)
    links = read_table(spark, warehouse, "contact_accounts", ["contact_key", "account_key"])
    expected_links = spark.createDataFrame([("432535", "madkudu.com"), ("abc1234", "madkudu.com")], "contact_key STRING, account_key STRING")
    assert_df_equality(links, expected_links, ignore_nullable=True)

    quarantine = read_table(spark, warehouse, "quarantine", ["stream", "line_number", "raw_record", "error_code"])
    expected_quarantine = spark.createDataFrame(
        [
            ("identify", 3, '{"contact_key":"no-email"}', "missing_required_field"),
            ("track", 3, '{"event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234", "key": "val"ue"}',
             "malformed_json"),
        ],
        "stream STRING, line_number BIGINT, raw_record STRING, error_code STRING",
    )
    assert_df_equality(quarantine, expected_quarantine, ignore_nullable=True)

    streams = by_stream(report)
    assert {k: (s["records_read"], s["accepted"], s["quarantined"], s["duplicates_dropped"]) for k, s in streams.items()} == {
        ("acme", "identify"): (3, 2, 1, 0),
        ("acme", "track"): (4, 2, 1, 1),
        ("acme", "group"): (2, 2, 0, 0),
    }
    assert streams[("acme", "track")]["tables"]["contact_events"] == {"inserted": 2, "updated": 0}
    assert streams[("acme", "track")]["quarantined_by_code"] == {"malformed_json": 1}


def test_rerun_changes_nothing(spark, seed_runs):
    warehouse = seed_runs.warehouse
    assert seed_runs.second["totals"]["files_skipped"] == 3 and seed_runs.second["totals"]["records_read"] == 0
    for t in BUSINESS_TABLES:
        assert_df_equality(read_table(spark, warehouse, t), seed_runs.tables[t])
        assert len(list((warehouse / t / "_delta_log").glob("*.json"))) == seed_runs.versions[t]


BATCH_OLD = {
    "tenant=acme/identify/dt=2024-03-01/a.jsonl": jsonl(
        '{"contact_key":"c1", "email":"old@x.io", "plan":"free", "seats":1}',
        '{"contact_key":"c2", "email":"c2@x.io"}',
    ),
    "tenant=acme/track/dt=2024-03-01/a.jsonl": jsonl(
        '{"event_text":"login", "event_timestamp":1709251200, "contact_key":"c1", "via":"old batch"}',
    ),
    "tenant=acme/group/dt=2024-03-01/a.jsonl": jsonl('{"contact_key":"c1", "account_key":"acct-old", "name":"Old"}'),
}
BATCH_NEW = {
    "tenant=acme/identify/dt=2024-03-02/b.jsonl": jsonl('{"contact_key":"c1", "email":"new@x.io", "plan":"pro"}'),
    "tenant=acme/track/dt=2024-03-02/b.csv": (
        "event_text,event_timestamp,contact_key,via\nlogin,1709251200,c1,new batch\nlogout,1709251300,c1,new batch\n"
    ),
    "tenant=acme/group/dt=2024-03-02/b.jsonl": jsonl('{"contact_key":"c1", "account_key":"acct-new", "name":"New"}'),
}


GOOD = jsonl('{"contact_key":"k1","email":"a@b.io"}', '{"contact_key":"k2","email":"c@d.io"}')
CHANGED = "tenant=changed/identify/dt=2024-03-01/u.jsonl"
REWRITTEN = {"identify": "tenant=rewritten/identify/dt=2024-03-01/u.jsonl", "track": "tenant=rewritten/track/dt=2024-03-01/e.jsonl"}
FIRST_RUN = {
    **in_tenant(BATCH_OLD, "forward"),
    **in_tenant(BATCH_NEW, "reverse"),
    # A record naming another tenant of the zone: the path decides.
    "tenant=globex/identify/u.jsonl": jsonl('{"contact_key":"k","email":"e@g.io","tenant_id":"forward"}'),
    # Whole-file problems: a truncated gzip, a format not read, an unknown stream, an empty file.
    "tenant=broken/identify/cut.jsonl.gz": gzip.compress(GOOD.encode() * 500)[:-40],
    "tenant=broken/identify/data.parquet": b"PAR1",
    "tenant=broken/clicks/x.jsonl": GOOD,
    "tenant=broken/identify/empty.csv": "",
    CHANGED: jsonl('{"contact_key":"k1"}', '{"contact_key":"k2","email":"b@x.io"}'),
    REWRITTEN["identify"]: jsonl('{"contact_key":"k1","email":"old@x.io","plan":"free"}'),
    REWRITTEN["track"]: jsonl('{"event_text":"login","event_timestamp":1709251200,"contact_key":"k1","via":"v1"}'),
}
SECOND_RUN = {
    **in_tenant(BATCH_NEW, "forward"),
    **in_tenant(BATCH_OLD, "reverse"),
    CHANGED: jsonl('{"contact_key":"k1","email":"fixed@x.io"}', '{"contact_key":"k2","email":"b@x.io"}', "{oops"),
    REWRITTEN["identify"]: jsonl('{"contact_key":"k1","email":"new@x.io","plan":"pro","seats":2}'),
    REWRITTEN["track"]: jsonl('{"event_text":"login","event_timestamp":1709251200,"contact_key":"k1","via":"version 2"}'),
}


@dataclass(frozen=True)
class TwoRuns:
    """Independent scenarios as tenants of one landing zone (issue 14): FIRST_RUN, then SECOND_RUN written over it."""

    warehouse: Path
    first: dict
    second: dict


@pytest.fixture(scope="module")
def two_runs(spark, tmp_path_factory) -> TwoRuns:
    root = tmp_path_factory.mktemp("two-runs")
    landing, warehouse = root / "landing", root / "warehouse"
    write_files(landing, FIRST_RUN)
    cut = "tenant=broken/identify/cut.jsonl.gz"
    (landing / cut).write_bytes(FIRST_RUN[cut])  # as cut, not compressed again by write_files
    first = ingest(landing, warehouse)
    return TwoRuns(warehouse, first, ingest(write_files(landing, SECOND_RUN), warehouse))


def test_batch_order_does_not_change_the_tables(spark, two_runs):
    """Tenants forward and reverse get the two batches in opposite orders."""
    finals = [
        {t: tenant_table(spark, two_runs.warehouse, t, tenant, as_tenant="acme", drop=RUN_COLUMNS) for t in BUSINESS_TABLES}
        for tenant in ("forward", "reverse")
    ]
    for t in BUSINESS_TABLES:
        assert_df_equality(finals[0][t], finals[1][t])
    contacts = finals[0]["contacts"].select("contact_key", "email", "properties")
    expected = spark.createDataFrame(
        [("c1", "new@x.io", '{"plan":"pro","seats":1}'), ("c2", "c2@x.io", "{}")],
        "contact_key STRING, email STRING, properties STRING",
    )
    assert_df_equality(contacts, expected, ignore_nullable=True)
    events = finals[0]["contact_events"].select("event_text", "properties")
    expected_events = spark.createDataFrame(
        [("login", '{"via":"new batch"}'), ("logout", '{"via":"new batch"}')], "event_text STRING, properties STRING"
    )
    assert_df_equality(events, expected_events, ignore_nullable=True, ignore_row_order=True)
    links = finals[0]["contact_accounts"].select("contact_key", "account_key")
    assert_df_equality(links, spark.createDataFrame([("c1", "acct-new")], "contact_key STRING, account_key STRING"),
                       ignore_nullable=True)


def test_tenant_comes_from_the_path_not_the_record(spark, two_runs):
    contacts = read_table(spark, two_runs.warehouse, "contacts", ["tenant_id", "contact_key", "properties"]).where("contact_key = 'k'")
    expected = spark.createDataFrame([("globex", "k", '{"tenant_id":"forward"}')], "tenant_id STRING, contact_key STRING, properties STRING")
    assert_df_equality(contacts, expected, ignore_nullable=True)


def test_whole_file_problems_are_quarantined_and_counted(spark, two_runs):
    quarantine = tenant_table(spark, two_runs.warehouse, "quarantine", "broken", ["stream", "source_file", "line_number", "error_code"])
    expected = spark.createDataFrame(
        [
            ("clicks", "tenant=broken/clicks/x.jsonl", None, "unknown_stream"),
            ("identify", "tenant=broken/identify/cut.jsonl.gz", None, "unreadable_file"),
            ("identify", "tenant=broken/identify/data.parquet", None, "unsupported_file_format"),
        ],
        "stream STRING, source_file STRING, line_number BIGINT, error_code STRING",
    )
    assert_df_equality(quarantine, expected, ignore_nullable=True)
    # nothing of a half-readable file is ingested
    contacts = tenant_table(spark, two_runs.warehouse, "contacts", "broken", ["contact_key"])
    assert_df_equality(contacts, spark.createDataFrame([], "contact_key STRING"), ignore_nullable=True)
    s = by_stream(two_runs.first)[("broken", "identify")]
    assert (s["records_read"], s["quarantined"], s["accepted"], s["files_read"]) == (2, 2, 0, 3)
    manifest = tenant_table(spark, two_runs.warehouse, "ingest_files", "broken", ["source_file", "status"])
    expected_manifest = spark.createDataFrame(
        [
            ("tenant=broken/clicks/x.jsonl", "rejected"),
            ("tenant=broken/identify/cut.jsonl.gz", "unreadable"),
            ("tenant=broken/identify/data.parquet", "rejected"),
            ("tenant=broken/identify/empty.csv", "processed"),
        ],
        "source_file STRING, status STRING",
    )
    assert_df_equality(manifest, expected_manifest, ignore_nullable=True)


def test_a_changed_file_is_reprocessed_and_its_old_quarantine_replaced(spark, two_runs):
    quarantine = tenant_table(spark, two_runs.warehouse, "quarantine", "changed", ["line_number", "error_code"])
    assert_df_equality(quarantine, spark.createDataFrame([(3, "malformed_json")], "line_number BIGINT, error_code STRING"),
                       ignore_nullable=True)
    contacts = tenant_table(spark, two_runs.warehouse, "contacts", "changed", ["contact_key", "email"])
    expected = spark.createDataFrame([("k1", "fixed@x.io"), ("k2", "b@x.io")], "contact_key STRING, email STRING")
    assert_df_equality(contacts, expected, ignore_nullable=True)
    assert by_stream(two_runs.second)[("changed", "identify")]["tables"]["contacts"] == {"inserted": 1, "updated": 0}
    # Issue 12 item 3: the old rows' delete and the new rows are one commit per run (created at 0, then runs 1 and 2).
    assert DeltaTable(str(two_runs.warehouse / "quarantine")).version() == 2


def test_a_file_rewritten_in_place_replaces_what_its_previous_version_wrote(spark, two_runs):
    contacts = tenant_table(spark, two_runs.warehouse, "contacts", "rewritten", ["contact_key", "email", "properties"])
    expected = spark.createDataFrame([("k1", "new@x.io", '{"plan":"pro","seats":2}')], "contact_key STRING, email STRING, properties STRING")
    assert_df_equality(contacts, expected, ignore_nullable=True)
    events = tenant_table(spark, two_runs.warehouse, "contact_events", "rewritten", ["event_text", "properties"])
    assert_df_equality(events, spark.createDataFrame([("login", '{"via":"version 2"}')], "event_text STRING, properties STRING"),
                       ignore_nullable=True)
    assert by_stream(two_runs.second)[("rewritten", "track")]["tables"]["contact_events"] == {"inserted": 0, "updated": 1}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--landing", "/nonexistent/landing"], 1),
        (["--landing", "sample/landing", "--set", "engine"], 2),
        (["--landing", "sample/landing", "--profile", "no-such-profile"], 2),
    ],
)
def test_exit_codes_for_failures(tmp_path, args, code):
    assert run_cli("ingest", "--warehouse", str(tmp_path / "wh"), *args) == code


def test_filters_by_tenant_and_stream(spark, landing, warehouse):
    root = landing({**SEED_000, "tenant=globex/identify/u.jsonl": jsonl('{"contact_key":"g","email":"g@g.io"}')})
    report = ingest(root, warehouse, "--tenant", "globex", "--stream", "identify", "track")
    assert sorted(by_stream(report)) == [("globex", "identify")]
