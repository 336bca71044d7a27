"""``feedlake export --segment`` against a real HTTP server on 127.0.0.1, and ``--outbox s3://`` on SeaweedFS.

The server records every request and answers 429 (with ``Retry-After``) and 500 to
some, as Segment's Tracking API does under load (issue 17 item 4b). The write key comes
from the environment and must never show up in the run's output.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import run_cli, without_quality, write_files
from tests.integration.conftest import BUCKET
from tests.integration.test_export import AS_OF, FIRST

pytestmark = pytest.mark.system

WRITE_KEY = "wk-test-4f1c9a7e"


class Recorder(BaseHTTPRequestHandler):
    """Records (time, path, auth, body); answers from the server's script, then 200."""

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server = self.server
        with server.lock:
            status = server.script.pop(0) if server.script else 200
            server.requests.append((time.monotonic(), self.path, self.headers.get("Authorization"), body, status))
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"success":true}' if status == 200 else b'{"error":"try again"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def segment_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.lock, server.requests, server.script = threading.Lock(), [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", params=["delta-rs", "delta-spark"])
def warehouse_of(request, tmp_path_factory):
    engine = request.param
    base = tmp_path_factory.mktemp(f"export-segment-{engine}")
    landing = write_files(base / "landing", FIRST)
    assert run_cli("ingest", "--landing", str(landing), "--warehouse", str(base / "wh"), "--engine", engine,
                   *without_quality()) == 0
    return engine, base / "wh"


def export(*args: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = run_cli("export", *args)
    print(buffer.getvalue())
    return code, buffer.getvalue()


def wait_until_quiet(server, quiet_seconds: float = 2.0, limit: float = 60.0) -> None:
    """Return once the server has had no request for ``quiet_seconds``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with server.lock:
            last = server.requests[-1][0] if server.requests else 0.0
        if time.monotonic() - last >= quiet_seconds:
            return
        time.sleep(0.2)
    raise AssertionError("the Segment test server never went quiet")


def accepted_messages(server) -> list[dict]:
    return [m for _, _, _, body, status in server.requests if status == 200 for m in json.loads(body)["batch"]]


def test_batches_auth_retries_and_exactly_once(warehouse_of, segment_server, monkeypatch, capfd):
    engine, warehouse = warehouse_of
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    url = f"http://127.0.0.1:{segment_server.server_port}/v1/batch"
    common = ("--segment", "--warehouse", str(warehouse), "--engine", engine, "--set", AS_OF,
              "--set", f"export.segment_url={url}", "--set", "export.max_batch_bytes=1500",
              "--set", "export.backoff_seconds=0.01", "--set", "export.max_backoff_seconds=3")

    # 1. Every attempt fails (500): the run fails and records nothing.
    segment_server.script = [500] * 40
    code, _ = export(*common, "--set", "export.max_attempts=2")
    assert code == 1
    failed_ids = {m["messageId"] for m in accepted_messages(segment_server)}
    assert failed_ids == set()
    # A failed Spark job returns before its other tasks' Python workers stop: one may still be
    # posting (and would take the 429/500 scripted for step 2). Wait until the server is quiet.
    wait_until_quiet(segment_server)
    segment_server.requests.clear()

    # 2. 429 (Retry-After: 1) then 500 on the first requests, then 200: retried and delivered.
    segment_server.script = [429, 500]
    code, out = export(*common)
    assert code == 0
    requests = segment_server.requests
    assert all(path == "/v1/batch" for _, path, _, _, _ in requests)
    assert {auth for _, _, auth, _, _ in requests} == {"Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    assert all(len(body) <= 1500 for _, _, _, body, _ in requests)
    statuses = [s for *_, s in requests]
    assert statuses.count(429) == 1 and statuses.count(500) == 1
    first_429 = next(i for i, r in enumerate(requests) if r[4] == 429)
    # the retry of the 429'd batch waited for Retry-After (1 s), not the 0.01 s backoff
    assert any(r[0] - requests[first_429][0] >= 0.9 for r in requests[first_429 + 1:])
    messages = accepted_messages(segment_server)
    ids = [m["messageId"] for m in messages]
    assert len(ids) == len(set(ids)) == 10  # 3 identify + 2 group + 5 track, each once
    # 1500-byte batches: as many as the messages' bytes need at least, never one for all
    delivered = [r for r in requests if r[4] == 200]
    payload = sum(len(json.dumps(m, separators=(",", ":")).encode()) for m in messages)
    assert len(delivered) >= max(2, -(-payload // 1500))
    assert {m["type"] for m in messages} == {"identify", "group", "track"}
    for _, _, _, body, _ in requests:
        assert json.loads(body)["sentAt"].endswith("Z")
    total = out.split("\nTOTAL")[1].split()
    assert total[:3] == ["10", str(len([r for r in requests if r[4] == 200])), "2"]  # messages, batches, retries
    assert WRITE_KEY not in out and WRITE_KEY not in capfd.readouterr().err

    # 3. Nothing changed: nothing is sent.
    segment_server.requests.clear()
    code, out = export(*common)
    assert code == 0 and segment_server.requests == []


def test_missing_write_key_is_a_config_error(warehouse_of, monkeypatch):
    engine, warehouse = warehouse_of
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    assert run_cli("export", "--segment", "--warehouse", str(warehouse), "--engine", engine) == 2


def test_usage_errors_exit_2(warehouse_of):
    engine, warehouse = warehouse_of
    with pytest.raises(SystemExit) as both:
        run_cli("export", "--segment", "--outbox", "x", "--warehouse", str(warehouse))
    assert both.value.code == 2
    assert run_cli("export", "--outbox", "x", "--warehouse", str(warehouse), "--since-version", "-1") == 2
    assert run_cli("export", "--outbox", "x", "--warehouse", str(warehouse), "--set", "export.write_key=abc") == 2


def test_outbox_on_s3(warehouse_of, s3_env, s3_prefix):
    engine, warehouse = warehouse_of
    code, out = export("--outbox", s3_prefix, "--warehouse", str(warehouse), "--engine", engine, "--set", AS_OF,
                       "--since-version", "0")
    assert code == 0
    client = s3_env.client()
    prefix = s3_prefix.removeprefix(f"s3://{BUCKET}/")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert keys and all(k.startswith(f"{prefix}/tenant=acme/segment/dt=") and k.endswith(".jsonl.gz") for k in keys)
    lines = [json.loads(x) for k in keys
             for x in gzip.decompress(client.get_object(Bucket=BUCKET, Key=k)["Body"].read()).decode().splitlines()]
    assert {m["type"] for m in lines} == {"identify", "group", "track"}
    assert len({m["messageId"] for m in lines}) == len(lines) >= 10
