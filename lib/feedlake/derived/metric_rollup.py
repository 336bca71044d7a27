"""Account metrics by day and by week, derived from ``metric_records`` (issue #4, seed 003).

``metric_records`` holds what tenants sent (one row per id and day, latest batch
wins). From it, per (tenant, week) slice touched by a batch (see :mod:`feedlake.derived.slices`):

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

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from feedlake.derived.slices import Slices, around, monday, replace_slices
from feedlake.ingest.hooks import HookContext, IngestHook
from feedlake.settings.config import ConfigError, FeedlakeConfig, StreamSpec
from feedlake.settings.tables import ACCOUNT_METRICS, ACCOUNT_METRICS_WEEKLY, ENTITY_MAP, METRIC_FILES, METRIC_RECORDS
from feedlake.streams.metrics import DEFAULT_KIND, MetricsSettings, TenantMetrics, parse_settings, per_tenant

log = logging.getLogger("feedlake.streams.metrics")

STREAM = "metrics"
ENTITY_MAP_COLUMNS = ("source_system", "source_id", "account_key")


def metric_cells(records: DataFrame) -> DataFrame:
    """``metric_records`` rows (with ``account_key``) → one row per account, metric, day and id."""
    values = F.from_json(F.col("metrics"), "map<string,double>")
    return records.select(
        "tenant_id", "account_key", "source_id", "metric_date", F.explode(values).alias("metric", "value")
    ).where(F.col("value").isNotNull()).select("tenant_id", "account_key", "source_id", "metric", "metric_date", "value")


def as_settings(rules: TenantMetrics | MetricsSettings) -> MetricsSettings:
    """One tenant's rules as settings that apply them to every tenant; settings unchanged."""
    return rules if isinstance(rules, MetricsSettings) else MetricsSettings(defaults=rules)


def metric_kind(rules: TenantMetrics) -> Column:
    """The declared kind of the row's ``metric`` under one tenant's rules, else ``stock``."""
    if not rules.kinds:
        return F.lit(DEFAULT_KIND)
    kinds = F.create_map(*[F.lit(x) for kv in sorted(rules.kinds.items()) for x in kv])
    return F.coalesce(F.element_at(kinds, F.col("metric")), F.lit(DEFAULT_KIND))


def daily_metrics(records: DataFrame, rules: TenantMetrics | MetricsSettings) -> DataFrame:
    """``account_metrics`` rows: per account, metric and day the sum over the ids mapped to it.

    Rows without an ``account_key`` (id not mapped yet) are left out. ``kind`` is the
    row's tenant's declared kind, else ``stock`` (issue #4): every tenant of a batch in
    one pass (the rules of each are a Column, :func:`feedlake.streams.metrics.per_tenant`).
    """
    kind = per_tenant(as_settings(rules), metric_kind)
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


def with_accounts(records: DataFrame, rules: TenantMetrics | MetricsSettings, mapping: DataFrame | None) -> DataFrame:
    """Add ``account_key``: the id itself, or its ``entity_map`` account (NULL when unmapped).

    A tenant whose rules name an ``entity_map`` source system resolves ids through the
    mapping rows of that system; the others keep the id. ``mapping``: ``entity_map`` rows
    (at least those of the records' ids), or ``None`` when there are none.
    """
    settings = as_settings(rules)
    if all(r.entity_map_source is None for r in (settings.defaults, *settings.tenants.values())):
        return records.withColumn("account_key", F.col("source_id"))
    system = per_tenant(settings, lambda r: F.lit(r.entity_map_source).cast("string"))
    marked = records.withColumn("_map_system", system)
    if mapping is None:
        mapped = marked.withColumn("_mapped", F.lit(None).cast("string"))
    else:
        links = mapping.select(
            "tenant_id", F.col("source_system").alias("_map_system"), "source_id", F.col("account_key").alias("_mapped")
        )
        mapped = marked.join(links, on=["tenant_id", "_map_system", "source_id"], how="left")
    account = F.when(F.col("_map_system").isNull(), F.col("source_id")).otherwise(F.col("_mapped"))
    return mapped.select(*records.columns, account.alias("account_key"))


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


class MetricsHook(IngestHook):
    """Keeps account_metrics / account_metrics_weekly in step with metric_records, reports drift.

    * after ``metric_records`` is merged: recompute the touched weeks;
    * after ``metric_files`` is merged: report column drift of the batch's files;
    * after ``entity_map`` is merged: recompute the weeks of records whose id was
      (re)mapped, so the order in which mappings and metrics arrive does not matter.

    Called once per table with the whole batch, every tenant at once (issue 12: cost
    follows the data): the per-tenant rules (metric kinds, id mapping) are Columns, so
    each derived table gets one read and one write for all the batch's tenants, over the
    union of their weeks. A tenant's slice of a week only another tenant touched is
    recomputed from what is stored and so writes nothing.
    """

    def __init__(self, config: FeedlakeConfig):
        stream: StreamSpec | None = config.streams.get(STREAM)
        self.settings: MetricsSettings | None = parse_settings(stream.options) if stream else None
        self.enabled = self.settings is not None and all(
            t in config.tables for t in (METRIC_RECORDS, METRIC_FILES, ACCOUNT_METRICS, ACCOUNT_METRICS_WEEKLY)
        )

    @classmethod
    def from_conf(cls, config: FeedlakeConfig, conf_dir: str | None) -> MetricsHook:
        return cls(config)

    def after_merge(self, context: HookContext, stream: StreamSpec, table: str, source: DataFrame) -> None:
        if not self.enabled:
            return
        if table == METRIC_RECORDS:
            self.refresh(context, self._batch_weeks(context, source))
        elif table == METRIC_FILES:
            self._drift(context, source)
        elif table == ENTITY_MAP:
            self._remapped(context, source)

    @property
    def _rules(self) -> MetricsSettings:
        assert self.settings is not None
        return self.settings

    def _mapping(self, context: HookContext, records: DataFrame) -> DataFrame | None:
        """The ``entity_map`` rows of the records' ids (a semi-join: batch-sized, issue 12 item 4)."""
        if ENTITY_MAP not in context.config.tables:
            return None
        table = context.config.table(ENTITY_MAP)
        missing = [c for c in ENTITY_MAP_COLUMNS if c not in table.column_names]
        if missing:
            raise ConfigError(f"table entity_map lacks columns {missing}: metric ids cannot be mapped to accounts")
        return context.engine.read_matching(table, records.select("tenant_id", "source_id"), ["tenant_id", "source_id"])

    def _batch_weeks(self, context: HookContext, source: DataFrame) -> dict[str, list[date]]:
        """Per tenant, the weeks a batch of metric_records touches; undeclared metrics and unmapped ids are reported."""
        names = F.explode_outer(F.map_keys(F.from_json("metrics", "map<string,double>")))
        rows = source.select("tenant_id", monday(F.col("metric_date")).alias("w"), names.alias("m")).distinct().collect()
        weeks: dict[str, set[date]] = {}
        metrics: dict[str, set[str]] = {}
        for r in rows:
            weeks.setdefault(r["tenant_id"], set()).update([r["w"]] if r["w"] else [])
            metrics.setdefault(r["tenant_id"], set()).update([r["m"]] if r["m"] else [])
        for tenant, seen in sorted(metrics.items()):
            undeclared = sorted(m for m in seen if m not in self._rules.for_tenant(tenant).kinds)
            if undeclared:
                context.summary("metrics", tenant)["undeclared_metrics_as_stock"] = undeclared
        resolving = sorted(t for t in weeks if self._rules.for_tenant(t).entity_map_source is not None)
        if resolving:
            mapped = with_accounts(source, self._rules, self._mapping(context, source))
            unmapped = (
                mapped.where(F.col("account_key").isNull()).groupBy("tenant_id")
                .agg(F.countDistinct("source_id").alias("n")).collect()
            )
            counts = {r["tenant_id"]: r["n"] for r in unmapped}
            for tenant in resolving:
                context.summary("metrics", tenant)["unmapped_ids"] = counts.get(tenant, 0)
        return {t: sorted(w) for t, w in sorted(weeks.items())}

    def refresh(self, context: HookContext, weeks_by_tenant: dict[str, list[date]]) -> None:
        """Recompute the daily slices of the weeks and the weekly slices of the weeks and the week after: one write each."""
        weeks_by_tenant = {t: w for t, w in weeks_by_tenant.items() if w}
        if not weeks_by_tenant:
            return
        config, engine = context.config, context.engine
        tenants = sorted(weeks_by_tenant)
        weeks = sorted({w for ws in weeks_by_tenant.values() for w in ws})
        read = Slices.of_weeks("metric_date", around(weeks, before=1, after=1))
        records = engine.read(config.table(METRIC_RECORDS), tenants, within=read)
        daily = daily_metrics(with_accounts(records, self._rules, self._mapping(context, records)), self._rules).persist()
        day_slices = Slices.of_weeks("metric_date", weeks)
        week_slices = Slices.of_weeks("week_start", around(weeks, after=1))
        writes = [
            replace_slices(engine, config.table(ACCOUNT_METRICS), tenants, daily.where(day_slices.condition()), day_slices),
            replace_slices(
                engine, config.table(ACCOUNT_METRICS_WEEKLY), tenants,
                weekly_metrics(daily).where(week_slices.condition()), week_slices,
            ),
        ]
        daily.unpersist()
        for tenant, own in weeks_by_tenant.items():
            entry = context.summary("metrics", tenant)
            entry["weeks_recomputed"] = sorted({*entry.get("weeks_recomputed", []), *(w.isoformat() for w in own)})
            entry["writes"] = [*entry.get("writes", []), *(str(w) for w in writes)]
        log.info("metrics %s: weeks %s recomputed: %s", tenants, [w.isoformat() for w in weeks], "; ".join(map(str, writes)))

    def _drift(self, context: HookContext, source: DataFrame) -> None:
        """Column drift of the batch's metric files against each tenant's previous file (one read for all)."""
        sent: dict[str, dict[str, list[str]]] = {}
        for r in source.select("tenant_id", "source_file", "columns").collect():
            sent.setdefault(r["tenant_id"], {})[r["source_file"]] = json.loads(r["columns"])
        if not sent:
            return
        files = context.engine.read(context.config.table(METRIC_FILES), sorted(sent))
        drift: dict[str, list[dict[str, Any]]] = {}
        for r in column_drift(files).orderBy("tenant_id", "file_date", "source_file").collect():
            if r["source_file"] not in sent.get(r["tenant_id"], {}) or not (r["new_columns"] or r["missing_columns"]):
                continue
            rules = self._rules.for_tenant(r["tenant_id"])
            new = list(r["new_columns"])
            loaded = [c for c in new if c not in rules.reserved and (c in rules.kinds or rules.undeclared_columns == "ingest")]
            drift.setdefault(r["tenant_id"], []).append({
                "file": r["source_file"], "previous_file": r["previous_file"],
                "new_columns": new, "new_columns_loaded": loaded, "missing_columns": list(r["missing_columns"]),
            })
        for tenant, files_sent in sorted(sent.items()):
            rules = self._rules.for_tenant(tenant)
            kept = sorted({
                c for columns in files_sent.values() for c in columns
                if c not in rules.reserved and c not in rules.kinds and rules.undeclared_columns == "keep"
            })
            entry = context.summary("metrics", tenant)
            for d in drift.get(tenant, []):
                log.warning("metrics %s: column drift in %s vs %s: new %s (loaded %s), missing %s", tenant,
                            d["file"], d["previous_file"], d["new_columns"], d["new_columns_loaded"], d["missing_columns"])
            if drift.get(tenant):
                entry["column_drift"] = drift[tenant]
            if kept:
                entry["undeclared_columns_not_loaded"] = kept

    def _remapped(self, context: HookContext, source: DataFrame) -> None:
        """Recompute the weeks of the stored records whose id a batch mapping (re)maps, every tenant at once."""
        system = per_tenant(self._rules, lambda r: F.lit(r.entity_map_source).cast("string"))
        ids = source.where(F.col("source_system") == system).select("tenant_id", "source_id").distinct()
        # The records of the remapped ids, matched by a semi-join (no id is rendered as SQL text).
        records = context.engine.read_matching(context.config.table(METRIC_RECORDS), ids, ["tenant_id", "source_id"])
        weeks: dict[str, list[date]] = {}
        for r in records.select("tenant_id", monday(F.col("metric_date")).alias("w")).distinct().collect():
            if r["w"]:
                weeks.setdefault(r["tenant_id"], []).append(r["w"])
        self.refresh(context, {t: sorted(w) for t, w in weeks.items()})
