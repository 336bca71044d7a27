"""Which landing files a run reads, skips or rejects whole, and the manifest they are checked against.

Moved out of :mod:`feedlake.ingest.pipeline` (issue 13): the pipeline only calls
:func:`plan_files`, :func:`read_manifest` and :class:`ReadableCopies`; the rules that
account for every landing file and decide whether a file is a new version live here.

**Every file accounted for** (issue 13, item 2): a file discovery refused
(``unattributed``, ``symlink_refused``, ``not_a_regular_file``, see
:mod:`feedlake.landing.layouts`), a file of an unknown stream and a file of an unsupported
format are rejected whole: one quarantine row, counted in the report, recorded in
``ingest_files`` with status ``rejected``. They are never opened.

**File identity** (issue 13, item 5). S3 objects: the ETag (and size), as listed; a
rewrite has a new ETag (an object rewritten with the very same bytes keeps its ETag
and needs no re-read, so no version id is needed). Local files: a file is the
version the manifest recorded, without reading it, when its size, its modification
time in nanoseconds and its ``dev:inode:ctime_ns`` token all equal the manifest's.
The ctime changes on every write, rename into place and metadata change, and no
tool sets it back, so a correction copied with ``cp -p``/``rsync -t`` (same size,
mtime preserved) is caught. When only the token differs (chmod, a restored or moved
landing zone, a same-size rewrite), the file is hashed (SHA-256) and compared with
the manifest's hash: equal means unchanged, so an unchanged landing zone costs one
``stat`` per file and no reads (a file found equal by its hash gets the new token in
the manifest, so it is hashed once, not on every run). Every local file a run reads is hashed first (the
hash is stored in the manifest; a change after hashing changes the ctime, so the next
run hashes again and reads the file again). A manifest row written before these
columns existed (no ``modified_ns``) is compared as before, size and mtime to the
second, until the file is next read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timezone
from types import TracebackType

from feedlake.delta.engines import DeltaEngine
from feedlake.landing.layouts import LandingFile, is_object_store
from feedlake.settings.config import FeedlakeConfig
from feedlake.settings.tables import INGEST_FILES

HASH_CHUNK = 1 << 20


@dataclass
class FilePlan:
    """Landing files sorted by what this run does with them."""

    to_read: list[LandingFile] = field(default_factory=list)
    rejected: list[tuple[LandingFile, str, str]] = field(default_factory=list)
    skipped: list[LandingFile] = field(default_factory=list)
    changed: list[LandingFile] = field(default_factory=list)
    # Skipped after hashing (same bytes, new dev:inode:ctime): their manifest row gets the
    # new token, so the next run skips them on stat alone instead of hashing them again.
    reverified: list[tuple[LandingFile, Mapping]] = field(default_factory=list)


def _open_no_follow(location: str) -> int:
    """A read-only descriptor of a local file, refusing a symbolic link swapped in after discovery."""
    return os.open(location, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))


def content_sha256(location: str) -> str:
    """SHA-256 (hex) of a local file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with os.fdopen(_open_no_follow(location), "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hashable(file: LandingFile) -> bool:
    return bool(file.location) and file.etag is None and not is_object_store(file.location) and file.modified_ns is not None


def with_hash(file: LandingFile) -> LandingFile:
    """The file with its content hash, computed once (local files only)."""
    if file.sha256 is not None or not _hashable(file):
        return file
    return replace(file, sha256=content_sha256(file.location))


def same_version(file: LandingFile, row: Mapping) -> tuple[bool, LandingFile]:
    """Whether ``file`` is the version the manifest ``row`` recorded, and the file (hashed if that was needed).

    See the module docstring for the rule; hashing happens only when size and
    nanosecond mtime match but the ``dev:inode:ctime`` token does not.
    """
    if file.etag or row.get("etag"):
        return file.etag == row.get("etag") and file.size_bytes == row.get("size_bytes"), file
    if file.size_bytes != row.get("size_bytes"):
        return False, file
    if file.modified_ns is None or row.get("modified_ns") is None:
        # Rows recorded before issue 13 (or a file without stat details): the old rule.
        modified = row.get("modified_at")
        if modified is not None and modified.tzinfo is None:
            modified = modified.replace(tzinfo=timezone.utc)
        return modified == file.modified_at, file
    if file.modified_ns != row.get("modified_ns"):
        return False, file
    if file.stat_token is not None and file.stat_token == row.get("stat_token"):
        return True, file
    if row.get("sha256") is None:
        return False, file
    hashed = with_hash(file)
    return hashed.sha256 == row.get("sha256"), hashed


def plan_files(
    files: Sequence[LandingFile],
    config: FeedlakeConfig,
    manifest: Mapping[tuple[str, str], Mapping],
    hash_to_read: bool = True,
) -> FilePlan:
    """Decide per file: read it, skip it (already processed, unchanged) or reject it whole.

    Local files to read are hashed (``hash_to_read``; a backfill's "anything left?"
    check passes ``False``, the ingest it starts hashes them).
    """
    plan = FilePlan()
    for f in files:
        previous = manifest.get((f.tenant_id, f.source_file))
        rejection = _rejection(f, config)
        if rejection is not None:
            # Issue 13 item 9: a file rejected before (and rejected again) is reported once, until it changes.
            if _settled(f, previous, "rejected"):
                plan.skipped.append(f)
                continue
            plan.rejected.append((f, *rejection))
            continue
        if _settled(f, previous, "unreadable"):  # same bytes, same failure: not re-read until it changes
            plan.skipped.append(f)
            continue
        if previous is not None and previous.get("status") == "processed":
            unchanged, f = same_version(f, previous)
            if unchanged:
                plan.skipped.append(f)
                if f.stat_token is not None and f.stat_token != previous.get("stat_token"):
                    plan.reverified.append((f, previous))
                continue
        if hash_to_read:
            f = with_hash(f)
        if previous is not None:
            plan.changed.append(f)
        plan.to_read.append(f)
    return plan


def _rejection(f: LandingFile, config: FeedlakeConfig) -> tuple[str, str] | None:
    """Why a file is rejected whole without being opened (code, message), or ``None``."""
    if f.refusal is not None:
        return f.refusal
    if f.stream not in config.streams:
        known = ", ".join(sorted(config.streams))
        return "unknown_stream", f"folder '{f.stream}' is not a known stream (known: {known})"
    if f.format is None:
        return (
            "unsupported_file_format",
            "file extension not supported: use .json/.jsonl (JSON lines) or .csv, optionally with .gz/.gzip (seed 000 §2, §3.4)",
        )
    return None


def _settled(f: LandingFile, previous: Mapping | None, status: str) -> bool:
    """The manifest recorded this very version of the file with ``status`` (rejected, unreadable)."""
    if previous is None or previous.get("status") != status:
        return False
    try:
        return same_version(f, previous)[0]
    except OSError:  # e.g. a refused link cannot be hashed: treat it as a new version
        return False


def read_manifest(engine: DeltaEngine, config: FeedlakeConfig, tenants: Sequence[str]) -> dict[tuple[str, str], dict]:
    """The ``ingest_files`` rows of these tenants (all when empty), by (tenant_id, source_file)."""
    rows = engine.read(config.table(INGEST_FILES), tenants or None).collect()
    return {(r["tenant_id"], r["source_file"]): r.asDict() for r in rows}


def reverified_rows(plan: FilePlan, columns: Sequence[str]) -> list[tuple]:
    """Manifest rows of :attr:`FilePlan.reverified` files: the stored row with the new stat token."""
    return [tuple({**row, "stat_token": f.stat_token}.get(c) for c in columns) for f, row in plan.reverified]


def _crosses_to_spark(location: str) -> bool:
    try:
        location.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class ReadableCopies:
    """Private copies of local landing files whose path cannot cross to Spark (issue 13, item 1).

    A file name that is not UTF-8 is listed by Python with lone surrogates, which no
    Spark/Arrow/JVM string holds. Such a file keeps its escaped ``source_file``
    everywhere, and is read from a copy under a safe name in a private folder (mode
    0700, system temp folder) that is removed when the run ends, however it ends.
    The copy is made with a descriptor that refuses symbolic links. Every other file is
    read in place. (With a non-local Spark master the copy lives on the driver: local
    landing paths need a file system shared with the executors anyway.)
    """

    def __init__(self) -> None:
        self.folder: str | None = None
        self.copied = 0

    def __enter__(self) -> ReadableCopies:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def readable(self, files: Sequence[LandingFile]) -> list[LandingFile]:
        """The same files, those with an unsafe local path read from a private copy."""
        return [f if _crosses_to_spark(f.location) else self._copy(f) for f in files]

    def _copy(self, file: LandingFile) -> LandingFile:
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix="feedlake-names-")  # created 0700
        self.copied += 1
        target = os.path.join(self.folder, f"{self.copied}.data")
        with os.fdopen(_open_no_follow(file.location), "rb") as src, open(target, "xb") as out:
            shutil.copyfileobj(src, out, HASH_CHUNK)
        return replace(file, location=target)
