"""conf/quality → suite specs → Great Expectations objects (no Spark needed)."""

from __future__ import annotations

import pytest

from feedlake.quality.suites import build_quality, gx_expectation, gx_suite, load_quality
from feedlake.settings.config import ConfigError, build_config

TABLES = {
    "contacts": {"key": ["tenant_id", "contact_key"], "policy": "attribute",
                 "columns": {"tenant_id": "string", "contact_key": "string", "email": "string"}},
    "contact_events": {"key": ["tenant_id", "event_key"], "policy": "row",
                       "columns": {"tenant_id": "string", "event_key": "string", "contact_key": "string"}},
    "ingest_files": {"key": ["tenant_id", "source_file"], "policy": "replace",
                     "columns": {"tenant_id": "string", "source_file": "string"}},
}
STREAMS = {"identify": {"mapper": "contact_profile", "targets": ["contacts"]}}
DEFAULTS = {"primary_key_unique": "critical", "row_count_never_shrinks": "critical",
            "by_policy": {"replace": {"row_count_never_shrinks": "warning"}}}


@pytest.fixture
def config():
    return build_config(STREAMS, TABLES)


def test_defaults_apply_to_every_table_with_policy_overrides(config):
    quality = build_quality({}, DEFAULTS, config)
    assert [q.table.name for q in quality.checked()] == ["contact_events", "contacts", "ingest_files"]
    assert quality.tables["contacts"].row_count_never_shrinks == "critical"
    assert quality.tables["ingest_files"].row_count_never_shrinks == "warning"
    assert [e.label for e in quality.tables["contacts"].table_expectations] == [
        "expect_compound_columns_to_be_unique(tenant_id, contact_key)"
    ]
    assert quality.gated("contacts") is None


def test_table_file_declares_gate_checks_references_and_switches_off(config):
    raw = {
        "contacts": {"batch": [{"expect": "expect_column_values_to_match_regex", "column": "email", "regex": "@",
                                "severity": "warning"}]},
        "contact_events": {"references": [{"column": "contact_key", "table": "contacts", "severity": "warning"}],
                           "row_count_never_shrinks": False},
    }
    quality = build_quality(raw, DEFAULTS, config)
    gate = quality.gated("contacts").gate
    assert [(e.label, e.severity, dict(e.kwargs)) for e in gate] == [
        ("expect_column_values_to_match_regex(email)", "warning", {"column": "email", "regex": "@"})
    ]
    assert quality.tables["contacts"].gate_columns == ("tenant_id", "email")
    events = quality.tables["contact_events"]
    assert events.row_count_never_shrinks is None
    assert events.table_columns == ("tenant_id", "event_key", "contact_key")
    ref = events.table_expectations[-1]
    assert (ref.type, dict(ref.kwargs)) == (
        "expect_column_pair_values_to_be_equal",
        {"column_A": "tenant_id/contact_key", "column_B": "contacts:tenant_id/contact_key",
         "ignore_row_if": "both_values_are_missing"},
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nope": {}}, "undeclared tables ['nope']"),
        ({"contacts": {"batch": [{"expect": "expect_column_values_to_not_be_null", "column": "email"}]}},
         "severity None not in ('critical', 'warning')"),
        ({"contacts": {"batch": [{"column": "email", "severity": "critical"}]}}, "expect: expect_"),
        ({"contacts": {"batch": [{"expect": "expect_column_values_to_not_be_null", "column": "phone",
                                  "severity": "critical"}]}}, "reads columns ['phone']"),
        ({"contacts": {"checks": []}}, "unknown keys ['checks']"),
        ({"contact_events": {"references": [{"column": "contact_key", "table": "accounts", "severity": "warning"}]}},
         "accounts.contact_key is not a declared table column"),
        ({"contacts": {"batch": [{"expect": "expect_column_values_to_not_be_null", "column": "email", "severity": s}
                                 for s in ("critical", "warning")]}}, "repeats"),
        ({"contacts": {"primary_key_unique": "fatal"}}, "severity 'fatal'"),
    ],
)
def test_bad_quality_conf_is_a_clear_config_error(config, raw, message):
    with pytest.raises(ConfigError) as err:
        build_quality(raw, DEFAULTS, config)
    assert message in str(err.value)


def test_severity_is_carried_by_the_gx_expectation(config):
    quality = build_quality(
        {"contacts": {"batch": [{"expect": "expect_column_values_to_not_be_null", "column": "email", "severity": "warning"}]}},
        DEFAULTS, config,
    )
    suite = gx_suite("contacts.gate", quality.gated("contacts").gate)
    (expectation,) = suite.expectations
    assert (expectation.expectation_type, expectation.column, expectation.severity.value) == (
        "expect_column_values_to_not_be_null", "email", "warning")
    assert expectation.meta == {"feedlake_label": "expect_column_values_to_not_be_null(email)"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"expect": "expect_column_to_be_purple", "column": "email"}, "not a Great Expectations expectation type"),
        ({"expect": "expect_column_values_to_be_between", "column": "email", "min_value": "x", "max_value": [1]},
         "invalid arguments"),
    ],
)
def test_unknown_or_invalid_gx_expectation_is_a_config_error(config, entry, message):
    quality = build_quality({"contacts": {"batch": [{**entry, "severity": "critical"}]}}, DEFAULTS, config)
    with pytest.raises(ConfigError) as err:
        gx_expectation(quality.gated("contacts").gate[0])
    assert message in str(err.value)


def test_packaged_conf_builds_every_suite():
    from feedlake.settings.config import load_config

    config = load_config(None, {"engine": "delta-rs"})
    quality = load_quality(None, config)
    assert quality.gated("contact_events") is not None
    for table in quality.tables.values():
        for name, specs in (("gate", table.gate), ("table", table.table_expectations)):
            assert len(gx_suite(f"{table.table.name}.{name}", specs).expectations) == len(specs)
