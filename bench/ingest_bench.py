"""Benchmark (issue 12): `feedlake ingest` of one big gzip JSONL track file vs hand-written jobs.

Generates N track events in one gzip JSON-lines file (with ~2 % duplicates and a few
corrupt lines), then measures on that same file, in one run:

a. Spark's parse with an explicit schema → ``noop`` (the bare parse);
b. the hand-written Spark job: the same parse + ``row_number`` dedupe on the event key
   (contact_key, event_text, event_timestamp; first line wins) + Parquet write;
c. ``feedlake ingest`` into a fresh warehouse with the default engine (the CLI in a
   subprocess: JVM start included, as a user runs it); ``--engine`` (repeatable) runs
   it once per named engine instead (issue 11: both engines measured in one run);
d. DuckDB doing (b)'s parse + dedupe + Parquet on one machine (the floor; ``pip install
   -e .[bench]``), skipped when duckdb is not installed;
e. the parse stage alone, as the ingest runs it (conf's ``parsing`` settings, large scans
   spread over the cores): :func:`feedlake.landing.jvm_parse.parse_landing_files` → ``noop``.

Prints every time, (c)/(b) — the goal is ≤ 1.3 — and (c)/(a), and where (c)'s time went (the
stage seconds of its run report). (a), (b) and (e) share
one warm SparkSession with conf/ingest.yaml's ``spark`` settings. Usage::

    python bench/ingest_bench.py --events 2000000
    python bench/ingest_bench.py --engine delta-rs --engine delta-spark
    python bench/ingest_bench.py --events 2000000 --driver-memory 1g
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENT_SCHEMA = "event_text STRING, event_timestamp BIGINT, contact_key STRING, plan STRING, duration_ms BIGINT"
EVENT_KEY = ("contact_key", "event_text", "event_timestamp")


def generate(path: Path, events: int, seed: int = 7) -> dict[str, int]:
    """Write ``events`` track lines; returns how many duplicates and corrupt lines went in."""
    rng = random.Random(seed)
    dupes = corrupt = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    previous: list[str] = []
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
        for i in range(events):
            roll = rng.random()
            if roll < 0.02 and previous:
                line = rng.choice(previous)
                dupes += 1
            elif roll < 0.0201:
                line = '{"event_text":"signed up", "event_timestamp":1234567890, "contact_key":"abc1234", "key": "val"ue"}'
                corrupt += 1
            else:
                line = json.dumps(
                    {
                        "event_text": rng.choice(["login", "signed up", "invited a friend", "created report", "exported"]),
                        "event_timestamp": 1_700_000_000 + i,
                        "contact_key": f"user-{rng.randrange(events // 10 + 1)}",
                        "plan": rng.choice(["free", "pro", "enterprise"]),
                        "duration_ms": rng.randrange(10_000),
                    }
                )
                if len(previous) < 1000:
                    previous.append(line)
            fh.write(line + "\n")
    return {"duplicates": dupes, "corrupt": corrupt}


def stage_profile(warehouse: Path) -> str:
    """The ``stage_seconds`` of the warehouse's run report: where (c)'s time went."""
    reports = sorted((warehouse / "_reports").glob("*.json"))
    from feedlake.ingest.report import stage_line

    return stage_line(json.loads(reports[-1].read_text()).get("stage_seconds", {}) if reports else {})


def hand_written_job(spark, data: Path, out: Path) -> None:
    """(b): explicit-schema parse, ``row_number`` dedupe on the event key, Parquet."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events = spark.read.schema(EVENT_SCHEMA).json(str(data)).withColumn("_line", F.monotonically_increasing_id())
    first = Window.partitionBy(*EVENT_KEY).orderBy("_line")
    deduped = events.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank", "_line")
    deduped.write.mode("overwrite").parquet(str(out))


def duckdb_job(data: Path, out: Path) -> float | None:
    """(d): the same parse + dedupe + Parquet in DuckDB (None when duckdb is not installed)."""
    try:
        import duckdb
    except ImportError:
        return None
    columns = "{'event_text': 'VARCHAR', 'event_timestamp': 'BIGINT', 'contact_key': 'VARCHAR', 'plan': 'VARCHAR', 'duration_ms': 'BIGINT'}"
    started = time.perf_counter()
    con = duckdb.connect()
    # Paths are bound as parameters / passed to the API; the columns are the constants above.
    deduped = con.sql(
        f"""SELECT * EXCLUDE (_line, _rank) FROM (
              SELECT *, row_number() OVER (PARTITION BY contact_key, event_text, event_timestamp ORDER BY _line) AS _rank
              FROM (SELECT *, row_number() OVER () AS _line
                    FROM read_json($path, format='newline_delimited', columns={columns}, ignore_errors=true)))
            WHERE _rank = 1""",
        params={"path": str(data)},
    )
    deduped.write_parquet(str(out))
    con.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workdir", default=None, help="keep files here instead of a temp dir")
    parser.add_argument("--engine", action="append", choices=("delta-rs", "delta-spark"), default=None,
                        help="run (c) with this engine (repeatable); default: the conf's engine")
    parser.add_argument("--driver-memory", default=None,
                        help="run (c) with this spark.driver.memory (issue 12: the 2M-event run with 1g)")
    args = parser.parse_args()

    from feedlake.landing.jvm_parse import parse_landing_files
    from feedlake.settings.config import load_config
    from feedlake.settings.session import build_session

    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedlake-bench-"))
    landing = work / "landing"
    data = landing / "tenant=bench/track/dt=2024-03-01/events.jsonl.gz"
    if not data.exists():
        started = time.perf_counter()
        injected = generate(data, args.events)
        print(f"generated {args.events:,} events ({data.stat().st_size / 1e6:.1f} MB gz) in {time.perf_counter() - started:.1f}s: {injected}")
    config = load_config(None)
    spark = build_session(config.settings.spark)
    spark.range(1000).selectExpr("sum(id)").collect()  # JVM warm-up, not measured
    timings: dict[str, float | None] = {}

    started = time.perf_counter()
    spark.read.schema(EVENT_SCHEMA).json(str(data)).write.format("noop").mode("overwrite").save()
    timings["a"] = time.perf_counter() - started
    print(f"(a) Spark parse, explicit schema -> noop               : {timings['a']:7.1f} s", flush=True)

    started = time.perf_counter()
    hand_written_job(spark, data, work / "hand_written.parquet")
    timings["b"] = time.perf_counter() - started
    print(f"(b) Spark parse + row_number dedupe + Parquet          : {timings['b']:7.1f} s", flush=True)

    started = time.perf_counter()
    parsing = parse_landing_files(spark, [(0, str(data), "json", "gzip")], config.settings.parsing)
    parsing.df.write.format("noop").mode("overwrite").save()
    parsing.release()
    timings["e"] = time.perf_counter() - started
    print(f"    feedlake parse stage alone (parse_landing_files)    : {timings['e']:7.1f} s", flush=True)
    spark.stop()

    timings["d"] = duckdb_job(data, work / "duckdb.parquet")
    if timings["d"] is not None:
        print(f"    DuckDB parse + dedupe + Parquet (1-machine floor)   : {timings['d']:7.1f} s", flush=True)

    for engine in args.engine or [None]:
        warehouse = work / "warehouse"
        shutil.rmtree(warehouse, ignore_errors=True)
        command = [sys.executable, "-m", "feedlake.app.cli", "ingest", "--landing", str(landing), "--warehouse", str(warehouse)]
        if engine:
            command += ["--engine", engine]
        if args.driver_memory:
            command += ["--set", f"spark.conf.spark.driver.memory={args.driver_memory}"]
        started = time.perf_counter()
        code = subprocess.call(command, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"feedlake ingest ({engine or 'default'}) failed with exit code {code}")
        label = f"{engine or 'default':<11}" + (f", driver {args.driver_memory}" if args.driver_memory else "")
        print(f"(c) feedlake ingest (fresh warehouse, CLI, {label})  : {elapsed:7.1f} s", flush=True)
        print(f"    (c)/(b): {elapsed / timings['b']:.2f}x (goal <= 1.3x)   (c)/(a): {elapsed / timings['a']:.2f}x")
        print(f"    (c) seconds per stage (its run report): {stage_profile(warehouse)}")
    print(f"events: {args.events:,}  file: {data.stat().st_size / 1e6:.1f} MB gzip")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
