"""Benchmark: full `feedlake ingest` of one big gzip JSONL track file vs Spark's bare parse.

Generates N track events in one gzip JSON-lines file (with ~2 % duplicates and a few
corrupt lines), then, in one process and one SparkSession:

1. baseline: ``spark.read.json(file)`` written to the ``noop`` sink (Spark's own
   parse of the same bytes, no validation, no dedupe, no Delta write);
2. ``feedlake ingest`` of the same file into a fresh warehouse (delta-rs engine).

Prints both wall times and the ratio ingest / baseline. Usage::

    python bench/ingest_bench.py --events 2000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import tempfile
import time
from pathlib import Path


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workdir", default=None, help="keep files here instead of a temp dir")
    args = parser.parse_args()

    from feedlake.cli import main as feedlake_main
    from feedlake.config import load_config
    from feedlake.session import build_session

    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedlake-bench-"))
    landing = work / "landing"
    data = landing / "tenant=bench/track/dt=2024-03-01/events.jsonl.gz"
    if not data.exists():
        started = time.perf_counter()
        injected = generate(data, args.events)
        print(f"generated {args.events:,} events ({data.stat().st_size / 1e6:.1f} MB gz) in {time.perf_counter() - started:.1f}s: {injected}")
    config = load_config(None, {"engine": "delta-rs"})
    spark = build_session(config.job["spark"])
    spark.range(1000).selectExpr("sum(id)").collect()  # JVM warm-up, not measured

    started = time.perf_counter()
    spark.read.json(str(data)).write.format("noop").mode("overwrite").save()
    baseline = time.perf_counter() - started

    warehouse = work / "warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)
    started = time.perf_counter()
    code = feedlake_main(["ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", "delta-rs"])
    ingest = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"feedlake ingest failed with exit code {code}")

    print(f"events: {args.events:,}  cores: {spark.sparkContext.defaultParallelism}")
    print(f"baseline spark.read.json -> noop : {baseline:7.1f} s")
    print(f"feedlake ingest (delta-rs)       : {ingest:7.1f} s")
    print(f"ratio ingest / baseline          : {ingest / baseline:7.2f}x")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
