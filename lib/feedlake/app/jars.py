"""Resolve feedlake's JVM packages into the local Ivy cache once: ``python -m feedlake.app.jars``.

The install step runs it (``.ci/run``, a cluster image, a laptop with internet once):
afterwards every session starts from the cache, with no download. It records the resolved
jar files (:func:`feedlake.settings.session.record_resolved_jars`), so later sessions skip
Ivy's resolution at start too. It prints the coordinates and the cache folder, and exits
non-zero when a package cannot be resolved.

Then it trains the driver JVM's class-data archive (:func:`feedlake.settings.session.class_archive`):
a child process ingests a small landing zone and runs a delta-spark MERGE with
``-XX:ArchiveClassesAtExit``, so the JVM writes the classes a run loads into an archive
that later sessions map instead of loading them again. An archive that cannot be
written only costs that saving (a warning, exit code 0).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TRAINING_LANDING = {
    "tenant=cds/track/dt=2024-03-04/events.jsonl.gz": (
        '{"event_text":"signed up","event_timestamp":1709546400,"contact_key":"c1"}\n'
        '{"event_text":"signed up","event_timestamp":1709546400,"contact_key":"c1"}\n'
        '{"event_text":"logged in", oops\n'
    ),
    "tenant=cds/identify/dt=2024-03-04/contacts.jsonl": '{"contact_key":"c1","email":"a@example.com","plan":"pro"}\n',
    "tenant=cds/group/dt=2024-03-04/links.csv": "contact_key,account_key\nc1,example.com\n",
}

# The derived weekly tables' Spark plans; the quality gate validates small batches in pandas.
TRAINING_HOOKS = ["feedlake.derived.metric_rollup:MetricsHook", "feedlake.derived.activity:ActivityHook"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--train"]:
        return train(args[1])
    return resolve()


def resolve() -> int:
    from feedlake.settings.session import build_session, class_archive, jar_lock, jvm, jvm_packages, record_resolved_jars

    packages = jvm_packages()
    print("resolving", ", ".join(packages), flush=True)
    if os.path.exists(jar_lock(packages)):
        os.remove(jar_lock(packages))  # resolve with Ivy again, then record what it resolved
    spark = build_session({"master": "local[1]", "app_name": "feedlake-jars", "conf": {"spark.ui.enabled": "false"}})
    try:
        # Load the classes, not just the jars: a Delta write and an S3A class prove the classpath.
        with tempfile.TemporaryDirectory() as folder:
            spark.range(1).write.format("delta").save(folder + "/t")
        loader = jvm(spark).java.lang.Thread.currentThread().getContextClassLoader()
        loader.loadClass("org.apache.hadoop.fs.s3a.S3AFileSystem")
        print("ok: Delta Lake and S3A classes load from", spark.conf.get("spark.jars.ivy", "~/.ivy2.5.2"))
        print("recorded the resolved jars in", record_resolved_jars(spark, packages))
    finally:
        spark.stop()
    archive = class_archive(packages)
    if os.path.exists(archive):
        os.remove(archive)
    code = subprocess.call([sys.executable, "-m", "feedlake.app.jars", "--train", archive + ".tmp"])
    if code == 0 and os.path.isfile(archive + ".tmp"):
        os.replace(archive + ".tmp", archive)
        print("wrote the driver JVM's class-data archive", archive)
    else:
        print(f"warning: no class-data archive (training exit code {code}): sessions start without it", file=sys.stderr)
    return 0


def train(archive: str) -> int:
    """Load what a run loads in a JVM that writes ``archive`` when it exits.

    An ingest of :data:`TRAINING_LANDING` on the embedded engine (parse, validate, dedupe,
    the derived tables, the run page), then a delta-spark MERGE: Spark's and Delta's
    classes, not a warehouse's worth of work (a delta-spark ingest would double the
    install step for a few more classes).
    """
    from delta.tables import DeltaTable

    from feedlake.delta.engines import engine_for
    from feedlake.ingest.pipeline import IngestRequest, run_ingest
    from feedlake.settings.config import load_config
    from feedlake.settings.session import build_session

    packaged = load_config(None).settings.spark
    conf = {**packaged.conf, "spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={archive} -Xlog:cds=error"}
    spark = build_session({"master": "local[2]", "app_name": "feedlake-cds", "conf": conf})
    gateway = spark.sparkContext._gateway  # noqa: SLF001 -- the JVM process, to wait for its archive
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        for name, text in TRAINING_LANDING.items():
            path = landing / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
        config = load_config(None, {"engine": "delta-rs", "hooks": TRAINING_HOOKS})
        warehouse = str(Path(folder) / "warehouse")
        run_ingest(spark, config, engine_for(spark, warehouse, config), IngestRequest(str(landing), warehouse))
        table = str(Path(folder) / "delta-spark")
        spark.range(3).write.format("delta").save(table)
        merger = DeltaTable.forPath(spark, table).alias("t").merge(spark.range(2, 4).alias("s"), "t.id = s.id")
        merger.whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    spark.stop()
    try:
        gateway.jvm.System.exit(0)  # the archive is written as the JVM exits
    except Exception:  # noqa: BLE001 -- py4j loses its connection to a JVM that exits: expected
        pass
    return gateway.proc.wait(timeout=600)


if __name__ == "__main__":
    sys.exit(main())
