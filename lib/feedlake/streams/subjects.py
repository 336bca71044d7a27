"""Who a record names: normalized identifiers, salted subject hashes, and suppression (issue 15).

An erasure request names a person by ``email`` or ``contact_key`` (:data:`KINDS`),
normalized (:func:`normalize`). The warehouse keeps only salted HMACs of erased
subjects (``suppressed_subjects``; the salt lives under ``_privacy/salt`` in the
warehouse), so a record naming a forgotten person is dropped before anything is written
(:func:`suppress_records`, the ingest's suppress stage) and never exported again
(:func:`without_suppressed`). ``feedlake forget`` itself is :mod:`feedlake.erasure.forget`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

from feedlake.delta.engines import DeltaEngine
from feedlake.landing.layouts import is_object_store
from feedlake.landing.storage import S3Settings
from feedlake.settings.config import ConfigError, FeedlakeConfig, StreamSpec
from feedlake.settings.job import FIELD_PATH, STREAM_SUBJECT_KINDS
from feedlake.settings.tables import SUPPRESSED_SUBJECTS

KINDS = STREAM_SUBJECT_KINDS


SUPPRESSED_TABLE = SUPPRESSED_SUBJECTS


SALT_PATH = "_privacy/salt"


# Characters that continue a token: an identifier is named by a text only where it is
# bounded by anything else (or the text's ends), so key "c-1" is not found in "c-10".
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@+")


_TOKEN_SPLIT = r"[^A-Za-z0-9_.@+-]+"


_FIELD_PATH = FIELD_PATH


class PrivacyRequestError(ConfigError):
    """A request that cannot be honoured as given (unknown tenant, empty identifier, bad CSV): nothing is changed."""


def normalize(kind: str, value: str) -> str:
    """The form an identifier is matched and hashed in: emails lower-cased, both trimmed of spaces.

    Spaces only, as :func:`feedlake.rules.contracts.field_text` (Spark ``trim``) trims record values.

    >>> normalize("email", "  Ada@Acme.COM ")
    'ada@acme.com'
    >>> normalize("contact_key", " C-1 ")
    'C-1'
    """
    text = value.strip(" ")
    return text.lower() if kind == "email" else text


@dataclass(frozen=True)
class ErasureRequest:
    """One identifier to forget, checked: ``kind`` is ``email`` or ``contact_key``."""

    kind: str
    value: str

    @property
    def normalized(self) -> str:
        return normalize(self.kind, self.value)


def erasure_request(kind: str, value: str | None, where: str = "") -> ErasureRequest:
    """A checked request; an empty identifier or an email without ``@`` is refused (nothing changes)."""
    if kind not in KINDS:
        raise PrivacyRequestError(f"{where}identifier kind {kind!r} not in {list(KINDS)}")
    text = normalize(kind, (value or "").strip())
    if not text:
        raise PrivacyRequestError(f"{where}empty {kind}: give the identifier to forget")
    if kind == "email" and ("@" not in text or any(c.isspace() for c in text)):
        raise PrivacyRequestError(f"{where}{kind} {value!r} is not an email address")
    return ErasureRequest(kind, text)


def warehouse_salt(warehouse: str, s3=None, create: bool = True) -> bytes | None:
    """The warehouse's secret hashing key (32 random bytes, hex in ``WAREHOUSE/_privacy/salt``).

    Created on first use (``create``), exclusively (``O_EXCL``, mode 0600) on a local
    warehouse; ``None`` when it does not exist and ``create`` is false (no request was
    ever made there, so nothing can be suppressed). Back it up with the warehouse: lost,
    the stored hashes match nothing any more.
    """
    location = warehouse.rstrip("/") + "/" + SALT_PATH
    if is_object_store(location):
        from feedlake.landing import storage
        try:
            return bytes.fromhex(storage.read_text(location, s3).strip())
        except storage.StorageError:
            if not create:
                return None
        storage.write_text(location, secrets.token_hex(32), s3)
        return bytes.fromhex(storage.read_text(location, s3).strip())  # a racing creator's value wins for both
    path = location.removeprefix("file://")
    if not os.path.exists(path):
        if not create:
            return None
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        except FileExistsError:
            pass
    with open(path, encoding="ascii") as fh:
        return bytes.fromhex(fh.read().strip())


def subject_hash(salt: bytes, kind: str, value: str) -> str:
    """HMAC-SHA-256 (hex) of ``"<kind>:<normalized value>"`` under the warehouse key."""
    message = f"{kind}:{normalize(kind, value)}".encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()


def _pads(salt: bytes) -> tuple[bytes, bytes]:
    key = hashlib.sha256(salt).digest() if len(salt) > 64 else salt
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_column(salt: bytes, message: Column) -> Column:
    """HMAC-SHA-256 (hex) of a UTF-8 string Column, with Spark builtins only (RFC 2104).

    Equal to :func:`hmac.new(salt, message, sha256).hexdigest()`; runs in the executors
    (no Python UDF). The key reaches the plan as a binary literal: plans are not logged.
    """
    inner_pad, outer_pad = _pads(salt)
    data = F.encode(message, "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.lit(bytearray(inner_pad)), data), 256))
    return F.sha2(F.concat(F.lit(bytearray(outer_pad)), inner), 256)


def normalized_column(kind: str, value: Column) -> Column:
    """:func:`normalize` as a Column expression (Spark ``trim`` removes spaces, as ``strip(" ")``)."""
    text = F.trim(value)
    return F.lower(text) if kind == "email" else text


def subject_hash_column(salt: bytes, kind: str, value: Column) -> Column:
    """:func:`subject_hash` of a Column (NULL for a NULL or blank value)."""
    text = normalized_column(kind, value)
    return F.when(text != "", hmac_column(salt, F.concat(F.lit(kind + ":"), text)))


def _token_in(text: str, needle: str) -> bool:
    start = text.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        if before not in _TOKEN_CHARS and after not in _TOKEN_CHARS:
            return True
        start = text.find(needle, start + 1)
    return False


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def names_identifier(text: str | None, kind: str, value: str) -> bool:
    """Whether a verbatim record names the identifier as a whole token (emails in any case).

    The raw text is searched first (also malformed lines, CSV lines); a line that parses
    as JSON is searched again in its decoded strings, so ``\\u0040`` escapes hide nothing.

    >>> names_identifier('{"contact_key":"c-1","x":1}', "contact_key", "c-1")
    True
    >>> names_identifier('{"contact_key":"c-10"}', "contact_key", "c-1")
    False
    >>> names_identifier('c-9,ADA@acme.com,pro', "email", "ada@acme.com")
    True
    >>> names_identifier('{"email":"ada\\\\u0040acme.com"}', "email", "ada@acme.com")
    True
    """
    if not text or not value:
        return False
    needle = normalize(kind, value)
    haystack = text.lower() if kind == "email" else text
    if _token_in(haystack, needle):
        return True
    if "\\" not in text:
        return False
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return any(_token_in(s.lower() if kind == "email" else s, needle) for s in _json_strings(decoded))


def names_any(text: str | None, identifiers: Iterable[ErasureRequest]) -> bool:
    """Whether a verbatim record names any of the identifiers (see :func:`names_identifier`)."""
    return any(names_identifier(text, i.kind, i.normalized) for i in identifiers)


def raw_match(raw: Column, kind: Column, value: Column) -> Column:
    """Column: ``raw`` names the identifier. A cheap ``instr`` pre-filter (the value as a
    Column, never SQL text; any JSON escape passes it) guards the exact Python check."""
    needle = F.when(kind == "email", F.lower(value)).otherwise(value)
    haystack = F.when(kind == "email", F.lower(raw)).otherwise(raw)
    candidate = raw.isNotNull() & ((F.instr(haystack, needle) > 0) | (F.instr(raw, F.lit("\\")) > 0))
    return candidate & _names_udf(raw, kind, value)


@dataclass(frozen=True)
class Suppression:
    """The suppressed hashes of some tenants (``tenant_id``, ``subject_hash``) and the key that made them."""

    hashes: DataFrame
    salt: bytes
    config: FeedlakeConfig


def stream_subject_fields(config: FeedlakeConfig, stream: StreamSpec) -> dict[str, tuple[str, ...]]:
    """The landing fields of ``stream`` that identify a person, by kind (conf: ``privacy.stream_subjects``).

    Without an entry for the stream: its declared fields named like a subject column of
    one of its target tables (``identify``: email, contact_key; ``crm``: email).
    """
    declared = config.settings.privacy.stream_subjects.get(stream.name)
    if declared is not None:
        out = dict(declared)
    else:
        names = {f.name for f in stream.fields}
        found: dict[str, list[str]] = defaultdict(list)
        for target in stream.targets:
            table = config.tables.get(target)
            for kind, columns in (table.subject if table else {}).items():
                found[kind] += [c for c in columns if c in names and c not in found[kind]]
        out = {k: tuple(v) for k, v in found.items() if k in KINDS and v}
    for kind, fields in out.items():
        if kind not in KINDS or any(not _FIELD_PATH.fullmatch(f) for f in fields):
            raise ConfigError(f"privacy.stream_subjects.{stream.name}: {kind}: {list(fields)} (kinds {list(KINDS)}, fields a or a.b)")
    return out


def _field_value(path: str) -> Column:
    if "." not in path:
        return F.col("values").getItem(path)
    top, member = path.split(".", 1)
    return F.try_variant_get(F.try_parse_json(F.col("json_values").getItem(top)), f"$.{member}", "string")


def record_hashes(records: DataFrame, salt: bytes, fields: Mapping[str, Sequence[str]]) -> Column:
    """Array Column: the keyed hashes of a parsed record's identifying fields, and, for a
    record headed for the quarantine (``error_code`` set), of every token of its raw text
    as an email and as a contact key (a malformed line can name a person too)."""
    parts: list[Column] = [F.array(subject_hash_column(salt, kind, _field_value(f))) for kind, fs in fields.items() for f in fs]
    if "raw_record" in records.columns and "error_code" in records.columns:
        tokens = F.filter(F.split(F.coalesce(F.col("raw_record"), F.lit("")), _TOKEN_SPLIT), lambda t: t != "")
        from_raw = F.concat(
            F.transform(tokens, lambda t: hmac_column(salt, F.concat(F.lit("email:"), F.lower(t)))),
            F.transform(tokens, lambda t: hmac_column(salt, F.concat(F.lit("contact_key:"), t))),
        )
        parts.append(F.when(F.col("error_code").isNotNull(), from_raw).otherwise(F.array().cast("array<string>")))
    if not parts:
        return F.array().cast("array<string>")
    return F.filter(F.concat(*parts), lambda h: h.isNotNull())


def drop_suppressed(records: DataFrame, suppression: Suppression | None, stream: StreamSpec) -> tuple[DataFrame, DataFrame]:
    """``(kept, dropped)``: parsed records of ``stream`` split on whether they name a suppressed subject.

    Pure DataFrame function (issue 15, item 3): a record is dropped when the keyed hash
    of one of its identifying fields (:func:`stream_subject_fields`), or of a token of
    its raw text when it is to be quarantined, is suppressed for its tenant. Both
    outputs keep the input's columns. Without a suppression list nothing is dropped.
    """
    if suppression is None:
        return records, records.limit(0)
    fields = stream_subject_fields(suppression.config, stream)
    hashed = records.withColumn("_subject_hashes", record_hashes(records, suppression.salt, fields))
    wanted = F.broadcast(suppression.hashes.select("tenant_id", F.col("subject_hash").alias("_suppressed_hash")))
    on = (hashed["tenant_id"] == wanted["tenant_id"]) & F.array_contains(hashed["_subject_hashes"], wanted["_suppressed_hash"])
    kept = hashed.join(wanted, on, "left_anti").drop("_subject_hashes")
    dropped = hashed.join(wanted, on, "left_semi").drop("_subject_hashes")
    return kept, dropped


def suppressed_for(engine: DeltaEngine, config: FeedlakeConfig, tenants: Sequence[str] | None) -> Suppression | None:
    """The suppression list of ``tenants`` (all when ``None``; ``None`` when there is none: the usual, free case).

    Reads the warehouse key without creating it: no key means no request was ever made.
    The list grows with erasure requests, not with the data, and is broadcast.
    """
    if SUPPRESSED_TABLE not in config.tables or (tenants is not None and not tenants):
        return None
    salt = warehouse_salt(engine.warehouse, s3_settings(config), create=False)
    if salt is None or not engine.exists(config.table(SUPPRESSED_TABLE)):
        return None
    rows = engine.read(config.table(SUPPRESSED_TABLE), list(tenants) if tenants else None)
    rows = rows.select("tenant_id", "kind", "subject_hash")
    rows = rows.persist()
    if rows.isEmpty():
        rows.unpersist()
        return None
    return Suppression(rows, salt, config)


def suppress_records(
    engine: DeltaEngine, config: FeedlakeConfig, stream: StreamSpec, records: DataFrame
) -> tuple[DataFrame, DataFrame | None]:
    """The ingest step (right after validation): ``(kept, dropped)``, ``dropped`` ``None`` when nothing can be.

    Loads the suppression list (:func:`suppressed_for`, all tenants: it is small) and
    splits the validated records of ``stream`` with :func:`drop_suppressed`; both parts
    are persisted (each is read by several later stages). Without a warehouse key or a
    suppression row this costs one file check and returns ``records`` as they are.
    """
    suppression = suppressed_for(engine, config, None)
    if suppression is None:
        return records, None
    kept, dropped = drop_suppressed(records, suppression, stream)
    return kept.persist(), dropped.persist()


def without_suppressed(
    df: DataFrame,
    engine: DeltaEngine,
    config: FeedlakeConfig,
    kinds: Mapping[str, str] | None = None,
) -> DataFrame:
    """``df`` without the rows naming a suppressed (forgotten) subject of their tenant.

    For any code that exports or re-publishes people (issue 15): ``kinds`` maps a
    subject kind to the column of ``df`` holding it (default ``email`` → ``email``,
    ``contact_key`` → ``contact_key``; absent columns are skipped); ``df`` needs
    ``tenant_id``. The rows' tenants are read from ``df`` (a small distinct collect).
    """
    kinds = dict(kinds or {"email": "email", "contact_key": "contact_key"})
    columns = {k: c for k, c in kinds.items() if c in df.columns}
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds {unknown} not in {list(KINDS)}")
    if not columns:
        return df
    tenants = sorted(r["tenant_id"] for r in df.select("tenant_id").distinct().collect())
    suppression = suppressed_for(engine, config, tenants)
    if suppression is None:
        return df
    hashes = F.filter(
        F.array(*[subject_hash_column(suppression.salt, k, F.col(c)) for k, c in columns.items()]), lambda h: h.isNotNull()
    )
    wanted = F.broadcast(suppression.hashes.select(F.col("tenant_id").alias("_st"), F.col("subject_hash").alias("_sh")))
    marked = df.withColumn("_subject_hashes", hashes)
    on = (marked["tenant_id"] == wanted["_st"]) & F.array_contains(marked["_subject_hashes"], wanted["_sh"])
    return marked.join(wanted, on, "left_anti").drop("_subject_hashes")


def s3_settings(config: FeedlakeConfig) -> S3Settings:
    """The S3 settings of ``config`` (where the salt of an object-store warehouse is read)."""
    return config.settings.s3


_names_udf = F.udf(lambda text, kind, value: names_identifier(text, kind, value), BooleanType())
