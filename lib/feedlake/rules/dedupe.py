"""Deduplication and precedence: which record of a key wins, in a batch and across batches.

Every record carries ``_seq``, a sortable text built by :func:`sequence`: the time its
file landed, its path and its line. The record with the **higher** ``_seq`` wins,
always, so the outcome does not depend on the order in which batches are processed:

* seed 000 FAQ: "If sent in two separate batches: only the most recent will be kept"
  → the landing time leads the sequence;
* "If sent in the same data batch, first one in the file" → for streams with
  ``precedence: first`` the line number is inverted, so the first line sorts highest;
  ``precedence: last`` (identify, group: "we'll use the latest one") keeps it as is.

Tables with the ``attribute`` policy (contacts, accounts) resolve each attribute on
its own: the non-null value with the highest sequence wins, so a later record that
omits ``email`` does not erase it. Sequences of each attribute are kept in
``_attr_seq`` so an older batch arriving late cannot overwrite newer values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from feedlake.rules.contracts import parse_properties, render_properties

LINE_DIGITS = 10
MAX_LINE = 10**LINE_DIGITS - 1
LINEAGE_COLUMNS = ("_seq", "_batch_id", "_source_file", "_line_number")
PROPERTY_PREFIX = "p:"
COLUMN_PREFIX = "c:"


def sequence(landing_time: Column, source_file: Column, line_number: Column, precedence: str) -> Column:
    """The ordering text of a record (see module docstring)."""
    line = line_number if precedence == "last" else F.lit(MAX_LINE) - line_number
    return F.concat_ws(
        " ",
        F.date_format(landing_time, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"),
        source_file,
        F.lpad(F.coalesce(line, F.lit(0)).cast("string"), LINE_DIGITS, "0"),
    )


def rank_by_seq(df: DataFrame, key: Sequence[str], rank: str = "_rank") -> DataFrame:
    """``df`` plus ``rank``: 1 for the row of each key with the highest ``_seq``, 2, 3, ... for the others.

    The one ordering rule of the module docstring (seed 000 FAQ: the most recent record
    wins; within a file the first or the last line, by the stream's precedence). Used
    for the in-batch rank of every target table, :func:`latest_per_key` and Segment's
    message copies.
    """
    window = Window.partitionBy(*key).orderBy(F.col("_seq").desc())
    return df.withColumn(rank, F.row_number().over(window))


def latest_per_key(df: DataFrame, key: Sequence[str]) -> DataFrame:
    """Keep the row with the highest ``_seq`` for each key (:func:`rank_by_seq` == 1)."""
    return rank_by_seq(df, key).where(F.col("_rank") == 1).select(*df.columns)


def with_stored(
    candidate: DataFrame, stored: DataFrame, key: Sequence[str], flag: str, how: str, compare: Sequence[str] | None = None
) -> tuple[DataFrame, Column]:
    """``candidate`` joined (``how``) on ``key`` with the stored row of its key; and "the row is unchanged".

    The stored row's columns come as ``_old_<column>`` plus ``flag`` (true where a stored
    row was found); the Column compares the ``compare`` columns (default: every non-key
    column of ``candidate``) null-safely: a null equals a null, so an attribute that stays
    unknown is no change. The one row diff of the cross-batch dedupe and the slice tables.
    """
    others = list(compare) if compare is not None else [c for c in candidate.columns if c not in key]
    old = stored.select(*key, *[F.col(c).alias(f"_old_{c}") for c in others], F.lit(True).alias(flag))
    same = F.lit(True)
    for c in others:
        same = same & F.col(c).eqNullSafe(F.col(f"_old_{c}"))
    return candidate.join(old, on=list(key), how=how), same


def _cells_from_incoming(incoming: DataFrame, key: Sequence[str], attributes: Sequence[str]) -> DataFrame:
    entries = [F.struct(F.lit(COLUMN_PREFIX + a).alias("attr"), F.col(a).alias("value")) for a in attributes]
    props = F.transform(
        F.map_entries(F.coalesce(F.col("props"), F.create_map().cast("map<string,string>"))),
        lambda e: F.struct(F.concat(F.lit(PROPERTY_PREFIX), e["key"]).alias("attr"), e["value"].alias("value")),
    )
    cells = F.concat(F.array(*entries), props) if entries else props
    return (
        incoming.select(*key, "_seq", F.explode(cells).alias("cell"))
        .select(
            *key, F.col("cell.attr").alias("attr"), F.col("cell.value").alias("value"), F.col("_seq").alias("seq"),
            F.lit(1).alias("origin"),
        )
        .where(F.col("value").isNotNull())
    )


def _cells_from_existing(existing: DataFrame, key: Sequence[str], attributes: Sequence[str]) -> DataFrame:
    seqs = F.from_json(F.coalesce(F.col("_attr_seq"), F.lit("{}")), "map<string,string>")
    entries = [F.struct(F.lit(COLUMN_PREFIX + a).alias("attr"), F.col(a).alias("value")) for a in attributes]
    props = F.transform(
        F.map_entries(parse_properties(F.col("properties"))),
        lambda e: F.struct(F.concat(F.lit(PROPERTY_PREFIX), e["key"]).alias("attr"), e["value"].alias("value")),
    )
    cells = F.concat(F.array(*entries), props) if entries else props
    return (
        existing.select(*key, "_seq", seqs.alias("seqs"), F.explode(cells).alias("cell"))
        .select(
            *key,
            F.col("cell.attr").alias("attr"),
            F.col("cell.value").alias("value"),
            F.coalesce(F.try_element_at(F.col("seqs"), F.col("cell.attr")), F.col("_seq")).alias("seq"),
            F.lit(0).alias("origin"),
        )
        .where(F.col("value").isNotNull())
    )


def resolve_attributes(
    incoming: DataFrame,
    existing: DataFrame,
    key: Sequence[str],
    attributes: Sequence[str],
    columns: Sequence[str],
    derive: Callable[[DataFrame], DataFrame] | None = None,
) -> DataFrame:
    """Merge incoming records with stored rows attribute by attribute.

    On equal sequences (the same file and line: a file rewritten in place and read
    again) the incoming value wins.

    ``incoming``: key, ``attributes``, ``props`` (map attribute → JSON text) and the
    lineage columns; ``existing``: rows of the target table. Returns one row per key of
    ``incoming`` in the table's column order, only where it differs from the stored row.
    ``derive`` adds the columns computed from the resolved row (e.g. seed 004 profile
    fields read from ``properties``, see :func:`feedlake.rules.profiles.profile_columns`).
    """
    existing_keys = existing.join(incoming.select(*key).distinct(), on=list(key), how="inner")
    cells = _cells_from_incoming(incoming, key, attributes).unionByName(
        _cells_from_existing(existing_keys, key, attributes)
    )
    winners = (
        cells.groupBy(*key, "attr")
        .agg(F.max_by("value", F.struct("seq", "origin")).alias("value"), F.max("seq").alias("seq"))
        .groupBy(*key)
        .agg(
            F.map_from_entries(F.collect_list(F.struct("attr", "value"))).alias("vals"),
            F.map_from_entries(F.array_sort(F.collect_list(F.struct("attr", "seq")))).alias("seqs"),
        )
    )
    lineage = (
        incoming.select(*key, *LINEAGE_COLUMNS, F.lit(1).alias("origin"))
        .unionByName(existing_keys.select(*key, *LINEAGE_COLUMNS, F.lit(0).alias("origin")))
        .groupBy(*key)
        .agg(F.max_by(F.struct(*LINEAGE_COLUMNS), F.struct("_seq", "origin")).alias("lin"))
    )
    props = F.transform_keys(
        F.map_filter(F.col("vals"), lambda k, _v: k.startswith(PROPERTY_PREFIX)), lambda k, _v: F.substring(k, len(PROPERTY_PREFIX) + 1, 10_000)
    )
    resolved = lineage.join(winners, on=list(key), how="left").select(
        *key,
        *[F.col("vals").getItem(COLUMN_PREFIX + a).alias(a) for a in attributes],
        render_properties(props).alias("properties"),
        F.to_json(F.coalesce(F.col("seqs"), F.create_map().cast("map<string,string>"))).alias("_attr_seq"),
        *[F.col("lin").getItem(c).alias(c) for c in LINEAGE_COLUMNS],
    )
    resolved = (derive(resolved) if derive else resolved).select(*columns)
    return changed_rows(resolved, existing_keys.select(*columns), key)


def changed_rows(candidate: DataFrame, existing: DataFrame, key: Sequence[str]) -> DataFrame:
    """Rows of ``candidate`` that are new or differ (null-safe) from the stored row of their key."""
    joined, same = with_stored(candidate, existing, key, "_old", how="left")
    return joined.where(F.col("_old").isNull() | ~same).select(*candidate.columns)
