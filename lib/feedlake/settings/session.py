"""SparkSession factory: the only place a session is built (never at import time).

On Databricks (or in any notebook) a ``spark`` session already exists and is passed
in instead; :func:`prepare_session` applies the SQL settings feedlake relies on to a
session it did not build.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urlparse

from py4j.java_gateway import JavaClass, JavaMember, JVMView
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from feedlake.settings.job import JobSettings, SparkSettings, is_local_master

log = logging.getLogger("feedlake.settings.session")

T = TypeVar("T")
R = TypeVar("R")

# Settings the transforms depend on, applied to every session (built or given).
REQUIRED_SQL_CONF = {
    # Timestamps are UTC everywhere (seed 000: Unix time; seed 004: UTC timestamps).
    "spark.sql.session.timeZone": "UTC",
    # A JSON line that repeats a key keeps the last value instead of failing the job.
    "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
}

# PySpark client settings of every session feedlake builds (conf's own values win, set after these).
CLIENT_CONF = {
    # PySpark 4 records each Column and DataFrame call's Python call site for error messages
    # (a DataFrame query context): 10 more Py4J round trips per call (an alias, a comparison)
    # and a walk of the Python stack. A run builds thousands of Column expressions: a warm
    # sample/landing run took 14.5 s with it and 11.7 s without (delta-rs, 2 cores). Static and
    # read once per process: a session feedlake did not build (Databricks' predefined ``spark``)
    # keeps its own value, and conf's ``spark.conf`` can set it back to "true" for debugging.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}

# Task counts sized for a cluster, which a local master pays as fixed per-task overhead on
# every small table operation (measured on 2 cores; conf's own values win, set after these):
LOCAL_MASTER_CONF = {
    # Delta rebuilds a table's snapshot state with 50 tasks by default: 15 small MERGEs
    # took 62 s with 50 and 24 s with 2.
    "spark.databricks.delta.snapshotPartitions": "2",
    # delta-spark's VACUUM lists a table's folders in this many tasks (Spark's default
    # 10,000; DeltaFileOperations.recursiveListDirs repartitions to it): a forget's 8
    # VACUUMs of tiny tables took 303 s with 10,000 and 17.5 s with 2.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
    # delta-spark's MERGE shuffles its output by the partition column (tenant_id) before
    # writing, for fewer files per partition on a cluster: one more stage per MERGE, and a
    # local master's few tasks write few files without it. Warm in-session delta-spark runs
    # of sample/landing: 35.3-36.3 s with it, 29.8-33.4 s without; the same tables.
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "false",
}

# Java classes PySpark names without their package on every Column and DataFrame call
# (``sc._jvm.functions``, ``.PythonSQLUtils``, ``.PythonUtils``: about 2,000 look-ups in a
# sample/landing run). Py4J tries such a name on its own, then in each of the gateway's
# star imports in turn, and every miss searches each jar of the classpath (about 290);
# a single import leaves one miss. JFR on the default test run: 16 % of the driver JVM's
# CPU samples were these searches; warm in-session sample/landing runs 16.5 s -> 14.8 s.
PY4J_SINGLE_IMPORTS = (
    "org.apache.spark.sql.functions",
    "org.apache.spark.sql.api.python.PythonSQLUtils",
    "org.apache.spark.api.python.PythonUtils",
)

DELTA_SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def jvm_packages() -> list[str]:
    """The Maven coordinates feedlake adds to a session it starts, pinned to what is installed.

    * ``io.delta:delta-spark_<spark major.minor>_2.13:<delta-spark version>``: the JVM
      half of the ``delta-spark`` pip package (requirements.txt pins both to one version);
    * ``org.apache.hadoop:hadoop-aws:<Hadoop version>``: S3A, at exactly the Hadoop
      version pyspark ships (``hadoop-client-api-<v>.jar``), so Spark reads ``s3a://``
      (and ``s3://``, mapped to S3A) and delta-spark writes S3 warehouses.

    >>> [p.split(":")[1] for p in jvm_packages()]
    ['delta-spark_4.1_2.13', 'hadoop-aws']
    """
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    packages = [f"io.delta:delta-spark_{spark_minor}_2.13:{metadata.version('delta-spark')}"]
    hadoop = hadoop_version()
    if hadoop:
        packages.append(f"org.apache.hadoop:hadoop-aws:{hadoop}")
    return packages


def jar_lock(packages: Sequence[str], ivy_home: str | None = None) -> str:
    """Where :mod:`feedlake.app.jars` records the jar files Ivy resolved for ``packages``.

    One file per set of coordinates, in the Ivy home (``spark.jars.ivy``, Spark's default
    ``~/.ivy2.5.2``) next to the jars it lists.
    """
    digest = hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()[:16]
    return os.path.join(os.path.expanduser(ivy_home or "~/.ivy2.5.2"), f"feedlake-{digest}.jars")


def resolved_jars(packages: Sequence[str], ivy_home: str | None = None) -> list[str] | None:
    """The jar files resolved once for ``packages`` (:func:`jar_lock`), or ``None`` to resolve with Ivy.

    Ivy re-resolves ``spark.jars.packages`` at every JVM start, even from a warm cache
    (about 6 s of a 14 s local start): the install step resolves once and records the
    jars, and every later session starts with ``spark.jars`` from that record. A record
    whose jar is gone (a cleaned cache) is ignored.
    """
    try:
        with open(jar_lock(packages, ivy_home), encoding="utf-8") as fh:
            jars = [line.strip() for line in fh if line.strip()]
    except OSError:
        return None
    if not jars or not all(os.path.isfile(urlparse(j).path) for j in jars):
        return None
    return jars


def class_archive(packages: Sequence[str], ivy_home: str | None = None) -> str:
    """Where :mod:`feedlake.app.jars` writes the driver JVM's class-data archive (CDS) for ``packages``.

    Next to the :func:`jar_lock` record, one per set of coordinates.
    """
    return jar_lock(packages, ivy_home).removesuffix(".jars") + ".jsa"


def with_class_archive(java_options: str, archive: str | None) -> str:
    """The driver's ``spark.driver.extraJavaOptions`` that also map ``archive`` (if any).

    A JVM starting with Spark's classes already parsed and verified from a class-data
    sharing archive (JDK 17 dynamic AppCDS) saves a third of a local session's start
    (measured: 13.9 s to 9.7 s to the first job). An archive the running JVM cannot use (another
    JDK, another classpath) is ignored by the JVM itself (``-Xshare:auto``, the default);
    options that choose an archive already are kept as they are.
    """
    if not archive or any(flag in java_options for flag in ("SharedArchiveFile", "ArchiveClassesAtExit", "-Xshare")):
        return java_options
    return f"{java_options} -XX:SharedArchiveFile={archive} -Xlog:cds=off -Xlog:cds+dynamic=off".strip()


def record_resolved_jars(spark: SparkSession, packages: Sequence[str], ivy_home: str | None = None) -> str:
    """Write the jars a session started with ``spark.jars.packages`` was given (its ``spark.jars``); the record's path."""
    jars = [j for j in (spark.sparkContext.getConf().get("spark.jars") or "").split(",") if j]
    if not jars:
        raise RuntimeError(f"the session resolved no jar for {', '.join(packages)}")
    lock = jar_lock(packages, ivy_home)
    with open(lock + ".tmp", "w", encoding="utf-8") as fh:
        fh.write("\n".join(jars) + "\n")
    os.replace(lock + ".tmp", lock)
    return lock


def hadoop_version() -> str | None:
    """The Hadoop version of the pyspark installation (from its bundled ``hadoop-client-api`` jar)."""
    import pyspark

    for jar in glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "hadoop-client-api-*.jar")):
        found = re.search(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar$", jar)
        if found:
            return found.group(1)
    return None


def s3a_conf(endpoint_url: str | None = None) -> dict[str, str]:
    """Hadoop S3A settings from the standard AWS environment (the same chain boto3 and delta-rs use).

    ``s3://`` is served by S3A too, as EMR serves it with EMRFS. Credentials stay in the
    environment (S3A's default provider chain reads ``AWS_ACCESS_KEY_ID``/..., profiles
    and instance roles); only the endpoint of an S3-compatible server is passed on.
    """
    conf = {
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    }
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    return conf


def build_session(
    spark_conf: SparkSettings | Mapping[str, Any], *, with_delta_jar: bool | None = None, landing_bytes: int = 0
) -> SparkSession:
    """Build (or reuse) a SparkSession from the ``spark`` settings of the job (``config.settings.spark``).

    A plain mapping (the ``spark:`` section as written in ingest.yaml) is checked and
    typed first (:class:`~feedlake.settings.job.SparkSettings`).
    Unless spark-submit launched the driver (its ``--packages``/``--jars`` and master
    win), the session gets the pinned :func:`jvm_packages` through
    ``spark.jars.packages``; Ivy resolves them from Maven Central once and then from its
    local cache (``python -m feedlake.app.jars`` warms it, as ``.ci/run`` does, and records
    the resolved jars: later sessions start with those files, :func:`resolved_jars`).
    ``spark.resolve_packages: false`` (or ``with_delta_jar=False``) starts without them:
    delta-rs only, no S3A. Python workers run this very interpreter (``sys.executable``)
    for a local master, so a venv's ``feedlake`` works without activating the venv.
    A local master's driver JVM starts with ``spark.local_driver_java_options``, and
    ``landing_bytes`` (the landing files the session is started for, as stored) within
    ``spark.small_batch.max_bytes`` add ``small_batch.driver_java_options`` (:func:`driver_java_options`).
    """
    import sys

    settings = spark_conf if isinstance(spark_conf, SparkSettings) else SparkSettings.from_mapping(spark_conf)
    builder = SparkSession.builder.appName(settings.app_name)
    master = settings.master
    submitted = launched_by_spark_submit()
    if master and not submitted:
        builder = builder.master(master)
        if is_local_master(master):
            builder = builder.config("spark.pyspark.python", sys.executable).config(
                "spark.pyspark.driver.python", sys.executable
            )
            builder = builder.config(map=LOCAL_MASTER_CONF)
    # ``auto`` here (a session built without a job's choice, e.g. a notebook): with the packages.
    packages = bool(settings.resolve_packages) if with_delta_jar is None else with_delta_jar
    if not submitted:
        builder = builder.config(map=s3a_conf(settings.s3a_endpoint))
    builder = builder.config(map=CLIENT_CONF).config(map=dict(settings.conf))
    if not submitted:  # spark-submit launched the driver JVM already
        options = driver_java_options(settings, landing_bytes)
        if options != settings.conf.get("spark.driver.extraJavaOptions", ""):
            builder = builder.config("spark.driver.extraJavaOptions", options)
    builder = builder.config(map=REQUIRED_SQL_CONF)
    if packages:
        builder = builder.config(map=DELTA_SPARK_CONF)
    if packages and not submitted:
        coordinates = [*jvm_packages(), *settings.extra_packages]
        jars = None if "spark.jars" in settings.conf else resolved_jars(coordinates, settings.conf.get("spark.jars.ivy"))
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        else:
            builder = builder.config("spark.jars.packages", ",".join(coordinates))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # PySparkRuntimeError: the JVM exited, e.g. Ivy could not resolve offline
        if not (packages and not submitted):
            raise
        log.warning(
            "Spark did not start with the JVM packages %s (%s): starting without them, so only the delta-rs "
            "engine and no S3A are available. Resolve them once with internet: python -m feedlake.app.jars",
            jvm_packages(), exc,
        )
        for key in ("spark.jars.packages", "spark.jars", *DELTA_SPARK_CONF):
            builder._options.pop(key, None)  # noqa: SLF001 -- Builder has no public way to drop an option
        session = builder.getOrCreate()
    return prepare_session(session, settings.session_conf)


# A JVM option choosing the garbage collector (HotSpot: -XX:+Use<name>GC), and the
# environment variables whose options every JVM (java launcher) also takes.
JVM_ENV_OPTIONS = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS")
COLLECTOR_OPTION = re.compile(r"(?<!\S)-XX:\+Use(?:Serial|Parallel|ParallelOld|G1|Z|Shenandoah|Epsilon|ConcMarkSweep)GC(?!\S)")


def jvm_env_options(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The options every JVM the ``java`` launcher starts also takes from ``environ`` (default: this process's).

    >>> jvm_env_options({"JAVA_TOOL_OPTIONS": "-XX:+UseG1GC", "PATH": "/bin"})
    ('-XX:+UseG1GC', '')
    """
    env = os.environ if environ is None else environ
    return tuple(env.get(variable, "") for variable in JVM_ENV_OPTIONS)


def yield_collector(options: str, others: Iterable[str]) -> str:
    """``options`` without their garbage collector when any of ``others`` chooses one.

    A JVM given two collectors refuses to start (Java 17: "Multiple garbage collectors
    selected"): a collector the JVM gets from the user (``spark.conf``, the environment's
    :data:`JVM_ENV_OPTIONS`) wins over feedlake's own choice.

    >>> yield_collector("-XX:TieredStopAtLevel=1 -XX:+UseParallelGC", ["", "-XX:+UseG1GC"])
    '-XX:TieredStopAtLevel=1'
    >>> yield_collector("-XX:TieredStopAtLevel=1 -XX:+UseParallelGC", ["-XX:-UseG1GC -Dx=1"])
    '-XX:TieredStopAtLevel=1 -XX:+UseParallelGC'
    """
    if any(COLLECTOR_OPTION.search(other) for other in others):
        return " ".join(COLLECTOR_OPTION.sub(" ", options).split())
    return options


def driver_java_options(settings: SparkSettings, landing_bytes: int = 0, environ: Mapping[str, str] | None = None) -> str:
    """``spark.driver.extraJavaOptions`` of a driver JVM feedlake starts for ``landing_bytes`` of landing files.

    In this order (the JVM takes the last of a repeated option): a local master's
    ``spark.local_driver_java_options`` (conf: the parallel collector, measured in
    conf/ingest.yaml), the small input's ``spark.small_batch.driver_java_options`` (conf:
    C1 compilation only), the options of ``spark.conf`` (the user's, which win), then the
    class-data archive (:func:`with_class_archive`). A collector is the one option the JVM
    does not take twice (it refuses to start two different ones), so a collector the JVM
    gets from the user (``spark.conf``'s ``spark.driver.extraJavaOptions`` or
    ``defaultJavaOptions``, ``JAVA_TOOL_OPTIONS``, ``JDK_JAVA_OPTIONS`` in ``environ``,
    default this process's) replaces feedlake's, and the small input's replaces the
    local master's (:func:`yield_collector`).

    >>> from feedlake.settings.job import SmallBatchSettings
    >>> small = SmallBatchSettings(max_bytes=100, driver_java_options="-XX:TieredStopAtLevel=1 -XX:+UseParallelGC")
    >>> settings = SparkSettings(master="local[2]", conf={"spark.driver.extraJavaOptions": "-Dx=1"}, small_batch=small)
    >>> driver_java_options(settings, 10, environ={}).split()[:3]
    ['-XX:TieredStopAtLevel=1', '-XX:+UseParallelGC', '-Dx=1']
    >>> driver_java_options(settings, 1000, environ={}).split()[0]
    '-Dx=1'
    >>> driver_java_options(settings, 10, environ={"JAVA_TOOL_OPTIONS": "-XX:+UseZGC"}).split()[:2]
    ['-XX:TieredStopAtLevel=1', '-Dx=1']
    >>> own = SparkSettings(master="local[2]", conf={"spark.driver.extraJavaOptions": "-XX:+UseG1GC"}, small_batch=small)
    >>> driver_java_options(own, 10, environ={}).split()[:2]
    ['-XX:TieredStopAtLevel=1', '-XX:+UseG1GC']
    >>> local = SparkSettings(master="local[2]", small_batch=small, local_driver_java_options="-XX:+UseSerialGC -Xss4m")
    >>> driver_java_options(local, 1000, environ={}).split()[:2]
    ['-XX:+UseSerialGC', '-Xss4m']
    >>> driver_java_options(local, 10, environ={}).split()[:3]
    ['-Xss4m', '-XX:TieredStopAtLevel=1', '-XX:+UseParallelGC']
    >>> cluster = SparkSettings(master="spark://head:7077", local_driver_java_options="-XX:+UseSerialGC")
    >>> "-XX:+UseSerialGC" in driver_java_options(cluster, 1000, environ={})
    False
    """
    own = settings.conf.get("spark.driver.extraJavaOptions", "")
    users = (own, settings.conf.get("spark.driver.defaultJavaOptions", ""), *jvm_env_options(environ))
    small = yield_collector(settings.small_batch.java_options(landing_bytes, settings.master or ""), users)
    if small:
        log.info("a small landing input (%d bytes) on a local master: the driver JVM starts with %s", landing_bytes, small)
    local = yield_collector(settings.local_java_options(), (small, *users))
    options = " ".join(o for o in (local, small, own) if o)
    archive = class_archive(jvm_packages(), settings.conf.get("spark.jars.ivy"))
    return with_class_archive(options, archive if os.path.isfile(archive) else None)


def wants_jvm_packages(settings: JobSettings) -> bool:
    """Whether a run needs the JVM packages: ``spark.resolve_packages`` (``auto`` by default).

    ``auto`` adds them when the run can use them: the delta-spark engine (``engine:
    delta-spark``, or ``auto`` with a non-local master) or S3 objects read by Spark itself
    (``s3.read_mode: direct``). The embedded default (local master, delta-rs, local or
    spooled S3 landing) starts without them, so a first run needs no Maven download.
    """
    setting = settings.spark.resolve_packages
    if setting != "auto":
        return bool(setting)
    engine = settings.engine
    remote = not is_local_master(settings.spark.master)
    return engine == "delta-spark" or (engine == "auto" and remote) or settings.s3.read_mode == "direct"


def launched_by_spark_submit() -> bool:
    """True when spark-submit started this Python driver (its JVM was launched first).

    spark-submit's PythonRunner hands the driver its JVM through ``PYSPARK_GATEWAY_PORT``.
    Its ``--master`` and classpath (``--jars``/``--packages``, EMR's or Databricks' Delta)
    were fixed at launch: a ``master`` from conf must not override the cluster the job
    was submitted to, and jar packages can no longer be added (issue #6).
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ


def prepare_session(spark: SparkSession, session_conf: Mapping[str, Any] | None = None) -> SparkSession:
    """Apply the runtime SQL settings feedlake needs to an existing session.

    ``session_conf`` (``spark.session_conf`` of a profile) holds runtime-modifiable
    SQL settings, e.g. shuffle partitions, applied even to a session feedlake did not
    build (Databricks' predefined ``spark``), where ``spark.conf`` cannot take effect.
    PySpark's Py4J view gets single imports of the classes it names bare (:func:`import_jvm_names`)
    and looks each class and static method up once (:func:`memoize_jvm_lookups`).
    """
    for key, value in (session_conf or {}).items():
        spark.conf.set(str(key), str(value))
    for key, value in REQUIRED_SQL_CONF.items():
        spark.conf.set(key, value)
    spark.sparkContext.setLogLevel("WARN")
    view = spark.sparkContext._jvm  # noqa: SLF001 -- the Py4J view PySpark's own calls resolve names in
    import_jvm_names(view)
    memoize_jvm_lookups(view)
    return spark


def import_jvm_names(view: JVMView) -> None:
    """Add :data:`PY4J_SINGLE_IMPORTS` to a Py4J JVM view (``spark.sparkContext._jvm``).

    Each name resolves to the class the view's star imports found before; only the
    search stops early. Idempotent.
    """
    from py4j.java_gateway import java_import

    for name in PY4J_SINGLE_IMPORTS:
        java_import(view, name)


class MemoJavaClass(JavaClass):
    """A Py4J class whose static methods are looked up in the JVM once each.

    Py4J asks the JVM what a name is on every attribute access (a reflection round trip
    before the call itself). A static method stays what it is for the JVM's lifetime, and
    a ``JavaMember`` is reusable (Py4J caches the members of an object the same way);
    fields and nested classes are looked up each time, as before.
    """

    def __getattr__(self, name: str) -> Any:
        found = JavaClass.__getattr__(self, name)
        if isinstance(found, JavaMember):
            self.__dict__[name] = found  # a plain attribute from now on: Python finds it without asking
        return found


class MemoJVMView(JVMView):
    """A Py4J JVM view that resolves each class name once (a package name, each time)."""

    def __getattr__(self, name: str) -> Any:
        found = JVMView.__getattr__(self, name)
        if type(found) is JavaClass:
            found.__class__ = MemoJavaClass
            self.__dict__[name] = found  # a plain attribute from now on, as the class's methods
        return found


def memoize_jvm_lookups(view: JVMView) -> None:
    """Make ``view`` (``spark.sparkContext._jvm``) resolve each class and static method once.

    PySpark resolves ``functions``, ``PythonUtils`` and ``PythonSQLUtils`` and the method
    anew on each call: ``F.col`` is two reflection round trips and the call, so a
    ``select`` of 20 column names costs 85 round trips. A warm sample/landing run made
    about 7,000 such look-ups. The view object itself is kept (only its class changes),
    so every holder of it (the SparkContext, each session, the gateway) gains. Idempotent.
    """
    if type(view) is JVMView:
        view.__class__ = MemoJVMView


@contextmanager
def sql_conf_overlay(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """Set runtime SQL settings for the ``with`` block, then give the session back its own values.

    A setting the session had not set is unset again (Spark's default returns), so a
    notebook's or a backfill's session is as it was after each run.
    """
    before = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def local_master(spark: SparkSession) -> bool:
    """True when driver and executors share this machine (a ``local[...]`` master)."""
    try:
        return is_local_master(spark.sparkContext.master)
    except Exception:  # Spark Connect has no SparkContext: treat it as a remote cluster
        return False


def pinned(df: DataFrame, storage: StorageLevel) -> DataFrame:
    """``df`` computed once and kept at ``storage``, for stages that read it several times.

    On a local master it is a local checkpoint, computed now: the frames built on it
    start from its blocks, so Spark no longer re-analyses its whole plan with each
    transformation nor matches it against every cached plan (a Segment test's two ingest
    runs: 76 s with the validated and ranked frames persisted, 61 s checkpointed).
    Elsewhere it is persisted: a cluster may lose an executor (dynamic allocation, spot
    capacity) and with it a local checkpoint's blocks, which Spark cannot recompute,
    while a persisted frame is recomputed from its plan. Release either with
    :func:`release` when done.
    """
    if local_master(df.sparkSession):
        return df.localCheckpoint(eager=True, storageLevel=storage)
    return df.persist(storage)


def release(df: DataFrame) -> None:
    """Drop ``df``'s cache, or the blocks of a :func:`pinned` local checkpoint, now.

    PySpark has no handle on a checkpoint's blocks, which otherwise stay until the JVM
    collects the frame: a backfill's chunks would pile them up on disk. The frame cannot
    be read after this.
    """
    if df.is_cached:
        df.unpersist()
        return
    plan = df._jdf.queryExecution().analyzed()  # noqa: SLF001 -- pyspark's only route to the plan's RDD
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def prepared_ahead(
    spark: SparkSession,
    prepare: Callable[[T], R],
    items: Iterable[T],
    threads: int,
    discard: Callable[[R], None] | None = None,
) -> Iterator[R]:
    """``prepare(item)`` of every item, yielded in order, built up to ``threads`` items ahead on threads.

    The consumer works on one result while the next ones are built: Spark jobs submitted
    from several threads run side by side on the executors, and their driver-side
    planning (analysis, Delta's log replay and file listing) uses more than one core. At
    most ``threads`` results wait built and unconsumed, so the memory they hold is
    bounded; ``threads=0`` builds one item at a time. Each thread inherits the caller's
    Spark local properties and job tags (:func:`pyspark.inheritable_thread_target`). Results the
    consumer never takes, because it stopped early or failed, go to ``discard``.
    """
    from pyspark import inheritable_thread_target

    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="feedlake-prepare") as pool:
        build = inheritable_thread_target(spark)(prepare)
        try:
            for item in items:
                pending.append(pool.submit(build, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                if future.cancel():
                    continue
                try:
                    leftover = future.result()
                except Exception:  # noqa: S112 - the consumer's own failure is the one to report
                    continue
                if discard is not None:
                    discard(leftover)


def jvm(spark: SparkSession):
    """The py4j view of the driver JVM (pyspark has no public handle; Spark Connect raises)."""
    return spark.sparkContext._jvm  # noqa: SLF001 -- pyspark's only route to JVM classes


def hadoop_configuration(spark: SparkSession):
    """The session's Hadoop ``Configuration`` (the S3A settings Spark's file systems use)."""
    return spark.sparkContext._jsc.hadoopConfiguration()  # noqa: SLF001 -- no public accessor in pyspark


def delta_jvm_available(spark: SparkSession) -> bool:
    """True when the Delta Lake JVM classes are loadable and the session is configured for them."""
    try:
        loader = jvm(spark).java.lang.Thread.currentThread().getContextClassLoader()
        loader.loadClass("io.delta.tables.DeltaTable")
    except Exception:  # py4j surfaces ClassNotFoundException as a generic Py4JJavaError
        return False
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "DeltaSparkSessionExtension" in extensions or _is_databricks()


def _is_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The rows of every frame, columns matched by name (``frames`` must not be empty)."""
    if not frames:
        raise ValueError("union_all needs at least one DataFrame")
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows


def local_frame(spark: SparkSession, rows: Iterable[Sequence[Any]], schema: str | StructType) -> DataFrame:
    """Rows built in the driver (a manifest, file metadata, a tenant list) as a DataFrame through Arrow.

    The frame is a ``LocalTableScan`` on the JVM. ``spark.createDataFrame`` of a Python
    list makes a ``PythonRDD`` instead, whose rows are unpickled by Python worker tasks in
    *every* job that reads them: a join against a ten-row list then costs a Python worker
    round trip per partition and query (about twice the time of the same join against
    this frame, measured on a local session). ``schema`` is a DDL string or a ``StructType``;
    row values are positional, as ``createDataFrame`` takes them.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    struct = schema if isinstance(schema, StructType) else StructType.fromDDL(schema)
    arrow = to_arrow_schema(struct)
    data = [tuple(r) for r in rows]
    for r in data:
        if len(r) != len(arrow):
            raise ValueError(f"a row of {len(r)} values for a schema of {len(arrow)} fields: {r!r}")
    columns = list(zip(*data, strict=True)) if data else [()] * len(arrow)
    table = pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(columns, arrow, strict=True)], schema=arrow)
    return spark.createDataFrame(table, schema=struct)
