"""Customer moments (seed 002 "MadKudu-created customer moments", issue 17 item 1).

A moment ("ready to buy", "upsell opportunity", "at risk", ...) is declared as data in
``conf/moments.yaml``: a list of conditions that must all hold for a contact, each over a
table feedlake already keeps (profile fields of ``contacts`` / the contact's ``accounts``
row, the contact's ``activity_weekly`` weeks, its account's ``account_metrics_weekly``
weeks). The vocabulary is small and validated (:func:`parse_moments`): table, column,
``where`` equalities, ``weeks``, aggregate, comparison and threshold. Conditions are
compiled to Spark :class:`~pyspark.sql.Column` expressions (:func:`condition_value`,
:func:`compare`); no conf value ever becomes SQL text.

The ``moments`` Delta table holds who is in which moment since when
(:func:`update_moments`): a contact **entering** a moment writes a row (``is_active``,
``entered_at``, ``entries`` + 1); **staying** writes nothing; **leaving** writes
``is_active = false`` and ``left_at``; leaving and re-entering is a new entry. So the
table's change feed holds exactly the entries, which :mod:`feedlake.export.segment` sends as
``track`` calls named ``mk_<moment>`` with the time the moment began (seed 002).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.delta.merge import plan_for
from feedlake.settings.config import ConfigError, FeedlakeConfig, TableSpec, read_yaml
from feedlake.settings.session import local_frame, release, union_all
from feedlake.settings.tables import ACCOUNT_METRICS_WEEKLY, ACCOUNTS, ACTIVITY_WEEKLY, CONTACT_ACCOUNTS, CONTACTS, MOMENTS

SPEC = "seed 002"
PROFILE_TABLES = (CONTACTS, ACCOUNTS)
WEEKLY_TABLES = (ACTIVITY_WEEKLY, ACCOUNT_METRICS_WEEKLY)
TABLES = PROFILE_TABLES + WEEKLY_TABLES
WEEKLY_AGGREGATES = ("sum", "max", "min", "avg", "count")
PROFILE_AGGREGATES = ("value", "days_until", "days_since")
OPS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "is_null", "not_null")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_CONDITION_KEYS = {"table", "column", "where", "weeks", "aggregate", "op", "value"}


@dataclass(frozen=True)
class Condition:
    """One rule of a moment: ``aggregate(column of table [where ...] over weeks) op value``."""

    table: str
    column: str
    op: str
    value: Any = None
    aggregate: str = "value"
    weeks: int = 0
    where: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Moment:
    """A named moment: every condition must hold for the contact."""

    name: str
    conditions: tuple[Condition, ...]
    description: str = ""

    @property
    def event(self) -> str:
        """The Segment track event name (seed 002: ``mk_ready_to_buy``)."""
        return f"mk_{self.name}"


@dataclass(frozen=True)
class MomentsConf:
    """The default moment set and per-tenant sets (conf/moments.yaml)."""

    default: tuple[Moment, ...]
    tenants: Mapping[str, tuple[Moment, ...]]

    def for_tenant(self, tenant: str) -> tuple[Moment, ...]:
        return self.tenants.get(tenant, self.default)


def _condition(where: str, raw: Any, tables: Mapping[str, TableSpec]) -> Condition:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with table, column, op")
    unknown = sorted(set(raw) - _CONDITION_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(_CONDITION_KEYS)}")
    table = raw.get("table")
    if table not in TABLES:
        raise ConfigError(f"{where}: table {table!r} not in {TABLES}")
    spec = tables.get(table)
    if spec is None:
        raise ConfigError(f"{where}: table {table!r} is not declared in tables.yaml")
    columns = set(spec.column_names)
    column = raw.get("column")
    if column not in columns:
        raise ConfigError(f"{where}: column {column!r} is not a column of {table}")
    weekly = table in WEEKLY_TABLES
    aggregate = raw.get("aggregate", "sum" if weekly else "value")
    allowed = WEEKLY_AGGREGATES if weekly else PROFILE_AGGREGATES
    if aggregate not in allowed:
        raise ConfigError(f"{where}: aggregate {aggregate!r} not in {allowed} for table {table}")
    weeks = raw.get("weeks", 0)
    if weekly:
        if not isinstance(weeks, int) or isinstance(weeks, bool) or not 1 <= weeks <= 520:
            raise ConfigError(f"{where}: weeks must be a whole number from 1 to 520 for {table}, got {weeks!r}")
    elif "weeks" in raw:
        raise ConfigError(f"{where}: weeks only applies to {WEEKLY_TABLES}")
    filters = raw.get("where") or {}
    if not isinstance(filters, Mapping) or any(c not in columns for c in filters):
        raise ConfigError(f"{where}: where must map columns of {table} to values, got {filters!r}")
    if any(isinstance(v, (Mapping, list)) or v is None for v in filters.values()):
        raise ConfigError(f"{where}: where values must be single strings, numbers or booleans")
    op = raw.get("op")
    if op not in OPS:
        raise ConfigError(f"{where}: op {op!r} not in {OPS}")
    value = raw.get("value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or any(isinstance(v, (Mapping, list)) for v in value):
            raise ConfigError(f"{where}: op {op} needs a non-empty list of plain values")
        value = tuple(value)
    elif op in ("is_null", "not_null"):
        if value is not None:
            raise ConfigError(f"{where}: op {op} takes no value")
    elif value is None or isinstance(value, (Mapping, list)):
        raise ConfigError(f"{where}: op {op} needs a single value")
    return Condition(table, column, op, value, aggregate, weeks if weekly else 0, tuple(sorted(filters.items())))


def _moment_set(where: str, raw: Any, tables: Mapping[str, TableSpec]) -> dict[str, Moment]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of moment name -> definition")
    out: dict[str, Moment] = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: moment name {name!r} must be lower_snake_case ([a-z][a-z0-9_]*)")
        if not isinstance(body, Mapping) or not isinstance(body.get("all"), list) or not body["all"]:
            raise ConfigError(f"{where}.{name}: expected 'all:' with at least one condition")
        conditions = tuple(_condition(f"{where}.{name}.all[{i}]", c, tables) for i, c in enumerate(body["all"]))
        out[name] = Moment(name, conditions, str(body.get("description", "")))
    return out


def parse_moments(raw: Mapping[str, Any], tables: Mapping[str, TableSpec]) -> MomentsConf:
    """Validate conf/moments.yaml (vocabulary in the module doc) into a :class:`MomentsConf`."""
    unknown = sorted(set(raw) - {"default", "tenants"})
    if unknown:
        raise ConfigError(f"moments: unknown key(s) {unknown}; known: default, tenants")
    default = _moment_set("moments.default", raw.get("default") or {}, tables)
    tenants: dict[str, tuple[Moment, ...]] = {}
    for tenant, body in (raw.get("tenants") or {}).items():
        where = f"moments.tenants.{tenant}"
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: expected a mapping with moments (and optionally extends: default)")
        extends = body.get("extends")
        if extends not in (None, "default"):
            raise ConfigError(f"{where}: extends must be 'default' or absent, got {extends!r}")
        own = _moment_set(where, body.get("moments") or {}, tables)
        merged = {**(default if extends == "default" else {}), **own}
        tenants[str(tenant)] = tuple(merged.values())
    return MomentsConf(tuple(default.values()), tenants)


def load_moments(conf_dir: str | Path | None, config: FeedlakeConfig) -> MomentsConf:
    """conf/moments.yaml of ``conf_dir`` (default: the packaged conf), validated against the tables."""
    base = Path(conf_dir) if conf_dir else resources.files("feedlake.conf")
    path = base / "moments.yaml"
    if not path.is_file():
        return MomentsConf((), {})
    return parse_moments(read_yaml(path), config.tables)


def as_of_day(setting: Any, today: date | None = None) -> date:
    """``export.as_of``: ``today`` (UTC) or a day ``YYYY-MM-DD``."""
    if setting in (None, "today"):
        return today or datetime.now(timezone.utc).date()
    if isinstance(setting, date):
        return setting
    try:
        return date.fromisoformat(str(setting))
    except ValueError:
        raise ConfigError(f"export.as_of: expected 'today' or YYYY-MM-DD, got {setting!r}") from None


def week_window(as_of: date, weeks: int) -> tuple[date, date]:
    """Mondays ``[first, last]`` of the ``weeks`` weeks ending with the week of ``as_of``."""
    last = as_of - timedelta(days=as_of.weekday())
    return last - timedelta(days=7 * (weeks - 1)), last


def compare(value: Column, condition: Condition) -> Column:
    """``value op threshold`` as a Column (the threshold a bound literal, never SQL text); NULL is false."""
    op, v = condition.op, condition.value
    if op == "is_null":
        return value.isNull()
    if op == "not_null":
        return value.isNotNull()
    if op in ("in", "not_in"):
        test = value.isin(list(v))
        return F.coalesce(test if op == "in" else ~test, F.lit(False))
    literal = F.lit(v)
    test = {
        "eq": value == literal, "ne": value != literal, "gt": value > literal,
        "ge": value >= literal, "lt": value < literal, "le": value <= literal,
    }[op]
    return F.coalesce(test, F.lit(False))


def _filtered(frame: DataFrame, condition: Condition) -> DataFrame:
    for column, value in condition.where:
        frame = frame.where(F.col(column) == F.lit(value))
    return frame


def _aggregate(condition: Condition) -> Column:
    column = F.col(condition.column)
    return {
        "sum": F.sum(column), "max": F.max(column), "min": F.min(column), "avg": F.avg(column),
        "count": F.count(F.lit(1)),
    }[condition.aggregate]


def condition_value(condition: Condition, subjects: DataFrame, tables: Mapping[str, DataFrame], as_of: date) -> DataFrame:
    """``subjects`` (tenant_id, contact_key, account_key) with the condition's value as ``_v``.

    Profile tables give the column's value (or whole days from ``as_of`` to / since it);
    weekly tables the aggregate over the window, per contact (activity_weekly) or per
    account (account_metrics_weekly); ``sum`` and ``count`` are 0 for a subject without rows.
    """
    table = condition.table
    if table in PROFILE_TABLES:
        key = "contact_key" if table == CONTACTS else "account_key"
        value = F.col(condition.column)
        if condition.aggregate == "days_until":
            value = F.datediff(F.to_date(value), F.lit(as_of))
        elif condition.aggregate == "days_since":
            value = F.datediff(F.lit(as_of), F.to_date(value))
        values = _filtered(tables[table], condition).select("tenant_id", key, value.alias("_v"))
    else:
        key = "contact_key" if table == ACTIVITY_WEEKLY else "account_key"
        first, last = week_window(as_of, condition.weeks)
        rows = _filtered(tables[table], condition).where(F.col("week_start").between(F.lit(first), F.lit(last)))
        values = rows.groupBy("tenant_id", key).agg(_aggregate(condition).alias("_v"))
    joined = subjects.join(values, on=["tenant_id", key], how="left")
    if condition.aggregate in ("sum", "count"):
        joined = joined.withColumn("_v", F.coalesce(F.col("_v"), F.lit(0)))
    return joined


def membership(
    moments: MomentsConf, tenants: Sequence[str], tables: Mapping[str, DataFrame], as_of: date
) -> DataFrame:
    """Who is in which moment now: rows (tenant_id, contact_key, moment) for ``tenants``.

    Subjects are the tenants' identified contacts (anonymous visitors are not sent
    moments), with their account from ``contact_accounts``. Each tenant gets its own
    moment set (``tenants.<id>``) or the default one.
    """
    contacts = tables[CONTACTS].where(~F.coalesce(F.col("is_anonymous"), F.lit(False)))
    links = tables[CONTACT_ACCOUNTS].select("tenant_id", "contact_key", "account_key")
    subjects = contacts.select("tenant_id", "contact_key").join(links, on=["tenant_id", "contact_key"], how="left")
    overridden = [t for t in tenants if t in moments.tenants]
    groups: list[tuple[list[str], tuple[Moment, ...]]] = [([t], moments.tenants[t]) for t in overridden]
    rest = [t for t in tenants if t not in moments.tenants]
    if rest:
        groups.append((rest, moments.default))
    found: list[DataFrame] = []
    for scope, moment_set in groups:
        scoped = subjects.where(F.col("tenant_id").isin(scope))
        for moment in moment_set:
            members = scoped
            for condition in moment.conditions:
                valued = condition_value(condition, members, tables, as_of)
                members = valued.where(compare(F.col("_v"), condition)).drop("_v")
            found.append(members.select("tenant_id", "contact_key", F.lit(moment.name).alias("moment")))
    if not found:
        return local_frame(subjects.sparkSession, [], "tenant_id string, contact_key string, moment string")
    return union_all(found).distinct()


def moment_changes(current: DataFrame, stored: DataFrame, now: datetime) -> DataFrame:
    """The rows to write into ``moments``: entries (new or re-entered) and exits; staying writes nothing."""
    table_cols = ["tenant_id", "contact_key", "moment", "is_active", "entered_at", "left_at", "entries", "evaluated_at"]
    key = ["tenant_id", "contact_key", "moment"]
    at = F.lit(now).cast("timestamp")
    s = stored.select(*key, F.col("is_active").alias("_was"), F.col("entered_at").alias("_entered"),
                      F.col("entries").alias("_entries"))
    entering = (
        current.join(s, on=key, how="left")
        .where(~F.coalesce(F.col("_was"), F.lit(False)))
        .select(*key, F.lit(True).alias("is_active"), at.alias("entered_at"), F.lit(None).cast("timestamp").alias("left_at"),
                (F.coalesce(F.col("_entries"), F.lit(0)) + 1).cast("bigint").alias("entries"), at.alias("evaluated_at"))
    )
    leaving = (
        s.where(F.col("_was")).join(current, on=key, how="left_anti")
        .select(*key, F.lit(False).alias("is_active"), F.col("_entered").alias("entered_at"), at.alias("left_at"),
                F.col("_entries").alias("entries"), at.alias("evaluated_at"))
    )
    return entering.unionByName(leaving).select(*table_cols)


@dataclass(frozen=True)
class MomentsUpdate:
    """What one evaluation wrote: contacts entering and leaving moments."""

    entered: int = 0
    left: int = 0
    entered_by_tenant: Mapping[str, int] = field(default_factory=dict)


def update_moments(
    engine, config: FeedlakeConfig, moments: MomentsConf, tenants: Sequence[str], as_of: date, now: datetime,
    write: bool = True,
) -> MomentsUpdate:
    """Evaluate the moments of ``tenants`` and MERGE entries and exits into ``moments``."""
    if not tenants:
        return MomentsUpdate()
    # Every moment's branch and condition refers to these reads: each is resolved once.
    tables = {name: engine.read_pinned(config.table(name), list(tenants)) for name in (*TABLES, CONTACT_ACCOUNTS)}
    try:
        current = membership(moments, tenants, tables, as_of)
        spec = config.table(MOMENTS)
        changes = moment_changes(current, engine.read(spec, list(tenants)), now).persist()
        try:
            # (tenant, entering/leaving) counts: tenants × 2 rows
            counts = changes.groupBy("tenant_id", "is_active").agg(F.count(F.lit(1)).alias("n")).collect()
            if write and counts:
                engine.ensure(spec)
                engine.merge(spec, changes, plan_for(spec, list(tenants)))
        finally:
            changes.unpersist()
    finally:
        for frame in tables.values():
            release(frame)
    entered = {r["tenant_id"]: int(r["n"]) for r in counts if r["is_active"]}
    return MomentsUpdate(sum(entered.values()), sum(int(r["n"]) for r in counts if not r["is_active"]), entered)
