"""The Delta Lake seam: one small interface, two engines writing the same protocol.

* :class:`DeltaRsEngine` (``deltalake`` on PyPI, delta-rs): the embedded default. It
  needs no JVM jar, so it runs on a laptop, in CI and against S3 through its own
  object store. Spark computes; the rows to merge cross to delta-rs as Arrow.
* :class:`DeltaSparkEngine` (``delta-spark``): used wherever the Delta JVM classes are
  on the Spark classpath (EMR, Databricks, ``spark.jars.packages``); the MERGE runs on
  the executors.

Both render the same :class:`feedlake.delta.merge.MergePlan` (delta-spark as Column
expressions, delta-rs as a predicate comparing ``s`` and ``t`` columns), so merge
semantics exist once. Every data-driven delete is a MERGE against a DataFrame of keys
(:meth:`DeltaEngine.delete_matching`) and every data-driven read a semi-join
(:meth:`DeltaEngine.read_matching`): no record value, file name or header is ever
rendered into SQL text (issue #11). ``engine: auto`` in conf picks delta-spark when
the JVM classes load, else delta-rs.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.merge import (
    SPLIT_BY_TENANT,
    GroupCounts,
    MergePlan,
    Ranges,
    render_action_column,
    render_action_sql,
    render_assignments,
    render_column,
    render_sql,
    split_arrow,
    split_frame,
)
from feedlake.settings.config import ConfigError, FeedlakeConfig, TableSpec
from feedlake.settings.session import delta_jvm_available, local_frame, local_master, pinned, sql_conf_overlay

log = logging.getLogger("feedlake.delta.engines")

ENGINES = ("auto", "delta-rs", "delta-spark")
# delta-rs MERGE sources up to this many rows are collected (toArrow); larger ones are staged as Parquet.
ARROW_COLLECT_ROWS = 50_000
# delta-rs reads of at most this many stored rows (by the Delta log's per-file record
# counts) come through delta-rs as Arrow, costing no Spark job; larger reads are Spark
# scans on the executors. The driver never holds more than this of a stored table.
DRIVER_READ_ROWS = 50_000

_ARROW_TYPES: Mapping[str, pa.DataType] = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(table: TableSpec) -> pa.Schema:
    """The Arrow schema of a declared table (types of conf/tables.yaml)."""
    try:
        return pa.schema([(name, _ARROW_TYPES[dtype]) for name, dtype in table.columns])
    except KeyError as exc:
        raise ConfigError(f"table {table.name!r}: column type {exc} is not supported by the Delta engines") from None


# Spark SQL type (conf/tables.yaml) → Delta primitive type name.
_DELTA_TYPES: Mapping[str, str] = {
    "string": "string", "bigint": "long", "int": "integer", "double": "double",
    "boolean": "boolean", "date": "date", "timestamp": "timestamp",
}


def missing_columns(table: TableSpec, existing: Sequence[str]) -> list[tuple[str, str]]:
    """Declared columns a stored table lacks: the additive schema migration to apply.

    Columns are only ever added (nullable), never dropped or retyped, so a warehouse
    written by an older feedlake keeps working after an upgrade.
    """
    have = set(existing)
    return [(name, dtype) for name, dtype in table.columns if name not in have]


@dataclass(frozen=True)
class MergeResult:
    """Row counts of one MERGE; ``by_group`` (values of the split columns → (inserted, updated)) when asked to ``split``."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    by_group: GroupCounts | None = None

    @property
    def by_tenant(self) -> dict[str, tuple[int, int]] | None:
        """``by_group`` summed per tenant (the first split column is always ``tenant_id``)."""
        if self.by_group is None:
            return None
        totals: dict[str, tuple[int, int]] = {}
        for key, (inserted, updated) in self.by_group.items():
            before = totals.get(key[0], (0, 0))
            totals[key[0]] = (before[0] + inserted, before[1] + updated)
        return totals


@dataclass(frozen=True)
class WriteId:
    """A Delta idempotent transaction id (the protocol's ``txn`` action): ``app_id`` + ``version``.

    A commit carrying it records ``version`` for ``app_id``; a later write with the
    same id is skipped when the table already records a version at least as high
    (Delta protocol, "Transaction Identifiers"; delta-spark's
    ``spark.databricks.delta.write.txnAppId``/``txnVersion``, delta-rs's
    ``CommitProperties(app_transactions=...)``).
    """

    app_id: str
    version: int


@dataclass
class WriteIds:
    """The transaction ids of one batch's writes (issue #13: a replayed batch cannot apply twice).

    ``batch`` fingerprints the batch's input (every planned file's identity and
    content hash), so a rerun after a crash, reading the same files, derives the same
    ids and skips the commits that already landed, while a batch that differs in any
    file derives new ids and applies in full. A write's ``app_id`` names the batch,
    the table and the write's plan (its rendered condition and tenants); ``version``
    counts the writes with that ``app_id`` in the run, in program order.
    """

    batch: str
    issued: Counter = field(default_factory=Counter)

    def next(self, table: TableSpec, plan: MergePlan) -> WriteId:
        condition, update_when = render_sql(plan)
        digest = hashlib.sha256(
            "\n".join([table.name, condition, str(update_when), plan.matched, str(plan.insert), str(plan.action)]).encode()
        ).hexdigest()[:16]
        app_id = f"feedlake-{self.batch[:24]}-{table.name}-{digest}"
        self.issued[app_id] += 1
        return WriteId(app_id, self.issued[app_id])


def write_id(ids: WriteIds | None, table: TableSpec, plan: MergePlan) -> WriteId | None:
    """The next transaction id of a write to ``table`` under ``plan`` (None outside :func:`idempotent_writes`)."""
    return None if ids is None else ids.next(table, plan)


def batch_fingerprint(identities: Sequence[Sequence[object]]) -> str:
    """A stable digest of a batch's input files (their identity tuples, in any order)."""
    lines = sorted("\t".join("" if v is None else str(v) for v in identity) for identity in identities)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@contextmanager
def idempotent_writes(engine: DeltaEngine, batch: str) -> Iterator[WriteIds]:
    """Within the block, every write of ``engine`` carries a transaction id of ``batch``."""
    ids = WriteIds(batch)
    previous, engine.write_ids = engine.write_ids, ids
    try:
        yield ids
    finally:
        engine.write_ids = previous


def source_schema(table: TableSpec, plan: MergePlan) -> pa.Schema:
    """The columns a MERGE under ``plan`` reads from its source: the table's, then the plan's action column."""
    schema = arrow_schema(table)
    return schema if plan.action is None else schema.append(pa.field(plan.action, pa.string()))


def split_columns(table: TableSpec, plan: MergePlan, split: bool | Sequence[str]) -> tuple[str, ...] | None:
    """The columns a MERGE's counts are split by: ``None`` (no split), ``tenant_id`` (``split=True``) or ``split``.

    Split columns are columns of the table, ``tenant_id`` first (e.g. ``tenant_id,
    _batch_id``: per tenant and stream). A split counts inserts and updates only: a plan
    that also deletes is never split.
    """
    if split is False:
        return None
    by = SPLIT_BY_TENANT if split is True else tuple(split)
    if not by or by[0] != "tenant_id" or any(c not in table.column_names for c in by):
        raise ValueError(f"MERGE into {plan.table}: split columns must be columns of the table, tenant_id first: {by}")
    if plan.action is not None:
        raise ValueError(f"MERGE into {plan.table}: a plan with an action column cannot be split per tenant")
    return by


def collect_split(counts: DataFrame, by: Sequence[str] = SPLIT_BY_TENANT) -> GroupCounts:
    """:func:`feedlake.delta.merge.split_frame`'s rows (one per group of the batch) as a mapping."""
    return {tuple(r[c] for c in by): (int(r["inserted"] or 0), int(r["updated"] or 0)) for r in counts.collect()}


class DeltaEngine(Protocol):
    """What the pipeline needs from a Delta implementation."""

    name: str
    warehouse: str
    write_ids: WriteIds | None  # set by :func:`idempotent_writes` for one batch

    def table_path(self, table: TableSpec) -> str: ...

    def ensure(self, table: TableSpec) -> object: ...

    def ensure_all(self, tables: Sequence[TableSpec]) -> None:
        """:meth:`ensure` every table of ``tables`` (a run makes every declared table exist)."""
        ...

    def read(self, table: TableSpec, tenants: Sequence[str] | None = None, within: Ranges | None = None) -> DataFrame:
        """Rows of ``table`` (of ``tenants`` only, inside the slice ranges ``within``), files outside skipped."""
        ...

    def read_pinned(self, table: TableSpec, tenants: Sequence[str] | None = None) -> DataFrame:
        """:meth:`read`'s rows for a plan that refers to them many times; release with
        :func:`feedlake.settings.session.release` when done."""
        ...

    def read_matching(self, table: TableSpec, keys: DataFrame, on: Sequence[str]) -> DataFrame:
        """Stored rows whose ``on`` columns equal a row of ``keys`` (``on`` includes tenant_id): batch-sized reads."""
        ...

    def merge(
        self, table: TableSpec, source: DataFrame, plan: MergePlan, *, split: bool | Sequence[str] = False
    ) -> MergeResult:
        """MERGE ``source`` under ``plan``; with ``split``, the counts per tenant (``True``) or per group of
        the named columns too (:func:`split_columns`, :func:`feedlake.delta.merge.split_frame`).

        The split is taken from the stored keys just before the commit; a replayed
        (already applied) write reports nothing, for every tenant.
        """
        ...

    def merge_rows(self, table: TableSpec, rows: Sequence[tuple], plan: MergePlan) -> MergeResult:
        """MERGE a few rows built in Python (in the table's column order): manifest, bookkeeping.

        delta-rs writes them as an Arrow table, without a Spark job (issue 12 item 5).
        """
        ...

    def delete_matching(self, table: TableSpec, keys: DataFrame, plan: MergePlan) -> int:
        """Delete the stored rows matched by a row of ``keys`` under a :func:`feedlake.delta.merge.delete_plan`."""
        ...

    def version(self, table: TableSpec) -> int | None: ...

    def exists(self, table: TableSpec) -> bool:
        """Whether ``table`` was created: ``version(table) is not None`` without reading the history."""
        ...

    def tenants(self, table: TableSpec) -> list[str]:
        """The tenants with rows in ``table`` (its ``tenant_id`` partitions), sorted."""
        ...

    def row_counts(self, table: TableSpec, tenants: Sequence[str] | None = None) -> dict[str, int] | None:
        """Rows per tenant from the table's log alone (no data read), or None where the log cannot tell."""
        ...

    def vacuum(self, table: TableSpec, retention_hours: int, purge: bool = False) -> int | None:
        """Remove data files no version younger than ``retention_hours`` needs; ``purge`` allows 0 hours."""
        ...

    def changes(self, table: TableSpec, start_version: int, end_version: int | None = None) -> DataFrame:
        """The Change Data Feed of versions ``start_version..end_version`` (``_change_type``, ``_commit_version``).

        ``end_version``, when given, is a version the table has (as the caller read it); by default its latest.
        """
        ...


def _join_path(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def delta_rs_storage_options(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Object-store options for delta-rs from the standard AWS environment.

    ``AWS_ENDPOINT_URL`` over plain ``http://`` (an S3-compatible server) needs
    ``AWS_ALLOW_HTTP``; with a custom endpoint delta-rs skips the SDK credential chain
    (profiles, SSO, web identity) unless ``AWS_FORCE_CREDENTIAL_LOAD`` is set. Commits
    are safe without a lock table: delta-rs 1.x writes each ``_delta_log`` entry with a
    conditional put (``If-None-Match: *``), so of two writers racing for a version one
    gets a conflict and retries on the next version (checked against SeaweedFS in
    tests/integration/test_s3_delta.py); ``conditional_put: etag`` states it explicitly.
    """
    options: dict[str, str] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_FORCE_CREDENTIAL_LOAD"] = "true"
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    options.setdefault("AWS_S3_ALLOW_UNSAFE_RENAME", "false")
    options["conditional_put"] = "etag"
    options.update(extra or {})
    return options


def open_delta_rs(engine: DeltaEngine, table: TableSpec) -> tuple[Any, str]:
    """``table`` opened with delta-rs whatever the engine (one Delta protocol), or ``None``; and its path.

    The path is the warehouse as the user gave it (``s3://``, not Spark's ``s3a://``); the
    object-store options are the engine's (delta-rs) or the environment's (delta-spark).
    Used where a table's log or files are read directly: run pages, erasure's log rewrite.
    """
    from deltalake import DeltaTable

    path = _join_path(engine.warehouse, table.name)
    options = getattr(engine, "storage_options", None) or (delta_rs_storage_options() if "://" in path else None)
    if not DeltaTable.is_deltatable(path, storage_options=options):
        return None, path
    return DeltaTable(path, storage_options=options), path


class DeltaRsEngine:
    """Delta tables through delta-rs; Spark DataFrames cross as Arrow."""

    name = "delta-rs"

    def __init__(self, spark: SparkSession, warehouse: str, storage_options: Mapping[str, str] | None = None,
                 driver_read_rows: int = DRIVER_READ_ROWS):
        self.spark = spark
        self.driver_read_rows = driver_read_rows
        self.warehouse = warehouse
        self.remote = "://" in warehouse
        self.storage_options = delta_rs_storage_options(storage_options) if self.remote else None
        self.stage_locally = local_master(spark)
        # Whether Spark's Parquet source reads the tables' files: a local warehouse on a local
        # master (one disk); a remote one when the session's S3 file system reaches it, which
        # the first scan finds out (None until then).
        self.spark_scans: bool | None = None if self.remote else self.stage_locally
        self.write_ids: WriteIds | None = None

    def table_path(self, table: TableSpec) -> str:
        return _join_path(self.warehouse, table.name)

    def _open(self, table: TableSpec):
        from deltalake import DeltaTable

        path = self.table_path(table)
        if not DeltaTable.is_deltatable(path, storage_options=self.storage_options):
            return None
        return DeltaTable(path, storage_options=self.storage_options)

    def ensure_all(self, tables: Sequence[TableSpec]) -> None:
        # delta-rs reads or writes a log entry per table: milliseconds, no Spark job.
        for table in tables:
            self.ensure(table)

    def ensure(self, table: TableSpec):
        from deltalake import DeltaTable

        existing = self._open(table)
        if existing is not None:
            missing = missing_columns(table, [f.name for f in existing.schema().fields])
            if missing:
                from deltalake import Field
                from deltalake.schema import PrimitiveType

                existing.alter.add_columns([Field(n, PrimitiveType(_DELTA_TYPES[t]), nullable=True) for n, t in missing])
                log.info("table %s: added columns %s (schema migration)", table.name, [n for n, _ in missing])
                existing = self._open(table)
            stale = missing_properties(table, existing.metadata().configuration)
            if stale:
                existing.alter.set_table_properties(stale, raise_if_not_exists=False)
                log.info("table %s: set properties %s (migration)", table.name, stale)
                existing = self._open(table)
            return existing
        if not self.remote:
            os.makedirs(self.table_path(table), exist_ok=True)
        return DeltaTable.create(
            self.table_path(table),
            arrow_schema(table),
            mode="ignore",
            partition_by=["tenant_id"],
            name=table.name,
            configuration=dict(table.properties) or None,
            storage_options=self.storage_options,
        )

    def _dataset(self, table: TableSpec, tenants: Sequence[str] | None, dt: Any = None):
        dt = dt if dt is not None else self._open(table)
        if dt is None:
            return None
        partitions = [("tenant_id", "in", list(tenants))] if tenants else None
        # Fragments carry their partition values and min/max statistics: filters skip files.
        return dt.to_pyarrow_dataset(partitions=partitions)

    def read(self, table: TableSpec, tenants: Sequence[str] | None = None, within: Ranges | None = None) -> DataFrame:
        """Rows of ``table`` scanned by Spark's Parquet source on the executors (issue 12, item 4).

        delta-rs names the data files of the current snapshot, pruned by tenant partition
        and, for ``within``, by each file's min/max statistics; Spark reads those files
        (the ``tenant_id`` partition value from their folder, columns a schema migration
        added as NULLs in older files). No row crosses the driver, however large the
        tables grow. The file list is fixed when the frame is built: a later commit
        only removes files from the log, so the frame keeps reading its snapshot.

        A read of at most ``driver_read_rows`` rows (:data:`DRIVER_READ_ROWS`, by the
        log's record counts) is done by delta-rs as Arrow: a bounded copy that costs no
        Spark job. Where Spark cannot reach the files (a session without S3 access to the
        warehouse's store, a cluster whose executors do not see the driver's disk), the
        rows are read by delta-rs and cross the driver as Arrow, with a warning: such
        a warehouse belongs on delta-spark once it grows.
        """
        if (tenants is not None and not tenants) or (within is not None and not within.ranges):
            return local_frame(self.spark, [], table.ddl)
        dt = self._open(table)
        if dt is None:
            return local_frame(self.spark, [], table.ddl)
        counts = logged_rows(dt, tenants)
        if counts is not None and sum(counts.values()) <= self.driver_read_rows:
            return self._frame(table, self._read_arrow(dt, table, tenants, within))
        files = dt.file_uris(file_pruning_predicate=file_predicate(tenants, within))
        if not files:
            return local_frame(self.spark, [], table.ddl)
        frame = self._scan(table, files) if self.spark_scans is not False else None
        if frame is None:
            return self._frame(table, self._read_arrow(dt, table, tenants, within))
        if within is not None:
            frame = frame.where(within.condition())
        return frame.select(*table.column_names)

    def read_pinned(self, table: TableSpec, tenants: Sequence[str] | None = None) -> DataFrame:
        """:meth:`read` itself: its file list (or its Arrow rows) is fixed when the frame is built,
        so a plan that refers to it many times plans a Parquet scan or a local relation each time,
        which costs no Spark job; pinning it would cost one."""
        return self.read(table, tenants)

    def _scan(self, table: TableSpec, files: Sequence[str]) -> DataFrame | None:
        """Spark's Parquet source over ``files``; None (and never again) when the session cannot reach them."""
        root = spark_table_path(self.table_path(table))
        try:
            frame = self.spark.read.schema(table.ddl).option("basePath", root).parquet(*(spark_table_path(f) for f in files))
        except Exception as exc:  # py4j wraps the file system's refusal (no S3 file system, credentials)
            if self.spark_scans:
                raise
            log.warning("delta-rs: Spark cannot read the warehouse %s (%s); stored rows are read through the driver",
                        self.warehouse, str(exc).splitlines()[0][:200])
            self.spark_scans = False
            return None
        self.spark_scans = True
        return frame

    def _read_arrow(self, dt, table: TableSpec, tenants: Sequence[str] | None, within: Ranges | None) -> pa.Table:
        """The same rows read by delta-rs into the driver: a small read, or where Spark cannot read the files."""
        schema = arrow_schema(table)
        data = self._dataset(table, tenants, dt)
        narrowing = arrow_filter(within) if within is not None else None
        return data.to_table(filter=narrowing).select(schema.names).cast(schema)

    def _frame(self, table: TableSpec, data: pa.Table) -> DataFrame:
        if data.num_rows == 0:
            return local_frame(self.spark, [], table.ddl)
        return self.spark.createDataFrame(data).select(*table.column_names)

    def read_matching(self, table: TableSpec, keys: DataFrame, on: Sequence[str]) -> DataFrame:
        wanted = keys.select(*on).distinct().toArrow()  # the batch's keys: batch-sized
        found = self._candidates(table, wanted, on)
        schema = arrow_schema(table)
        if found.num_rows == 0:
            return self._frame(table, schema.empty_table())
        matched = found.join(wanted.cast(found.select(list(on)).schema), keys=list(on), join_type="left semi")
        return self._frame(table, matched.select(schema.names).cast(schema))

    def _candidates(self, table: TableSpec, wanted: pa.Table, on: Sequence[str], nulls: bool = False) -> pa.Table:
        """Stored rows whose every ``on`` column holds one of ``wanted``'s values (or null, with ``nulls``).

        A superset of the rows matching ``wanted`` row for row (bound values, no SQL text),
        read from the tenants of ``wanted`` only, fragments skipped by their statistics.
        """
        import pyarrow.compute as pc

        schema = arrow_schema(table)
        tenants = sorted({t for t in wanted.column("tenant_id").to_pylist() if t is not None}) if wanted.num_rows else []
        data = self._dataset(table, tenants) if tenants else None
        if data is None:
            return schema.empty_table()
        narrowing = None
        for column in on:
            dtype = schema.field(column).type
            values = pc.unique(wanted.column(column).drop_null()).cast(dtype)
            # The column is cast to its own type: delta-rs 1.6 gives each fragment its string statistics
            # as string_view literals, which pyarrow 26 cannot compare with a string column ("no kernel
            # matching (string, string_view)") when it simplifies a filter on that column against them.
            term = pc.field(column).cast(dtype).isin(values)
            if nulls:
                term = term | pc.field(column).is_null()
            narrowing = term if narrowing is None else narrowing & term
        return data.to_table(filter=narrowing).select(schema.names).cast(schema)

    @contextmanager
    def _arrow_source(self, frame: DataFrame, schema: pa.Schema) -> Iterator[tuple[int, pa.Table | pa.RecordBatchReader, str | None]]:
        """``frame`` in ``schema`` as an Arrow table or a stream of batches, its row count, and the staging folder.

        Up to :data:`ARROW_COLLECT_ROWS` rows are collected with ``toArrow``. Past that,
        with a local master (driver and executors share one disk) Spark writes the rows
        as Parquet into a staging folder that delta-rs then reads batch by batch, so a
        batch of any size crosses without being held whole in the driver's JVM heap or
        in Python (``DataFrame.toArrow`` buffers every task result in the driver: 2 M
        events from one gzip file ran the 4 GiB driver out of memory, and PySpark then
        waits forever for the stream). Elsewhere (a cluster, whose executors write to
        their own disks) the rows are collected with ``toArrow``; large batches there
        belong on delta-spark.
        """
        frame = frame.select(*schema.names)
        # A small source (most incremental batches) comes back in one collect: a Parquet
        # staging write costs a job, a commit protocol and a folder for a few rows.
        data = frame.toArrow() if not self.stage_locally else frame.limit(ARROW_COLLECT_ROWS + 1).toArrow()
        if not self.stage_locally or data.num_rows <= ARROW_COLLECT_ROWS:
            data = data.cast(schema)
            yield data.num_rows, data, None
            return
        del data
        import pyarrow.dataset as ds

        folder = tempfile.mkdtemp(prefix="feedlake-merge-")
        try:
            frame.write.mode("overwrite").parquet(folder)
            staged = ds.dataset(folder, format="parquet")  # _SUCCESS and .crc files are ignored
            batches = (batch.select(schema.names).cast(schema) for batch in staged.to_batches())
            yield staged.count_rows(), pa.RecordBatchReader.from_batches(schema, batches), folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def merge(
        self, table: TableSpec, source: DataFrame, plan: MergePlan, *, split: bool | Sequence[str] = False
    ) -> MergeResult:
        by = split_columns(table, plan, split)
        txn = write_id(self.write_ids, table, plan)
        return with_commit_retries(table, lambda: self._merge_once(table, source, plan, txn, by), _delta_rs_conflict)

    def _merge_once(
        self, table: TableSpec, source: DataFrame, plan: MergePlan, txn: WriteId | None, by: tuple[str, ...] | None
    ) -> MergeResult:
        nothing = MergeResult(by_group=None if by is None else {})
        if txn is not None and already_applied(self.ensure(table).transaction_version, txn):
            return nothing  # checked first: a replayed batch costs no Spark job either
        with self._arrow_source(source, source_schema(table, plan)) as (rows, data, staged):
            if rows == 0:
                return nothing
            by_group = None if by is None else self._split(table, plan, data, staged, by)
            return replace(self._merge_arrow(table, data, plan, txn), by_group=by_group)

    def _split(
        self, table: TableSpec, plan: MergePlan, data: pa.Table | pa.RecordBatchReader, staged: str | None,
        by: tuple[str, ...],
    ) -> GroupCounts:
        """The split of a MERGE about to run: in Arrow for a collected source (no Spark job), else by Spark."""
        if staged is None:
            return split_arrow(plan, data, self._candidates(table, data.select(list(plan.on)), plan.on, plan.null_safe), by)
        frame = self.spark.read.parquet(staged)
        wanted = frame.select(*plan.on).distinct().toArrow()  # the batch's keys: batch-sized
        stored = self._frame(table, self._candidates(table, wanted, plan.on, plan.null_safe))
        return collect_split(split_frame(plan, frame, stored, by), by)

    def merge_rows(self, table: TableSpec, rows: Sequence[tuple], plan: MergePlan) -> MergeResult:
        """A few rows built in Python (manifest, bookkeeping) merged as an Arrow table: no Spark job."""
        if not rows:
            return MergeResult()
        schema = arrow_schema(table)
        data = pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)
        txn = write_id(self.write_ids, table, plan)
        return with_commit_retries(table, lambda: self._merge_arrow(table, data, plan, txn), _delta_rs_conflict)

    def _merge_arrow(
        self, table: TableSpec, data: pa.Table | pa.RecordBatchReader, plan: MergePlan, txn: WriteId | None
    ) -> MergeResult:
        from deltalake import CommitProperties, Transaction

        dt = self.ensure(table)
        if already_applied(dt.transaction_version, txn):
            return MergeResult()
        predicate, update_when = render_sql(plan)
        commit = None if txn is None else CommitProperties(app_transactions=[Transaction(txn.app_id, txn.version)])
        merger = dt.merge(source=data, predicate=predicate, source_alias="s", target_alias="t",
                          commit_properties=commit)
        keep, extra = None, None
        if plan.action is not None:
            deleting, keep = render_action_sql(plan)
            merger, extra = merger.when_matched_delete(predicate=deleting), [plan.action]
            update_when = keep if update_when is None else f"({keep}) AND ({update_when})"
        if plan.matched == "delete":
            merger = merger.when_matched_delete()
        elif plan.matched != "ignore":
            merger = merger.when_matched_update_all(predicate=update_when, except_cols=extra)
        if plan.insert:
            merger = merger.when_not_matched_insert_all(predicate=keep, except_cols=extra)
        metrics = merger.execute()
        return MergeResult(
            inserted=int(metrics.get("num_target_rows_inserted", 0)),
            updated=int(metrics.get("num_target_rows_updated", 0)),
            deleted=int(metrics.get("num_target_rows_deleted", 0)),
        )

    def delete_matching(self, table: TableSpec, keys: DataFrame, plan: MergePlan) -> int:
        if plan.matched != "delete" or plan.insert:
            raise ValueError("delete_matching takes a feedlake.delta.merge.delete_plan")
        if self._open(table) is None:
            return 0
        txn = write_id(self.write_ids, table, plan)
        return with_commit_retries(table, lambda: self._delete_once(table, keys, plan, txn), _delta_rs_conflict)

    def _delete_once(self, table: TableSpec, keys: DataFrame, plan: MergePlan, txn: WriteId | None) -> int:
        if txn is not None and already_applied(self.ensure(table).transaction_version, txn):
            return 0
        columns = list(plan.source_columns)
        schema = spark_arrow_schema(keys.select(*columns))
        with self._arrow_source(keys.select(*columns).distinct(), schema) as (rows, data, _):
            if rows == 0:
                return 0
            return self._merge_arrow(table, data, plan, txn).deleted

    def version(self, table: TableSpec) -> int | None:
        dt = self._open(table)
        return None if dt is None else dt.version()

    def exists(self, table: TableSpec) -> bool:
        return self._open(table) is not None

    def tenants(self, table: TableSpec) -> list[str]:
        dt = self._open(table)  # the partition values of the log's add actions: no data read
        return [] if dt is None else sorted({p["tenant_id"] for p in dt.partitions()})

    def row_counts(self, table: TableSpec, tenants: Sequence[str] | None = None) -> dict[str, int] | None:
        """delta-rs writes every file's record count to the log and no deletion vectors: exact."""
        dt = self._open(table)
        return {} if dt is None else logged_rows(dt, tenants)

    def vacuum(self, table: TableSpec, retention_hours: int, purge: bool = False) -> int | None:
        dt = self._open(table)
        if dt is None:
            return 0
        # enforce_retention_duration=False only for an explicit purge, and only for this call.
        removed = dt.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=not purge)
        return len(removed)

    def changes(self, table: TableSpec, start_version: int, end_version: int | None = None) -> DataFrame:
        """The change feed read by delta-rs batch by batch; past ``driver_read_rows`` rows, a Parquet scan.

        A feed of at most ``driver_read_rows`` rows becomes a frame from Arrow (no Spark
        job). A longer one (a backfill's ``--since-version 0`` is the table's whole
        history) is written batch by batch to a Parquet file in the process's staging
        folder (:func:`staging_folder`), which Spark then scans on the executors: the
        driver holds one batch at a time, never the feed. The file lives as long as the
        frame may be read: until the process exits (a long-lived notebook keeps one file
        per large feed it read until its kernel stops). A cluster's executors cannot see
        the driver's disk: there the feed crosses the driver as Arrow, with a warning
        (such warehouses belong on delta-spark).
        """
        ddl = f"{table.ddl}, _change_type STRING, _commit_version BIGINT"
        dt = self._open(table)
        if dt is None or start_version > dt.version():
            return local_frame(self.spark, [], ddl)
        schema = arrow_schema(table).append(pa.field("_change_type", pa.string())).append(
            pa.field("_commit_version", pa.int64())
        )
        feed = pa.RecordBatchReader.from_stream(dt.load_cdf(starting_version=start_version, ending_version=end_version))
        batches = (conform_batch(batch, schema) for batch in feed)
        head: list[pa.RecordBatch] = []
        rows = 0
        for batch in batches:
            head.append(batch)
            rows += batch.num_rows
            if rows > self.driver_read_rows and self.stage_locally:
                break
        else:
            if rows == 0:
                return local_frame(self.spark, [], ddl)
            if rows > self.driver_read_rows:
                log.warning("delta-rs: %s's change feed (%d rows) crosses the driver: Spark's executors cannot "
                            "read a driver-side staging file", table.name, rows)
            return self.spark.createDataFrame(pa.Table.from_batches(head, schema)).select(*schema.names)
        import pyarrow.parquet as pq

        path = os.path.join(staging_folder(), f"changes-{table.name}-{next(_STAGED)}.parquet")
        with pq.ParquetWriter(path, schema) as writer:
            for batch in head:
                writer.write_batch(batch)
            del head
            for batch in batches:
                writer.write_batch(batch)
        return self.spark.read.schema(ddl).parquet(path).select(*schema.names)


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` in ``schema``: columns cast, those it lacks as NULLs.

    delta-rs 1.6 returns string columns as Arrow ``string_view``, which Spark's Arrow
    conversion refuses; columns missing from older versions of a table (before a
    schema migration) come back as NULLs.
    """
    columns = [
        batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_STAGED = itertools.count()
_STAGING: list[str] = []
_STAGING_LOCK = threading.Lock()


def staging_folder() -> str:
    """This process's private folder (0700) for files Spark reads lazily; removed when the process exits."""
    with _STAGING_LOCK:
        if not _STAGING:
            folder = tempfile.mkdtemp(prefix="feedlake-staging-")
            atexit.register(shutil.rmtree, folder, True)
            _STAGING.append(folder)
        return _STAGING[0]


class DeltaSparkEngine:
    """Delta tables through delta-spark's ``DeltaTable`` API (JVM jar required): MERGEs run on the executors."""

    name = "delta-spark"

    def __init__(self, spark: SparkSession, warehouse: str):
        self.spark = spark
        self.warehouse = warehouse
        self._tables: dict[str, object] = {}
        self.write_ids: WriteIds | None = None
        # Purge VACUUMs running at once (feedlake.erasure.forget.vacuum_tables) share one
        # overlay of the session's retention check: the first sets it, the last restores it.
        self._purge_lock = threading.Lock()
        self._purge_overlay: AbstractContextManager[None] | None = None
        self._purging = 0

    def table_path(self, table: TableSpec) -> str:
        return spark_table_path(_join_path(self.warehouse, table.name))

    def exists(self, table: TableSpec) -> bool:
        from delta.tables import DeltaTable

        return self.table_path(table) in self._tables or DeltaTable.isDeltaTable(self.spark, self.table_path(table))

    def ensure(self, table: TableSpec):
        """The table, created or migrated once per engine (columns added, properties set); cached after."""
        from delta.tables import DeltaTable

        path = self.table_path(table)
        if path in self._tables:
            return self._tables[path]
        if DeltaTable.isDeltaTable(self.spark, path):
            dt = DeltaTable.forPath(self.spark, path)
            missing = missing_columns(table, dt.toDF().columns)
            if missing:
                # delta-spark's Python DeltaTable has no addColumns: an empty append under
                # mergeSchema commits the wider schema alone (no data file, no SQL text).
                (
                    local_frame(self.spark, [], ", ".join(f"`{n}` {t}" for n, t in [("tenant_id", "string"), *missing]))
                    .write.format("delta")
                    .mode("append").option("mergeSchema", "true").save(path)
                )
                dt = DeltaTable.forPath(self.spark, path)
                log.info("table %s: added columns %s (schema migration)", table.name, [n for n, _ in missing])
            stale = missing_properties(table, self._stored_properties(path))
            if stale:
                self._set_properties(path, stale)
                log.info("table %s: set properties %s (migration)", table.name, stale)
        else:
            builder = (
                DeltaTable.createIfNotExists(self.spark)
                .location(path)
                .addColumns(self.spark.createDataFrame([], table.ddl).schema)
                .partitionedBy("tenant_id")
            )
            for key, value in table.properties.items():
                builder = builder.property(key, value)
            dt = builder.execute()
        self._tables[path] = dt
        return dt

    def ensure_all(self, tables: Sequence[TableSpec]) -> None:
        """Each table created or checked on its own thread: the work is the driver's, per table.

        Creating a table or reading its schema and properties is Delta log I/O and planning
        on the driver, about 0.3 s per table with no task to spread: 20 tables took
        4.2-5.3 s one after the other and 2.3-2.4 s on 4 threads (a fresh local warehouse,
        2 cores). Distinct tables share no log, so their creations do not conflict.
        """
        from concurrent.futures import ThreadPoolExecutor

        todo = [t for t in tables if self.table_path(t) not in self._tables]
        if todo:
            with ThreadPoolExecutor(max_workers=min(ENSURE_THREADS, len(todo)), thread_name_prefix="feedlake-ensure") as pool:
                list(pool.map(self.ensure, todo))  # re-raises the first table's error

    def _stored_properties(self, path: str) -> dict[str, str]:
        # SHOW TBLPROPERTIES reads the log's metadata action alone; DESCRIBE DETAIL (``detail()``)
        # also rebuilds the snapshot's file list for its counts: 20 tables, 0.35 s against 8.7 s.
        rows = self.spark.sql(f"SHOW TBLPROPERTIES {_path_identifier(path)}").collect()
        return {r["key"]: r["value"] for r in rows}

    def _set_properties(self, path: str, properties: Mapping[str, str]) -> None:
        # Property names and values come from conf/tables.yaml (checked: delta.* keys), never from data.
        for key, value in properties.items():
            if not _PROPERTY.fullmatch(key) or not _PROPERTY_VALUE.fullmatch(value):
                raise ConfigError(f"table property {key}={value!r} is not a plain Delta property")
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
        self.spark.sql(f"ALTER TABLE {_path_identifier(path)} SET TBLPROPERTIES ({assignments})")

    def _load(self, table: TableSpec) -> DataFrame | None:
        if not self.exists(table):
            return None
        return self.spark.read.format("delta").load(self.table_path(table))

    def read(self, table: TableSpec, tenants: Sequence[str] | None = None, within: Ranges | None = None) -> DataFrame:
        df = self._load(table)
        if df is None or (tenants is not None and not tenants):
            return local_frame(self.spark, [], table.ddl)
        if tenants:
            df = df.where(F.col("tenant_id").isin(list(tenants)))
        if within is not None:
            df = df.where(within.condition())
        return df.select(*table.column_names)

    def read_pinned(self, table: TableSpec, tenants: Sequence[str] | None = None) -> DataFrame:
        """:meth:`read`, computed once (:func:`feedlake.settings.session.pinned`).

        Each time Spark plans a query, it prepares every Delta scan in it: the snapshot's
        files, pruned by the tenant partitions (a Spark job on the table's state). A plan
        that refers to one read many times (the moments: a branch per moment, a join per
        condition) pays that per reference and per query. ``update_moments`` for
        sample/landing's two tenants took 5.25 s with a lazy read of each table and 2.67 s
        with pinned ones (medians, warm, 2 cores, alternated); on delta-rs pinning its reads
        would cost 0.8 -> 1.3 s for the moments' plan alone (see DeltaRsEngine.read_pinned).
        """
        return pinned(self.read(table, tenants), StorageLevel.MEMORY_AND_DISK)

    def read_matching(self, table: TableSpec, keys: DataFrame, on: Sequence[str]) -> DataFrame:
        df = self._load(table)
        if df is None:
            return local_frame(self.spark, [], table.ddl)
        wanted = keys.select(*on).distinct()
        # The tenant set as literals prunes partitions; the semi-join picks the keys (no SQL text).
        tenants = [r["tenant_id"] for r in wanted.select("tenant_id").distinct().collect()]
        scoped = df.where(F.col("tenant_id").isin(tenants))
        return scoped.join(wanted, on=list(on), how="left_semi").select(*table.column_names)

    @staticmethod
    def _result(metrics: DataFrame) -> MergeResult:
        # delta-spark returns the MERGE's metrics as a one-row DataFrame (no history lookup needed).
        row = metrics.first()
        values = row.asDict() if row is not None else {}
        return MergeResult(
            inserted=int(values.get("num_inserted_rows") or 0),
            updated=int(values.get("num_updated_rows") or 0),
            deleted=int(values.get("num_deleted_rows") or 0),
        )

    def merge(
        self, table: TableSpec, source: DataFrame, plan: MergePlan, *, split: bool | Sequence[str] = False
    ) -> MergeResult:
        by = split_columns(table, plan, split)
        dt = self.ensure(table)
        condition, update_when = render_column(plan)
        merger = dt.alias("t").merge(source.select(*source_schema(table, plan).names).alias("s"), condition)
        if plan.action is not None:
            # The action column is no column of the table: the clauses name the table's columns.
            deleting, keep = render_action_column(plan)
            values = render_assignments(table.column_names)
            merger = merger.whenMatchedDelete(condition=deleting)
            if plan.matched != "ignore":
                merger = merger.whenMatchedUpdate(condition=keep if update_when is None else keep & update_when, set=values)
            if plan.insert:
                merger = merger.whenNotMatchedInsert(condition=keep, values=values)
        else:
            if plan.matched == "delete":
                merger = merger.whenMatchedDelete()
            elif plan.matched != "ignore":
                merger = merger.whenMatchedUpdateAll(condition=update_when)
            if plan.insert:
                merger = merger.whenNotMatchedInsertAll()
        txn = write_id(self.write_ids, table, plan)

        def once() -> MergeResult:
            # Split before this attempt (a retry sees the conflicting commit), joined on the
            # executors against the plan's tenant partitions, as the MERGE itself reads them.
            by_group = (
                None if by is None else collect_split(split_frame(plan, source, self.read(table, plan.tenants), by), by)
            )
            return replace(self._execute(merger, txn), by_group=by_group)

        return with_commit_retries(table, once, _delta_spark_conflict)

    def _execute(self, merger, txn: WriteId | None) -> MergeResult:
        """Run a MERGE, under ``txn`` when given: delta-spark skips it if the table records that id (DML confs)."""
        txn_conf = {} if txn is None else {_TXN_APP_ID: txn.app_id, _TXN_VERSION: str(txn.version)}
        with sql_conf_overlay(self.spark, txn_conf):
            return self._result(merger.execute())

    def merge_rows(self, table: TableSpec, rows: Sequence[tuple], plan: MergePlan) -> MergeResult:
        if not rows:
            return MergeResult()
        return self.merge(table, local_frame(self.spark, list(rows), table.ddl), plan)

    def delete_matching(self, table: TableSpec, keys: DataFrame, plan: MergePlan) -> int:
        if plan.matched != "delete" or plan.insert:
            raise ValueError("delete_matching takes a feedlake.delta.merge.delete_plan")
        if not self.exists(table):
            return 0
        dt = self.ensure(table)
        columns = list(plan.source_columns)
        condition, _ = render_column(plan)
        merger = dt.alias("t").merge(keys.select(*columns).distinct().alias("s"), condition).whenMatchedDelete()
        txn = write_id(self.write_ids, table, plan)
        return with_commit_retries(table, lambda: self._execute(merger, txn), _delta_spark_conflict).deleted

    def version(self, table: TableSpec) -> int | None:
        from delta.tables import DeltaTable

        if not self.exists(table):
            return None
        return int(DeltaTable.forPath(self.spark, self.table_path(table)).history(1).collect()[0]["version"])

    def row_counts(self, table: TableSpec, tenants: Sequence[str] | None = None) -> dict[str, int] | None:
        """None: a delta-spark table may carry deletion vectors, which the files' record counts ignore."""
        return None

    def tenants(self, table: TableSpec) -> list[str]:
        if not self.exists(table):
            return []
        # A distinct over the partition column: Delta answers it from file metadata.
        return sorted(r["tenant_id"] for r in self.read(table).select("tenant_id").distinct().collect())

    def vacuum(self, table: TableSpec, retention_hours: int, purge: bool = False) -> int | None:
        from delta.tables import DeltaTable

        if not self.exists(table):
            return 0
        with self._retention_unchecked(purge):
            DeltaTable.forPath(self.spark, self.table_path(table)).vacuum(float(retention_hours))
        return None  # delta-spark reports the count in its log, not to the caller

    @contextmanager
    def _retention_unchecked(self, purge: bool) -> Iterator[None]:
        """A purge below Delta's retention floor is allowed while purges run, and only then.

        The check is a session setting, shared by every thread: with purges of several
        tables at once, one overlay covers them all, so a purge that ends first never
        turns the check back on under another's VACUUM.
        """
        if not purge:
            yield
            return
        with self._purge_lock:
            if not self._purging:
                self._purge_overlay = sql_conf_overlay(self.spark, {RETENTION_CHECK: "false"})
                self._purge_overlay.__enter__()
            self._purging += 1
        try:
            yield
        finally:
            with self._purge_lock:
                self._purging -= 1
                if not self._purging and self._purge_overlay is not None:
                    self._purge_overlay.__exit__(None, None, None)
                    self._purge_overlay = None

    def changes(self, table: TableSpec, start_version: int, end_version: int | None = None) -> DataFrame:
        # A given end is a version the caller read the table at: no second read of the history.
        current = self.version(table) if end_version is None else end_version
        if current is None or start_version > current:
            return local_frame(self.spark, [], f"{table.ddl}, _change_type STRING, _commit_version BIGINT")
        reader = self.spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", start_version)
        if end_version is not None:
            reader = reader.option("endingVersion", end_version)
        return reader.load(self.table_path(table)).select(*table.column_names, "_change_type", "_commit_version")


RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
ENSURE_THREADS = 4  # DeltaSparkEngine.ensure_all: past 4, 8 threads measured the same on 2 cores
_PROPERTY = re.compile(r"delta\.[A-Za-z0-9_.]+")
_PROPERTY_VALUE = re.compile(r"[A-Za-z0-9_.,: -]*")


def _path_identifier(path: str) -> str:
    """The path-based table identifier of a warehouse table (the path is conf, never data).

    >>> _path_identifier("/wh/odd`name/contacts")
    'delta.`/wh/odd``name/contacts`'
    """
    return "delta.`" + path.replace("`", "``") + "`"


COMMIT_RETRIES = 5

# delta-spark's session confs for idempotent DML (Delta 2.3+, delta-io/delta#1555).
_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"


def already_applied(recorded, txn: WriteId | None) -> bool:
    """Whether the table records ``txn`` (``recorded``: app id → latest version or None)."""
    if txn is None:
        return False
    version = recorded(txn.app_id)
    return version is not None and version >= txn.version


def with_commit_retries(table: TableSpec, write, is_conflict, retries: int = COMMIT_RETRIES):
    """Run a write; when its commit loses a race to another writer, run it again on the new version.

    A retry re-reads the target (the MERGE is evaluated again against the winner's
    commit), which is correct because a run holds the lease of every tenant it writes
    (:mod:`feedlake.ingest.lease`): the winner wrote other tenants' partitions or an all-tenants
    bookkeeping partition (e.g. ``quality_results``), never this run's rows, and each
    MERGE keeps the higher sequence anyway. A failed commit wrote nothing (Delta's
    optimistic concurrency), so no write applies twice.
    """
    import time

    for attempt in range(retries + 1):
        try:
            return write()
        except Exception as exc:
            if attempt == retries or not is_conflict(exc):
                raise
            log.warning("table %s: commit conflict with a concurrent writer (%s); retrying (%d/%d)",
                        table.name, type(exc).__name__, attempt + 1, retries)
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _delta_rs_conflict(exc: Exception) -> bool:
    from deltalake.exceptions import CommitFailedError

    return isinstance(exc, CommitFailedError)


def _delta_spark_conflict(exc: Exception) -> bool:
    from delta.exceptions import DeltaConcurrentModificationException

    return isinstance(exc, DeltaConcurrentModificationException) or "ConcurrentModificationException" in type(exc).__name__


def missing_properties(table: TableSpec, stored: Mapping[str, str] | None) -> dict[str, str]:
    """Declared table properties a stored table lacks or holds with another value."""
    have = dict(stored or {})
    return {k: v for k, v in table.properties.items() if have.get(k) != v}


def spark_table_path(path: str) -> str:
    """A warehouse path as Spark's Hadoop file systems name it: ``s3://`` → ``s3a://`` (S3A, hadoop-aws)
    except where the platform serves ``s3://`` itself (EMRFS, Databricks); a relative local
    path made absolute (``delta.`./warehouse/t``` is not a table identifier Spark accepts)."""
    if path.startswith("s3://") and not _platform_s3():
        return "s3a://" + path[len("s3://"):]
    if "://" not in path and not path.startswith("file:"):
        return os.path.abspath(path)
    return path


def _platform_s3() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ or os.path.isdir("/usr/share/aws/emr/emrfs")


def spark_arrow_schema(frame: DataFrame) -> pa.Schema:
    """The Arrow schema of a DataFrame's Spark schema (timestamps in UTC)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(frame.schema, timestamp_utc=True)


def arrow_filter(ranges: Ranges):
    """:class:`feedlake.delta.merge.Ranges` as a pyarrow dataset expression (bound values, no SQL text)."""
    import pyarrow.compute as pc

    column = pc.field(ranges.column)
    kind = pa.int64() if ranges.unix_seconds else pa.date32()
    out = pc.scalar(False)
    for low, high in ranges.bounds():
        out = out | ((column >= pa.scalar(low, kind)) & (column < pa.scalar(high, kind)))
    return out


def logged_rows(dt: Any, tenants: Sequence[str] | None) -> dict[str, int] | None:
    """Rows per tenant partition by the record counts the log keeps per file (None when a file has none)."""
    import pyarrow.compute as pc

    actions = pa.table(dt.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return {}
    if tenants:
        actions = actions.filter(pc.is_in(actions.column("partition.tenant_id"), pa.array(list(tenants), pa.string())))
    if actions.column("num_records").null_count:
        return None
    grouped = actions.group_by("partition.tenant_id").aggregate([("num_records", "sum")])
    return dict(zip(grouped.column("partition.tenant_id").to_pylist(), grouped.column("num_records_sum").to_pylist(),
                    strict=True))


def file_predicate(tenants: Sequence[str] | None, within: Ranges | None) -> list[list[tuple[str, str, Any]]] | None:
    """delta-rs file pruning for a read: tenant partitions and ``within``'s ranges (tuple filters in DNF).

    >>> from datetime import date
    >>> file_predicate(["a"], Ranges("d", ((date(2024, 3, 4), date(2024, 3, 11)),)))
    [[('tenant_id', 'in', ['a']), ('d', '>=', datetime.date(2024, 3, 4)), ('d', '<', datetime.date(2024, 3, 11))]]
    >>> file_predicate(None, None) is None
    True
    """
    scope = [("tenant_id", "in", list(tenants))] if tenants else []
    if within is None:
        return [scope] if scope else None
    return [[*scope, (within.column, ">=", low), (within.column, "<", high)] for low, high in within.bounds()]


def make_engine(
    spark: SparkSession,
    warehouse: str,
    choice: str = "auto",
    storage_options: Mapping[str, str] | None = None,
) -> DeltaEngine:
    """Pick the Delta engine.

    ``auto``: delta-spark where its JVM classes load and Spark runs on a cluster (the
    MERGE then runs on the executors); delta-rs on a local master, where it was measured
    faster (README "Delta engines": the sample landing zone in 31 s vs 5 min 22 s, most of
    it per-MERGE Spark job overhead), and wherever the jar is missing.
    """
    if choice not in ENGINES:
        raise ConfigError(f"engine {choice!r} not in {ENGINES}")
    jvm = delta_jvm_available(spark)
    if choice == "delta-spark" and not jvm:
        raise ConfigError(
            "engine delta-spark needs the Delta Lake JVM classes on the Spark classpath "
            "(io.delta:delta-spark via spark.jars.packages — python -m feedlake.app.jars resolves it —, "
            "EMR's or Databricks' Delta)"
        )
    if choice == "delta-spark" or (choice == "auto" and jvm and not local_master(spark)):
        return DeltaSparkEngine(spark, warehouse)
    return DeltaRsEngine(spark, warehouse, storage_options)


def engine_for(spark: SparkSession, warehouse: str, config: FeedlakeConfig) -> DeltaEngine:
    """The engine conf chooses (``engine:``) on ``warehouse``, with conf's object-store settings.

    delta-rs options: conf's ``s3`` endpoint/region, then ``storage_options`` (never secrets:
    credentials come from the AWS chain). The one way every command and notebook opens a warehouse.
    """
    from feedlake.landing.storage import delta_rs_options

    options = {**delta_rs_options(config.settings.s3), **config.settings.storage_options}
    return make_engine(spark, warehouse, config.settings.engine, options)
