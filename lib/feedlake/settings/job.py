"""Job settings (``conf/ingest.yaml``, a profile, ``--set``): typed and checked once, when conf is loaded.

One frozen dataclass per section of ``ingest.yaml``, bundled in :class:`JobSettings`;
:func:`parse_job_settings` builds it from the merged mapping and raises
:class:`~feedlake.settings.errors.ConfigError` naming the dotted setting that is wrong
(e.g. ``parsing.max_record_bytes``). :class:`feedlake.settings.config.FeedlakeConfig`
holds the result as ``config.settings``, so every reader gets checked, typed values
(``config.settings.s3``, ``config.settings.backfill``...) and a bad ``--set`` fails
before any Spark work. ``config.job`` stays the raw merged mapping.

Unknown top-level keys are accepted (``profile`` is read by :func:`~feedlake.settings.config.load_config`);
within a section, ``s3`` and ``export`` refuse unknown keys (a misspelt credential or
write key must never pass silently), the other sections log a warning and ignore them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from feedlake.settings.errors import ConfigError
from feedlake.settings.tables import ACCOUNTS, CONTACTS

log = logging.getLogger("feedlake.settings.job")

ENGINES = ("auto", "delta-rs", "delta-spark")
# The landing layouts (rules in feedlake.landing.layouts).
LANDING_LAYOUTS = ("tenant_stream", "objects")
DEFAULT_LANDING_LAYOUTS = ("tenant_stream",)
# The hooks of a conf folder whose ingest.yaml has no ``hooks:`` (as conf/ingest.yaml declares them).
DEFAULT_HOOKS = (
    "feedlake.derived.remaps:EntityMapHook",
    "feedlake.derived.metric_rollup:MetricsHook",
    "feedlake.derived.activity:ActivityHook",
    "feedlake.quality.checks:QualityGate",
)

S3_READ_MODES = ("auto", "direct", "spool")
S3_SETTING_KEYS = ("endpoint_url", "region", "read_mode", "download_threads", "spool_dir")
# Key fragments that look like credentials: refused in ``s3:`` (credentials come from the AWS chain).
SECRET_HINTS = ("secret", "access_key", "session_token", "password", "token")

DEFAULT_MAX_RECORD_BYTES = 16 << 20
DEFAULT_RAW_RECORD_MAX_CHARS = 65_536
DEFAULT_CHUNK_FILES = 500
DEFAULT_CHUNK_BYTES = 2 << 30  # 2 GiB
DEFAULT_RETENTION_HOURS = 168

# The kinds of identifier an erasure request names (feedlake.streams.subjects) and the
# landing field paths that hold them (``a`` or ``a.b``, member b of JSON object field a).
STREAM_SUBJECT_KINDS = ("email", "contact_key")
FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
# The tables whose changes ``feedlake export`` sends with traits (identify, group).
EXPORT_TRAIT_TABLES = (CONTACTS, ACCOUNTS)
_TRAIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- helpers ---------------------------------------------------------------------------------


def _section(job: Mapping[str, Any], name: str, shape: str = "") -> Mapping[str, Any]:
    """``job[name]`` as a mapping (absent or null: empty)."""
    raw = job.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a mapping{f' ({shape})' if shape else ''}, got {raw!r}")
    return raw


def _warn_unknown(section: str, raw: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(str(k) for k in raw if k not in set(known))
    if unknown:
        log.warning("%s: unknown setting(s) %s ignored; known: %s", section, unknown, sorted(known))


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(section: str, key: str, value: Any, minimum: int = 1, what: str = "a whole number") -> int:
    if not _is_whole(value) or value < minimum:
        raise ConfigError(f"{section}.{key}: expected {what} >= {minimum}, got {value!r}")
    return value


def _number(section: str, key: str, value: Any, *, positive: bool) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (positive and value == 0):
        raise ConfigError(f"{section}.{key}: expected a number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _text_mapping(section: str, raw: Any) -> dict[str, str]:
    """A mapping of settings whose values are passed on as text (``true``/``false`` for booleans)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {raw!r}")
    return {str(k): ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in raw.items()}


# --- sections --------------------------------------------------------------------------------


def is_local_master(master: str | None) -> bool:
    """True for a master named ``local...`` (``local[2]``, ``local-cluster[...]``): driver and executors on this machine.

    ``None`` (the master spark-submit or the cluster gives) is not known, so not local.

    >>> [is_local_master(m) for m in ("local[2]", "local-cluster[2,1,1024]", "spark://head:7077", None)]
    [True, True, False, False]
    """
    return bool(master) and master.startswith("local")


@dataclass(frozen=True)
class SmallBatchSettings:
    """``spark.small_batch``: runtime SQL settings for a run whose landing input is small, on a local master.

    A few megabytes of input cost a local run more in planning and compiling its queries
    (whole-stage code generation, adaptive re-planning) than in running them; Spark's own
    tests run interpreted for that reason. A run whose planned files (bytes as stored) are
    at most ``max_bytes`` applies ``session_conf`` for its duration and restores the
    session's values after it (:func:`feedlake.settings.session.sql_conf_overlay`).
    ``max_bytes: 0`` (the default of a conf folder without this section) never applies it.

    ``driver_java_options`` are for the driver JVM itself, so they can only apply when
    feedlake starts it: ``feedlake ingest`` lists the landing zone before it starts Spark,
    and a local driver whose landing files (every file in scope, read before or not) total
    at most ``max_bytes`` starts with them (:func:`feedlake.settings.session.build_session`).
    A JVM option changes how fast the driver runs, never what a run writes.
    """

    max_bytes: int = 0
    session_conf: Mapping[str, str] = field(default_factory=dict)
    driver_java_options: str = ""

    def within(self, batch_bytes: int, master: str) -> bool:
        """True for 1 to ``max_bytes`` bytes of input on a local master (a cluster run keeps its settings)."""
        return 0 < batch_bytes <= self.max_bytes and is_local_master(master)

    def applies(self, batch_bytes: int, master: str) -> bool:
        """True when ``session_conf`` applies to a batch: some settings, and the batch is :meth:`within` the limit."""
        return bool(self.session_conf) and self.within(batch_bytes, master)

    def java_options(self, landing_bytes: int, master: str) -> str:
        """``driver_java_options`` for a driver started for ``landing_bytes`` of landing files, else ``""``."""
        return self.driver_java_options if self.within(landing_bytes, master) else ""


@dataclass(frozen=True)
class SparkSettings:
    """The ``spark:`` section: the session feedlake builds (:func:`feedlake.settings.session.build_session`)."""

    master: str | None = None  # null: the one spark-submit (or the cluster) gives
    app_name: str = "feedlake"
    conf: Mapping[str, str] = field(default_factory=dict)  # set when the session is built
    session_conf: Mapping[str, str] = field(default_factory=dict)  # runtime SQL settings, even on a given session
    resolve_packages: bool | str = "auto"  # the pinned JVM packages: true, false or auto (feedlake.settings.session)
    extra_packages: tuple[str, ...] = ()  # more Maven coordinates for spark.jars.packages
    s3a_endpoint: str | None = None  # ``s3a: {endpoint: ...}``: S3A's endpoint (default: AWS_ENDPOINT_URL(_S3))
    small_batch: SmallBatchSettings = field(default_factory=SmallBatchSettings)
    # JVM options of a local driver feedlake starts, whatever its input (conf: the parallel collector)
    local_driver_java_options: str = ""

    def local_java_options(self) -> str:
        """``local_driver_java_options`` when the master is local (:func:`is_local_master`), else ``""``."""
        return self.local_driver_java_options if is_local_master(self.master) else ""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> SparkSettings:
        """The section as found in ingest.yaml (or a plain dict: benches, tests)."""
        return parse_spark({"spark": raw})


def parse_spark(job: Mapping[str, Any]) -> SparkSettings:
    raw = _section(job, "spark")
    _warn_unknown(
        "spark",
        raw,
        ("master", "app_name", "conf", "session_conf", "resolve_packages", "extra_packages", "s3a", "small_batch",
         "local_driver_java_options"),
    )
    resolve = raw.get("resolve_packages", "auto")
    if resolve is None:
        resolve = "auto"
    if not isinstance(resolve, bool) and resolve != "auto":
        raise ConfigError(f"spark.resolve_packages: expected true, false or auto, got {resolve!r}")
    extra = raw.get("extra_packages") or ()
    if isinstance(extra, str) or not isinstance(extra, (list, tuple)):
        raise ConfigError(f"spark.extra_packages: expected a list of Maven coordinates, got {extra!r}")
    s3a = raw.get("s3a") or {}
    if not isinstance(s3a, Mapping):
        raise ConfigError(f"spark.s3a: expected a mapping (endpoint), got {s3a!r}")
    master = raw.get("master")
    return SparkSettings(
        master=str(master) if master else None,
        app_name=str(raw.get("app_name") or "feedlake"),
        conf=_text_mapping("spark.conf", raw.get("conf")),
        session_conf=_text_mapping("spark.session_conf", raw.get("session_conf")),
        resolve_packages=resolve,
        extra_packages=tuple(str(p) for p in extra),
        s3a_endpoint=str(s3a["endpoint"]) if s3a.get("endpoint") else None,
        small_batch=parse_small_batch(raw),
        local_driver_java_options=java_options("spark.local_driver_java_options", raw.get("local_driver_java_options")),
    )


def java_options(key: str, value: Any) -> str:
    """JVM options written as one string (``null``: none)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected JVM options as one string, got {value!r}")
    return value.strip()


def parse_small_batch(spark: Mapping[str, Any]) -> SmallBatchSettings:
    raw = spark.get("small_batch") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"spark.small_batch: expected a mapping (max_bytes, session_conf, driver_java_options), got {raw!r}"
        )
    _warn_unknown("spark.small_batch", raw, ("max_bytes", "session_conf", "driver_java_options"))
    return SmallBatchSettings(
        max_bytes=_whole("spark.small_batch", "max_bytes", raw.get("max_bytes", 0), minimum=0),
        session_conf=_text_mapping("spark.small_batch.session_conf", raw.get("session_conf")),
        driver_java_options=java_options("spark.small_batch.driver_java_options", raw.get("driver_java_options")),
    )


@dataclass(frozen=True)
class S3Settings:
    """The ``s3:`` section of conf/ingest.yaml (never credentials: those come from the AWS chain)."""

    endpoint_url: str | None = None
    region: str | None = None
    read_mode: str = "auto"
    download_threads: int = 8
    spool_dir: str | None = None

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> S3Settings:
        """Read and check ``job["s3"]``; unknown keys and anything credential-like are refused."""
        return parse_s3(job)

    def export_to_environment(self) -> None:
        """Make conf's endpoint and region this process's AWS settings (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``).

        Every AWS client of a run — boto3 here, in the quality checks or a notebook, and
        delta-rs — reads its endpoint and region from the environment; exporting conf's
        values once at the entry point is how they all agree with conf. Non-secret values
        only; a local Spark session built afterwards hands them to its Python workers too.
        """
        if self.endpoint_url:
            os.environ["AWS_ENDPOINT_URL_S3"] = self.endpoint_url
        if self.region:
            os.environ["AWS_REGION"] = self.region


def parse_s3(job: Mapping[str, Any]) -> S3Settings:
    raw = job.get("s3") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("s3: expected a mapping (endpoint_url, region, read_mode, download_threads, spool_dir)")
    secretish = [k for k in raw if any(h in str(k).lower() for h in SECRET_HINTS)]
    if secretish:
        raise ConfigError(
            f"s3.{secretish[0]}: credentials are not read from conf; use the AWS credential chain "
            "(environment variables, AWS_PROFILE, instance or container roles)"
        )
    unknown = sorted(str(k) for k in raw if k not in S3_SETTING_KEYS)
    if unknown:
        raise ConfigError(f"s3: unknown setting(s) {unknown}; known: {list(S3_SETTING_KEYS)}")
    mode = str(raw.get("read_mode") or "auto")
    if mode not in S3_READ_MODES:
        raise ConfigError(f"s3.read_mode: {mode!r} not in {S3_READ_MODES}")
    threads = raw.get("download_threads", 8)
    if not _is_whole(threads) or threads < 1:
        raise ConfigError(f"s3.download_threads: expected a whole number >= 1, got {threads!r}")
    endpoint = raw.get("endpoint_url") or None
    if endpoint is not None and not str(endpoint).startswith(("http://", "https://")):
        raise ConfigError(f"s3.endpoint_url: expected an http:// or https:// URL, got {endpoint!r}")
    return S3Settings(
        endpoint_url=str(endpoint) if endpoint else None,
        region=str(raw["region"]) if raw.get("region") else None,
        read_mode=mode,
        download_threads=threads,
        spool_dir=str(raw["spool_dir"]) if raw.get("spool_dir") else None,
    )


@dataclass(frozen=True)
class ParseSettings:
    """The ``parsing:`` section of conf/ingest.yaml (feedlake.landing.parsing)."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    raw_record_max_chars: int = DEFAULT_RAW_RECORD_MAX_CHARS
    spread_lines: bool = True

    @classmethod
    def from_job(cls, job: Mapping[str, Any] | None) -> ParseSettings:
        return parse_parsing(job or {})


def parse_parsing(job: Mapping[str, Any]) -> ParseSettings:
    raw = _section(job, "parsing")
    _warn_unknown("parsing", raw, ("max_record_bytes", "raw_record_max_chars", "spread_lines"))
    spread = raw.get("spread_lines", True)
    if not isinstance(spread, bool):
        raise ConfigError(f"parsing.spread_lines: expected true or false, got {spread!r}")
    return ParseSettings(
        max_record_bytes=_whole("parsing", "max_record_bytes", raw.get("max_record_bytes", DEFAULT_MAX_RECORD_BYTES)),
        raw_record_max_chars=_whole(
            "parsing", "raw_record_max_chars", raw.get("raw_record_max_chars", DEFAULT_RAW_RECORD_MAX_CHARS)
        ),
        spread_lines=spread,
    )


@dataclass(frozen=True)
class ChunkLimits:
    """How big one backfill chunk may get (``backfill:`` in conf/ingest.yaml; feedlake.ingest.backfill)."""

    files: int = DEFAULT_CHUNK_FILES
    bytes: int = DEFAULT_CHUNK_BYTES

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> ChunkLimits:
        return parse_backfill(job)


def parse_backfill(job: Mapping[str, Any]) -> ChunkLimits:
    raw = _section(job, "backfill")
    _warn_unknown("backfill", raw, ("chunk_files", "chunk_bytes"))
    return ChunkLimits(
        files=_whole("backfill", "chunk_files", raw.get("chunk_files", DEFAULT_CHUNK_FILES)),
        bytes=_whole("backfill", "chunk_bytes", raw.get("chunk_bytes", DEFAULT_CHUNK_BYTES)),
    )


@dataclass(frozen=True)
class LeaseSettings:
    """``concurrency:`` in conf/ingest.yaml (feedlake.ingest.lease)."""

    wait_seconds: float = 900.0  # how long a run waits for a leased tenant
    ttl_seconds: float = 120.0  # an S3 lease not renewed for this long is expired
    poll_seconds: float = 1.0

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> LeaseSettings:
        return parse_concurrency(job)


def parse_concurrency(job: Mapping[str, Any]) -> LeaseSettings:
    raw = _section(job, "concurrency")
    _warn_unknown("concurrency", raw, ("lease_wait_seconds", "lease_ttl_seconds", "lease_poll_seconds"))
    return LeaseSettings(
        wait_seconds=_number("concurrency", "lease_wait_seconds", raw.get("lease_wait_seconds", 900.0), positive=False),
        ttl_seconds=_number("concurrency", "lease_ttl_seconds", raw.get("lease_ttl_seconds", 120.0), positive=True),
        poll_seconds=_number("concurrency", "lease_poll_seconds", raw.get("lease_poll_seconds", 1.0), positive=True),
    )


@dataclass(frozen=True)
class PrivacySettings:
    """``privacy:`` in conf/ingest.yaml (erasure requests, feedlake.erasure.forget)."""

    vacuum_retention_hours: int = DEFAULT_RETENTION_HOURS
    # stream -> identifier kind -> landing field paths (a stream not listed: see feedlake.streams.subjects)
    stream_subjects: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)


def parse_privacy(job: Mapping[str, Any]) -> PrivacySettings:
    raw = _section(job, "privacy")
    _warn_unknown("privacy", raw, ("vacuum_retention_hours", "stream_subjects"))
    hours = raw.get("vacuum_retention_hours", DEFAULT_RETENTION_HOURS)
    if not _is_whole(hours) or hours < 0:
        raise ConfigError(f"privacy.vacuum_retention_hours: expected a whole number of hours >= 0, got {hours!r}")
    declared = raw.get("stream_subjects") or {}
    if not isinstance(declared, Mapping):
        raise ConfigError(f"privacy.stream_subjects: expected stream -> {{kind: [fields]}}, got {declared!r}")
    subjects: dict[str, dict[str, tuple[str, ...]]] = {}
    for stream, kinds in declared.items():
        if not isinstance(kinds, Mapping):
            raise ConfigError(f"privacy.stream_subjects.{stream}: expected {{kind: [fields]}}, got {kinds!r}")
        out = {str(k): tuple([v] if isinstance(v, str) else (v or ())) for k, v in kinds.items()}
        for kind, paths in out.items():
            if kind not in STREAM_SUBJECT_KINDS or any(not isinstance(p, str) or not FIELD_PATH.fullmatch(p) for p in paths):
                raise ConfigError(
                    f"privacy.stream_subjects.{stream}: {kind}: {list(paths)} (kinds {list(STREAM_SUBJECT_KINDS)}, fields a or a.b)"
                )
        subjects[str(stream)] = out
    return PrivacySettings(vacuum_retention_hours=hours, stream_subjects=subjects)


DEFAULT_QUALITY_DRIVER_MAX_ROWS = 100_000


@dataclass(frozen=True)
class QualitySettings:
    """``quality:`` in conf/ingest.yaml: where the GX project lives (feedlake.settings.locations.quality_root)."""

    project_dir: str | None = None  # default: WAREHOUSE/_quality (a private temporary folder for a remote warehouse)
    # A table check over at most this many stored rows is validated by GX in pandas in the
    # driver (a bounded copy, ~8x faster for small tables); a larger one by GX on Spark.
    driver_max_rows: int = DEFAULT_QUALITY_DRIVER_MAX_ROWS


def parse_quality(job: Mapping[str, Any]) -> QualitySettings:
    raw = _section(job, "quality")
    _warn_unknown("quality", raw, ("project_dir", "driver_max_rows"))
    configured = raw.get("project_dir")
    rows = _whole("quality", "driver_max_rows", raw.get("driver_max_rows", DEFAULT_QUALITY_DRIVER_MAX_ROWS), minimum=0)
    return QualitySettings(project_dir=str(configured) if configured else None, driver_max_rows=rows)


@dataclass(frozen=True)
class ExportSettings:
    """The ``export:`` section of conf/ingest.yaml (no secret: the write key comes from the environment)."""

    segment_url: str = "https://api.segment.io/v1/batch"
    write_key_env: str = "SEGMENT_WRITE_KEY"
    max_batch_bytes: int = 500_000
    max_message_bytes: int = 32_000
    max_attempts: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 30.0
    outbox_messages_per_file: int = 100_000
    as_of: str | date = "today"
    traits: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_job(cls, job: Mapping[str, Any], config: Any) -> ExportSettings:
        """``job["export"]`` checked against ``config``'s tables (the traits name their columns)."""
        return parse_export(job, config.tables)


def parse_export(job: Mapping[str, Any], tables: Mapping[str, Any] | None = None) -> ExportSettings:
    """The ``export:`` section; ``tables`` (name -> TableSpec) checks that every trait names a column.

    Without ``tables`` (a job mapping parsed alone) the traits' columns are not checked.
    """
    raw = dict(_section(job, "export"))
    known = {f.name for f in fields(ExportSettings)}
    if any(h in str(k).lower() for k in raw for h in ("secret", "password", "token")) or "write_key" in raw:
        raise ConfigError("export: the Segment write key is never read from conf (environment variable only)")
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise ConfigError(f"export: unknown setting(s) {unknown}; known: {sorted(known)}")
    url = str(raw.get("segment_url", ExportSettings.segment_url))
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"export.segment_url: expected an http(s) URL, got {url!r}")
    traits = raw.get("traits") or {}
    if not isinstance(traits, Mapping):
        raise ConfigError(f"export.traits: expected contacts/accounts -> {{trait: column}}, got {traits!r}")
    for table, mapping in traits.items():
        if table not in EXPORT_TRAIT_TABLES or not isinstance(mapping, Mapping):
            raise ConfigError(f"export.traits: {table!r}: expected contacts/accounts -> {{trait: column}}")
        spec = None if tables is None else tables.get(table)
        if tables is not None and spec is None:
            raise ConfigError(f"export.traits: {table!r} is not a table of tables.yaml")
        columns = None if spec is None else set(spec.column_names)
        for trait, column in mapping.items():
            if (columns is not None and column not in columns) or not _TRAIT_NAME.fullmatch(str(trait)):
                raise ConfigError(f"export.traits.{table}.{trait}: {column!r} is not a column of {table}")
    values = {k: raw[k] for k in known if k in raw}
    values["traits"] = {str(t): {str(k): str(c) for k, c in m.items()} for t, m in traits.items()}
    values["segment_url"] = url
    values["write_key_env"] = str(raw.get("write_key_env", ExportSettings.write_key_env))
    for name in ("max_batch_bytes", "max_message_bytes", "max_attempts", "outbox_messages_per_file"):
        if name in raw and (not _is_whole(raw[name]) or raw[name] < 1):
            raise ConfigError(f"export.{name}: expected a whole number >= 1")
    for name in ("backoff_seconds", "max_backoff_seconds"):
        if name in raw:
            values[name] = _number("export", name, raw[name], positive=False)
    if "timeout_seconds" in raw:
        values["timeout_seconds"] = _number("export", "timeout_seconds", raw["timeout_seconds"], positive=True)
    as_of = raw.get("as_of", "today")
    if as_of is None:
        as_of = "today"
    if as_of != "today" and not isinstance(as_of, date):
        try:
            date.fromisoformat(str(as_of))
        except ValueError:
            raise ConfigError(f"export.as_of: expected 'today' or YYYY-MM-DD, got {as_of!r}") from None
    values["as_of"] = as_of if isinstance(as_of, date) else str(as_of)
    return ExportSettings(**values)


# --- the whole job ---------------------------------------------------------------------------


def parse_engine(job: Mapping[str, Any]) -> str:
    engine = job.get("engine", "auto")
    engine = "auto" if engine is None else engine
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} not in {ENGINES}")
    return str(engine)


def parse_landing_layout(setting: str | Iterable[str] | None) -> tuple[str, ...]:
    """The ``landing_layout`` job setting (one name or a list) as a checked tuple."""
    if setting is None:
        return DEFAULT_LANDING_LAYOUTS
    if not isinstance(setting, (str, list, tuple)):
        raise ConfigError(f"landing_layout {setting!r} must name layouts among {list(LANDING_LAYOUTS)}")
    names = (setting,) if isinstance(setting, str) else tuple(setting)
    unknown = [n for n in names if n not in LANDING_LAYOUTS]
    if unknown or not names:
        raise ConfigError(f"landing_layout {list(names)} must name layouts among {list(LANDING_LAYOUTS)}")
    return names


def parse_hooks(job: Mapping[str, Any]) -> tuple[str, ...]:
    """``hooks:`` in order; absent: :data:`DEFAULT_HOOKS` (conf written before hooks were declared), null: none."""
    if "hooks" not in job:
        return DEFAULT_HOOKS
    refs = job["hooks"] or []
    if not isinstance(refs, (list, tuple)) or not all(isinstance(ref, str) for ref in refs):
        raise ConfigError(f"hooks: expected a list of 'package.module:Class', got {refs!r}")
    return tuple(refs)


@dataclass(frozen=True)
class JobSettings:
    """Every section of conf/ingest.yaml, typed and checked (``config.settings``)."""

    engine: str = "auto"
    landing_layout: tuple[str, ...] = DEFAULT_LANDING_LAYOUTS
    hooks: tuple[str, ...] = DEFAULT_HOOKS
    spark: SparkSettings = field(default_factory=SparkSettings)
    s3: S3Settings = field(default_factory=S3Settings)
    parsing: ParseSettings = field(default_factory=ParseSettings)
    backfill: ChunkLimits = field(default_factory=ChunkLimits)
    concurrency: LeaseSettings = field(default_factory=LeaseSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    # delta-rs storage options added to those of ``s3`` (feedlake.delta.engines.engine_for); never secrets.
    storage_options: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None  # the conf profile merged in (conf/profiles/<name>.yaml)


def parse_job_settings(job: Mapping[str, Any] | None, tables: Mapping[str, Any] | None = None) -> JobSettings:
    """Check the merged job mapping and build its :class:`JobSettings` (``tables``: see :func:`parse_export`)."""
    job = job or {}
    if not isinstance(job, Mapping):
        raise ConfigError(f"ingest.yaml: expected a mapping at the top level, got {job!r}")
    profile = job.get("profile")
    return JobSettings(
        engine=parse_engine(job),
        landing_layout=parse_landing_layout(job.get("landing_layout")),
        hooks=parse_hooks(job),
        spark=parse_spark(job),
        s3=parse_s3(job),
        parsing=parse_parsing(job),
        backfill=parse_backfill(job),
        concurrency=parse_concurrency(job),
        privacy=parse_privacy(job),
        quality=parse_quality(job),
        export=parse_export(job, tables),
        storage_options=_text_mapping("storage_options", job.get("storage_options")),
        profile=str(profile) if profile else None,
    )
