"""Erasure requests: forget a person everywhere feedlake keeps them, and keep them out (issue 15).

A data subject's right to erasure (GDPR Art. 17, CCPA § 1798.105) reaches every copy
feedlake keeps: the tables that hold the person, the quarantine's verbatim records, the
derived weekly tables, the older data files Delta keeps for time travel, the per-file
statistics of the transaction log and the raw landing files. Rules:

* **Which tables and columns identify a person** is declared once, per table, in
  conf/tables.yaml (``subject:`` kind → columns; kinds ``email``, ``contact_key``,
  ``raw``), and which landing fields do, per stream, in conf/ingest.yaml
  (``privacy.stream_subjects``, else the stream's fields named like its target tables'
  subject columns). A new table declares it once and :func:`forget` erases it too.
* **Resolution**: an email is matched lower-cased and trimmed, a contact key exactly
  (trimmed). The person's other identifiers come from ``contacts`` (the contact keys
  and anonymous ids of their email, the emails of their keys), so a request by email
  also erases the events keyed by their contact keys, and ``crm_leads`` by email.
* **Deletes** are :meth:`~feedlake.delta.engines.DeltaEngine.delete_matching` MERGEs against a
  DataFrame of the matched rows' table keys: no identifier is ever rendered into SQL
  text (issue 11), so none reaches a commit's ``operationParameters`` either. Rows are
  found with Column expressions; verbatim records (``raw``: quarantine.raw_record) by a
  whole-token search (:func:`names_identifier`, also inside JSON string values).
* **Pseudonymous audit**: identifiers are stored only as keyed hashes, HMAC-SHA-256
  under a per-warehouse random secret (:func:`warehouse_salt`) of
  ``"<kind>:<normalized value>"``. A plain SHA-256 of an email is reversed by hashing
  candidate emails; the secret (``WAREHOUSE/_privacy/salt``, created on first use,
  mode 0600, never in conf, logs or tables) makes that impossible without it, keeps
  hashes of two warehouses unlinkable, and is stable per warehouse so suppression can
  match later arrivals. The same HMAC is computed by Spark builtins
  (:func:`hmac_column`: ``sha2`` over ``(K ⊕ opad) ‖ unhex(sha2((K ⊕ ipad) ‖ m))``),
  so records are hashed in the executors, equal to Python's :mod:`hmac`.
* **Suppression**: the hashed identifiers go to ``suppressed_subjects``; ingest,
  backfill and replays drop records naming one before anything is written
  (:func:`drop_suppressed`, counted as ``suppressed`` in the run report), including
  records headed for the quarantine (their raw text is searched token by token).
* **Physical removal**: the touched tables are VACUUMed with
  ``privacy.vacuum_retention_hours`` (default 168); ``purge`` uses 0 hours with the
  engines' safety switch off for that call only, then checkpoints the table and
  removes the log entries before the checkpoint (:func:`purge_log`), so no old commit
  keeps a statistic or an action naming the person.
* **Landing zone**: :func:`landing_holdings` lists the raw files whose lines name the
  person (streamed line by line, local or S3) and :func:`rewrite_landing_file`
  rewrites one without those lines (gzip kept, atomic replace); the manifest row then
  records the new size, mtime, ctime token, hash or ETag, so no run reads it again.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaEngine, open_delta_rs
from feedlake.delta.merge import delete_plan, plan_for
from feedlake.landing.layouts import TENANT_ID, LandingFile, discover, is_object_store
from feedlake.quality.suites import TENANT_SEPARATOR
from feedlake.settings.config import ALL_TENANTS, FeedlakeConfig, TableSpec
from feedlake.settings.session import local_frame, union_all
from feedlake.settings.tables import ACTIVITY_WEEKLY, CONTACT_ACCOUNTS, CONTACT_EVENTS, CONTACTS, INGEST_FILES, PRIVACY_REQUESTS
from feedlake.streams.subjects import (
    KINDS,
    SUPPRESSED_TABLE,
    ErasureRequest,
    PrivacyRequestError,
    erasure_request,
    names_any,
    normalize,
    normalized_column,
    raw_match,
    s3_settings,
    subject_hash,
    warehouse_salt,
)

log = logging.getLogger("feedlake.erasure.forget")

REQUESTS_TABLE = PRIVACY_REQUESTS
PRIVACY_TABLES = (REQUESTS_TABLE, SUPPRESSED_TABLE)
VACUUM_THREADS = 4  # vacuum_tables: tables vacuumed at once
EXIT_INCOMPLETE = 4  # `feedlake forget`: something that holds the person could not be removed


# --- identifiers and requests -------------------------------------------------------------


def parse_requests_csv(text: str, source: str = "requests") -> list[ErasureRequest]:
    """Requests from CSV text: a header with ``email`` and/or ``contact_key``, one identifier per row.

    Every row must fill exactly one of the columns; a malformed file (no such column,
    wrong field count, a row with none or both, an unterminated quote) is refused as a
    whole with the line that is wrong, before anything changes.
    """
    rows = list(_csv_rows(text, source))
    if not rows:
        raise PrivacyRequestError(f"{source}: empty file: expected a header with email and/or contact_key")
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    known = [n for n in names if n in KINDS]
    if not known or len(set(names)) != len(names) or any(n and n not in KINDS for n in names):
        raise PrivacyRequestError(
            f"{source} line {header_line}: header {header!r} must name the columns email and/or contact_key (once each)"
        )
    requests: list[ErasureRequest] = []
    for line, row in rows[1:]:
        if len(row) != len(names):
            raise PrivacyRequestError(f"{source} line {line}: {len(row)} fields, the header has {len(names)}")
        filled = [(n, v) for n, v in zip(names, row) if n in KINDS and v.strip()]
        if len(filled) != 1:
            raise PrivacyRequestError(f"{source} line {line}: fill exactly one of {known} (found {len(filled)})")
        requests.append(erasure_request(filled[0][0], filled[0][1], f"{source} line {line}: "))
    if not requests:
        raise PrivacyRequestError(f"{source}: no request rows after the header")
    return list(dict.fromkeys(requests))


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        for row in reader:
            if row:
                yield reader.line_num, row
    except csv.Error as exc:
        raise PrivacyRequestError(f"{source} line {reader.line_num}: malformed CSV: {exc}") from None


def read_requests_file(location: str, s3=None) -> list[ErasureRequest]:
    """:func:`parse_requests_csv` of a local file or an ``s3://`` object."""
    if is_object_store(location):
        from feedlake.landing import storage
        return parse_requests_csv(storage.read_text(location, s3), location)
    try:
        with open(location.removeprefix("file://"), encoding="utf-8") as fh:
            return parse_requests_csv(fh.read(), location)
    except (OSError, UnicodeDecodeError) as exc:
        raise PrivacyRequestError(f"--requests {location}: cannot read it: {exc}") from None


# --- the keyed hash -----------------------------------------------------------------------


# --- matching verbatim text ---------------------------------------------------------------


# --- suppression (ingest, backfill, replays) ----------------------------------------------


# --- forget: the tables -------------------------------------------------------------------


@dataclass
class RequestOutcome:
    """What one erasure request did (one ``privacy_requests`` row)."""

    request_id: str
    request: ErasureRequest
    emails: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    rows_removed: dict[str, int] = field(default_factory=dict)
    rows_left: dict[str, int] = field(default_factory=dict)
    landing_holding: int = 0
    landing_rewritten: int = 0
    landing_errors: list[str] = field(default_factory=list)
    purge_status: str = ""

    @property
    def identifiers(self) -> list[ErasureRequest]:
        return [ErasureRequest("email", e) for e in sorted(self.emails)] + [ErasureRequest("contact_key", k) for k in sorted(self.keys)]

    @property
    def status(self) -> str:
        if self.rows_left or self.landing_errors or self.landing_holding > self.landing_rewritten or "failed" in self.purge_status:
            return "incomplete"
        if not sum(self.rows_removed.values()) and not self.landing_rewritten:
            return "nothing_found"
        return "complete"


@dataclass
class ForgetResult:
    """Every request of one ``feedlake forget`` run."""

    tenant_id: str
    outcomes: list[RequestOutcome]
    vacuumed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(o.status != "incomplete" for o in self.outcomes)

    def render(self) -> str:
        lines = [f"feedlake forget: tenant {self.tenant_id}, {len(self.outcomes)} request(s)"]
        for o in self.outcomes:
            removed = ", ".join(f"{t} {n}" for t, n in sorted(o.rows_removed.items()) if n) or "no rows"
            lines.append(f"  {o.request_id} ({o.request.kind}): {o.status}: removed {removed}")
            if o.rows_left:
                lines.append(f"    STILL HOLDING: {json.dumps(o.rows_left, sort_keys=True)}")
            if o.landing_holding:
                lines.append(f"    landing files holding the subject: {o.landing_holding}, rewritten: {o.landing_rewritten}")
            for error in o.landing_errors:
                lines.append(f"    landing: {error}")
            lines.append(f"    files: {o.purge_status}")
        for table, status in sorted(self.vacuumed.items()):
            lines.append(f"  vacuum {table}: {status}")
        return "\n".join(lines)


def subject_tables(config: FeedlakeConfig) -> list[TableSpec]:
    """Tables declaring a ``subject:`` (conf order), the derived ones last."""
    tables = [t for t in config.tables.values() if t.subject and t.name not in PRIVACY_TABLES]
    return sorted(tables, key=lambda t: t.name in DERIVED)


def _idents_frame(spark: SparkSession, outcomes: Sequence[RequestOutcome]) -> DataFrame:
    rows = [(o.request_id, "email", e) for o in outcomes for e in sorted(o.emails)]
    rows += [(o.request_id, "contact_key", k) for o in outcomes for k in sorted(o.keys)]
    return local_frame(spark, rows, "request_id STRING, kind STRING, value STRING")


def matched_rows(engine: DeltaEngine, table: TableSpec, tenant_id: str, idents: DataFrame) -> DataFrame:
    """The stored rows of ``tenant_id`` in ``table`` naming an identifier, with its ``request_id``.

    contact_key columns: a semi-join read (:meth:`~feedlake.delta.engines.DeltaEngine.read_matching`);
    email columns: the tenant's rows compared lower-cased and trimmed; raw columns:
    :func:`raw_match`. Identifiers are rows of ``idents``, never SQL text.
    """
    parts: list[DataFrame] = []
    tenant = F.lit(tenant_id)
    # Broadcast hints go where the identifiers are joined, not on ``idents``: read_matching
    # also collects the keys, and a hint outside a join is a warning per query.
    whole: DataFrame | None = None
    for kind, columns in table.subject.items():
        for column in columns:
            if kind == "contact_key":
                keys = idents.where(F.col("kind") == "contact_key").select(
                    tenant.alias("tenant_id"), F.col("value").alias(column), "request_id"
                )
                found = engine.read_matching(table, keys, ["tenant_id", column])
                parts.append(
                    found.join(F.broadcast(keys), on=["tenant_id", column], how="inner")
                    .select(*table.column_names, "request_id")
                )
                continue
            whole = whole if whole is not None else engine.read(table, [tenant_id])
            if kind == "email":
                emails = idents.where(F.col("kind") == "email").select(F.col("value").alias("_value"), "request_id")
                parts.append(
                    whole.join(F.broadcast(emails), normalized_column("email", F.col(column)) == F.col("_value"), how="inner")
                    .select(*table.column_names, "request_id")
                )
            else:
                # Renamed: a table may have columns named like them (quality_results.kind).
                named = idents.select(F.col("request_id").alias("_request_id"), F.col("kind").alias("_kind"),
                                   F.col("value").alias("_value"))
                parts.append(
                    whole.crossJoin(F.broadcast(named)).where(raw_match(F.col(column), F.col("_kind"), F.col("_value")))
                    .select(*table.column_names, F.col("_request_id").alias("request_id"))
                )
                # Checks over all tenants keep their rows under tenant "*" and name each value
                # with its tenant ("acme/anon-ada" in a sample): those rows name the person too.
                prefixed = named.select("_request_id", "_kind", F.concat(F.lit(tenant_id + TENANT_SEPARATOR), F.col("_value")).alias("_value"))
                parts.append(
                    engine.read(table, [ALL_TENANTS]).crossJoin(F.broadcast(prefixed))
                    .where(raw_match(F.col(column), F.col("_kind"), F.col("_value")))
                    .select(*table.column_names, F.col("_request_id").alias("request_id"))
                )
    return union_all(parts).dropDuplicates([*table.key, "request_id"])


def left_behind(engine: DeltaEngine, config: FeedlakeConfig, tenant_id: str, idents: DataFrame) -> list[tuple[str, str, int]]:
    """The verification after the deletes: ``(table, request_id, rows)`` still naming a request, in table order.

    ``idents`` holds ``request_id, kind, value`` (the requests' resolved identifiers).
    """
    return request_counts(subject_matches(engine, config, tenant_id, idents))


def subject_matches(engine: DeltaEngine, config: FeedlakeConfig, tenant_id: str, idents: DataFrame) -> dict[str, DataFrame]:
    """Every stored subject table's :func:`matched_rows`, by table name, in :func:`subject_tables` order."""
    return {t.name: matched_rows(engine, t, tenant_id, idents) for t in subject_tables(config) if engine.exists(t)}


def request_counts(found_in: Mapping[str, DataFrame]) -> list[tuple[str, str, int]]:
    """``(table, request_id, rows)`` of the frames of matched rows, per table (in the mapping's order).

    One aggregation over the union of the tables' matches, one collect: not a count job
    per table (delta-spark, the verification of a forget in sample/landing's warehouse:
    5.6-7.2 s one table after the other, 4.3-5.5 s as one).
    """
    if not found_in:
        return []
    order = {name: i for i, name in enumerate(found_in)}
    matches = union_all([found.select(F.lit(name).alias("_table"), "request_id") for name, found in found_in.items()])
    counts = matches.groupBy("_table", "request_id").count().collect()
    return sorted(((r["_table"], r["request_id"], r["count"]) for r in counts), key=lambda r: (order[r[0]], r[1]))


def resolve(engine: DeltaEngine, config: FeedlakeConfig, spark: SparkSession, tenant_id: str, outcomes: list[RequestOutcome]) -> None:
    """Add to each request the person's other identifiers found in ``contacts`` (and keys equal to the email).

    A contact row holding one of the person's emails, keys or anonymous ids gives its
    email, contact key and anonymous id; repeated until nothing new is found (three rounds at most).
    """
    if CONTACTS not in config.tables:
        return
    contacts = config.table(CONTACTS)
    for o in outcomes:
        o.keys |= {o.request.normalized} if o.request.kind == "contact_key" else set()
        o.emails |= {o.request.normalized} if o.request.kind == "email" else set()
        if o.request.kind == "email":
            o.keys.add(o.request.normalized)  # a seed-001 contact without contact_id is keyed by its email
    for _ in range(3):
        found = matched_rows(engine, contacts, tenant_id, _idents_frame(spark, outcomes))
        rows = found.select("request_id", "contact_key", "anonymous_id", "email").collect()  # the person's own rows: small
        grew = False
        by_id = {o.request_id: o for o in outcomes}
        for r in rows:
            o = by_id[r["request_id"]]
            new_keys = {v for v in (r["contact_key"], r["anonymous_id"]) if v} - o.keys
            new_emails = ({normalize("email", r["email"])} if r["email"] else set()) - o.emails
            o.keys |= new_keys
            o.emails |= new_emails
            grew = grew or bool(new_keys or new_emails)
        if not grew:
            return


def recompute_activity(engine: DeltaEngine, config: FeedlakeConfig, tenant_id: str, weeks: Sequence[date]) -> int:
    """Recompute ``activity_weekly`` for the weeks the removed events fell in (feedlake.derived.activity rules)."""
    from feedlake.derived.activity import TABLE, activity_weekly
    from feedlake.derived.slices import Slices, replace_slices

    if not weeks or TABLE not in config.tables:
        return 0
    stored = engine.read(config.table(CONTACT_EVENTS), [tenant_id], within=Slices.of_weeks("event_timestamp", weeks, unix_seconds=True))
    links = engine.read_matching(config.table(CONTACT_ACCOUNTS), stored.select("tenant_id", "contact_key"), ["tenant_id", "contact_key"])
    write = replace_slices(engine, config.table(TABLE), tenant_id, activity_weekly(stored, links), Slices.of_weeks("week_start", weeks))
    log.info("forget %s: activity weeks %s recomputed: %s", tenant_id, [w.isoformat() for w in weeks], write)
    return write.deleted + write.updated + write.inserted


# Derived tables recomputed (for the slices the removed rows touched) before their own
# subject rows are deleted; the subject delete then removes whatever is left.
DERIVED = {ACTIVITY_WEEKLY: recompute_activity}


def _known_tenant(engine: DeltaEngine, config: FeedlakeConfig, tenant_id: str) -> bool:
    if not TENANT_ID.fullmatch(tenant_id or ""):
        return False
    manifest = config.table(INGEST_FILES)
    return engine.exists(manifest) and not engine.read(manifest, [tenant_id]).limit(1).isEmpty()


def forget(
    spark: SparkSession,
    config: FeedlakeConfig,
    engine: DeltaEngine,
    tenant_id: str,
    requests: Sequence[ErasureRequest],
    landing: str | None = None,
    rewrite_landing: bool = False,
    purge_now: bool = False,
    now: datetime | None = None,
) -> ForgetResult:
    """Erase each requested person of ``tenant_id`` from every subject table, suppress them, audit it.

    Checks first (nothing is written when they fail): a known tenant (one with landing
    files in the manifest) and at least one request. Then: resolution (:func:`resolve`),
    per table one MERGE ... DELETE of the matched rows' keys, the derived weeks
    recomputed, a verification read (rows still matching are ``rows_left``: status
    ``incomplete``), the suppression list, VACUUM (and with ``purge_now`` retention 0
    and :func:`purge_log`), the landing zone, and one audit row per request.
    """
    now = now or datetime.now(timezone.utc)
    if not requests:
        raise PrivacyRequestError("no identifier to forget: give --email, --contact-key or --requests")
    if not TENANT_ID.fullmatch(tenant_id or ""):
        raise PrivacyRequestError(f"--tenant {tenant_id!r} is not a tenant id")
    if not _known_tenant(engine, config, tenant_id):
        raise PrivacyRequestError(f"unknown tenant {tenant_id!r}: no landing file of it was ever ingested into this warehouse")
    hours = retention_hours(config)
    s3 = s3_settings(config)
    salt = warehouse_salt(engine.warehouse, s3, create=True)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    outcomes = [RequestOutcome(f"{stamp}-{i + 1}", r) for i, r in enumerate(requests)]
    resolve(engine, config, spark, tenant_id, outcomes)
    idents = _idents_frame(spark, outcomes).persist()
    by_id = {o.request_id: o for o in outcomes}
    weeks: list[date] = []
    touched: list[TableSpec] = []
    cached: list[DataFrame] = [idents]
    # Every table's matches first, counted in one job (which also fills their caches), then the deletes.
    found_in = {name: found.persist() for name, found in subject_matches(engine, config, tenant_id, idents).items()}
    cached.extend(found_in.values())
    for table_name, request_id, count in request_counts(found_in):
        by_id[request_id].rows_removed[table_name] = count
    for name, found in found_in.items():
        table = config.table(name)
        recompute = DERIVED.get(table.name)
        if table.name == CONTACT_EVENTS:
            from feedlake.derived.activity import event_weeks

            weeks = event_weeks(found)  # the person's own weeks (small), before their events go
        changed = recompute(engine, config, tenant_id, weeks) if recompute else 0
        keys = found.select(*table.key).distinct()
        scope = [tenant_id, ALL_TENANTS]  # the tenant's rows and the all-tenant rows naming its values
        deleted = engine.delete_matching(table, keys, delete_plan(table, table.key, scope, null_safe=table.policy == "replace"))
        log.info("forget %s: %s: %d rows deleted", tenant_id, table.name, deleted)
        if deleted or changed:
            touched.append(table)
    for table_name, request_id, count in left_behind(engine, config, tenant_id, idents):
        by_id[request_id].rows_left[table_name] = count
    _suppress(spark, config, engine, tenant_id, outcomes, salt, now)
    result = ForgetResult(tenant_id, outcomes)
    purge = vacuum_tables(engine, touched, hours, purge_now, result)
    for o in outcomes:
        o.purge_status = purge
    if landing is not None:
        _landing(spark, config, engine, tenant_id, landing, outcomes, rewrite_landing, s3)
    identifiers = [i for o in outcomes for i in o.identifiers]
    removed = purge_quality_artifacts(engine.warehouse, identifiers, s3)
    if removed:
        log.info("forget %s: %d Great Expectations result/Data Docs files naming the subject removed", tenant_id, removed)
    redacted = scrub_run_reports(engine.warehouse, identifiers, s3)
    if redacted:
        log.info("forget %s: the subject redacted from %d run report files", tenant_id, redacted)
    _audit(spark, config, engine, tenant_id, outcomes, salt, now)
    for df in cached:
        df.unpersist()
    return result


def retention_hours(config: FeedlakeConfig) -> int:
    """``privacy.vacuum_retention_hours`` (default 168 = 7 days), a whole number >= 0."""
    return config.settings.privacy.vacuum_retention_hours


def _suppress(spark, config, engine, tenant_id, outcomes, salt, now) -> None:
    if SUPPRESSED_TABLE not in config.tables:
        return
    table = config.table(SUPPRESSED_TABLE)
    rows = {
        (tenant_id, i.kind, subject_hash(salt, i.kind, i.value)): o.request_id for o in outcomes for i in o.identifiers
    }
    frame = local_frame(spark, [(*k, rid, now) for k, rid in rows.items()], table.ddl)
    engine.ensure(table)
    engine.merge(table, frame, plan_for(table, tenant_id))


def _audit(spark, config, engine, tenant_id, outcomes, salt, now) -> None:
    table = config.table(REQUESTS_TABLE)
    rows = [
        (
            tenant_id, o.request_id, now, o.request.kind, subject_hash(salt, o.request.kind, o.request.value),
            json.dumps(sorted({subject_hash(salt, i.kind, i.value) for i in o.identifiers})),
            json.dumps(o.rows_removed, sort_keys=True), json.dumps(o.rows_left, sort_keys=True),
            json.dumps({"holding": o.landing_holding, "rewritten": o.landing_rewritten, "errors": len(o.landing_errors)}),
            o.purge_status, o.status, engine.name,
        )
        for o in outcomes
    ]
    engine.ensure(table)
    engine.merge(table, local_frame(spark, rows, table.ddl), plan_for(table, tenant_id))


def vacuum_tables(engine: DeltaEngine, tables: Sequence[TableSpec], hours: int, purge_now: bool, result: ForgetResult) -> str:
    """VACUUM the touched tables: retention ``hours``, or 0 and the log purged with ``purge_now``.

    The tables are vacuumed at once, on up to :data:`VACUUM_THREADS` threads: a VACUUM is
    a folder listing and file deletions per table, mostly waiting on storage, and tables
    share no file (delta-spark, sample/landing's 3 touched tables: 5.2-7.3 s one after the
    other). A table whose VACUUM fails is reported and audited; the others still run.
    """

    def one(table: TableSpec) -> tuple[int | None, Exception | None]:
        try:
            removed = engine.vacuum(table, 0 if purge_now else hours, purge=purge_now)
            if purge_now:
                purge_log(engine, table)
            vacuum_change_data(engine, table, hours, purge_now)
            return removed, None
        except Exception as exc:  # reported and audited: the command then exits "incomplete"
            log.exception("vacuum of %s failed", table.name)
            return None, exc

    outcomes: list[tuple[int | None, Exception | None]] = []
    if tables:
        with ThreadPoolExecutor(max_workers=min(VACUUM_THREADS, len(tables)), thread_name_prefix="feedlake-vacuum") as pool:
            outcomes = list(pool.map(one, tables))
    failed = []
    for table, (removed, error) in zip(tables, outcomes, strict=True):
        if error is not None:
            result.vacuumed[table.name] = f"failed: {type(error).__name__}"
            failed.append(table.name)
            continue
        result.vacuumed[table.name] = f"{'purged' if purge_now else f'retention {hours}h'}" + (
            f", {removed} files removed" if removed is not None else ""
        )
    if failed:
        return f"failed: vacuum of {', '.join(failed)}"
    if purge_now:
        return "purged: old data files and log entries removed"
    return f"retained {hours}h: old data files are removed by the first VACUUM after {hours} hours"


# --- the transaction log ------------------------------------------------------------------

_LOG_FILE = re.compile(r"(\d{20})\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet|checkpoint\.[0-9a-f-]+\.(json|parquet))$")


def purge_log(engine: DeltaEngine, table: TableSpec) -> int:
    """Checkpoint ``table`` at its current version and delete the log entries before it.

    A reader starts from the newest checkpoint, so commits before it are only needed for
    time travel, which a purge ends on purpose: their ``add`` statistics and actions are
    the last place an erased value could sit in the log (tables written before
    ``delta.dataSkippingStatsColumns`` was set). Done with delta-rs for both engines
    (same protocol). Returns the number of log files removed.
    """
    dt, path = open_delta_rs(engine, table)
    if dt is None:
        return 0
    version = dt.version()
    dt.create_checkpoint()
    old = [name for name in _list_log(path) if (m := _LOG_FILE.match(name)) and int(m.group(1)) < version]
    _delete_log(path, old)
    log.info("table %s: checkpoint at version %d, %d older log entries removed", table.name, version, len(old))
    return len(old)


def vacuum_change_data(engine: DeltaEngine, table: TableSpec, hours: int, purge: bool) -> int:
    """Delete Change Data Feed files (``_change_data/``) that hold erased rows as ``delete``/pre-image changes.

    delta-rs 1.6's VACUUM leaves ``_change_data`` alone (measured), and a forget's own
    DELETE writes the person's rows there on a table with ``delta.enableChangeDataFeed``.
    As delta-spark's VACUUM does, files older than ``hours`` go; with ``purge`` every file
    no remaining log entry references goes (:func:`purge_log` ran first, so the change
    feed before the purge is gone, as time travel is). Returns the number deleted.
    """
    path = engine.warehouse.rstrip("/") + "/" + table.name
    files = _list_tree(path, "_change_data")
    if not files:
        return 0
    if purge:
        kept = _cdc_referenced(path)
        doomed = [name for name, _ in files if name not in kept]
    else:
        limit = datetime.now(timezone.utc).timestamp() - hours * 3600
        doomed = [name for name, modified in files if modified < limit]
    _delete_tree(path, doomed)
    log.info("table %s: %d change-data files removed", table.name, len(doomed))
    return len(doomed)


def _list_tree(path: str, folder: str) -> list[tuple[str, float]]:
    """``(relative path, modification time)`` of every file under ``path/folder``."""
    if is_object_store(path):
        from feedlake.landing import storage
        loc = storage.parse_s3_uri(path.rstrip("/") + "/")
        objects = storage.list_objects(storage.s3_client(), loc, [loc.prefix + folder + "/"])
        return [(o["Key"][len(loc.prefix):], o["LastModified"].timestamp()) for o in objects]
    root = path.removeprefix("file://")
    out = []
    for base, _, names in os.walk(os.path.join(root, folder)):
        for name in names:
            full = os.path.join(base, name)
            out.append((os.path.relpath(full, root).replace(os.sep, "/"), os.stat(full).st_mtime))
    return out


def _cdc_referenced(path: str) -> set[str]:
    """``_change_data`` paths the remaining commit files reference (checkpoints hold no ``cdc`` actions)."""
    from urllib.parse import unquote

    referenced: set[str] = set()
    for name in _list_log(path):
        if not name.endswith(".json") or not _LOG_FILE.match(name):
            continue
        for line in _read_small(path.rstrip("/") + "/_delta_log/" + name).splitlines():
            action = json.loads(line) if line.strip() else {}
            if "cdc" in action:
                referenced.add(unquote(action["cdc"]["path"]))
    return referenced


def _read_small(location: str) -> str:
    if is_object_store(location):
        from feedlake.landing import storage
        return storage.read_text(location)
    with open(location.removeprefix("file://"), encoding="utf-8") as fh:
        return fh.read()


def purge_quality_artifacts(warehouse: str, identifiers: Sequence[ErasureRequest], s3=None) -> int:
    """Remove Great Expectations files under ``WAREHOUSE/_quality/`` that name a subject.

    GX keeps each validation's unexpected-value samples in its own result JSON and in
    the rendered Data Docs pages: copies of table values outside every Delta table. They
    are caches of ``quality_results`` (itself erased like any subject table), so a file
    naming an erased identifier is removed whole; the next run re-renders the site index.
    """
    if not identifiers:
        return 0
    return _rewrite_files(warehouse.rstrip("/") + "/_quality", lambda text: None if names_any(text, identifiers) else text, s3)


REDACTED = "[erased]"


def redact(text: str, identifiers: Sequence[ErasureRequest]) -> str:
    """``text`` with every occurrence of the identifiers (as written, JSON- and HTML-escaped) replaced.

    >>> redact('{"sample": ["acme/Ada@Acme.com"]}', [ErasureRequest("email", "ada@acme.com")])
    '{"sample": ["acme/[erased]"]}'
    """
    for i in identifiers:
        flags = re.IGNORECASE if i.kind == "email" else 0
        for form in sorted({i.value, i.normalized, json.dumps(i.normalized)[1:-1], html.escape(i.normalized)}, key=len,
                           reverse=True):
            text = re.sub(re.escape(form), REDACTED, text, flags=flags)
    return text


def scrub_run_reports(warehouse: str, identifiers: Sequence[ErasureRequest], s3=None) -> int:
    """Redact the subject from the run reports under ``WAREHOUSE/_reports/`` (JSON and HTML pages).

    A run report keeps the run's counts (an audit record, so it stays) and may quote a
    quality sample or a quarantined value naming the person: those are replaced by
    :data:`REDACTED`. Returns how many files changed.
    """
    if not identifiers:
        return 0
    return _rewrite_files(warehouse.rstrip("/") + "/_reports", lambda text: redact(text, identifiers), s3)


def _rewrite_files(root: str, transform, s3=None) -> int:
    """Apply ``transform`` (text → new text, or None to delete) to the .json/.html files under ``root``."""
    changed = 0
    if is_object_store(root):
        from feedlake.landing import storage
        loc = storage.parse_s3_uri(root + "/")
        client = storage.s3_client(s3)
        doomed = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix):
            for item in page.get("Contents", ()):
                if not item["Key"].endswith((".json", ".html")):
                    continue
                body = client.get_object(Bucket=loc.bucket, Key=item["Key"])["Body"].read().decode("utf-8", "replace")
                after = transform(body)
                if after is None:
                    doomed.append({"Key": item["Key"]})
                elif after != body:
                    client.put_object(Bucket=loc.bucket, Key=item["Key"], Body=after.encode("utf-8"))
                    changed += 1
        for start in range(0, len(doomed), 1000):
            client.delete_objects(Bucket=loc.bucket, Delete={"Objects": doomed[start:start + 1000]})
        return changed + len(doomed)
    for folder, _dirs, files in os.walk(root.removeprefix("file://")):
        for name in files:
            if not name.endswith((".json", ".html")):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", errors="replace") as fh:
                body = fh.read()
            after = transform(body)
            if after is None:
                os.remove(path)
            elif after != body:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(after)
            else:
                continue
            changed += 1
    return changed


def _delete_tree(path: str, names: Sequence[str]) -> None:
    if not names:
        return
    if is_object_store(path):
        from feedlake.landing import storage
        loc = storage.parse_s3_uri(path.rstrip("/") + "/")
        client = storage.s3_client()
        for start in range(0, len(names), 1000):
            chunk = names[start:start + 1000]
            client.delete_objects(Bucket=loc.bucket, Delete={"Objects": [{"Key": loc.prefix + n} for n in chunk]})
        return
    root = path.removeprefix("file://")
    for name in names:
        for candidate in (name, os.path.join(os.path.dirname(name), f".{os.path.basename(name)}.crc")):
            try:
                os.remove(os.path.join(root, candidate))
            except FileNotFoundError:
                pass


def _list_log(path: str) -> list[str]:
    if is_object_store(path):
        from feedlake.landing import storage
        loc = storage.parse_s3_uri(path.rstrip("/") + "/_delta_log/")
        return [o["Key"].rsplit("/", 1)[-1] for o in storage.list_objects(storage.s3_client(), loc, [loc.prefix])]
    folder = os.path.join(path.removeprefix("file://"), "_delta_log")
    return sorted(os.listdir(folder))


def _delete_log(path: str, names: Sequence[str]) -> None:
    if not names:
        return
    if is_object_store(path):
        from feedlake.landing import storage
        loc = storage.parse_s3_uri(path.rstrip("/") + "/_delta_log/")
        client = storage.s3_client()
        for start in range(0, len(names), 1000):
            chunk = names[start:start + 1000]
            client.delete_objects(Bucket=loc.bucket, Delete={"Objects": [{"Key": loc.prefix + n} for n in chunk]})
        return
    folder = os.path.join(path.removeprefix("file://"), "_delta_log")
    for name in names:
        for candidate in (name, f".{name}.crc"):
            try:
                os.remove(os.path.join(folder, candidate))
            except FileNotFoundError:
                pass


# --- the landing zone ---------------------------------------------------------------------


def _open_landing(file: LandingFile):
    from feedlake.landing.storage import open_binary

    return open_binary(file.location)


def _lines(raw) -> Iterator[bytes]:
    """The physical lines of a (possibly gzip) stream, ``\\n`` kept; read in buffered chunks."""
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    yield from iter(stream.readline, b"")


def _is_gzip(file: LandingFile) -> bool:
    with _open_landing(file) as raw:
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
        return buffered.peek(2)[:2] == b"\x1f\x8b"


def file_names_subject(file: LandingFile, identifiers: Sequence[ErasureRequest]) -> int:
    """How many lines of a landing file name one of the identifiers (streamed line by line)."""
    count = 0
    with _open_landing(file) as raw:
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
        for line in _lines(buffered):
            if names_any(line.decode("utf-8", errors="replace"), identifiers):
                count += 1
    return count


def landing_holdings(
    landing: str, tenant_id: str, identifiers: Sequence[ErasureRequest], config: FeedlakeConfig, s3=None
) -> list[tuple[LandingFile, int]]:
    """The tenant's readable landing files with lines naming the person, and how many (local or S3)."""
    found = discover(landing, [tenant_id], None, config.settings.landing_layout, s3=s3)
    files = [f for f in found if f.refusal is None and f.location and f.format]
    out = []
    for f in files:
        lines = file_names_subject(f, identifiers)
        if lines:
            out.append((f, lines))
    return out


def rewrite_landing_file(file: LandingFile, identifiers: Sequence[ErasureRequest], s3=None) -> int:
    """Rewrite a landing file without the lines naming the person: gzip stays gzip, atomic replace.

    A CSV file's header (its first non-blank line) is always kept. Local: a hidden
    temporary file in the same folder (never discovered), fsync'ed, then ``os.replace``;
    S3: the new object is uploaded whole (a PUT replaces an object atomically). Returns
    the number of lines removed.
    """
    gz = _is_gzip(file)
    remote = is_object_store(file.location)
    folder = tempfile.gettempdir() if remote else os.path.dirname(file.location)
    fd, temp = tempfile.mkstemp(prefix=".feedlake-forget-", dir=folder)
    removed = 0
    try:
        with os.fdopen(fd, "wb") as out_raw:
            out = gzip.GzipFile(fileobj=out_raw, mode="wb", mtime=0) if gz else out_raw
            header_pending = file.format == "csv"
            with _open_landing(file) as raw:
                buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
                for line in _lines(buffered):
                    text = line.decode("utf-8", errors="replace")
                    if header_pending and text.strip():
                        header_pending = False
                    elif names_any(text, identifiers):
                        removed += 1
                        continue
                    out.write(line)
            if gz:
                out.close()
            out_raw.flush()
            os.fsync(out_raw.fileno())
        if remote:
            from feedlake.landing import storage
            loc = storage.parse_s3_uri(file.location)
            with open(temp, "rb") as body:
                storage.s3_client(s3).put_object(Bucket=loc.bucket, Key=loc.key, Body=body)
            os.remove(temp)
        else:
            os.chmod(temp, os.stat(file.location).st_mode & 0o7777)
            os.replace(temp, file.location)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return removed


def _landing(spark, config, engine, tenant_id, landing, outcomes, rewrite, s3) -> None:
    """List (and with ``rewrite`` rewrite) the landing files naming each person; update their manifest rows."""
    from feedlake.ingest.file_plan import read_manifest, with_hash

    rewritten: list[LandingFile] = []
    for o in outcomes:
        for f, lines in landing_holdings(landing, tenant_id, o.identifiers, config, s3):
            o.landing_holding += 1
            print(f"landing file holding {o.request_id}: {f.source_file} ({lines} line(s))")
            if not rewrite:
                continue
            try:
                rewrite_landing_file(f, o.identifiers, s3)
                o.landing_rewritten += 1
                rewritten.append(f)
            except Exception as exc:
                log.exception("rewriting %s failed", f.source_file)
                o.landing_errors.append(f"{f.source_file}: {type(exc).__name__}")
    if not rewritten:
        return
    manifest = read_manifest(engine, config, [tenant_id])
    fresh = {f.source_file: f for f in discover(landing, [tenant_id], None, config.settings.landing_layout, s3=s3)}
    table = config.table(INGEST_FILES)
    rows = []
    for old in rewritten:
        row = manifest.get((tenant_id, old.source_file))
        new = fresh.get(old.source_file)
        if row is None or new is None:
            continue  # never ingested: the next run reads the rewritten file as a new one
        new = with_hash(new)
        identity = {
            "size_bytes": new.size_bytes, "modified_at": new.modified_at, "etag": new.etag,
            "modified_ns": new.modified_ns, "stat_token": new.stat_token, "sha256": new.sha256,
        }
        rows.append(tuple(identity[c] if c in identity else row.get(c) for c in table.column_names))
    if rows:
        engine.merge(table, local_frame(spark, rows, table.ddl), plan_for(table, tenant_id))
