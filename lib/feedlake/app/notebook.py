"""What the notebooks in ``notebooks/`` need to run on Databricks and locally alike (issue #6).

A notebook passes its own namespace (``globals()``) so the same cell works in both
places:

* **session**: Databricks predefines ``spark``; elsewhere one is built by
  :func:`feedlake.settings.session.build_session` from the conf profile (never at import).
* **parameters**: Databricks text widgets (``dbutils.widgets``) when ``dbutils``
  exists; locally the environment variable ``FEEDLAKE_<NAME>``; else the default.
* **output**: Databricks' ``display`` when present, else ``DataFrame.show``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from feedlake.delta.engines import DeltaEngine, engine_for
from feedlake.settings.config import FeedlakeConfig, load_config


def on_databricks(namespace: Mapping[str, Any]) -> bool:
    """True inside a Databricks notebook or job (``dbutils`` defined or a Databricks runtime)."""
    return "dbutils" in namespace or "DATABRICKS_RUNTIME_VERSION" in os.environ


def param(namespace: Mapping[str, Any], name: str, default: str) -> str:
    """A notebook parameter: a Databricks text widget, else ``FEEDLAKE_<NAME>``, else ``default``."""
    dbutils = namespace.get("dbutils")
    if dbutils is not None:
        dbutils.widgets.text(name, default)
        return str(dbutils.widgets.get(name))
    return os.environ.get(f"FEEDLAKE_{name.upper()}", default)


def notebook_config(profile: str | None) -> FeedlakeConfig:
    """The packaged configuration under a conf profile (``local``, ``emr``, ``databricks``)."""
    return load_config(None, {"profile": profile} if profile else None)


def notebook_spark(namespace: MutableMapping[str, Any], config: FeedlakeConfig) -> SparkSession:
    """The predefined ``spark`` when there is one, else a session built from ``config``.

    The session is put back into the namespace as ``spark``, as on Databricks.
    """
    from feedlake.settings.session import build_session, prepare_session

    spark = namespace.get("spark")
    if spark is not None:
        spark = prepare_session(spark, config.settings.spark.session_conf)
    else:
        spark = build_session(config.settings.spark)
    namespace["spark"] = spark
    return spark


def warehouse_engine(spark: SparkSession, warehouse: str, config: FeedlakeConfig) -> DeltaEngine:
    """The Delta engine the job itself would use on ``warehouse`` under ``config``."""
    return engine_for(spark, warehouse, config)


def show(namespace: Mapping[str, Any], title: str, df: DataFrame, rows: int = 50) -> None:
    """Print a title, then the DataFrame: Databricks' ``display`` when present, else ``show``."""
    print(f"\n== {title}")
    display = namespace.get("display")
    if display is not None:
        display(df)
    else:
        df.show(rows, truncate=False)
