"""Benchmark: the weekly derived-table update follows the batch, not the history (issue #4).

One tenant gets a history of W weeks (1×) or 10·W weeks (10×) of events and daily
metric exports, written straight to its Delta tables one week per commit (as weekly
ingests would leave them), with the derived tables (activity_weekly, account_metrics,
account_metrics_weekly) already computed. Then the **same batch** (a day of events in
the week after the history, some events re-sent from the last history week, and a
daily metric export) is ingested into each with ``run_ingest`` and the two derived-table
hooks, timed around their work. Each measurement is repeated on a fresh copy of the
history and the median kept.

Baseline, measured in the same run: recomputing activity_weekly and
account_metrics_weekly over the whole history (what a non-incremental update costs at
the least: read everything, aggregate, no write).

Prints, per history size, the seconds of the weekly update (both hooks), of the whole
run and of the full recompute, and the 10× / 1× ratios. Usage::

    python bench/weekly_bench.py --weeks 26 --events-per-week 10000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

TENANT = "bench"
METRICS = ("Total Journeys", "active users", "seats")
FIRST_MONDAY = date(2020, 1, 6)


def unix(day: date, second: int) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) + second


def history_rows(weeks: int, events_per_week: int, contacts: int, accounts: int, seed: int = 11):
    """Yield ``(week_start, events, metric_records)`` per week of history (plain Python rows)."""
    rng = random.Random(seed)
    texts = ["login", "export", "invite", "report"]
    for w in range(weeks):
        monday = FIRST_MONDAY + timedelta(weeks=w)
        events = []
        for i in range(events_per_week):
            day = monday + timedelta(days=rng.randrange(7))
            contact = f"c{rng.randrange(contacts)}"
            text = rng.choice(texts)
            ts = unix(day, rng.randrange(86_400))
            events.append((contact, text, ts, f"h{w}-{i}"))
        records = []
        for d in range(7):
            day = monday + timedelta(days=d)
            for a in range(accounts):
                values = {"Total Journeys": float(100 * w + 10 * d + a), "active users": float(rng.randrange(50)),
                          "seats": float(a % 20)}
                records.append((f"a{a}", day, json.dumps(values, sort_keys=True, separators=(",", ":"))))
        yield monday, events, records


def write_history(spark, config, warehouse: Path, weeks: int, events_per_week: int, contacts: int, accounts: int) -> dict:
    """Write the source tables week by week, then the derived tables computed from them."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake

    from feedlake.delta.engines import DeltaRsEngine, arrow_schema
    from feedlake.derived.activity import activity_weekly
    from feedlake.derived.metric_rollup import daily_metrics, weekly_metrics, with_accounts
    from feedlake.streams.metrics import parse_settings

    engine = DeltaRsEngine(spark, str(warehouse))
    for table in config.tables.values():
        engine.ensure(table)

    def append(name: str, columns: dict) -> None:
        table = config.table(name)
        data = pa.table({c: columns.get(c, [None] * len(next(iter(columns.values())))) for c in table.column_names})
        write_deltalake(engine.table_path(table), data.cast(arrow_schema(table)), mode="append", partition_by=["tenant_id"])

    seq = "2020-01-01T00:00:00.000000Z history 0000000000"
    counts = {"events": 0, "metric_records": 0}
    for monday, events, records in history_rows(weeks, events_per_week, contacts, accounts):
        n = len(events)
        append("contact_events", {
            "tenant_id": [TENANT] * n, "event_key": [e[3] for e in events], "contact_key": [e[0] for e in events],
            "event_text": [e[1] for e in events], "event_timestamp": [e[2] for e in events],
            "event_ts": [datetime.fromtimestamp(e[2], tz=timezone.utc) for e in events], "properties": ["{}"] * n,
            "_seq": [seq] * n, "_batch_id": ["history"] * n, "_source_file": ["history"] * n, "_line_number": list(range(n)),
        })
        m = len(records)
        append("metric_records", {
            "tenant_id": [TENANT] * m, "id_column": ["account_id"] * m, "source_id": [r[0] for r in records],
            "metric_date": [r[1] for r in records], "file_date": [r[1] for r in records], "metrics": [r[2] for r in records],
            "properties": ["{}"] * m, "_seq": [seq] * m, "_batch_id": ["history"] * m, "_source_file": ["history"] * m,
            "_line_number": list(range(m)),
        })
        days = [monday + timedelta(days=d) for d in range(7)]
        columns = json.dumps(sorted(["account_id", "metric_date", *METRICS]))
        append("metric_files", {
            "tenant_id": [TENANT] * 7, "source_file": [f"tenant={TENANT}/metrics/hook_export_{d:%Y%m%d}.csv" for d in days],
            "file_date": days, "columns": [columns] * 7, "batch_id": ["history"] * 7,
        })
        counts["events"] += n
        counts["metric_records"] += m
    append("contact_accounts", {
        "tenant_id": [TENANT] * contacts, "contact_key": [f"c{i}" for i in range(contacts)],
        "account_key": [f"a{i % accounts}" for i in range(contacts)], "_seq": [seq] * contacts,
        "_batch_id": ["history"] * contacts, "_source_file": ["history"] * contacts, "_line_number": list(range(contacts)),
    })

    rules = parse_settings(config.stream("metrics").options).for_tenant(TENANT)
    events = engine.read(config.table("contact_events"), [TENANT])
    links = engine.read(config.table("contact_accounts"), [TENANT])
    daily = daily_metrics(with_accounts(engine.read(config.table("metric_records"), [TENANT]), rules, None), rules)
    derived = {
        "activity_weekly": (activity_weekly(events, links), "week_start"),
        "account_metrics": (daily, "metric_date"),
        "account_metrics_weekly": (weekly_metrics(daily), "week_start"),
    }
    for name, (df, day_column) in derived.items():
        table = config.table(name)
        data = df.select(*table.column_names).toArrow().cast(arrow_schema(table))
        # One commit per week, like incremental runs leave the files: clustered by week.
        week_of = [d - timedelta(days=d.weekday()) for d in data.column(day_column).to_pylist()]
        week_array = pa.array(week_of, pa.date32())
        for week in sorted(set(week_of)):
            chunk = data.filter(pc.equal(week_array, pa.scalar(week, pa.date32())))
            write_deltalake(engine.table_path(table), chunk, mode="append", partition_by=["tenant_id"])
    return counts


def write_batch(history: Path, landing: Path, weeks: int, events_per_day: int, resent: int, contacts: int,
                accounts: int) -> date:
    """The batch: a day of events in the week after the history, events re-sent from the last
    history week (read back from it: same key, so they must not be counted twice), a metric export."""
    from deltalake import DeltaTable

    rng = random.Random(99)
    new_week = FIRST_MONDAY + timedelta(weeks=weeks)
    last_week = new_week - timedelta(weeks=1)
    events = [
        {"contact_key": f"c{rng.randrange(contacts)}", "event_text": rng.choice(["login", "export"]),
         "event_timestamp": unix(new_week, rng.randrange(86_400)), "event_key": f"n{i}"}
        for i in range(events_per_day)
    ]
    stored = DeltaTable(str(history / "contact_events")).to_pyarrow_table(
        columns=["event_key", "contact_key", "event_text", "event_timestamp"],
        filters=[("event_timestamp", ">=", unix(last_week, 0)), ("event_timestamp", "<", unix(new_week, 0))],
    )
    events += stored.slice(0, resent).to_pylist()
    day = f"dt={new_week + timedelta(days=1)}"
    track = landing / f"tenant={TENANT}" / "track" / day
    track.mkdir(parents=True, exist_ok=True)
    (track / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    metrics = landing / f"tenant={TENANT}" / "metrics" / day
    metrics.mkdir(parents=True, exist_ok=True)
    lines = ["account_id,metric_date," + ",".join(METRICS)]
    for a in range(accounts):
        lines.append(f"a{a},{new_week.isoformat()},{100 * weeks + a},{rng.randrange(50)},{a % 20}")
    (metrics / f"hook_export_{new_week:%Y%m%d}.csv").write_text("\n".join(lines) + "\n")
    return new_week


def timed_update(spark, config, history: Path, landing: Path, run_dir: Path, engine: str) -> tuple[float, float]:
    """Copy the history, ingest the batch; return (seconds in the derived-table hooks, seconds of the run)."""
    from feedlake.delta.engines import make_engine
    from feedlake.derived.activity import ActivityHook
    from feedlake.derived.metric_rollup import MetricsHook
    from feedlake.ingest.hooks import IngestHook
    from feedlake.ingest.pipeline import IngestRequest, run_ingest

    class Timed(IngestHook):
        def __init__(self, inner: IngestHook):
            self.inner, self.seconds = inner, 0.0

        def after_merge(self, *args, **kwargs):
            started = time.perf_counter()
            self.inner.after_merge(*args, **kwargs)
            self.seconds += time.perf_counter() - started

    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(history, run_dir)
    hooks = [Timed(MetricsHook(config)), Timed(ActivityHook(config))]
    started = time.perf_counter()
    report = run_ingest(spark, config, make_engine(spark, str(run_dir), engine), IngestRequest(str(landing), str(run_dir)), hooks)
    total = time.perf_counter() - started
    assert report.totals()["quarantined"] == 0, report.render()
    return sum(h.seconds for h in hooks), total


def full_recompute(spark, config, history: Path) -> float:
    """Seconds to recompute activity_weekly and account_metrics_weekly over all history (no write)."""
    from feedlake.delta.engines import DeltaRsEngine
    from feedlake.derived.activity import activity_weekly
    from feedlake.derived.metric_rollup import daily_metrics, weekly_metrics, with_accounts
    from feedlake.streams.metrics import parse_settings

    engine = DeltaRsEngine(spark, str(history))
    rules = parse_settings(config.stream("metrics").options).for_tenant(TENANT)
    started = time.perf_counter()
    events = engine.read(config.table("contact_events"), [TENANT])
    links = engine.read(config.table("contact_accounts"), [TENANT])
    activity_weekly(events, links).write.format("noop").mode("overwrite").save()
    records = engine.read(config.table("metric_records"), [TENANT])
    weekly_metrics(daily_metrics(with_accounts(records, rules, None), rules)).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def slice_rows(spark, config, history: Path, weeks: int) -> int:
    """History rows inside the slices the batch's update reads (events of its two weeks,
    metric records of its week and the weeks around it): what the update costs depends on."""
    from feedlake.delta.engines import DeltaRsEngine
    from feedlake.derived.slices import Slices, around

    engine = DeltaRsEngine(spark, str(history))
    new_week = FIRST_MONDAY + timedelta(weeks=weeks)
    events = Slices.of_weeks("event_timestamp", [new_week - timedelta(weeks=1), new_week], unix_seconds=True)
    records = Slices.of_weeks("metric_date", around([new_week], before=1, after=1))
    return (engine.read(config.table("contact_events"), [TENANT], events).count()
            + engine.read(config.table("metric_records"), [TENANT], records).count())


def report(spark, args, engine: str, scales, histories, landings, counts, work: Path) -> None:
    """Time the same batch into each history size on one engine; print the table of medians."""
    # Alternate the sizes so that load from other processes weighs on both alike.
    samples: dict[int, dict[str, list[float]]] = {s: {"update": [], "run": [], "recompute": []} for s in scales}
    from feedlake.settings.config import load_config

    config = load_config(None, {"engine": engine})
    for attempt in range(args.repeat):
        for scale in scales:
            update, run = timed_update(spark, config, histories[scale], landings[scale], work / "run", engine)
            recompute = full_recompute(spark, config, histories[scale])
            for key, value in (("update", update), ("run", run), ("recompute", recompute)):
                samples[scale][key].append(value)
            print(f"   #{attempt + 1} {engine} {scale:>2}×: weekly update {update:.2f}s, whole run {run:.2f}s, "
                  f"full recompute {recompute:.2f}s", flush=True)
    results = {
        scale: {**{k: statistics.median(v) for k, v in samples[scale].items()}, **counts[scale]}
        for scale in scales
    }
    one, ten = results[1], results[10]
    batch = args.batch_events + args.resent
    print(f"\n[{engine}] same batch ({batch:,} events + {args.accounts} metric rows) into 1× and 10× history, "
          f"median of {args.repeat}, cores: {spark.sparkContext.defaultParallelism}")
    print(f"{'':34}{'1×':>10}{'10×':>10}{'10× / 1×':>10}")
    for key, label in (("events", "history events"), ("slice_rows", "history rows the update reads")):
        print(f"{label:34}{one[key]:>10,}{ten[key]:>10,}{ten[key] / one[key]:>10.1f}")
    for key, label in (("update", "weekly update (hooks), s"), ("run", "whole ingest run, s"),
                       ("recompute", "baseline: full recompute, s")):
        print(f"{label:34}{one[key]:>10.2f}{ten[key]:>10.2f}{ten[key] / one[key]:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=26, help="weeks of history at 1× (10× has ten times as many)")
    parser.add_argument("--events-per-week", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--batch-events", type=int, default=1_500, help="events of the batch's new day")
    parser.add_argument("--resent", type=int, default=100, help="events of the batch re-sent from the last history week")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="keep files here instead of a temp dir")
    parser.add_argument("--engine", action="append", choices=("delta-rs", "delta-spark"), default=None,
                        help="Delta engine(s) of the timed update (repeat to measure both in one run; default delta-rs)")
    args = parser.parse_args()

    from feedlake.settings.config import load_config
    from feedlake.settings.session import build_session

    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedlake-weekly-bench-"))
    config = load_config(None, {"engine": "delta-rs"})
    engines = args.engine or ["delta-rs"]
    spark = build_session(config.settings.spark, with_delta_jar="delta-spark" in engines)
    spark.range(1000).selectExpr("sum(id)").collect()  # JVM warm-up, not measured

    scales = (1, 10)
    histories, landings, counts = {}, {}, {}
    for scale in scales:
        weeks = args.weeks * scale
        histories[scale], landings[scale] = work / f"history_{scale}x", work / f"landing_{scale}x"
        for folder in (histories[scale], landings[scale]):
            shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        counts[scale] = write_history(spark, config, histories[scale], weeks, args.events_per_week, args.contacts, args.accounts)
        write_batch(histories[scale], landings[scale], weeks, args.batch_events, args.resent, args.contacts, args.accounts)
        counts[scale]["slice_rows"] = slice_rows(spark, config, histories[scale], weeks)
        print(f"{scale:>2}× history: {weeks} weeks, {counts[scale]['events']:,} events, "
              f"{counts[scale]['metric_records']:,} metric records, written in {time.perf_counter() - started:.0f}s", flush=True)

    for engine in engines:
        report(spark, args, engine, scales, histories, landings, counts, work)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
