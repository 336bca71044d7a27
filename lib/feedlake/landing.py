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
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from feedlake.config import ConfigError

TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# dt=2024-03-01, dt=2024-03-01-14-30 (seed 001 file_key) or dt=20240301
DT_FOLDER = re.compile(r"^dt=(\d{4})-?(\d{2})-?(\d{2})(?:[-T_ ](\d{2})[-:](\d{2}))?$")

LAYOUTS = ("tenant_stream", "objects")
DEFAULT_LAYOUTS = ("tenant_stream",)

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


def landing_time_from_parts(parts: Iterable[str], fallback: datetime) -> datetime:
    """The time a file landed: its deepest ``dt=`` folder, else its modification time.

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


def _hidden(name: str) -> bool:
    # Spark/Hadoop convention: _SUCCESS, _temporary, .crc and editor files are not data.
    return name.startswith(".") or name.startswith("_")


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            if not _hidden(name):
                yield Path(dirpath) / name


def parse_relpath(relpath: str) -> tuple[str, str] | None:
    """``tenant=<id>/<stream>/...`` → ``(tenant_id, stream)``, or ``None`` if not that layout."""
    parts = relpath.split("/")
    if len(parts) < 3 or not parts[0].startswith("tenant="):
        return None
    tenant, stream = parts[0][len("tenant=") :], parts[1]
    if not TENANT_ID.match(tenant) or not STREAM_NAME.match(stream):
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
    if not STREAM_NAME.match(stream) or not TENANT_ID.match(system) or not TENANT_ID.match(tenant):
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
    """The ``landing_layout`` job setting (one name or a list) as a checked tuple."""
    if setting is None:
        return DEFAULT_LAYOUTS
    names = (setting,) if isinstance(setting, str) else tuple(setting)
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown or not names:
        raise ConfigError(f"landing_layout {list(names)} must name layouts among {list(LAYOUTS)}")
    return names


def discover_local(
    root: str | Path,
    tenants: Iterable[str] | None = None,
    streams: Iterable[str] | None = None,
    layouts: Iterable[str] = DEFAULT_LAYOUTS,
) -> list[LandingFile]:
    """List the data files under a local landing root, filtered by tenant and stream.

    Files outside the ``layouts`` (default ``tenant=<id>/<stream>/``) are ignored (they
    belong to no tenant, so they cannot be attributed); hidden files (``.x``, ``_x``) are skipped.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise LandingError(f"landing path {root} is not a folder")
    tenant_filter, stream_filter = frozenset(tenants or ()), frozenset(streams or ())
    found: list[LandingFile] = []
    for path in _walk(root_path):
        relpath = path.relative_to(root_path).as_posix()
        owner = selected_owner(relpath, layouts, tenant_filter, stream_filter)
        if owner is None:
            continue
        tenant_id, stream = owner.tenant_id, owner.stream
        stat = path.stat()
        mtime = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).replace(microsecond=0)
        fmt, compression = detect_format(path.name)
        found.append(
            LandingFile(
                tenant_id=tenant_id,
                stream=stream,
                source_file=relpath,
                location=str(path.resolve()),
                size_bytes=stat.st_size,
                modified_at=mtime,
                landing_time=landing_time_from_parts(owner.folders, mtime),
                format=fmt,
                compression=compression,
                source_system=owner.source_system,
            )
        )
    return found


def with_location(file: LandingFile, location: str) -> LandingFile:
    """The same landing file, read from another place (e.g. a local spool copy)."""
    return replace(file, location=location)


def is_object_store(location: str) -> bool:
    """True for ``s3://``/``s3a://`` locations (read with boto3, see :mod:`feedlake.storage`)."""
    return location.split("://", 1)[0] in ("s3", "s3a") if "://" in location else False


def discover(
    landing: str,
    tenants: Iterable[str] | None = None,
    streams: Iterable[str] | None = None,
    layouts: Iterable[str] = DEFAULT_LAYOUTS,
    s3=None,
) -> list[LandingFile]:
    """List landing files on the local file system or an object store.

    ``s3`` (:class:`feedlake.storage.S3Settings`) carries conf's endpoint and region for ``s3://`` roots.
    """
    layouts = tuple(layouts)
    if is_object_store(landing):
        from feedlake import storage

        return storage.discover_s3(landing, tenants, streams, layouts=layouts, settings=s3)
    return discover_local(landing.removeprefix("file://"), tenants, streams, layouts)
