"""feedlake: ingestion of B2B customer data feeds into Delta Lake tables.

The public API is :data:`__all__`; everything else is internal and may move. The code
is in layers, each importing only those below it (README "Architecture")::

    settings → rules → landing → delta → streams → ingest → derived → quality → erasure → export → app

Names are imported on first use (PEP 562), so ``import feedlake`` stays cheap, e.g. in
Spark's Python workers, which import only the modules whose functions they run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> the module that defines it
_EXPORTS = {
    # configuration and session
    "FeedlakeConfig": "feedlake.settings.config",
    "ConfigError": "feedlake.settings.config",
    "load_config": "feedlake.settings.config",
    "build_session": "feedlake.settings.session",
    # Delta engines
    "DeltaEngine": "feedlake.delta.engines",
    "make_engine": "feedlake.delta.engines",
    "engine_for": "feedlake.delta.engines",
    # one ingest run, its hooks and report
    "IngestRequest": "feedlake.ingest.pipeline",
    "run_ingest": "feedlake.ingest.pipeline",
    "IngestHook": "feedlake.ingest.hooks",
    "HookContext": "feedlake.ingest.hooks",
    "hook_context": "feedlake.ingest.hooks",
    "RunReport": "feedlake.ingest.report",
    "BackfillRequest": "feedlake.ingest.backfill",
    "run_backfill": "feedlake.ingest.backfill",
    # quality, erasure, export
    "check_tables": "feedlake.quality.checks",
    "load_quality": "feedlake.quality.suites",
    "forget": "feedlake.erasure.forget",
    "erasure_request": "feedlake.streams.subjects",
    # entry points
    "main": "feedlake.app.cli",
}

__all__ = [
    "BackfillRequest",
    "ConfigError",
    "DeltaEngine",
    "FeedlakeConfig",
    "HookContext",
    "IngestHook",
    "IngestRequest",
    "RunReport",
    "build_session",
    "check_tables",
    "engine_for",
    "erasure_request",
    "forget",
    "hook_context",
    "load_config",
    "load_quality",
    "main",
    "make_engine",
    "run_backfill",
    "run_ingest",
]

if TYPE_CHECKING:
    from feedlake.app.cli import main
    from feedlake.delta.engines import DeltaEngine, engine_for, make_engine
    from feedlake.erasure.forget import forget
    from feedlake.ingest.backfill import BackfillRequest, run_backfill
    from feedlake.ingest.hooks import HookContext, IngestHook, hook_context
    from feedlake.ingest.pipeline import IngestRequest, run_ingest
    from feedlake.ingest.report import RunReport
    from feedlake.quality.checks import check_tables
    from feedlake.quality.suites import load_quality
    from feedlake.settings.config import ConfigError, FeedlakeConfig, load_config
    from feedlake.settings.session import build_session
    from feedlake.streams.subjects import erasure_request


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'feedlake' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
