"""The Great Expectations project of a warehouse: data context, checkpoints and Data Docs.

Layout (issue #5), for a local warehouse:

* ``WAREHOUSE/_quality/gx/``: a GX 1.x *file* data context: the suites built from
  ``conf/quality`` (:mod:`feedlake.quality_suites`), one pandas data source
  ``feedlake`` with one dataframe asset per table, validation definitions and
  checkpoints (``<table>.gate``, ``<table>.table``, ``row_counts``) and GX's own
  store of validation results (JSON, under ``gx/uncommitted/validations``);
* ``WAREHOUSE/_quality/data_docs/index.html``: the Data Docs site.

A remote warehouse (``s3://``) keeps the GX project in a local folder
(``quality.project_dir`` in ingest.yaml, else a folder under the system temp dir):
GX's file stores and the Data Docs site builder write local files.

Why pandas and not GX on Spark: GX on Spark runs Spark jobs per metric; the gate
validates one tenant's deduplicated batch, which crosses to pandas through Arrow in
one Spark job (``toArrow``), and GX validates the whole suite in memory. The table
checks read only the key and reference columns through Arrow (delta-rs reads them
without Spark at all). ``bench/quality_bench.py`` measures the overhead.

Why Data Docs are built once per run and not by an ``UpdateDataDocsAction`` on each
checkpoint: the action re-renders the site index after every validation (measured
~0.35 s per checkpoint run against ~0.06 s without it), and the gate runs one
checkpoint per tenant, stream and table. :meth:`QualityContext.build_docs` renders
this run's validation results and the index in one ``build_data_docs`` call.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from feedlake.quality_suites import gx_suite

DATA_SOURCE = "feedlake"
SITE = "feedlake"
ROW_COUNTS = "row_counts"
# The site index loads every validation result it lists: list the latest ones only, so
# building it does not grow with the warehouse's history (older pages stay on disk).
DOCS_INDEX_LIMIT = 500
_preload: threading.Thread | None = None


def preload_gx() -> None:
    """Start importing ``great_expectations`` in a background thread (~3 s of imports).

    The gate needs GX only after Spark has read and deduplicated the first stream;
    the import runs meanwhile (Spark works in the JVM, so the GIL is mostly free).
    """
    global _preload
    if _preload is None:
        # GX logs its import and every store write at INFO: noise in a job log.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        _preload = threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True)
        _preload.start()


def quality_root(warehouse: str, job: Mapping[str, Any]) -> str:
    """Where the GX project and Data Docs of ``warehouse`` live (see module docstring)."""
    configured = (job.get("quality") or {}).get("project_dir")
    if configured:
        return str(configured)
    if "://" in warehouse and not warehouse.startswith("file://"):
        digest = hashlib.sha1(warehouse.encode()).hexdigest()[:12]
        return os.path.join(tempfile.gettempdir(), "feedlake-quality", digest)
    return os.path.join(warehouse.removeprefix("file://").rstrip("/"), "_quality")


class QualityContext:
    """A GX file data context under :func:`quality_root`; registers and runs checkpoints."""

    def __init__(self, root: str):
        self.root = root
        self.docs_dir = os.path.join(root, "data_docs")
        self._context = None
        self._checkpoints: dict[str, Any] = {}
        self.identifiers: list[Any] = []

    @property
    def context(self):
        if self._context is None:
            self._context = self._open()
        return self._context

    def _open(self):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        os.makedirs(self.root, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=self.root)
        if context.variables.config_variables_file_path:
            # feedlake passes nothing through GX config variables; without the file GX stops
            # re-reading and parsing it on every config access (~25 % of a checkpoint run).
            context.variables.config_variables_file_path = None
            context.variables.save()
            context = gx.get_context(mode="file", project_root_dir=self.root)
        # Progress bars on stderr for every validation are noise in a job log.
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": self.docs_dir},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "validation_results_limit": DOCS_INDEX_LIMIT},
        }
        sites = dict(context.get_config().data_docs_sites or {})
        if sites != {SITE: site}:
            for name in list(sites):
                context.delete_data_docs_site(name)
            context.add_data_docs_site(SITE, site)
        context.variables.save()
        context.data_sources.add_or_update_pandas(DATA_SOURCE)
        return context

    def checkpoint(self, name: str, asset: str, specs: Sequence, result_format: Mapping[str, Any]):
        """The checkpoint ``name`` validating dataframes of ``asset`` against ``specs``.

        Suite, validation definition and checkpoint are (re)registered once per process
        from conf, so an edited conf/quality file takes effect on the next run.
        """
        if name in self._checkpoints:
            return self._checkpoints[name]
        import great_expectations as gx

        context = self.context
        source = context.data_sources.get(DATA_SOURCE)
        try:
            data_asset = source.get_asset(asset)
        except LookupError:
            data_asset = source.add_dataframe_asset(asset)
        try:
            batch = data_asset.get_batch_definition("whole")
        except KeyError:
            batch = data_asset.add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add_or_update(gx_suite(name, specs))
        definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name=name, validation_definitions=[definition], actions=[], result_format=dict(result_format))
        )
        self._checkpoints[name] = checkpoint
        return checkpoint

    def run(self, checkpoint, frame, parameters: Mapping[str, Any], run_name: str, run_time: datetime):
        """Validate one pandas DataFrame; the result is kept for :meth:`build_docs`."""
        from great_expectations.core.run_identifier import RunIdentifier

        result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=dict(parameters),
            run_id=RunIdentifier(run_name=run_name, run_time=run_time),
        )
        self.identifiers.extend(result.run_results)
        return result

    def build_docs(self) -> str:
        """Render this run's validation results and the site index; return index.html's path."""
        if self.identifiers:
            self.context.build_data_docs(site_names=[SITE], resource_identifiers=list(self.identifiers))
        return os.path.join(self.docs_dir, "index.html")
