"""Where things live in a warehouse: local folder or object store, the GX project, Data Docs.

Pure functions of a warehouse location and the ``quality`` settings (no I/O), shared by
the run report pages, the quality checks and the commands.
"""

from __future__ import annotations

import os

from feedlake.settings.job import QualitySettings


def is_remote(warehouse: str) -> bool:
    """An object-store warehouse (``s3://``, ``s3a://``), not a local folder."""
    return "://" in warehouse and not warehouse.startswith("file://")


def quality_root(warehouse: str, quality: QualitySettings | None = None) -> str | None:
    """Where the GX project and Data Docs of ``warehouse`` live (:mod:`feedlake.quality.context`).

    Always an absolute path (issue #13, item 9); ``None`` for a remote warehouse without
    ``quality.project_dir``: its project is a private temporary folder made per run
    (:meth:`QualityContext.for_warehouse`).
    """
    configured = (quality or QualitySettings()).project_dir
    if configured:
        return os.path.abspath(configured)
    if is_remote(warehouse):
        return None
    return os.path.abspath(os.path.join(warehouse.removeprefix("file://").rstrip("/"), "_quality"))


def docs_location(warehouse: str, quality: QualitySettings | None = None) -> str:
    """Where a person finds the Data Docs index of ``warehouse`` after a run.

    Local: ``<absolute root>/data_docs/index.html``; remote without ``project_dir``:
    ``WAREHOUSE/_quality/data_docs/index.html`` (published there by :meth:`QualityContext.publish`).
    """
    root = quality_root(warehouse, quality)
    if root is None:
        return warehouse.rstrip("/") + "/_quality/data_docs/index.html"
    return os.path.join(root, "data_docs", "index.html")
