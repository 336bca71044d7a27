"""Ingestion API objects (seed 001): streams ``contact``, ``account``, ``contact_event``, ``account_event``.

Each record carries ``type`` (the object kind, equal to its stream), the object's id
and a nested ``<object>_properties`` JSON object, as in the seed's account example::

    {"type":"account","account_id":"acme-corp","domain":"acme.com",
     "account_properties":{"name":"Acme Corporation","industry":"Technology","employees":500}}

By analogy (issue #3; fields declared in conf/streams.yaml):

* ``contact``: ``contact_id`` and/or ``email`` (the key is ``contact_id``, else
  ``email``), ``contact_properties`` → ``contacts``;
* ``account``: ``account_id``, ``account_properties`` → ``accounts``;
* ``contact_event``: ``contact_id`` (or ``email``), ``event_name``, ``event_timestamp``
  (UTC timestamp or Unix seconds), optional ``event_id``, ``event_properties`` →
  ``contact_events``;
* ``account_event``: ``account_id``, ``event_name``, ``event_timestamp``, optional
  ``event_id``, ``event_properties`` → ``account_events`` (key: tenant, account,
  event name, timestamp; first record of a file wins, as for ``track``).

Rules: a record whose ``type`` is not its stream's is ``type_mismatch``; the members
of the properties object, with any other undeclared top-level attribute, are the
object's attributes (a member wins over a top-level attribute of the same name): they
must be allowed trait values (seed 004, :func:`feedlake.rules.profiles.trait_check`) and
recognised profile fields must have their type (:func:`feedlake.rules.profiles.profile_checks`).
Account ids resolve through the entity map (:mod:`feedlake.streams.entity_map`). Every row
keeps its file's ``source_system``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.rules.contracts import apply_checks, extra_props, field_text, render_properties, timestamp_value
from feedlake.rules.profiles import checked_attributes, object_members, profile_checks, trait_check
from feedlake.settings.config import StreamSpec
from feedlake.settings.tables import ACCOUNT_EVENTS, ACCOUNTS, CONTACT_EVENTS, CONTACTS
from feedlake.streams.entity_map import resolve_account, stored_entity_map
from feedlake.streams.mappers import QUARANTINE_COLUMNS, REJECTED, lineage, source_system

SPEC = "seed 001"


def attributes(stream: StreamSpec) -> Column:
    """The object's attributes (name → JSON text): undeclared top-level ones and the members
    of the stream's properties object (``options.properties``), members winning."""
    top = extra_props([f.name for f in stream.fields])
    nested = stream.options.get("properties")
    if not nested:
        return top
    members = object_members(F.col("json_values").getItem(nested))
    return F.map_concat(F.map_filter(top, lambda k, _v: ~F.array_contains(F.map_keys(members), k)), members)


def type_check(stream: StreamSpec) -> tuple[Column, str, Column]:
    """``type_mismatch`` when the record's ``type`` is not the stream's ``options.record_type``."""
    expected = stream.options.get("record_type", stream.name)
    found = field_text("type")
    return (
        found.isNotNull() & (found != F.lit(expected)),
        "type_mismatch",
        F.concat(
            F.lit("record type '"),
            F.substring(found, 1, 64),
            F.lit(f"' does not match stream '{stream.name}': files of this stream hold \"type\": \"{expected}\" records ({SPEC})"),
        ),
    )


def contact_key_check() -> tuple[Column, str, Column]:
    """``missing_required_field`` when a contact record has neither ``contact_id`` nor ``email``."""
    return (
        field_text("contact_id").isNull() & field_text("email").isNull(),
        "missing_required_field",
        F.lit(f"a contact needs 'contact_id' or 'email' (both are missing or empty; {SPEC})"),
    )


def checked(records: DataFrame, stream: StreamSpec, identity: list[tuple[Column, str, Column]]) -> DataFrame:
    """Records with ``_attrs`` and every seed 001/004 rule applied to the error columns."""
    with_attrs = records.select(*records.columns, attributes(stream).alias("_attrs"))
    first = apply_checks(with_attrs, [type_check(stream), *identity])
    profile = stream.options.get("profile")

    def attribute_checks():
        checks = [trait_check(F.col("json_values"))]
        if profile:
            checks.extend(profile_checks(stream.tables[profile]))
        return checks

    return checked_attributes(first, F.col("_attrs"), attribute_checks)


def split(checked_records: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``(accepted, rejected)``: rejected rows are in the quarantine table's shape."""
    rejected = checked_records.where(F.col("error_code").isNotNull()).select(*QUARANTINE_COLUMNS)
    return checked_records.where(F.col("error_code").isNull()), rejected


def with_source_system(records: DataFrame, stream: StreamSpec) -> DataFrame:
    """Records whose ``source_system`` column is filled (see :func:`feedlake.streams.mappers.source_system`)."""
    others = [c for c in records.columns if c != "source_system"]
    return records.select(*others, source_system(records, stream).alias("source_system"))


def event_time(name: str = "event_timestamp") -> Column:
    """The event's instant (validated ``timestamp`` field) as TIMESTAMP."""
    return timestamp_value(field_text(name))


def event_key(object_id: Column, seconds: Column) -> Column:
    """``event_id`` when sent, else SHA-256 of event name, object id and Unix seconds.

    Same rule as seed 000 §1.1's suggested key (event_text + contact_key + timestamp),
    computed on the normalised time so ``"1436172703"`` and ``"2015-07-06T08:51:43Z"``
    make the same key.
    """
    parts = [F.coalesce(field_text("event_name"), F.lit("")), F.coalesce(object_id, F.lit("")), seconds.cast("string")]
    return F.coalesce(field_text("event_id"), F.sha2(F.concat_ws("\x1f", *parts), 256))


def contact_rows(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """contact → ``contacts``: key ``contact_id`` else ``email``; attributes → properties (profile typed)."""
    ok, rejected = split(checked(records, stream, [contact_key_check()]))
    contacts = ok.select(
        "tenant_id",
        F.coalesce(field_text("contact_id"), field_text("email")).alias("contact_key"),
        field_text("email").alias("email"),
        F.col("_attrs").alias("props"),
        source_system(ok, stream).alias("source_system"),
        F.lit(None).cast("string").alias("anonymous_id"),
        *lineage(),
    )
    return {CONTACTS: contacts, REJECTED: rejected}


def account_rows(records: DataFrame, stream: StreamSpec, stored: Mapping[str, DataFrame]) -> dict[str, DataFrame]:
    """account → ``accounts``: ``account_id`` resolved through the entity map; attributes → properties."""
    ok, rejected = split(checked(records, stream, []))
    resolved = resolve_account(with_source_system(ok, stream), field_text("account_id"), stored_entity_map(stored))
    accounts = resolved.select(
        "tenant_id",
        F.col("_account_key").alias("account_key"),
        F.col("_attrs").alias("props"),
        "source_system",
        *lineage(),
    )
    return {ACCOUNTS: accounts, REJECTED: rejected}


def contact_event_rows(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """contact_event → ``contact_events`` (``event_name`` → event_text)."""
    ok, rejected = split(checked(records, stream, [contact_key_check()]))
    contact = F.coalesce(field_text("contact_id"), field_text("email"))
    seconds = F.unix_seconds(event_time())
    events = ok.select(
        "tenant_id",
        event_key(contact, seconds).alias("event_key"),
        contact.alias("contact_key"),
        field_text("event_name").alias("event_text"),
        seconds.alias("event_timestamp"),
        event_time().alias("event_ts"),
        render_properties(F.col("_attrs")).alias("properties"),
        source_system(ok, stream).alias("source_system"),
        F.lit(False).alias("is_anonymous"),
        *lineage(),
    )
    return {CONTACT_EVENTS: events, REJECTED: rejected}


def account_event_rows(records: DataFrame, stream: StreamSpec, stored: Mapping[str, DataFrame]) -> dict[str, DataFrame]:
    """account_event → ``account_events``: the account id resolved through the entity map."""
    ok, rejected = split(checked(records, stream, []))
    resolved = resolve_account(with_source_system(ok, stream), field_text("account_id"), stored_entity_map(stored))
    seconds = F.unix_seconds(event_time())
    events = resolved.select(
        "tenant_id",
        event_key(field_text("account_id"), seconds).alias("event_key"),
        F.col("_account_key").alias("account_key"),
        field_text("event_name").alias("event_text"),
        seconds.alias("event_timestamp"),
        event_time().alias("event_ts"),
        render_properties(F.col("_attrs")).alias("properties"),
        "source_system",
        field_text("account_id").alias("source_account_id"),
        *lineage(),
    )
    return {ACCOUNT_EVENTS: events, REJECTED: rejected}
