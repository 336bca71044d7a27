"""Data quality with Great Expectations 1.x: a gate before MERGE, table checks after it.

Issue #5. Suites are declared per table in ``conf/quality/<table>.yaml``
(:mod:`feedlake.quality.suites`); GX runs them through checkpoints of the warehouse's
GX project (:mod:`feedlake.quality.context`).

* **Batch gate** (:class:`QualityGate`, an :class:`feedlake.ingest.hooks.IngestHook`):
  before the MERGE of one stream, each target table's ``<table>.gate`` checkpoint
  validates the deduplicated batch of every tenant (rows with ``_rank == 1``), crossed
  from Spark with one ``toArrow``: once for the whole batch, and only when something
  failed once more per tenant to find which (issue 12: cost follows the data). A
  failing ``critical`` expectation blocks the MERGE of that tenant and stream only;
  other tenants and streams proceed. The blocked batch is *not* quarantined: its files
  are written to the manifest with status ``blocked``, so the next run reads them again
  and retries the gate (after a fix of the sender's file, which then counts as changed,
  or of the suite). Quarantining the batch would duplicate every record it holds in
  the quarantine table and need a release procedure; a retried file needs none.
* **Table checks** (:func:`check_tables`, also run by the gate after the run): every
  table's ``<table>.table`` checkpoint on the stored rows of the tenants in scope
  (primary-key uniqueness, one account per contact, references), and one
  ``row_counts`` checkpoint: per tenant and table, the row count is not below the one
  the previous quality run recorded. Check frames are built by Spark; past
  ``quality.driver_max_rows`` rows GX validates them on Spark, so only counts and
  samples reach the driver (issue 12).
* **Results** (:class:`QualityRun`): every outcome goes to the ``quality_results``
  Delta table (through the pipeline's Delta engine), to
  ``WAREHOUSE/_quality/results/<run_id>.json``, to GX's validation store, and Data
  Docs are built under ``WAREHOUSE/_quality/data_docs``. The run report's
  ``extras["quality"]`` holds the summary.

Exit codes (``--fail-on``): :data:`EXIT_QUALITY` when an expectation of the given
severity (or worse) failed, else the command's own code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaEngine
from feedlake.delta.merge import MergePlan, plan_for
from feedlake.ingest.hooks import HookContext, IngestHook
from feedlake.ingest.report import RunReport
from feedlake.landing.storage import write_text
from feedlake.quality.context import DATA_SOURCE, ROW_COUNTS, SPARK_SOURCE, QualityContext, preload_gx
from feedlake.quality.suites import (
    GATE,
    TABLE,
    TENANT_SEPARATOR,
    ExpectationSpec,
    QualityConfig,
    TableQuality,
    load_quality,
)
from feedlake.settings.config import ALL_TENANTS, ConfigError, FeedlakeConfig, StreamSpec, TableSpec
from feedlake.settings.session import local_frame, prepared_ahead, release
from feedlake.settings.tables import QUALITY_RESULTS

log = logging.getLogger("feedlake.quality.checks")

RESULTS_TABLE = QUALITY_RESULTS
ROW_COUNT_CHECK = "row_count_never_shrinks"
EXIT_QUALITY = 3
FAIL_ON = ("critical", "warning")
SAMPLE_SIZE = 10
# Table check frames built ahead of GX (feedlake.settings.session.prepared_ahead), each on its thread.
CHECK_THREADS = 2
EARLIEST_EVENT_UNIX = 946684800  # 2000-01-01T00:00:00Z
# BASIC: counts and a sample of unexpected values, ~40 % cheaper per gate run than SUMMARY
# (which adds value counts and row indexes); the gate's tenant is known anyway.
GATE_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE}
# Table checks run over all tenants in scope: their samples still name the tenant, as every
# key and reference column read is tenant-qualified (tenant_id in the key, `tenant/value`).
TABLE_RESULT_FORMAT = GATE_RESULT_FORMAT
# The row-count frame has one row per tenant: the complete list of failing tenants is small.
ROW_COUNT_RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": ["tenant_id"]}
# A failing multi-tenant gate batch is validated once more to learn which tenants hold its
# unexpected rows (their tenant_id, at most FAILING_TENANT_ROWS of them per expectation).
FAILING_TENANT_ROWS = 1000
TENANTS_RESULT_FORMAT = {
    "result_format": "SUMMARY", "partial_unexpected_count": FAILING_TENANT_ROWS,
    "unexpected_index_column_names": ["tenant_id"], "return_unexpected_index_query": False,
}
TENANTS = "tenants"


def run_parameters(now: datetime) -> dict[str, Any]:
    """Values a suite may reference as ``{$PARAMETER: name}``.

    >>> run_parameters(datetime(2024, 1, 1, tzinfo=timezone.utc))["now_plus_1_day_unix"]
    1704153600
    """
    return {
        "now_unix": int(now.timestamp()),
        "now_plus_1_day_unix": int((now + timedelta(days=1)).timestamp()),
        "earliest_event_unix": EARLIEST_EVENT_UNIX,
    }


@dataclass(frozen=True)
class Outcome:
    """One expectation's result for one tenant (or ``*``) and table: a ``quality_results`` row."""

    kind: str
    tenant_id: str
    stream: str | None
    table_name: str
    expectation: str
    severity: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    observed_value: str | None = None
    sample: str = "[]"

    def describe(self) -> str:
        where = f"{self.tenant_id} {self.stream + ' ' if self.stream else ''}{self.table_name}"
        counts = f", {self.unexpected_count} unexpected" if self.unexpected_count else ""
        observed = f", observed {self.observed_value}" if self.observed_value and not self.unexpected_count else ""
        return f"{where}: {self.expectation} [{self.severity}{counts}{observed}] sample {self.sample}"


def _jsonable(value: Any) -> Any:
    """numpy scalars and other GX values as JSON (numbers stay numbers)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def to_json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, sort_keys=True)


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX keeps an expectation's exception either flat or per metric."""
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for nested in info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return nested.get("exception_message")
    return None


def outcomes_of(result, kind: str, table: str, tenant_id: str, stream: str | None) -> list[Outcome]:
    """A GX CheckpointResult → one :class:`Outcome` per expectation (label from the suite's meta)."""
    outcomes = []
    for validation in result.run_results.values():
        for er in validation.results:
            config = er.expectation_config
            res = er.result or {}
            error = _exception_message(er.exception_info)
            # GX lists unexpected values in the order the rows came: sorted, so a rerun or the
            # other engine records the same sample.
            sample = sorted(res.get("partial_unexpected_list") or [], key=to_json)
            outcomes.append(Outcome(
                kind=kind,
                tenant_id=tenant_id,
                stream=stream,
                table_name=table,
                expectation=(config.meta or {}).get("feedlake_label", config.type),
                severity=getattr(config.severity, "value", str(config.severity)),
                success=bool(er.success) and error is None,
                element_count=res.get("element_count"),
                unexpected_count=res.get("unexpected_count"),
                observed_value=None if res.get("observed_value") is None else to_json(res["observed_value"]),
                sample=to_json([f"error: {error}"] if error else sample[:SAMPLE_SIZE]),
            ))
    return sorted(outcomes, key=lambda o: o.expectation)


def passed_by(outcome: Outcome, tenant: str, rows: int) -> Outcome:
    """``outcome`` as tenant ``tenant`` gets it when none of its ``rows`` is unexpected: a pass with its own count."""
    return replace(
        outcome, tenant_id=tenant, success=True, sample=to_json([]),
        element_count=rows if outcome.element_count is not None else None,
        unexpected_count=0 if outcome.unexpected_count is not None else None,
    )


def tenant_counts(frame: DataFrame) -> dict[str, int]:
    """Rows per tenant: one Spark aggregation, one row per tenant to the driver."""
    return {r["tenant_id"]: r["rows"] for r in frame.groupBy("tenant_id").agg(F.count(F.lit(1)).alias("rows")).collect()}


def driver_counts(frame) -> dict[str, int]:
    """Rows per tenant of a frame already in the driver (pandas): no Spark job."""
    return {str(t): int(n) for t, n in frame.groupby("tenant_id").size().items()}


def driver_frame(frame: DataFrame):
    """``frame`` as pandas for GX, in one ``toArrow``; a missing text stays ``None``
    (pandas 3 turns it into NaN, which a sample would record as ``NaN``, not ``null``)."""
    import pandas as pd

    data = frame.toArrow().to_pandas()
    for column in data.columns:
        if pd.api.types.is_string_dtype(data[column]):
            data[column] = data[column].astype(object).where(data[column].notna(), None)
    return data


def bounded_frame(frame: DataFrame, max_rows: int):
    """``(pandas frame, True)`` when ``frame`` has at most ``max_rows`` rows, else ``(frame, False)``.

    One bounded collect (``limit``): at most ``max_rows + 1`` rows cross to the driver, so a
    batch of any size never does (issue 12: a 2 M-event batch ran a 1 GiB driver out of
    memory in ``toArrow``); the caller validates the Spark frame with GX's Spark source.
    """
    head = driver_frame(frame.limit(max_rows + 1))
    if len(head) <= max_rows:
        return head, True
    return frame, False


def table_check_frame(engine: DeltaEngine, config: FeedlakeConfig, quality: TableQuality, stored: DataFrame,
                      tenants: Sequence[str] | None) -> DataFrame:
    """The frame a ``<table>.table`` suite validates: ``stored``'s check columns and, per reference,
    the tenant-qualified reference and the same value where the referenced table has it.

    Keys are unique per tenant only, so a reference is ``tenant/value``
    (:attr:`feedlake.quality.suites.ReferenceSpec.frame_column`); its twin
    (:attr:`~feedlake.quality.suites.ReferenceSpec.known_column`) is null when no row of
    the referenced table of that tenant has the key: a left join against the referenced
    table's distinct keys, on the executors.
    """
    frame = stored
    for ref in quality.references:
        known = (
            engine.read(config.table(ref.table), tenants)
            .select("tenant_id", F.col(ref.key).alias(ref.column), F.lit(True).alias("_known"))
            .where(F.col(ref.column).isNotNull())
            .distinct()
        )
        qualified = F.concat(F.col("tenant_id"), F.lit(TENANT_SEPARATOR), F.col(ref.column))
        frame = (
            frame.join(known, on=["tenant_id", ref.column], how="left")
            .withColumn(ref.frame_column, qualified)
            .withColumn(ref.known_column, F.when(F.col("_known"), qualified))
            .drop("_known")
        )
    extra = [c for r in quality.references for c in (r.frame_column, r.known_column)]
    return frame.select(*(F.col(f"`{c}`") for c in (*quality.table_columns, *extra)))


@dataclass
class TableCheck:
    """One table's input to its ``<table>.table`` checkpoint, built by :func:`prepare_table_check`.

    ``rows``: stored rows per tenant in scope; ``frame``: what GX validates (pandas when
    ``in_driver``, else a Spark frame on local disk), ``None`` when nothing is checked;
    ``held``: the cached frames to release once GX is done.
    """

    quality: TableQuality
    rows: dict[str, int]
    frame: Any = None
    in_driver: bool = True
    held: tuple[DataFrame, ...] = ()

    def release(self) -> None:
        for df in self.held:
            release(df)


def prepare_table_check(engine: DeltaEngine, config: FeedlakeConfig, quality: TableQuality,
                        tenants: Sequence[str] | None) -> TableCheck:
    """Read ``quality``'s table for ``tenants``, count its rows per tenant and build its check frame.

    The per-tenant row counts come from the Delta log where it has them exactly
    (:meth:`~feedlake.delta.engines.DeltaEngine.row_counts`). Where it cannot tell
    (delta-spark), the check frame, one row per stored row, gives them: counted in pandas
    when it crosses to the driver, so one bounded Spark job (:func:`bounded_frame`, as the
    batch gate) builds the frame and its counts; past ``quality.driver_max_rows`` one
    Spark aggregation counts them. Warm delta-spark runs of ``sample/landing``: 29.4-30.3 s
    with the rows cached and counted first, 28.9-29.1 s so. No stored rows in scope:
    nothing to be unique or to reference (a table that lost all its rows is caught by the
    row counts).
    """
    stored = engine.read(quality.table, tenants).select(*quality.table_columns)
    logged = engine.row_counts(quality.table, tenants)
    if not quality.table_expectations:
        return TableCheck(quality, logged if logged is not None else tenant_counts(stored))
    if logged is not None and not any(logged.values()):
        return TableCheck(quality, logged)
    frame = table_check_frame(engine, config, quality, stored, tenants)
    max_rows = config.settings.quality.driver_max_rows
    if logged is None:
        head, in_driver = bounded_frame(frame, max_rows)
        if in_driver:
            return TableCheck(quality, driver_counts(head), None if head.empty else head)
        counts = tenant_counts(stored)
    elif sum(logged.values()) <= max_rows:
        return TableCheck(quality, logged, driver_frame(frame))
    else:
        counts = logged
    # Read and joined once for GX's metric jobs, as the gate's frame (on local disk: it is large).
    persisted = frame.persist(StorageLevel.DISK_ONLY)
    return TableCheck(quality, counts, persisted, in_driver=False, held=(persisted,))


@dataclass
class QualityRun:
    """Every outcome of one feedlake run (ingest or ``feedlake quality``) and where they went."""

    run_id: str
    checked_at: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    results_path: str | None = None
    docs_path: str | None = None
    page_path: str | None = None  # WAREHOUSE/_reports/<run_id>.html (feedlake.ingest.report_html)

    def failed(self, severity: str | None = None) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and (severity is None or o.severity == severity)]

    def exit_code(self, fail_on: str | None, default: int = 0) -> int:
        """:data:`EXIT_QUALITY` when ``fail_on`` is ``critical`` and a critical expectation
        failed, or ``warning`` and any failed; otherwise ``default``."""
        if fail_on is None:
            return default
        if fail_on not in FAIL_ON:
            raise ConfigError(f"--fail-on {fail_on!r} not in {FAIL_ON}")
        failing = self.failed("critical") if fail_on == "critical" else self.failed()
        return EXIT_QUALITY if failing else default

    def summary(self) -> str:
        """The DQ summary of the run report: counts, blocked batches, every failure."""
        critical, warning = len(self.failed("critical")), len(self.failed("warning"))
        lines = [
            f"{len(self.outcomes)} expectations checked, {critical} critical and {warning} warning failed; "
            f"blocked: {', '.join(self.blocked) or 'none'}; results: {self.results_path}; data docs: {self.docs_path}"
        ]
        lines.extend(f"  FAILED {o.describe()}" for o in self.failed())
        return "\n".join(lines)

    def rows(self) -> list[tuple]:
        return [
            (o.tenant_id, self.run_id, o.kind, o.stream, o.table_name, o.expectation, o.severity, o.success,
             o.element_count, o.unexpected_count, o.observed_value, o.sample, self.checked_at)
            for o in self.outcomes
        ]

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "checked_at": self.checked_at.isoformat(timespec="seconds"),
                "blocked": self.blocked,
                "failed_critical": len(self.failed("critical")),
                "failed_warning": len(self.failed("warning")),
                "data_docs": self.docs_path,
                "outcomes": [
                    {**asdict(o), "sample": json.loads(o.sample),
                     "observed_value": None if o.observed_value is None else json.loads(o.observed_value)}
                    for o in self.outcomes
                ],
            },
            indent=2,
            sort_keys=True,
        )


def results_location(warehouse: str, run_id: str) -> str:
    """``WAREHOUSE/_quality/results/<run_id>.json``."""
    return warehouse.rstrip("/") + f"/_quality/results/{run_id}.json"


class QualityChecks:
    """Runs the gate and the table checks of one feedlake run and persists their outcomes."""

    def __init__(self, spark: SparkSession, config: FeedlakeConfig, engine: DeltaEngine, quality: QualityConfig,
                 warehouse: str, run_id: str):
        if RESULTS_TABLE not in config.tables:
            raise ConfigError(f"tables.yaml must declare the {RESULTS_TABLE!r} table for quality checks")
        self.spark = spark
        self.config = config
        self.engine = engine
        self.quality = quality
        self.warehouse = warehouse
        self.context = QualityContext.for_warehouse(warehouse, config.settings.quality, [*quality.tables, ROW_COUNTS])
        self.run = QualityRun(run_id, datetime.now(timezone.utc))
        self.parameters = run_parameters(self.run.checked_at)

    def gate(self, stream: StreamSpec, batch: Mapping[str, DataFrame]) -> dict[str, str]:
        """Validate one stream's deduplicated batch (all tenants); tenant → the reason to block its MERGE.

        Each expectation is decomposable by tenant (row checks, uniqueness over keys that
        include ``tenant_id``), so when the whole batch passes without an unexpected row
        every tenant passes and gets the batch's outcomes with its own row count; when
        something fails, or passes only under ``mostly``, the tenants holding unexpected
        rows are validated again on their own rows, so exactly the failing tenants are
        blocked and every outcome names its tenant.
        """
        reasons: dict[str, list[str]] = {}
        driver_max_rows = self.config.settings.quality.driver_max_rows
        for name in stream.targets:
            quality = self.quality.gated(name)
            if quality is None or name not in batch:
                continue
            ranked = batch[name]
            missing = [c for c in quality.gate_columns if c not in ranked.columns]
            if missing:
                raise ConfigError(f"quality/{name}.yaml batch: columns {missing} are not in the {stream.name} batch "
                                  f"(it has {sorted(ranked.columns)})")
            rows = ranked.where(F.col("_rank") == 1).select(*quality.gate_columns)
            frame, in_driver = bounded_frame(rows, driver_max_rows)
            if in_driver and frame.empty:
                continue
            if not in_driver:
                # GX's Spark source runs a job per group of metrics: they scan these few
                # columns, not the wide ranked rows (a large batch: on local disk).
                rows = frame = rows.persist(StorageLevel.DISK_ONLY)
            try:
                self._gate_table(stream, name, quality, rows, frame, in_driver, reasons)
            finally:
                release(rows)
        for tenant in sorted(reasons):
            self.run.blocked.append(f"{tenant}/{stream.name}")
        return {tenant: "; ".join(found) for tenant, found in sorted(reasons.items())}

    def _gate_table(self, stream: StreamSpec, name: str, quality: TableQuality, rows: DataFrame, frame, in_driver: bool,
                    reasons: dict[str, list[str]]) -> None:
        """The gate of one target table: its outcomes into the run, the tenants to block into ``reasons``."""
        source = DATA_SOURCE if in_driver else SPARK_SOURCE
        checkpoint = self.context.checkpoint(f"{name}.{GATE}", name, quality.gate, GATE_RESULT_FORMAT, source)
        sizes = driver_counts(frame) if in_driver else tenant_counts(rows)
        tenants = sorted(str(t) for t in sizes)
        label = tenants[0] if len(tenants) == 1 else ALL_TENANTS
        result = self.context.run(checkpoint, frame, self.parameters, f"{self.run.run_id}_{label}_{stream.name}",
                                  datetime.now(timezone.utc))
        whole = outcomes_of(result, GATE, name, label, stream.name)
        if len(tenants) == 1:
            per_tenant = {tenants[0]: whole}
        elif all(o.success and not o.unexpected_count for o in whole):
            # Not a row unexpected anywhere: every tenant passes on its own rows too. A batch
            # that passes with unexpected rows (under ``mostly``) is judged tenant by tenant
            # below: one tenant's clean rows never carry another's past its threshold.
            per_tenant = {t: [passed_by(o, t, int(sizes[t])) for o in whole] for t in tenants}
        else:
            failing = self._failing_tenants(name, quality, frame, source, whole, tenants)
            per_tenant = {t: [passed_by(o, t, int(sizes[t])) for o in whole] for t in tenants if t not in failing}
            for tenant in failing:
                # Only the tenants holding unexpected rows: their rows again, as a slice
                # of the driver frame when the batch crossed to pandas, else on Spark.
                part = (frame[frame["tenant_id"] == tenant].reset_index(drop=True) if in_driver
                        else rows.where(F.col("tenant_id") == F.lit(tenant)))
                result = self.context.run(checkpoint, part, self.parameters,
                                          f"{self.run.run_id}_{tenant}_{stream.name}", datetime.now(timezone.utc))
                per_tenant[tenant] = outcomes_of(result, GATE, name, tenant, stream.name)
        for tenant, outcomes in per_tenant.items():
            self.run.outcomes.extend(outcomes)
            critical = [o for o in outcomes if not o.success and o.severity == "critical"]
            if critical:
                reasons.setdefault(tenant, []).append(f"quality gate {name}: " + ", ".join(
                    f"{o.expectation} ({o.unexpected_count or 0} unexpected)" for o in critical))

    def _failing_tenants(self, name: str, quality, frame, source: str, whole: Sequence[Outcome],
                         tenants: Sequence[str]) -> list[str]:
        """The tenants of a failing batch that hold an unexpected row: the ones validated again alone.

        One more validation of the whole batch names each unexpected row's ``tenant_id``
        (:data:`TENANTS_RESULT_FORMAT`), so the cost of a failure follows the failing
        tenants, not the batch's (issue 12: no loop over tenants around Spark jobs). Every
        other tenant passes each expectation: row checks and uniqueness over keys that
        include ``tenant_id`` decompose by tenant. Every tenant is validated alone when
        that cannot be known: a batch of two tenants (finding costs as much as checking
        both), an expectation without per-row results (an aggregate) or that raised, or
        more unexpected rows than :data:`FAILING_TENANT_ROWS`.
        """
        if len(tenants) <= 2 or any(o.unexpected_count is None for o in whole):
            return list(tenants)
        checkpoint = self.context.checkpoint(f"{name}.{GATE}.{TENANTS}", name, quality.gate, TENANTS_RESULT_FORMAT, source)
        result = self.context.run(checkpoint, frame, self.parameters, f"{self.run.run_id}_{TENANTS}_{name}",
                                  datetime.now(timezone.utc), keep=False)
        failing: set[str] = set()
        for validation in result.run_results.values():
            for er in validation.results:
                res = er.result or {}
                if _exception_message(er.exception_info):
                    return list(tenants)
                # Every expectation with unexpected rows, passing ones too: under ``mostly`` a
                # batch may pass where one tenant's own rows would not.
                if not res.get("unexpected_count"):
                    continue
                found = res.get("partial_unexpected_index_list")
                if found is None or len(found) != res["unexpected_count"]:
                    return list(tenants)
                failing.update(str(row["tenant_id"]) for row in found)
        return sorted(failing)

    def tables(self, tenants: Sequence[str] | None, names: Sequence[str] | None = None) -> None:
        """Table checks on the stored rows of ``tenants`` (``None``: all) of the chosen tables.

        Each table's check frame is built by Spark (:func:`prepare_table_check`) on up to
        :data:`CHECK_THREADS` threads ahead of GX, which validates one table after the
        other in table order on this thread (a GX project is not thread-safe). A frame of
        at most ``quality.driver_max_rows`` rows is validated by GX in pandas (one
        ``toArrow``); a larger one by GX's Spark data source, so what reaches the driver is
        bounded by the setting times ``CHECK_THREADS + 1``, not by the warehouse (issue 12).
        """
        chosen = self.quality.checked(names)
        counts: dict[str, dict[str, int]] = {}

        def prepare(quality: TableQuality) -> TableCheck:
            return prepare_table_check(self.engine, self.config, quality, tenants)

        for check in prepared_ahead(self.spark, prepare, chosen, CHECK_THREADS, discard=TableCheck.release):
            try:
                if check.quality.row_count_never_shrinks:
                    counts[check.quality.table.name] = check.rows
                if check.frame is None:
                    continue
                name = check.quality.table.name
                checkpoint = self.context.checkpoint(f"{name}.{TABLE}", name, check.quality.table_expectations,
                                                     TABLE_RESULT_FORMAT, DATA_SOURCE if check.in_driver else SPARK_SOURCE)
                result = self.context.run(checkpoint, check.frame, self.parameters, self.run.run_id,
                                          datetime.now(timezone.utc))
                self.run.outcomes.extend(outcomes_of(result, TABLE, name, ALL_TENANTS, None))
            finally:
                check.release()
        self._row_counts([q for q in chosen if q.row_count_never_shrinks], counts, tenants)

    def _row_counts(self, chosen: Sequence[TableQuality], counts: Mapping[str, Mapping[str, int]],
                    tenants: Sequence[str] | None) -> None:
        """One ``row_counts`` validation: per tenant and table, rows now ≥ rows at the last check.

        Its frame has one row per tenant in scope (not per stored row), so GX validates it
        in pandas.
        """
        if not chosen:
            return
        import pandas as pd

        previous = self._previous_counts(tenants)
        scope = sorted(set(tenants or ()) | {t for c in counts.values() for t in c} | {t for _, t in previous})
        if not scope:
            return
        frame = pd.DataFrame({"tenant_id": scope})
        specs = []
        for quality in chosen:
            name = quality.table.name
            frame[f"{name}.rows"] = pd.array([counts[name].get(t, 0) for t in scope], dtype="Int64")
            frame[f"{name}.previous_rows"] = pd.array([previous.get((name, t)) for t in scope], dtype="Int64")
            specs.append(ExpectationSpec(
                "expect_column_pair_values_a_to_be_greater_than_b",
                {"column_A": f"{name}.rows", "column_B": f"{name}.previous_rows", "or_equal": True,
                 "ignore_row_if": "either_value_is_missing"},
                quality.row_count_never_shrinks,
            ))
        checkpoint = self.context.checkpoint(ROW_COUNTS, ROW_COUNTS, specs, ROW_COUNT_RESULT_FORMAT)
        result = self.context.run(checkpoint, frame, self.parameters, self.run.run_id, datetime.now(timezone.utc))
        shrunk: dict[str, set[str]] = {}
        for validation in result.run_results.values():
            for er in validation.results:
                column = er.expectation_config.kwargs["column_A"]
                shrunk[column.removesuffix(".rows")] = {r["tenant_id"] for r in (er.result or {}).get("unexpected_index_list") or []}
        for quality in chosen:
            name = quality.table.name
            for tenant, rows, before in zip(scope, frame[f"{name}.rows"], frame[f"{name}.previous_rows"], strict=True):
                failed = tenant in shrunk.get(name, set())
                self.run.outcomes.append(Outcome(
                    kind=TABLE, tenant_id=tenant, stream=None, table_name=name, expectation=ROW_COUNT_CHECK,
                    severity=quality.row_count_never_shrinks, success=not failed, element_count=int(rows),
                    unexpected_count=int(failed), observed_value=str(int(rows)),
                    sample=to_json([{"rows": int(rows), "previous_rows": None if pd.isna(before) else int(before)}]
                                   if failed else []),
                ))

    def _previous_counts(self, tenants: Sequence[str] | None) -> dict[tuple[str, str], int]:
        """(table, tenant) → the row count recorded by the latest quality run that counted it.

        Spark picks the latest count per table and tenant; one row each reaches the driver,
        however many runs ``quality_results`` holds.
        """
        stored = self.engine.read(self.config.table(RESULTS_TABLE), tenants)
        latest = (
            stored.where(F.col("expectation") == ROW_COUNT_CHECK)
            .groupBy("table_name", "tenant_id")
            .agg(F.max_by("observed_value", F.struct("checked_at", "run_id")).alias("observed_value"))
        )
        return {(r["table_name"], r["tenant_id"]): int(r["observed_value"]) for r in latest.collect()}

    def finish(self) -> QualityRun:
        """Persist every outcome (Delta table, JSON) and build the Data Docs.

        A temporary GX project (remote warehouse, issue #13 item 7) publishes its Data
        Docs to the warehouse and is removed here.
        """
        self.run.docs_path = self.context.build_docs()
        if self.context.temporary:
            self.run.docs_path = self.context.publish(self.warehouse, self.config.settings.s3)
            self.context.close()
        self.run.results_path = results_location(self.warehouse, self.run.run_id)
        if self.run.outcomes:
            table = self.config.table(RESULTS_TABLE)
            rows = local_frame(self.spark, self.run.rows(), table.ddl)
            self.engine.merge(table, rows, results_plan(table, sorted({o.tenant_id for o in self.run.outcomes}),
                                                        self.run.run_id))
        write_text(self.run.results_path, self.run.to_json(), self.config.settings.s3)
        return self.run


def results_plan(table: TableSpec, tenants: Sequence[str], run_id: str) -> MergePlan:
    """One MERGE of a run's outcomes for all its tenants into ``quality_results``.

    The rows of a run are new (its run_id is in the key), so this is an append that a
    rerun of the same run would replace: the ``replace`` policy's null-safe key match of
    :func:`feedlake.delta.merge.plan_for`, over the run's tenant partitions and, through the
    run_id (generated by feedlake, so a code-controlled literal), only the files that
    can hold this run's rows, instead of one MERGE per tenant.

    >>> from feedlake.settings.config import TableSpec
    >>> from feedlake.delta.merge import render_sql
    >>> render_sql(results_plan(TableSpec("q", (("tenant_id", "string"), ("run_id", "string")), ("tenant_id", "run_id"), "replace"), ["a", "*"], "r1"))[0]
    "t.tenant_id IN ('*', 'a') AND t.`run_id` = 'r1' AND (t.`tenant_id` IS NOT DISTINCT FROM s.`tenant_id`) AND (t.`run_id` IS NOT DISTINCT FROM s.`run_id`)"
    """
    plan = plan_for(table, tenants)
    return MergePlan(plan.table, plan.on, plan.tenants, plan.null_safe, plan.matched, plan.insert,
                     target_equals=(("run_id", run_id),))


class QualityGate(IngestHook):
    """The ingest hook: batch gate before each MERGE, table checks and persistence after the run."""

    def __init__(self, quality: QualityConfig):
        self.quality = quality
        self.checks: QualityChecks | None = None
        preload_gx()

    @classmethod
    def from_conf(cls, config: FeedlakeConfig, conf_dir: str | None) -> QualityGate:
        """The gate with the ``quality/`` suites of ``conf_dir`` (the packaged ones for ``None``)."""
        return cls(load_quality(conf_dir, config))

    def _checks(self, context: HookContext) -> QualityChecks:
        if self.checks is None:
            self.checks = QualityChecks(context.spark, context.config, context.engine, self.quality, context.warehouse,
                                        context.run_id)
        return self.checks

    def before_merge(self, context: HookContext, stream: StreamSpec, batch: Mapping[str, DataFrame]) -> dict[str, str]:
        return self._checks(context).gate(stream, batch)

    def after_run(self, context: HookContext, report: RunReport) -> None:
        checks = self._checks(context)
        tenants = sorted({s.tenant_id for s in report.streams if s.files_read})
        if tenants:
            checks.tables(tenants)
        run = checks.finish()
        context.extras["quality"] = run.summary()

    def exit_code(self, fail_on: str | None, default: int = 0) -> int:
        return default if self.checks is None else self.checks.run.exit_code(fail_on, default)


def check_tables(spark: SparkSession, config: FeedlakeConfig, engine: DeltaEngine, quality: QualityConfig,
                 warehouse: str, run_id: str, tables: Sequence[str] | None = None) -> QualityRun:
    """``feedlake quality``: the table checks alone, over all tenants, persisted like an ingest's."""
    checks = QualityChecks(spark, config, engine, quality, warehouse, run_id)
    checks.tables(None, tables)
    run = checks.finish()
    from feedlake.ingest.report_html import write_quality_page

    # The run's page beside the ingest runs' pages, and the run history (issue #16).
    run.page_path = write_quality_page(run, warehouse, config.settings.quality, config.settings.s3)
    return run
