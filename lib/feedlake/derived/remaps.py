"""Entity-map moves (seed 004): a mapping that arrives after the rows it maps moves them.

After every MERGE of ``entity_map`` (:class:`EntityMapHook`), so the order of batches
does not matter: ``account_events`` rows of ``(source_system, source_account_id)`` move
to the canonical key (also when a mapping changes), and ``accounts`` rows still keyed by
the mapped source id are merged attribute by attribute (each attribute with its own
sequence) into the canonical account and removed. The mapping itself and how a record
resolves its account are in :mod:`feedlake.streams.entity_map` (the rules of the stream).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from feedlake.delta.merge import plan_for, source_with_deletes
from feedlake.ingest.hooks import HookContext, IngestHook, batch_tenants
from feedlake.rules.contracts import parse_properties
from feedlake.rules.dedupe import COLUMN_PREFIX, PROPERTY_PREFIX, latest_per_key, resolve_attributes
from feedlake.rules.profiles import profile_columns
from feedlake.settings.config import StreamSpec, TableSpec
from feedlake.settings.session import pinned, release, union_all
from feedlake.settings.tables import ACCOUNT_EVENTS, ACCOUNTS, ENTITY_MAP
from feedlake.streams.entity_map import MAP_KEY

STORAGE = StorageLevel.MEMORY_AND_DISK  # the hook's pinned frames: a batch's moved rows

log = logging.getLogger("feedlake.streams.entity_map")


def _under_source_ids(stored: DataFrame, mappings: DataFrame, id_column: str) -> DataFrame:
    """Stored rows whose ``(source_system, id_column)`` is a mapped source id, with ``_canonical``.

    Rows already under their canonical ``account_key`` are left out (seed 004: the
    mapping names the product account a CRM id stands for).
    """
    links = mappings.select(
        "tenant_id", "source_system", F.col("source_id").alias(id_column), F.col("account_key").alias("_canonical")
    )
    return stored.join(links, on=["tenant_id", "source_system", id_column], how="inner").where(
        F.col("account_key") != F.col("_canonical")
    )


def attribute_cells(rows: DataFrame, table: TableSpec, key: str, canonical: str) -> DataFrame:
    """Stored attribute-table rows as incoming rows under the key in column ``canonical``: one row per attribute,
    each with the sequence it was stored with (``_attr_seq``), so re-keying keeps precedence."""
    seqs = F.from_json(F.coalesce(F.col("_attr_seq"), F.lit("{}")), "map<string,string>")
    types = dict(table.columns)
    lineage_cols = [F.col(c) for c in ("_batch_id", "_source_file", "_line_number")]
    empty = F.create_map().cast("map<string,string>")
    base = rows.select("*", F.col(canonical).alias("_key_to"), seqs.alias("_seqs"))
    props = base.select("*", F.explode(F.map_entries(parse_properties(F.col("properties")))).alias("_cell")).select(
        "tenant_id",
        F.col("_key_to").alias(key),
        *[F.lit(None).cast(types[a]).alias(a) for a in table.attributes],
        F.create_map(F.col("_cell.key"), F.col("_cell.value")).alias("props"),
        F.coalesce(F.try_element_at(F.col("_seqs"), F.concat(F.lit(PROPERTY_PREFIX), F.col("_cell.key"))), F.col("_seq")).alias("_seq"),
        *lineage_cols,
    )
    cells = [props]
    for attribute in table.attributes:
        cells.append(
            base.where(F.col(attribute).isNotNull()).select(
                "tenant_id",
                F.col("_key_to").alias(key),
                *[(F.col(a) if a == attribute else F.lit(None).cast(types[a])).alias(a) for a in table.attributes],
                empty.alias("props"),
                F.coalesce(F.try_element_at(F.col("_seqs"), F.lit(COLUMN_PREFIX + attribute)), F.col("_seq")).alias("_seq"),
                *lineage_cols,
            )
        )
    return union_all(cells)


class EntityMapHook(IngestHook):
    """After ``entity_map`` is merged, move rows stored under a now-mapped source id (see module rules).

    Once per run for the whole batch (all tenants): one MERGE per moved table (upserts
    under the canonical keys and deletes of the old ones,
    :func:`feedlake.delta.merge.source_with_deletes`), scoped to
    the batch's tenants; only the rows of the batch's mapped ids are read.
    """

    def after_merge(self, context: HookContext, stream: StreamSpec, table: str, source: DataFrame) -> None:
        if table != ENTITY_MAP:
            return
        # The mappings now stored for the keys of this batch (a batch row older than the stored one lost its MERGE).
        keys = source.select(*MAP_KEY).distinct()
        mappings = context.engine.read_matching(context.config.table(ENTITY_MAP), keys, list(MAP_KEY)).select(
            *MAP_KEY, "account_key"
        ).persist()
        moved: dict[str, dict[str, int]] = {}
        try:
            tenants = batch_tenants(mappings)
            if tenants and ACCOUNT_EVENTS in context.config.tables:
                for tenant, count in self.move_events(context, tenants, mappings).items():
                    moved.setdefault(tenant, {})[ACCOUNT_EVENTS] = count
            if tenants and ACCOUNTS in context.config.tables:
                for tenant, count in self.move_accounts(context, tenants, mappings).items():
                    moved.setdefault(tenant, {})[ACCOUNTS] = count
        finally:
            mappings.unpersist()
        for tenant, counts in sorted(moved.items()):
            entry = {name: counts.get(name, 0) for name in (ACCOUNT_EVENTS, ACCOUNTS) if name in context.config.tables}
            if any(entry.values()):
                context.extras.setdefault("entity_map_moved", {})[tenant] = entry
                log.info("entity_map %s: rows moved to canonical accounts: %s", tenant, entry)

    def move_events(self, context: HookContext, tenants: Sequence[str], mappings: DataFrame) -> dict[str, int]:
        """``account_events`` of a mapped ``(source_system, source_account_id)`` → the canonical key; moves per tenant."""
        table = context.config.table(ACCOUNT_EVENTS)
        on = ["tenant_id", "source_system", "source_account_id"]
        stored = context.engine.read_matching(table, mappings.withColumnRenamed("source_id", "source_account_id"), on)
        affected = _under_source_ids(stored, mappings, "source_account_id").persist()
        try:
            counts = {r["tenant_id"]: r["count"] for r in affected.groupBy("tenant_id").count().collect()}
            if counts:
                rows = affected.select(*[F.col("_canonical" if c == "account_key" else c).alias(c) for c in table.column_names])
                # Under the canonical key the newer row wins (the table's policy); the stored rows
                # under their old key are deleted by key in the same MERGE (no id as SQL text).
                source = source_with_deletes(table, latest_per_key(rows, table.key), affected)
                context.engine.merge(table, source, plan_for(table, sorted(counts)).with_deletes())
            return counts
        finally:
            affected.unpersist()

    def move_accounts(self, context: HookContext, tenants: Sequence[str], mappings: DataFrame) -> dict[str, int]:
        """``accounts`` rows keyed by a mapped source id (of that source system) → merged into the canonical one."""
        table = context.config.table(ACCOUNTS)
        under_source = mappings.select("tenant_id", F.col("source_id").alias("account_key"))
        stored = context.engine.read_matching(table, under_source, ["tenant_id", "account_key"])
        with ExitStack() as held:  # every frame held here is released, also when the MERGE fails
            affected = _under_source_ids(stored, mappings, "account_key").persist()
            held.callback(release, affected)
            pairs = affected.select("tenant_id", "source_system", "account_key").distinct().persist()
            held.callback(release, pairs)
            counts = {r["tenant_id"]: r["count"] for r in pairs.groupBy("tenant_id").count().collect()}
            if counts:
                # Pinned: resolve_attributes reads its inputs several times, and each read would
                # copy their plans into its own (the MERGE source's plan grew to 140 KB, 1.3 s of
                # optimizing, for a few rows).
                incoming = pinned(attribute_cells(affected, table, "account_key", "_canonical"), STORAGE)
                held.callback(release, incoming)
                canonical = context.engine.read_matching(
                    table, affected.select("tenant_id", F.col("_canonical").alias("account_key")), ["tenant_id", "account_key"]
                )
                merged = pinned(
                    resolve_attributes(incoming, canonical, table.key, table.attributes, table.column_names,
                                       derive=profile_columns(table)),
                    STORAGE,
                )
                held.callback(release, merged)
                source = source_with_deletes(table, merged, pairs)
                context.engine.merge(table, source, plan_for(table, sorted(counts)).with_deletes())
            return counts
