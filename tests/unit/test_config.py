import logging
import shutil
from importlib import resources

import pytest

from feedlake.derived.moments import load_moments
from feedlake.derived.remaps import EntityMapHook
from feedlake.quality.checks import QualityGate
from feedlake.quality.suites import load_quality
from feedlake.settings.config import ConfigError, build_config, load_config, load_object, parse_set_option
from feedlake.streams.segment import segment_rows


def test_packaged_config_declares_seed_000_streams():
    config = load_config()
    assert set(config.streams) >= {"identify", "track", "group"}
    assert config.stream("track").required == ("event_text", "event_timestamp", "contact_key")
    assert config.stream("group").targets == ("contact_accounts", "accounts")
    assert config.table("contact_events").key == ("tenant_id", "contact_key", "event_text", "event_timestamp")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["engine=delta-rs"], {"engine": "delta-rs"}),
        (["spark.conf.spark.sql.shuffle.partitions=8"], {"spark": {"conf": {"spark.sql.shuffle.partitions": 8}}}),
        (["spark.master=local[1]"], {"spark": {"master": "local[1]"}}),
        (
            ["spark.small_batch.session_conf.spark.sql.adaptive.enabled=true", "spark.small_batch.max_bytes=0"],
            {"spark": {"small_batch": {"session_conf": {"spark.sql.adaptive.enabled": True}, "max_bytes": 0}}},
        ),
        (["spark.session_conf.spark.sql.ansi.enabled=false"], {"spark": {"session_conf": {"spark.sql.ansi.enabled": False}}}),
        (["spark.conf=x"], {"spark": {"conf": "x"}}),  # the mapping itself: left to the settings' validation
    ],
)
def test_set_options_nest_but_keep_spark_keys_whole(items, expected):
    assert parse_set_option(items) == expected


def test_set_option_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_option(["engine"])


@pytest.mark.parametrize(
    ("streams", "tables", "message"),
    [
        ({"s": {"mapper": "m", "targets": ["nope"], "fields": {}}}, {}, "unknown target tables"),
        ({"s": {"mapper": "m", "targets": ["t"], "fields": {"a": {"type": "float"}}}}, {"t": {"key": ["tenant_id"], "columns": {"tenant_id": "string"}}}, "type 'float'"),
        ({}, {"t": {"key": ["id"], "columns": {"id": "string"}}}, "must include tenant_id"),
        ({}, {"t": {"key": ["tenant_id"], "policy": "upsert", "columns": {"tenant_id": "string"}}}, "policy 'upsert'"),
    ],
)
def test_invalid_declarations_name_the_problem(streams, tables, message):
    with pytest.raises(ConfigError, match=message):
        build_config(streams, tables)


def test_overrides_and_unknown_profile(tmp_path):
    assert load_config(None, {"engine": "delta-spark"}).job["engine"] == "delta-spark"
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config(None, {"profile": "nope"})


@pytest.mark.parametrize(
    ("file", "load", "named"),
    [
        ("streams.yaml", load_config, "streams.yaml"),
        ("quality/contacts.yaml", lambda conf: load_quality(conf, load_config(None)), "quality/contacts.yaml"),
        ("moments.yaml", lambda conf: load_moments(conf, load_config(None)), "moments.yaml"),
    ],
)
@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_a_conf_file_that_is_not_a_mapping_names_itself(tmp_path, file, load, named, text):
    """Every conf YAML file holds a mapping: a list or a scalar is refused with the file's name, and an
    empty file is an empty mapping."""
    conf = tmp_path / "conf"
    shutil.copytree(str(resources.files("feedlake.conf")), conf)
    (conf / file).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{named}: expected a mapping at the top level"):
        load(conf)
    (conf / file).write_text("", encoding="utf-8")
    if file != "streams.yaml":  # no stream at all is a conf error of its own
        load(conf)


@pytest.mark.parametrize(
    ("old", "new", "obj"),
    [
        ("feedlake.segment:segment_rows", "feedlake.streams.segment:segment_rows", segment_rows),
        ("feedlake.entity_map:EntityMapHook", "feedlake.derived.remaps:EntityMapHook", EntityMapHook),
        ("feedlake.quality:QualityGate", "feedlake.quality.checks:QualityGate", QualityGate),
    ],
)
def test_a_conf_reference_of_the_flat_package_still_loads_with_a_warning(old, new, obj, caplog):
    """Conf written for feedlake 0.1 keeps working after the layers moved the modules (issue 14 migration)."""
    with caplog.at_level(logging.WARNING, logger="feedlake.settings.config"):
        assert load_object(old, "mapper") is obj
    assert [r.getMessage() for r in caplog.records] == [
        f"mapper {old!r}: feedlake's modules moved into layers (0.2); write {new!r} in conf"
    ]


PRIMARY_TABLES = {
    "a": {"key": ["tenant_id"], "columns": {"tenant_id": "string"}},
    "b": {"key": ["tenant_id"], "columns": {"tenant_id": "string"}},
}


def test_the_packaged_streams_declare_their_primary_table(caplog):
    with caplog.at_level(logging.WARNING, logger="feedlake.settings.config"):
        config = load_config()
    assert "primary" not in caplog.text  # every stream with several targets declares it
    assert config.stream("group").primary_table == "contact_accounts"
    assert config.stream("segment").primary_table == "segment_messages"
    assert config.stream("metrics").primary_table == "metric_records"
    assert config.stream("identify").primary_table == "contacts"  # a single target is its own primary


def test_a_declared_primary_table_need_not_be_the_first_target(caplog):
    with caplog.at_level(logging.WARNING, logger="feedlake.settings.config"):
        config = build_config({"s": {"mapper": "m", "targets": ["a", "b"], "primary": "b"}}, PRIMARY_TABLES)
    assert config.stream("s").primary_table == "b" and caplog.text == ""


def test_a_single_target_is_the_primary_table(caplog):
    with caplog.at_level(logging.WARNING, logger="feedlake.settings.config"):
        config = build_config({"s": {"mapper": "m", "targets": ["b"]}}, PRIMARY_TABLES)
    assert config.stream("s").primary_table == "b" and caplog.text == ""


@pytest.mark.parametrize("primary", ["c", ["a"], ""])
def test_the_primary_table_must_be_a_target(primary):
    with pytest.raises(ConfigError, match=r"stream 's': primary .* must be one of its targets \['a', 'b'\]"):
        build_config({"s": {"mapper": "m", "targets": ["a", "b"], "primary": primary}}, PRIMARY_TABLES)


def test_several_targets_without_primary_still_load_with_a_warning(caplog):
    """Conf written before ``primary:`` existed: the first target, as before, and a warning asking to declare it."""
    with caplog.at_level(logging.WARNING, logger="feedlake.settings.config"):
        config = build_config({"s": {"mapper": "m", "targets": ["a", "b"]}}, PRIMARY_TABLES)
    assert config.stream("s").primary_table == "a"
    assert [r.getMessage() for r in caplog.records] == [
        "stream 's': 2 targets ['a', 'b'] and no 'primary:'; using the first, 'a', as before. "
        "Declare 'primary: <table>' for the stream in streams.yaml"
    ]
