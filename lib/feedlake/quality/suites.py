"""Quality suites declared as data: ``conf/quality/<table>.yaml`` → Great Expectations suites.

Issue #5: every table has two suites, each expectation tagged ``critical`` or ``warning``
(Great Expectations 1.x carries the tag natively as the expectation's ``severity``):

* ``<table>.gate``: the batch gate before MERGE, run on one tenant's deduplicated batch
  of one stream (the rows with ``_rank == 1``). Declared under ``batch:``.
* ``<table>.table``: the checks after MERGE, on the stored rows of the tenants in scope.
  Declared under ``table:``, plus three built-in checks that need feedlake's knowledge
  of the table (``conf/quality/defaults.yaml`` sets them for every table of tables.yaml):

  - ``primary_key_unique``: ``expect_compound_columns_to_be_unique`` over the merge key;
  - ``references``: a column whose every value must be a key of another table of the
    same tenant (events whose contact is unknown). The frame gets the text
    ``tenant/value`` and, beside it, the same text where the referenced table has it
    (else null); ``expect_column_pair_values_to_be_equal`` then flags unknown values.
    Tenant-qualified, one validation covers all tenants without one tenant's keys
    matching another's; and unlike a ``value_set`` parameter, the referenced keys are
    not copied into every validation result and Data Docs page;
  - ``row_count_never_shrinks``: per tenant, compared with the previous quality run.

This module only reads conf into plain specs and turns specs into GX objects; running
them is :mod:`feedlake.quality.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from feedlake.settings.config import ConfigError, FeedlakeConfig, TableSpec, read_yaml

SEVERITIES = ("critical", "warning")
OFF = "off"
GATE = "gate"
TABLE = "table"
TENANT_SEPARATOR = "/"
# Keys of an expectation entry that are not arguments of the GX expectation.
_ENTRY_KEYS = ("expect", "severity")
# Arguments that name the columns an expectation reads (what a validation must load).
_COLUMN_ARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_ARGS = ("column_list",)


@dataclass(frozen=True)
class ExpectationSpec:
    """One declared expectation: a GX expectation type, its arguments and a severity."""

    type: str
    kwargs: Mapping[str, Any]
    severity: str

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the expectation reads, in declaration order.

        >>> ExpectationSpec("expect_compound_columns_to_be_unique", {"column_list": ["tenant_id", "k"]}, "critical").columns
        ('tenant_id', 'k')
        """
        names: list[str] = []
        for arg in _COLUMN_ARGS:
            if arg in self.kwargs:
                names.append(str(self.kwargs[arg]))
        for arg in _COLUMN_LIST_ARGS:
            names.extend(str(c) for c in self.kwargs.get(arg) or ())
        return tuple(names)

    @property
    def label(self) -> str:
        """A readable name: the type and the columns it reads.

        >>> ExpectationSpec("expect_column_values_to_not_be_null", {"column": "email"}, "critical").label
        'expect_column_values_to_not_be_null(email)'
        """
        return f"{self.type}({', '.join(self.columns)})"


@dataclass(frozen=True)
class ReferenceSpec:
    """``column`` of this table must be a ``key`` of ``table`` for the same tenant."""

    column: str
    table: str
    key: str
    severity: str

    @property
    def frame_column(self) -> str:
        """The tenant-qualified column the check reads (``tenant_id/contact_key``)."""
        return f"tenant_id{TENANT_SEPARATOR}{self.column}"

    @property
    def known_column(self) -> str:
        """The column holding :attr:`frame_column` where ``table`` has that key, else null."""
        return f"{self.table}:tenant_id{TENANT_SEPARATOR}{self.key}"

    def expectation(self) -> ExpectationSpec:
        # A null reference is not a dangling one: both columns are null then, and skipped.
        return ExpectationSpec(
            "expect_column_pair_values_to_be_equal",
            {"column_A": self.frame_column, "column_B": self.known_column, "ignore_row_if": "both_values_are_missing"},
            self.severity,
        )


@dataclass(frozen=True)
class TableQuality:
    """Both suites of one table, as declared."""

    table: TableSpec
    gate: tuple[ExpectationSpec, ...] = ()
    checks: tuple[ExpectationSpec, ...] = ()
    references: tuple[ReferenceSpec, ...] = ()
    primary_key_unique: str | None = None
    row_count_never_shrinks: str | None = None

    @property
    def table_expectations(self) -> tuple[ExpectationSpec, ...]:
        """Everything the ``<table>.table`` suite holds, built-in checks first."""
        built_in = []
        if self.primary_key_unique:
            built_in.append(
                ExpectationSpec("expect_compound_columns_to_be_unique", {"column_list": list(self.table.key)},
                                self.primary_key_unique)
            )
        return tuple(built_in) + self.checks + tuple(r.expectation() for r in self.references)

    @property
    def table_columns(self) -> tuple[str, ...]:
        """Stored columns the table checks read (the only ones loaded)."""
        wanted = ["tenant_id"]
        if self.primary_key_unique:
            wanted.extend(self.table.key)
        for e in self.checks:
            wanted.extend(e.columns)
        wanted.extend(r.column for r in self.references)
        return tuple(dict.fromkeys(wanted))

    @property
    def gate_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(["tenant_id", *(c for e in self.gate for c in e.columns)]))


@dataclass(frozen=True)
class QualityConfig:
    """The quality suites of every declared table (built once by :func:`load_quality`)."""

    tables: Mapping[str, TableQuality] = field(default_factory=dict)

    def gated(self, table: str) -> TableQuality | None:
        """The table's quality when it has a batch gate, else ``None``."""
        quality = self.tables.get(table)
        return quality if quality is not None and quality.gate else None

    def checked(self, names: Sequence[str] | None = None) -> list[TableQuality]:
        """Tables with table checks (all, or the ``names`` asked for), in name order."""
        unknown = sorted(set(names or ()) - set(self.tables))
        if unknown:
            raise ConfigError(f"unknown table(s) {unknown}; declared: {sorted(self.tables)}")
        chosen = sorted(names) if names else sorted(self.tables)
        return [q for n in chosen if (q := self.tables[n]).table_expectations or q.row_count_never_shrinks]


def _severity(value: Any, where: str, allow_off: bool = False) -> str | None:
    # YAML 1.1 reads a bare `off` as false.
    if allow_off and (value is False or value == OFF or value is None):
        return None
    if value not in SEVERITIES:
        allowed = SEVERITIES + ((OFF,) if allow_off else ())
        raise ConfigError(f"{where}: severity {value!r} not in {allowed}")
    return str(value)


def parse_expectations(entries: Any, where: str) -> tuple[ExpectationSpec, ...]:
    """``[{expect: type, severity: ..., **arguments}, ...]`` → specs.

    >>> parse_expectations([{"expect": "expect_column_values_to_not_be_null", "column": "k", "severity": "warning"}], "t")
    (ExpectationSpec(type='expect_column_values_to_not_be_null', kwargs={'column': 'k'}, severity='warning'),)
    """
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of expectations")
    specs = []
    for i, entry in enumerate(entries, start=1):
        at = f"{where} entry {i}"
        if not isinstance(entry, Mapping) or not str(entry.get("expect", "")).startswith("expect_"):
            raise ConfigError(f"{at}: expected a mapping with `expect: expect_...` (a Great Expectations type)")
        kwargs = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
        specs.append(ExpectationSpec(str(entry["expect"]), kwargs, _severity(entry.get("severity"), at)))
    return tuple(specs)


def parse_table_quality(
    table: TableSpec, raw: Mapping[str, Any], defaults: Mapping[str, Any], tables: Mapping[str, TableSpec], where: str
) -> TableQuality:
    """One table's quality/<table>.yaml (over defaults.yaml) → :class:`TableQuality`."""
    known = {"batch", "table", "references", "primary_key_unique", "row_count_never_shrinks"}
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"{where}: unknown keys {extra} (known: {sorted(known)})")
    by_policy = (defaults.get("by_policy") or {}).get(table.policy) or {}
    merged = {**{k: v for k, v in defaults.items() if k != "by_policy"}, **by_policy, **raw}
    refs = []
    for i, r in enumerate(raw.get("references") or [], start=1):
        at = f"{where} references entry {i}"
        if not isinstance(r, Mapping) or "column" not in r or "table" not in r:
            raise ConfigError(f"{at}: expected {{column: ..., table: ..., severity: ...}}")
        target = tables.get(str(r["table"]))
        key = str(r.get("key", r["column"]))
        if target is None or key not in target.column_names:
            raise ConfigError(f"{at}: {r['table']}.{key} is not a declared table column")
        refs.append(ReferenceSpec(str(r["column"]), target.name, key, _severity(r.get("severity"), at)))
    quality = TableQuality(
        table=table,
        gate=parse_expectations(raw.get("batch"), f"{where} batch"),
        checks=parse_expectations(raw.get("table"), f"{where} table"),
        references=tuple(refs),
        primary_key_unique=_severity(merged.get("primary_key_unique"), f"{where} primary_key_unique", allow_off=True),
        row_count_never_shrinks=_severity(
            merged.get("row_count_never_shrinks"), f"{where} row_count_never_shrinks", allow_off=True
        ),
    )
    for suite, specs in ((GATE, quality.gate), (TABLE, quality.table_expectations)):
        labels = [e.label for e in specs]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ConfigError(f"{where}: the {suite} suite repeats {repeated}; each expectation must read distinct columns")
    declared = set(table.column_names)
    for e in (*quality.gate, *quality.checks):
        missing = [c for c in e.columns if c not in declared]
        if missing:
            raise ConfigError(f"{where}: {e.label} reads columns {missing} that {table.name} does not declare")
    return quality


def build_quality(raw: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any], config: FeedlakeConfig) -> QualityConfig:
    """Quality of every table of ``config`` from plain mappings (table name → yaml content)."""
    unknown = sorted(set(raw) - set(config.tables))
    if unknown:
        raise ConfigError(f"conf/quality: files for undeclared tables {unknown} (tables.yaml declares {sorted(config.tables)})")
    return QualityConfig({
        name: parse_table_quality(table, raw.get(name) or {}, defaults, config.tables, f"quality/{name}.yaml")
        for name, table in config.tables.items()
    })


def load_quality(conf_dir: str | Path | None, config: FeedlakeConfig) -> QualityConfig:
    """Read ``conf_dir/quality/*.yaml`` (default: the packaged conf)."""
    base = (Path(conf_dir) if conf_dir else resources.files("feedlake.conf")) / "quality"
    raw: dict[str, Mapping[str, Any]] = {}
    defaults: Mapping[str, Any] = {}
    if base.is_dir():
        for entry in sorted(base.iterdir(), key=lambda p: p.name):
            if not entry.name.endswith(".yaml"):
                continue
            data = read_yaml(entry, f"quality/{entry.name}")
            if entry.name == "defaults.yaml":
                defaults = data
            else:
                raw[entry.name.removesuffix(".yaml")] = data
    return build_quality(raw, defaults, config)


def gx_expectation(spec: ExpectationSpec):
    """The Great Expectations 1.x expectation object of a spec (severity carried natively)."""
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        cls = get_expectation_impl(spec.type)
    except Exception as exc:  # GX raises its own ExpectationNotFoundError
        raise ConfigError(f"{spec.label}: not a Great Expectations expectation type ({exc})") from None
    try:
        return cls(**spec.kwargs, severity=spec.severity, meta={"feedlake_label": spec.label})
    except Exception as exc:  # pydantic ValidationError: wrong or missing arguments
        raise ConfigError(f"{spec.label}: invalid arguments {dict(spec.kwargs)}: {exc}") from None


def gx_suite(name: str, specs: Sequence[ExpectationSpec]):
    """A GX ExpectationSuite named ``name`` holding ``specs`` in order."""
    import great_expectations as gx

    return gx.ExpectationSuite(name=name, expectations=[gx_expectation(s) for s in specs])
