"""The stages of one ingest run, as functions over DataFrames sharing one :class:`RunContext`.

A run (:class:`feedlake.ingest.pipeline.Ingest`, the thin orchestrator) is: **plan** (which
landing files, :mod:`feedlake.ingest.file_plan`) → **read** (parse, :mod:`feedlake.landing.jvm_parse`)
→ per stream, in :func:`feedlake.ingest.pipeline.processing_order` (:func:`prepare_stream`,
then :func:`finish_stream`): **validate** (:func:`validate_stage`) → *suppress* (erasure,
:func:`suppress_stage`) → **map** (:func:`map_stage`) → **rank** (:func:`rank_stage`) →
**gate** (:func:`gate_stage`) → **count** (:func:`count_stage`) → per table, once its last writer is staged:
**merge** (:func:`merge_table`) → then **bookkeeping** (quarantine, manifest, report).

Rules (issue 12, items 2–5; issue 13, items 4 and 9):

* **Cost follows the data, not the number of tenants**: every stage works on the whole
  batch of a stream, all tenants at once. Each target table gets **one MERGE per run**
  for every stream and tenant writing it, scoped to the batch's tenant partitions
  (``plan_for(table, tenants)``; :func:`process_streams`): ``identify``, ``contact`` and
  ``segment`` rows reach ``contacts`` in one commit. The quality gate runs once per
  stream and returns the tenants it blocks, which are then removed with a
  ``left_anti`` join against a small DataFrame of them.
* **Batch-sized reads**: a MERGE under the ``attribute`` policy resolves against the
  stored rows of the batch's keys only (:meth:`feedlake.delta.engines.DeltaEngine.read_matching`);
  mappers that read stored tables get :class:`feedlake.streams.mappers.StoredTables`, whose
  :meth:`~feedlake.streams.mappers.StoredTables.matching` reads only the keys they ask for.
* **One aggregation per stage**: the report's counts of a stream come from one
  ``groupBy(tenant, file, what).count()`` collect (rows per file × outcome/code).
* **Counts from what is written** (issue 13 item 4): ``accepted`` is the number of
  records whose row goes to a MERGE as the winner of its key, ``duplicates`` those
  whose row loses (in the primary table or a ``row``-policy table, where a loser is
  not stored) or repeats a stored one, ``blocked`` those of a gate-blocked
  (tenant, stream), ``quarantined`` the quarantine rows, ``suppressed`` the records an
  erasure dropped. None is derived from the others, so ``read == accepted +
  quarantined + duplicates + blocked + suppressed`` is a real check, made before the
  manifest is committed (:func:`check_invariant`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaEngine, MergeResult
from feedlake.delta.merge import plan_for
from feedlake.ingest.hooks import HookContext, IngestHook
from feedlake.ingest.report import ReportInvariantError, RunReport, TableCounts
from feedlake.rules.contracts import validate
from feedlake.rules.dedupe import LINEAGE_COLUMNS, latest_per_key, rank_by_seq, resolve_attributes, sequence
from feedlake.rules.profiles import profile_columns
from feedlake.settings.config import FeedlakeConfig, StreamSpec, TableSpec
from feedlake.settings.session import local_frame, pinned, prepared_ahead, release, union_all
from feedlake.streams.mappers import DUPLICATES, QUARANTINE_COLUMNS, REJECTED, StoredTables, mapper_for

log = logging.getLogger("feedlake.ingest.stages")


# Outcomes of a record that passed validation (count_stage's ``what``); quarantine codes are ``q:<code>``.
READ, ACCEPTED, DUPLICATE, BLOCKED, SUPPRESSED = "read", "accepted", "duplicate", "blocked", "suppressed"
QUARANTINED = "q:"


@dataclass
class RunContext:
    """What the stages of one run share: session, conf, engine, report and per-file bookkeeping."""

    spark: SparkSession
    config: FeedlakeConfig
    engine: DeltaEngine
    report: RunReport
    hooks: tuple[IngestHook, ...] = ()
    hook_context: HookContext | None = None  # what the hooks get (feedlake.ingest.hooks)
    # source_file → read / accepted / quarantined / duplicates / blocked / suppressed
    file_counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    file_status: dict[str, str] = field(default_factory=dict)
    blocked: set[tuple[str, str]] = field(default_factory=set)
    batch_streams: dict[str, str] = field(default_factory=dict)  # batch id → stream (a batch is one tenant's stream)
    cached: list[DataFrame] = field(default_factory=list)
    # How the run's intermediate frames are cached: set from the batch's size by the read
    # (feedlake.landing.jvm_parse.cache_level); a large batch's caches live on local disk.
    storage: StorageLevel = field(default_factory=lambda: StorageLevel.MEMORY_AND_DISK)


def with_sequence(records: DataFrame, stream: StreamSpec) -> DataFrame:
    """Add ``_seq`` (see :func:`feedlake.rules.dedupe.sequence`) under the stream's precedence."""
    return records.withColumn(
        "_seq", sequence(F.col("landing_time"), F.col("source_file"), F.col("line_number"), stream.precedence)
    )


def rank_in_batch(mapped: DataFrame, key: Sequence[str]) -> DataFrame:
    """Rank records of the same key by ``_seq`` (1 = winner); losers are in-batch duplicates."""
    return rank_by_seq(mapped, key)


def quarantine_rows(validated: DataFrame) -> DataFrame:
    """Records with an error, in the quarantine table's shape (raw text kept verbatim)."""
    return validated.where(F.col("error_code").isNotNull()).select(*QUARANTINE_COLUMNS)


# --- validate ------------------------------------------------------------------------


def validate_stage(stream: StreamSpec, records: DataFrame) -> DataFrame:
    """The stream's records with ``_seq`` and the contract's ``error_code`` (seed 000 §1, §3)."""
    return (
        records.where(F.col("stream") == F.lit(stream.name))
        .transform(lambda df: with_sequence(df, stream))
        .transform(lambda df: validate(df, stream))
    )


def suppress_stage(ctx: RunContext, stream: StreamSpec, validated: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """Erasure suppression (issue 15, GDPR Art. 17 / CCPA): ``(kept, suppressed)``, right after validation.

    Every validated record naming a forgotten subject of its tenant is dropped before
    mapping, dedupe or any write — also a record headed for the quarantine, whose raw
    text would otherwise be stored (:func:`feedlake.erasure.forget.suppress_records`).
    ``suppressed`` (``tenant_id``, ``source_file`` per dropped record) is counted as read
    and ``suppressed`` in the report and the invariant; ``None`` drops nothing.
    """
    from feedlake.streams.subjects import suppress_records

    kept, suppressed = suppress_records(ctx.engine, ctx.config, stream, validated)
    if suppressed is not None:
        ctx.cached.extend([kept, suppressed])
    return kept, suppressed


# --- map -----------------------------------------------------------------------------


def map_stage(ctx: RunContext, stream: StreamSpec, accepted: DataFrame) -> dict[str, DataFrame]:
    """The stream's mapper: accepted records → rows per target table (+ ``_rejected``/``_duplicates``).

    A stream that ``reads`` stored tables gets them as :class:`feedlake.streams.mappers.StoredTables`
    scoped to the batch (key-matched reads, never a whole tenant).
    """
    if stream.reads:
        stored = StoredTables(ctx.engine, ctx.config, stream.reads, accepted)
        return dict(mapper_for(stream)(accepted, stream, stored))
    return dict(mapper_for(stream)(accepted, stream))


# --- rank ----------------------------------------------------------------------------


def rank_stage(config: FeedlakeConfig, mapped: Mapping[str, DataFrame]) -> dict[str, DataFrame]:
    """Every mapped table's rows ranked within the batch on the table's key (``_rank == 1`` wins)."""
    return {name: rank_in_batch(df, config.table(name).key) for name, df in mapped.items()}


def record_outcomes(
    config: FeedlakeConfig, stream: StreamSpec, ranked: Mapping[str, DataFrame], repeated: DataFrame | None
) -> DataFrame:
    """One row per accepted record: ``tenant_id``, ``source_file``, ``what`` (``accepted`` | ``duplicate``).

    Derived from the rows the mapper produced (their lineage ``_source_file``,
    ``_line_number``), not from the records read: a record whose rows vanished is then
    missing here and the invariant fails. A record is a duplicate when one of its rows
    loses its key (``_rank > 1``) in the stream's primary table or in a ``row``-policy
    table (there a loser is not stored, e.g. Segment messages collapsing onto one
    ``contact_events`` key, issue 13 item 4), or when the mapper reports it as a repeat
    of a stored record (``_duplicates``). Tables without per-record lineage (e.g.
    ``metric_files``, one row per file) are not record tables.
    """
    parts = []
    for name, df in ranked.items():
        if "_source_file" not in df.columns or "_line_number" not in df.columns:
            continue
        lossy = name == stream.primary_table or config.table(name).policy == "row"
        lost = (F.col("_rank") > 1) if lossy else F.lit(False)
        parts.append(df.select(
            "tenant_id", F.col("_source_file").alias("source_file"), F.col("_line_number").alias("line_number"),
            lost.alias("_lost"),
        ))
    if repeated is not None:
        line = F.col("line_number") if "line_number" in repeated.columns else F.lit(None).cast("bigint")
        parts.append(repeated.select("tenant_id", "source_file", line.cast("bigint").alias("line_number"),
                                     F.lit(True).alias("_lost")))
    if not parts:
        raise ValueError(f"stream {stream.name}: the mapper produced no table with record lineage")
    rows = union_all([part.withColumn("line_number", F.col("line_number").cast("bigint")) for part in parts])
    if len(parts) > 1:
        # A record may have rows in several tables: one outcome per record.
        rows = rows.groupBy("tenant_id", "source_file", "line_number").agg(F.max("_lost").alias("_lost"))
    what = F.when(F.col("_lost"), F.lit(DUPLICATE)).otherwise(F.lit(ACCEPTED))
    return rows.select("tenant_id", "source_file", what.alias("what"))


# --- gate ----------------------------------------------------------------------------


def gate_stage(ctx: RunContext, stream: StreamSpec, ranked: Mapping[str, DataFrame]) -> dict[str, str]:
    """Each hook's ``before_merge`` once for the whole batch: tenant → why its MERGE is held back."""
    reasons: dict[str, list[str]] = defaultdict(list)
    for hook in ctx.hooks:
        for tenant, reason in (hook.before_merge(ctx.hook_context, stream, ranked) or {}).items():
            if reason:
                reasons[tenant].append(reason)
    return {tenant: "; ".join(found) for tenant, found in sorted(reasons.items())}


def blocked_frame(spark: SparkSession, tenants: Sequence[str]) -> DataFrame:
    """The gate-blocked tenants of one stream as a small DataFrame (to ``left_anti`` join against)."""
    return local_frame(spark, [(t,) for t in sorted(tenants)], "tenant_id STRING")


def with_blocked(outcomes: DataFrame, blocked: DataFrame | None) -> DataFrame:
    """Outcomes of records of gate-blocked tenants become ``blocked`` (not accepted: nothing was written)."""
    if blocked is None:
        return outcomes
    flagged = blocked.select("tenant_id", F.lit(True).alias("_blocked"))
    joined = outcomes.join(F.broadcast(flagged), on="tenant_id", how="left")
    what = F.when(F.col("_blocked"), F.lit(BLOCKED)).otherwise(F.col("what"))
    return joined.select("tenant_id", "source_file", what.alias("what"))


# --- count ---------------------------------------------------------------------------


def stream_counts(
    validated: DataFrame, rejected: DataFrame | None, outcomes: DataFrame, suppressed: DataFrame | None
) -> DataFrame:
    """``(tenant_id, source_file, what, count)``: records read, quarantined by code, and each outcome."""
    parts = [
        validated.select("tenant_id", "source_file", F.lit(READ).alias("what")),
        validated.where(F.col("error_code").isNotNull()).select(
            "tenant_id", "source_file", F.concat(F.lit(QUARANTINED), F.col("error_code")).alias("what")
        ),
        outcomes.select("tenant_id", "source_file", "what"),
    ]
    if rejected is not None:
        parts.append(rejected.select("tenant_id", "source_file", F.concat(F.lit(QUARANTINED), F.col("error_code")).alias("what")))
    if suppressed is not None:  # dropped before ``validated``: read, and suppressed
        parts.append(suppressed.select("tenant_id", "source_file", F.lit(READ).alias("what")))
        parts.append(suppressed.select("tenant_id", "source_file", F.lit(SUPPRESSED).alias("what")))
    return union_all(parts).groupBy("tenant_id", "source_file", "what").count()


def count_stage(ctx: RunContext, stream: StreamSpec, counts: DataFrame) -> list[str]:
    """Collect :func:`stream_counts` once (rows per file × outcome) into the report; the stream's tenants."""
    tenants: set[str] = set()
    for r in counts.collect():
        tenant, source, what, n = r["tenant_id"], r["source_file"], r["what"], r["count"]
        tenants.add(tenant)
        entry = ctx.report.stream(tenant, stream.name)
        per_file = ctx.file_counts[source]
        if what == READ:
            entry.records_read += n
            per_file["read"] += n
        elif what.startswith(QUARANTINED):
            code = what[len(QUARANTINED):]
            entry.quarantined += n
            entry.quarantined_by_code[code] = entry.quarantined_by_code.get(code, 0) + n
            per_file["quarantined"] += n
        elif what == ACCEPTED:
            entry.accepted += n
            per_file["accepted"] += n
        elif what == DUPLICATE:
            entry.duplicates_dropped += n
            per_file["duplicates"] += n
        elif what == BLOCKED:
            entry.blocked_records += n
            per_file["blocked"] += n
        elif what == SUPPRESSED:
            entry.suppressed += n
            per_file["suppressed"] += n
    return sorted(tenants)


# --- merge ---------------------------------------------------------------------------


@dataclass
class TablePart:
    """One stream's rows for one target table, waiting for the table's one MERGE of the run.

    ``ranked``: the stream's rows ranked within the stream (``_rank``), gate-blocked
    tenants already removed; ``tenants``: the stream's tenants that MERGE; ``cached``:
    the pinned frame ``ranked`` reads, released after the MERGE.
    """

    stream: StreamSpec
    ranked: DataFrame
    tenants: tuple[str, ...]
    cached: DataFrame


def merge_source(engine: DeltaEngine, table: TableSpec, parts: Sequence[TablePart]) -> DataFrame:
    """The rows of one MERGE into ``table`` from every stream's part.

    ``row``/``replace``: each stream's winners; when several streams write the table,
    the winner of a key across them is the row with the highest ``_seq`` (the one
    ordering rule, :func:`feedlake.rules.dedupe.rank_by_seq`: the same row a MERGE per
    stream under ``update_if_newer`` would leave). ``attribute``: every record of every
    stream resolved attribute by attribute against the stored rows of the batch's keys
    only (:meth:`~feedlake.delta.engines.DeltaEngine.read_matching`; issue 12 item 4).
    """
    if table.policy == "attribute":
        wanted = list(dict.fromkeys([*table.key, *table.attributes, "props", *LINEAGE_COLUMNS]))
        incoming = union_all([p.ranked.select(*wanted) for p in parts])
        stored = engine.read_matching(table, incoming, table.key)
        return resolve_attributes(
            incoming, stored, table.key, table.attributes, table.column_names, derive=profile_columns(table)
        )
    winners = union_all([p.ranked.where(F.col("_rank") == 1).select(*table.column_names) for p in parts])
    return winners if len(parts) == 1 else latest_per_key(winners, table.key)


def table_counts(ctx: RunContext, parts: Sequence[TablePart], result: MergeResult) -> dict[tuple[str, str], TableCounts]:
    """``(tenant, stream) → TableCounts`` of one MERGE split by ``tenant_id, _batch_id`` (see :func:`merge_table`).

    A row is counted for the stream of its lineage's batch; a row whose lineage is a
    stored row (an older record arriving late changed one attribute) has no batch of
    this run and counts for its tenant's first part, in processing order.
    """
    counts: dict[tuple[str, str], TableCounts] = {}
    for (tenant, batch), (inserted, updated) in (result.by_group or {}).items():
        stream = ctx.batch_streams.get(batch)
        if stream is None or not any(p.stream.name == stream and tenant in p.tenants for p in parts):
            stream = next(p.stream.name for p in parts if tenant in p.tenants)
        before = counts.get((tenant, stream), TableCounts())
        counts[(tenant, stream)] = TableCounts(before.inserted + inserted, before.updated + updated)
    return counts


def merge_table(ctx: RunContext, name: str, parts: Sequence[TablePart]) -> None:
    """One MERGE of every stream's and tenant's rows into table ``name``; report counts; ``after_merge``; release.

    Issue 12 item 3: one commit per table per run, scoped to the tenants of the batch
    (``plan_for(table, tenants)``). The report counts per tenant and stream come from
    the MERGE's split (by ``tenant_id``, and by ``_batch_id`` when several streams write
    the table: a batch id names one tenant and stream).
    """
    table = ctx.config.table(name)
    tenants = sorted({t for p in parts for t in p.tenants})
    if len(parts) > 1 and not {"_seq", "_batch_id"} <= set(table.column_names):
        raise ValueError(f"table {name}: written by streams {[p.stream.name for p in parts]} "
                         "but without the _seq and _batch_id columns to rank and count them")
    if tenants:
        with ctx.report.timed("merge"):
            source = merge_and_count(ctx, table, parts, tenants)
        with ctx.report.timed("derive"):
            for hook in ctx.hooks:
                hook.after_merge(ctx.hook_context, parts[-1].stream, name, source)
        release(source)
    for part in parts:
        release(part.cached)


def merge_and_count(ctx: RunContext, table: TableSpec, parts: Sequence[TablePart], tenants: Sequence[str]) -> DataFrame:
    """The MERGE of :func:`merge_table` and its counts in the report; the source it merged (for the hooks)."""
    several = len(parts) > 1
    source = merge_source(ctx.engine, table, parts)
    if table.policy == "attribute" or several:
        # Resolved against stored rows or ranked across streams: computed once for the
        # MERGE, its split and the hooks. A single stream's winners filter its cached
        # ranked rows, which costs less than a second copy.
        source = source.persist(ctx.storage)
    split: bool | tuple[str, ...] = ("tenant_id", "_batch_id") if several else len(tenants) > 1
    result = ctx.engine.merge(table, source, plan_for(table, tenants), split=split)
    if several:
        counts = table_counts(ctx, parts, result)
    elif len(tenants) == 1:
        counts = {(tenants[0], parts[0].stream.name): TableCounts(result.inserted, result.updated)}
    else:
        counts = {(t, parts[0].stream.name): TableCounts(*c) for t, c in (result.by_tenant or {}).items()}
    split_total = (sum(c.inserted for c in counts.values()), sum(c.updated for c in counts.values()))
    if split and result.by_group and split_total != (result.inserted, result.updated):
        log.warning("MERGE into %s: per-tenant split %s differs from the MERGE's metrics %s (a concurrent writer?)",
                    table.name, split_total, (result.inserted, result.updated))
    for part in parts:
        for tenant in part.tenants:
            ctx.report.stream(tenant, part.stream.name).tables[table.name] = counts.get((tenant, part.stream.name),
                                                                                      TableCounts())
    return source


# --- one stream ----------------------------------------------------------------------

# Streams prepared (validated, mapped, ranked) ahead of the one being gated, counted and
# merged (feedlake.settings.session.prepared_ahead): each holds its pinned frames until its turn.
STREAMS_AHEAD = 1


@dataclass
class PreparedStream:
    """One stream's records validated, suppressed, mapped and ranked (:func:`prepare_stream`): no hook
    has seen them, nothing is counted or written yet (:func:`finish_stream`)."""

    stream: StreamSpec
    validated: DataFrame
    suppressed: DataFrame | None
    rejected: DataFrame | None
    quarantine: DataFrame
    ranked: dict[str, DataFrame]
    outcomes: DataFrame

    def release(self) -> None:
        """Give back the ranked frames (the validated and rejected ones go with the run's cache)."""
        for df in self.ranked.values():
            release(df)


def prepare_stream(ctx: RunContext, stream: StreamSpec, records: DataFrame) -> PreparedStream:
    """validate → suppress → map → rank for one stream: Spark work only, no hook, no report entry.

    It reads stored tables only where the stream ``reads`` them (and the erasure list), so
    :func:`process_streams` prepares a stream ahead only when none of those is written
    earlier in the run.
    """
    validated = pinned(validate_stage(stream, records), ctx.storage)
    ctx.cached.append(validated)  # kept until the quarantine is written from it
    validated, suppressed = suppress_stage(ctx, stream, validated)  # quarantine-bound records too (issue 15)
    accepted = validated.where(F.col("error_code").isNull())
    mapped = map_stage(ctx, stream, accepted)
    repeated = mapped.pop(DUPLICATES, None)
    rejected = mapped.pop(REJECTED, None)
    quarantine = quarantine_rows(validated)
    if rejected is not None:
        # Records the mapper refuses (e.g. a message type the stream does not ingest): quarantined too.
        rejected = rejected.select(*QUARANTINE_COLUMNS).persist(ctx.storage)
        ctx.cached.append(rejected)
        quarantine = quarantine.unionByName(rejected)
    ranked = {name: pinned(df, ctx.storage) for name, df in rank_stage(ctx.config, mapped).items()}
    outcomes = record_outcomes(ctx.config, stream, ranked, repeated)
    return PreparedStream(stream, validated, suppressed, rejected, quarantine, ranked, outcomes)


def finish_stream(ctx: RunContext, prepared: PreparedStream) -> tuple[DataFrame, dict[str, TablePart]]:
    """gate → count for one prepared stream: its quarantine rows and its part of each target table,
    to MERGE with the other streams' parts (:func:`merge_table`)."""
    stream, ranked = prepared.stream, prepared.ranked
    with ctx.report.timed("gate"):
        reasons = gate_stage(ctx, stream, ranked)
    blocked = blocked_frame(ctx.spark, list(reasons)) if reasons else None
    with ctx.report.timed("count"):
        counts = stream_counts(prepared.validated, prepared.rejected, with_blocked(prepared.outcomes, blocked),
                               prepared.suppressed)
        tenants = count_stage(ctx, stream, counts)
    for tenant, reason in reasons.items():
        ctx.report.stream(tenant, stream.name).blocked = reason
        ctx.blocked.add((tenant, stream.name))
    merging = tuple(t for t in tenants if t not in reasons)
    parts = {}
    for name, df in ranked.items():
        if name not in stream.targets:
            release(df)
            continue
        rows = df if blocked is None else df.join(F.broadcast(blocked), on="tenant_id", how="left_anti")
        parts[name] = TablePart(stream, rows, merging, cached=df)
    return prepared.quarantine, parts


def independent_runs(streams: Sequence[StreamSpec]) -> list[list[StreamSpec]]:
    """``streams`` (in processing order) cut before each stream that ``reads`` a table an earlier one writes.

    Within a run of streams, none reads what another of the run writes, so each can be
    prepared while the one before it is gated, counted and merged; a stream that reads
    an earlier stream's table starts a new run, prepared once that table is merged.

    >>> from feedlake.settings.config import load_config
    >>> config = load_config()
    >>> names = ["entity_map", "account", "identify", "track"]
    >>> [[s.name for s in run] for run in independent_runs([config.stream(n) for n in names])]
    [['entity_map'], ['account', 'identify', 'track']]
    """
    runs: list[list[StreamSpec]] = []
    written: set[str] = set()
    for stream in streams:
        if not runs or set(stream.reads) & written:
            runs.append([])
        runs[-1].append(stream)
        written.update(stream.targets)
    return runs


def process_streams(ctx: RunContext, streams: Sequence[StreamSpec], records: DataFrame) -> list[DataFrame]:
    """Stage every stream in order and MERGE each table once, when its last writer is staged; the quarantine rows.

    A table another stream ``reads`` is merged before that stream is prepared (e.g.
    ``entity_map`` before ``account``: an account and its mapping dropped together
    resolve at once, seed 004), so :func:`feedlake.ingest.pipeline.processing_order`
    puts its writers first. Within each of :func:`independent_runs`, the next stream is
    prepared (:func:`prepare_stream`, Spark jobs only) on another thread while this one
    is gated, counted and merged here: hooks, report counts and MERGEs keep the
    processing order.
    """
    last_writer = {t: s.name for s in streams for t in s.targets}
    pending: dict[str, list[TablePart]] = defaultdict(list)
    quarantine = []

    def prepare(stream: StreamSpec) -> PreparedStream:
        return prepare_stream(ctx, stream, records)

    for run in independent_runs(streams):
        for name in run[0].reads:
            if name in pending:
                merge_table(ctx, name, pending.pop(name))
        preparing = prepared_ahead(ctx.spark, prepare, run, STREAMS_AHEAD, discard=PreparedStream.release)
        # Closed on the way out, a failure included: streams prepared and never finished are released now.
        with closing(ctx.report.timed_items("prepare", preparing)) as prepared_streams:
            for prepared in prepared_streams:
                stream = prepared.stream
                rows, parts = finish_stream(ctx, prepared)
                quarantine.append(rows)
                for name, part in parts.items():
                    pending[name].append(part)
                for name in stream.targets:
                    if last_writer[name] == stream.name and name in pending:
                        merge_table(ctx, name, pending.pop(name))
    return quarantine


# --- bookkeeping ---------------------------------------------------------------------


def check_invariant(report: RunReport) -> None:
    """Fail the run (before the manifest commit) when a record is lost or double counted.

    ``read == accepted + quarantined + duplicates + blocked + suppressed`` per tenant and
    stream, each term counted from what was written (see module docstring).
    """
    try:
        report.check()
    except ReportInvariantError:
        log.error("run %s: report invariant broken; the manifest is not committed so the files are read again",
                  report.run_id)
        raise


def manifest_counts(counts: Mapping[str, int]) -> tuple[int, int, int, int]:
    """``(read, accepted, quarantined, duplicates)`` of one file for its ``ingest_files`` row."""
    return counts["read"], counts["accepted"], counts["quarantined"], counts["duplicates"]
