"""Job settings (conf/ingest.yaml) are typed and checked once, when the config is built (feedlake.settings.job)."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import date

import pytest

from feedlake.app.cli import main
from feedlake.ingest.backfill import ChunkLimits as BackfillChunkLimits
from feedlake.ingest.lease import LeaseSettings as LeaseLeaseSettings
from feedlake.landing.parsing import ParseSettings as ParsingParseSettings
from feedlake.landing.storage import S3Settings as StorageS3Settings
from feedlake.settings.config import ConfigError, build_config, load_config, parse_set_option
from feedlake.settings.job import (
    DEFAULT_HOOKS,
    ChunkLimits,
    ExportSettings,
    JobSettings,
    LeaseSettings,
    ParseSettings,
    PrivacySettings,
    QualitySettings,
    S3Settings,
    SmallBatchSettings,
    SparkSettings,
    parse_job_settings,
)
from feedlake.settings.locations import docs_location, quality_root
from feedlake.settings.session import JVM_ENV_OPTIONS, wants_jvm_packages

TABLES = {
    "contacts": {"key": ["tenant_id", "contact_key"], "columns": {"tenant_id": "string", "contact_key": "string", "email": "string"}},
}


def test_the_packaged_conf_parses_to_its_documented_defaults():
    settings = load_config(None).settings
    assert settings.engine == "auto"
    assert settings.landing_layout == ("tenant_stream",)
    assert settings.hooks == DEFAULT_HOOKS
    assert settings.spark.master == "local[2]" and settings.spark.app_name == "feedlake-ingest"
    assert settings.spark.conf["spark.sql.shuffle.partitions"] == "4" and settings.spark.resolve_packages == "auto"
    assert settings.spark.small_batch.max_bytes == 1 << 20
    assert settings.spark.small_batch.session_conf == {
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
    }
    assert settings.spark.small_batch.driver_java_options == "-XX:TieredStopAtLevel=1"
    assert settings.spark.local_driver_java_options == "-XX:+UseParallelGC"
    assert settings.s3 == S3Settings()
    assert settings.backfill == ChunkLimits(files=500, bytes=2 << 30)
    assert settings.parsing == ParseSettings(max_record_bytes=16 << 20, raw_record_max_chars=65_536, spread_lines=True)
    assert settings.concurrency == LeaseSettings(wait_seconds=900, ttl_seconds=120, poll_seconds=1)
    assert settings.privacy.vacuum_retention_hours == 168
    assert settings.privacy.stream_subjects["segment"] == {"email": ("traits.email",), "contact_key": ("userId", "anonymousId")}
    assert settings.quality == QualitySettings(project_dir=None, driver_max_rows=100_000)
    assert replace(settings.export, traits={}) == ExportSettings()
    assert sorted(settings.export.traits) == ["accounts", "contacts"]
    assert settings.export.traits["contacts"]["email"] == "email"
    assert settings.storage_options == {}


def test_the_old_homes_of_the_settings_classes_still_work():
    assert (StorageS3Settings, ParsingParseSettings, BackfillChunkLimits, LeaseLeaseSettings) == (
        S3Settings, ParseSettings, ChunkLimits, LeaseSettings,
    )
    assert ChunkLimits.from_job({}) == ChunkLimits(500, 2 << 30)
    assert ChunkLimits.from_job({"backfill": {"chunk_files": 7}}) == ChunkLimits(7, 2 << 30)
    assert ParseSettings.from_job(None) == ParseSettings()
    assert LeaseSettings.from_job({"concurrency": {"lease_wait_seconds": 5}}).wait_seconds == 5.0


def test_a_plain_dict_from_a_test_works():
    assert parse_job_settings({}) == parse_job_settings(None) == JobSettings()
    settings = parse_job_settings({"engine": "delta-rs", "landing_layout": ["tenant_stream", "objects"], "hooks": None,
                                   "spark": {"master": "local[1]", "conf": {"spark.ui.enabled": False}},
                                   "storage_options": {"AWS_ALLOW_HTTP": True}})
    assert settings.engine == "delta-rs" and settings.landing_layout == ("tenant_stream", "objects") and settings.hooks == ()
    assert settings.spark == SparkSettings(master="local[1]", conf={"spark.ui.enabled": "false"})
    assert settings.storage_options == {"AWS_ALLOW_HTTP": "true"}
    config = build_config({}, TABLES, {"export": {"traits": {"contacts": {"email": "email"}}}})
    assert config.settings.export.traits == {"contacts": {"email": "email"}}
    assert build_config({}, TABLES).settings == JobSettings()


@pytest.mark.parametrize(
    ("max_bytes", "batch_bytes", "master", "applies"),
    [
        (1000, 1000, "local[2]", True),
        (1000, 1, "local", True),
        (1000, 1001, "local[2]", False),
        (1000, 0, "local[2]", False),  # nothing to read: nothing to plan either
        (0, 1, "local[2]", False),  # max_bytes 0: never
        (1000, 10, "spark://10.0.0.1:7077", False),  # a cluster keeps its own settings
        (1000, 10, "yarn", False),
    ],
)
def test_a_small_batch_is_small_and_local(max_bytes, batch_bytes, master, applies):
    small = SmallBatchSettings(max_bytes=max_bytes, session_conf={"spark.sql.codegen.wholeStage": "false"})
    assert small.applies(batch_bytes, master) is applies
    assert SmallBatchSettings(max_bytes=max_bytes).applies(batch_bytes, master) is False  # no settings: nothing to apply
    # The same bound chooses the driver JVM's options, for the landing files a CLI run starts Spark for.
    jvm = SmallBatchSettings(max_bytes=max_bytes, driver_java_options="-XX:TieredStopAtLevel=1")
    assert jvm.java_options(batch_bytes, master) == ("-XX:TieredStopAtLevel=1" if applies else "")
    assert jvm.applies(batch_bytes, master) is False  # JVM options alone: no SQL settings to overlay on a run


C1_PARALLEL = "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"


@pytest.fixture
def no_jvm_env(monkeypatch):
    """No JVM options from the environment (a collector there would change the driver's options)."""
    for variable in JVM_ENV_OPTIONS:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize(
    ("landing_bytes", "master", "own", "expected"),
    [
        (2197, "local[2]", None, C1_PARALLEL),  # sample/landing: C1 only, the parallel collector
        (2197, "local[2]", "-Dx=1 -XX:TieredStopAtLevel=4", f"{C1_PARALLEL} -Dx=1 -XX:TieredStopAtLevel=4"),
        # The user's collector replaces the small input's: a JVM given two refuses to start.
        (2197, "local[2]", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1 -XX:+UseG1GC"),
        (2197, "local[2]", "-Dx=1 -XX:+UseZGC -XX:+ZGenerational", "-XX:TieredStopAtLevel=1 -Dx=1 -XX:+UseZGC -XX:+ZGenerational"),
        (2197, "local[2]", "-XX:+UseParallelGC", "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"),
        (2197, "local[2]", "-XX:-UseG1GC", f"{C1_PARALLEL} -XX:-UseG1GC"),  # turns one off, chooses none
        (2 << 20, "local[2]", "-Dx=1", "-Dx=1"),  # over max_bytes: the JVM's defaults (C2, G1)
        (0, "local[2]", None, ""),  # nothing listed: nothing known to be small
        (2197, None, None, ""),  # spark-submit's or the cluster's master
        (2197, "spark://10.0.0.1:7077", None, ""),
    ],
)
def test_the_driver_jvm_of_a_small_landing_input_compiles_with_c1_only(tmp_path, no_jvm_env, landing_bytes, master, own,
                                                                       expected):
    """The user's ``spark.driver.extraJavaOptions`` follow the small input's options: the JVM takes the last one."""
    from feedlake.settings.session import driver_java_options

    conf = {"spark.jars.ivy": str(tmp_path)}  # no class-data archive trained there
    if own is not None:
        conf["spark.driver.extraJavaOptions"] = own
    spark = {"master": master, "conf": conf, "small_batch": {"max_bytes": 1 << 20, "driver_java_options": f" {C1_PARALLEL} "}}
    assert driver_java_options(parse_job_settings({"spark": spark}).spark, landing_bytes) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [("conf", "spark.driver.defaultJavaOptions"), ("env", "JAVA_TOOL_OPTIONS"), ("env", "JDK_JAVA_OPTIONS")],
)
def test_a_collector_the_jvm_gets_from_elsewhere_replaces_the_small_inputs(tmp_path, no_jvm_env, monkeypatch, key, value):
    """A JVM given two collectors refuses to start: the small input then names none."""
    from feedlake.settings.session import driver_java_options

    conf = {"spark.jars.ivy": str(tmp_path)}
    if key == "conf":
        conf[value] = "-XX:+UseSerialGC"
    else:
        monkeypatch.setenv(value, "-Xss4m -XX:+UseSerialGC")
    spark = {"master": "local[2]", "conf": conf, "small_batch": {"max_bytes": 1 << 20, "driver_java_options": C1_PARALLEL}}
    assert driver_java_options(parse_job_settings({"spark": spark}).spark, 2197) == "-XX:TieredStopAtLevel=1"


@pytest.mark.parametrize(
    ("landing_bytes", "master", "own", "expected"),
    [
        (2 << 20, "local[2]", None, "-XX:+UseParallelGC"),  # a large input: the parallel collector, C2
        (2197, "local[2]", None, "-XX:+UseParallelGC -XX:TieredStopAtLevel=1"),  # and C1 only for a small one
        (0, "local[2]", "-Dx=1", "-XX:+UseParallelGC -Dx=1"),
        (2 << 20, "local[2]", "-XX:+UseG1GC", "-XX:+UseG1GC"),  # the user's collector replaces it
        (2 << 20, "spark://10.0.0.1:7077", None, ""),  # the driver does not run the tasks
        (2 << 20, None, None, ""),  # spark-submit's or the cluster's master
    ],
)
def test_a_local_driver_of_any_input_gets_the_local_java_options(tmp_path, no_jvm_env, landing_bytes, master, own,
                                                                expected):
    """``spark.local_driver_java_options`` come first: the small input's, then the user's, follow."""
    from feedlake.settings.session import driver_java_options

    conf = {"spark.jars.ivy": str(tmp_path)}
    if own is not None:
        conf["spark.driver.extraJavaOptions"] = own
    spark = {"master": master, "conf": conf, "local_driver_java_options": "-XX:+UseParallelGC",
             "small_batch": {"max_bytes": 1 << 20, "driver_java_options": "-XX:TieredStopAtLevel=1"}}
    assert driver_java_options(parse_job_settings({"spark": spark}).spark, landing_bytes) == expected


def test_the_small_inputs_collector_replaces_the_local_drivers(tmp_path, no_jvm_env):
    from feedlake.settings.session import driver_java_options

    spark = {"master": "local[2]", "conf": {"spark.jars.ivy": str(tmp_path)}, "local_driver_java_options": "-XX:+UseG1GC -Xss4m",
             "small_batch": {"max_bytes": 1 << 20, "driver_java_options": C1_PARALLEL}}
    assert driver_java_options(parse_job_settings({"spark": spark}).spark, 2197) == f"-Xss4m {C1_PARALLEL}"


def test_unknown_top_level_keys_are_accepted_as_before():
    assert parse_job_settings({"profile": "local", "owner": "data-team"}).profile == "local"


def test_unknown_keys_of_a_lenient_section_are_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="feedlake.settings.job"):
        assert parse_job_settings({"parsing": {"max_record_byte": 10}}).parsing == ParseSettings()
    assert "parsing: unknown setting(s) ['max_record_byte']" in caplog.text


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"engine": "duckdb"}, "engine 'duckdb' not in"),
        ({"landing_layout": "file_key"}, "landing_layout"),
        ({"landing_layout": []}, "landing_layout"),
        ({"landing_layout": 3}, "landing_layout"),
        ({"hooks": "feedlake.derived.activity:ActivityHook"}, "hooks: expected a list"),
        ({"hooks": [1]}, "hooks: expected a list"),
        ({"spark": ["local"]}, "spark: expected a mapping"),
        ({"spark": {"conf": "x=1"}}, "spark.conf: expected a mapping"),
        ({"spark": {"session_conf": ["x"]}}, "spark.session_conf: expected a mapping"),
        ({"spark": {"resolve_packages": "yes"}}, "spark.resolve_packages"),
        ({"spark": {"extra_packages": "io.x:y:1"}}, "spark.extra_packages"),
        ({"spark": {"s3a": "http://x"}}, "spark.s3a"),
        ({"spark": {"small_batch": 1024}}, "spark.small_batch: expected a mapping"),
        ({"spark": {"small_batch": {"max_bytes": -1}}}, "spark.small_batch.max_bytes"),
        ({"spark": {"small_batch": {"max_bytes": "8MB"}}}, "spark.small_batch.max_bytes"),
        ({"spark": {"small_batch": {"session_conf": ["x"]}}}, "spark.small_batch.session_conf: expected a mapping"),
        ({"spark": {"small_batch": {"driver_java_options": ["-Xss4m"]}}}, "spark.small_batch.driver_java_options"),
        ({"spark": {"local_driver_java_options": ["-Xss4m"]}}, "spark.local_driver_java_options"),
        ({"s3": {"read_mode": "stream"}}, "s3.read_mode"),
        ({"s3": {"download_threads": 0}}, "s3.download_threads"),
        ({"s3": {"aws_secret_access_key": "x"}}, "credentials are not read from conf"),
        ({"s3": {"endpoint": "http://x"}}, "s3: unknown setting"),
        ({"parsing": {"max_record_bytes": 0}}, "parsing.max_record_bytes"),
        ({"parsing": {"max_record_bytes": "16MB"}}, "parsing.max_record_bytes"),
        ({"parsing": {"raw_record_max_chars": 1.5}}, "parsing.raw_record_max_chars"),
        ({"parsing": {"raw_record_max_chars": True}}, "parsing.raw_record_max_chars"),
        ({"parsing": {"spread_lines": "yes"}}, "parsing.spread_lines"),
        ({"parsing": 5}, "parsing: expected a mapping"),
        ({"backfill": {"chunk_files": 0}}, "backfill.chunk_files"),
        ({"backfill": {"chunk_bytes": "1GB"}}, "backfill.chunk_bytes"),
        ({"backfill": {"chunk_files": True}}, "backfill.chunk_files"),
        ({"concurrency": {"lease_wait_seconds": -1}}, "concurrency.lease_wait_seconds"),
        ({"concurrency": {"lease_ttl_seconds": 0}}, "concurrency.lease_ttl_seconds"),
        ({"concurrency": {"lease_poll_seconds": "1s"}}, "concurrency.lease_poll_seconds"),
        ({"privacy": {"vacuum_retention_hours": -1}}, "privacy.vacuum_retention_hours"),
        ({"privacy": {"vacuum_retention_hours": 1.5}}, "privacy.vacuum_retention_hours"),
        ({"privacy": {"stream_subjects": {"identify": {"phone": ["phone"]}}}}, "privacy.stream_subjects.identify"),
        ({"privacy": {"stream_subjects": {"identify": {"email": ["a.b.c"]}}}}, "privacy.stream_subjects.identify"),
        ({"privacy": {"stream_subjects": ["identify"]}}, "privacy.stream_subjects"),
        ({"quality": "warehouse/_gx"}, "quality: expected a mapping"),
        ({"quality": {"driver_max_rows": -1}}, "quality.driver_max_rows"),
        ({"quality": {"driver_max_rows": "all"}}, "quality.driver_max_rows"),
        ({"export": {"segment_url": "api.segment.io"}}, "export.segment_url"),
        ({"export": {"write_key": "abc"}}, "write key is never read from conf"),
        ({"export": {"batch_bytes": 5}}, "export: unknown setting"),
        ({"export": {"max_batch_bytes": 0}}, "export.max_batch_bytes"),
        ({"export": {"max_attempts": "6"}}, "export.max_attempts"),
        ({"export": {"backoff_seconds": -1}}, "export.backoff_seconds"),
        ({"export": {"timeout_seconds": 0}}, "export.timeout_seconds"),
        ({"export": {"as_of": "yesterday"}}, "export.as_of"),
        ({"export": {"traits": {"events": {"x": "y"}}}}, "export.traits"),
        ({"storage_options": ["AWS_REGION"]}, "storage_options"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_it(job, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_job_settings(job)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config({}, TABLES, job)  # the config is never built with it


def test_export_traits_are_checked_against_the_tables():
    job = {"export": {"traits": {"contacts": {"mk_phone": "phone"}}}}
    assert parse_job_settings(job).export.traits == {"contacts": {"mk_phone": "phone"}}  # no tables: columns unchecked
    with pytest.raises(ConfigError, match="export.traits.contacts.mk_phone: 'phone' is not a column of contacts"):
        build_config({}, TABLES, job)
    with pytest.raises(ConfigError, match="'accounts' is not a table"):
        build_config({}, TABLES, {"export": {"traits": {"accounts": {"name": "name"}}}})


def test_export_as_of_takes_a_day():
    assert parse_job_settings({"export": {"as_of": date(2024, 5, 6)}}).export.as_of == date(2024, 5, 6)
    assert parse_job_settings({"export": {"as_of": "2024-05-06"}}).export.as_of == "2024-05-06"


def test_load_config_checks_at_load_time():
    with pytest.raises(ConfigError, match="parsing.max_record_bytes"):
        load_config(None, parse_set_option(["parsing.max_record_bytes=0"]))
    assert load_config(None, parse_set_option(["parsing.max_record_bytes=100"])).settings.parsing.max_record_bytes == 100


def test_a_bad_set_fails_before_any_spark_work(monkeypatch, capsys, tmp_path):
    import feedlake.app.cli as cli

    def no_spark(config):
        raise AssertionError("a session was asked for")

    monkeypatch.setattr(cli, "session_for", no_spark)
    code = main(["ingest", "--landing", str(tmp_path), "--warehouse", str(tmp_path / "w"),
                 "--set", "parsing.max_record_bytes=0"])
    assert code == 2
    assert "parsing.max_record_bytes: expected a whole number >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_replacing_the_job_mapping_rebuilds_the_settings():
    config = load_config(None)
    older = replace(config, job={k: v for k, v in config.job.items() if k not in ("hooks", "backfill")})
    assert older.settings.hooks == DEFAULT_HOOKS and older.settings.backfill == ChunkLimits()
    spooled = replace(config, job={**config.job, "s3": {"read_mode": "spool"}})
    assert spooled.settings.s3.read_mode == "spool" and config.settings.s3.read_mode == "auto"


@pytest.mark.parametrize(
    ("job", "wanted"),
    [
        ({}, True),  # engine auto, no master: a cluster may use delta-spark
        ({"spark": {"master": "local[2]"}}, False),
        ({"spark": {"master": "local[2]"}, "engine": "delta-spark"}, True),
        ({"spark": {"master": "local[2]"}, "s3": {"read_mode": "direct"}}, True),
        ({"spark": {"master": "yarn", "resolve_packages": False}}, False),
        ({"spark": {"master": "local[2]", "resolve_packages": True}}, True),
    ],
)
def test_wants_jvm_packages_reads_the_typed_settings(job, wanted):
    assert wants_jvm_packages(parse_job_settings(job)) is wanted


def test_quality_locations_read_the_quality_settings(tmp_path):
    assert quality_root(str(tmp_path)) == os.path.join(str(tmp_path), "_quality")
    assert quality_root("s3://lake/w") is None
    configured = QualitySettings(project_dir=str(tmp_path / "gx"))
    assert quality_root("s3://lake/w", configured) == str(tmp_path / "gx")
    assert docs_location("s3://lake/w", QualitySettings()) == "s3://lake/w/_quality/data_docs/index.html"
    assert docs_location("s3://lake/w", configured) == str(tmp_path / "gx" / "data_docs" / "index.html")


def test_privacy_defaults():
    assert parse_job_settings({"privacy": None}).privacy == PrivacySettings()


def test_the_jars_resolved_once_are_reused_while_every_file_is_there(tmp_path):
    """The install step's record of Ivy's jars (feedlake.app.jars) replaces the resolution at each start."""
    from feedlake.settings.session import jar_lock, resolved_jars

    packages = ["io.delta:delta-spark_4.1_2.13:4.4.0", "org.apache.hadoop:hadoop-aws:3.4.2"]
    ivy = str(tmp_path)
    assert resolved_jars(packages, ivy) is None  # nothing recorded: Ivy resolves
    jars = [tmp_path / "jars" / "a.jar", tmp_path / "jars" / "b.jar"]
    jars[0].parent.mkdir()
    for jar in jars:
        jar.write_bytes(b"PK")
    with open(jar_lock(packages, ivy), "w", encoding="utf-8") as fh:
        fh.write("".join(f"{jar.as_uri()}\n" for jar in jars))
    assert resolved_jars(list(reversed(packages)), ivy) == [jar.as_uri() for jar in jars]
    assert resolved_jars([*packages, "com.example:other:1.0"], ivy) is None  # other coordinates, other record
    jars[1].unlink()  # a cleaned cache: resolve again rather than start without a jar
    assert resolved_jars(packages, ivy) is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("", "-XX:SharedArchiveFile=/ivy/f.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"),
        ("-XX:TieredStopAtLevel=1", "-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile=/ivy/f.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"),
        ("-XX:SharedArchiveFile=/mine.jsa", "-XX:SharedArchiveFile=/mine.jsa"),  # the user's archive wins
        ("-XX:ArchiveClassesAtExit=/new.jsa", "-XX:ArchiveClassesAtExit=/new.jsa"),  # training one: never map another
        ("-Xshare:off", "-Xshare:off"),
    ],
)
def test_the_driver_maps_the_class_archive_unless_its_options_choose_one(options, expected):
    from feedlake.settings.session import with_class_archive

    assert with_class_archive(options, "/ivy/f.jsa") == expected
    assert with_class_archive(options, None) == options  # no archive trained: the options as they are


def test_the_class_archive_is_recorded_next_to_the_jars_of_its_packages(tmp_path):
    from feedlake.settings.session import class_archive, jar_lock

    packages = ["io.delta:delta-spark_4.1_2.13:4.4.0"]
    assert class_archive(packages, str(tmp_path)) == jar_lock(packages, str(tmp_path)).removesuffix(".jars") + ".jsa"
    assert class_archive(packages, str(tmp_path)) != class_archive([*packages, "com.example:other:1.0"], str(tmp_path))


@pytest.mark.parametrize("variable", JVM_ENV_OPTIONS)
def test_a_jvm_whose_environment_chooses_a_collector_starts_with_feedlakes_options(variable):
    """Java refuses two collectors; the options feedlake and the test session give drop theirs instead."""
    import subprocess

    from feedlake.settings.session import jvm_env_options, yield_collector

    env = {**os.environ, variable: "-XX:+UseG1GC"}
    ours = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseParallelGC"
    clash = subprocess.run(["java", *ours.split(), "-version"], env=env, capture_output=True, text=True)
    assert clash.returncode != 0 and "Multiple garbage collectors selected" in clash.stdout + clash.stderr
    options = yield_collector(ours, jvm_env_options(env))
    assert options == "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
    started = subprocess.run(["java", *options.split(), "-XX:+PrintCommandLineFlags", "-version"], env=env,
                             capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    assert "-XX:+UseG1GC" in started.stdout + started.stderr


def test_the_test_session_maps_the_class_archive_exactly_when_one_was_trained(spark):
    """``python -m feedlake.app.jars`` (the install step) trains it; a session built after that maps it."""
    from feedlake.settings.session import class_archive, jvm, jvm_packages

    arguments = list(jvm(spark).java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    archive = class_archive(jvm_packages())
    assert (f"-XX:SharedArchiveFile={archive}" in arguments) is os.path.isfile(archive)


def test_sessions_feedlake_builds_record_no_python_call_site_per_column_call(spark, py4j_commands):
    """``CLIENT_CONF`` (feedlake.settings.session): PySpark's per-call origin capture is off, so an
    ``alias`` or a comparison is one Py4J round trip instead of eleven."""
    from pyspark.errors.utils import is_debugging_enabled
    from pyspark.sql import functions as F

    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert is_debugging_enabled() is False
    column = F.col("email")
    py4j_commands.clear()
    column.alias("e").eqNullSafe(column)
    assert len(py4j_commands) == 2, py4j_commands
