"""``feedlake export``: enriched profiles and moments back out as Segment calls (seed 002, issue 17).

Seed 002 ("What data is sent from MadKudu to Segment?"): customer attributes go out as
``identify`` calls whose traits carry ``email`` and the computed fields with an ``mk_``
prefix; customer moments as ``track`` calls named ``mk_<moment>`` with the time the
moment began. Here:

* **Profiles from the Change Data Feed** (never a full-table diff): the changes of
  ``contacts`` (→ ``identify``, ``userId`` = contact key, ``anonymousId`` for anonymous
  contacts) and ``accounts`` (→ ``group``, ``groupId`` = account key, one call per contact
  linked to the account in ``contact_accounts``) between the last exported version and
  now. Per subject, the state before the range (first pre-image) is compared with the
  state after it (last post-image): only the traits (conf ``export.traits``) whose value
  changed are sent, ``traits.email`` always with an identify. No changed trait, no call,
  so a re-ingest that rewrites identical rows and a no-change rerun send nothing.
* **Moments**: :func:`feedlake.derived.moments.update_moments` writes entries and exits into
  ``moments``; every entry in that table's change feed is one ``track`` call.
* **Exactly once per change**: ``messageId`` = SHA-256 of tenant, message kind, entity,
  change version and the JSON of the trait set (or event and time), so the same change
  always yields the same id and Segment deduplicates a re-sent message.
  ``export_state`` holds per tenant, destination and table the last exported version;
  a run first records the range it is about to send (``pending_version``), then sends,
  then records it as exported. A crash between sending and recording leaves the pending
  range: the next run re-sends exactly that range, i.e. the same messages with the same
  ids (tested with :data:`FAIL_STATE_ENV`). A run with nothing to send records only the
  rows whose exported version moved: a no-change rerun commits nothing.
* **Destinations**, written by Spark tasks on the executors (no collect of messages):
  an outbox of gzip JSON-lines files ``OUTBOX/tenant=<id>/segment/dt=<run>/part-*.jsonl.gz``
  (local or S3; each file written under a temporary name and renamed, or put whole), or
  Segment's HTTP Tracking API ``/v1/batch`` (write key from the environment as the basic
  auth user, ≤ 500 KB per request, ≤ 32 KB per message, exponential backoff on 429/5xx
  honouring ``Retry-After``; stdlib ``urllib`` only).
* Erased or suppressed subjects are never exported (:func:`drop_suppressed`, through
  :func:`feedlake.erasure.forget.without_suppressed`).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.merge import plan_for
from feedlake.derived.moments import MomentsConf, MomentsUpdate, as_of_day, update_moments
from feedlake.settings.config import ConfigError, FeedlakeConfig
from feedlake.settings.job import ExportSettings
from feedlake.settings.session import local_frame, local_master, union_all
from feedlake.settings.tables import ACCOUNTS, CONTACT_ACCOUNTS, CONTACTS, EXPORT_STATE, MOMENTS

log = logging.getLogger("feedlake.export.segment")

SPEC = "seed 002"
SOURCES = (CONTACTS, ACCOUNTS, MOMENTS)
# Tests only: path of a marker file; when it does not exist yet, the final export_state
# write creates it and fails (a crash between sending and recording, exactly once).
FAIL_STATE_ENV = "FEEDLAKE_TEST_FAIL_STATE_WRITE_ONCE"
_TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
_STATS_SCHEMA = "tenant_id string, type string, messages long, batches long, retries long, files long, skipped long"
_CHANGE_ORDER = {"update_preimage": 0, "delete": 1, "insert": 2, "update_postimage": 3}


@dataclass(frozen=True)
class ExportRequest:
    """One ``feedlake export`` run."""

    warehouse: str
    outbox: str | None = None
    segment: bool = False
    tenants: tuple[str, ...] = ()
    since_version: int | None = None
    dry_run: bool = False


@dataclass
class ExportReport:
    """What one export run sent: messages per tenant and type, batches, retries, files."""

    run_id: str
    engine: str
    destination: str
    dry_run: bool
    rows: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    moments: MomentsUpdate = field(default_factory=MomentsUpdate)
    extras: dict[str, Any] = field(default_factory=dict)

    def add(self, tenant: str, kind: str, **counts: int) -> None:
        row = self.rows.setdefault((tenant, kind), {"messages": 0, "batches": 0, "retries": 0, "files": 0, "skipped": 0})
        for k, v in counts.items():
            row[k] = row.get(k, 0) + int(v or 0)

    def total(self, key: str = "messages") -> int:
        return sum(r[key] for r in self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "engine": self.engine, "destination": self.destination, "dry_run": self.dry_run,
            "messages": [{"tenant_id": t, "type": k, **v} for (t, k), v in sorted(self.rows.items())],
            "versions": self.versions, "moments": {"entered": self.moments.entered, "left": self.moments.left},
            "extras": self.extras,
        }

    def render(self) -> str:
        """A fixed-width table, in the style of the ingest run report."""
        header = ("tenant", "type", "messages", "batches", "retries", "files", "skipped")
        rows = [header]
        keys = header[2:]
        for (tenant, kind), v in sorted(self.rows.items()):
            rows.append((tenant, kind, *(str(v[k]) for k in keys)))
        rows.append(("TOTAL", "", *(str(self.total(k)) for k in keys)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        mode = " (dry run: nothing sent, nothing recorded)" if self.dry_run else ""
        lines = [f"feedlake export {self.run_id} (engine {self.engine}) to {self.destination}{mode}"]
        for index, r in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
            if index == 0 or index == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        lines.append(f"moments: entered {self.moments.entered}, left {self.moments.left}")
        for table, span in sorted(self.versions.items()):
            lines.append(f"versions {table}: {span}")
        for key, value in sorted(self.extras.items()):
            lines.append(f"{key}: {value}")
        return "\n".join(lines)


# --- message building (Column expressions on the executors) --------------------------------


def _trait_value(column: Column, dtype: str) -> Column:
    """A trait as Segment JSON: timestamps as ISO 8601 UTC strings, dates as YYYY-MM-DD (seed 004 trait rules)."""
    if dtype == "timestamp":
        return F.date_format(column, _TS_FORMAT)
    if dtype == "date":
        return F.date_format(column, "yyyy-MM-dd")
    return column


def message_id(tenant: Column, kind: str, entity: Column, version: Column, payload: Column) -> Column:
    """Deterministic ``messageId``: SHA-256 of tenant, kind, entity, change version and payload JSON.

    The same change (same table version, same trait set) always gets the same id, so a
    message re-sent after a crash or a retried request is deduplicated by Segment (and
    by feedlake's own ingest, which dedupes on messageId, seed 002).
    """
    parts = [tenant, F.lit(kind), entity, version.cast("string"), payload]
    return F.concat(F.lit("fl-"), F.sha2(F.concat_ws("\u001f", *parts), 256).substr(1, 40))


def _before_after(changes: DataFrame, key: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """Per subject: its state before the range (``b``), after it (``a``) and the last change version.

    ``b`` is the first change's pre-image (update/delete) — NULL when the subject was
    inserted in the range; ``a`` is the last change's post-image — NULL when it was deleted.
    """
    order = F.col("_commit_version") * 10 + F.coalesce(
        *[F.when(F.col("_change_type") == t, F.lit(o)) for t, o in _CHANGE_ORDER.items()]
    )
    image = F.struct(*[F.col(c) for c in columns], F.col("_change_type").alias("_type"))
    grouped = changes.groupBy(*key).agg(
        F.min_by(image, order).alias("_first"),
        F.max_by(image, order).alias("_last"),
        F.max("_commit_version").alias("_version"),
    )
    before = F.when(F.col("_first._type").isin("update_preimage", "delete"), F.col("_first"))
    after = F.when(F.col("_last._type").isin("insert", "update_postimage"), F.col("_last"))
    return grouped.select(*key, before.alias("b"), after.alias("a"), "_version")


def changed_traits(frame: DataFrame, traits: Mapping[str, str], types: Mapping[str, str], always: Sequence[str] = ()) -> DataFrame:
    """``frame`` (``b``/``a`` images) with ``_traits`` (JSON of changed traits) and ``_changed`` (any changed).

    A trait is sent when its value after the range differs from before it (null-safe)
    and is not NULL (an attribute table never erases a value with NULL; seed 000 FAQ).
    ``always`` traits (``email``) ride along with any change.
    """
    fields, flags = [], []
    for trait, column in traits.items():
        after, before = F.col(f"a.{column}"), F.col(f"b.{column}")
        changed = after.isNotNull() & ~after.eqNullSafe(before)
        flags.append(changed)
        keep = after.isNotNull() if trait in always else changed
        fields.append(F.when(keep, _trait_value(after, types[column])).alias(trait))
    any_changed = F.lit(False)
    for flag in flags:
        any_changed = any_changed | flag
    return (
        frame.withColumn("_traits_s", F.struct(*fields))
        .withColumn("_traits", F.to_json(F.col("_traits_s")))
        .withColumn("_changed", F.col("a").isNotNull() & any_changed)
    )


def identify_messages(changes: DataFrame, settings: ExportSettings, config: FeedlakeConfig) -> DataFrame:
    """contacts' changes → ``identify`` calls (``userId``, or ``anonymousId`` for an anonymous contact)."""
    spec = config.table(CONTACTS)
    traits = settings.traits.get(CONTACTS) or {"email": "email"}
    columns = sorted({*traits.values(), "is_anonymous"})
    states = changed_traits(_before_after(changes, ["tenant_id", "contact_key"], columns), traits, dict(spec.columns), ["email"])
    changed = states.where(F.col("_changed"))
    mid = message_id(F.col("tenant_id"), "identify", F.col("contact_key"), F.col("_version"), F.col("_traits"))
    anonymous = F.coalesce(F.col("a.is_anonymous"), F.lit(False))
    body = F.struct(
        F.lit("identify").alias("type"),
        mid.alias("messageId"),
        F.when(~anonymous, F.col("contact_key")).alias("userId"),
        F.when(anonymous, F.col("contact_key")).alias("anonymousId"),
        F.col("_traits_s").alias("traits"),
    )
    return changed.select("tenant_id", F.lit("identify").alias("type"), mid.alias("message_id"), F.to_json(body).alias("json"))


def group_messages(changes: DataFrame, members: DataFrame, settings: ExportSettings, config: FeedlakeConfig) -> DataFrame:
    """accounts' changes → one ``group`` call per contact of the account (``groupId`` = account key).

    A Segment group call needs a user (seed 002 / Segment spec); an account no contact
    belongs to yet is sent when its first contact links to it and it changes again.
    """
    spec = config.table(ACCOUNTS)
    traits = settings.traits.get(ACCOUNTS) or {}
    if not traits:
        return local_frame(changes.sparkSession, [], "tenant_id string, type string, message_id string, json string")
    states = changed_traits(_before_after(changes, ["tenant_id", "account_key"], sorted(set(traits.values()))),
                            traits, dict(spec.columns))
    changed = states.where(F.col("_changed")).join(members, on=["tenant_id", "account_key"], how="inner")
    entity = F.concat_ws("\u001f", F.col("account_key"), F.col("contact_key"))
    mid = message_id(F.col("tenant_id"), "group", entity, F.col("_version"), F.col("_traits"))
    body = F.struct(
        F.lit("group").alias("type"),
        mid.alias("messageId"),
        F.col("contact_key").alias("userId"),
        F.col("account_key").alias("groupId"),
        F.col("_traits_s").alias("traits"),
    )
    return changed.select("tenant_id", F.lit("group").alias("type"), mid.alias("message_id"), F.to_json(body).alias("json"))


def track_messages(changes: DataFrame) -> DataFrame:
    """moments' change feed → one ``track`` call ``mk_<moment>`` per entry, timestamped when the moment began."""
    entries = changes.where(F.col("_change_type").isin("insert", "update_postimage") & F.col("is_active"))
    event = F.concat(F.lit("mk_"), F.col("moment"))
    timestamp = F.date_format(F.col("entered_at"), _TS_FORMAT)
    payload = F.concat_ws("\u001f", event, timestamp)
    mid = message_id(F.col("tenant_id"), "track", F.concat_ws("\u001f", F.col("contact_key"), F.col("moment")),
                     F.col("_commit_version"), payload)
    body = F.struct(
        F.lit("track").alias("type"),
        mid.alias("messageId"),
        F.col("contact_key").alias("userId"),
        timestamp.alias("timestamp"),
        event.alias("event"),
        F.struct(F.col("entries").alias("mk_entries")).alias("properties"),
    )
    return entries.select("tenant_id", F.lit("track").alias("type"), mid.alias("message_id"), F.to_json(body).alias("json"))


# --- suppression (erasure issue) -------------------------------------------------------------


def drop_suppressed(messages: DataFrame, engine, config: FeedlakeConfig) -> DataFrame:
    """Messages naming an erased or suppressed subject removed (issue 17 item 7, the erasure issue's list).

    :func:`feedlake.erasure.forget.without_suppressed` drops every row whose ``email`` or
    ``contact_key`` (the message's userId / anonymousId, and an identify's
    ``traits.email``) hashes to a suppressed subject of its tenant.
    """
    from feedlake.streams.subjects import without_suppressed

    return without_suppressed(messages, engine, config, kinds={"email": "email", "contact_key": "contact_key"})


# --- export state --------------------------------------------------------------------------


def destination_id(request: ExportRequest, settings: ExportSettings) -> str:
    """How export_state names a destination: the outbox root, or the Segment endpoint URL (never the key)."""
    if request.outbox:
        return "outbox:" + request.outbox.rstrip("/")
    return "segment:" + settings.segment_url


def _tenants_of(engine, config: FeedlakeConfig) -> list[str]:
    """Every tenant with a contacts or accounts partition (Delta metadata / one distinct column)."""
    return sorted({t for name in (CONTACTS, ACCOUNTS) for t in engine.tenants(config.table(name))})


def _state_rows(engine, config: FeedlakeConfig, destination: str, tenants: Sequence[str]) -> dict[tuple[str, str], Any]:
    spec = config.table(EXPORT_STATE)
    frame = engine.read(spec, list(tenants)).where(F.col("destination") == F.lit(destination))
    # One row per tenant and source table: tenants × 3, whatever the warehouse size.
    return {(r["tenant_id"], r["table_name"]): r for r in frame.collect()}


def _write_state(engine, config: FeedlakeConfig, rows: list[tuple]) -> None:
    """MERGE a few export_state rows (tenants × sources, built in Python: no Spark job)."""
    if not rows:
        return
    spec = config.table(EXPORT_STATE)
    engine.ensure(spec)
    engine.merge_rows(spec, rows, plan_for(spec, sorted({r[0] for r in rows})))


@dataclass(frozen=True)
class Span:
    """Versions ``[start, end]`` of one source table to export for one tenant."""

    tenant_id: str
    table: str
    start: int
    end: int
    exported: int | None
    pending: int | None = None

    def recorded(self) -> int:
        """The ``exported_version`` once the span is sent: its end, never below what was exported before."""
        return max(self.end, self.exported if self.exported is not None else -1)

    def changes_state(self) -> bool:
        """Whether recording the span as exported changes its ``export_state`` row (else no write is due)."""
        return self.pending is not None or self.recorded() != self.exported


def plan_spans(
    state: Mapping[tuple[str, str], Any], tenants: Sequence[str], current: Mapping[str, int | None],
    since_version: int | None,
) -> list[Span]:
    """The version range per tenant and table: a pending range is re-sent as is (crash recovery),
    else from the last exported version + 1 (0 without state, or ``--since-version``) to now."""
    spans = []
    for tenant in tenants:
        for table in SOURCES:
            now = current.get(table)
            if now is None:
                continue
            row = state.get((tenant, table))
            exported = None if row is None else row["exported_version"]
            pending = None if row is None else row["pending_version"]
            if since_version is not None:
                start, end = since_version, now
            elif pending is not None:
                start, end = (exported + 1 if exported is not None else 0), pending
            else:
                start, end = (exported + 1 if exported is not None else 0), now
            spans.append(Span(tenant, table, start, end, exported, pending))
    return spans


def _changes_in(spark: SparkSession, engine, config: FeedlakeConfig, table: str, spans: Sequence[Span]) -> DataFrame | None:
    """The change feed of ``table`` restricted to each tenant's span (a join on a small span frame)."""
    mine = [s for s in spans if s.table == table and s.start <= s.end]
    if not mine:
        return None
    spec = config.table(table)
    try:
        feed = engine.changes(spec, min(s.start for s in mine), max(s.end for s in mine))
    except Exception as exc:  # CDF not recorded for the start version (enabled after it)
        if "change data" in str(exc).lower() or "DELTA_MISSING_CHANGE_DATA" in str(exc):
            raise ConfigError(
                f"{table}: the change data feed does not cover version {min(s.start for s in mine)} "
                f"(it was enabled later); use --since-version with a version from after it was enabled"
            ) from None
        raise
    bounds = local_frame(spark, [(s.tenant_id, s.start, s.end) for s in mine], "tenant_id string, _from long, _to long")
    joined = feed.join(F.broadcast(bounds), on="tenant_id", how="inner")
    return joined.where(F.col("_commit_version").between(F.col("_from"), F.col("_to"))).drop("_from", "_to")


def build_messages(spark: SparkSession, engine, config: FeedlakeConfig, settings: ExportSettings, spans: Sequence[Span]) -> DataFrame:
    """Every message of the spans: (tenant_id, type, message_id, json, contact_key, email)."""
    empty = local_frame(spark, [], "tenant_id string, type string, message_id string, json string")
    parts = []
    contacts = _changes_in(spark, engine, config, CONTACTS, spans)
    if contacts is not None:
        parts.append(identify_messages(contacts, settings, config))
    accounts = _changes_in(spark, engine, config, ACCOUNTS, spans)
    if accounts is not None:
        changed_keys = accounts.select("tenant_id", "account_key").distinct()
        members = engine.read_matching(config.table(CONTACT_ACCOUNTS), changed_keys, ["tenant_id", "account_key"])
        parts.append(group_messages(accounts, members.select("tenant_id", "account_key", "contact_key"), settings, config))
    moments = _changes_in(spark, engine, config, MOMENTS, spans)
    if moments is not None:
        parts.append(track_messages(moments))
    out = union_all([empty, *parts])
    subject = F.coalesce(F.get_json_object(F.col("json"), "$.userId"), F.get_json_object(F.col("json"), "$.anonymousId"))
    return out.withColumn("contact_key", subject).withColumn("email", F.get_json_object(F.col("json"), "$.traits.email"))


# --- destinations (Spark tasks) ------------------------------------------------------------


def _stats_batch(rows: list[tuple]) -> pa.RecordBatch:
    names = ["tenant_id", "type", "messages", "batches", "retries", "files", "skipped"]
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    types = [pa.string(), pa.string()] + [pa.int64()] * 5
    return pa.RecordBatch.from_arrays([pa.array(list(c), t) for c, t in zip(columns, types)], names=names)


def _rows_by_tenant(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(tenant, [(type, json), ...]) runs of a partition sorted by tenant."""
    tenant, rows = None, []
    for batch in batches:
        for t, kind, line in zip(batch.column("tenant_id").to_pylist(), batch.column("type").to_pylist(),
                                 batch.column("json").to_pylist()):
            if t != tenant and rows:
                yield tenant, rows
                rows = []
            tenant = t
            rows.append((kind, line))
    if rows:
        yield tenant, rows


def outbox_writer(root: str, folder: str, run_id: str, s3_settings=None):
    """A ``mapInArrow`` function writing each task's messages as one gzip JSON-lines file per tenant.

    The file goes to ``ROOT/tenant=<id>/segment/<folder>/part-<run>-<task>.jsonl.gz``:
    written under a temporary name and renamed (local), or written to a local temporary
    file and put whole (S3: a PUT is atomic). A task retried by Spark rewrites the same name.
    """

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        part = context.partitionId() if context is not None else 0
        stats = []
        for tenant, rows in _rows_by_tenant(batches):
            name = f"part-{run_id}-{part:05d}.jsonl.gz"
            relative = f"tenant={tenant}/segment/{folder}"
            data = gzip.compress("".join(line + "\n" for _, line in rows).encode("utf-8"))
            if root.startswith("s3://"):
                from feedlake.landing.storage import parse_s3_uri, s3_client

                location = parse_s3_uri(f"{root.rstrip('/')}/{relative}/{name}")
                with tempfile.TemporaryFile() as staged:
                    staged.write(data)
                    staged.seek(0)
                    s3_client(s3_settings).put_object(Bucket=location.bucket, Key=location.key, Body=staged)
            else:
                target = os.path.join(root, relative)
                os.makedirs(target, exist_ok=True)
                temporary = os.path.join(target, f".{name}.{os.getpid()}.tmp")
                with open(temporary, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temporary, os.path.join(target, name))
            counts: dict[str, int] = {}
            for kind, _ in rows:
                counts[kind] = counts.get(kind, 0) + 1
            for index, (kind, n) in enumerate(sorted(counts.items())):
                stats.append((tenant, kind, n, 0, 0, 1 if index == 0 else 0, 0))
        yield _stats_batch(stats)

    return write


class SegmentError(RuntimeError):
    """A batch Segment did not accept after every retry (the message never carries the write key)."""


def post_batch(url: str, auth: str, body: bytes, settings: ExportSettings, sleep=time.sleep) -> int:
    """POST one batch; retry 429, 5xx and network errors with exponential backoff (``Retry-After`` honoured).

    Returns the number of retries. Another 4xx (bad request, bad write key) is not
    retried: it would fail the same way.
    """
    retries = 0
    for attempt in range(settings.max_attempts):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": auth, "User-Agent": "feedlake-export",
        })
        wait = min(settings.max_backoff_seconds, settings.backoff_seconds * (2 ** attempt))
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:
                response.read()
                return retries
        except urllib.error.HTTPError as exc:
            status = exc.code
            if status != 429 and status < 500:
                raise SegmentError(f"Segment rejected a batch: HTTP {status} (not retried)") from None
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            if retry_after and retry_after.strip().isdigit():
                wait = min(settings.max_backoff_seconds, float(retry_after))
            reason = f"HTTP {status}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = type(exc).__name__
        if attempt + 1 < settings.max_attempts:
            retries += 1
            sleep(wait)
    raise SegmentError(f"Segment batch failed after {settings.max_attempts} attempts (last: {reason})")


def segment_sender(url: str, write_keys: Mapping[str, str], settings: ExportSettings, sent_at: str):
    """A ``mapInArrow`` function posting each task's messages to ``/v1/batch`` (stdlib ``urllib``).

    Messages are packed per tenant (each tenant's own write key, as the HTTP basic auth
    user with an empty password) into batches of at most ``max_batch_bytes``; a message
    over ``max_message_bytes`` is skipped and counted (Segment would reject it).
    """
    auths = {t: "Basic " + base64.b64encode(f"{k}:".encode()).decode("ascii") for t, k in write_keys.items()}
    envelope = len(b'{"batch":[],"sentAt":""}') + len(sent_at)

    def flush(tenant: str, pending: list[tuple[str, bytes]], stats: dict[tuple[str, str], list[int]]) -> None:
        if not pending:
            return
        body = b'{"batch":[' + b",".join(m for _, m in pending) + b'],"sentAt":"' + sent_at.encode() + b'"}'
        retries = post_batch(url, auths[tenant], body, settings)
        kinds: dict[str, int] = {}
        for kind, _ in pending:
            kinds[kind] = kinds.get(kind, 0) + 1
        for index, (kind, n) in enumerate(sorted(kinds.items())):
            row = stats.setdefault((tenant, kind), [0, 0, 0, 0])
            row[0] += n
            if index == 0:  # a batch (and its retries) counted once, under its first type
                row[1] += 1
                row[2] += retries

    def send(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stats: dict[tuple[str, str], list[int]] = {}
        for tenant, rows in _rows_by_tenant(batches):
            pending: list[tuple[str, bytes]] = []
            size = envelope
            for kind, line in rows:
                data = line.encode("utf-8")
                if len(data) > settings.max_message_bytes:
                    stats.setdefault((tenant, kind), [0, 0, 0, 0])[3] += 1
                    continue
                if pending and size + len(data) + 1 > settings.max_batch_bytes:
                    flush(tenant, pending, stats)
                    pending, size = [], envelope
                pending.append((kind, data))
                size += len(data) + 1
            flush(tenant, pending, stats)
        yield _stats_batch([(t, k, v[0], v[1], v[2], 0, v[3]) for (t, k), v in sorted(stats.items())])

    return send


def write_keys_for(tenants: Sequence[str], settings: ExportSettings) -> dict[str, str]:
    """Each tenant's write key: ``<ENV>_<TENANT>`` if set, else ``<ENV>`` (never from conf, never logged)."""
    keys = {}
    for tenant in tenants:
        own = f"{settings.write_key_env}_{re.sub(r'[^A-Z0-9]', '_', tenant.upper())}"
        key = os.environ.get(own) or os.environ.get(settings.write_key_env)
        if not key:
            raise ConfigError(f"no Segment write key for tenant {tenant!r}: set {own} or {settings.write_key_env}")
        keys[tenant] = key
    return keys


# --- the run ---------------------------------------------------------------------------------


def run_export(
    spark: SparkSession, config: FeedlakeConfig, engine, request: ExportRequest, moments: MomentsConf,
    run_id: str, now: datetime | None = None,
) -> ExportReport:
    """One export run (module doc): moments, pending state, messages to the destination, state."""
    if bool(request.outbox) == bool(request.segment):
        raise ConfigError("export needs exactly one destination: --outbox PATH or --segment")
    settings = config.settings.export
    now = now or datetime.now(timezone.utc)
    destination = destination_id(request, settings)
    report = ExportReport(run_id, getattr(engine, "name", "?"), destination, request.dry_run)
    engine.ensure_all([config.table(name) for name in (EXPORT_STATE, MOMENTS)])
    tenants = list(request.tenants) or _tenants_of(engine, config)
    if request.outbox is None and not request.dry_run:
        keys = write_keys_for(tenants, settings)  # fail before anything is written
    else:
        keys = {}
    if moments.default or moments.tenants:
        as_of = as_of_day(settings.as_of)
        report.moments = update_moments(engine, config, moments, tenants, as_of, now, write=not request.dry_run)
        report.extras["moments_as_of"] = as_of.isoformat()
    current = {t: engine.version(config.table(t)) for t in SOURCES}
    spans = plan_spans(_state_rows(engine, config, destination, tenants), tenants, current, request.since_version)
    for table in SOURCES:
        mine = [s for s in spans if s.table == table and s.start <= s.end]
        if mine:
            report.versions[table] = f"{min(s.start for s in mine)}..{max(s.end for s in mine)}"
    messages = build_messages(spark, engine, config, settings, spans)
    messages = drop_suppressed(messages, engine, config)
    messages = messages.select("tenant_id", "type", "message_id", "json").persist()
    try:
        counts = messages.groupBy("tenant_id", "type").agg(F.count(F.lit(1)).alias("n")).collect()
        total = sum(r["n"] for r in counts)
        if request.dry_run or total == 0:
            for r in counts:
                report.add(r["tenant_id"], r["type"], messages=r["n"])
        if request.dry_run:
            # moments entered now were not written: each would be one more track call
            for tenant, n in report.moments.entered_by_tenant.items():
                report.add(tenant, "track", messages=n)
            return report
        stamp = now
        if total:
            # The range about to be sent, recorded first: a crash before the final write re-sends it.
            _write_state(engine, config, [
                (s.tenant_id, destination, s.table, s.exported, s.end, run_id, stamp) for s in spans
            ])
            partitions = max(1, min(spark.sparkContext.defaultParallelism * 2,
                                    -(-total // settings.outbox_messages_per_file)))
            if request.segment:
                partitions = max(partitions, min(total, spark.sparkContext.defaultParallelism))
            ordered = messages.repartition(partitions, "tenant_id", "message_id").sortWithinPartitions("tenant_id", "message_id")
            staging = None
            if request.outbox:
                root = request.outbox if "://" in request.outbox else os.path.abspath(request.outbox)
                folder = "dt=" + now.astimezone(timezone.utc).strftime("%Y-%m-%d-%H-%M")
                if root.startswith("s3://") and local_master(spark):
                    # Local master: the tasks' Python workers were forked before this process's AWS
                    # settings may have been set, and share its disk: they write the files to a local
                    # staging folder, put whole to S3 below (file by file, streamed from disk).
                    staging = tempfile.mkdtemp(prefix="feedlake-outbox-")
                fn = outbox_writer(staging or root, folder, run_id, config.settings.s3)
            else:
                sent_at = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                fn = segment_sender(settings.segment_url, keys, settings, sent_at)
            stats = ordered.mapInArrow(fn, _STATS_SCHEMA).groupBy("tenant_id", "type").agg(
                *[F.sum(c).alias(c) for c in ("messages", "batches", "retries", "files", "skipped")]
            ).collect()
            if staging is not None:
                _upload_staged(staging, root, config.settings.s3)
            for r in stats:
                report.add(r["tenant_id"], r["type"], **{k: r[k] for k in ("messages", "batches", "retries", "files", "skipped")})
            _fail_once_for_tests()
        # After a send every row's pending range is cleared; otherwise only rows that change are
        # written, so a run with no new version and nothing pending commits nothing.
        _write_state(engine, config, [
            (s.tenant_id, destination, s.table, s.recorded(), None, None, stamp)
            for s in spans if total or s.changes_state()
        ])
    finally:
        messages.unpersist()
    return report


def _upload_staged(staging: str, root: str, settings) -> None:
    """Put every staged outbox file whole under the S3 ``root`` (a PUT is atomic), then remove the staging folder."""
    import shutil

    from feedlake.landing.storage import parse_s3_uri, s3_client

    client = s3_client(settings)
    try:
        for folder, _, names in os.walk(staging):
            for name in sorted(names):
                if not name.startswith("part-"):
                    continue
                relative = os.path.relpath(os.path.join(folder, name), staging).replace(os.sep, "/")
                location = parse_s3_uri(f"{root.rstrip('/')}/{relative}")
                client.upload_file(os.path.join(folder, name), location.bucket, location.key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fail_once_for_tests() -> None:
    """A crash between sending and recording, once (tests set :data:`FAIL_STATE_ENV` to a marker path)."""
    marker = os.environ.get(FAIL_STATE_ENV)
    if marker and not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write("failed once\n")
        raise RuntimeError("injected failure before recording export_state (test)")


def new_export_run_id(now: datetime) -> str:
    """``export-YYYYmmddTHHMMSSZ-xxxxxxxx``: sortable, unique per run."""
    import uuid

    return "export-" + now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def report_json(report: ExportReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True)
