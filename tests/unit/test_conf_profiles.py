"""Conf profiles (conf/profiles/<name>.yaml) and how the session honours them (issue #6)."""

from __future__ import annotations

import pytest

from feedlake.settings.config import ConfigError, load_config
from feedlake.settings.session import launched_by_spark_submit, prepare_session, sql_conf_overlay


@pytest.mark.parametrize(
    ("profile", "engine", "master", "read_mode"),
    [
        ("local", "delta-rs", "local[2]", "spool"),
        ("emr", "delta-spark", None, "direct"),
        ("databricks", "delta-spark", None, "direct"),
    ],
)
def test_profile_selects_engine_master_and_s3_access(profile, engine, master, read_mode):
    job = load_config(None, {"profile": profile}).job
    assert (job["engine"], job["spark"]["master"], job["s3"]["read_mode"]) == (engine, master, read_mode)
    # Everything the profile does not set still comes from ingest.yaml.
    assert job["spark"]["app_name"] == "feedlake-ingest" and job["backfill"]["chunk_files"] >= 1


def test_cluster_profiles_size_shuffles_for_a_cluster():
    emr = load_config(None, {"profile": "emr"}).job["spark"]
    databricks = load_config(None, {"profile": "databricks"}).job["spark"]
    assert emr["conf"]["spark.sql.shuffle.partitions"] == "200"
    # Databricks' predefined session cannot take spark.conf: the profile uses session_conf.
    assert databricks["session_conf"]["spark.sql.shuffle.partitions"] == "200"


def test_unknown_profile_is_a_configuration_error():
    with pytest.raises(ConfigError, match="unknown profile 'yarn'"):
        load_config(None, {"profile": "yarn"})


def test_session_conf_is_applied_to_a_session_feedlake_did_not_build(spark):
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        prepare_session(spark, {"spark.sql.shuffle.partitions": "7"})
        assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
        assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)


def test_a_conf_overlay_gives_the_session_its_own_values_back_however_the_block_ends(spark):
    unset, preset = "spark.feedlake.test.overlay_unset", "spark.feedlake.test.overlay_preset"
    spark.conf.set(preset, "mine")
    try:
        with pytest.raises(RuntimeError, match="the run failed"), sql_conf_overlay(spark, {unset: "on", preset: "on"}):
            assert (spark.conf.get(unset), spark.conf.get(preset)) == ("on", "on")
            raise RuntimeError("the run failed")
        assert (spark.conf.get(unset, None), spark.conf.get(preset)) == (None, "mine")
        with sql_conf_overlay(spark, {}):
            assert spark.conf.get(preset) == "mine"
    finally:
        spark.conf.unset(preset)


@pytest.mark.parametrize(("env", "expected"), [({"PYSPARK_GATEWAY_PORT": "41234"}, True), ({}, False)])
def test_spark_submit_is_recognised_by_its_gateway(monkeypatch, env, expected):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launched_by_spark_submit() is expected
