"""Account metrics by day and by week, derived from ``metric_records`` (issue #4, seed 003).

``metric_records`` holds what tenants sent (one row per id and day, latest batch
wins). From it, per (tenant, week) slice touched by a batch (see :mod:`feedlake.slices`):

* ``account_metrics``: one value per account, metric and day. The record's id is the
  account key, or is mapped to one through ``entity_map`` (``conf/metrics.yaml``);
  values of several ids mapped to the same account on the same day are summed
  (``sources`` says how many). Kind: as declared per tenant, else ``stock``.
* ``account_metrics_weekly``: week_start = Monday (UTC); ``days_reported`` = days of the
  week with a value. Stock → the last value of the week. Cumulative (a running total,
  seed 003 "can be added up over time") → the value at the end of the week, and
  ``week_change`` = that value minus the previous calendar week's (NULL when the
  previous week has no value).

A week's weekly row depends on the week before it (week_change), so a batch touching
week W recomputes the weekly rows of W and W+1 from the days of W-1 to W+1.

Column drift (seed 003: "Column names should be the same for every export"; "Number
of columns remain the same"): every metric file's column set is kept in
``metric_files``; a file is compared with the tenant's previous file (by file date,
then path) and new or missing columns are reported in the run report.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from feedlake.config import ConfigError, FeedlakeConfig, StreamSpec
from feedlake.hooks import HookContext, IngestHook, batch_tenants
from feedlake.metrics import DEFAULT_KIND, MetricsSettings, TenantMetrics, parse_settings
from feedlake.slices import Slices, around, monday, replace_slices

log = logging.getLogger("feedlake.metrics")

STREAM = "metrics"
ENTITY_MAP = "entity_map"
ENTITY_MAP_COLUMNS = ("source_system", "source_id", "account_key")


def metric_cells(records: DataFrame) -> DataFrame:
    """``metric_records`` rows (with ``account_key``) → one row per account, metric, day and id."""
    values = F.from_json(F.col("metrics"), "map<string,double>")
    return records.select(
        "tenant_id", "account_key", "source_id", "metric_date", F.explode(values).alias("metric", "value")
    ).where(F.col("value").isNotNull()).select("tenant_id", "account_key", "source_id", "metric", "metric_date", "value")


def daily_metrics(records: DataFrame, rules: TenantMetrics) -> DataFrame:
    """``account_metrics`` rows: per account, metric and day the sum over the ids mapped to it.

    Rows without an ``account_key`` (id not mapped yet) are left out. ``kind`` is the
    tenant's declared kind, else ``stock`` (issue #4).
    """
    kinds = F.create_map(*[F.lit(x) for kv in sorted(rules.kinds.items()) for x in kv]) if rules.kinds else None
    kind = F.coalesce(F.element_at(kinds, F.col("metric")), F.lit(DEFAULT_KIND)) if kinds is not None else F.lit(DEFAULT_KIND)
    return (
        metric_cells(records.where(F.col("account_key").isNotNull()))
        .groupBy("tenant_id", "account_key", "metric", "metric_date")
        .agg(F.sum("value").alias("value"), F.countDistinct("source_id").alias("sources"))
        .select("tenant_id", "account_key", "metric", "metric_date", "value", kind.alias("kind"), "sources")
    )


def weekly_metrics(daily: DataFrame) -> DataFrame:
    """``account_metrics_weekly`` rows from ``account_metrics`` rows (see module docstring).

    Every week present in ``daily`` gets a row per account and metric; ``week_change``
    of a week is only right when ``daily`` also holds the whole previous week.
    """
    weekly = (
        daily.withColumn("week_start", monday(F.col("metric_date")))
        .groupBy("tenant_id", "account_key", "metric", "week_start")
        .agg(
            F.max_by("value", "metric_date").alias("value"),
            F.max_by("kind", "metric_date").alias("kind"),
            F.countDistinct("metric_date").alias("days_reported"),
        )
    )
    previous = Window.partitionBy("tenant_id", "account_key", "metric").orderBy("week_start")
    consecutive = F.lag("week_start").over(previous) == F.date_sub(F.col("week_start"), 7)
    change = F.when(
        (F.col("kind") == "cumulative") & consecutive, F.col("value") - F.lag("value").over(previous)
    )
    return weekly.select(
        "tenant_id", "account_key", "metric", "week_start", "value", "kind",
        F.col("days_reported").cast("bigint").alias("days_reported"), change.alias("week_change"),
    )


def with_accounts(records: DataFrame, rules: TenantMetrics, mapping: DataFrame | None) -> DataFrame:
    """Add ``account_key``: the id itself, or its ``entity_map`` account (NULL when unmapped)."""
    if rules.entity_map_source is None:
        return records.withColumn("account_key", F.col("source_id"))
    if mapping is None:
        return records.withColumn("account_key", F.lit(None).cast("string"))
    links = mapping.where(F.col("source_system") == F.lit(rules.entity_map_source)).select(
        "tenant_id", "source_id", "account_key"
    )
    return records.join(links, on=["tenant_id", "source_id"], how="left")


def column_drift(files: DataFrame) -> DataFrame:
    """Per metric file: the tenant's previous file (by file date, then path) and the columns
    the file adds (``new_columns``) or lacks (``missing_columns``) compared with it.

    ``files``: rows of ``metric_files`` (``columns`` a JSON array). Columns of the output:
    tenant_id, source_file, file_date, previous_file, new_columns, missing_columns.
    """
    cols = F.from_json(F.col("columns"), "array<string>")
    order = Window.partitionBy("tenant_id").orderBy(F.col("file_date").asc_nulls_first(), "source_file")
    with_previous = files.select(
        "tenant_id", "source_file", "file_date", cols.alias("cols"),
        F.lag("source_file").over(order).alias("previous_file"),
        F.lag(cols).over(order).alias("previous_cols"),
    )
    return with_previous.select(
        "tenant_id", "source_file", "file_date", "previous_file",
        F.when(F.col("previous_file").isNotNull(), F.array_sort(F.array_except("cols", "previous_cols"))).alias("new_columns"),
        F.when(F.col("previous_file").isNotNull(), F.array_sort(F.array_except("previous_cols", "cols"))).alias("missing_columns"),
    )


def weeks_of(df: DataFrame, day_column: str) -> list[date]:
    """The Mondays of the weeks a DataFrame's dates fall in (a small collect)."""
    return sorted(r["w"] for r in df.select(monday(F.col(day_column)).alias("w")).distinct().collect() if r["w"])


class MetricsHook(IngestHook):
    """Keeps account_metrics / account_metrics_weekly in step with metric_records, reports drift.

    * after ``metric_records`` is merged: recompute the touched weeks;
    * after ``metric_files`` is merged: report column drift of the batch's files;
    * after ``entity_map`` is merged: recompute the weeks of records whose id was
      (re)mapped, so the order in which mappings and metrics arrive does not matter.

    Called once per table with the whole batch; the rules (metric kinds, id mapping)
    are per tenant, so the refresh still loops over the batch's tenants (their
    derived-table writes are per tenant: remaining work of issue 12).
    """

    def __init__(self, config: FeedlakeConfig):
        stream: StreamSpec | None = config.streams.get(STREAM)
        self.settings: MetricsSettings | None = parse_settings(stream.options) if stream else None
        self.enabled = self.settings is not None and all(
            t in config.tables for t in ("metric_records", "metric_files", "account_metrics", "account_metrics_weekly")
        )

    @classmethod
    def from_conf(cls, config: FeedlakeConfig, conf_dir: str | None) -> MetricsHook:
        return cls(config)

    def after_merge(self, context: HookContext, stream: StreamSpec, table: str, source: DataFrame) -> None:
        if not self.enabled or table not in ("metric_records", "metric_files", ENTITY_MAP):
            return
        for tenant_id in batch_tenants(source):
            self._after_merge(context, tenant_id, table, source.where(F.col("tenant_id") == F.lit(tenant_id)))

    def _after_merge(self, context: HookContext, tenant_id: str, table: str, source: DataFrame) -> None:
        if table == "metric_records":
            self.refresh(context, tenant_id, self._batch_weeks(context, tenant_id, source))
        elif table == "metric_files":
            self._drift(context, tenant_id, source)
        elif table == ENTITY_MAP:
            self._remapped(context, tenant_id, source)

    @staticmethod
    def _report(context: HookContext, tenant_id: str) -> dict[str, Any]:
        return context.summary("metrics", tenant_id)

    def _rules(self, tenant_id: str) -> TenantMetrics:
        assert self.settings is not None
        return self.settings.for_tenant(tenant_id)

    def _mapping(self, context: HookContext, tenant_id: str) -> DataFrame | None:
        if ENTITY_MAP not in context.config.tables:
            return None
        table = context.config.table(ENTITY_MAP)
        missing = [c for c in ENTITY_MAP_COLUMNS if c not in table.column_names]
        if missing:
            raise ConfigError(f"table entity_map lacks columns {missing}: metric ids cannot be mapped to accounts")
        return context.engine.read(table, [tenant_id])

    def _batch_weeks(self, context: HookContext, tenant_id: str, source: DataFrame) -> list[date]:
        """The weeks a batch of metric_records touches; undeclared metrics and unmapped ids are reported."""
        rules = self._rules(tenant_id)
        names = F.explode_outer(F.map_keys(F.from_json("metrics", "map<string,double>")))
        rows = source.select(monday(F.col("metric_date")).alias("w"), names.alias("m")).distinct().collect()
        entry = self._report(context, tenant_id)
        undeclared = sorted({r["m"] for r in rows if r["m"] and r["m"] not in rules.kinds})
        if undeclared:
            entry["undeclared_metrics_as_stock"] = undeclared
        if rules.entity_map_source is not None:
            mapped = with_accounts(source, rules, self._mapping(context, tenant_id))
            entry["unmapped_ids"] = mapped.where(F.col("account_key").isNull()).select("source_id").distinct().count()
        return sorted({r["w"] for r in rows if r["w"]})

    def refresh(self, context: HookContext, tenant_id: str, weeks: list[date]) -> None:
        """Recompute the daily slices of ``weeks`` and the weekly slices of ``weeks`` and the week after."""
        if not weeks:
            return
        config, engine = context.config, context.engine
        rules = self._rules(tenant_id)
        read = Slices.of_weeks("metric_date", around(weeks, before=1, after=1))
        records = engine.read(config.table("metric_records"), [tenant_id], within=read)
        daily = daily_metrics(with_accounts(records, rules, self._mapping(context, tenant_id)), rules).persist()
        day_slices = Slices.of_weeks("metric_date", weeks)
        week_slices = Slices.of_weeks("week_start", around(weeks, after=1))
        in_days = day_slices.condition()
        in_weeks = week_slices.condition()
        writes = [
            replace_slices(engine, config.table("account_metrics"), tenant_id, daily.where(in_days), day_slices),
            replace_slices(
                engine, config.table("account_metrics_weekly"), tenant_id, weekly_metrics(daily).where(in_weeks), week_slices
            ),
        ]
        daily.unpersist()
        entry = self._report(context, tenant_id)
        entry["weeks_recomputed"] = sorted({*entry.get("weeks_recomputed", []), *(w.isoformat() for w in weeks)})
        entry["writes"] = [*entry.get("writes", []), *(str(w) for w in writes)]
        log.info("metrics %s: weeks %s recomputed: %s", tenant_id, [w.isoformat() for w in weeks], "; ".join(map(str, writes)))

    def _drift(self, context: HookContext, tenant_id: str, source: DataFrame) -> None:
        rules = self._rules(tenant_id)
        sent = {r["source_file"]: json.loads(r["columns"]) for r in source.select("source_file", "columns").collect()}
        files = context.engine.read(context.config.table("metric_files"), [tenant_id])
        drift = []
        for r in column_drift(files).orderBy("file_date", "source_file").collect():
            if r["source_file"] not in sent or not (r["new_columns"] or r["missing_columns"]):
                continue
            new = list(r["new_columns"])
            loaded = [c for c in new if c not in rules.reserved and (c in rules.kinds or rules.undeclared_columns == "ingest")]
            drift.append({
                "file": r["source_file"], "previous_file": r["previous_file"],
                "new_columns": new, "new_columns_loaded": loaded, "missing_columns": list(r["missing_columns"]),
            })
        kept = sorted({
            c for columns in sent.values() for c in columns
            if c not in rules.reserved and c not in rules.kinds and rules.undeclared_columns == "keep"
        })
        entry = self._report(context, tenant_id)
        if drift:
            entry["column_drift"] = drift
            for d in drift:
                log.warning("metrics %s: column drift in %s vs %s: new %s (loaded %s), missing %s", tenant_id,
                            d["file"], d["previous_file"], d["new_columns"], d["new_columns_loaded"], d["missing_columns"])
        if kept:
            entry["undeclared_columns_not_loaded"] = kept

    def _remapped(self, context: HookContext, tenant_id: str, source: DataFrame) -> None:
        rules = self._rules(tenant_id)
        if rules.entity_map_source is None:
            return
        ids = source.where(F.col("source_system") == rules.entity_map_source).select("tenant_id", "source_id").distinct()
        # The records of the remapped ids, matched by a semi-join (no id is rendered as SQL text).
        records = context.engine.read_matching(context.config.table("metric_records"), ids, ["tenant_id", "source_id"])
        weeks = set(weeks_of(records, "metric_date"))
        self.refresh(context, tenant_id, sorted(weeks))

