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
* A mapping that arrives after the rows it maps moves them (:class:`feedlake.derived.remaps.EntityMapHook`,
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.rules.contracts import field_text
from feedlake.settings.config import StreamSpec
from feedlake.settings.tables import ENTITY_MAP
from feedlake.streams.mappers import StoredTables, lineage


def entity_map_rows(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """entity_map → ``entity_map``: one mapping per record (all three fields required in conf)."""
    rows = records.select(
        "tenant_id",
        field_text("source_system").alias("source_system"),
        field_text("source_id").alias("source_id"),
        field_text("account_key").alias("account_key"),
        *lineage(),
    )
    return {ENTITY_MAP: rows}


@dataclass(frozen=True)
class KeyedTable:
    """A stored table read only at the keys a batch asks for (see :class:`feedlake.streams.mappers.StoredTables`)."""

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
    if ENTITY_MAP not in stored:
        raise KeyError("a stream resolving account ids must declare `reads: [entity_map]` in conf/streams.yaml")
    if isinstance(stored, StoredTables):
        return KeyedTable(stored, ENTITY_MAP)
    return stored[ENTITY_MAP]


