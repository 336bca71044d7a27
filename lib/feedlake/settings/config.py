"""Configuration: parsed once at the entry point, then passed around as plain data.

Stream contracts (``streams.yaml``), table definitions (``tables.yaml``) and job
settings (``ingest.yaml``) live in ``conf/``; the same files are installed as the
package ``feedlake.conf`` so a wheel shipped to a cluster carries its defaults.
Job settings are typed and checked when the config is built
(:class:`~feedlake.settings.job.JobSettings`, ``config.settings``).
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from feedlake.settings.errors import ConfigError
from feedlake.settings.job import JobSettings, parse_job_settings

log = logging.getLogger("feedlake.settings.config")

FIELD_TYPES = ("string", "unix_seconds", "number", "boolean", "date", "timestamp", "object")
PRECEDENCES = ("first", "last")
POLICIES = ("row", "attribute", "replace")
SUBJECT_KINDS = ("email", "contact_key", "raw")


# The tenant id of rows about all tenants at once (quality_results of table checks).
ALL_TENANTS = "*"


@dataclass(frozen=True)
class FieldSpec:
    """One declared attribute of a stream."""

    name: str
    type: str = "string"
    required: bool = False


@dataclass(frozen=True)
class StreamSpec:
    """The contract of one landing stream (see conf/streams.yaml)."""

    name: str
    mapper: str
    targets: tuple[str, ...]
    precedence: str
    fields: tuple[FieldSpec, ...]
    derive: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    spec: str = ""
    # Stream-specific rules its mapper and hooks read (``options:`` or ``options_file:``).
    options: Mapping[str, Any] = field(default_factory=dict)
    # Tables the mapper reads as stored before this stream's MERGE (e.g. entity_map):
    # passed to it as a third argument; the streams writing them are processed first.
    reads: tuple[str, ...] = ()
    # The TableSpec of each target, attached by build_config (mappers read profiles).
    tables: Mapping[str, TableSpec] = field(default_factory=dict)
    # The target whose key decides which records of a batch are duplicates (``primary:``,
    # see conf/streams.yaml and feedlake.ingest.stages.record_outcomes); set by parse_streams.
    primary: str = ""

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def primary_table(self) -> str:
        """The declared ``primary`` target (a spec built without one: its only, or first, target)."""
        return self.primary or self.targets[0]


@dataclass(frozen=True)
class TableSpec:
    """A Delta table: columns in order, merge key and merge policy (conf/tables.yaml)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    policy: str
    attributes: tuple[str, ...] = ()
    # column -> property names (first non-null wins): typed columns read from the
    # resolved ``properties`` of an attribute table (seed 004 profile fields).
    profile: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # ``module:function`` adding columns derived after resolution (e.g. lifecycle_stage).
    derive: str = ""
    # Delta table properties set when the table is created or migrated by either engine
    # (e.g. ``delta.enableChangeDataFeed``, ``delta.dataSkippingStatsColumns``).
    properties: Mapping[str, str] = field(default_factory=dict)
    # Which columns identify a person (issue 15, erasure requests; feedlake.erasure.forget):
    # kind -> columns, kinds ``email`` (matched lower-cased and trimmed), ``contact_key``
    # (exact) and ``raw`` (verbatim records searched for any identifier as a whole token).
    subject: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def ddl(self) -> str:
        return ", ".join(f"`{name}` {dtype}" for name, dtype in self.columns)


@dataclass(frozen=True)
class FeedlakeConfig:
    """Everything a run needs to know, built once by :func:`load_config`.

    ``job`` is the merged ingest.yaml mapping as read; ``settings`` its typed, checked
    form (:class:`~feedlake.settings.job.JobSettings`), built from ``job`` and the tables
    whenever a config is made, so a bad setting fails here, never half-way through a run
    (``dataclasses.replace(config, job=...)`` builds the settings of the new mapping).
    """

    streams: Mapping[str, StreamSpec]
    tables: Mapping[str, TableSpec]
    job: Mapping[str, Any]
    settings: JobSettings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", parse_job_settings(self.job, self.tables))

    def stream(self, name: str) -> StreamSpec:
        return self.streams[name]

    def table(self, name: str) -> TableSpec:
        return self.tables[name]


# Conf written for feedlake 0.1 (a flat package) names objects by their old modules; they
# still load, with a warning naming the new reference (migration of issue 14's layers).
MOVED_MODULES = {
    "feedlake.mappers": "feedlake.streams.mappers",
    "feedlake.api_objects": "feedlake.streams.api_objects",
    "feedlake.crm": "feedlake.streams.crm",
    "feedlake.metrics": "feedlake.streams.metrics",
    "feedlake.segment": "feedlake.streams.segment",
    "feedlake.entity_map": "feedlake.streams.entity_map",
    "feedlake.profiles": "feedlake.rules.profiles",
    "feedlake.metric_rollup": "feedlake.derived.metric_rollup",
    "feedlake.activity": "feedlake.derived.activity",
    "feedlake.quality": "feedlake.quality.checks",
}
MOVED_REFS = {"feedlake.entity_map:EntityMapHook": "feedlake.derived.remaps:EntityMapHook"}


def load_object(ref: str, what: str) -> Any:
    """The object ``package.module:name`` that conf names (a mapper, a profile function, a hook).

    Raises :class:`ConfigError` naming ``what`` when the reference is malformed or the
    module or name does not exist.
    """
    module_name, sep, attr = str(ref).partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} {ref!r}: expected 'package.module:name'")
    moved = MOVED_REFS.get(f"{module_name}:{attr}") or (
        f"{MOVED_MODULES[module_name]}:{attr}" if module_name in MOVED_MODULES else None
    )
    if moved is not None:
        log.warning("%s %r: feedlake's modules moved into layers (0.2); write %r in conf", what, ref, moved)
        module_name, _, attr = moved.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {ref!r}: {exc}") from None


# libyaml's parser when PyYAML was built with it (the wheels are): the same safe
# constructor and resolver as ``yaml.safe_load``, about 7× faster on conf/ (37 → 5 ms a load).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path | resources.abc.Traversable, label: str | None = None) -> dict[str, Any]:
    """The mapping a conf YAML file holds (``{}`` when empty); ``label`` names it in the error otherwise."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}  # noqa: S506 -- a safe loader
    if not isinstance(data, dict):
        raise ConfigError(f"{label or path}: expected a mapping at the top level")
    return data


def default_conf_dir() -> resources.abc.Traversable:
    """The conf/ folder installed with the package."""
    return resources.files("feedlake.conf")


def parse_streams(raw: Mapping[str, Any]) -> dict[str, StreamSpec]:
    """Build stream contracts from the mapping found in streams.yaml."""
    streams: dict[str, StreamSpec] = {}
    for name, body in raw.items():
        if not isinstance(body, Mapping):
            raise ConfigError(f"stream {name!r}: expected a mapping")
        fields = []
        for fname, fbody in (body.get("fields") or {}).items():
            fbody = fbody or {}
            ftype = fbody.get("type", "string")
            if ftype not in FIELD_TYPES:
                raise ConfigError(f"stream {name!r} field {fname!r}: type {ftype!r} not in {FIELD_TYPES}")
            fields.append(FieldSpec(fname, ftype, bool(fbody.get("required", False))))
        precedence = body.get("precedence", "last")
        if precedence not in PRECEDENCES:
            raise ConfigError(f"stream {name!r}: precedence {precedence!r} not in {PRECEDENCES}")
        targets = tuple(body.get("targets") or ())
        if not targets or "mapper" not in body:
            raise ConfigError(f"stream {name!r}: 'mapper' and 'targets' are required")
        primary = _parse_primary(name, body.get("primary"), targets)
        streams[name] = StreamSpec(
            name=name,
            mapper=body["mapper"],
            targets=targets,
            precedence=precedence,
            fields=tuple(fields),
            derive=dict(body.get("derive") or {}),
            spec=str(body.get("spec", "")),
            options=dict(body.get("options") or {}),
            reads=tuple(body.get("reads") or ()),
            primary=primary,
        )
    return streams


def _parse_primary(stream: str, declared: Any, targets: tuple[str, ...]) -> str:
    """A stream's ``primary:`` table: one of its targets; a single target is its own primary.

    Conf written before ``primary:`` existed (several targets, none declared) keeps
    working with the first target, as then, and a warning asking to declare it.
    """
    if declared is not None:
        if declared not in targets:
            raise ConfigError(f"stream {stream!r}: primary {declared!r} must be one of its targets {list(targets)}")
        return str(declared)
    if len(targets) > 1:
        log.warning(
            "stream %r: %d targets %s and no 'primary:'; using the first, %r, as before. "
            "Declare 'primary: <table>' for the stream in streams.yaml",
            stream, len(targets), list(targets), targets[0],
        )
    return targets[0]


def parse_tables(raw: Mapping[str, Any]) -> dict[str, TableSpec]:
    """Build table definitions from the mapping found in tables.yaml."""
    tables: dict[str, TableSpec] = {}
    for name, body in raw.items():
        columns = tuple((str(c), str(t)) for c, t in (body.get("columns") or {}).items())
        key = tuple(body.get("key") or ())
        policy = body.get("policy", "row")
        if policy not in POLICIES:
            raise ConfigError(f"table {name!r}: policy {policy!r} not in {POLICIES}")
        names = {c for c, _ in columns}
        missing = [k for k in key if k not in names]
        if not key or missing or "tenant_id" not in key:
            raise ConfigError(f"table {name!r}: key {key} must include tenant_id and name declared columns")
        profile = {str(c): tuple(props) for c, props in (body.get("profile") or {}).items()}
        if any(c not in names for c in profile):
            raise ConfigError(f"table {name!r}: profile columns {sorted(profile)} must be declared columns")
        properties = {str(k): _property_text(v) for k, v in (body.get("properties") or {}).items()}
        if any(not k.startswith("delta.") for k in properties):
            raise ConfigError(f"table {name!r}: properties {sorted(properties)} must be Delta table properties (delta.*)")
        subject = _parse_subject(name, body.get("subject"), names)
        tables[name] = TableSpec(
            name, columns, key, policy, tuple(body.get("attributes") or ()), profile, str(body.get("derive", "")),
            properties, subject,
        )
    return tables


def _parse_subject(table: str, raw: Any, columns: set[str]) -> dict[str, tuple[str, ...]]:
    """A table's ``subject:`` declaration (kind -> declared columns), checked (issue 15)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"table {table!r}: subject must map {list(SUBJECT_KINDS)} to column lists")
    subject: dict[str, tuple[str, ...]] = {}
    for kind, cols in raw.items():
        listed = (cols,) if isinstance(cols, str) else tuple(str(c) for c in (cols or ()))
        if kind not in SUBJECT_KINDS or not listed or any(c not in columns for c in listed):
            raise ConfigError(
                f"table {table!r}: subject {kind!r}: {list(listed)} must be declared columns of a kind in {list(SUBJECT_KINDS)}"
            )
        subject[str(kind)] = listed
    return subject


def _property_text(value: Any) -> str:
    """A table property value as Delta stores it (``true``/``false`` in lower case, lists comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def build_config(
    streams: Mapping[str, Any],
    tables: Mapping[str, Any],
    job: Mapping[str, Any] | None = None,
) -> FeedlakeConfig:
    """Build a config from plain mappings (what tests pass in)."""
    stream_specs = parse_streams(streams)
    table_specs = parse_tables(tables)
    for s in stream_specs.values():
        unknown = [t for t in (*s.targets, *s.reads) if t not in table_specs]
        if unknown:
            raise ConfigError(f"stream {s.name!r}: unknown target tables {unknown}")
    stream_specs = {n: replace(s, tables={t: table_specs[t] for t in s.targets}) for n, s in stream_specs.items()}
    return FeedlakeConfig(stream_specs, table_specs, dict(job or {}))


def load_config(
    conf_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> FeedlakeConfig:
    """Read streams.yaml, tables.yaml and ingest.yaml from ``conf_dir`` (default: packaged).

    ``overrides`` is deep-merged over ingest.yaml (e.g. ``{"engine": "delta-rs"}``).
    """
    base = Path(conf_dir) if conf_dir else default_conf_dir()
    job = read_yaml(base / "ingest.yaml")
    profile = (overrides or {}).get("profile") or job.get("profile")
    if profile:
        profile_file = base / "profiles" / f"{profile}.yaml"
        if not profile_file.is_file():
            raise ConfigError(f"unknown profile {profile!r}: no {profile_file}")
        job = _deep_merge(job, read_yaml(profile_file))
    job = _deep_merge(job, overrides or {})
    streams = read_yaml(base / "streams.yaml")
    for name, body in streams.items():
        # A stream with per-tenant rules keeps them in their own file (e.g. conf/metrics.yaml).
        if isinstance(body, Mapping) and body.get("options_file"):
            streams[name] = {**body, "options": read_yaml(base / str(body["options_file"]))}
    return build_config(streams, read_yaml(base / "tables.yaml"), job)


# Job settings whose keys are Spark's own dotted keys: ``--set spark.conf.spark.sql.x=1`` names ``spark.sql.x``.
SPARK_KEY_MAPPINGS = ("spark.conf", "spark.session_conf", "spark.small_batch.session_conf")


def parse_set_option(items: list[str] | None) -> dict[str, Any]:
    """Turn ``--set a.b=c`` options into a nested mapping (values parsed as YAML scalars).

    Under :data:`SPARK_KEY_MAPPINGS` the rest of the name is one Spark key, dots and all.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        dotted, value = item.split("=", 1)
        node = out
        # Spark settings are dotted themselves: after a mapping of Spark keys, the rest is one key.
        mapping = next((m for m in SPARK_KEY_MAPPINGS if dotted.startswith(m + ".") and len(dotted) > len(m) + 1), None)
        parts = [*mapping.split("."), dotted[len(mapping) + 1 :]] if mapping else dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.load(value, Loader=_SAFE_LOADER)  # noqa: S506 -- a safe loader
    return out
