"""Backfill planning: which files a dt= range takes, how they are cut into chunks, what is done."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from feedlake.ingest.backfill import ChunkLimits, Progress, files_in_range, pending_files, plan_chunks
from feedlake.ingest.report import RunReport
from feedlake.landing.layouts import LandingFile
from feedlake.settings.config import ConfigError, load_config

MTIME = datetime(2024, 6, 1, tzinfo=timezone.utc)


def landing_file(rel: str, size: int = 100, tenant: str = "acme") -> LandingFile:
    stream = rel.split("/")[0]
    day = rel.split("/")[1].removeprefix("dt=") if "/dt=" in f"/{rel}" else None
    landed = datetime.fromisoformat(day).replace(tzinfo=timezone.utc) if day else MTIME
    name = rel.rsplit("/", 1)[-1]
    return LandingFile(
        tenant_id=tenant, stream=stream, source_file=f"tenant={tenant}/{rel}", location=f"/landing/tenant={tenant}/{rel}",
        size_bytes=size, modified_at=MTIME, landing_time=landed, format="json" if ".json" in name else None, compression=None,
    )


def test_files_in_range_takes_both_ends_and_orders_by_partition():
    files = [
        landing_file("track/dt=2024-01-03/a.jsonl"),
        landing_file("track/dt=2023-12-31/a.jsonl"),
        landing_file("identify/dt=2024-01-01/a.jsonl", tenant="globex"),
        landing_file("identify/dt=2024-01-01/a.jsonl"),
        landing_file("track/a.jsonl"),
        landing_file("track/dt=2024-01-04/a.jsonl"),
    ]
    chosen = files_in_range(files, date(2024, 1, 1), date(2024, 1, 3))
    assert [f.source_file for f in chosen] == [
        "tenant=acme/identify/dt=2024-01-01/a.jsonl",
        "tenant=globex/identify/dt=2024-01-01/a.jsonl",
        "tenant=acme/track/dt=2024-01-03/a.jsonl",
    ]


@pytest.mark.parametrize(
    ("sizes", "limits", "chunks"),
    [
        ([10, 10, 10, 10, 10], ChunkLimits(files=2, bytes=1000), [[10, 10], [10, 10], [10]]),
        ([40, 40, 40, 10], ChunkLimits(files=100, bytes=90), [[40, 40], [40, 10]]),
        ([500, 10, 10], ChunkLimits(files=100, bytes=90), [[500], [10, 10]]),  # a file bigger than a chunk: alone
        ([], ChunkLimits(files=1, bytes=1), []),
    ],
)
def test_plan_chunks_bounds_files_and_bytes(sizes, limits, chunks):
    files = [landing_file(f"track/dt=2024-01-{i + 1:02d}/f.jsonl", size) for i, size in enumerate(sizes)]
    planned = plan_chunks(files, limits)
    assert [[f.size_bytes for f in c.files] for c in planned] == chunks
    assert [c.index for c in planned] == list(range(1, len(chunks) + 1))
    assert [f for c in planned for f in c.files] == files  # nothing dropped, order kept


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"chunk_files": 0, "chunk_bytes": 10}, "backfill.chunk_files"),
        ({"chunk_files": 5, "chunk_bytes": "1GB"}, "backfill.chunk_bytes"),
        ({"chunk_files": True, "chunk_bytes": 10}, "backfill.chunk_files"),
    ],
)
def test_chunk_limits_must_be_whole_numbers(setting, message):
    with pytest.raises(ConfigError, match=message):
        ChunkLimits.from_job({"backfill": setting})


def manifest_row(f: LandingFile, status: str, size: int | None = None) -> dict:
    return {"status": status, "size_bytes": f.size_bytes if size is None else size, "modified_at": f.modified_at, "etag": None}


@pytest.mark.parametrize(
    ("status", "size", "pending"),
    [
        ("processed", None, False),
        ("unreadable", None, False),  # settled: a resumed backfill does not retry it
        ("blocked", None, True),  # a quality gate held it back: run again
        ("processed", 999, True),  # the file changed since it was processed
        (None, None, True),  # never seen
    ],
)
def test_pending_files_follow_the_manifest(status, size, pending):
    config = load_config(None, {"engine": "delta-rs"})
    f = landing_file("track/dt=2024-01-01/a.jsonl")
    manifest = {} if status is None else {(f.tenant_id, f.source_file): manifest_row(f, status, size)}
    chunk = plan_chunks([f], ChunkLimits(files=10, bytes=10_000))[0]
    assert pending_files(chunk, config, manifest) == ([f] if pending else [])


def test_a_file_rejected_whole_is_settled_once_recorded():
    config = load_config(None, {"engine": "delta-rs"})
    f = landing_file("track/dt=2024-01-01/dump.parquet")
    chunk = plan_chunks([f], ChunkLimits(files=10, bytes=10_000))[0]
    assert pending_files(chunk, config, {}) == [f]
    assert pending_files(chunk, config, {(f.tenant_id, f.source_file): manifest_row(f, "rejected")}) == []


def test_progress_reports_rate_and_time_left():
    files = [landing_file(f"track/dt=2024-01-0{i}/f.jsonl", 1_000_000) for i in (1, 2, 3, 4)]
    chunks = plan_chunks(files, ChunkLimits(files=1, bytes=10**9))
    lines: list[str] = []
    progress = Progress(chunks, lines.append)
    progress.skipped(chunks[0])
    report = RunReport("run-1", "delta-rs", "l", "w", "now")
    entry = report.stream("acme", "track")
    entry.files_read, entry.records_read = 1, 20_000
    progress.ran(chunks[1], report, 10.0)  # 1 MB in 10 s: 2 MB left take 20 s
    assert lines == [
        "chunk 1/4 [2024-01-01 .. 2024-01-01]: 1 files already done, skipped",
        "chunk 2/4 [2024-01-02 .. 2024-01-02]: 1 files read (0 already done), 1.0 MB, 20,000 rows in 10.0s "
        "(2,000 rows/s); run run-1; 2.0 MB left, ETA 0m20s",
    ]
