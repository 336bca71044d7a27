"""SparkSession factory: the only place a session is built (never at import time).

On Databricks (or in any notebook) a ``spark`` session already exists and is passed
in instead; :func:`prepare_session` applies the SQL settings feedlake relies on to a
session it did not build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession

# Settings the transforms depend on, applied to every session (built or given).
REQUIRED_SQL_CONF = {
    # Timestamps are UTC everywhere (seed 000: Unix time; seed 004: UTC timestamps).
    "spark.sql.session.timeZone": "UTC",
    # A JSON line that repeats a key keeps the last value instead of failing the job.
    "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
}

DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def build_session(spark_conf: Mapping[str, Any], *, with_delta_jar: bool = False) -> SparkSession:
    """Build (or reuse) a SparkSession from the ``spark`` section of the job config.

    ``with_delta_jar`` asks Spark to resolve the Delta Lake JVM package through
    ``spark.jars.packages`` (needs a reachable Maven repository or a local Ivy cache).
    """
    builder = SparkSession.builder.appName(str(spark_conf.get("app_name", "feedlake")))
    master = spark_conf.get("master")
    if master:
        builder = builder.master(str(master))
    for key, value in (spark_conf.get("conf") or {}).items():
        builder = builder.config(str(key), str(value))
    for key, value in REQUIRED_SQL_CONF.items():
        builder = builder.config(key, value)
    if with_delta_jar:
        from delta import configure_spark_with_delta_pip

        for key, value in DELTA_SPARK_CONF.items():
            builder = builder.config(key, value)
        builder = configure_spark_with_delta_pip(builder)
    return prepare_session(builder.getOrCreate())


def prepare_session(spark: SparkSession) -> SparkSession:
    """Apply the runtime SQL settings feedlake needs to an existing session."""
    for key, value in REQUIRED_SQL_CONF.items():
        spark.conf.set(key, value)
    spark.sparkContext.setLogLevel("WARN")
    return spark


def delta_jvm_available(spark: SparkSession) -> bool:
    """True when the Delta Lake JVM classes are loadable and the session is configured for them."""
    try:
        loader = spark.sparkContext._jvm.java.lang.Thread.currentThread().getContextClassLoader()
        loader.loadClass("io.delta.tables.DeltaTable")
    except Exception:  # py4j surfaces ClassNotFoundException as a generic Py4JJavaError
        return False
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "DeltaSparkSessionExtension" in extensions or _is_databricks()


def _is_databricks() -> bool:
    import os

    return "DATABRICKS_RUNTIME_VERSION" in os.environ
