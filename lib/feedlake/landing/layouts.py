"""Landing zone discovery: which files exist, whose they are, and what they hold.

Layout ``tenant_stream`` (issue #2)::

    LANDING/tenant=<tenant_id>/<stream>/[sub-folders, e.g. dt=2024-03-01/]<file>

Layout ``objects`` (issue #3; seed 001, the Ingestion API ``file_key``)::

    LANDING/objects/<stream>/source_system=<system>/tenant=<tenant_id>/dt=<YYYY-MM-DD-HH-MM>/<file>

``landing_layout`` in conf/ingest.yaml names one layout or a list of them; both can
live under the same root (their first folder differs). The tenant of every record is
the ``tenant=`` folder its file was found under, never a value inside the record
(tenant isolation); ``source_system`` (objects layout) is kept on every row. File formats follow seed 000 §2 and §3.4:
newline-delimited JSON (``.json``, ``.jsonl``, ``.ndjson``) and CSV (``.csv``), each
optionally gzip-compressed (``.gz`` / ``.gzip``; "we currently don't support other
methods or other extensions").

Every landing file is accounted for (issue 13, item 2): discovery returns the files
that fit no layout too, each with a :attr:`LandingFile.refusal` (``unattributed`` and
the reason: landing root, not a ``tenant=`` folder, invalid tenant id, no stream
folder, stream name not lower-case ...), which the run quarantines whole, reports and
records in the manifest. Such a file is recorded under its ``tenant=`` folder's tenant
when that folder is a valid tenant id (it is that tenant's folder: they can act on
it), else under the reserved :data:`UNATTRIBUTED` marker, which no real tenant id can
equal (tenant ids start with a letter or digit); its stream is always
:data:`UNATTRIBUTED`, so it never reaches a stream's tables. Local landing zones never
follow symbolic links (item 3): a link, to a file or a folder, is refused
(``symlink_refused``) and never opened; other non-regular files (FIFOs, sockets,
devices) are refused as ``not_a_regular_file``. A file name that is not UTF-8 (item 1)
is kept as escaped text (``caf\\xe9.jsonl``) in ``source_file``.
"""

from __future__ import annotations

import os
import re
import stat as stat_module
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from feedlake.settings.job import DEFAULT_LANDING_LAYOUTS, LANDING_LAYOUTS, parse_landing_layout

# \Z, not $: "$" also matches before a trailing newline, so "acme\n" passed as a tenant id
# (issue 13, item 3). Used with fullmatch; the anchors keep .match() callers exact too.
TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]*\Z")
# Tenant and stream of a file that fits no layout. Never a real tenant id or stream
# name: both must start with a letter or digit (TENANT_ID, STREAM_NAME).
UNATTRIBUTED = "_unattributed"
# Whole-file refusals made by discovery (error codes of quarantine rows, issue 13).
UNATTRIBUTED_CODE = "unattributed"
SYMLINK_CODE = "symlink_refused"
NOT_REGULAR_CODE = "not_a_regular_file"
REFUSAL_CODES = (UNATTRIBUTED_CODE, SYMLINK_CODE, NOT_REGULAR_CODE)
# dt=2024-03-01, dt=2024-03-01-14-30 (seed 001 file_key) or dt=20240301
DT_FOLDER = re.compile(r"^dt=(\d{4})-?(\d{2})-?(\d{2})(?:[-T_ ](\d{2})[-:](\d{2}))?$")

LAYOUTS = LANDING_LAYOUTS  # the names conf's landing_layout accepts (feedlake.settings.job)
DEFAULT_LAYOUTS = DEFAULT_LANDING_LAYOUTS

FORMATS = {".json": "json", ".jsonl": "json", ".ndjson": "json", ".csv": "csv"}
COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip"}


class LandingError(ValueError):
    """Raised when the landing root itself cannot be used (missing, not a folder)."""


@dataclass(frozen=True)
class LandingFile:
    """One file found in the landing zone, with everything needed to read and track it.

    ``format`` is ``None`` when the extension is not one seed 000 allows; such a file
    is not read but recorded in quarantine as a whole (nothing is lost silently).
    """

    tenant_id: str
    stream: str
    source_file: str  # path relative to the landing root, '/'-separated: stable identity
    location: str  # where the bytes are read from (absolute local path or URI)
    size_bytes: int
    modified_at: datetime
    landing_time: datetime
    format: str | None
    compression: str | None
    etag: str | None = None
    source_system: str | None = None
    # Set when discovery refuses the file whole: (error_code, message); it is never read.
    refusal: tuple[str, str] | None = None
    # Local file identity (issue 13, item 5): mtime in nanoseconds, "dev:inode:ctime_ns"
    # (changes on any write, rename into place or metadata change, and cannot be set
    # back by cp -p / rsync -t / touch), and the SHA-256 of the content once hashed.
    modified_ns: int | None = None
    stat_token: str | None = None
    sha256: str | None = None

    @property
    def fingerprint(self) -> str:
        """What makes this version of the file unique: path, size and mtime/etag."""
        marker = self.etag or self.modified_at.isoformat()
        return f"{self.source_file}|{self.size_bytes}|{marker}"


def detect_format(name: str) -> tuple[str | None, str | None]:
    """Return ``(format, compression)`` from a file name, per seed 000 §2 and §3.4.

    >>> detect_format("events_2024.jsonl.gz")
    ('json', 'gzip')
    >>> detect_format("contacts.CSV")
    ('csv', None)
    >>> detect_format("dump.parquet")
    (None, None)
    """
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = None
    if suffixes and suffixes[-1] in COMPRESSIONS:
        compression = COMPRESSIONS[suffixes.pop()]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def landing_time_from_parts(parts: Iterable[str], fallback: datetime | None) -> datetime | None:
    """The time a file landed: its deepest valid ``dt=`` folder, else ``fallback`` (its modification time).

    The one reading of ``dt=`` folders (discovery's landing time, a backfill's day range).

    A ``dt=`` folder names the batch the tenant dropped (seed 001 file_key
    ``dt=YYYY-MM-DD-HH-MM``); it orders batches so that "only the most recent will be
    kept" (seed 000 FAQ) does not depend on the order feedlake happens to process them.
    """
    found = fallback
    for part in parts:
        m = DT_FOLDER.match(part)
        if m:
            y, mo, d, h, mi = m.groups()
            try:
                found = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), tzinfo=timezone.utc)
            except ValueError:
                continue
    return found


def is_hidden(name: str) -> bool:
    # Spark/Hadoop convention: _SUCCESS, _temporary, .crc and editor files are not data.
    return name.startswith(".") or name.startswith("_")


def escaped_name(name: str) -> str:
    r"""A path as text that is always valid UTF-8: bytes that are not UTF-8 as ``\xNN``.

    Python lists a non-UTF-8 file name with lone surrogates (``surrogateescape``), which
    no UTF-8 encoder (hashing, Arrow, the JVM, JSON reports) accepts (issue 13, item 1).

    >>> escaped_name("caf\udce9.jsonl")
    'caf\\xe9.jsonl'
    >>> escaped_name("café.jsonl")
    'café.jsonl'
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def _walk(root: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """``(relative path, entry)`` of every non-hidden entry to report, never following links.

    Folders are descended only when they are real folders (``follow_symlinks=False``); a
    symbolic link (to a file or a folder) and any other non-folder entry is yielded
    as is, so the caller refuses links and special files instead of reading them.
    """
    pending = [(str(root), "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        subfolders = []
        for entry in entries:
            if is_hidden(entry.name):
                continue
            relpath = prefix + entry.name
            if not entry.is_symlink() and entry.is_dir(follow_symlinks=False):
                subfolders.append((entry.path, relpath + "/"))
            else:
                yield relpath, entry
        pending.extend(reversed(subfolders))


def parse_relpath(relpath: str) -> tuple[str, str] | None:
    """``tenant=<id>/<stream>/...`` → ``(tenant_id, stream)``, or ``None`` if not that layout."""
    parts = relpath.split("/")
    if len(parts) < 3 or not parts[0].startswith("tenant="):
        return None
    tenant, stream = parts[0][len("tenant=") :], parts[1]
    if not TENANT_ID.fullmatch(tenant) or not STREAM_NAME.fullmatch(stream):
        return None
    return tenant, stream


class Owner(NamedTuple):
    """Whose a landing file is, read from its path: tenant, stream, source system, batch folders."""

    tenant_id: str
    stream: str
    source_system: str | None
    folders: tuple[str, ...]  # the folders between the owner's and the file (dt=...)


def parse_objects_relpath(relpath: str) -> Owner | None:
    """``objects/<stream>/source_system=<s>/tenant=<id>/.../<file>`` → its owner (seed 001 file_key).

    >>> parse_objects_relpath("objects/account/source_system=dataapi/tenant=3303/dt=2025-06-27-07-26/a.jsonl")
    Owner(tenant_id='3303', stream='account', source_system='dataapi', folders=('dt=2025-06-27-07-26',))
    >>> parse_objects_relpath("tenant=3303/account/a.jsonl") is None
    True
    """
    parts = relpath.split("/")
    if len(parts) < 5 or parts[0] != "objects" or not parts[2].startswith("source_system=") or not parts[3].startswith("tenant="):
        return None
    stream, system, tenant = parts[1], parts[2][len("source_system=") :], parts[3][len("tenant=") :]
    if not STREAM_NAME.fullmatch(stream) or not TENANT_ID.fullmatch(system) or not TENANT_ID.fullmatch(tenant):
        return None
    return Owner(tenant, stream, system, tuple(parts[4:-1]))


def owner_of(relpath: str, layouts: Iterable[str] = DEFAULT_LAYOUTS) -> Owner | None:
    """The owner of a file under any of ``layouts``, or ``None`` if it fits none of them."""
    for layout in layouts:
        if layout == "objects":
            found = parse_objects_relpath(relpath)
        else:
            pair = parse_relpath(relpath)
            found = Owner(pair[0], pair[1], None, tuple(relpath.split("/")[2:-1])) if pair else None
        if found is not None:
            return found
    return None


class Unattributed(NamedTuple):
    """A file that fits no layout: the tenant of its ``tenant=`` folder if that is a valid id, and why.

    ``raw_tenant`` is the text after ``tenant=`` (or ``None`` without such a folder), used
    by the ``--tenant`` filter; ``tenant_id`` is the valid tenant or :data:`UNATTRIBUTED`.
    """

    tenant_id: str
    raw_tenant: str | None
    reason: str


_TENANT_RULE = "tenant ids are 1-128 letters, digits, '_', '.', '-', starting with a letter or digit"
_STREAM_RULE = "stream names are lower-case letters, digits and '_', starting with a letter"


def _check_tenant(folder: str) -> tuple[str | None, str | None]:
    """``tenant=<id>`` folder → (valid tenant or None, problem or None)."""
    raw = folder[len("tenant=") :]
    if TENANT_ID.fullmatch(raw):
        return raw, None
    return None, f"invalid tenant id {raw!r} in folder {folder!r}: {_TENANT_RULE}"


def _check_stream(folder: str) -> str:
    if STREAM_NAME.fullmatch(folder.lower()):
        return f"stream folder {folder!r} is not lower-case: {_STREAM_RULE}"
    return f"stream folder {folder!r} is not a stream name: {_STREAM_RULE}"


def _why_tenant_stream(parts: list[str]) -> Unattributed:
    """Why ``parts`` do not fit ``tenant=<id>/<stream>/.../<file>``."""
    layout = "files belong under tenant=<id>/<stream>/"
    if not parts[0].startswith("tenant="):
        if len(parts) == 1:
            return Unattributed(UNATTRIBUTED, None, f"file at the landing root: {layout}")
        return Unattributed(UNATTRIBUTED, None, f"folder {parts[0]!r} is not a tenant folder (tenant=<id>): {layout}")
    raw = parts[0][len("tenant=") :]
    tenant, problem = _check_tenant(parts[0])
    if tenant is None:
        return Unattributed(UNATTRIBUTED, raw, str(problem))
    if len(parts) == 1:  # e.g. a link named tenant=<id> at the root (refused by its own code)
        return Unattributed(tenant, raw, f"file at the landing root: {layout}")
    if len(parts) == 2:
        return Unattributed(tenant, raw, f"no stream folder: the file is directly under {parts[0]}/ ({layout})")
    return Unattributed(tenant, raw, _check_stream(parts[1]))


def _why_objects(parts: list[str]) -> Unattributed:
    """Why ``parts`` (starting with ``objects``) do not fit the seed 001 ``file_key`` layout."""
    layout = "files belong under objects/<stream>/source_system=<s>/tenant=<id>/dt=<...>/"
    raw = tenant = None
    if len(parts) > 3 and parts[3].startswith("tenant="):
        raw = parts[3][len("tenant=") :]
        tenant, problem = _check_tenant(parts[3])
        if tenant is None:
            return Unattributed(UNATTRIBUTED, raw, str(problem))
    owner = tenant or UNATTRIBUTED
    if len(parts) < 5:
        return Unattributed(owner, raw, f"too few folders: {layout}")
    if not STREAM_NAME.fullmatch(parts[1]):
        return Unattributed(owner, raw, _check_stream(parts[1]))
    if not parts[2].startswith("source_system=") or not TENANT_ID.fullmatch(parts[2][len("source_system=") :]):
        return Unattributed(owner, raw, f"folder {parts[2]!r} is not a valid source_system=<s> folder: {layout}")
    return Unattributed(owner, raw, f"folder {parts[3]!r} is not a tenant folder (tenant=<id>): {layout}")


def unattributed(relpath: str, layouts: Iterable[str] = DEFAULT_LAYOUTS) -> Unattributed:
    """Why a path fits none of ``layouts``, and the tenant it is recorded under (issue 13, item 2).

    >>> unattributed("tenant=acme/Track/a.jsonl")
    Unattributed(tenant_id='acme', raw_tenant='acme', reason="stream folder 'Track' is not lower-case: stream names are lower-case letters, digits and '_', starting with a letter")
    >>> unattributed("tenant=ac me/track/a.jsonl").tenant_id
    '_unattributed'
    """
    parts = relpath.split("/")
    layouts = tuple(layouts)
    if parts[0] == "objects" and "objects" in layouts:
        return _why_objects(parts)
    if "tenant_stream" in layouts:
        return _why_tenant_stream(parts)
    return _why_objects(parts) if parts[0] == "objects" else Unattributed(
        UNATTRIBUTED, None, f"folder {parts[0]!r} is not objects/ (landing_layout {list(layouts)})"
    )


def classify(
    relpath: str, layouts: Iterable[str], tenants: frozenset[str], streams: frozenset[str]
) -> Owner | Unattributed | None:
    """The owner of a file, or why it has none, or ``None`` when the filters leave it out.

    Filters (``--tenant``/``--stream``, empty = all): a file of a layout passes on its
    tenant and stream; an unattributed file belongs to no stream, so it is only in scope
    when no ``--stream`` is given, and with ``--tenant`` only when the raw text of its
    ``tenant=`` folder is one of them (a run for one tenant does not report the rest of
    the landing zone). One rule for every store (local folders and S3 listings).
    """
    layouts = tuple(layouts)
    owner = owner_of(relpath, layouts)
    if owner is not None:
        if (tenants and owner.tenant_id not in tenants) or (streams and owner.stream not in streams):
            return None
        return owner
    why = unattributed(relpath, layouts)
    if streams or (tenants and why.raw_tenant not in tenants):
        return None
    return why


def selected_owner(
    relpath: str, layouts: Iterable[str], tenants: frozenset[str], streams: frozenset[str]
) -> Owner | None:
    """The owner of a file if it fits a layout and passes the ``--tenant``/``--stream`` filters.

    One rule for every store (local folders and S3 listings): empty filters select all.
    """
    owner = owner_of(relpath, layouts)
    if owner is None or (tenants and owner.tenant_id not in tenants) or (streams and owner.stream not in streams):
        return None
    return owner


def landing_layouts(setting: str | Iterable[str] | None) -> tuple[str, ...]:
    """The ``landing_layout`` job setting (one name or a list) as a checked tuple (``config.settings.landing_layout``)."""
    return parse_landing_layout(setting if setting is None or isinstance(setting, str) else list(setting))


def discover_local(
    root: str | Path,
    tenants: Iterable[str] | None = None,
    streams: Iterable[str] | None = None,
    layouts: Iterable[str] = DEFAULT_LAYOUTS,
) -> list[LandingFile]:
    """List every file under a local landing root, filtered by tenant and stream (see :func:`classify`).

    Files of a layout come back ready to read; every other non-hidden entry comes back
    with a :attr:`LandingFile.refusal` so it is accounted for (issue 13): ``unattributed``
    (fits no layout), ``symlink_refused`` (a symbolic link, to a file or a folder: never
    followed, never opened, its target never stat'ed) and ``not_a_regular_file`` (FIFO,
    socket, device: reading one could block or read a device). A refused link or special
    file is attributed like a file at its path (its tenant when its ``tenant=`` folder is
    valid), keeping its own code.
    Hidden entries (``.x``, ``_x``) are skipped. The landing root itself may be a link
    (the operator chose it); only what is below it is checked.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise LandingError(f"landing path {root} is not a folder")
    root_abs = root_path.resolve()
    tenant_filter, stream_filter = frozenset(tenants or ()), frozenset(streams or ())
    layouts = tuple(layouts)
    found: list[LandingFile] = []
    for raw_relpath, entry in _walk(root_path):
        relpath = escaped_name(raw_relpath)
        info = entry.stat(follow_symlinks=False)
        refusal: tuple[str, str] | None = None
        if stat_module.S_ISLNK(info.st_mode):
            refusal = (SYMLINK_CODE, "symbolic link: landing files and folders must be real ones, links are never followed")
        elif not stat_module.S_ISREG(info.st_mode):
            refusal = (NOT_REGULAR_CODE, "not a regular file (FIFO, socket or device): never read")
        where = classify(relpath, layouts, tenant_filter, stream_filter)
        if where is None:
            continue
        if isinstance(where, Unattributed):
            owner = Owner(where.tenant_id, UNATTRIBUTED, None, ())
            refusal = refusal or (UNATTRIBUTED_CODE, where.reason)
        else:
            owner = where
        mtime = datetime.fromtimestamp(info.st_mtime_ns // 1_000_000_000, tz=timezone.utc)
        fmt, compression = detect_format(relpath.rsplit("/", 1)[-1])
        found.append(
            LandingFile(
                tenant_id=owner.tenant_id,
                stream=owner.stream,
                source_file=relpath,
                # A refused entry has no location: nothing may ever open it.
                location="" if refusal else str(root_abs / raw_relpath),
                size_bytes=info.st_size,
                modified_at=mtime,
                landing_time=landing_time_from_parts(owner.folders, mtime),
                format=fmt,
                compression=compression,
                source_system=owner.source_system,
                refusal=refusal,
                modified_ns=info.st_mtime_ns,
                stat_token=f"{info.st_dev}:{info.st_ino}:{info.st_ctime_ns}",
            )
        )
    found.sort(key=lambda f: f.source_file)
    return found


def with_location(file: LandingFile, location: str) -> LandingFile:
    """The same landing file, read from another place (e.g. a local spool copy)."""
    return replace(file, location=location)


def is_object_store(location: str) -> bool:
    """True for ``s3://``/``s3a://`` locations (read with boto3, see :mod:`feedlake.landing.storage`)."""
    return location.split("://", 1)[0] in ("s3", "s3a") if "://" in location else False


def discover(
    landing: str,
    tenants: Iterable[str] | None = None,
    streams: Iterable[str] | None = None,
    layouts: Iterable[str] = DEFAULT_LAYOUTS,
    s3=None,
) -> list[LandingFile]:
    """List landing files on the local file system or an object store.

    ``s3`` (:class:`feedlake.landing.storage.S3Settings`) carries conf's endpoint and region for ``s3://`` roots.
    """
    layouts = tuple(layouts)
    if is_object_store(landing):
        from feedlake.landing import storage
        return storage.discover_s3(landing, tenants, streams, layouts=layouts, settings=s3)
    return discover_local(landing.removeprefix("file://"), tenants, streams, layouts)
