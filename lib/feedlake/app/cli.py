"""``feedlake`` command line: the one entry point for local runs, spark-submit and CI.

Config is parsed once here and passed down; nothing below reads files of conf itself.
Exit codes: 0 when the run completed (even if records were quarantined), 1 when the
job failed, 2 for a usage or configuration error, 3 when ``--fail-on`` is given and a
data quality expectation of that severity failed (feedlake.quality.checks), 4 when ``forget``
could not remove everything that holds the person (feedlake.erasure.forget).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from feedlake.settings.config import ConfigError, load_config, parse_set_option
from feedlake.settings.job import DEFAULT_HOOKS as DEFAULT_HOOKS  # a conf without ``hooks:`` runs these

log = logging.getLogger("feedlake")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedlake", description="Ingest B2B customer data feeds into Delta Lake.")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="ingest new landing files into the warehouse tables")
    _locations(ingest, "landing root: PATH/tenant=<id>/<stream>/... (local or s3://)")
    ingest.add_argument("--fail-on", choices=("critical", "warning"), default=None,
                        help="exit 3 when a quality expectation of this severity (or worse) failed")
    _common(ingest)

    quality = sub.add_parser("quality", help="run the table quality checks (Great Expectations) on the warehouse")
    quality.add_argument("--warehouse", required=True, help="warehouse root (local or s3://)")
    quality.add_argument("--table", action="extend", nargs="+", default=None, help="only these tables")
    quality.add_argument("--fail-on", choices=("critical", "warning"), default=None,
                         help="exit 3 when an expectation of this severity (or worse) failed")
    _common(quality)

    backfill = sub.add_parser("backfill", help="ingest a range of dt= partitions in bounded, resumable chunks")
    _locations(backfill, "landing root: PATH/tenant=<id>/<stream>/dt=<day>/... (local or s3://)")
    backfill.add_argument("--from", dest="start", required=True, type=_day, help="first dt= day, YYYY-MM-DD (included)")
    backfill.add_argument("--to", dest="end", required=True, type=_day, help="last dt= day, YYYY-MM-DD (included)")
    backfill.add_argument("--max-chunks", type=int, default=None,
                          help="run at most this many chunks now; the same command resumes where it stopped")
    backfill.add_argument("--fail-on", choices=("critical", "warning"), default=None,
                          help="exit 3 when a quality expectation of this severity (or worse) failed in any chunk")
    _common(backfill)

    export = sub.add_parser("export", help="send changed profiles and moments out as Segment calls (seed 002)")
    export.add_argument("--warehouse", required=True, help="warehouse root (local or s3://)")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--outbox", default=None, help="write gzip JSON lines under OUTBOX/tenant=<id>/segment/ (local or s3://)")
    target.add_argument("--segment", action="store_true", help="post to Segment's /v1/batch (conf export.segment_url)")
    export.add_argument("--tenant", action="extend", nargs="+", default=None, help="only these tenants")
    export.add_argument("--since-version", type=int, default=None, help="re-export changes from this table version (0: backfill)")
    export.add_argument("--dry-run", action="store_true", help="count the messages; send and record nothing")
    _common(export)

    report = sub.add_parser("report", help="rebuild the run history page WAREHOUSE/_reports/index.html and print its path")
    report.add_argument("--warehouse", required=True, help="warehouse root (local or s3://)")
    report.add_argument("--open", action="store_true", help="open the page in the default web browser")
    _common(report)

    forget = sub.add_parser("forget", help="erase a person from every table, the quarantine and the landing zone (issue 15)")
    forget.add_argument("--warehouse", required=True, help="warehouse root (local or s3://)")
    forget.add_argument("--tenant", required=True, help="the tenant whose data subject asked for erasure")
    who = forget.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the person's email (matched lower-cased, trimmed)")
    who.add_argument("--contact-key", dest="contact_key", help="the person's contact key (exact)")
    who.add_argument("--requests", help="CSV file (local or s3://): header email and/or contact_key, one person per row")
    forget.add_argument("--landing", default=None, help="also list the landing files (local or s3://) that still hold them")
    forget.add_argument("--rewrite-landing", action="store_true", help="rewrite those landing files without their lines")
    forget.add_argument("--purge-now", action="store_true",
                        help="remove old data files and log entries now (VACUUM 0 hours): ends time travel before this point")
    _common(forget)
    return parser


def _day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def _locations(parser: argparse.ArgumentParser, landing_help: str) -> None:
    """The CLI contract shared by ``ingest`` and ``backfill``: where to read, where to write, which slice."""
    parser.add_argument("--landing", required=True, help=landing_help)
    parser.add_argument("--warehouse", required=True, help="warehouse root: one Delta table per folder (local or s3://)")
    parser.add_argument("--tenant", action="extend", nargs="+", default=None, help="only these tenants")
    parser.add_argument("--stream", action="extend", nargs="+", default=None, help="only these streams")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default=None, help="folder with streams.yaml, tables.yaml, ingest.yaml (default: packaged)")
    parser.add_argument("--profile", default=None, help="conf profile: conf/profiles/<name>.yaml (local, emr, databricks)")
    parser.add_argument("--engine", choices=("auto", "delta-rs", "delta-spark"), default=None, help="Delta engine")
    parser.add_argument("--set", dest="settings", action="append", default=None, metavar="KEY=VALUE",
                        help="override a job setting, e.g. --set spark.conf.spark.sql.shuffle.partitions=8")


def load_job_config(args: argparse.Namespace):
    """The run's config (conf folder, profile, ``--engine``, ``--set``): every setting checked here, before Spark starts."""
    overrides = parse_set_option(args.settings)
    if args.engine:
        overrides["engine"] = args.engine
    if args.profile:
        overrides["profile"] = args.profile
    config = load_config(args.conf, overrides)
    config.settings.s3.export_to_environment()  # conf's S3 endpoint/region for every AWS client
    return config


def session_for(config, landing_bytes: int = 0):
    """The SparkSession for a CLI run: the active one (spark-submit, notebooks) or a new one.

    A new one is started for ``landing_bytes`` of landing files (``spark.small_batch``).
    """
    from pyspark.sql import SparkSession

    from feedlake.settings.session import build_session, prepare_session, wants_jvm_packages

    active = SparkSession.getActiveSession()
    if active is not None:
        return prepare_session(active, config.settings.spark.session_conf)
    return build_session(
        config.settings.spark, with_delta_jar=wants_jvm_packages(config.settings), landing_bytes=landing_bytes
    )


def ingest_hooks(args: argparse.Namespace, config):
    """The hooks of one ingest run, built from conf's ``hooks:`` in order, and its quality gate.

    Fresh per run (the gate keeps the run's results); the gate is ``None`` when conf
    declares none (the run's exit code then never reports quality).
    """
    from feedlake.ingest.hooks import IngestHook
    from feedlake.quality.checks import QualityGate
    from feedlake.settings.config import ConfigError, load_object

    # conf's ``hooks:`` (checked when loaded); a conf folder written before hooks were declared
    # (no ``hooks:`` key) keeps the former fixed list, DEFAULT_HOOKS.
    hooks = []
    for ref in config.settings.hooks:
        hook_class = load_object(ref, "hook")
        if not (isinstance(hook_class, type) and issubclass(hook_class, IngestHook)):
            raise ConfigError(f"hook {ref!r}: not a subclass of feedlake.ingest.hooks.IngestHook")
        hooks.append(hook_class.from_conf(config, args.conf))
    gate = next((hook for hook in hooks if isinstance(hook, QualityGate)), None)
    return hooks, gate


def cmd_ingest(args: argparse.Namespace) -> int:
    from feedlake.delta.engines import engine_for
    from feedlake.ingest.pipeline import IngestRequest, run_ingest
    from feedlake.ingest.report_html import page_location
    from feedlake.landing.layouts import discover

    config = load_job_config(args)
    # Built before the session: GX imports in the background while Spark starts (issue #5).
    hooks, gate = ingest_hooks(args, config)
    settings = config.settings
    tenants, streams = tuple(args.tenant or ()), tuple(args.stream or ())
    # Listed before Spark starts, so the driver JVM is sized for the input (spark.small_batch); the run reuses the listing.
    files = tuple(discover(args.landing, tenants, streams, settings.landing_layout, s3=settings.s3))
    spark = session_for(config, landing_bytes=sum(f.size_bytes for f in files))
    engine = engine_for(spark, args.warehouse, config)
    request = IngestRequest(
        landing=args.landing, warehouse=args.warehouse, tenants=tenants, streams=streams, listed=files
    )
    report = run_ingest(spark, config, engine, request, hooks=hooks)
    print(report.render())
    print(f"run page: {page_location(args.warehouse, report.run_id)}")  # written by the run (issue #16)
    return gate.exit_code(args.fail_on) if gate is not None else 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """``feedlake backfill``: a dt= range in bounded, resumable chunks (feedlake.ingest.backfill, issue #6)."""
    from functools import partial

    from feedlake.delta.engines import engine_for
    from feedlake.ingest.backfill import BackfillRequest, run_backfill

    config = load_job_config(args)
    request = BackfillRequest(
        landing=args.landing,
        warehouse=args.warehouse,
        start=args.start,
        end=args.end,
        tenants=tuple(args.tenant or ()),
        streams=tuple(args.stream or ()),
        max_chunks=args.max_chunks,
    )
    gates = []

    def chunk_hooks():
        hooks, gate = ingest_hooks(args, config)
        if gate is not None:
            gates.append(gate)
        return hooks

    spark = session_for(config)
    engine = engine_for(spark, args.warehouse, config)
    run_backfill(spark, config, engine, request, chunk_hooks, echo=partial(print, flush=True))
    return max((gate.exit_code(args.fail_on) for gate in gates), default=0)


def cmd_quality(args: argparse.Namespace) -> int:
    """``feedlake quality``: the table checks alone (issue #5), e.g. as a step of a CI pipeline."""
    from datetime import datetime, timezone

    from feedlake.delta.engines import engine_for
    from feedlake.ingest.pipeline import new_run_id
    from feedlake.quality.checks import check_tables
    from feedlake.quality.context import preload_gx
    from feedlake.quality.suites import load_quality

    config = load_job_config(args)
    quality = load_quality(args.conf, config)
    quality.checked(args.table)  # an unknown --table is a usage error, before Spark starts
    preload_gx()
    spark = session_for(config)
    engine = engine_for(spark, args.warehouse, config)
    run = check_tables(spark, config, engine, quality, args.warehouse, new_run_id(datetime.now(timezone.utc)), args.table)
    print(run.summary())
    print(f"run page: {run.page_path}")
    return run.exit_code(args.fail_on)


def cmd_report(args: argparse.Namespace) -> int:
    """``feedlake report``: rebuild ``WAREHOUSE/_reports/index.html`` from the JSON reports (issue #16)."""
    import os
    import webbrowser
    from pathlib import Path

    from feedlake.ingest.report_html import write_index
    from feedlake.settings.locations import is_remote

    config = load_job_config(args)
    remote = is_remote(args.warehouse)
    if not remote and not os.path.isdir(args.warehouse.removeprefix("file://")):
        raise ConfigError(f"--warehouse {args.warehouse!r}: no such folder")
    path = write_index(args.warehouse, config.settings.s3)
    print(path)
    if args.open and not remote:
        webbrowser.open(Path(path).as_uri())
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """``feedlake forget``: an erasure request (issue 15, GDPR Art. 17 / CCPA), see feedlake.erasure.forget.

    Exit 0: everything found was removed (or nothing held the person); 4
    (``privacy.EXIT_INCOMPLETE``): something still holds them (rows left, a failed
    VACUUM, landing files not rewritten); 2: a bad request, nothing changed.
    """
    from feedlake.delta.engines import engine_for
    from feedlake.erasure.forget import EXIT_INCOMPLETE, forget, read_requests_file, retention_hours
    from feedlake.streams.subjects import erasure_request

    config = load_job_config(args)
    retention_hours(config)
    if args.rewrite_landing and not args.landing:
        raise ConfigError("--rewrite-landing needs --landing PATH")
    if args.requests:
        requests = read_requests_file(args.requests, config.settings.s3)
    else:
        requests = [erasure_request("email", args.email) if args.email is not None else erasure_request("contact_key", args.contact_key)]
    spark = session_for(config)
    engine = engine_for(spark, args.warehouse, config)
    result = forget(spark, config, engine, args.tenant, requests, args.landing, args.rewrite_landing, args.purge_now)
    print(result.render())
    return 0 if result.complete else EXIT_INCOMPLETE


def cmd_export(args: argparse.Namespace) -> int:
    """``feedlake export``: profiles and moments back out as Segment calls (feedlake.export.segment, issue 17)."""
    from datetime import datetime, timezone

    from feedlake.delta.engines import engine_for
    from feedlake.derived.moments import load_moments
    from feedlake.export.segment import ExportRequest, new_export_run_id, run_export

    config = load_job_config(args)
    moments = load_moments(args.conf, config)
    if args.since_version is not None and args.since_version < 0:
        raise ConfigError("--since-version must be >= 0")
    request = ExportRequest(args.warehouse, args.outbox, args.segment, tuple(args.tenant or ()), args.since_version, args.dry_run)
    spark = session_for(config)
    engine = engine_for(spark, args.warehouse, config)
    report = run_export(spark, config, engine, request, moments, new_export_run_id(datetime.now(timezone.utc)))
    print(report.render())
    return 0


COMMANDS = {"ingest": cmd_ingest, "quality": cmd_quality, "backfill": cmd_backfill, "report": cmd_report, "forget": cmd_forget}
COMMANDS["export"] = cmd_export  # issue 17 (feedlake.export.segment)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"feedlake: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        log.exception("feedlake %s failed", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
