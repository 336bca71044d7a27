"""The ingest job: extract (landing files) → transform (parse, validate, map, dedupe) → load (MERGE).

The thin orchestrator of a run: file planning (:mod:`feedlake.ingest.file_plan`), reading
(:mod:`feedlake.landing.jvm_parse`), then the stages of :mod:`feedlake.ingest.stages` per stream
(validate, map, rank, gate, count, merge: whole batches, all tenants at once, one
MERGE per table and stream), then bookkeeping. I/O stays here and in
:mod:`feedlake.delta.engines`; every transform takes and returns DataFrames. Order of writes:
business tables, then quarantine, then the manifest (``ingest_files``) last, after the
report's invariant is checked, so a run that dies or fails half-way is simply redone
by the next run: every step is an idempotent MERGE keyed on what it writes.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaEngine, batch_fingerprint, idempotent_writes
from feedlake.delta.merge import plan_for, source_with_deletes
from feedlake.ingest.file_plan import FilePlan, ReadableCopies, plan_files, read_manifest, reverified_rows
from feedlake.ingest.hooks import HookContext, IngestHook
from feedlake.ingest.lease import tenant_leases
from feedlake.ingest.report import RunReport, report_location, write_report
from feedlake.ingest.report_html import write_run_page
from feedlake.ingest.stages import RunContext, check_invariant, manifest_counts, process_streams
from feedlake.landing.jvm_parse import ParsedFiles, parse_landing_files
from feedlake.landing.layouts import REFUSAL_CODES, LandingFile, discover
from feedlake.landing.storage import S3Access
from feedlake.settings.config import FeedlakeConfig
from feedlake.settings.session import local_frame, release, sql_conf_overlay, union_all
from feedlake.settings.tables import INGEST_FILES, QUARANTINE

FILE_META_SCHEMA = (
    "file_id INT, tenant_id STRING, stream STRING, source_file STRING, landing_time TIMESTAMP, batch_id STRING, "
    "source_system STRING"
)

log = logging.getLogger("feedlake.ingest.pipeline")


REFUSED_LISTED = 50  # files refused by discovery listed in the report by name (the rest counted)


@dataclass(frozen=True)
class IngestRequest:
    """What to ingest: the CLI arguments of ``feedlake ingest``."""

    landing: str
    warehouse: str
    tenants: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    # Only these landing files (source_file paths), e.g. one chunk of a backfill (feedlake.ingest.backfill).
    only_files: frozenset[str] | None = None
    # The landing listing when the caller made it already (the CLI lists before it starts Spark).
    listed: tuple[LandingFile, ...] | None = None


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def batch_id(stream: str, tenant_id: str, files: Iterable[LandingFile]) -> str:
    """Deterministic batch id: the same landing paths always make the same batch.

    It depends on paths only (not on modification times), so replaying the same
    files, in any order or after a copy, writes identical rows.
    """
    digest = hashlib.sha1("\n".join(sorted(f.source_file for f in files)).encode()).hexdigest()[:16]
    return f"{stream}:{tenant_id}:{digest}"


def plan_fingerprint(plan: FilePlan, manifest_version: int | None) -> str:
    """The identity of a run's input: the manifest it planned against and every planned file
    (read, rejected, skipped) with its place and content."""
    files = plan.to_read + [r[0] for r in plan.rejected] + plan.skipped
    return batch_fingerprint([
        ("manifest", manifest_version),
        *((f.tenant_id, f.stream, f.source_file, f.size_bytes, f.modified_ns, f.stat_token, f.etag, f.sha256)
          for f in files),
    ])


class Ingest:
    """One run of ``feedlake ingest`` (build with :func:`run_ingest`)."""

    def __init__(
        self,
        spark: SparkSession,
        config: FeedlakeConfig,
        engine: DeltaEngine,
        request: IngestRequest,
        hooks: Sequence[IngestHook] = (),
    ):
        self.spark = spark
        self.config = config
        self.engine = engine
        self.request = request
        now = datetime.now(timezone.utc)
        self.report = RunReport(
            run_id=new_run_id(now), engine=engine.name, landing=request.landing, warehouse=request.warehouse,
            started_at=now.isoformat(timespec="seconds"),
        )
        self.hooks: tuple[IngestHook, ...] = tuple(hooks)
        # What the stages share (feedlake.ingest.stages); the hooks get only the narrow HookContext.
        self.hook_context = HookContext(spark, config, engine, request.warehouse, self.report.run_id, self.report.extras)
        self.ctx = RunContext(spark, config, engine, self.report, self.hooks, self.hook_context)
        self.file_counts = self.ctx.file_counts
        self.file_status = self.ctx.file_status
        self.blocked = self.ctx.blocked
        self.s3 = config.settings.s3
        self.s3_access = S3Access(spark, self.s3)
        self.local_copies = ReadableCopies()  # non-UTF-8 local names (feedlake.ingest.file_plan, issue 13)

    def run(self) -> RunReport:
        """Run the ingest; a local spool of S3 landing objects (and private copies) is removed however the run ends."""
        with self.s3_access, self.local_copies:
            return self._run()

    def _run(self) -> RunReport:
        layouts = self.config.settings.landing_layout
        with self.report.timed("list"):
            files = list(self.request.listed) if self.request.listed is not None else discover(
                self.request.landing, self.request.tenants, self.request.streams, layouts, s3=self.s3
            )
        if self.request.only_files is not None:
            files = [f for f in files if f.source_file in self.request.only_files]
        # Every declared table exists after a run, empty or not, so readers never guess
        # (no Spark job: delta-rs reads the log; delta-spark creates or migrates once per engine).
        with self.report.timed("tables"):
            self.engine.ensure_all(list(self.config.tables.values()))
        tenants = sorted({f.tenant_id for f in files})
        # One writer per tenant: a concurrent run on the same tenants waits here (feedlake.ingest.lease);
        # held from the manifest read to the manifest commit, so the plan and the writes agree.
        with ExitStack() as held:
            with self.report.timed("lease"):
                held.enter_context(tenant_leases(self.request.warehouse, tenants, self.config.settings.concurrency,
                                                 s3=self.s3))
            return self._run_leased(files, tenants)

    def _run_leased(self, files: list[LandingFile], tenants: list[str]) -> RunReport:
        with self.report.timed("plan"):
            manifest = read_manifest(self.engine, self.config, tenants) if tenants else {}
            plan = plan_files(files, self.config, manifest)
            # Every commit of the batch carries a Delta transaction id derived from its input
            # files: a rerun after a crash skips the commits that had landed (issue 13).
            # The manifest's version is part of it: a deliberate reprocess (manifest rows removed)
            # is a new batch, while a crashed run never committed the manifest.
            manifest_version = self.engine.version(self.config.table(INGEST_FILES))
        with (
            sql_conf_overlay(self.spark, self._small_batch_conf(plan)),
            idempotent_writes(self.engine, plan_fingerprint(plan, manifest_version)) as ids,
        ):
            log.info("run %s: batch %s", self.report.run_id, ids.batch[:24])
            return self._run_batch(plan)

    def _small_batch_conf(self, plan: FilePlan) -> Mapping[str, str]:
        """``spark.small_batch.session_conf`` when the files to read are small and the master local, else nothing."""
        small = self.config.settings.spark.small_batch
        batch_bytes = sum(f.size_bytes for f in plan.to_read)
        if not small.applies(batch_bytes, self.spark.sparkContext.master):
            return {}
        log.info("run %s: a small batch (%d bytes): %s", self.report.run_id, batch_bytes, dict(small.session_conf))
        return small.session_conf

    def _run_batch(self, plan: FilePlan) -> RunReport:
        for f in plan.skipped:
            self.report.stream(f.tenant_id, f.stream).files_skipped += 1
        batches = self._batch_ids(plan)
        self.ctx.batch_streams = {batch: stream for (_, stream), batch in batches.items()}
        quarantined: list[DataFrame] = [self._rejected_rows(plan, batches)]
        if plan.to_read:
            with self.report.timed("parse"):
                records, parsing = self._read(plan.to_read, batches)
            streams = [self.config.stream(n) for n in processing_order(self.config, {f.stream for f in plan.to_read})]
            quarantined.extend(process_streams(self.ctx, streams, records))
            parsing.release()
        # Every record accounted for, each count from what was written: checked before
        # the quarantine and manifest commits, so a broken run leaves its files to be read again.
        check_invariant(self.report)
        with self.report.timed("quarantine"):
            self._write_quarantine(quarantined, plan)
        with self.report.timed("manifest"):
            self._write_manifest(plan, batches)
        self.report.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.report.timed("after_run"):
            for hook in self.hooks:
                hook.after_run(self.hook_context, self.report)
        if self.s3_access.mode:
            self.report.extras["s3_landing_read"] = self.s3_access.summary()
        self.report.check()
        write_report(self.report, report_location(self.request.warehouse, self.report.run_id), s3=self.s3)
        write_run_page(self.report, self.config, self.engine, self.s3)  # _reports/<run_id>.html + index (issue #16)
        return self.report

    def _batch_ids(self, plan: FilePlan) -> dict[tuple[str, str], str]:
        groups: dict[tuple[str, str], list[LandingFile]] = defaultdict(list)
        for f in plan.to_read + [r[0] for r in plan.rejected]:
            groups[(f.tenant_id, f.stream)].append(f)
        return {k: batch_id(k[1], k[0], v) for k, v in groups.items()}

    def _rejected_rows(self, plan: FilePlan, batches: Mapping[tuple[str, str], str]) -> DataFrame:
        rows = []
        for f, code, message in plan.rejected:
            rows.append((f.tenant_id, f.stream, f.source_file, None, None, code, message, batches[(f.tenant_id, f.stream)]))
            entry = self.report.stream(f.tenant_id, f.stream)
            entry.files_read += 1
            entry.records_read += 1
            entry.quarantined += 1
            entry.quarantined_by_code[code] = entry.quarantined_by_code.get(code, 0) + 1
            self.file_status[f.source_file] = "rejected"
            self.file_counts[f.source_file].update(read=1, quarantined=1)
        # Files discovery refused (outside the layout, links, special files; issue 13) are
        # listed by path and reason in the report too, bounded so a cluttered landing zone
        # cannot flood it: the quarantine has every one.
        refused = [f"{f.source_file}: {code}: {message}" for f, code, message in plan.rejected if code in REFUSAL_CODES]
        if refused:
            shown = refused[:REFUSED_LISTED]
            if len(refused) > len(shown):
                shown.append(f"... and {len(refused) - len(shown)} more (quarantine error_code {', '.join(REFUSAL_CODES)})")
            self.report.extras["files_refused"] = shown
        schema = self.config.table(QUARANTINE).ddl
        return local_frame(self.spark, rows, schema)

    def _read(self, files: list[LandingFile], batches: Mapping[tuple[str, str], str]) -> tuple[DataFrame, ParsedFiles]:
        """The batch's records (lazy over the parse's caches) and the parse, to release after the streams."""
        indexed = list(enumerate(files))
        # S3 objects: streamed by the tasks or read from a local spool copy (feedlake.landing.storage).
        locations = [f.location for f in self.s3_access.readable(self.local_copies.readable(files))]
        # Parsed on the JVM (feedlake.landing.jvm_parse); its caches are released after the streams.
        parsing = parse_landing_files(
            self.spark, [(i, locations[i], f.format, f.compression) for i, f in indexed], self.config.settings.parsing
        )
        parsed = parsing.df
        meta = local_frame(
            self.spark,
            [
                (i, f.tenant_id, f.stream, f.source_file, f.landing_time, batches[(f.tenant_id, f.stream)], f.source_system)
                for i, f in indexed
            ],
            FILE_META_SCHEMA,
        )
        self.ctx.storage = parsing.storage
        # Not cached: a lazy read of the parse's caches (feedlake.landing.jvm_parse.ParsedFiles),
        # read once per stream by its validation, whose result is cached.
        records = parsed.join(F.broadcast(meta), on="file_id", how="inner")
        failed = parsing.fallible.where(F.col("error_code") == "unreadable_file").select("file_id").distinct()
        unreadable = {r["file_id"] for r in failed.collect()}
        for i, f in indexed:
            self.report.stream(f.tenant_id, f.stream).files_read += 1
            self.file_status[f.source_file] = "unreadable" if i in unreadable else "processed"
        if unreadable:
            # A file that fails part-way is quarantined whole: drop the lines read before the failure.
            keep = ~F.col("file_id").isin(sorted(unreadable)) | F.col("line_number").isNull()
            return records.where(keep), parsing
        return records, parsing

    def _write_quarantine(self, parts: list[DataFrame], plan: FilePlan) -> None:
        """Add this run's quarantine rows and drop those of changed files no longer quarantined: one commit for all tenants.

        A changed file's stored rows are read by key (the changed files as rows of a keys
        DataFrame, no path in SQL text) and deleted in the same MERGE unless the file's
        new version quarantines the same line again (:func:`feedlake.delta.merge.source_with_deletes`).
        """
        table = self.config.table(QUARANTINE)
        rows = union_all(parts)
        tenants = {s.tenant_id for s in self.report.streams if s.quarantined}
        merge_plan = plan_for(table, sorted(tenants))
        if plan.changed:
            keys = local_frame(
                self.spark, [(f.tenant_id, f.source_file) for f in plan.changed], "tenant_id STRING, source_file STRING"
            )
            stored = self.engine.read_matching(table, keys, ["tenant_id", "source_file"])
            rows = source_with_deletes(table, rows, stored)
            tenants |= {f.tenant_id for f in plan.changed}
            merge_plan = plan_for(table, sorted(tenants)).with_deletes()
        if tenants:
            rows = rows.persist(self.ctx.storage)
            self.engine.merge(table, rows, merge_plan)
            rows.unpersist()
        for df in self.ctx.cached:
            release(df)

    def _write_manifest(self, plan: FilePlan, batches: Mapping[tuple[str, str], str]) -> None:
        table = self.config.table(INGEST_FILES)
        now = datetime.now(timezone.utc)
        rows = []
        for f in plan.to_read + [r[0] for r in plan.rejected]:
            c = self.file_counts[f.source_file]
            status = self.file_status[f.source_file]
            if status == "processed" and (f.tenant_id, f.stream) in self.blocked:
                status = "blocked"
            read, accepted, quarantined, duplicates = manifest_counts(c)
            rows.append(
                (f.tenant_id, f.stream, f.source_file, f.size_bytes, f.modified_at, f.etag, f.landing_time,
                 batches[(f.tenant_id, f.stream)], self.report.run_id, status, read,
                 accepted, quarantined, duplicates, now,
                 f.modified_ns, f.stat_token, f.sha256)
            )
        rows.extend(reverified_rows(plan, table.column_names))  # same bytes, new stat token (feedlake.ingest.file_plan)
        if not rows:
            return
        # Rows built here, written without a Spark job where the engine can (delta-rs: an Arrow table).
        self.engine.merge_rows(table, rows, plan_for(table, {r[0] for r in rows}))


def processing_order(config: FeedlakeConfig, names: Iterable[str]) -> list[str]:
    """Streams in processing order: those writing a table another stream ``reads`` first.

    E.g. ``entity_map`` runs before ``account`` in the same run, so an account and its
    mapping dropped together resolve at once (seed 004 entity mapping).
    """
    read_by_others = {t for s in config.streams.values() for t in s.reads}

    def feeds_others(name: str) -> bool:
        stream = config.stream(name)
        return any(t in read_by_others and t not in stream.reads for t in stream.targets)

    return sorted(names, key=lambda n: (not feeds_others(n), n))


def run_ingest(
    spark: SparkSession,
    config: FeedlakeConfig,
    engine: DeltaEngine,
    request: IngestRequest,
    hooks: Sequence[IngestHook] = (),
) -> RunReport:
    """Run one ingest and return its report (already checked and written as JSON)."""
    return Ingest(spark, config, engine, request, hooks).run()
