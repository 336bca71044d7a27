"""Which landing files a run reads, skips or rejects whole, and the manifest they are checked against.

Moved out of :mod:`feedlake.pipeline` (issue 13): the pipeline only calls
:func:`plan_files` and :func:`read_manifest`; the rules that account for every landing
file and decide whether a file is a new version live here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timezone

from feedlake.config import FeedlakeConfig
from feedlake.delta import DeltaEngine
from feedlake.landing import LandingFile


@dataclass
class FilePlan:
    """Landing files sorted by what this run does with them."""

    to_read: list[LandingFile] = field(default_factory=list)
    rejected: list[tuple[LandingFile, str, str]] = field(default_factory=list)
    skipped: list[LandingFile] = field(default_factory=list)
    changed: list[LandingFile] = field(default_factory=list)


def _same_version(file: LandingFile, row: Mapping) -> bool:
    if file.etag or row.get("etag"):
        return file.etag == row.get("etag") and file.size_bytes == row.get("size_bytes")
    modified = row.get("modified_at")
    if modified is not None and modified.tzinfo is None:
        modified = modified.replace(tzinfo=timezone.utc)
    return file.size_bytes == row.get("size_bytes") and modified == file.modified_at


def plan_files(files: Sequence[LandingFile], config: FeedlakeConfig, manifest: Mapping[tuple[str, str], Mapping]) -> FilePlan:
    """Decide per file: read it, skip it (already processed, unchanged) or reject it whole."""
    plan = FilePlan()
    for f in files:
        if f.stream not in config.streams:
            known = ", ".join(sorted(config.streams))
            plan.rejected.append((f, "unknown_stream", f"folder '{f.stream}' is not a known stream (known: {known})"))
            continue
        if f.format is None:
            plan.rejected.append(
                (f, "unsupported_file_format",
                 "file extension not supported: use .json/.jsonl (JSON lines) or .csv, optionally with .gz/.gzip (seed 000 §2, §3.4)")
            )
            continue
        previous = manifest.get((f.tenant_id, f.source_file))
        if previous is not None and previous.get("status") == "processed" and _same_version(f, previous):
            plan.skipped.append(f)
            continue
        if previous is not None:
            plan.changed.append(f)
        plan.to_read.append(f)
    return plan


def read_manifest(engine: DeltaEngine, config: FeedlakeConfig, tenants: Sequence[str]) -> dict[tuple[str, str], dict]:
    rows = engine.read(config.table("ingest_files"), tenants or None).collect()
    return {(r["tenant_id"], r["source_file"]): r.asDict() for r in rows}
