"""Backfills: ingesting a range of ``dt=`` partitions in bounded, resumable chunks (issue #6).

``feedlake backfill --from 2024-01-01 --to 2024-12-31`` takes every landing file whose
deepest ``dt=`` folder falls in the range (both ends included), in partition order,
and cuts that list into chunks of at most ``backfill.chunk_files`` files and
``backfill.chunk_bytes`` bytes (conf/ingest.yaml). Each chunk is one ordinary ingest
run restricted to its files (:attr:`feedlake.ingest.pipeline.IngestRequest.only_files`), so
each chunk commits its tables, quarantine and manifest before the next one starts.

Resuming needs no state of its own: the ``ingest_files`` manifest is the record of
what is finished. The chunk plan is a pure function of the files in range, so the
same command run again cuts the same chunks; a chunk whose every file is settled in
the manifest (same version, status processed / rejected / unreadable) is skipped
without starting any Spark work, and a chunk interrupted half-way is run again, its
already processed files skipped by the ingest itself.

Chunked results equal one big run: precedence is carried by each record's sequence
(landing time, path, line; seed 000 FAQ) both within a run and across runs (MERGE
condition), so how the files are split into runs does not change the final tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import SparkSession

from feedlake.delta.engines import DeltaEngine
from feedlake.ingest.file_plan import plan_files, read_manifest
from feedlake.ingest.hooks import IngestHook
from feedlake.ingest.pipeline import IngestRequest, run_ingest
from feedlake.ingest.report import RunReport
from feedlake.landing.layouts import LandingFile, discover, landing_time_from_parts
from feedlake.settings.config import ConfigError, FeedlakeConfig
from feedlake.settings.job import ChunkLimits

# Manifest statuses after which a file needs nothing more from a backfill. ``blocked``
# (a quality gate held the MERGE back) is not settled: the chunk is run again.
SETTLED = ("processed", "rejected", "unreadable")


@dataclass(frozen=True)
class BackfillRequest:
    """The arguments of ``feedlake backfill``; ``start``..``end`` includes both days."""

    landing: str
    warehouse: str
    start: date
    end: date
    tenants: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    max_chunks: int | None = None  # run at most this many chunks now; the same command resumes

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ConfigError(f"--from {self.start} is after --to {self.end}")
        if self.max_chunks is not None and self.max_chunks < 1:
            raise ConfigError(f"--max-chunks: expected a whole number >= 1, got {self.max_chunks}")


@dataclass(frozen=True)
class Chunk:
    """Consecutive landing files (in partition order) ingested as one run."""

    index: int  # 1-based, for "chunk i/n"
    files: tuple[LandingFile, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def source_files(self) -> frozenset[str]:
        return frozenset(f.source_file for f in self.files)

    @property
    def partitions(self) -> tuple[date, date]:
        days = [partition_date(f.source_file) for f in self.files]
        return min(d for d in days if d), max(d for d in days if d)


@dataclass
class BackfillResult:
    """What a backfill invocation did."""

    chunks_total: int = 0
    chunks_already_done: int = 0
    chunks_run: int = 0
    files_in_range: int = 0
    files_read: int = 0
    records_read: int = 0
    stopped_early: bool = False
    reports: list[RunReport] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.chunks_already_done + self.chunks_run == self.chunks_total


def partition_date(source_file: str) -> date | None:
    """The day of the deepest ``dt=`` folder in a landing path, or ``None`` without one.

    >>> partition_date("tenant=acme/track/dt=2024-03-01/events.jsonl")
    datetime.date(2024, 3, 1)
    >>> partition_date("objects/track/source_system=s/tenant=a/dt=2024-03-01-14-30/x.json")
    datetime.date(2024, 3, 1)
    >>> partition_date("tenant=acme/track/events.jsonl") is None
    True
    """
    found = landing_time_from_parts(source_file.split("/")[:-1], None)
    return None if found is None else found.date()


def files_in_range(files: Iterable[LandingFile], start: date, end: date) -> list[LandingFile]:
    """Files whose ``dt=`` day is in ``start..end``, in partition order (then tenant, stream, path)."""
    selected = []
    for f in files:
        day = partition_date(f.source_file)
        if day is not None and start <= day <= end:
            selected.append((day, f.landing_time, f.tenant_id, f.stream, f.source_file, f))
    return [entry[-1] for entry in sorted(selected, key=lambda e: e[:5])]


def plan_chunks(files: Sequence[LandingFile], limits: ChunkLimits) -> list[Chunk]:
    """Cut ordered files into chunks of at most ``limits.files`` files and ``limits.bytes`` bytes.

    A single file larger than ``limits.bytes`` is a chunk of its own (files are never split).
    """
    groups: list[list[LandingFile]] = []
    current: list[LandingFile] = []
    size = 0
    for f in files:
        if current and (len(current) >= limits.files or size + f.size_bytes > limits.bytes):
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size_bytes
    if current:
        groups.append(current)
    return [Chunk(i, tuple(g)) for i, g in enumerate(groups, start=1)]


def pending_files(chunk: Chunk, config: FeedlakeConfig, manifest: Mapping[tuple[str, str], Mapping]) -> list[LandingFile]:
    """Files of ``chunk`` the manifest does not record as settled in their current version."""
    settled = {
        key: {**row, "status": "processed"} if row.get("status") in SETTLED else row for key, row in manifest.items()
    }
    # No hashing here: only whether anything is left matters; the chunk's ingest hashes what it reads.
    plan = plan_files(chunk.files, config, settled, hash_to_read=False)
    # A file rejected whole (unknown stream, unsupported format) is planned as rejected on every run.
    unrecorded = [f for f, _, _ in plan.rejected if (manifest.get((f.tenant_id, f.source_file)) or {}).get("status") != "rejected"]
    return list(plan.to_read) + unrecorded


def _size(n: int) -> str:
    """A byte count for people: ``512 B``, ``12.3 kB``, ``4.0 MB``, ``1.5 GB``."""
    if n < 1000:
        return f"{n} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """One line per chunk: chunk i/n, files, rows, rate, and the time left at this pace.

    The estimate is by bytes (rows are only known once a file is read): bytes still
    pending divided by the bytes per second of the chunks run so far in this invocation.
    """

    def __init__(self, chunks: Sequence[Chunk], echo: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.total = len(chunks)
        self.echo = echo
        self.clock = clock
        self.bytes_left = sum(c.size_bytes for c in chunks)
        self.bytes_run = 0
        self.seconds_run = 0.0

    def skipped(self, chunk: Chunk) -> None:
        self.bytes_left -= chunk.size_bytes
        first, last = chunk.partitions
        self.echo(f"chunk {chunk.index}/{self.total} [{first} .. {last}]: {len(chunk.files)} files already done, skipped")

    def ran(self, chunk: Chunk, report: RunReport, seconds: float) -> None:
        self.bytes_left -= chunk.size_bytes
        self.bytes_run += chunk.size_bytes
        self.seconds_run += seconds
        totals = report.totals()
        rows = totals["records_read"]
        rate = rows / seconds if seconds > 0 else 0.0
        pace = self.bytes_run / self.seconds_run if self.seconds_run > 0 else 0.0
        eta = _duration(self.bytes_left / pace) if pace > 0 else "unknown"
        first, last = chunk.partitions
        self.echo(
            f"chunk {chunk.index}/{self.total} [{first} .. {last}]: {totals['files_read']} files read "
            f"({totals['files_skipped']} already done), {_size(chunk.size_bytes)}, {rows:,} rows in "
            f"{seconds:.1f}s ({rate:,.0f} rows/s); run {report.run_id}; "
            f"{_size(self.bytes_left)} left, ETA {eta}"
        )


def run_backfill(
    spark: SparkSession,
    config: FeedlakeConfig,
    engine: DeltaEngine,
    request: BackfillRequest,
    hooks: Callable[[], Sequence[IngestHook]] = tuple,
    echo: Callable[[str], None] = print,
) -> BackfillResult:
    """Ingest the files of ``request``'s ``dt=`` range chunk by chunk; skip finished chunks.

    ``hooks`` makes the hooks of one chunk's run, called once per chunk: hooks keep
    per-run state (the quality gate collects one run's results).
    """
    limits = config.settings.backfill
    found = discover(request.landing, request.tenants, request.streams, config.settings.landing_layout, s3=config.settings.s3)
    selected = files_in_range(found, request.start, request.end)
    chunks = plan_chunks(selected, limits)
    result = BackfillResult(chunks_total=len(chunks), files_in_range=len(selected))
    undated = sum(1 for f in found if partition_date(f.source_file) is None)
    echo(
        f"backfill {request.start} .. {request.end}: {len(selected)} files ({_size(sum(f.size_bytes for f in selected))}) "
        f"in {len(chunks)} chunks of at most {limits.files} files / {_size(limits.bytes)}"
        + (f"; {undated} files outside any dt= partition are not part of a backfill" if undated else "")
    )
    tenants = sorted({f.tenant_id for f in selected})
    manifest = read_manifest(engine, config, tenants) if tenants else {}
    progress = Progress(chunks, echo)
    for chunk in chunks:
        if not pending_files(chunk, config, manifest):
            result.chunks_already_done += 1
            progress.skipped(chunk)
            continue
        if request.max_chunks is not None and result.chunks_run >= request.max_chunks:
            result.stopped_early = True
            echo(f"stopped after {result.chunks_run} chunks (--max-chunks); run the same command again to resume")
            break
        started = progress.clock()
        report = run_ingest(
            spark,
            config,
            engine,
            IngestRequest(
                landing=request.landing,
                warehouse=request.warehouse,
                tenants=request.tenants,
                streams=request.streams,
                only_files=chunk.source_files,
                # One listing for the whole backfill: re-listing a large landing zone per
                # chunk costs its LIST pages once per chunk. A file changed since is read as
                # it is now, and the next run sees it as changed (file_plan) and reads it again.
                listed=tuple(found),
            ),
            hooks(),
        )
        result.chunks_run += 1
        result.reports.append(report)
        result.files_read += report.totals()["files_read"]
        result.records_read += report.totals()["records_read"]
        progress.ran(chunk, report, progress.clock() - started)
    state = "complete" if result.complete else "incomplete: rerun to resume"
    echo(
        f"backfill {state}: {result.chunks_run} chunks run, {result.chunks_already_done} already done, "
        f"{result.chunks_total} in all; {result.files_read} files and {result.records_read:,} rows read"
    )
    return result
