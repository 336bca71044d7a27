"""Comparing two warehouses table by table, leaving out what names a run rather than data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from tests.conftest import read_table

DATA_TABLES = ("contacts", "contact_events", "contact_accounts", "accounts", "quarantine")
# Batch ids hash the files of one run, so they differ between one run and several
# smaller ones over the same files; run id and processing time name the run itself.
RUN_COLUMNS = frozenset({"_batch_id", "batch_id", "run_id", "processed_at"})


def assert_same_tables(spark: SparkSession, left: Path, right: Path, tables: Sequence[str] = DATA_TABLES) -> None:
    """Every table of ``left`` holds exactly the rows of ``right`` (run columns aside)."""
    for name in tables:
        expected = read_table(spark, right, name)
        columns = [c for c in expected.columns if c not in RUN_COLUMNS]
        assert_df_equality(
            read_table(spark, left, name, columns), expected.select(*columns).orderBy(*columns), ignore_nullable=True
        )
