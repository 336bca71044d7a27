"""Mapping functions: validated records of a stream → rows of its target tables.

A stream names its mapper in ``conf/streams.yaml``; adding a stream with the same
shape as an existing one is configuration only. Every mapper takes the accepted
records (``tenant_id, stream, source_file, line_number, _seq, batch_id, values,
json_values, source_system``) and returns one DataFrame per target table, ending in an
explicit ``select``, plus optionally :data:`REJECTED` (records it refuses, in
:data:`QUARANTINE_COLUMNS` shape) and :data:`DUPLICATES` (records repeating a stored one).

Attributes a stream does not declare are kept, never dropped (seed 000 §1.1–§1.3:
"you can add any attributes"): they go to ``properties``, carried here as
``props`` (attribute → JSON text) and rendered as a JSON object string with sorted
keys by :func:`render_properties`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.settings.config import FeedlakeConfig, StreamSpec, load_object
from feedlake.settings.tables import ACCOUNTS, CONTACT_ACCOUNTS, CONTACT_EVENTS, CONTACTS

if TYPE_CHECKING:
    from feedlake.delta.engines import DeltaEngine
from feedlake.rules.contracts import extra_props, field_text, render_properties, unix_seconds

QUARANTINE_COLUMNS = (
    "tenant_id", "stream", "source_file", "line_number", "raw_record", "error_code", "error_message", "batch_id",
)
REJECTED = "_rejected"  # mapper output key: records the mapper refuses, in quarantine shape
# mapper output key: records that repeat one already stored (tenant_id, source_file and,
# where known, line_number per record), e.g. a Segment messageId ingested from a more
# recent file; counted as duplicates.
DUPLICATES = "_duplicates"


def lineage() -> list[Column]:
    """Where a row came from: sequence, batch, file and line (bookkeeping columns)."""
    return [
        F.col("_seq"),
        F.col("batch_id").alias("_batch_id"),
        F.col("source_file").alias("_source_file"),
        F.col("line_number").alias("_line_number"),
    ]


Mapper = Callable[[DataFrame, StreamSpec], dict[str, DataFrame]]


class StoredTables(Mapping[str, DataFrame]):
    """The stored tables a stream ``reads`` (conf/streams.yaml), scoped to its batch (issue 12 item 4).

    :meth:`matching` reads only the stored rows whose key columns equal a row of a keys
    DataFrame (:meth:`feedlake.delta.engines.DeltaEngine.read_matching`: a semi-join, never a
    whole tenant through the driver); mappers should use it (:func:`stored_matching`).
    Indexing (``stored["entity_map"]``) still gives the batch tenants' whole table, for
    a mapper that cannot name its keys.
    """

    def __init__(self, engine: DeltaEngine, config: FeedlakeConfig, names: Sequence[str], batch: DataFrame):
        self.engine = engine
        self.config = config
        self.names = tuple(names)
        self.batch = batch

    def __getitem__(self, name: str) -> DataFrame:
        if name not in self.names:
            raise KeyError(name)
        return self.engine.read_matching(self.config.table(name), self.batch.select("tenant_id"), ["tenant_id"])

    def __contains__(self, name: object) -> bool:  # without reading the table (Mapping's default would)
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def matching(self, name: str, keys: DataFrame, on: Sequence[str]) -> DataFrame:
        """Stored rows of table ``name`` whose ``on`` columns (with ``tenant_id``) equal a row of ``keys``."""
        if name not in self.names:
            raise KeyError(name)
        return self.engine.read_matching(self.config.table(name), keys, list(on))


def stored_matching(stored: Mapping[str, DataFrame], name: str, keys: DataFrame, on: Sequence[str]) -> DataFrame:
    """The rows of stored table ``name`` matching ``keys`` on ``on``: a batch-sized read when ``stored`` is a
    :class:`StoredTables`, else (tests, notebooks: plain DataFrames) a ``left_semi`` join."""
    if isinstance(stored, StoredTables):
        return stored.matching(name, keys, on)
    return stored[name].join(keys.select(*on).distinct(), on=list(on), how="left_semi")


def source_system(records: DataFrame, stream: StreamSpec | None = None) -> Column:
    """The record's source system: its file's ``source_system=`` folder (seed 001 objects
    layout), else the stream's ``options.source_system`` (e.g. segment), else NULL."""
    folder = F.col("source_system") if "source_system" in records.columns else F.lit(None).cast("string")
    declared = (stream.options.get("source_system") if stream else None) or None
    return F.coalesce(folder, F.lit(declared).cast("string"))


def _declared(stream: StreamSpec) -> list[str]:
    return [f.name for f in stream.fields] + list(stream.derive)


def contact_profile(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """identify → ``contacts`` (seed 000 §1.2): contact_key, email, other attributes."""
    contacts = records.select(
        "tenant_id",
        field_text("contact_key").alias("contact_key"),
        field_text("email").alias("email"),
        extra_props(_declared(stream)).alias("props"),
        source_system(records, stream).alias("source_system"),
        F.lit(None).cast("string").alias("anonymous_id"),
        *lineage(),
    )
    return {CONTACTS: contacts}


def derived_key(stream: StreamSpec, name: str) -> Column:
    """``derive: {name: {hash_of: [...]}}``: SHA-256 of the listed fields, ``\\x1f``-joined.

    Seed 000 §1.1: "If you do not have one, we suggest creating a combination of
    event_text + contact_key + event_timestamp"; hashing keeps the key short and
    makes the same event always get the same key.
    """
    rule = stream.derive[name]
    parts = [F.coalesce(field_text(f), F.lit("")) for f in rule["hash_of"]]
    return F.sha2(F.concat_ws("\x1f", *parts), 256)


def contact_event(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """track → ``contact_events`` (seed 000 §1.1)."""
    seconds = unix_seconds("event_timestamp")
    events = records.select(
        "tenant_id",
        F.coalesce(field_text("event_key"), derived_key(stream, "event_key")).alias("event_key"),
        field_text("contact_key").alias("contact_key"),
        field_text("event_text").alias("event_text"),
        seconds.alias("event_timestamp"),
        F.timestamp_seconds(seconds).alias("event_ts"),
        render_properties(extra_props(_declared(stream))).alias("properties"),
        source_system(records, stream).alias("source_system"),
        F.lit(False).alias("is_anonymous"),
        *lineage(),
    )
    return {CONTACT_EVENTS: events}


def contact_group(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """group → ``contact_accounts`` and ``accounts`` (seed 000 §1.3).

    "Our system supports one account per contact. If there are several, we'll use the
    latest one": contact_accounts is keyed by contact, the latest record wins. Other
    attributes (e.g. ``name``) describe the account.
    """
    links = records.select(
        "tenant_id",
        field_text("contact_key").alias("contact_key"),
        field_text("account_key").alias("account_key"),
        *lineage(),
    )
    accounts = records.select(
        "tenant_id",
        field_text("account_key").alias("account_key"),
        extra_props(_declared(stream)).alias("props"),
        source_system(records, stream).alias("source_system"),
        *lineage(),
    )
    return {CONTACT_ACCOUNTS: links, ACCOUNTS: accounts}


MAPPERS: Mapping[str, Mapper] = {
    "contact_profile": contact_profile,
    "contact_event": contact_event,
    "contact_group": contact_group,
}


def mapper_for(stream: StreamSpec) -> Mapper:
    """The mapping function a stream names in conf.

    Either a name registered in :data:`MAPPERS` or ``package.module:function`` (so a
    stream's mapper can live in its own module, e.g. ``feedlake.streams.metrics:metric_rows``).
    """
    if ":" in stream.mapper:
        return load_object(stream.mapper, f"stream {stream.name!r}: mapper")
    try:
        return MAPPERS[stream.mapper]
    except KeyError:
        raise KeyError(f"stream {stream.name!r}: unknown mapper {stream.mapper!r}; known: {sorted(MAPPERS)}") from None
