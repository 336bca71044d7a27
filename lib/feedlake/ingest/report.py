"""The run report: where every input record went, per tenant and stream.

Invariant (issue #2, issue 13 item 4): ``accepted + quarantined + duplicates_dropped +
blocked_records + suppressed == records_read`` for every tenant and stream, each term
counted from what the run wrote (see :mod:`feedlake.ingest.stages`), none derived from the
others. A file that cannot be read at all (unknown stream, unsupported format, corrupt
gzip) counts as one record read and one quarantined.

The report also says where the run's time went: :attr:`RunReport.stage_seconds`, the
wall-clock seconds of each of :data:`STAGES` on the run's thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()

# A run's stages in the order they run (feedlake.ingest.pipeline, feedlake.ingest.stages):
# listing the landing zone, creating or migrating the tables, waiting for the tenants'
# leases, reading the manifest and planning the files, parsing them, waiting for each
# stream's validation, mapping and ranking (prepared ahead on another thread), the
# quality gate, counting, the MERGEs, the hooks that derive tables after a MERGE, the
# quarantine and manifest commits, and the hooks after the run (table checks, Data Docs).
STAGES = ("list", "tables", "lease", "plan", "parse", "prepare", "gate", "count", "merge", "derive", "quarantine",
          "manifest", "after_run")


def ordered_stages(seconds: Mapping[str, float]) -> list[tuple[str, float]]:
    """``stage_seconds`` in the order of :data:`STAGES` (a JSON report sorts its keys); unknown names last.

    >>> ordered_stages({"merge": 1.0, "parse": 3.0})
    [('parse', 3.0), ('merge', 1.0)]
    """
    order = {stage: i for i, stage in enumerate(STAGES)}
    return sorted(seconds.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def stage_line(seconds: Mapping[str, float]) -> str:
    """``stage_seconds`` as one line of text: ``parse 36.2  prepare 31.1 ...`` (``-`` when empty)."""
    return "  ".join(f"{stage} {s:.1f}" for stage, s in ordered_stages(seconds)) or "-"


class ReportInvariantError(AssertionError):
    """Records were lost or double counted: a bug in feedlake, never a data problem."""


@dataclass
class TableCounts:
    """Rows a MERGE changed in one table."""

    inserted: int = 0
    updated: int = 0


@dataclass
class StreamReport:
    """Counts for one tenant and stream in one run."""

    tenant_id: str
    stream: str
    files_read: int = 0
    files_skipped: int = 0
    records_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates_dropped: int = 0
    quarantined_by_code: dict[str, int] = field(default_factory=dict)
    tables: dict[str, TableCounts] = field(default_factory=dict)
    blocked: str | None = None  # why the MERGE of this tenant and stream was held back
    # Records of a gate-blocked batch (not accepted: nothing was merged; issue 13 item 9).
    blocked_records: int = 0
    # Records dropped before mapping by erasure suppression (erased subjects).
    suppressed: int = 0

    def check(self) -> None:
        total = self.accepted + self.quarantined + self.duplicates_dropped + self.blocked_records + self.suppressed
        if total != self.records_read or sum(self.quarantined_by_code.values()) != self.quarantined:
            raise ReportInvariantError(
                f"tenant {self.tenant_id} stream {self.stream}: accepted {self.accepted} + quarantined "
                f"{self.quarantined} + duplicates {self.duplicates_dropped} + blocked {self.blocked_records} "
                f"+ suppressed {self.suppressed} != read {self.records_read}"
            )


@dataclass
class RunReport:
    """Everything a run did; printed as a table and written as JSON."""

    run_id: str
    engine: str
    landing: str
    warehouse: str
    started_at: str
    finished_at: str = ""
    streams: list[StreamReport] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    # Wall-clock seconds of the run's stages on the run's thread, in the order they ran
    # (:data:`STAGES`); ``prepare`` is the wait for the streams prepared ahead on another thread.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall-clock seconds to ``stage_seconds[stage]`` (a stage may run several times)."""
        if stage not in STAGES:
            raise ValueError(f"unknown run stage {stage!r} (known: {', '.join(STAGES)})")
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self.stage_seconds[stage] = round(self.stage_seconds.get(stage, 0.0) + spent, 3)

    def timed_items(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """``items``, the time spent waiting for each next one added to ``stage``."""
        iterator = iter(items)
        try:
            while True:
                with self.timed(stage):
                    item = next(iterator, _END)
                if item is _END:
                    return
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's own cleanup runs now, when its consumer stops early

    def stream(self, tenant_id: str, stream: str) -> StreamReport:
        for s in self.streams:
            if s.tenant_id == tenant_id and s.stream == stream:
                return s
        created = StreamReport(tenant_id, stream)
        self.streams.append(created)
        self.streams.sort(key=lambda s: (s.tenant_id, s.stream))
        return created

    def check(self) -> None:
        for s in self.streams:
            s.check()

    def totals(self) -> dict[str, int]:
        keys = ("files_read", "files_skipped", "records_read", "accepted", "quarantined", "duplicates_dropped",
                "blocked_records", "suppressed")
        return {k: sum(getattr(s, k) for s in self.streams) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["totals"] = self.totals()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def render(self) -> str:
        """A fixed-width table a person can read in a terminal or a job log."""
        header = ("tenant", "stream", "files", "skipped", "read", "accepted", "quarantined", "dupes", "tables (+ins/~upd)", "quarantine reasons")
        rows = [header]
        for s in self.streams:
            tables = " ".join(f"{t}+{c.inserted}/~{c.updated}" for t, c in sorted(s.tables.items())) or "-"
            reasons = " ".join(f"{k}={v}" for k, v in sorted(s.quarantined_by_code.items())) or "-"
            if s.blocked:
                tables = f"BLOCKED: {s.blocked}"
            rows.append(
                (s.tenant_id, s.stream, str(s.files_read), str(s.files_skipped), str(s.records_read), str(s.accepted),
                 str(s.quarantined), str(s.duplicates_dropped), tables, reasons)
            )
        t = self.totals()
        rows.append(("TOTAL", "", str(t["files_read"]), str(t["files_skipped"]), str(t["records_read"]),
                     str(t["accepted"]), str(t["quarantined"]), str(t["duplicates_dropped"]), "", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [f"feedlake run {self.run_id} (engine {self.engine})"]
        for index, r in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
            if index == 0 or index == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        for key, value in sorted(self.extras.items()):
            lines.append(f"{key}: {value}")
        if self.stage_seconds:
            lines.append("seconds per stage: " + stage_line(self.stage_seconds))
        return "\n".join(lines)


def report_location(warehouse: str, run_id: str) -> str:
    """Where the JSON report of a run goes: ``WAREHOUSE/_reports/<run_id>.json``."""
    return warehouse.rstrip("/") + f"/_reports/{run_id}.json"


def write_report(report: RunReport, location: str, s3=None) -> str:
    """Write the JSON report to a local path or an object store (``s3`` its settings); the path or URI."""
    from feedlake.landing.storage import write_text

    return write_text(location, report.to_json(), s3)
