"""spark-submit on a real standalone Spark cluster: a master and two workers on 127.0.0.1.

The cluster comes from the pyspark installation itself (``spark-class`` with
SPARK_HOME = the pyspark package folder); the job is shipped the standard way, the
feedlake bundle with ``--py-files``. The Spark event log of the application proves
where the work ran: the master it was submitted to, and tasks on two executors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest

from feedlake.app.bundle import build_bundle
from feedlake.settings.session import DELTA_SPARK_CONF, LOCAL_MASTER_CONF, jvm_packages
from tests.conftest import TEST_SPARK_CONF, jsonl, read_table, run_cli, without_quality, write_files
from tests.integration.same_tables import assert_same_tables

pytestmark = [pytest.mark.cluster, pytest.mark.system]

REPO = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(pyspark.__file__).parent
WORKERS = 2
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 1200
# The job's tables hold a few hundred rows. A cluster master keeps Spark's and Delta's task
# counts sized for large tables (50 tasks per Delta snapshot), so the test gives the job
# what feedlake gives a local master, and the test session's interpreted, non-adaptive
# plans (tests/conftest.py): where the tasks run, which is what this test proves, is the same.
# Executors and the master/worker daemons compile with C1 only, as the test driver does:
# five JVMs share two cores here, and C2 recompiles code paths these tiny jobs never repay
# (this test -n 0, alternated runs: 185/161 s -> 147/159 s wall, 287 -> 236 busy core-seconds).
TINY_DATA_CONF = {
    **LOCAL_MASTER_CONF,
    **{k: v for k, v in TEST_SPARK_CONF["conf"].items() if k.startswith(("spark.sql.codegen", "spark.sql.adaptive"))},
    "spark.driver.extraJavaOptions": TEST_SPARK_CONF["conf"]["spark.driver.extraJavaOptions"],
    "spark.executor.extraJavaOptions": TEST_SPARK_CONF["conf"]["spark.driver.extraJavaOptions"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # A pytest run inside spark-submit must not look like a spark-submit child itself.
    for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "PYSPARK_SUBMIT_ARGS"):
        env.pop(key, None)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_DAEMON_MEMORY="256m",
        SPARK_DAEMON_JAVA_OPTS="-XX:TieredStopAtLevel=1",
        SPARK_LOG_DIR=str(tmp / "logs"),
        SPARK_WORKER_DIR=str(tmp / "work"),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    return env


def alive_workers(webui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=2) as resp:
            return int(json.load(resp).get("aliveworkers", 0))
    except OSError:
        return 0


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def standalone_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Start master + two workers (1 core, 1g each); yield (master URL, env); stop them."""
    tmp = tmp_path / "cluster"
    (tmp / "logs").mkdir(parents=True)
    env = cluster_env(tmp)
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, webui = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> None:
        log = open(tmp / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process until stop()
        procs.append(subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
               "--webui-port", str(webui))
        for i in range(WORKERS):
            launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                   "--memory", "1g", "--webui-port", str(free_port()), "--work-dir", str(tmp / f"work{i}"), master_url)
        deadline = time.monotonic() + START_TIMEOUT_S
        while alive_workers(webui) < WORKERS:
            dead = [p.args[1] for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted((tmp / "logs").glob("*.log")))
                pytest.fail(f"standalone cluster did not start (exited: {dead}):\n{logs}")
            time.sleep(1)
        yield master_url, env
    finally:
        stop(procs)


def cluster_landing(root: Path) -> Path:
    """The sample landing zone plus enough track files that tasks spread over executors."""
    shutil.copytree(REPO / "sample" / "landing", root)
    files = {}
    for day in range(1, 5):
        lines = [
            f'{{"event_text":"page {n % 7}","event_timestamp":{1709251200 + n},"contact_key":"c{n % 50}"}}'
            for n in range(day * 100, day * 100 + 400)  # overlapping ranges: duplicates across files
        ]
        files[f"tenant=acme/track/dt=2024-04-0{day}/bulk.jsonl.gz"] = jsonl(*lines)
    return write_files(root, files)


def event_log(events_dir: Path) -> list[dict]:
    """All events of the one application logged in ``events_dir`` (rolling logs: a folder of parts)."""
    apps = list(events_dir.iterdir())
    assert len(apps) == 1, f"expected one application event log, found {apps}"
    parts = sorted(apps[0].glob("events_*")) if apps[0].is_dir() else [apps[0]]
    wanted = ('"Event":"SparkListenerTaskEnd"', '"Event":"SparkListenerEnvironmentUpdate"', '"Event":"SparkListenerJobStart"')
    return [json.loads(line) for part in parts for line in part.read_text().splitlines() if line.startswith(wanted, 1)]


def test_spark_submit_runs_on_two_executors_with_the_delta_spark_merge_on_executors(spark, tmp_path, standalone_cluster):
    """spark-submit with delta-spark (issue #11): the MERGEs run as Spark jobs whose tasks ran on the executors."""
    master_url, env = standalone_cluster
    landing = cluster_landing(tmp_path / "landing")
    warehouse = tmp_path / "warehouse"
    bundle = build_bundle(tmp_path / "dist" / "feedlake.zip")
    events = tmp_path / "events"
    events.mkdir()

    command = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master", master_url,
        "--py-files", str(bundle),
        # The pinned Delta + S3A packages, from the Ivy cache the install step warmed (python -m feedlake.app.jars).
        "--packages", ",".join(jvm_packages()),
        *[arg for key, value in DELTA_SPARK_CONF.items() for arg in ("--conf", f"{key}={value}")],
        *[arg for key, value in TINY_DATA_CONF.items() for arg in ("--conf", f"{key}={value}")],
        "--driver-memory", "1g",
        "--conf", "spark.executor.memory=768m",
        "--conf", "spark.executor.cores=1",
        "--conf", f"spark.pyspark.python={sys.executable}",
        # Start only when both executors are there, so the work can spread.
        "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
        "--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=120s",
        "--conf", "spark.eventLog.enabled=true",
        "--conf", "spark.eventLog.compress=false",
        "--conf", f"spark.eventLog.dir={events.as_uri()}",
        str(REPO / "jobs" / "ingest.py"),
        # --profile local sets master local[2]: under spark-submit it must not win.
        "ingest", "--landing", str(landing), "--warehouse", str(warehouse), "--profile", "local",
        "--engine", "delta-spark", *without_quality(),  # quality is not under test here
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "feedlake run" in done.stdout

    log = event_log(events)
    environment = next(e for e in log if e["Event"] == "SparkListenerEnvironmentUpdate")
    assert environment["Spark Properties"]["spark.master"] == master_url
    assert bundle.name in environment["Spark Properties"]["spark.submit.pyFiles"]
    executors = {
        e["Task Info"]["Executor ID"]
        for e in log
        if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] == "Success"
    }
    assert "driver" not in executors
    assert len(executors) >= 2, f"tasks ran on executors {executors}"
    assert "(engine delta-spark)" in done.stdout

    # delta-spark's MERGE jobs (their descriptions name the operation) ran tasks on the executors.
    merge_stages = {
        stage
        for e in log
        if e["Event"] == "SparkListenerJobStart"
        and "MERGE" in json.dumps(e.get("Properties") or {}).upper()
        for stage in e["Stage IDs"]
    }
    assert merge_stages, "no MERGE job in the event log"
    merge_executors = {
        e["Task Info"]["Executor ID"]
        for e in log
        if e["Event"] == "SparkListenerTaskEnd" and e["Stage ID"] in merge_stages
    }
    assert merge_executors and "driver" not in merge_executors, f"MERGE tasks ran on {merge_executors}"

    # The same landing zone ingested in-process with local Spark gives the same tables.
    local = tmp_path / "warehouse-local"
    assert run_cli("ingest", "--landing", str(landing), "--warehouse", str(local), "--engine", "delta-rs",
                   *without_quality()) == 0
    assert_same_tables(spark, warehouse, local)
    events_rows = read_table(spark, warehouse, "contact_events").where("tenant_id = 'acme' AND event_text LIKE 'page %'")
    assert events_rows.count() == 700  # n in 100..799: every (contact, text, timestamp) once
