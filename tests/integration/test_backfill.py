"""`feedlake backfill`: a dt= range in chunks, resumable, with the tables of one big run."""

from __future__ import annotations

import io
import re
import shutil
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from chispa import assert_df_equality

from feedlake.delta.engines import make_engine
from feedlake.ingest import backfill as backfill_module
from feedlake.ingest import pipeline
from feedlake.ingest.backfill import BackfillRequest, run_backfill
from feedlake.ingest.hooks import IngestHook
from feedlake.landing.layouts import discover
from feedlake.settings.config import load_config
from tests.conftest import ingest_report, jsonl, read_table, run_cli, without_quality, write_files
from tests.integration.same_tables import DATA_TABLES, assert_same_tables

IN_RANGE = {
    "tenant=acme/identify/dt=2024-01-01/users.jsonl": jsonl(
        '{"contact_key":"k1","email":"first@acme.io","plan":"free"}',
        '{"contact_key":"k2","email":"k2@acme.io"}',
    ),
    "tenant=acme/identify/dt=2024-01-03/users.csv": "contact_key,email,plan\nk1,second@acme.io,\nk3,k3@acme.io,team\n",
    # k1 without email: the attribute policy keeps second@acme.io, plan becomes pro.
    "tenant=acme/identify/dt=2024-01-04/users.jsonl": jsonl('{"contact_key":"k1","plan":"pro"}', "not json"),
    "tenant=acme/track/dt=2024-01-02/events.jsonl.gz": jsonl(
        '{"event_text":"login","event_timestamp":1704153600,"contact_key":"k1","device":"web"}',
        '{"event_text":"login","event_timestamp":1704153600,"contact_key":"k1","device":"dupe in file"}',
        '{"event_text":"logout","event_timestamp":1704157200,"contact_key":"k2"}',
    ),
    # The same event re-sent in a later partition: the newer file wins.
    "tenant=acme/track/dt=2024-01-05/events.jsonl": jsonl(
        '{"event_text":"login","event_timestamp":1704153600,"contact_key":"k1","device":"ios"}',
        '{"event_text":"search","event_timestamp":1704412800000,"contact_key":"k3"}',
    ),
    "tenant=acme/group/dt=2024-01-02/groups.jsonl": jsonl('{"contact_key":"k1","account_key":"acme.io","tier":"a"}'),
    "tenant=acme/group/dt=2024-01-05/groups.jsonl": jsonl('{"contact_key":"k1","account_key":"acme.com","tier":"b"}'),
    "tenant=globex/identify/dt=2024-01-02/users.jsonl": jsonl('{"contact_key":"g1","email":"g1@globex.io"}'),
    "tenant=globex/track/dt=2024-01-03/events.jsonl": jsonl(
        '{"event_text":"login","event_timestamp":1704240000,"contact_key":"g1"}'
    ),
}
OUT_OF_RANGE = {
    "tenant=acme/identify/dt=2023-12-31/users.jsonl": jsonl('{"contact_key":"k1","email":"too-early@acme.io"}'),
    "tenant=acme/identify/dt=2024-01-06/users.jsonl": jsonl('{"contact_key":"k1","email":"too-late@acme.io"}'),
    "tenant=acme/identify/undated.jsonl": jsonl('{"contact_key":"k9","email":"undated@acme.io"}'),
}
RANGE = ("--from", "2024-01-01", "--to", "2024-01-05")
TABLES = (*DATA_TABLES, "activity_weekly")
MANIFEST_COLUMNS = ["tenant_id", "stream", "source_file", "size_bytes", "landing_time", "status", "records_read",
                    "records_quarantined"]


@pytest.fixture(scope="module")
def zones(tmp_path_factory) -> tuple[Path, Path]:
    """(landing with every file, landing with only the in-range files); tests only read them."""
    root = tmp_path_factory.mktemp("backfill")
    full = write_files(root / "landing", {**IN_RANGE, **OUT_OF_RANGE})
    only = root / "landing-in-range"
    for rel in IN_RANGE:
        (only / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(full / rel, only / rel)
    return full, only


@pytest.fixture(scope="module")
def reference(spark, zones, tmp_path_factory) -> Path:
    """The warehouse of one big `feedlake ingest` run over the in-range files only."""
    warehouse = tmp_path_factory.mktemp("reference") / "warehouse"
    ingest_report(zones[1], warehouse, quality=False)  # quality is not under test here
    return warehouse


def backfill(landing: Path, warehouse: Path, *extra: str) -> int:
    return run_cli("backfill", "--landing", str(landing), "--warehouse", str(warehouse), *RANGE,
                   "--engine", "delta-rs", "--set", "backfill.chunk_files=3", *without_quality(), *extra)


def tables_present(warehouse: Path) -> list[str]:
    return [t for t in TABLES if (warehouse / t / "_delta_log").is_dir()]


def assert_same_as_big_run(spark, warehouse: Path, reference: Path) -> None:
    assert tables_present(warehouse) == tables_present(reference)
    assert_same_tables(spark, warehouse, reference, tables_present(reference))
    assert_df_equality(
        read_table(spark, warehouse, "ingest_files", MANIFEST_COLUMNS),
        read_table(spark, reference, "ingest_files", MANIFEST_COLUMNS),
        ignore_nullable=True,
    )


class CrashAfterFirstMerge(IngestHook):
    """Stands for a driver that dies in the middle of a chunk, after some tables were written."""

    def after_merge(self, context, stream, table, source) -> None:
        raise RuntimeError("simulated crash in the middle of a chunk")


@dataclass(frozen=True)
class Resumed:
    """One backfill of the full zone: stopped after chunk 1, killed inside chunk 2, resumed, run again."""

    warehouse: Path
    stopped: str  # output of the run stopped by --max-chunks 1
    resumed: str  # output of the run that finished the range
    again: str  # output of the same command once everything is done
    first_runs: dict[str, str]  # source_file -> run_id after the stopped run
    after_crash: dict[str, str]  # the manifest once the crash interrupted chunk 2
    listings: int  # landing-zone listings of the run that finished the range (2 chunks)


def cli_output(*extra: str, landing: Path, warehouse: Path) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert backfill(landing, warehouse, *extra) == 0
    return out.getvalue()


def manifest_runs(spark, warehouse: Path) -> dict[str, str]:
    return {r["source_file"]: r["run_id"] for r in read_table(spark, warehouse, "ingest_files").collect()}


@pytest.fixture(scope="module")
def resumed(spark, zones, tmp_path_factory) -> Resumed:
    """The scenario of this module (issue 14: built once, asserted many ways)."""
    full, _ = zones
    warehouse = tmp_path_factory.mktemp("resumed") / "warehouse"
    stopped = cli_output("--max-chunks", "1", landing=full, warehouse=warehouse)
    first_runs = manifest_runs(spark, warehouse)
    # Killed in the middle of chunk 2: its tables are partly written, its manifest rows are not.
    config = load_config(None, {"engine": "delta-rs", "backfill": {"chunk_files": 3}})
    engine = make_engine(spark, str(warehouse), "delta-rs")
    request = BackfillRequest(str(full), str(warehouse), date(2024, 1, 1), date(2024, 1, 5))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_backfill(spark, config, engine, request, hooks=lambda: [CrashAfterFirstMerge()], echo=lambda line: None)
    after_crash = manifest_runs(spark, warehouse)
    listings: list[str] = []

    def counted(landing, *args, **kwargs):
        listings.append(landing)
        return discover(landing, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for module in (backfill_module, pipeline):
            patch.setattr(module, "discover", counted)
        finished = cli_output(landing=full, warehouse=warehouse)
    again = cli_output(landing=full, warehouse=warehouse)
    return Resumed(warehouse, stopped, finished, again, first_runs, after_crash, len(listings))


PROGRESS = re.compile(r"chunk (\d)/3 \[(\S+) \.\. (\S+)\]: (\d) files read .* (\d+) rows in .* rows/s\).* ETA (\S+)")


def test_a_backfill_lists_the_landing_zone_once_not_once_per_chunk(resumed):
    """The run that finished the range ran 2 chunks on one listing (a large S3 landing zone is
    listed page by page: once per chunk would cost its listing times the chunks)."""
    assert resumed.listings == 1
    assert "backfill complete: 2 chunks run" in resumed.resumed


def test_the_plan_names_bounded_chunks_and_the_files_left_out(resumed):
    assert "9 files" in resumed.stopped and "in 3 chunks of at most 3 files" in resumed.stopped
    assert "1 files outside any dt= partition are not part of a backfill" in resumed.stopped
    assert "stopped after 1 chunks (--max-chunks)" in resumed.stopped


def test_chunks_run_in_partition_order_and_read_every_line_once(resumed):
    progress = PROGRESS.findall(resumed.stopped) + PROGRESS.findall(resumed.resumed)
    assert [p[0] for p in progress] == ["1", "2", "3"]
    assert [p[1:4] for p in progress] == [  # partition order, bounded chunks
        ("2024-01-01", "2024-01-02", "3"), ("2024-01-02", "2024-01-03", "3"), ("2024-01-04", "2024-01-05", "3"),
    ]
    assert progress[-1][-1] == "0m00s"  # nothing left after the last chunk
    assert sum(int(p[4]) for p in progress) == 15  # every line of the in-range files read once


def test_an_interrupted_backfill_resumes_without_redoing_finished_chunks(resumed, spark):
    assert len(resumed.first_runs) == 3
    assert resumed.after_crash == resumed.first_runs  # the crashed chunk committed no manifest row
    assert "chunk 1/3 [2024-01-01 .. 2024-01-02]: 3 files already done, skipped" in resumed.resumed
    assert resumed.resumed.count("already done, skipped") == 1
    assert "backfill complete: 2 chunks run, 1 already done" in resumed.resumed
    manifest = manifest_runs(spark, resumed.warehouse)
    assert {f: manifest[f] for f in resumed.first_runs} == resumed.first_runs  # finished chunks were not processed again
    assert set(manifest) == set(IN_RANGE)


def test_the_chunked_backfill_equals_one_big_run(resumed, spark, reference):
    assert_same_as_big_run(spark, resumed.warehouse, reference)
    contacts = read_table(spark, resumed.warehouse, "contacts", ["contact_key", "email"]).where("contact_key = 'k1'")
    assert [tuple(r) for r in contacts.collect()] == [("k1", "second@acme.io")]


def test_the_same_command_again_finds_every_chunk_done(resumed):
    assert "backfill complete: 0 chunks run, 3 already done" in resumed.again
    assert PROGRESS.findall(resumed.again) == []


def test_tenant_filter_limits_the_backfill(spark, tmp_path, zones):
    full, _ = zones
    warehouse = tmp_path / "warehouse"
    assert backfill(full, warehouse, "--tenant", "globex") == 0
    files = read_table(spark, warehouse, "ingest_files", ["tenant_id", "source_file"])
    expected = spark.createDataFrame(
        [("globex", "tenant=globex/identify/dt=2024-01-02/users.jsonl"), ("globex", "tenant=globex/track/dt=2024-01-03/events.jsonl")],
        "tenant_id STRING, source_file STRING",
    )
    assert_df_equality(files, expected, ignore_nullable=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2024-02-01", "--to", "2024-01-01"), "--from 2024-02-01 is after --to 2024-01-01"),
        (("--from", "2024-01-01", "--to", "2024-01-31", "--set", "backfill.chunk_files=0"), "backfill.chunk_files"),
    ],
)
def test_bad_range_or_chunk_size_is_a_configuration_error(tmp_path, zones, capsys, args, message):
    full, _ = zones
    assert run_cli("backfill", "--landing", str(full), "--warehouse", str(tmp_path / "w"), *args) == 2
    assert message in capsys.readouterr().err


def test_a_day_that_is_not_a_date_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("backfill", "--landing", str(tmp_path), "--warehouse", str(tmp_path), "--from", "2024-13-01", "--to", "2024-12-31")
    assert exit_info.value.code == 2
    assert "expected a day as YYYY-MM-DD, got '2024-13-01'" in capsys.readouterr().err
