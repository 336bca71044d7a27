"""Derived tables maintained slice by slice: recompute only what a batch touched.

A derived table (weekly metrics, weekly activity) is a function of its source table.
Rebuilding it from the whole history on every run would make each run cost the
history; instead a run recomputes the (tenant, week) **slices** its batch touched, from
the source rows of those weeks only, and replaces them (issue #4):

* the source is read with a SQL predicate on the week ranges, which lets the Delta
  engine skip every file whose min/max statistics lie outside them;
* the recomputed rows are compared with the stored rows of the same slices and only
  new or changed rows are merged; the MERGE condition repeats the slice ranges as
  literals so the target's other files are skipped too;
* stored rows of the slices that the recomputation no longer produces are deleted, in
  the same MERGE (one commit per table per run).

Because a slice is always recomputed from the source table's current state, the
result does not depend on batch order, re-sent records or reruns: a rerun recomputes
the same rows and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaEngine
from feedlake.delta.merge import ACTION, DELETE, WEEK, Ranges, plan_for
from feedlake.rules.dedupe import with_stored
from feedlake.settings.config import TableSpec


def monday(day: Column) -> Column:
    """The Monday on or before a date: ISO weeks start on Monday (dayofweek: 1 = Sunday)."""
    return F.date_sub(day, (F.dayofweek(day) + 5) % 7)


def utc_day(unix_seconds: Column) -> Column:
    """The UTC calendar day of a Unix time in seconds, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(unix_seconds / 86400).cast("int"))


def iso_week(week_start: Column) -> Column:
    """``YYYY-Www`` of the ISO week starting on ``week_start`` (its year is the Thursday's)."""
    return F.format_string("%04d-W%02d", F.year(F.date_add(week_start, 3)), F.weekofyear(week_start))


def around(weeks: Iterable[date], before: int = 0, after: int = 0) -> set[date]:
    """The given weeks plus ``before`` weeks before and ``after`` weeks after each."""
    return {w + k * WEEK for w in weeks for k in range(-before, after + 1)}


# The slice ranges of a derived table: one definition, in feedlake.delta.merge (MERGE plans carry them).
Slices = Ranges


@dataclass(frozen=True)
class SliceWrite:
    """What replacing some slices of a derived table changed."""

    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def __str__(self) -> str:
        return f"{self.table} +{self.inserted} ~{self.updated} -{self.deleted}"


def slice_diff(fresh: DataFrame, stored: DataFrame, key: Sequence[str]) -> DataFrame:
    """What turns ``stored`` into ``fresh``, in one pass: ``fresh``'s columns plus :data:`ACTION`.

    ``upsert``: a row of ``fresh`` that is new or differs (null-safe) from the stored row
    of its key; ``delete``: a stored key that ``fresh`` no longer has (only the key
    columns are set). Rows that are the same are left out.
    """
    others = [c for c in fresh.columns if c not in key]
    flagged = fresh.withColumn("_fresh", F.lit(True))
    joined, same = with_stored(flagged, stored, key, "_stored", how="full_outer", compare=others)
    action = (
        F.when(F.col("_fresh").isNull(), F.lit(DELETE))
        .when(F.col("_stored").isNull() | ~same, F.lit("upsert"))
    )
    return joined.select(*fresh.columns, action.alias(ACTION)).where(F.col(ACTION).isNotNull())


def _tenants(tenants: str | Sequence[str]) -> list[str]:
    """One tenant id or several (a run's batch: one write for all its tenants, issue 12)."""
    return [tenants] if isinstance(tenants, str) else sorted(set(tenants))


def _apply(
    engine: DeltaEngine, table: TableSpec, tenant_id: str | Sequence[str], diff: DataFrame, slices: Slices | None
) -> SliceWrite:
    """Write a :func:`slice_diff` in one MERGE, hence one commit (issue 12 item 3).

    Its ``upsert`` rows update or insert, its ``delete`` rows delete their stored row:
    the diff is the MERGE's source (no key is rendered as SQL text, issue #11) and the
    slice ranges ride along as code-computed literals so files outside them are skipped.
    """
    plan = plan_for(table, _tenants(tenant_id)).with_within(slices).with_deletes()
    written = engine.merge(table, diff, plan)
    return SliceWrite(table.name, written.inserted, written.updated, written.deleted)


def replace_slices(
    engine: DeltaEngine, table: TableSpec, tenant_id: str | Sequence[str], rows: DataFrame, slices: Slices
) -> SliceWrite:
    """Make the ``slices`` of one tenant (or of each of several) in ``table`` hold exactly ``rows``.

    ``rows`` must be the complete recomputation of those slices (and nothing outside
    them). Only new or changed rows are merged and only vanished rows deleted, so
    replacing a slice with what it already holds writes nothing.
    """
    stored = engine.read(table, _tenants(tenant_id), within=slices).select(*table.column_names)
    return _apply(engine, table, tenant_id, slice_diff(rows.select(*table.column_names), stored, table.key), slices)


def upsert_rows(
    engine: DeltaEngine, table: TableSpec, tenant_id: str | Sequence[str], rows: DataFrame, stored: DataFrame
) -> SliceWrite:
    """Merge the rows of ``rows`` that differ from ``stored`` (the stored rows of the same keys)."""
    diff = slice_diff(rows.select(*table.column_names), stored.select(*table.column_names), table.key)
    return _apply(engine, table, tenant_id, diff.where(F.col(ACTION) == "upsert"), None)
