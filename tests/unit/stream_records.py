"""Records shaped as the pipeline hands them to a mapper, built from JSON lines (issue #3 tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feedlake.ingest.stages import with_sequence
from feedlake.landing.parsing import parse_json_line
from feedlake.rules.contracts import validate
from feedlake.settings.config import StreamSpec
from feedlake.settings.session import pinned

RECORDS_SCHEMA = (
    "tenant_id STRING, stream STRING, source_file STRING, line_number BIGINT, raw_record STRING, landing_time TIMESTAMP, "
    "batch_id STRING, source_system STRING, values MAP<STRING,STRING>, json_values MAP<STRING,STRING>, "
    "error_code STRING, error_message STRING"
)


def validated(
    spark: SparkSession,
    stream: StreamSpec,
    lines: Sequence[str],
    *,
    tenant: str = "t1",
    source_file: str = "f1.jsonl",
    source_system: str | None = None,
    landed: datetime = datetime(2024, 3, 1, tzinfo=timezone.utc),
) -> DataFrame:
    """Parse ``lines`` as one file of ``stream``, add its sequence and check the stream contract.

    Pinned, as the pipeline's validate stage pins it before the mappers read it
    (:func:`feedlake.ingest.stages.prepare_stream`): a mapper's plan starts from the
    validated rows rather than re-deriving (and re-optimizing) every contract check.
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        values, json_values, code, message = parse_json_line(line)
        rows.append(
            (tenant, stream.name, source_file, number, line, landed, "b1", source_system,
             dict(values) if values is not None else None, dict(json_values) if json_values is not None else None,
             code, message)
        )
    records = spark.createDataFrame(rows, RECORDS_SCHEMA)
    return pinned(validate(with_sequence(records, stream), stream), StorageLevel.MEMORY_ONLY)


def accepted(df: DataFrame) -> DataFrame:
    """The records the pipeline passes to the mapper: those without an error."""
    return df.where(F.col("error_code").isNull())
