"""Benchmark: a run's cost follows the data, not the number of tenants (issue 12).

The **same 20,000 records** (identify, track and group lines, the same contents) are
landed spread over 2 tenants and over 200 tenants, and each landing zone is ingested
with ``feedlake ingest`` into a fresh warehouse, in a fresh process each (JVM start
included), in one run of this script; it prints both times and the ratio (goal
≤ 1.3×). It then times ``feedlake ingest`` of the bundled ``sample/landing`` into a
fresh warehouse, JVM start included (goal ≤ 15 s on 2 cores), and prints the load
average before and after (the machine may be shared). Usage::

    python bench/tenants_bench.py --records 20000 --tenants 2 200 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARCH_2024 = 1709251200


def records(n: int) -> list[tuple[str, str]]:
    """``n`` records as ``(stream, JSON line)``: 40 % track, 30 % identify, 30 % group."""
    out = []
    for i in range(n):
        contact = f"c{i % (n // 4 or 1)}"
        kind = i % 10
        if kind < 4:
            line = {"event_text": f"event {i % 7}", "event_timestamp": MARCH_2024 + i, "contact_key": contact}
            out.append(("track", json.dumps(line)))
        elif kind < 7:
            out.append(("identify", json.dumps({"contact_key": contact, "email": f"{contact}@example.com", "plan": "pro"})))
        else:
            out.append(("group", json.dumps({"contact_key": contact, "account_key": f"a{i % 500}", "name": f"A {i % 500}"})))
    return out


def land(root: Path, lines: list[tuple[str, str]], tenants: int) -> Path:
    """The records dealt round-robin to ``tenants`` tenants, one file per tenant and stream."""
    shutil.rmtree(root, ignore_errors=True)
    files: dict[Path, list[str]] = {}
    for i, (stream, line) in enumerate(lines):
        path = root / f"tenant=t{i % tenants:04d}" / stream / "dt=2024-03-01" / "part-0.jsonl"
        files.setdefault(path, []).append(line)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(content) + "\n")
    return root


def ingest(landing: Path, warehouse: Path, extra: list[str]) -> float:
    """Seconds of ``feedlake ingest`` in a fresh process (JVM start included), fresh warehouse."""
    shutil.rmtree(warehouse, ignore_errors=True)
    command = [sys.executable, "-m", "feedlake.app.cli", "ingest", "--landing", str(landing), "--warehouse", str(warehouse),
               *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"feedlake ingest failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, nargs=2, default=(2, 200))
    parser.add_argument("--repeat", type=int, default=1, help="measurements per case (median kept)")
    parser.add_argument("--skip-sample", action="store_true", help="do not time the sample landing zone")
    parser.add_argument("--set", action="append", default=[], help="conf overrides passed to feedlake ingest")
    args = parser.parse_args()
    extra = [x for kv in args.set for x in ("--set", kv)]
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    work = Path(tempfile.mkdtemp(prefix="feedlake-tenants-bench-"))
    try:
        lines = records(args.records)
        times = {}
        for tenants in args.tenants:
            landing = land(work / f"landing-{tenants}", lines, tenants)
            runs = [ingest(landing, work / "warehouse", extra) for _ in range(args.repeat)]
            times[tenants] = statistics.median(runs)
            print(f"{args.records:,} records over {tenants:>4} tenants: {times[tenants]:7.1f} s  "
                  f"(runs: {', '.join(f'{x:.1f}' for x in runs)})")
        few, many = args.tenants
        print(f"ratio {many} / {few} tenants: {times[many] / times[few]:.2f}x  (goal <= 1.3x)")
        if not args.skip_sample:
            runs = [ingest(ROOT / "sample" / "landing", work / "sample-warehouse", extra) for _ in range(args.repeat)]
            print(f"sample/landing, fresh warehouse, JVM start included: {statistics.median(runs):.1f} s  "
                  f"(runs: {', '.join(f'{x:.1f}' for x in runs)}; goal <= 15 s on 2 cores)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
