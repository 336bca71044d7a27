"""Benchmark: spreading the lines of an unsplittable gzip file over all cores, or not (issue #6).

One task must read a gzip file from start to end, and the JVM parse runs in that task
(feedlake.landing.jvm_parse). With fewer files than cores, ``parsing.spread_lines``
(conf/ingest.yaml) repartitions the parsed lines before validation and dedupe, at the
price of one shuffle of the parsed lines. This
measures both settings on the 2M-event file of bench/ingest_bench.py with ``local[2]``
(conf/ingest.yaml), alternating the order (A B B A ...) so that drift in machine load
hits both alike:

1. the parse stage alone: :func:`feedlake.landing.parsing.read_landing_files` to the ``noop`` sink;
2. a full ``feedlake ingest`` into a fresh warehouse (delta-rs).

Every measurement runs in a fresh Python process and SparkSession (JVM started and
warmed up before the clock starts), so one run's memory cannot slow the next. Prints
every measurement, the medians and the ratio spread / single task. Usage::

    python bench/repartition_bench.py --events 2000000 --repeat 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest_bench import generate

VARIANTS = {"spread": True, "single task": False}
STAGES = ("parse only", "feedlake ingest")


def measure(stage: str, spread: bool, work: Path) -> float:
    """One measurement in this process: build the session, warm up, then time ``stage``."""
    from feedlake.app.cli import main as feedlake_main
    from feedlake.landing.layouts import detect_format
    from feedlake.landing.parsing import read_landing_files
    from feedlake.settings.config import load_config
    from feedlake.settings.session import build_session

    landing = work / "landing"
    data = next(landing.rglob("*.jsonl.gz"))
    spark = build_session(load_config(None, {"engine": "delta-rs"}).settings.spark)
    fmt, compression = detect_format(data.name)
    files = [(0, str(data), fmt, compression)]
    # JVM and Python workers started, feedlake imported in them: not measured.
    spark.range(1000).selectExpr("sum(id)").collect()
    read_landing_files(spark, [(0, str(data), fmt, compression)], spread_lines=False).limit(10).collect()

    started = time.perf_counter()
    if stage == "parse only":
        read_landing_files(spark, files, spread_lines=spread).write.format("noop").mode("overwrite").save()
    else:
        warehouse = work / "warehouse"
        shutil.rmtree(warehouse, ignore_errors=True)
        code = feedlake_main(["ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", "delta-rs",
                              "--set", f"parsing.spread_lines={str(spread).lower()}"])
        if code != 0:
            raise SystemExit(f"feedlake ingest failed with exit code {code}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="measurements per variant and stage")
    parser.add_argument("--stage", choices=STAGES, action="append", default=None, help="only these stages")
    parser.add_argument("--workdir", default=None, help="keep the generated file here instead of a temp dir")
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedlake-repartition-"))
    if args.child:
        stage, variant = args.child
        print(f"RESULT {measure(stage, VARIANTS[variant], work):.3f}")
        return

    data = work / "landing" / "tenant=bench/track/dt=2024-03-01/events.jsonl.gz"
    if not data.exists():
        injected = generate(data, args.events)
        print(f"generated {args.events:,} events ({data.stat().st_size / 1e6:.1f} MB gz): {injected}", flush=True)

    results: dict[tuple[str, str], list[float]] = {}
    names = list(VARIANTS)
    stages = args.stage or list(STAGES)
    for stage in stages:
        for round_ in range(args.repeat):
            for name in names if round_ % 2 == 0 else reversed(names):
                done = subprocess.run(
                    [sys.executable, __file__, "--workdir", str(work), "--child", stage, name],
                    capture_output=True, text=True, check=False,
                )
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode != 0 or not lines:
                    raise SystemExit(f"{stage} / {name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
                seconds = float(lines[-1].split()[1])
                results.setdefault((stage, name), []).append(seconds)
                print(f"{stage:16s} {name:12s} {seconds:7.1f} s", flush=True)

    print(f"\nevents: {args.events:,}  files: 1 (gzip)  master: local[2] (conf/ingest.yaml)")
    for stage in stages:
        spread = statistics.median(results[(stage, "spread")])
        single = statistics.median(results[(stage, "single task")])
        print(f"{stage:16s} spread {spread:7.1f} s | single task {single:7.1f} s | ratio spread/single {spread / single:5.2f}x")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
