"""A small batch on a local master runs with ``spark.small_batch.session_conf``, for that run only (issue 12)."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame

from feedlake.delta.engines import engine_for
from feedlake.ingest.hooks import HookContext, IngestHook
from feedlake.ingest.pipeline import IngestRequest, run_ingest
from feedlake.settings.config import StreamSpec, load_config
from tests.conftest import jsonl, write_files

PROBE = "spark.feedlake.test.small_batch"


class Probe(IngestHook):
    """Records the probe setting the run's queries see, where a hook sees the run's session."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def before_merge(self, context: HookContext, stream: StreamSpec, batch: Mapping[str, DataFrame]) -> Mapping[str, str]:
        self.seen.append(context.spark.conf.get(PROBE, None))
        return {}


def test_only_a_batch_within_max_bytes_runs_with_the_small_batch_settings(spark, tmp_path):
    event = '{{"event_text":"{text}", "event_timestamp":1700000000, "contact_key":"c1"}}'
    landing = write_files(
        tmp_path / "landing",
        {"tenant=acme/track/a.jsonl": jsonl(event.format(text="signed up"), event.format(text="logged in"))},
    )
    size = sum(p.stat().st_size for p in landing.rglob("*.jsonl"))
    seen = {}
    for max_bytes in (size, size - 1):
        warehouse = str(tmp_path / f"warehouse-{max_bytes}")
        config = load_config(
            None,
            {"engine": "delta-rs", "spark": {"small_batch": {"max_bytes": max_bytes, "session_conf": {PROBE: "on"}}}},
        )
        probe = Probe()
        report = run_ingest(spark, config, engine_for(spark, warehouse, config), IngestRequest(str(landing), warehouse), [probe])
        assert report.totals()["accepted"] == 2
        seen[max_bytes] = probe.seen
        assert spark.conf.get(PROBE, None) is None  # the session's own (here: unset) value is back
    assert seen == {size: ["on"], size - 1: [None]}
