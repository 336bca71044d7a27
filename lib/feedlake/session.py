"""SparkSession factory: the only place a session is built (never at import time).

On Databricks (or in any notebook) a ``spark`` session already exists and is passed
in instead; :func:`prepare_session` applies the SQL settings feedlake relies on to a
session it did not build.
"""

from __future__ import annotations

import os
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
    submitted = launched_by_spark_submit()
    if master and not submitted:
        builder = builder.master(str(master))
    for key, value in (spark_conf.get("conf") or {}).items():
        builder = builder.config(str(key), str(value))
    for key, value in REQUIRED_SQL_CONF.items():
        builder = builder.config(key, value)
    if with_delta_jar:
        for key, value in DELTA_SPARK_CONF.items():
            builder = builder.config(key, value)
        if not submitted:
            from delta import configure_spark_with_delta_pip

            builder = configure_spark_with_delta_pip(builder)
    return prepare_session(builder.getOrCreate(), spark_conf.get("session_conf"))


def launched_by_spark_submit() -> bool:
    """True when spark-submit started this Python driver (its JVM was launched first).

    spark-submit's PythonRunner hands the driver its JVM through ``PYSPARK_GATEWAY_PORT``.
    Its ``--master`` and classpath (``--jars``/``--packages``, EMR's or Databricks' Delta)
    were fixed at launch: a ``master`` from conf must not override the cluster the job
    was submitted to, and jar packages can no longer be added (issue #6).
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ


def prepare_session(spark: SparkSession, session_conf: Mapping[str, Any] | None = None) -> SparkSession:
    """Apply the runtime SQL settings feedlake needs to an existing session.

    ``session_conf`` (``spark.session_conf`` of a profile) holds runtime-modifiable
    SQL settings, e.g. shuffle partitions, applied even to a session feedlake did not
    build (Databricks' predefined ``spark``), where ``spark.conf`` cannot take effect.
    """
    for key, value in (session_conf or {}).items():
        spark.conf.set(str(key), str(value))
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
    return "DATABRICKS_RUNTIME_VERSION" in os.environ
