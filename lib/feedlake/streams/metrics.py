"""Metric exports (seed 003): wide daily/weekly files → one record per id and day.

Seed 003 ("How to Send Data to Hook using AWS S3") asks for CSV or JSONL time series,
"one row per account and date": an account id column (or a user/tenant id that can be
linked to an account), a ``metric_date`` column and one column per metric, with the
date repeated in the file name (``hook_export_20240301.csv`` ↔ ``2024-03-01``) and the
same column names in every export. This module holds the per-tenant rules
(``conf/metrics.yaml``, see :class:`TenantMetrics`) and the stream's mapper
:func:`metric_records`; the derived account tables live in :mod:`feedlake.derived.metric_rollup`.

A record is refused (quarantined, never half-loaded) when:

* its account column is missing or blank (``missing_required_field``);
* the file name carries no date (``missing_file_date``) or a date other than the
  record's ``metric_date`` (``metric_date_mismatch``): seed 003 "Timestamp of data";
* a metric cell is not a number (``invalid_type``; every bad cell is named).

Columns are matched by name (CSV header, JSON keys), so a missing or reordered column
never shifts a value into another metric; an empty cell or JSON ``null`` is no value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.rules.contracts import NUMBER, field_text, render_properties
from feedlake.settings.config import ConfigError, StreamSpec
from feedlake.settings.tables import METRIC_FILES, METRIC_RECORDS
from feedlake.streams.mappers import QUARANTINE_COLUMNS, REJECTED, lineage

KINDS = ("cumulative", "stock")
DEFAULT_KIND = "stock"
UNDECLARED = ("ingest", "keep")
DATE_COLUMN = "metric_date"
# A date in a file name: 20240301 or 2024-03-01, not part of a longer run of digits.
FILE_DATE = r"(?<![0-9])([0-9]{4})-?([0-9]{2})-?([0-9]{2})(?![0-9])"


@dataclass(frozen=True)
class TenantMetrics:
    """The rules for one tenant's metric files (``conf/metrics.yaml``)."""

    account_column: str = "account_id"
    entity_map_source: str | None = None
    kinds: Mapping[str, str] = field(default_factory=dict)
    undeclared_columns: str = "ingest"
    ignore_columns: tuple[str, ...] = ()

    def kind(self, metric: str) -> str:
        """The declared kind of a metric; undeclared metrics are ``stock`` (issue #4)."""
        return self.kinds.get(metric, DEFAULT_KIND)

    @property
    def reserved(self) -> tuple[str, ...]:
        """Columns that are never metrics: the account column, the date, ignored columns."""
        return (self.account_column, DATE_COLUMN, *self.ignore_columns)


@dataclass(frozen=True)
class MetricsSettings:
    """Defaults plus per-tenant overrides."""

    defaults: TenantMetrics = field(default_factory=TenantMetrics)
    tenants: Mapping[str, TenantMetrics] = field(default_factory=dict)

    def for_tenant(self, tenant_id: str) -> TenantMetrics:
        return self.tenants.get(tenant_id, self.defaults)


def _tenant_rules(where: str, raw: Mapping[str, Any], base: TenantMetrics | None) -> TenantMetrics:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"metrics conf {where}: expected a mapping")
    known = {"account_column", "entity_map", "metrics", "undeclared_columns", "ignore_columns"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"metrics conf {where}: unknown keys {unknown} (known: {sorted(known)})")
    base = base or TenantMetrics()
    kinds = dict(base.kinds)
    for metric, kind in (raw.get("metrics") or {}).items():
        if kind not in KINDS:
            raise ConfigError(f"metrics conf {where}: metric {metric!r} has kind {kind!r}, expected one of {KINDS}")
        kinds[str(metric)] = kind
    undeclared = raw.get("undeclared_columns", base.undeclared_columns)
    if undeclared not in UNDECLARED:
        raise ConfigError(f"metrics conf {where}: undeclared_columns {undeclared!r} not in {UNDECLARED}")
    entity_map = raw.get("entity_map", {"source_system": base.entity_map_source} if base.entity_map_source else None)
    if entity_map is not None and not (isinstance(entity_map, Mapping) and entity_map.get("source_system")):
        raise ConfigError(f"metrics conf {where}: entity_map must be {{source_system: <name>}}")
    account_column = str(raw.get("account_column", base.account_column))
    if account_column == DATE_COLUMN:
        raise ConfigError(f"metrics conf {where}: account_column cannot be {DATE_COLUMN}")
    return TenantMetrics(
        account_column=account_column,
        entity_map_source=str(entity_map["source_system"]) if entity_map else None,
        kinds=kinds,
        undeclared_columns=undeclared,
        ignore_columns=tuple(str(c) for c in raw.get("ignore_columns", base.ignore_columns) or ()),
    )


def parse_settings(options: Mapping[str, Any]) -> MetricsSettings:
    """Build :class:`MetricsSettings` from the stream's options (``conf/metrics.yaml``).

    >>> s = parse_settings({"tenants": {"acme": {"metrics": {"logins": "cumulative"}}}})
    >>> s.for_tenant("acme").kind("logins"), s.for_tenant("acme").kind("seats"), s.for_tenant("other").account_column
    ('cumulative', 'stock', 'account_id')
    """
    defaults = _tenant_rules("defaults", options.get("defaults") or {}, None)
    tenants = options.get("tenants") or {}
    if not isinstance(tenants, Mapping):
        raise ConfigError("metrics conf: tenants must map tenant id → rules")
    return MetricsSettings(
        defaults=defaults,
        tenants={str(t): _tenant_rules(f"tenant {t!r}", body or {}, defaults) for t, body in tenants.items()},
    )


def per_tenant(settings: MetricsSettings, pick: Callable[[TenantMetrics], Column]) -> Column:
    """A column whose value is ``pick(rules of the row's tenant)``."""
    expr = pick(settings.defaults)
    for tenant, rules in sorted(settings.tenants.items()):
        expr = F.when(F.col("tenant_id") == F.lit(tenant), pick(rules)).otherwise(expr)
    return expr


def _names(names: tuple[str, ...] | list[str]) -> Column:
    return F.array(*[F.lit(n) for n in names]) if names else F.array().cast("array<string>")


def file_date(source_file: Column) -> Column:
    """The date in a file's name (not its folders), or NULL (seed 003: ``hook_export_20240301``)."""
    name = F.regexp_extract(source_file, r"([^/]+)$", 1)
    parts = [F.regexp_extract(name, FILE_DATE, i) for i in (1, 2, 3)]
    return F.to_date(F.try_to_timestamp(F.concat_ws("-", *parts), F.lit("yyyy-MM-dd")))


def _failures(checks: list[tuple[Column, str, Column]]) -> tuple[Column, Column]:
    code = F.coalesce(*[F.when(failed, F.lit(c)) for failed, c, _ in checks])
    message = F.concat_ws("; ", *[F.when(failed, msg) for failed, _, msg in checks])
    return code, message


def metric_records(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """metrics → ``metric_records`` (one row per line), ``metric_files`` (column set per file), rejects.

    Rules of the line's tenant (``conf/metrics.yaml``): the account column is the
    record's ``source_id``; every other column except ``metric_date`` and the ignored
    ones is a metric, loaded when declared or when ``undeclared_columns: ingest``. Loaded
    metrics go to ``metrics`` (JSON object, numbers), everything else to ``properties``
    (original JSON types) so nothing sent is lost.
    """
    settings = parse_settings(stream.options)
    account_column = per_tenant(settings, lambda r: F.lit(r.account_column))
    reserved = per_tenant(settings, lambda r: _names(r.reserved))
    declared = per_tenant(settings, lambda r: _names(sorted(r.kinds)))
    load_all = per_tenant(settings, lambda r: F.lit(r.undeclared_columns == "ingest"))

    source_id = F.trim(F.col("values")[account_column])
    candidates = F.map_filter(F.col("values"), lambda k, _v: ~F.array_contains(reserved, k))
    loaded = F.map_filter(candidates, lambda k, _v: load_all | F.array_contains(declared, k))
    bad = F.filter(F.array_sort(F.map_entries(loaded)), lambda e: ~F.trim(e["value"]).rlike(NUMBER))
    numbers = F.transform_values(loaded, lambda _k, v: F.trim(v).cast("double"))
    spec = stream.spec or f"stream {stream.name}"
    dated = records.select(
        "*",
        account_column.alias("_account_column"),
        F.when(source_id != "", source_id).alias("_source_id"),
        F.to_date(field_text(DATE_COLUMN), "yyyy-MM-dd").alias("_metric_date"),
        file_date(F.col("source_file")).alias("_file_date"),
        F.map_keys(loaded).alias("_loaded"),
        bad.alias("_bad"),
        numbers.alias("_numbers"),
    )
    file_name = F.regexp_extract(F.col("source_file"), r"([^/]+)$", 1)
    code, message = _failures([
        (
            F.col("_source_id").isNull(),
            "missing_required_field",
            F.concat(
                F.lit("required field '"), F.col("_account_column"),
                F.lit(f"' (the tenant's account column, conf/metrics.yaml) is missing or empty ({spec}: "
                      "every row links to an account)"),
            ),
        ),
        (
            F.col("_file_date").isNull(),
            "missing_file_date",
            F.concat(
                F.lit("the file name '"), file_name,
                F.lit(f"' carries no date: name metric exports like hook_export_20240301.csv ({spec}, "
                      "'Timestamp of data')"),
            ),
        ),
        (
            F.col("_file_date").isNotNull() & (F.col("_file_date") != F.col("_metric_date")),
            "metric_date_mismatch",
            F.concat(
                F.lit("metric_date "), F.col("_metric_date").cast("string"), F.lit(" does not match the date "),
                F.col("_file_date").cast("string"), F.lit(" in the file name '"), file_name,
                F.lit(f"' ({spec}: the file name and the metric_date column carry the same date)"),
            ),
        ),
        (
            F.size("_bad") > 0,
            "invalid_type",
            F.concat(
                F.lit("metric columns must be numbers: "),
                F.array_join(
                    F.transform("_bad", lambda e: F.concat(F.lit("'"), e["key"], F.lit("' is '"),
                                                           F.substring(e["value"], 1, 64), F.lit("'"))),
                    ", ",
                ),
            ),
        ),
    ])
    checked = dated.select("*", code.alias("error_code_m"), message.alias("error_message_m"))

    rejected = checked.where(F.col("error_code_m").isNotNull()).select(
        "tenant_id", "stream", "source_file", "line_number", "raw_record",
        F.col("error_code_m").alias("error_code"), F.col("error_message_m").alias("error_message"), "batch_id",
    ).select(*QUARANTINE_COLUMNS)

    kept = F.map_filter(
        F.col("json_values"),
        lambda k, _v: ~F.array_contains(F.col("_loaded"), k) & (k != F.col("_account_column")) & (k != F.lit(DATE_COLUMN)),
    )
    rows = checked.where(F.col("error_code_m").isNull()).select(
        "tenant_id",
        F.col("_account_column").alias("id_column"),
        F.col("_source_id").alias("source_id"),
        F.col("_metric_date").alias("metric_date"),
        F.col("_file_date").alias("file_date"),
        F.to_json(F.map_from_entries(F.array_sort(F.map_entries("_numbers")))).alias("metrics"),
        render_properties(kept).alias("properties"),
        *lineage(),
    )

    files = checked.groupBy("tenant_id", "source_file").agg(
        F.first("_file_date", ignorenulls=True).alias("file_date"),
        F.to_json(F.array_sort(F.array_distinct(F.flatten(F.collect_list(F.map_keys("values")))))).alias("columns"),
        F.min("batch_id").alias("batch_id"),
        F.max("_seq").alias("_seq"),
    ).select("tenant_id", "source_file", "file_date", "columns", "batch_id", "_seq")
    return {METRIC_RECORDS: rows, METRIC_FILES: files, REJECTED: rejected}
