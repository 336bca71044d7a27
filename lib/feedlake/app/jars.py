"""Resolve feedlake's JVM packages into the local Ivy cache once: ``python -m feedlake.app.jars``.

The install step runs it (``.ci/run``, a cluster image, a laptop with internet once):
afterwards every session starts from the cache, with no download. It records the resolved
jar files (:func:`feedlake.settings.session.record_resolved_jars`), so later sessions skip
Ivy's resolution at start too. It prints the coordinates and the cache folder, and exits
non-zero when a package cannot be resolved.
"""

from __future__ import annotations

import sys
import tempfile


def main() -> int:
    import os

    from feedlake.settings.session import build_session, jar_lock, jvm, jvm_packages, record_resolved_jars

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
