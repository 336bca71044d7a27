"""Ingest hooks: what a run calls around its MERGEs, and the narrow context a hook gets.

Hooks are declared in order under ``hooks:`` in conf/ingest.yaml as
``package.module:Class`` (entity-map moves, the weekly tables, the quality gate). A hook
never sees the run itself: it gets a :class:`HookContext` (session, conf, engine,
warehouse, run id, and the report's ``extras`` it may write its summary to) and the
DataFrames of the call. :func:`hook_context` builds one for a unit test against a
temporary warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from feedlake.delta.engines import DeltaEngine, engine_for
from feedlake.ingest.report import RunReport
from feedlake.settings.config import FeedlakeConfig, StreamSpec


@dataclass(frozen=True)
class HookContext:
    """What a hook may read and write during one run.

    ``engine`` reads and writes the warehouse's tables; ``extras`` is the run report's
    ``extras`` mapping, where a hook writes its summary under its own key (``metrics``,
    ``activity``, ``quality``, ...). Nothing else of the run is reachable from here.
    """

    spark: SparkSession
    config: FeedlakeConfig
    engine: DeltaEngine
    warehouse: str
    run_id: str
    extras: dict[str, Any] = field(default_factory=dict)

    def summary(self, key: str, tenant_id: str) -> dict[str, Any]:
        """The hook's report entry ``extras[key][tenant_id]`` (created empty on first use)."""
        return self.extras.setdefault(key, {}).setdefault(tenant_id, {})


def hook_context(
    spark: SparkSession, config: FeedlakeConfig, warehouse: str, run_id: str = "test-run", engine: DeltaEngine | None = None
) -> HookContext:
    """A :class:`HookContext` on ``warehouse`` outside a run (a hook's unit test); the engine conf chooses by default."""
    return HookContext(spark, config, engine or engine_for(spark, warehouse, config), warehouse, run_id)


def batch_tenants(frame: DataFrame) -> list[str]:
    """The tenants of a batch DataFrame (a collect bounded by the number of tenants)."""
    return sorted(r["tenant_id"] for r in frame.select("tenant_id").distinct().collect())


class IngestHook:
    """Extension points of a run (quality gates, derived tables). Override what you need.

    Each is called once per stream (and table) with the **whole batch**, all tenants
    (issue 12: cost follows the data, not the number of tenants).

    ``before_merge`` sees the deduplicated batch of one stream (table name → ranked
    rows of every tenant, ``_rank == 1`` being the winners) and returns the tenants
    whose MERGE of that stream to hold back, with the reason (``{}``: none). A blocked
    batch's files stay unprocessed in the manifest (status ``blocked``) so the next run
    retries them. ``after_merge`` sees the exact rows sent to a table's one MERGE of
    the run (every tenant's and every stream's; :func:`batch_tenants` lists the
    tenants; ``stream`` is the last of the streams writing the table); ``after_run``
    the finished report, before it is written.

    A run's hooks are declared in order under ``hooks:`` in conf/ingest.yaml as
    ``package.module:Class``; :meth:`from_conf` builds one for each run.
    """

    @classmethod
    def from_conf(cls, config: FeedlakeConfig, conf_dir: str | None) -> IngestHook:
        """This hook for one run of ``config`` (``conf_dir``: the ``--conf`` folder, ``None`` = packaged conf)."""
        return cls()

    def before_merge(self, context: HookContext, stream: StreamSpec, batch: Mapping[str, DataFrame]) -> Mapping[str, str]:
        return {}

    def after_merge(self, context: HookContext, stream: StreamSpec, table: str, source: DataFrame) -> None:
        return None

    def after_run(self, context: HookContext, report: RunReport) -> None:
        return None
