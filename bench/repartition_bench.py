"""Benchmark: spreading the lines of an unsplittable gzip file over all cores, or not (issue #6).

One task must read a gzip file from start to end. With fewer files than cores,
``parsing.spread_lines`` (conf/ingest.yaml) repartitions the lines read before JSON
parsing, validation and dedupe, at the price of one shuffle of the raw lines. This
measures both settings on the 2M-event file of bench/ingest_bench.py, in one process
and one SparkSession (``local[2]`` from conf/ingest.yaml), alternating the order
(A B B A ...) so that drift in machine load hits both alike:

1. the parse stage alone: :func:`feedlake.parsing.read_landing_files` to the ``noop`` sink;
2. a full ``feedlake ingest`` into a fresh warehouse (delta-rs).

Prints every measurement, the medians and the ratio spread / not spread. Usage::

    python bench/repartition_bench.py --events 2000000 --repeat 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ingest_bench import generate

VARIANTS = {"spread": True, "single task": False}


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="measurements per variant and stage")
    parser.add_argument("--workdir", default=None, help="keep the generated file here instead of a temp dir")
    args = parser.parse_args()

    from feedlake.cli import main as feedlake_main
    from feedlake.config import load_config
    from feedlake.landing import detect_format
    from feedlake.parsing import read_landing_files
    from feedlake.session import build_session

    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedlake-repartition-"))
    landing = work / "landing"
    data = landing / "tenant=bench/track/dt=2024-03-01/events.jsonl.gz"
    if not data.exists():
        injected = generate(data, args.events)
        print(f"generated {args.events:,} events ({data.stat().st_size / 1e6:.1f} MB gz): {injected}")
    config = load_config(None, {"engine": "delta-rs"})
    spark = build_session(config.job["spark"])
    spark.range(1000).selectExpr("sum(id)").collect()  # JVM warm-up, not measured
    fmt, compression = detect_format(data.name)
    files = [(0, str(data), fmt, compression)]

    def parse(spread: bool) -> None:
        read_landing_files(spark, files, spread_lines=spread).write.format("noop").mode("overwrite").save()

    def ingest(spread: bool) -> None:
        warehouse = work / "warehouse"
        shutil.rmtree(warehouse, ignore_errors=True)
        code = feedlake_main(["ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", "delta-rs",
                              "--set", f"parsing.spread_lines={str(spread).lower()}"])
        if code != 0:
            raise SystemExit(f"feedlake ingest failed with exit code {code}")

    parse(False)  # Python workers started and feedlake imported in them, not measured
    results: dict[tuple[str, str], list[float]] = {}
    names = list(VARIANTS)
    for stage, action in (("parse only", parse), ("feedlake ingest", ingest)):
        for round_ in range(args.repeat):
            for name in names if round_ % 2 == 0 else reversed(names):
                seconds = timed(lambda: action(VARIANTS[name]))  # noqa: B023 - called right away
                results.setdefault((stage, name), []).append(seconds)
                print(f"{stage:16s} {name:12s} {seconds:7.1f} s", flush=True)

    print(f"\nevents: {args.events:,}  files: 1 (gzip)  cores: {spark.sparkContext.defaultParallelism}")
    for stage in ("parse only", "feedlake ingest"):
        spread = statistics.median(results[(stage, "spread")])
        single = statistics.median(results[(stage, "single task")])
        print(f"{stage:16s} spread {spread:7.1f} s | single task {single:7.1f} s | ratio spread/single {spread / single:5.2f}x")
    spark.stop()
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
