"""Segment messages (seed 002): stream ``segment``, one Segment call per JSON line.

Routing by ``type``:

* ``identify`` → ``contacts``: ``traits`` are the contact's attributes (``email`` from
  ``traits.email``; seed 004 profile fields typed, see :mod:`feedlake.rules.profiles`);
* ``track`` → ``contact_events``: ``event`` → event_text, ``timestamp`` → event time,
  ``properties`` → properties, ``messageId`` → event_key;
* ``group`` → ``contact_accounts`` (one account per contact, seed 000 §1.3) and
  ``accounts``: ``groupId`` (resolved through the entity map with source system
  ``segment``) and ``traits``;
* ``page``, ``screen``, ``alias`` and any other type are not errors but are not
  ingested: each is kept in quarantine as ``unsupported_type`` and counted, so nothing
  is lost.

The contact key is ``userId``; a message with only ``anonymousId`` is kept with that as
the key and flagged (``is_anonymous``; contacts also keep the ``anonymous_id`` seen).
Per type: identify and group need a user or anonymous id, track needs ``event`` and
``timestamp``, group needs ``groupId``; ``traits``/``properties`` follow the seed 004
trait rules. The Segment envelope (``context``, ``integrations``, ``sentAt``,
``receivedAt``...) is not stored.

Deduplication on ``messageId`` (Segment delivers at least once; a retry repeats the
message): every ingested message is recorded once in ``segment_messages`` (key tenant,
messageId; the most recent copy wins). Within a batch, all copies of a messageId but
one are counted as duplicates; across batches, a message whose messageId is
already stored from another file is counted as a duplicate. A copy never adds a row:
the tables' own keys absorb it (the event's key is its user, event and time; a
contact's attributes merge by sequence), so identical retries change nothing, and
should a copy differ, the usual "most recent wins" rule decides, whatever the order
in which the batches arrive.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from feedlake.rules.contracts import apply_checks, field_checks, field_text, render_properties, timestamp_value
from feedlake.rules.dedupe import rank_by_seq
from feedlake.rules.profiles import checked_attributes, object_members, plain_text, profile_checks, trait_check
from feedlake.settings.config import FieldSpec, StreamSpec
from feedlake.settings.tables import ACCOUNTS, CONTACT_ACCOUNTS, CONTACT_EVENTS, CONTACTS, SEGMENT_MESSAGES
from feedlake.streams.api_objects import split, with_source_system
from feedlake.streams.entity_map import resolve_account, stored_entity_map
from feedlake.streams.mappers import DUPLICATES, REJECTED, lineage, stored_matching

SPEC = "seed 002"
SUPPORTED = ("identify", "track", "group")
Check = tuple[Column, str, Column]


def _required(call: str, name: str, missing: Column) -> Check:
    return (
        (F.col("_type") == call) & missing,
        "missing_required_field",
        F.lit(f"a Segment {call} call needs '{name}' (missing or empty; {SPEC})"),
    )


def message_checks() -> list[Check]:
    """Rules on the message itself: supported type first, then what each type needs."""
    unsupported = (
        ~F.col("_type").isin(*SUPPORTED),
        "unsupported_type",
        F.concat(
            F.lit("Segment '"),
            F.substring(F.col("_type"), 1, 64),
            F.lit(f"' calls are not ingested (only {', '.join(SUPPORTED)}; {SPEC}); the message is kept here"),
        ),
    )
    no_user = (
        F.col("_contact_key").isNull(),
        "missing_required_field",
        F.lit(f"a Segment message needs 'userId' or 'anonymousId' (both are missing or empty; {SPEC})"),
    )
    return [
        unsupported,
        no_user,
        _required("track", "event", field_text("event").isNull()),
        _required("track", "timestamp", field_text("timestamp").isNull()),
        _required("group", "groupId", field_text("groupId").isNull()),
    ]


def attribute_checks(stream: StreamSpec) -> list[Check]:
    """Trait rules on traits/properties, and profile types for identify (contacts) and group (accounts)."""
    checks = [trait_check(F.col("json_values"))]
    for call, table in (("identify", CONTACTS), ("group", ACCOUNTS)):
        is_call = F.col("_type") == call
        extra = field_checks(FieldSpec("email", "string"), SPEC) if call == "identify" else []
        for failed, code, message in [*extra, *profile_checks(stream.tables[table])]:
            checks.append((is_call & failed, code, message))
    return checks


def prepared(records: DataFrame) -> DataFrame:
    """Records with the routing columns: type, contact key, anonymity, message id and attributes."""
    user, anonymous = field_text("userId"), field_text("anonymousId")
    members = F.when(
        field_text("type") == "track", object_members(F.col("json_values").getItem("properties"))
    ).otherwise(object_members(F.col("json_values").getItem("traits")))
    return records.select(
        *records.columns,
        field_text("type").alias("_type"),
        F.coalesce(user, anonymous).alias("_contact_key"),
        (user.isNull() & anonymous.isNotNull()).alias("_is_anonymous"),
        field_text("messageId").alias("_message_id"),
        members.alias("_attrs"),
    )


def repeated_messages(ok: DataFrame, ledger: DataFrame) -> DataFrame:
    """``(tenant_id, source_file, line_number)`` of each message already stored from another file.

    ``ledger``: the stored ``segment_messages`` rows (only those of the batch's message
    ids are needed: :func:`segment_rows` reads just those, issue 12 item 4).

    Only the copy the pipeline keeps (highest ``_seq``) is looked at: the other copies are
    counted as duplicates within the batch (by the pipeline, on ``segment_messages``).
    """
    firsts = rank_by_seq(ok, ["tenant_id", "_message_id"], "_copy").where(F.col("_copy") == 1)
    stored = ledger.select("tenant_id", F.col("message_id").alias("_message_id"), F.col("_source_file").alias("_stored_file"))
    joined = firsts.join(stored, on=["tenant_id", "_message_id"], how="inner")
    return joined.where(F.col("_stored_file") != F.col("source_file")).select("tenant_id", "source_file", "line_number")


def segment_rows(records: DataFrame, stream: StreamSpec, stored: Mapping[str, DataFrame]) -> dict[str, DataFrame]:
    """segment → segment_messages (every ingested message) and the tables of each call type."""
    first = apply_checks(prepared(records), message_checks())
    checked_records = checked_attributes(first, F.col("_attrs"), lambda: attribute_checks(stream))
    ok, rejected = split(checked_records)
    ok = with_source_system(ok, stream)
    # Only the stored ledger rows of this batch's message ids (a key-matched read, not the tenants' whole ledger).
    ids = ok.select("tenant_id", F.col("_message_id").alias("message_id"))
    repeated = repeated_messages(ok, stored_matching(stored, SEGMENT_MESSAGES, ids, ["tenant_id", "message_id"]))

    messages = ok.select(
        "tenant_id",
        F.col("_message_id").alias("message_id"),
        F.col("_type").alias("type"),
        F.col("_contact_key").alias("contact_key"),
        F.col("_is_anonymous").alias("is_anonymous"),
        timestamp_value(field_text("timestamp")).alias("timestamp"),
        *lineage(),
    )
    identify = ok.where(F.col("_type") == "identify")
    contacts = identify.select(
        "tenant_id",
        F.col("_contact_key").alias("contact_key"),
        plain_text(F.col("_attrs").getItem("email")).alias("email"),
        F.map_filter(F.col("_attrs"), lambda k, _v: k != "email").alias("props"),
        "source_system",
        field_text("anonymousId").alias("anonymous_id"),
        *lineage(),
    )
    track = ok.where(F.col("_type") == "track")
    event_ts = timestamp_value(field_text("timestamp"))
    events = track.select(
        "tenant_id",
        F.col("_message_id").alias("event_key"),
        F.col("_contact_key").alias("contact_key"),
        field_text("event").alias("event_text"),
        F.unix_seconds(event_ts).alias("event_timestamp"),
        event_ts.alias("event_ts"),
        render_properties(F.col("_attrs")).alias("properties"),
        "source_system",
        F.col("_is_anonymous").alias("is_anonymous"),
        *lineage(),
    )
    group = resolve_account(
        ok.where(F.col("_type") == "group"), field_text("groupId"), stored_entity_map(stored)
    )
    links = group.select(
        "tenant_id", F.col("_contact_key").alias("contact_key"), F.col("_account_key").alias("account_key"), *lineage()
    )
    accounts = group.select(
        "tenant_id",
        F.col("_account_key").alias("account_key"),
        F.col("_attrs").alias("props"),
        "source_system",
        *lineage(),
    )
    return {
        SEGMENT_MESSAGES: messages,
        CONTACTS: contacts,
        CONTACT_EVENTS: events,
        CONTACT_ACCOUNTS: links,
        ACCOUNTS: accounts,
        REJECTED: rejected,
        DUPLICATES: repeated,
    }
