"""The Delta Lake seam: one small interface, two engines writing the same protocol.

* :class:`DeltaRsEngine` (``deltalake`` on PyPI, delta-rs): the embedded default. It
  needs no JVM jar, so it runs on a laptop, in CI and against S3 through its own
  object store. Spark computes; the rows to merge cross to delta-rs as Arrow.
* :class:`DeltaSparkEngine` (``delta-spark``): used wherever the Delta JVM classes are
  on the Spark classpath (EMR, Databricks, ``spark.jars.packages``); the MERGE runs on
  the executors.

Both render the same :class:`feedlake.merge.MergePlan`, so merge semantics exist once.
``engine: auto`` in conf picks delta-spark when the JVM classes load, else delta-rs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.config import ConfigError, TableSpec
from feedlake.merge import MergePlan, sql_literal
from feedlake.session import delta_jvm_available

log = logging.getLogger("feedlake.delta")

ENGINES = ("auto", "delta-rs", "delta-spark")

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
    """Row counts of one MERGE."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0


class DeltaEngine(Protocol):
    """What the pipeline needs from a Delta implementation."""

    name: str

    def table_path(self, table: TableSpec) -> str: ...

    def ensure(self, table: TableSpec) -> object: ...

    def read(self, table: TableSpec, tenants: Sequence[str] | None = None, where: str | None = None) -> DataFrame: ...

    def merge(self, table: TableSpec, source: DataFrame, plan: MergePlan) -> MergeResult: ...

    def delete(self, table: TableSpec, predicate: str) -> int: ...

    def version(self, table: TableSpec) -> int | None: ...


def tenant_predicate(tenants: Sequence[str], column: str = "tenant_id") -> str:
    """``tenant_id IN ('a', 'b')``: prunes partitions in both engines."""
    return f"{column} IN ({', '.join(sql_literal(t) for t in tenants)})"


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


def _local_master(spark: SparkSession) -> bool:
    """True when driver and executors share this machine's disk (``local[...]`` master)."""
    try:
        return spark.sparkContext.master.startswith("local")
    except Exception:  # Spark Connect has no SparkContext: treat it as a remote cluster
        return False


class DeltaRsEngine:
    """Delta tables through delta-rs; Spark DataFrames cross as Arrow."""

    name = "delta-rs"

    def __init__(self, spark: SparkSession, warehouse: str, storage_options: Mapping[str, str] | None = None):
        self.spark = spark
        self.warehouse = warehouse
        self.remote = "://" in warehouse
        self.storage_options = delta_rs_storage_options(storage_options) if self.remote else None
        self.stage_locally = _local_master(spark)

    def table_path(self, table: TableSpec) -> str:
        return _join_path(self.warehouse, table.name)

    def _open(self, table: TableSpec):
        from deltalake import DeltaTable

        path = self.table_path(table)
        if not DeltaTable.is_deltatable(path, storage_options=self.storage_options):
            return None
        return DeltaTable(path, storage_options=self.storage_options)

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
            return existing
        if not self.remote:
            os.makedirs(self.table_path(table), exist_ok=True)
        return DeltaTable.create(
            self.table_path(table),
            arrow_schema(table),
            mode="ignore",
            partition_by=["tenant_id"],
            name=table.name,
            storage_options=self.storage_options,
        )

    def read_arrow(self, table: TableSpec, tenants: Sequence[str] | None = None, where: str | None = None) -> pa.Table:
        """Rows of ``table`` (optionally of ``tenants`` only and matching the SQL predicate ``where``)."""
        dt = self._open(table)
        schema = arrow_schema(table)
        if dt is None:
            return schema.empty_table()
        if where:
            from deltalake import QueryBuilder

            # DataFusion SQL: the predicate skips files by their min/max statistics, so
            # reading a slice costs the slice, not the table (issue #4).
            scope = f"{tenant_predicate(tenants)} AND ({where})" if tenants else where
            reader = QueryBuilder().register("t", dt).execute(f"SELECT * FROM t WHERE {scope}")
            return pa.RecordBatchReader.from_stream(reader).read_all().select(schema.names).cast(schema)
        filters = [("tenant_id", "in", list(tenants))] if tenants else None
        return dt.to_pyarrow_table(filters=filters).select(schema.names).cast(schema)

    def read(self, table: TableSpec, tenants: Sequence[str] | None = None, where: str | None = None) -> DataFrame:
        data = self.read_arrow(table, tenants, where)
        if data.num_rows == 0:
            return self.spark.createDataFrame([], table.ddl)
        return self.spark.createDataFrame(data).select(*table.column_names)

    @contextmanager
    def _arrow_source(self, table: TableSpec, source: DataFrame) -> Iterator[tuple[int, pa.RecordBatchReader]]:
        """The rows to merge as a stream of Arrow batches in the table's schema, and their count.

        With a local master (driver and executors share one disk) Spark writes the rows
        as Parquet into a staging folder that delta-rs then reads batch by batch, so a
        batch of any size crosses without being held whole in the driver's JVM heap or
        in Python (``DataFrame.toArrow`` buffers every task result in the driver: 2 M
        events from one gzip file ran the 4 GiB driver out of memory, and PySpark then
        waits forever for the stream). Elsewhere (a cluster, whose executors write to
        their own disks) the rows are collected with ``toArrow``; large backfills there
        are bounded by ``backfill.chunk_*`` or run on delta-spark.
        """
        schema = arrow_schema(table)
        frame = source.select(*table.column_names)
        if not self.stage_locally:
            data = frame.toArrow().cast(schema)
            yield data.num_rows, pa.RecordBatchReader.from_batches(schema, data.to_batches())
            return
        import pyarrow.dataset as ds

        folder = tempfile.mkdtemp(prefix=f"feedlake-merge-{table.name}-")
        try:
            frame.write.mode("overwrite").parquet(folder)
            staged = ds.dataset(folder, format="parquet")  # _SUCCESS and .crc files are ignored
            batches = (batch.select(schema.names).cast(schema) for batch in staged.to_batches())
            yield staged.count_rows(), pa.RecordBatchReader.from_batches(schema, batches)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def merge(self, table: TableSpec, source: DataFrame, plan: MergePlan) -> MergeResult:
        with self._arrow_source(table, source) as (rows, data):
            if rows == 0:
                return MergeResult()
            dt = self.ensure(table)
            merger = dt.merge(source=data, predicate=plan.on, source_alias="s", target_alias="t")
            merger = merger.when_matched_update_all(predicate=plan.update_when)
            if plan.insert:
                merger = merger.when_not_matched_insert_all()
            metrics = merger.execute()
        return MergeResult(
            inserted=int(metrics.get("num_target_rows_inserted", 0)),
            updated=int(metrics.get("num_target_rows_updated", 0)),
            deleted=int(metrics.get("num_target_rows_deleted", 0)),
        )

    def delete(self, table: TableSpec, predicate: str) -> int:
        dt = self._open(table)
        if dt is None:
            return 0
        return int(dt.delete(predicate).get("num_deleted_rows", 0))

    def version(self, table: TableSpec) -> int | None:
        dt = self._open(table)
        return None if dt is None else dt.version()


class DeltaSparkEngine:
    """Delta tables through delta-spark's ``DeltaTable`` API (JVM jar required)."""

    name = "delta-spark"

    def __init__(self, spark: SparkSession, warehouse: str):
        self.spark = spark
        self.warehouse = warehouse

    def table_path(self, table: TableSpec) -> str:
        return _join_path(self.warehouse, table.name)

    def _exists(self, table: TableSpec) -> bool:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, self.table_path(table))

    def ensure(self, table: TableSpec):
        from delta.tables import DeltaTable

        if self._exists(table):
            current = DeltaTable.forPath(self.spark, self.table_path(table)).toDF().columns
            missing = missing_columns(table, current)
            if missing:
                columns = ", ".join(f"`{n}` {t}" for n, t in missing)
                self.spark.sql(f"ALTER TABLE delta.`{self.table_path(table)}` ADD COLUMNS ({columns})")
                log.info("table %s: added columns %s (schema migration)", table.name, [n for n, _ in missing])
        return (
            DeltaTable.createIfNotExists(self.spark)
            .location(self.table_path(table))
            .addColumns(self.spark.createDataFrame([], table.ddl).schema)
            .partitionedBy("tenant_id")
            .execute()
        )

    def read(self, table: TableSpec, tenants: Sequence[str] | None = None, where: str | None = None) -> DataFrame:
        if not self._exists(table):
            return self.spark.createDataFrame([], table.ddl)
        df = self.spark.read.format("delta").load(self.table_path(table))
        if tenants:
            df = df.where(F.col("tenant_id").isin(list(tenants)))
        if where:
            df = df.where(F.expr(where))
        return df.select(*table.column_names)

    def merge(self, table: TableSpec, source: DataFrame, plan: MergePlan) -> MergeResult:
        dt = self.ensure(table)
        merger = dt.alias("t").merge(source.select(*table.column_names).alias("s"), plan.on)
        merger = merger.whenMatchedUpdateAll(condition=plan.update_when)
        if plan.insert:
            merger = merger.whenNotMatchedInsertAll()
        merger.execute()
        last = dt.history(1).collect()[0]
        if last["operation"] != "MERGE":
            return MergeResult()
        metrics = last["operationMetrics"] or {}
        return MergeResult(
            inserted=int(metrics.get("numTargetRowsInserted", 0)),
            updated=int(metrics.get("numTargetRowsUpdated", 0)),
            deleted=int(metrics.get("numTargetRowsDeleted", 0)),
        )

    def delete(self, table: TableSpec, predicate: str) -> int:
        from delta.tables import DeltaTable

        if not self._exists(table):
            return 0
        dt = DeltaTable.forPath(self.spark, self.table_path(table))
        dt.delete(predicate)
        metrics = dt.history(1).collect()[0]["operationMetrics"] or {}
        return int(metrics.get("numDeletedRows", 0))

    def version(self, table: TableSpec) -> int | None:
        from delta.tables import DeltaTable

        if not self._exists(table):
            return None
        return int(DeltaTable.forPath(self.spark, self.table_path(table)).history(1).collect()[0]["version"])


def make_engine(
    spark: SparkSession,
    warehouse: str,
    choice: str = "auto",
    storage_options: Mapping[str, str] | None = None,
) -> DeltaEngine:
    """Pick the Delta engine: ``auto`` prefers delta-spark when its JVM classes load."""
    if choice not in ENGINES:
        raise ConfigError(f"engine {choice!r} not in {ENGINES}")
    if choice == "delta-spark" or (choice == "auto" and delta_jvm_available(spark)):
        if not delta_jvm_available(spark):
            raise ConfigError(
                "engine delta-spark needs the Delta Lake JVM classes on the Spark classpath "
                "(io.delta:delta-spark via spark.jars.packages, EMR's or Databricks' Delta)"
            )
        return DeltaSparkEngine(spark, warehouse)
    return DeltaRsEngine(spark, warehouse, storage_options)
