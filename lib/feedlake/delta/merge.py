"""Merge semantics, declared once as data and rendered for both Delta engines.

A :class:`MergePlan` says what a MERGE does — which key matches incoming (``s``) and
stored (``t``) rows, which tenant partitions and slices it may touch, what happens to
a matched row — without any SQL text. Each engine renders it: delta-spark to
:class:`pyspark.sql.Column` expressions (:func:`render_column`), delta-rs to a
DataFusion predicate (:func:`render_sql`) that compares columns of ``s`` and ``t`` only.

**No SQL text is built from data** (issue #11): record values, file names and headers
only ever reach a MERGE as rows of its source DataFrame, matched column to column. The
only literals rendered into delta-rs text are values the code controls and checks
first (:func:`code_literal`): tenant ids (validated by the landing layout, and again
here), run ids, dates and integers of slice ranges.

Policies (``conf/tables.yaml``):

* ``row``: match on the key; a matched row is replaced only when the incoming one
  has a higher or equal sequence (seed 000 FAQ: the most recent batch wins; see
  :mod:`feedlake.rules.dedupe`), so replaying an older batch changes nothing. An equal
  sequence means the same file and line: a file rewritten in place (re-read because
  its size/mtime/ETag changed) replaces what its previous version wrote.
* ``attribute``: rows were already resolved attribute by attribute against the stored
  ones (:func:`feedlake.rules.dedupe.resolve_attributes`); matched rows are replaced.
* ``replace``: bookkeeping tables (quarantine, manifest); the incoming row replaces
  the stored one. Keys may be NULL there (a file-level quarantine row has no line),
  hence the null-safe comparison.

A plan with an ``action`` column (:data:`ACTION`) takes upserts and deletes in one
MERGE, hence one commit (issue 12 item 3): a source row whose action is
:data:`DELETE` deletes its matched stored row and is never inserted; any other row
follows the plan's ``matched`` and ``insert``.

Every plan is scoped to the tenant partitions of its batch (``t.tenant_id IN (...)``),
so a MERGE reads only those tenants' files and the key match on ``tenant_id`` means
one tenant's rows can never match another's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from feedlake.settings.config import TableSpec

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

# What a literal rendered into delta-rs SQL text may look like: tenant ids (landing
# layout: letters, digits, ``_ . -``), ``*`` (all tenants), run ids (``20240601T101500Z-1a2b3c4d``).
_CODE_LITERAL = re.compile(r"[A-Za-z0-9_.:*-]{1,128}")
WEEK = timedelta(days=7)


class UnsafeLiteralError(ValueError):
    """A value that is not one the code controls was about to be rendered as SQL text."""


def code_literal(value: str) -> str:
    """A SQL string literal of a code-controlled identifier (tenant id, run id).

    Refuses anything outside ``[A-Za-z0-9_.:*-]``: no quote, backslash, space, comment
    marker or line break can reach a predicate, whichever SQL dialect reads it.

    >>> code_literal("acme-eu.1")
    "'acme-eu.1'"
    >>> code_literal("x' OR 1=1 --")
    Traceback (most recent call last):
    ...
    feedlake.delta.merge.UnsafeLiteralError: refusing to render "x' OR 1=1 --" as SQL text: only [A-Za-z0-9_.:*-] identifiers are
    """
    if not isinstance(value, str) or not _CODE_LITERAL.fullmatch(value):
        raise UnsafeLiteralError(f"refusing to render {value!r} as SQL text: only [A-Za-z0-9_.:*-] identifiers are")
    return f"'{value}'"


@dataclass(frozen=True)
class Ranges:
    """Half-open ``[lo, hi)`` day ranges of one column (dates, or Unix seconds of UTC midnights).

    Rendered as literals the code computes (dates and integers), so a MERGE, DELETE or
    read of a few weeks skips every file whose min/max statistics lie outside them.

    >>> Ranges("metric_date", ((date(2024, 3, 4), date(2024, 3, 11)),)).sql("t.")
    "(t.metric_date >= DATE '2024-03-04' AND t.metric_date < DATE '2024-03-11')"
    """

    column: str
    ranges: tuple[tuple[date, date], ...]
    unix_seconds: bool = False  # the column holds Unix seconds, not dates

    @classmethod
    def of_weeks(cls, column: str, weeks: Iterable[date], unix_seconds: bool = False) -> Ranges:
        return cls(column, tuple(week_ranges(weeks)), unix_seconds)

    def _value(self, day: date) -> date | int:
        return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) if self.unix_seconds else day

    def bounds(self) -> list[tuple[date | int, date | int]]:
        """Each ``[lo, hi)`` as values of the column: dates, or Unix seconds of UTC midnights.

        >>> Ranges("ts", ((date(2024, 3, 4), date(2024, 3, 11)),), unix_seconds=True).bounds()
        [(1709510400, 1710115200)]
        """
        return [(self._value(lo), self._value(hi)) for lo, hi in self.ranges]

    def _bound(self, day: date) -> str:
        value = self._value(day)
        return str(value) if self.unix_seconds else f"DATE '{value.isoformat()}'"

    def sql(self, alias: str = "") -> str:
        parts = [
            f"({alias}{self.column} >= {self._bound(lo)} AND {alias}{self.column} < {self._bound(hi)})"
            for lo, hi in self.ranges
        ]
        return " OR ".join(parts) if parts else "FALSE"

    def condition(self, alias: str = "") -> Column:
        """The same ranges as a Column expression (delta-spark, DataFrame filters)."""
        column = F.col(f"{alias}{self.column}")
        out = F.lit(False)
        for low, high in self.bounds():
            out = out | ((column >= F.lit(low)) & (column < F.lit(high)))
        return out


def week_ranges(weeks: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive Mondays merged into half-open ``[first Monday, Monday after last)`` ranges.

    >>> week_ranges([date(2024, 3, 11), date(2024, 3, 4), date(2024, 4, 1)])
    [(datetime.date(2024, 3, 4), datetime.date(2024, 3, 18)), (datetime.date(2024, 4, 1), datetime.date(2024, 4, 8))]
    """
    ranges: list[tuple[date, date]] = []
    for week in sorted(set(weeks)):
        if ranges and ranges[-1][1] == week:
            ranges[-1] = (ranges[-1][0], week + WEEK)
        else:
            ranges.append((week, week + WEEK))
    return ranges


MATCHED_ACTIONS = ("update", "update_if_newer", "delete", "ignore")
ACTION = "_action"  # the source column of a plan that upserts and deletes in one MERGE
DELETE = "delete"  # its value on the rows that delete their stored row


@dataclass(frozen=True)
class MergePlan:
    """What a MERGE does, as data (see module rules); render with :func:`render_sql` / :func:`render_column`.

    ``on``: columns compared between ``t`` and ``s`` (null-safe when ``null_safe``);
    ``differ``: ``(target column, source column)`` pairs that must differ for a match;
    ``tenants``: the target partitions the MERGE may touch; ``target_equals``:
    code-controlled ``(column, value)`` constants of the target (e.g. the run id);
    ``within``: slice ranges of the target; ``matched``: what happens to a matched row;
    ``action``: the source column whose :data:`DELETE` rows delete their match instead.
    """

    table: str
    on: tuple[str, ...]
    tenants: tuple[str, ...]
    null_safe: bool = False
    matched: str = "update"
    insert: bool = True
    differ: tuple[tuple[str, str], ...] = ()
    target_equals: tuple[tuple[str, str], ...] = ()
    within: Ranges | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        if self.matched not in MATCHED_ACTIONS:
            raise ValueError(f"matched {self.matched!r} not in {MATCHED_ACTIONS}")
        if self.action is not None and (self.matched == "delete" or self.action in self.on):
            raise ValueError(f"MERGE into {self.table}: an action column needs a non-delete plan and a non-key column")
        if not self.on:
            raise ValueError(f"MERGE into {self.table}: no key columns to match on")
        for value in (*self.tenants, *(v for _, v in self.target_equals)):
            code_literal(value)  # fail at build time, not half-way through a run

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The source columns the plan compares: its key, then the ``differ`` source columns."""
        return tuple(dict.fromkeys([*self.on, *(b for _, b in self.differ)]))

    def with_within(self, within: Ranges | None) -> MergePlan:
        return replace(self, within=within)

    def with_deletes(self) -> MergePlan:
        """The same plan, also deleting the stored row of every source row whose :data:`ACTION` is :data:`DELETE`."""
        return replace(self, action=ACTION)


def plan_for(table: TableSpec, tenants: str | Sequence[str]) -> MergePlan:
    """The MERGE of a batch of ``tenants``' rows into ``table`` under the table's policy."""
    scope = (tenants,) if isinstance(tenants, str) else tuple(sorted(set(tenants)))
    return MergePlan(
        table=table.name,
        on=table.key,
        tenants=scope,
        null_safe=table.policy == "replace",
        matched="update_if_newer" if table.policy == "row" else "update",
    )


def delete_plan(
    table: TableSpec,
    on: Sequence[str],
    tenants: Sequence[str],
    differ: Sequence[tuple[str, str]] = (),
    within: Ranges | None = None,
    null_safe: bool = False,
) -> MergePlan:
    """Delete the stored rows that match a row of a DataFrame of keys (a MERGE ... WHEN MATCHED DELETE).

    This is how every data-driven delete runs (issue #11): the values to delete are rows
    of the source, never text in a predicate.
    """
    if "tenant_id" not in on:
        raise ValueError("a delete must match tenant_id: one tenant's keys never delete another's rows")
    return MergePlan(
        table=table.name, on=tuple(on), tenants=tuple(sorted(set(tenants))), null_safe=null_safe, matched="delete",
        insert=False, differ=tuple(differ), within=within,
    )


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def render_sql(plan: MergePlan) -> tuple[str, str | None]:
    """delta-rs: ``(predicate, matched-update predicate)`` as DataFusion SQL over aliases ``s``/``t``.

    >>> from feedlake.settings.config import TableSpec
    >>> t = TableSpec("e", (("tenant_id", "string"), ("k", "string"), ("_seq", "string")), ("tenant_id", "k"), "row")
    >>> render_sql(plan_for(t, ["b", "a"]))
    ("t.tenant_id IN ('a', 'b') AND t.`tenant_id` = s.`tenant_id` AND t.`k` = s.`k`", 's._seq >= t._seq')
    """
    parts = [f"t.tenant_id IN ({', '.join(code_literal(t) for t in plan.tenants)})" if plan.tenants else "FALSE"]
    parts += [f"t.{_quote(c)} = {code_literal(v)}" for c, v in plan.target_equals]
    for c in plan.on:
        parts.append(f"(t.{_quote(c)} IS NOT DISTINCT FROM s.{_quote(c)})" if plan.null_safe else f"t.{_quote(c)} = s.{_quote(c)}")
    parts += [f"t.{_quote(a)} <> s.{_quote(b)}" for a, b in plan.differ]
    if plan.within is not None:
        parts.append(f"({plan.within.sql('t.')})")
    update = "s._seq >= t._seq" if plan.matched == "update_if_newer" else None
    return " AND ".join(parts), update


def render_column(plan: MergePlan) -> tuple[Column, Column | None]:
    """delta-spark: the same plan as Column expressions over aliases ``s``/``t`` (no SQL text at all)."""
    condition = F.col("t.tenant_id").isin(list(plan.tenants)) if plan.tenants else F.lit(False)
    for c, v in plan.target_equals:
        condition = condition & (F.col(f"t.{_quote(c)}") == F.lit(v))
    for c in plan.on:
        target, source = F.col(f"t.{_quote(c)}"), F.col(f"s.{_quote(c)}")
        condition = condition & (target.eqNullSafe(source) if plan.null_safe else target == source)
    for a, b in plan.differ:
        condition = condition & (F.col(f"t.{_quote(a)}") != F.col(f"s.{_quote(b)}"))
    if plan.within is not None:
        condition = condition & plan.within.condition("t.")
    update = F.col("s._seq") >= F.col("t._seq") if plan.matched == "update_if_newer" else None
    return condition, update


def render_action_sql(plan: MergePlan) -> tuple[str, str]:
    """delta-rs: ``(delete, keep)`` predicates over ``s`` of a plan with an ``action`` column.

    ``delete`` selects the source rows that delete their match; ``keep`` every other
    row (a NULL action included), the only ones that may update or be inserted.
    """
    if plan.action is None:
        raise ValueError(f"MERGE into {plan.table}: the plan has no action column")
    column = f"s.{_quote(plan.action)}"
    return f"{column} = '{DELETE}'", f"{column} IS DISTINCT FROM '{DELETE}'"


def render_action_column(plan: MergePlan) -> tuple[Column, Column]:
    """delta-spark: :func:`render_action_sql`'s predicates as Column expressions."""
    if plan.action is None:
        raise ValueError(f"MERGE into {plan.table}: the plan has no action column")
    deleting = F.col(f"s.{_quote(plan.action)}").eqNullSafe(F.lit(DELETE))
    return deleting, ~deleting


def render_assignments(columns: Sequence[str]) -> dict[str, Column]:
    """delta-spark: ``column -> s.column`` for explicit update/insert clauses (a source with more columns than the table)."""
    return {c: F.col(f"s.{_quote(c)}") for c in columns}


def source_with_deletes(table: TableSpec, upserts: DataFrame, doomed: DataFrame) -> DataFrame:
    """One MERGE source (for a plan :meth:`~MergePlan.with_deletes`) that upserts ``upserts`` and
    deletes the stored rows of ``doomed``'s keys.

    A write that moves or replaces rows (an entity-map move, the quarantine of a changed
    file) is one commit (issue 12 item 3): the keys to drop ride along as rows whose
    :data:`ACTION` is :data:`DELETE`, every other column null. A key both dropped and
    upserted is an upsert only (compared null-safe, as a ``replace`` key matches), so
    no two source rows name one stored row.
    """
    key = list(table.key)
    types = dict(table.columns)
    dropped = doomed.select(*key).distinct().alias("d")
    kept = upserts.select(*key).alias("u")
    same = [F.col(f"d.{_quote(c)}").eqNullSafe(F.col(f"u.{_quote(c)}")) for c in key]
    leaving = dropped.join(kept, on=same, how="left_anti")
    deletes = leaving.select(
        *[F.col(f"d.{_quote(c)}").alias(c) if c in key else F.lit(None).cast(types[c]).alias(c) for c in table.column_names],
        F.lit(DELETE).alias(ACTION),
    )
    return upserts.select(*table.column_names, F.lit(None).cast("string").alias(ACTION)).unionByName(deletes)


# --- the per-tenant split of one multi-tenant MERGE's counts ---------------------------

SPLIT_BY_TENANT = ("tenant_id",)
GroupCounts = dict[tuple[str, ...], tuple[int, int]]  # values of the split columns → (inserted, updated)


def _split_columns(plan: MergePlan, by: Sequence[str] = ()) -> list[str]:
    columns = [*plan.on, *(["_seq"] if plan.matched == "update_if_newer" else [])]
    return [*columns, *(c for c in by if c not in columns)]


def split_frame(plan: MergePlan, source: DataFrame, stored: DataFrame, by: Sequence[str] = SPLIT_BY_TENANT) -> DataFrame:
    """Per group of ``by`` (tenant by default), the rows a MERGE of ``source`` under ``plan`` inserts and updates.

    One MERGE writes every tenant (and every stream) of a batch (issue 12 item 3) while
    the run report counts per tenant and stream, so its metrics are split by replaying
    the plan's match on the keys alone, before the commit: a source row with no stored
    row on ``plan.on`` (null-safe under ``null_safe``) is inserted (when the plan
    inserts), one with a stored row is updated — under ``update_if_newer`` only when
    its ``_seq`` is not older, never under ``ignore``/``delete``. Rows: the ``by``
    columns, ``inserted``, ``updated``. :func:`split_arrow` is the same rule on Arrow
    tables; ``stored`` needs only the key columns (and ``_seq``).
    """
    columns = _split_columns(plan)
    s = source.select(*_split_columns(plan, by)).alias("s")
    t = stored.select(*columns, F.lit(True).alias("_stored")).alias("t")
    condition = None
    for c in plan.on:
        left, right = F.col(f"s.{_quote(c)}"), F.col(f"t.{_quote(c)}")
        term = left.eqNullSafe(right) if plan.null_safe else left == right
        condition = term if condition is None else condition & term
    joined = s.join(t, on=condition, how="left")
    matched = F.col("t._stored").isNotNull()
    inserted = ~matched if plan.insert else F.lit(False)
    if plan.matched in ("ignore", "delete"):
        updated = F.lit(False)
    elif plan.matched == "update_if_newer":
        updated = matched & (F.col("s._seq") >= F.col("t._seq"))
    else:
        updated = matched
    return joined.groupBy(*[F.col(f"s.{_quote(c)}").alias(c) for c in by]).agg(
        F.sum(inserted.cast("bigint")).alias("inserted"), F.sum(updated.cast("bigint")).alias("updated"),
    )


def split_arrow(plan: MergePlan, source: pa.Table, stored: pa.Table, by: Sequence[str] = SPLIT_BY_TENANT) -> GroupCounts:
    """:func:`split_frame`'s rule on Arrow tables (delta-rs, whose MERGE source is already Arrow): no Spark job.

    >>> import pyarrow as pa
    >>> from feedlake.settings.config import TableSpec
    >>> t = TableSpec("e", (("tenant_id", "string"), ("k", "string"), ("_seq", "string")), ("tenant_id", "k"), "row")
    >>> src = pa.table({"tenant_id": ["a", "a", "b"], "k": ["1", "2", "1"], "_seq": ["2", "1", "1"]})
    >>> old = pa.table({"tenant_id": ["a", "a"], "k": ["1", "2"], "_seq": ["1", "9"]})
    >>> split_arrow(plan_for(t, ["a", "b"]), src, old)
    {('a',): (0, 1), ('b',): (1, 0)}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = _split_columns(plan)

    def keyed(data: pa.Table, prefix: str) -> tuple[pa.Table, list[str]]:
        # Arrow's hash join never matches nulls: under null_safe, a null becomes a flag
        # column plus an empty text (every key type casts to text), so null matches null
        # as in the MERGE and never a stored empty string (their flags differ).
        out, keys = {}, []
        for c in plan.on:
            col = data.column(c)
            if plan.null_safe:
                out[f"n:{c}"] = pc.is_null(col)
                keys.append(f"n:{c}")
                col = pc.fill_null(pc.cast(col, pa.string()), "")
            out[c] = col
            keys.append(c)
        if "_seq" in columns:
            out[f"{prefix}_seq"] = data.column("_seq")
        return pa.table(out), keys

    left, keys = keyed(source.select(columns), "s")
    groups = [f"g:{c}" for c in by]
    for c, g in zip(by, groups, strict=True):
        left = left.append_column(g, source.column(c))
    right, _ = keyed(stored.select(columns), "t")
    right = right.append_column("_stored", pa.array([True] * right.num_rows, pa.bool_()))
    joined = left.join(right, keys=keys, join_type="left outer")
    matched = pc.is_valid(joined.column("_stored"))
    never = pa.array([False] * joined.num_rows, pa.bool_())
    inserted = pc.invert(matched) if plan.insert else never
    if plan.matched in ("ignore", "delete"):
        updated = never
    elif plan.matched == "update_if_newer":
        updated = pc.fill_null(pc.and_kleene(matched, pc.greater_equal(joined.column("s_seq"), joined.column("t_seq"))),
                               False)
    else:
        updated = matched
    counts = pa.table({
        **{g: joined.column(g) for g in groups},
        "inserted": pc.cast(inserted, pa.int64()), "updated": pc.cast(updated, pa.int64()),
    }).group_by(groups).aggregate([("inserted", "sum"), ("updated", "sum")])
    keys_of = zip(*(counts.column(g).to_pylist() for g in groups), strict=True)
    return {
        tuple(k): (int(i), int(u))
        for k, i, u in zip(keys_of, counts.column("inserted_sum").to_pylist(),
                           counts.column("updated_sum").to_pylist(), strict=True)
    }
