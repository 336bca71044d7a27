"""Views of one tenant's warehouse for people: what landed, what was refused, what dedupe did.

Used by ``notebooks/explore_tenant.py``. Each view is a pure transform of a table
(DataFrame → DataFrame, ending with an explicit select); :func:`tenant_tables` is the
one place that reads, and it tells a table that does not exist yet (e.g. the weekly
metrics before issue #4's streams have landed) from an empty one.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaEngine
from feedlake.settings.config import FeedlakeConfig
from feedlake.settings.session import local_frame

TABLES_SCHEMA = "table_name STRING, present BOOLEAN, rows BIGINT"


def tenant_tables(spark: SparkSession, engine: DeltaEngine, config: FeedlakeConfig, tenant: str) -> DataFrame:
    """Every declared table: whether it exists in the warehouse and how many rows ``tenant`` has in it."""
    rows = []
    for name in sorted(config.tables):
        table = config.table(name)
        present = engine.exists(table)
        count = engine.read(table, [tenant]).count() if present else None
        rows.append((name, present, count))
    return local_frame(spark, rows, TABLES_SCHEMA)


def quarantine_by_reason(quarantine: DataFrame) -> DataFrame:
    """Quarantined records per stream and reason, with the files affected and one example message."""
    return (
        quarantine.groupBy("stream", "error_code")
        .agg(
            F.count(F.lit(1)).alias("records"),
            F.countDistinct("source_file").alias("files"),
            F.min("error_message").alias("example_message"),
        )
        .orderBy(F.desc("records"), "stream", "error_code")
        .select("stream", "error_code", "records", "files", "example_message")
    )


def dedupe_effect(manifest: DataFrame) -> DataFrame:
    """Per stream, from the ``ingest_files`` manifest: records read and where they went.

    ``duplicate_share`` is the part of the records read that dedupe dropped as
    repeats within a batch (seed 000 FAQ: first/last record wins); records that
    repeat an earlier batch are merged (a no-op or a newer value), not counted here.
    """
    sums = [F.sum(c).alias(c) for c in ("records_read", "records_accepted", "records_quarantined", "duplicates_dropped")]
    return (
        manifest.groupBy("stream")
        .agg(F.count(F.lit(1)).alias("files"), *sums)
        .withColumn(
            "duplicate_share",
            F.when(F.col("records_read") > 0, F.round(F.col("duplicates_dropped") / F.col("records_read"), 4)),
        )
        .orderBy("stream")
        .select("stream", "files", "records_read", "records_accepted", "records_quarantined", "duplicates_dropped",
                "duplicate_share")
    )


def activity_by_week(activity: DataFrame) -> DataFrame:
    """``activity_weekly`` summed per ISO week: events, active contacts and active accounts, newest first."""
    return (
        activity.groupBy("week_start", "iso_week")
        .agg(
            F.sum("event_count").alias("events"),
            F.countDistinct("contact_key").alias("active_contacts"),
            F.countDistinct("account_key").alias("active_accounts"),
        )
        .orderBy(F.desc("week_start"))
        .select("week_start", "iso_week", "events", "active_contacts", "active_accounts")
    )


def metrics_by_week(weekly: DataFrame) -> DataFrame:
    """``account_metrics_weekly`` per metric and week: accounts reporting and the summed value, newest first."""
    return (
        weekly.groupBy("metric", "kind", "week_start")
        .agg(F.countDistinct("account_key").alias("accounts"), F.sum("value").alias("total_value"))
        .orderBy("metric", F.desc("week_start"))
        .select("metric", "kind", "week_start", "accounts", "total_value")
    )
