"""Benchmark: the same run on the two Delta engines, and where a delta-spark run's time goes.

``feedlake ingest`` of one landing zone (default: the bundled ``sample/landing``) into a
fresh warehouse, alternately on ``delta-rs`` and ``delta-spark``, in **one** local
session (the production conf of ``conf/ingest.yaml``, the Delta jar loaded), after one
unmeasured warm-up run per engine (the session sized for the landing zone as the CLI
sizes it, ``spark.small_batch``): the JVM start and its first compilations are out of
the figures, as in a test worker or a long-lived notebook. For each engine it prints the
median wall time, the driver JVM's CPU seconds, and the seconds spent inside Spark jobs
(the union of the jobs' intervals, from the session's event log); then the ratio
delta-spark / delta-rs. The rest of a run's wall time is the driver's own work: planning,
Delta log reads and commits, Python. Usage::

    python bench/engines_bench.py --repeat 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("delta-rs", "delta-spark")


def jvm_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def job_intervals(event_dir: Path) -> list[tuple[int, int]]:
    """(submitted, completed) epoch milliseconds of every Spark job in the event log(s) of ``event_dir``."""
    started: dict[int, int] = {}
    spans: list[tuple[int, int]] = []
    for log in sorted(event_dir.rglob("events_*")):  # the rolling log's parts (Hadoop's .crc files aside)
        with log.open() as lines:
            for line in lines:
                event = json.loads(line)
                if event["Event"] == "SparkListenerJobStart":
                    started[event["Job ID"]] = event["Submission Time"]
                elif event["Event"] == "SparkListenerJobEnd" and event["Job ID"] in started:
                    spans.append((started.pop(event["Job ID"]), event["Completion Time"]))
    return spans


def busy_seconds(spans: list[tuple[int, int]], start_ms: int, end_ms: int) -> float:
    """Seconds within [start, end] during which at least one Spark job ran (overlapping jobs counted once)."""
    clipped = sorted((max(a, start_ms), min(b, end_ms)) for a, b in spans if b > start_ms and a < end_ms)
    total, reach = 0, start_ms
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, default=ROOT / "sample" / "landing")
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per engine (median kept)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1: round 0 only warms the JVM up")

    from feedlake.app.cli import main as feedlake
    from feedlake.settings.config import load_config
    from feedlake.settings.session import build_session

    work = Path(tempfile.mkdtemp(prefix="feedlake-engines-bench-"))
    events = work / "events"
    events.mkdir()
    spark_settings = load_config(None).settings.spark
    conf = {**spark_settings.conf, "spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri(),
            "spark.eventLog.compress": "false"}
    # Sized for the landing zone as the CLI sizes its own session (``spark.small_batch``).
    landing_bytes = sum(p.stat().st_size for p in args.landing.rglob("*") if p.is_file())
    spark = build_session(replace(spark_settings, app_name="feedlake-engines-bench", conf=conf), with_delta_jar=True,
                          landing_bytes=landing_bytes)
    jvm = int(subprocess.check_output(["pgrep", "-n", "-P", str(os.getpid()), "java"]).split()[0])
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    windows: dict[str, list[tuple[float, float, int, int]]] = {e: [] for e in ENGINES}
    try:
        try:
            for round_ in range(args.repeat + 1):
                for engine in ENGINES if round_ % 2 == 0 else reversed(ENGINES):
                    warehouse = work / f"warehouse-{engine}"
                    shutil.rmtree(warehouse, ignore_errors=True)
                    cpu, start = jvm_cpu_seconds(jvm), time.time()
                    with redirect_stdout(io.StringIO()):  # the run's own summary table
                        code = feedlake(["ingest", "--landing", str(args.landing), "--warehouse", str(warehouse),
                                         "--engine", engine])
                    end = time.time()
                    if code != 0:
                        raise SystemExit(f"feedlake ingest --engine {engine} exited {code}")
                    if round_:  # round 0 warms the JVM up on both engines
                        windows[engine].append((end - start, jvm_cpu_seconds(jvm) - cpu, int(start * 1000), int(end * 1000)))
        finally:
            spark.stop()
        spans = job_intervals(events)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a failed run's warehouses too
    medians = {}
    for engine, runs in windows.items():
        walls = [w for w, _, _, _ in runs]
        medians[engine] = statistics.median(walls)
        in_jobs = [busy_seconds(spans, a, b) for _, _, a, b in runs]
        print(f"{engine:>11}: {medians[engine]:6.1f} s  (runs: {', '.join(f'{w:.1f}' for w in walls)}; "
              f"driver JVM {statistics.median(c for _, c, _, _ in runs):.1f} CPU-s; "
              f"inside Spark jobs {statistics.median(in_jobs):.1f} s)")
    print(f"ratio delta-spark / delta-rs: {medians['delta-spark'] / medians['delta-rs']:.2f}x")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
