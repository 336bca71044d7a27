"""Export throughput (issue 17): messages per second for N changed contacts, and a no-change rerun.

Builds a warehouse whose ``contacts`` table holds N contacts (one MERGE through the
engine, so the change feed has N inserts), then times ``feedlake.export.segment.run_export`` to
an outbox: run 1 sends N identify calls; run 2 (nothing changed) must send nothing;
then every contact's title changes (a second MERGE: N update pre/post images) and run 3
sends N identify calls carrying only ``email`` and ``mk_title``.

    python bench/export_bench.py [--contacts 100000] [--engine delta-rs|delta-spark]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from feedlake.delta.engines import make_engine
from feedlake.delta.merge import plan_for
from feedlake.derived.moments import MomentsConf
from feedlake.export.segment import ExportRequest, new_export_run_id, run_export
from feedlake.settings.config import load_config
from feedlake.settings.session import build_session

SPARK = {"master": "local[2]", "app_name": "export-bench",
         "conf": {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
                  "spark.ui.showConsoleProgress": "false", "spark.driver.memory": "3g"}}


def contacts_frame(spark, spec, n: int, title: str):
    from pyspark.sql import functions as F

    seq = F.lpad(F.lit(title), 8, "0")
    frame = spark.range(n).select(
        F.lit("bench").alias("tenant_id"),
        F.concat(F.lit("u-"), F.col("id").cast("string")).alias("contact_key"),
        F.concat(F.lit("user"), F.col("id").cast("string"), F.lit("@example.com")).alias("email"),
        F.lit("{}").alias("properties"),
        F.lit("Ada").alias("first_name"),
        F.lit("Lovelace").alias("last_name"),
        F.lit(title).alias("title"),
        F.lit(True).alias("is_active"),
        F.lit("active").alias("status"),
        F.lit(False).alias("is_anonymous"),
        seq.alias("_seq"),
    )
    for name, dtype in spec.columns:
        if name not in frame.columns:
            frame = frame.withColumn(name, F.lit(None).cast(dtype))
    return frame.select(*spec.column_names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--engine", default="delta-rs", choices=("delta-rs", "delta-spark"))
    args = parser.parse_args()
    spark = build_session(SPARK)
    config = load_config(None, {"engine": args.engine})
    root = Path(tempfile.mkdtemp(prefix="export-bench-"))
    engine = make_engine(spark, str(root / "wh"), args.engine)
    spec = config.table("contacts")
    engine.ensure(spec)
    engine.merge(spec, contacts_frame(spark, spec, args.contacts, "CTO"), plan_for(spec, "bench"))
    outbox = root / "outbox"
    request = ExportRequest(str(root / "wh"), outbox=str(outbox))

    def run(label: str) -> None:
        start = time.perf_counter()
        report = run_export(spark, config, engine, request, MomentsConf((), {}), new_export_run_id(datetime.now(timezone.utc)))
        seconds = time.perf_counter() - start
        sent = report.total()
        rate = sent / seconds if sent else 0.0
        print(f"{label}: {sent} messages in {seconds:.1f} s = {rate:,.0f} messages/s; files {report.total('files')}", flush=True)

    run("run 1: N new contacts")
    run("run 2: no change")
    engine.merge(spec, contacts_frame(spark, spec, args.contacts, "CEO"), plan_for(spec, "bench"))
    run("run 3: N titles changed")
    lines = sum(len(gzip.decompress(p.read_bytes()).splitlines()) for p in outbox.rglob("part-*.jsonl.gz"))
    print(f"outbox lines in total: {lines} (engine {engine.name}, {args.contacts} contacts)")
    spark.stop()


if __name__ == "__main__":
    main()
