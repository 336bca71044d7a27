"""The Great Expectations project of a warehouse: data context, checkpoints and Data Docs.

Layout (issue #5), for a local warehouse:

* ``WAREHOUSE/_quality/gx/``: a GX 1.x *file* data context: the suites built from
  ``conf/quality`` (:mod:`feedlake.quality.suites`), a pandas data source ``feedlake``
  and a Spark one ``feedlake_spark`` with dataframe assets, validation definitions and
  checkpoints (``<table>.gate``, ``<table>.table``, ``row_counts``) and GX's own
  store of validation results (JSON, under ``gx/uncommitted/validations``);
* ``WAREHOUSE/_quality/data_docs/index.html``: the Data Docs site.

A relative local warehouse (``--warehouse ./warehouse``) is made absolute first: GX
resolves a relative store ``base_directory`` against its own ``gx/`` folder, which put
the site under ``warehouse/_quality/gx/warehouse/_quality/data_docs`` while the report
printed a path that did not exist (issue #13, item 9).

A remote warehouse (``s3://``) keeps the GX project in a local folder: GX's file
stores and the Data Docs site builder write local files. Unless ``quality.project_dir``
names one, that folder is a fresh private temporary folder (``tempfile.mkdtemp``:
a new unpredictable name, mode 0700, owned by the run's user) removed when the run's
checks are finished (:meth:`QualityContext.close`), also when the process ends early.
A predictable shared path such as ``/tmp/feedlake-quality/<hash>`` created with
``exist_ok`` could be pre-created or swapped by another local user, and GX imports
plugins from its project folder (issue #13, item 7). The Data Docs built in it are
copied to ``WAREHOUSE/_quality/data_docs/`` before the folder is removed.

Data Docs are made to render offline (issue #16): after each build the pages'
CDN styles and scripts are rewritten to copies vendored in the package
(:mod:`feedlake.quality.docs_offline`).

Two GX data sources, chosen by how many rows a validation reads (issue 12):

* the batch gate validates one stream's deduplicated batch: up to
  ``quality.driver_max_rows`` rows it crosses to pandas through Arrow in one Spark job
  (``toArrow`` of at most that many rows + 1) and GX validates the whole suite in memory
  (``feedlake``, pandas), ~8x faster than GX on Spark for a 20,000-event batch
  (``bench/quality_bench.py``); a larger batch is validated by GX's Spark data source;
* the table checks validate stored rows, which grow with the warehouse. Their frame is
  built by Spark; up to ``quality.driver_max_rows`` rows it crosses to pandas like the
  gate's, and past that GX's Spark data source (``feedlake_spark``) computes the
  metrics on the executors, so only counts and a sample of unexpected values reach
  the driver, whatever the size of the warehouse or the batch.

Why Data Docs are built once per run and not by an ``UpdateDataDocsAction`` on each
checkpoint: the action re-renders the site index after every validation (measured
~0.35 s per checkpoint run against ~0.06 s without it), and the gate runs one
checkpoint per tenant, stream and table. :meth:`QualityContext.build_docs` renders
this run's validation results and the index in one ``build_data_docs`` call.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from feedlake.quality.suites import gx_suite
from feedlake.settings.job import QualitySettings
from feedlake.settings.locations import quality_root

DATA_SOURCE = "feedlake"  # pandas: batch-sized frames
SPARK_SOURCE = "feedlake_spark"  # Spark DataFrames: stored rows, any size
SITE = "feedlake"
ROW_COUNTS = "row_counts"
WHOLE = "whole"  # the one batch definition of every asset: the whole DataFrame given
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


class QualityContext:
    """A GX file data context under :func:`quality_root`; registers and runs checkpoints."""

    def __init__(self, root: str, temporary: bool = False, assets: Sequence[str] = ()):
        self.root = os.path.abspath(root)
        self.assets = tuple(sorted(set(assets)))
        self.docs_dir = os.path.join(self.root, "data_docs")
        self.temporary = temporary
        self._context = None
        self._checkpoints: dict[str, Any] = {}
        self._definitions: dict[str, tuple[str, Sequence, Mapping[str, Any], str]] = {}  # name -> what _register was given
        self.identifiers: list[Any] = []
        # A private project folder goes away with the run, even when the run dies before
        # close() (an exception in a hook, the interpreter exiting).
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.root, True) if temporary else None
        self._lock_depth = 0
        self._lock_file = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the project's file lock (re-entrant within this object) while GX reads or writes it.

        Runs on different tenants share a local warehouse's GX project and run side by
        side (issue 13): GX rewrites great_expectations.yml, suites and checkpoints as
        it registers them, and a second process reading a half-written file fails. The
        lock is held only for one operation, never across a run, and the kernel drops it
        if the process dies. A private temporary project needs none.
        """
        if self.temporary:
            yield
            return
        if self._lock_depth == 0:
            os.makedirs(self.root, exist_ok=True)
            self._lock_file = open(os.path.join(self.root, ".feedlake.lock"), "a+")  # noqa: SIM115 -- closed below
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    @classmethod
    def for_warehouse(cls, warehouse: str, quality: QualitySettings | None = None,
                      assets: Sequence[str] = ()) -> QualityContext:
        """The project of ``warehouse``: its ``_quality`` folder, ``quality.project_dir``, or
        for a remote warehouse a new private temporary folder (issue #13, item 7).

        ``assets`` are the data assets its checkpoints validate, declared when it opens
        (:meth:`declare_sources`)."""
        root = quality_root(warehouse, quality)
        if root is not None:
            return cls(root, assets=assets)
        # mkdtemp: an unpredictable name created atomically with mode 0700 (never an existing
        # folder), so no other local user can plant GX plugins or config in it.
        return cls(tempfile.mkdtemp(prefix="feedlake-gx-"), temporary=True, assets=assets)

    def close(self) -> None:
        """Remove a temporary project folder (a configured or local one stays)."""
        self._context = None
        self._checkpoints.clear()
        if self._cleanup is not None:
            self._cleanup()

    @property
    def context(self):
        if self._context is None:
            with self.locked():
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
        self.declare_sources(context)
        return context

    def declare_sources(self, context) -> None:
        """Declare both data sources with every one of :attr:`assets` and its :data:`WHOLE` batch.

        GX keeps fluent data sources in great_expectations.yml and rewrites the whole file
        for each asset or batch definition added one at a time: 2 rewrites per table (32
        YAML dumps in a fresh sample/landing run, 8 now; checkpoint registration 0.85 s ->
        0.63 s). Declared together they cost one write per source, and none when the
        project already has them all (a rerun), which also
        keeps the asset ids that checkpoints of another run on the same warehouse hold.
        Assets not declared here are still added when first used (:meth:`_register`).
        """
        # feedlake persists (and releases) the frames it validates itself: GX's own persist
        # would keep every validated frame cached for the rest of the session.
        sources = ((DATA_SOURCE, "pandas", {}), (SPARK_SOURCE, "spark", {"persist": False}))
        for name, kind, options in sources:
            try:
                source = context.data_sources.get(name)
            except KeyError:
                source = None
            if (source is not None and source.type == kind
                    and all(getattr(source, k) == v for k, v in options.items())
                    and all(_has_whole_batch(source, asset) for asset in self.assets)):
                continue
            assets = [{"name": asset, "type": "dataframe", "batch_definitions": [{"name": WHOLE}]} for asset in self.assets]
            add_or_update = getattr(context.data_sources, f"add_or_update_{kind}")
            add_or_update(name, assets=assets, **options)

    def checkpoint(self, name: str, asset: str, specs: Sequence, result_format: Mapping[str, Any],
                   source: str = DATA_SOURCE):
        """The checkpoint ``name`` validating dataframes of ``asset`` (pandas, or Spark for
        :data:`SPARK_SOURCE`) against ``specs``.

        Suite, validation definition and checkpoint are (re)registered once per process
        from conf, so an edited conf/quality file takes effect on the next run.
        """
        if name in self._checkpoints and self._definitions[name][3] == source:
            return self._checkpoints[name]
        with self.locked():
            return self._register(name, asset, specs, result_format, source)

    def _register(self, name: str, asset: str, specs: Sequence, result_format: Mapping[str, Any], source_name: str):
        import great_expectations as gx

        context = self.context
        source = context.data_sources.get(source_name)
        try:
            data_asset = source.get_asset(asset)
        except LookupError:
            data_asset = source.add_dataframe_asset(asset)
        try:
            batch = data_asset.get_batch_definition(WHOLE)
        except KeyError:
            batch = data_asset.add_batch_definition_whole_dataframe(WHOLE)
        suite = context.suites.add_or_update(gx_suite(name, specs))
        definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name=name, validation_definitions=[definition], actions=[], result_format=dict(result_format))
        )
        self._checkpoints[name] = checkpoint
        self._definitions[name] = (asset, specs, result_format, source_name)
        return checkpoint

    def run(self, checkpoint, frame, parameters: Mapping[str, Any], run_name: str, run_time: datetime, *,
            keep: bool = True):
        """Validate one DataFrame (pandas or Spark, as the checkpoint's source); the result is kept for
        :meth:`build_docs` unless ``keep`` is false (a validation run only to locate rows)."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.exceptions.resource_freshness import ResourceFreshnessAggregateError

        def validate(checkpoint):
            return checkpoint.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=dict(parameters),
                run_id=RunIdentifier(run_name=run_name, run_time=run_time),
            )

        with self.locked():
            try:
                result = validate(checkpoint)
            except ResourceFreshnessAggregateError:
                # Another run on the same warehouse (another tenant, concurrently) registered the
                # same suite since this process did: GX then refuses the stale copy it holds.
                # Register this run's definitions again (from its own conf) and validate once more.
                self._checkpoints.pop(checkpoint.name, None)
                result = validate(self._register(checkpoint.name, *self._definitions[checkpoint.name]))
        if keep:
            self.identifiers.extend(result.run_results)
        return result

    def build_docs(self) -> str:
        """Render this run's validation results and the site index; return index.html's path.

        The pages built are then rewritten to load their styles and scripts from copies
        in the site's ``static/vendor`` folder instead of public CDNs (issue #16), so the
        site renders with no network (CI artifacts, air-gapped clusters).
        """
        from feedlake.quality.docs_offline import make_offline

        if self.identifiers:
            with self.locked():
                self.context.build_data_docs(site_names=[SITE], resource_identifiers=list(self.identifiers))
                pages = [self._page_of(identifier) for identifier in self.identifiers]
                make_offline(self.docs_dir, [p for p in pages if p])
        return os.path.join(self.docs_dir, "index.html")

    def _page_of(self, identifier) -> str | None:
        """The local HTML file GX rendered for one validation result identifier."""
        urls = self.context.get_docs_sites_urls(resource_identifier=identifier, site_name=SITE)
        url = (urls[0] or {}).get("site_url") if urls else None
        if not url or not url.startswith("file://"):
            return None
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(url).path)

    def publish(self, warehouse: str, s3=None) -> str:
        """Copy the Data Docs of this run to ``WAREHOUSE/_quality/data_docs/`` (remote warehouses).

        The temporary project holds only this run's results, so its site lists this run's
        validations; static files already in the warehouse are not uploaded again.
        """
        from feedlake.quality.docs_offline import upload_site

        target = warehouse.rstrip("/") + "/_quality/data_docs"
        upload_site(self.docs_dir, target, s3)
        return target + "/index.html"


def _has_whole_batch(source, asset: str) -> bool:
    try:
        source.get_asset(asset).get_batch_definition(WHOLE)
    except (LookupError, KeyError):
        return False
    return True
