"""The run report as HTML a person can open anywhere (issue #16).

* :func:`write_run_page`: ``WAREHOUSE/_reports/<run_id>.html`` for every ingest run
  (so every backfill chunk), beside the JSON report, then the index. One
  self-contained file: inline CSS and inline SVG charts, no script, font or image
  fetched from anywhere. It shows the run header, per tenant × stream counts (every
  numeric counter of the report, so counters added later show up without a change
  here), quarantine reasons with up to :data:`EXAMPLES_PER_REASON` example lines each,
  what the quality gate blocked, the quality outcomes, and charts (records per
  tenant, quarantine reasons, weekly activity of the touched tenants).
* :func:`write_quality_page`: the same page for ``feedlake quality`` runs.
* :func:`write_index`: ``WAREHOUSE/_reports/index.html``, the run history newest
  first, rebuilt from the JSON reports (``feedlake report`` rebuilds it on demand).

Rendering is Jinja2 (a dependency of Great Expectations) with autoescape on: record
values, file names and tenant ids only reach the page escaped (issue #16, 4).

Reads are batch-sized (project rule, issue #16): quarantine examples come from the
``quarantine`` rows of this run's batches only (batch ids from this run's
``ingest_files`` rows, tenant partitions pruned), stopping once every reason has its
examples; the activity trend aggregates the touched tenants' ``activity_weekly`` rows
of :data:`TREND_WEEKS` weeks only. Nothing whole-table reaches the driver, and no SQL
text is built from data (pyarrow filter expressions, Column expressions).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from feedlake.delta.engines import open_delta_rs
from feedlake.ingest.report import ordered_stages
from feedlake.landing.storage import StorageError, list_objects, parse_s3_uri, read_text, s3_client, write_text
from feedlake.settings.job import QualitySettings
from feedlake.settings.locations import docs_location, is_remote
from feedlake.settings.tables import ACTIVITY_WEEKLY, INGEST_FILES, QUARANTINE

log = logging.getLogger("feedlake.ingest.report_html")

EXAMPLES_PER_REASON = 5
RAW_RECORD_CHARS = 300  # a raw record is cut to this many characters on the page
MESSAGE_CHARS = 300
TREND_WEEKS = 12
INDEX_LIMIT = 200  # runs listed in index.html (the newest); older run pages stay on disk
KNOWN_COUNTERS = ("files_read", "files_skipped", "records_read", "accepted", "quarantined", "duplicates_dropped")
COUNTER_LABELS = {
    "files_read": "files", "files_skipped": "skipped", "records_read": "read", "accepted": "accepted",
    "quarantined": "quarantined", "duplicates_dropped": "duplicates",
}
_QUALITY_FAILED = re.compile(r"(\d+) critical and (\d+) warning failed")



def reports_folder(warehouse: str) -> str:
    return warehouse.rstrip("/") + "/_reports"


def page_location(warehouse: str, run_id: str) -> str:
    """``WAREHOUSE/_reports/<run_id>.html`` (an absolute path for a local warehouse)."""
    return display_path(f"{reports_folder(warehouse)}/{run_id}.html")


def index_location(warehouse: str) -> str:
    """``WAREHOUSE/_reports/index.html`` (an absolute path for a local warehouse)."""
    return display_path(f"{reports_folder(warehouse)}/index.html")


def display_path(location: str) -> str:
    """A location a person can open: local paths made absolute (``./warehouse`` works from any folder)."""
    if is_remote(location):
        return location
    return os.path.abspath(location.removeprefix("file://"))


# --------------------------------------------------------------------------- I/O


def _read(location: str, s3=None) -> str | None:
    if is_remote(location):
        try:
            return read_text(location, s3)
        except StorageError:
            return None
    path = location.removeprefix("file://")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _list_names(folder: str, suffix: str, s3=None) -> list[str]:
    """File names (not paths) directly in ``folder`` ending with ``suffix``."""
    if is_remote(folder):
        root = parse_s3_uri(folder.rstrip("/") + "/")
        names = []
        for obj in list_objects(s3_client(s3), root, [root.prefix]):
            rest = obj["Key"][len(root.prefix):]
            if "/" not in rest and rest.endswith(suffix):
                names.append(rest)
        return names
    path = folder.removeprefix("file://")
    if not os.path.isdir(path):
        return []
    return [n for n in os.listdir(path) if n.endswith(suffix) and os.path.isfile(os.path.join(path, n))]


# ------------------------------------------------------------------ batch-sized reads


def _tenants(report: Mapping[str, Any]) -> list[str]:
    return sorted({s["tenant_id"] for s in report.get("streams", ()) if s.get("records_read") or s.get("files_read")})


def _delta_rs_dataset(engine, table, tenants: Sequence[str]):
    """A pyarrow dataset of ``table`` pruned to the tenants' partitions, or ``None`` when absent."""
    data, _ = open_delta_rs(engine, table)
    return None if data is None else data.to_pyarrow_dataset(partitions=[("tenant_id", "in", list(tenants))])


def _text(column):
    """A string column as ``string`` in a pyarrow filter.

    delta-rs 1.6 datasets expose string statistics as ``string_view``: comparing the
    column directly fails in pyarrow 26 ("no kernel matching (string, string_view)").
    The cast keeps the filter row-wise; partition pruning by tenant still applies.
    """
    import pyarrow as pa

    return column.cast(pa.string())


def run_batches(engine, config, run_id: str, tenants: Sequence[str]) -> set[str]:
    """Batch ids of this run, from its ``ingest_files`` rows (one row per file of the run)."""
    if not tenants:
        return set()
    table = config.table(INGEST_FILES)
    if engine.name == "delta-rs":
        import pyarrow.dataset as ds

        data = _delta_rs_dataset(engine, table, tenants)
        if data is None:
            return set()
        import pyarrow as pa

        same_run = _text(ds.field("run_id")) == pa.scalar(run_id, pa.string())
        found = data.to_table(columns=["batch_id"], filter=same_run)
        return set(found.column("batch_id").to_pylist())
    from pyspark.sql import functions as F

    rows = engine.read(table, list(tenants)).where(F.col("run_id") == run_id).select("batch_id").distinct().collect()
    return {r["batch_id"] for r in rows}


def _cut(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit], True


def quarantine_examples(engine, config, run_id: str, report: Mapping[str, Any],
                        per_reason: int = EXAMPLES_PER_REASON) -> dict[str, list[dict]]:
    """Up to ``per_reason`` quarantine rows of this run per error code (tenant, file, line order).

    Reads only the touched tenants' partitions and this run's batch ids; with delta-rs the
    scan stops as soon as every reason the report counted has its examples.
    """
    wanted = {code for s in report.get("streams", ()) for code, n in (s.get("quarantined_by_code") or {}).items() if n}
    tenants = sorted({s["tenant_id"] for s in report.get("streams", ()) if s.get("quarantined")})
    if not wanted or not tenants:
        return {}
    batches = run_batches(engine, config, run_id, tenants)
    if not batches:
        return {}
    table = config.table(QUARANTINE)
    columns = ["tenant_id", "stream", "source_file", "line_number", "raw_record", "error_code", "error_message"]
    found: dict[str, list[dict]] = defaultdict(list)
    if engine.name == "delta-rs":
        import pyarrow as pa
        import pyarrow.dataset as ds

        data = _delta_rs_dataset(engine, table, tenants)
        if data is None:
            return {}
        batch_filter = _text(ds.field("batch_id")).isin(pa.array(sorted(batches), pa.string()))
        for batch in data.to_batches(columns=columns, filter=batch_filter, batch_size=4096):
            for row in batch.to_pylist():
                kept = found[row["error_code"]]
                if len(kept) < per_reason:
                    kept.append(row)
            if all(len(found.get(code, ())) >= per_reason for code in wanted):
                break
    else:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        order = Window.partitionBy("error_code").orderBy("tenant_id", "source_file", "line_number")
        rows = (
            engine.read(table, tenants).where(F.col("batch_id").isin(sorted(batches)))
            .withColumn("_n", F.row_number().over(order)).where(F.col("_n") <= per_reason)
            .select(*columns).collect()  # at most per_reason rows per error code
        )
        for row in rows:
            found[row["error_code"]].append(row.asDict())
    examples = {}
    for code, rows in found.items():
        rows.sort(key=lambda r: (r["tenant_id"], r["source_file"], r["line_number"] or 0))
        shown = []
        for r in rows[:per_reason]:
            raw, raw_cut = _cut(r["raw_record"], RAW_RECORD_CHARS)
            message, message_cut = _cut(r["error_message"], MESSAGE_CHARS)
            shown.append({**r, "raw_record": raw, "raw_cut": raw_cut, "error_message": message, "message_cut": message_cut})
        examples[code] = shown
    return examples


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def trend_window(report: Mapping[str, Any], tenant: str) -> tuple[date, date]:
    """The :data:`TREND_WEEKS` weeks ending with the latest week this run recomputed for
    ``tenant`` (``extras.activity``), else with the week the run started in."""
    activity = (report.get("extras") or {}).get("activity")
    weeks = []
    if isinstance(activity, Mapping) and isinstance(activity.get(tenant), Mapping):
        for text in activity[tenant].get("weeks_recomputed") or ():
            try:
                weeks.append(date.fromisoformat(str(text)))
            except ValueError:
                continue
    if weeks:
        last = _monday(max(weeks))
    else:
        started = str(report.get("started_at") or "")[:10]
        try:
            last = _monday(date.fromisoformat(started))
        except ValueError:
            last = _monday(date.today())
    return last - timedelta(weeks=TREND_WEEKS - 1), last


def activity_trend(engine, config, report: Mapping[str, Any]) -> dict[str, list[tuple[date, int]]]:
    """Per touched tenant: events per week of its :func:`trend_window`, from ``activity_weekly``.

    Aggregated while scanning (delta-rs: batch by batch; delta-spark: a Spark
    aggregation), so the driver holds at most tenants × :data:`TREND_WEEKS` numbers.
    """
    if ACTIVITY_WEEKLY not in config.tables:
        return {}
    tenants = _tenants(report)
    if not tenants:
        return {}
    windows = {t: trend_window(report, t) for t in tenants}
    first = min(w[0] for w in windows.values())
    last = max(w[1] for w in windows.values())
    table = config.table(ACTIVITY_WEEKLY)
    sums: dict[tuple[str, date], int] = defaultdict(int)
    if engine.name == "delta-rs":
        import pyarrow as pa
        import pyarrow.dataset as ds

        data = _delta_rs_dataset(engine, table, tenants)
        if data is not None:
            between = (ds.field("week_start") >= pa.scalar(first, pa.date32())) & (ds.field("week_start") <= pa.scalar(last, pa.date32()))
            for batch in data.to_batches(columns=["tenant_id", "week_start", "event_count"], filter=between):
                if batch.num_rows == 0:
                    continue
                grouped = pa.Table.from_batches([batch]).group_by(["tenant_id", "week_start"]).aggregate([("event_count", "sum")])
                for row in grouped.to_pylist():
                    sums[(row["tenant_id"], row["week_start"])] += int(row["event_count_sum"] or 0)
    else:
        from pyspark.sql import functions as F

        rows = (
            engine.read(table, tenants).where(F.col("week_start").between(F.lit(first), F.lit(last)))
            .groupBy("tenant_id", "week_start").agg(F.sum("event_count").alias("events")).collect()
        )  # at most tenants × weeks rows
        for row in rows:
            sums[(row["tenant_id"], row["week_start"])] += int(row["events"] or 0)
    trend = {}
    for tenant, (start, end) in windows.items():
        weeks = [start + timedelta(weeks=i) for i in range((end - start).days // 7 + 1)]
        trend[tenant] = [(week, sums.get((tenant, week), 0)) for week in weeks]
    return trend


def quality_results(warehouse: str, run_id: str, s3=None) -> dict | None:
    """This run's quality outcomes (``WAREHOUSE/_quality/results/<run_id>.json``), if any."""
    text = _read(warehouse.rstrip("/") + f"/_quality/results/{run_id}.json", s3)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# ------------------------------------------------------------------ page model


@dataclass
class Bar:
    label: str
    value: int
    parts: list[tuple[str, int, str]] = field(default_factory=list)  # (name, value, css class)


def _counters(streams: Iterable[Mapping[str, Any]]) -> list[str]:
    """The report's numeric per-stream counters: the known ones first, then any other
    (e.g. ``suppressed``) in name order, so a new counter shows up on the page."""
    extra: set[str] = set()
    for s in streams:
        for key, value in s.items():
            if key not in KNOWN_COUNTERS and isinstance(value, (int, float)) and not isinstance(value, bool):
                extra.add(key)
    return [*KNOWN_COUNTERS, *sorted(extra)]


def _duration(report: Mapping[str, Any]) -> str:
    try:
        seconds = (datetime.fromisoformat(report["finished_at"]) - datetime.fromisoformat(report["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_status(report: Mapping[str, Any], quality: Mapping[str, Any] | None = None) -> str:
    """One word for the index: ``blocked``, ``critical``, ``warning``, ``quarantined`` or ``ok``."""
    if any(s.get("blocked") for s in report.get("streams", ())):
        return "blocked"
    critical = warning = 0
    if quality is not None:
        critical, warning = int(quality.get("failed_critical") or 0), int(quality.get("failed_warning") or 0)
    else:
        match = _QUALITY_FAILED.search(str((report.get("extras") or {}).get("quality") or ""))
        if match:
            critical, warning = int(match.group(1)), int(match.group(2))
    if critical:
        return "critical"
    if warning:
        return "warning"
    if (report.get("totals") or {}).get("quarantined"):
        return "quarantined"
    return "ok"


def _bars_per_tenant(streams: Sequence[Mapping[str, Any]]) -> list[Bar]:
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in streams:
        for key in ("accepted", "quarantined", "duplicates_dropped", "records_read"):
            per[s["tenant_id"]][key] += int(s.get(key) or 0)
    return [
        Bar(tenant, c["records_read"], [("accepted", c["accepted"], "ok"), ("quarantined", c["quarantined"], "bad"),
                                        ("duplicates", c["duplicates_dropped"], "dup")])
        for tenant, c in sorted(per.items())
    ]


def _reason_bars(streams: Sequence[Mapping[str, Any]]) -> list[Bar]:
    per: dict[str, int] = defaultdict(int)
    for s in streams:
        for code, n in (s.get("quarantined_by_code") or {}).items():
            per[code] += int(n)
    return [Bar(code, n, [(code, n, "bad")]) for code, n in sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))]


def _stage_rows(seconds: Mapping[str, float]) -> list[tuple[str, float, int]]:
    """(stage, seconds, whole-percent share) in the order the stages run (the JSON report sorts its keys).

    >>> _stage_rows({"merge": 1.0, "parse": 3.0})
    [('parse', 3.0, 75), ('merge', 1.0, 25)]
    """
    total = sum(seconds.values()) or 1.0
    return [(stage, float(s), round(100 * s / total)) for stage, s in ordered_stages(seconds)]


def _svg_bars(bars: Sequence[Bar], width: int = 560, row: int = 22, label_width: int = 170) -> dict:
    """Geometry of a horizontal (stacked) bar chart, drawn by the template as inline SVG."""
    top = max((b.value for b in bars), default=0) or 1
    plot = width - label_width - 60
    rows = []
    for i, bar in enumerate(bars):
        x = label_width
        segments = []
        for name, value, css in bar.parts:
            w = plot * value / top
            if value:
                segments.append({"x": round(x, 1), "w": round(max(w, 1.5), 1), "css": css, "title": f"{name}: {value}"})
            x += w
        rows.append({"y": i * row + 4, "label": bar.label, "value": bar.value, "segments": segments,
                     "end": round(label_width + plot * bar.value / top + 6, 1)})
    return {"width": width, "height": len(bars) * row + 8, "rows": rows, "row": row}


def _svg_trend(points: Sequence[tuple[date, int]], width: int = 360, height: int = 110) -> dict:
    """Geometry of one tenant's weekly column chart (inline SVG)."""
    top = max((v for _, v in points), default=0)
    scale = (height - 34) / top if top else 0
    step = width / max(len(points), 1)
    columns = []
    for i, (week, value) in enumerate(points):
        h = value * scale
        columns.append({"x": round(i * step + 2, 1), "w": round(step - 4, 1), "y": round(height - 18 - h, 1),
                        "h": round(h, 1), "week": week.isoformat(), "value": value})
    last = len(columns) - 1
    ticks = [{**c, "anchor": "start" if i == 0 else "end" if i == last else "middle",
              "at": c["x"] if i == 0 else c["x"] + c["w"] if i == last else c["x"] + c["w"] / 2}
             for i, c in enumerate(columns) if i in (0, len(columns) // 2, last)]
    return {"width": width, "height": height, "columns": columns, "ticks": ticks, "top": top,
            "total": sum(v for _, v in points), "baseline": height - 18}


def _quality_model(quality: Mapping[str, Any] | None) -> dict | None:
    if quality is None:
        return None
    outcomes = list(quality.get("outcomes") or ())
    failed = [o for o in outcomes if not o.get("success")]
    failed.sort(key=lambda o: (o.get("severity") != "critical", o.get("table_name") or "", o.get("expectation") or ""))
    per_table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        counts = per_table[(o.get("kind") or "", o.get("table_name") or "")]
        counts[0 if o.get("success") else 1] += 1
    return {
        "checked": len(outcomes),
        "failed_critical": quality.get("failed_critical", 0),
        "failed_warning": quality.get("failed_warning", 0),
        "failed": [{**o, "sample": json.dumps(o.get("sample"), ensure_ascii=False)[:MESSAGE_CHARS]} for o in failed],
        "per_table": [{"kind": k, "table": t, "passed": c[0], "failed": c[1]} for (k, t), c in sorted(per_table.items())],
        "blocked": list(quality.get("blocked") or ()),
    }


def _environment():
    import jinja2

    # Autoescape on for every template: tenant ids, file names, raw records and messages
    # are data from senders and must never become markup (issue #16, 4).
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("feedlake", "html/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    return env


def render_run_page(report: Mapping[str, Any], *, kind: str = "ingest", examples: Mapping[str, list] | None = None,
                    trend: Mapping[str, Sequence[tuple[date, int]]] | None = None,
                    quality: Mapping[str, Any] | None = None, docs_link: str | None = None) -> str:
    """The HTML of one run page (pure: everything it shows is passed in)."""
    streams = list(report.get("streams") or ())
    counters = _counters(streams)
    tables = sorted({t for s in streams for t in (s.get("tables") or {})})
    rows = []
    for s in streams:
        rows.append({
            "tenant_id": s["tenant_id"], "stream": s["stream"],
            "counters": [s.get(c, 0) for c in counters],
            "codes": sorted((s.get("quarantined_by_code") or {}).items()),
            "tables": [(t, (s.get("tables") or {}).get(t)) for t in sorted(s.get("tables") or {})],
            "blocked": s.get("blocked"),
        })
    totals = [sum(int(s.get(c) or 0) for s in streams) for c in counters]
    extras = {k: v for k, v in (report.get("extras") or {}).items() if k != "quality"}
    return _environment().get_template("run.html.j2").render(
        kind=kind,
        report=report,
        duration=_duration(report),
        status=run_status(report, quality),
        counters=[COUNTER_LABELS.get(c, c.replace("_", " ")) for c in counters],
        rows=rows,
        totals=totals,
        summary=dict(zip(counters, totals)),
        tables=tables,
        blocked=[s for s in streams if s.get("blocked")],
        tenant_chart=_svg_bars(_bars_per_tenant(streams)) if streams else None,
        reason_chart=_svg_bars(_reason_bars(streams)) if any(s.get("quarantined") for s in streams) else None,
        examples=sorted((examples or {}).items()),
        per_reason=EXAMPLES_PER_REASON,
        raw_chars=RAW_RECORD_CHARS,
        trend=[(tenant, _svg_trend(points)) for tenant, points in sorted((trend or {}).items())],
        trend_weeks=TREND_WEEKS,
        quality=_quality_model(quality),
        quality_summary=(report.get("extras") or {}).get("quality"),
        extras=[(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)) for k, v in sorted(extras.items())],
        stages=_stage_rows(report.get("stage_seconds") or {}),
        docs_link=docs_link,
    )


def _docs_link(warehouse: str, quality: QualitySettings | None) -> str | None:
    """The Data Docs index as seen from ``_reports/`` (relative when it is inside the warehouse)."""

    location = docs_location(warehouse, quality)
    if is_remote(warehouse) and location.startswith(warehouse.rstrip("/")):
        return "../_quality/data_docs/index.html"
    if is_remote(warehouse):
        return None
    if not os.path.isfile(location):
        return None
    return os.path.relpath(location, display_path(reports_folder(warehouse))).replace(os.sep, "/")


def templates_available() -> bool:
    """The page templates are in the installed package (a zip of .py files only lacks them)."""
    from importlib import resources

    return (resources.files("feedlake") / "html" / "templates" / "run.html.j2").is_file()


def write_run_page(report, config, engine, s3=None) -> str | None:
    """Write ``_reports/<run_id>.html`` for a finished ingest run and rebuild the index.

    ``report`` is the pipeline's :class:`feedlake.ingest.report.RunReport` (already written as
    JSON); ``config`` and ``engine`` those of the run, used for the batch-sized reads.
    Returns the page's location (absolute for a local warehouse), or ``None`` when the
    package was shipped without its templates (logged: the data run itself is done).
    """
    if not templates_available():
        log.error("run page not written: feedlake/html/templates is missing from the installed package")
        return None
    data = report.to_dict()
    warehouse = report.warehouse
    html = render_run_page(
        data,
        examples=quarantine_examples(engine, config, report.run_id, data),
        trend=activity_trend(engine, config, data),
        quality=quality_results(warehouse, report.run_id, s3),
        docs_link=_docs_link(warehouse, config.settings.quality),
    )
    location = page_location(warehouse, report.run_id)
    write_text(location, html, s3)
    write_index(warehouse, s3)
    return location


def write_quality_page(run, warehouse: str, quality: QualitySettings | None = None, s3=None) -> str | None:
    """Write ``_reports/<run_id>.html`` for a ``feedlake quality`` run (:class:`feedlake.quality.checks.QualityRun`)."""
    if not templates_available():
        log.error("run page not written: feedlake/html/templates is missing from the installed package")
        return None
    results = json.loads(run.to_json())
    checked = run.checked_at.isoformat(timespec="seconds")
    data = {"run_id": run.run_id, "engine": "-", "landing": "-", "warehouse": warehouse, "started_at": checked,
            "finished_at": checked, "streams": [], "extras": {"quality": run.summary()}, "totals": {}}
    html = render_run_page(data, kind="quality", quality=results, docs_link=_docs_link(warehouse, quality))
    location = page_location(warehouse, run.run_id)
    write_text(location, html, s3)
    write_index(warehouse, s3)
    return location


def index_entries(warehouse: str, s3=None, limit: int = INDEX_LIMIT) -> list[dict]:
    """The newest ``limit`` runs: ingest runs from ``_reports/*.json``, quality-only runs from
    ``_quality/results/*.json`` (run ids start with their UTC time, so names sort by time)."""
    folder = reports_folder(warehouse)
    reports = {n.removesuffix(".json") for n in _list_names(folder, ".json", s3)}
    results_folder = warehouse.rstrip("/") + "/_quality/results"
    results = {n.removesuffix(".json") for n in _list_names(results_folder, ".json", s3)}
    pages = {n.removesuffix(".html") for n in _list_names(folder, ".html", s3)}
    entries = []
    for run_id in sorted(reports | results, reverse=True)[:limit]:
        quality = None
        if run_id in results:
            text = _read(f"{results_folder}/{run_id}.json", s3)
            quality = json.loads(text) if text else None
        if run_id in reports:
            text = _read(f"{folder}/{run_id}.json", s3)
            try:
                report = json.loads(text) if text else None
            except ValueError:
                report = None
            if not isinstance(report, dict) or "streams" not in report:
                continue
            totals = report.get("totals") or {}
            entries.append({
                "run_id": run_id, "kind": "ingest", "started_at": report.get("started_at", ""),
                "duration": _duration(report), "engine": report.get("engine", ""),
                "status": run_status(report, quality), "tenants": len(_tenants(report)),
                "files": totals.get("files_read", 0), "read": totals.get("records_read", 0),
                "accepted": totals.get("accepted", 0), "quarantined": totals.get("quarantined", 0),
                "duplicates": totals.get("duplicates_dropped", 0),
                "blocked": sum(1 for s in report.get("streams", ()) if s.get("blocked")),
                "page": f"{run_id}.html" if run_id in pages else None,
            })
        elif quality is not None:
            entries.append({
                "run_id": run_id, "kind": "quality", "started_at": quality.get("checked_at", ""), "duration": "-",
                "engine": "-", "status": run_status({}, quality), "tenants": len({o["tenant_id"] for o in quality.get("outcomes", ())}),
                "files": "", "read": "", "accepted": "", "quarantined": "", "duplicates": "", "blocked": "",
                "page": f"{run_id}.html" if run_id in pages else None,
            })
    return entries


def write_index(warehouse: str, s3=None, limit: int = INDEX_LIMIT) -> str:
    """Rebuild ``_reports/index.html`` from the JSON reports; return its location."""
    entries = index_entries(warehouse, s3, limit)
    html = _environment().get_template("index.html.j2").render(
        warehouse=warehouse, entries=entries, limit=limit, generated=datetime.now().astimezone().isoformat(timespec="seconds"),
        chart=_svg_bars([Bar(e["run_id"][:15], int(e["read"] or 0),
                             [("accepted", int(e["accepted"] or 0), "ok"), ("quarantined", int(e["quarantined"] or 0), "bad"),
                              ("duplicates", int(e["duplicates"] or 0), "dup")])
                         for e in entries[:15] if e["kind"] == "ingest"]),
    )
    location = index_location(warehouse)
    write_text(location, html, s3)
    return location

