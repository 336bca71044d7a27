"""Benchmark: ingest with and without the quality checkpoints (issue #5), in one process.

Generates a landing zone of several tenants, each with identify, track and group files
(a few bad emails and events of unknown contacts, so expectations fail as they would in
real feeds), then in one SparkSession:

1. warm-up: one ingest of each kind on a small copy (JVM, GX import; not measured);
2. ``--repeat`` rounds of: ingest **without** hooks into a fresh warehouse, then ingest
   **with** the :class:`feedlake.quality.checks.QualityGate` (batch gate per tenant, stream and
   table, table checks, quality_results, JSON, Data Docs) into another fresh one;
3. the same gate suite validated once through GX's Spark data source and once through
   pandas (the batch converted with ``toArrow``), which is why feedlake uses pandas.

Prints the median wall times and the ratio with / without (goal ≤ 1.2×). Usage::

    python bench/quality_bench.py --tenants 4 --events 20000 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def generate(root: Path, tenants: int, events: int, seed: int = 11) -> None:
    """Per tenant: ``events`` track lines, events/10 contacts, events/40 group lines."""
    rng = random.Random(seed)
    for t in range(tenants):
        base = root / f"tenant=t{t}"
        contacts = max(events // 10, 1)
        users = []
        for c in range(contacts):
            email = f"user{c}@t{t}.io" if rng.random() > 0.01 else f"user{c} at t{t}"  # 1 % bad emails: warnings
            users.append(json.dumps({"contact_key": f"c{c}", "email": email, "plan": rng.choice(["free", "pro"])}))
        lines = []
        for i in range(events):
            contact = f"c{rng.randrange(contacts)}" if rng.random() > 0.005 else f"ghost{i}"  # unknown contacts
            lines.append(json.dumps({"event_text": rng.choice(["login", "signed up", "exported"]),
                                     "event_timestamp": 1_700_000_000 + i, "contact_key": contact}))
        groups = [json.dumps({"contact_key": f"c{rng.randrange(contacts)}", "account_key": f"a{rng.randrange(50)}",
                              "name": "acct"}) for _ in range(max(events // 40, 1))]
        for stream, rows in (("identify", users), ("track", lines), ("group", groups)):
            path = base / stream / "dt=2024-03-01" / f"{stream}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def ingest(spark, config, quality, landing: Path, warehouse: Path, with_quality: bool) -> float:
    from feedlake.delta.engines import DeltaRsEngine
    from feedlake.ingest.pipeline import IngestRequest, run_ingest
    from feedlake.quality.checks import QualityGate

    shutil.rmtree(warehouse, ignore_errors=True)
    started = time.perf_counter()
    hooks = [QualityGate(quality)] if with_quality else []
    report = run_ingest(spark, config, DeltaRsEngine(spark, str(warehouse)),
                        IngestRequest(str(landing), str(warehouse)), hooks=hooks)
    elapsed = time.perf_counter() - started
    if with_quality and "quality" not in report.extras:
        raise SystemExit("the quality gate did not report")
    return elapsed


def compare_gx_engines(spark, config, quality, landing: Path, rounds: int = 3) -> tuple[float, float]:
    """Median seconds to validate one tenant's track batch: GX on Spark vs pandas via Arrow."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from pyspark.sql import functions as F

    from feedlake.quality.checks import run_parameters
    from feedlake.quality.suites import gx_suite

    gate = quality.gated("contact_events")
    batch = (
        spark.read.json(str(next(landing.glob("tenant=t0/track/*/*.jsonl"))))
        .select(F.lit("t0").alias("tenant_id"), F.sha2(F.col("contact_key"), 256).alias("event_key"), "contact_key",
                "event_text", F.col("event_timestamp").cast("bigint").alias("event_timestamp"))
        .cache()
    )
    batch.count()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    parameters = run_parameters(datetime.now(timezone.utc))
    timings = {}
    for kind in ("spark", "pandas"):
        source = context.data_sources.add_spark(kind) if kind == "spark" else context.data_sources.add_pandas(kind)
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=kind, data=source.add_dataframe_asset("events").add_batch_definition_whole_dataframe("whole"),
            suite=context.suites.add(gx_suite(f"{kind}.gate", gate.gate)),
        ))
        checkpoint = context.checkpoints.add(gx.Checkpoint(name=kind, validation_definitions=[definition]))
        runs = []
        for _ in range(rounds + 1):  # the first round warms up
            started = time.perf_counter()
            frame = batch if kind == "spark" else batch.toArrow().to_pandas()
            result = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters)
            runs.append(time.perf_counter() - started)
        if not result.success:
            raise SystemExit(f"GX on {kind}: the suite failed on clean events")
        timings[kind] = statistics.median(runs[1:])
    batch.unpersist()
    return timings["spark"], timings["pandas"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--events", type=int, default=20_000, help="track events per tenant")
    parser.add_argument("--repeat", type=int, default=2, help="measured rounds (each: without, then with)")
    parser.add_argument("--workdir", default=None, help="keep files here instead of a temp dir")
    args = parser.parse_args()

    from feedlake.quality.suites import load_quality
    from feedlake.settings.config import load_config
    from feedlake.settings.session import build_session

    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedlake-quality-bench-"))
    landing, small = work / "landing", work / "landing-small"
    if not landing.exists():
        generate(landing, args.tenants, args.events)
        generate(small, 2, 200)
    config = load_config(None, {"engine": "delta-rs"})
    quality = load_quality(None, config)
    spark = build_session(config.settings.spark)

    started = time.perf_counter()
    import great_expectations  # noqa: F401  (the CLI imports it in the background while Spark starts)

    gx_import = time.perf_counter() - started
    for with_quality in (False, True):
        ingest(spark, config, quality, small, work / "warm-up", with_quality)

    without, with_ = [], []
    for _ in range(args.repeat):
        without.append(ingest(spark, config, quality, landing, work / "without", False))
        with_.append(ingest(spark, config, quality, landing, work / "with", True))
    spark_s, pandas_s = compare_gx_engines(spark, config, quality, landing)

    plain, gated = statistics.median(without), statistics.median(with_)
    print(f"tenants: {args.tenants}  track events/tenant: {args.events:,}  rounds: {args.repeat}  "
          f"cores: {spark.sparkContext.defaultParallelism}")
    print(f"ingest without quality checkpoints : {plain:7.1f} s  (runs: {', '.join(f'{x:.1f}' for x in without)})")
    print(f"ingest with quality checkpoints    : {gated:7.1f} s  (runs: {', '.join(f'{x:.1f}' for x in with_)})")
    print(f"ratio with / without               : {gated / plain:7.2f}x  (goal <= 1.2x)")
    print(f"great_expectations import (once per process, overlapped with Spark start by the CLI): {gx_import:.1f} s")
    print(f"one gate validation of a {args.events:,}-event batch: GX on Spark {spark_s:.2f} s, "
          f"GX on pandas via toArrow {pandas_s:.2f} s")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
