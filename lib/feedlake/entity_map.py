"""Entity mapping across data sources (seed 004).

"When multiple data sources collect information on the same physical user or account,
a map of entities across these different sources must be provided, i.e. the map would
say, 'this account in Salesforce is this user group in the product'."

* Stream ``entity_map`` → table ``entity_map``: rows ``(source_system, source_id,
  account_key)``, keyed by tenant, source system and source id. The latest mapping
  wins (the most recent file, the last line of a file: the usual ``_seq`` rule).
* An account or account event carrying a source id resolves to the canonical
  ``account_key`` when ``(source_system, source id)`` is mapped
  (:func:`resolve_account`); unmapped ids are kept as sent. The source system of a
  record is its file's ``source_system=`` folder (seed 001 objects layout) or its
  stream's declared one (``segment``). Streams that resolve declare ``reads:
  [entity_map]``, so the pipeline runs ``entity_map`` before them and a mapping dropped
  with the accounts it maps applies in the same run.
* A mapping that arrives after the rows it maps moves them (:class:`EntityMapHook`,
  after every MERGE of ``entity_map``), so the order of batches does not matter:
  ``account_events`` rows of ``(source_system, source_account_id)`` move to the
  canonical key (also when a mapping changes), and ``accounts`` rows still keyed by the
  mapped source id are merged attribute by attribute (each attribute with its own
  sequence) into the canonical account and removed. Attributes already merged into an
  account under a former mapping stay there, and ``contact_accounts`` links are not
  re-pointed (they do not record the source system). Mappings are not chained: ``a → b``
  and ``b → c`` resolve ``a`` to ``b``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.config import StreamSpec, TableSpec
from feedlake.contracts import field_text
from feedlake.dedupe import COLUMN_PREFIX, PROPERTY_PREFIX, latest_per_key, resolve_attributes
from feedlake.hooks import HookContext, IngestHook, batch_tenants
from feedlake.mappers import StoredTables, lineage, parse_properties
from feedlake.merge import delete_plan, plan_for
from feedlake.profiles import profile_columns

log = logging.getLogger("feedlake.entity_map")


def entity_map_rows(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """entity_map → ``entity_map``: one mapping per record (all three fields required in conf)."""
    rows = records.select(
        "tenant_id",
        field_text("source_system").alias("source_system"),
        field_text("source_id").alias("source_id"),
        field_text("account_key").alias("account_key"),
        *lineage(),
    )
    return {"entity_map": rows}


@dataclass(frozen=True)
class KeyedTable:
    """A stored table read only at the keys a batch asks for (see :class:`feedlake.mappers.StoredTables`)."""

    stored: StoredTables
    name: str

    def matching(self, keys: DataFrame, on: Sequence[str]) -> DataFrame:
        return self.stored.matching(self.name, keys, on)


MAP_KEY = ("tenant_id", "source_system", "source_id")


def resolve_account(frame: DataFrame, source_id: Column, entity_map: DataFrame | KeyedTable) -> DataFrame:
    """Add ``_account_key``: the mapped canonical key of ``(tenant_id, source_system, source_id)``.

    ``frame`` must hold ``tenant_id`` and ``source_system``; ``entity_map`` is the stored
    table (one row per key: the latest mapping), or a :class:`KeyedTable` of it, read
    then at the batch's ids only (issue 12 item 4). Unmapped ids, and records without a
    source system, keep ``source_id``.
    """
    if isinstance(entity_map, KeyedTable):
        ids = frame.select("tenant_id", F.col("source_system"), source_id.alias("source_id"))
        entity_map = entity_map.matching(ids, MAP_KEY)
    mappings = entity_map.select(
        "tenant_id",
        F.col("source_system").alias("_map_system"),
        F.col("source_id").alias("_map_id"),
        F.col("account_key").alias("_map_key"),
    )
    keyed = frame.select(*frame.columns, source_id.alias("_map_id"), F.col("source_system").alias("_map_system"))
    joined = keyed.join(mappings, on=["tenant_id", "_map_system", "_map_id"], how="left")
    return joined.select(*frame.columns, F.coalesce(F.col("_map_key"), F.col("_map_id")).alias("_account_key"))


def stored_entity_map(stored: Mapping[str, DataFrame]) -> DataFrame | KeyedTable:
    """The ``entity_map`` table a resolving stream was given (see ``reads`` in conf/streams.yaml):
    keyed (read at the batch's ids by :func:`resolve_account`) when the pipeline gave it."""
    if "entity_map" not in stored:
        raise KeyError("a stream resolving account ids must declare `reads: [entity_map]` in conf/streams.yaml")
    if isinstance(stored, StoredTables):
        return KeyedTable(stored, "entity_map")
    return stored["entity_map"]


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
    out = cells[0]
    for more in cells[1:]:
        out = out.unionByName(more)
    return out


class EntityMapHook(IngestHook):
    """After ``entity_map`` is merged, move rows stored under a now-mapped source id (see module rules).

    Once per run for the whole batch (all tenants): one MERGE and one delete per moved
    table, scoped to the batch's tenants; only the rows of the batch's mapped ids are read.
    """

    def after_merge(self, context: HookContext, stream: StreamSpec, table: str, source: DataFrame) -> None:
        if table != "entity_map":
            return
        # The mappings now stored for the keys of this batch (a batch row older than the stored one lost its MERGE).
        keys = source.select(*MAP_KEY).distinct()
        mappings = context.engine.read_matching(context.config.table("entity_map"), keys, list(MAP_KEY)).select(
            *MAP_KEY, "account_key"
        ).persist()
        tenants = batch_tenants(mappings)
        moved: dict[str, dict[str, int]] = {}
        if tenants and "account_events" in context.config.tables:
            for tenant, count in self.move_events(context, tenants, mappings).items():
                moved.setdefault(tenant, {})["account_events"] = count
        if tenants and "accounts" in context.config.tables:
            for tenant, count in self.move_accounts(context, tenants, mappings).items():
                moved.setdefault(tenant, {})["accounts"] = count
        mappings.unpersist()
        for tenant, counts in sorted(moved.items()):
            entry = {name: counts.get(name, 0) for name in ("account_events", "accounts") if name in context.config.tables}
            if any(entry.values()):
                context.extras.setdefault("entity_map_moved", {})[tenant] = entry
                log.info("entity_map %s: rows moved to canonical accounts: %s", tenant, entry)

    def move_events(self, context: HookContext, tenants: Sequence[str], mappings: DataFrame) -> dict[str, int]:
        """``account_events`` of a mapped ``(source_system, source_account_id)`` → the canonical key; moves per tenant."""
        table = context.config.table("account_events")
        on = ["tenant_id", "source_system", "source_account_id"]
        stored = context.engine.read_matching(table, mappings.withColumnRenamed("source_id", "source_account_id"), on)
        affected = _under_source_ids(stored, mappings, "source_account_id").persist()
        counts = {r["tenant_id"]: r["count"] for r in affected.groupBy("tenant_id").count().collect()}
        if counts:
            rows = affected.select(*[F.col("_canonical" if c == "account_key" else c).alias(c) for c in table.column_names])
            context.engine.merge(table, latest_per_key(rows, table.key), plan_for(table, sorted(counts)))
            # Then drop the rows left under the old key (the merge kept the newer row where both existed):
            # a MERGE ... DELETE against the moves themselves, so no id is rendered as SQL text.
            moves = affected.select(*on, "_canonical").distinct()
            plan = delete_plan(table, on, sorted(counts), differ=[("account_key", "_canonical")])
            context.engine.delete_matching(table, moves, plan)
        affected.unpersist()
        return counts

    def move_accounts(self, context: HookContext, tenants: Sequence[str], mappings: DataFrame) -> dict[str, int]:
        """``accounts`` rows keyed by a mapped source id (of that source system) → merged into the canonical one."""
        table = context.config.table("accounts")
        under_source = mappings.select("tenant_id", F.col("source_id").alias("account_key"))
        stored = context.engine.read_matching(table, under_source, ["tenant_id", "account_key"])
        affected = _under_source_ids(stored, mappings, "account_key").persist()
        pairs = affected.select("tenant_id", "source_system", "account_key").distinct().persist()
        counts = {r["tenant_id"]: r["count"] for r in pairs.groupBy("tenant_id").count().collect()}
        if counts:
            incoming = attribute_cells(affected, table, "account_key", "_canonical")
            canonical = context.engine.read_matching(
                table, affected.select("tenant_id", F.col("_canonical").alias("account_key")), ["tenant_id", "account_key"]
            )
            merged = resolve_attributes(
                incoming, canonical, table.key, table.attributes, table.column_names, derive=profile_columns(table)
            )
            context.engine.merge(table, merged, plan_for(table, sorted(counts)))
            plan = delete_plan(table, ["tenant_id", "source_system", "account_key"], sorted(counts))
            context.engine.delete_matching(table, pairs, plan)
        affected.unpersist()
        pairs.unpersist()
        return counts
