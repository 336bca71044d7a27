"""Shared fixtures: one SparkSession per test run, landing zones in tmp dirs, table readers."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from feedlake.settings.config import FeedlakeConfig, load_config
from feedlake.settings.session import jvm_env_options, yield_collector

TEST_SPARK_CONF = {
    "master": "local[2]",
    "app_name": "feedlake-tests",
    # Both Delta engines run in this one session: the Delta and S3A jars come from the
    # Ivy cache that the install step warmed (python -m feedlake.app.jars).
    "resolve_packages": True,
    "conf": {
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "4g",
        # Test data is a few rows, so a query's cost is planning it, not running it. Code
        # generation compiles every new plan with Janino and adaptive execution re-plans it
        # stage by stage. Both are off here: the interpreted path (Spark's own test mode,
        # CodegenObjectFactoryMode NO_CODEGEN) gives the same results. A warm in-session
        # sample/landing run goes from 13.8 s to 8.9 s (delta-spark: 42 s to 31 s).
        # Production keeps Spark's defaults.
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        # For the same reason the driver JVM compiles with C1 only: C2 spends CPU optimizing
        # code paths that tiny plans never run long enough to repay (a module run -n 0:
        # test_ingest_cli 88 s -> 75 s, test_merge 56 s -> 48 s). Never for production: a
        # 2 M-event ingest takes 169 s with C2 and 334 s without (bench/ingest_bench.py).
        # C1 only also shrinks the JVM's default code cache to 48 MB, which a test worker
        # fills within a minute (jcmd Compiler.codecache: max_used 48,178 of 49,152 KB); from
        # then on the sweeper flushes compiled methods and C1 compiles them again. With
        # 256 MB, 7 heavy modules -n 0: driver JVM 170.6 -> 134.7 CPU-s (sweeper 12.2 -> 0,
        # C1 11.3 -> 5.4).
        # The parallel collector: G1's concurrent marking threads took about 8 % of the driver
        # JVM's CPU in delta-spark runs (a test worker has one core to itself). Alternated A/B,
        # 3 warm delta-spark sample/landing runs per process: 113-115 s (JVM 142-144 CPU-s)
        # against 118-121 s (150-154) with G1; test_quality, test_ingest_cli, test_merge -n 0:
        # 103-107 s against 107-109 s; test_cluster alone, whose executors take these options too:
        # 98 s against 105-108 s.
        # A collector from the environment (JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS) replaces this
        # one: a JVM given two refuses to start.
        "spark.driver.extraJavaOptions": yield_collector(
            "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseParallelGC", jvm_env_options()
        ),
    },
}


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """The one SparkSession of the test run (local[2], UI off, 2 shuffle partitions, Delta + S3A jars)."""
    from feedlake.settings.session import build_session

    session = build_session(TEST_SPARK_CONF)
    yield session
    session.stop()


@pytest.fixture(scope="session", autouse=True)
def _session_first(spark: SparkSession) -> None:
    """The test session (with the Delta jar) exists before any test, so no CLI run builds its own."""


@pytest.fixture
def py4j_commands(monkeypatch):
    """Every Py4J command the test's own thread sends while the test runs, in order.

    Py4J's finalizer thread also sends commands (releasing JVM objects Python collected):
    they are not counted.
    """
    import threading

    import py4j.clientserver

    commands: list[str] = []
    send = py4j.clientserver.ClientServerConnection.send_command
    test_thread = threading.current_thread()

    def counted(connection, command):
        if threading.current_thread() is test_thread:
            commands.append(command)
        return send(connection, command)

    monkeypatch.setattr(py4j.clientserver.ClientServerConnection, "send_command", counted)
    return commands


@pytest.fixture(scope="session")
def config() -> FeedlakeConfig:
    """The packaged configuration (conf/), engine forced to the embedded delta-rs."""
    return load_config(None, {"engine": "delta-rs"})


def write_files(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``relative path -> content`` under ``root``; ``.gz``/``.gzip`` names are gzip-compressed."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        if path.suffix in (".gz", ".gzip"):
            data = gzip.compress(data, mtime=0)  # same content, same bytes: copies hash alike
        path.write_bytes(data)
    return root


@pytest.fixture
def landing(tmp_path: Path) -> Callable[[Mapping[str, str | bytes]], Path]:
    """Factory: write files into a fresh landing zone and return its root."""
    root = tmp_path / "landing"
    root.mkdir()
    return lambda files: write_files(root, files)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse"


@pytest.fixture(params=["delta-rs", "delta-rs-staged", "delta-spark"])
def any_engine(request: pytest.FixtureRequest, spark: SparkSession, warehouse: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh warehouse on each engine: delta-rs (Arrow collect), delta-rs staged through Parquet, delta-spark."""
    from feedlake.delta import engines

    if request.param == "delta-spark":
        return engines.DeltaSparkEngine(spark, str(warehouse))
    engine = engines.DeltaRsEngine(spark, str(warehouse))
    engine.stage_locally = True
    if request.param == "delta-rs-staged":
        monkeypatch.setattr(engines, "ARROW_COLLECT_ROWS", 1)  # the Parquet staging path
    return engine


def jsonl(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


def read_table(spark: SparkSession, warehouse: Path | str, name: str, columns: list[str] | None = None) -> DataFrame:
    """A Delta table of the warehouse as a Spark DataFrame (read with delta-rs), sorted for chispa."""
    from deltalake import DeltaTable

    data = DeltaTable(str(Path(warehouse) / name)).to_pyarrow_table()
    df = spark.createDataFrame(data) if data.num_rows else spark.createDataFrame([], "tenant_id string")
    if columns:
        df = df.select(*columns)
    return df.orderBy(*df.columns)


def in_tenant(files: Mapping[str, str | bytes], tenant: str) -> dict[str, str | bytes]:
    """The same landing files under tenant ``tenant`` (each path's ``tenant=<id>`` folder renamed).

    Independent scenarios of one test become tenants of one landing zone and one
    warehouse (issue 14): one run serves them all, as tenant isolation promises.
    """
    return {re.sub(r"(^|/)tenant=[^/]+/", rf"\g<1>tenant={tenant}/", path, count=1): content for path, content in files.items()}


def tenant_table(
    spark: SparkSession, warehouse: Path | str, name: str, tenant: str, columns: Sequence[str] | None = None, *,
    as_tenant: str | None = None, drop: Sequence[str] = (),
) -> DataFrame:
    """One tenant's rows of a table (``columns`` of them), read as if they were ``as_tenant``'s, sorted for chispa.

    ``tenant_id`` and every ``tenant=<tenant>`` in a text column (landing paths, the
    sequences built from them) read ``as_tenant``, so two tenants' scenarios compare with
    chispa; ``drop`` removes columns that hash the paths (batch ids).
    """
    from pyspark.sql import functions as F

    df = read_table(spark, warehouse, name).where(F.col("tenant_id") == F.lit(tenant))
    as_tenant = as_tenant or tenant
    read, names = [], []
    for field in df.schema.fields:
        if field.name in drop or (columns is not None and field.name not in columns):
            continue
        column = F.col(field.name)
        if field.name == "tenant_id":
            column = F.lit(as_tenant)
        elif field.dataType.typeName() == "string":
            column = F.replace(column, F.lit(f"tenant={tenant}/"), F.lit(f"tenant={as_tenant}/"))
        read.append(column.alias(field.name))
        names.append(field.name)
    df = df.select(*read).select(*(columns or names))
    return df.orderBy(*df.columns)


def run_cli(*args: str) -> int:
    """Run ``feedlake <args>`` in-process (the shared SparkSession is picked up as active)."""
    from feedlake.app.cli import main

    return main(list(args))


def without_quality() -> tuple[str, str]:
    """``--set`` arguments: conf's hooks without the quality gate, in order.

    The test profile of modules where quality is not under test (issue 14): no gate
    before the MERGEs, no table checks or Data Docs after the run. Everything else of
    a run (every other hook, the report, the run page) is the same.
    """
    refs = [ref for ref in load_config(None).job["hooks"] if not ref.endswith(":QualityGate")]
    return "--set", "hooks=[" + ", ".join(refs) + "]"


def latest_report(warehouse: Path) -> dict:
    """The JSON report of the newest run of a local warehouse."""
    reports = sorted((Path(warehouse) / "_reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())


def ingest_report(landing: Path, warehouse: Path, *extra: str, quality: bool = True) -> dict:
    """``feedlake ingest`` in-process on the embedded engine (delta-rs); its run report. It must succeed."""
    profile = () if quality else without_quality()
    code = run_cli("ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--engine", "delta-rs", *extra, *profile)
    assert code == 0
    return latest_report(warehouse)
