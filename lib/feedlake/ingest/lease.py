"""Tenant leases: two runs never write the same tenant's partitions at once (issue #13, item 6).

Delta commits of two runs on **different** tenants do not conflict (each MERGE is scoped
to its tenants' partitions: delta-rs and delta-spark both commit them side by side).
Two runs on the **same** tenant would: the second commit fails (a concurrent transaction
added data), and the attribute-policy MERGE resolves each attribute against the stored
rows it read, so committing it over an interleaved run's update would lose that update.
So a run holds a lease on each tenant it writes, taken up front in sorted order (no
deadlock between two runs) and released when it ends; a run that finds a tenant leased
waits for it (``concurrency.lease_wait_seconds``, then it fails without writing anything,
and the next run takes its files up again).

* Local warehouse: ``WAREHOUSE/_leases/<tenant>.lock`` held with ``flock``; the kernel
  releases it when the holding process ends, however it ends (a SIGKILLed run blocks no one).
* S3 warehouse: ``WAREHOUSE/_leases/<tenant>.json`` created with a conditional put
  (``If-None-Match: *``) holding an owner id and an expiry; a heartbeat thread renews it
  (``If-Match`` the lease's ETag); a lease past its expiry (its holder was killed) is
  taken over with ``If-Match`` on the expired lease's ETag, so only one waiter wins.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from feedlake.settings.job import LeaseSettings
from feedlake.settings.locations import is_remote

log = logging.getLogger("feedlake.ingest.lease")

LEASES = "_leases"


class LeaseTimeout(RuntimeError):
    """Another run kept a tenant leased for longer than this run was willing to wait."""


def _lease_name(tenant: str) -> str:
    # Tenant ids are [A-Za-z0-9_.-] (feedlake.landing.layouts); anything else never reaches a path.
    if not tenant or "/" in tenant or tenant in (".", ".."):
        raise ValueError(f"not a tenant id: {tenant!r}")
    return tenant


@contextmanager
def tenant_leases(warehouse: str, tenants: Sequence[str], settings: LeaseSettings | None = None, s3=None) -> Iterator[None]:
    """Hold a lease on every tenant of ``tenants`` (sorted: no two runs wait on each other in a cycle)."""
    settings = settings or LeaseSettings()
    with ExitStack() as stack:
        for tenant in sorted(set(tenants)):
            if is_remote(warehouse):
                stack.enter_context(_s3_lease(warehouse, _lease_name(tenant), settings, s3))
            else:
                stack.enter_context(_local_lease(warehouse.removeprefix("file://"), _lease_name(tenant), settings))
        yield


def _timeout(tenant: str, settings: LeaseSettings, where: str) -> LeaseTimeout:
    return LeaseTimeout(
        f"tenant {tenant}: another feedlake run held its lease for over {settings.wait_seconds:.0f}s "
        f"({where}); nothing was written, the next run takes these files up again"
    )


@contextmanager
def _local_lease(warehouse: str, tenant: str, settings: LeaseSettings) -> Iterator[None]:
    import fcntl

    folder = os.path.join(warehouse, LEASES)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{tenant}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + settings.wait_seconds
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("tenant %s is being written by another run: waiting for it", tenant)
                    waited = True
                if time.monotonic() > deadline:
                    raise _timeout(tenant, settings, path) from None
                time.sleep(settings.poll_seconds)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextmanager
def _s3_lease(warehouse: str, tenant: str, settings: LeaseSettings, s3) -> Iterator[None]:
    from botocore.exceptions import ClientError

    from feedlake.landing.storage import parse_s3_uri, s3_client

    location = parse_s3_uri(warehouse.rstrip("/") + f"/{LEASES}/{tenant}.json")
    client = s3_client(s3)
    owner = uuid.uuid4().hex

    def body() -> bytes:
        return json.dumps({"owner": owner, "expires_at": time.time() + settings.ttl_seconds}).encode()

    def put(**condition) -> str | None:
        try:
            return client.put_object(Bucket=location.bucket, Key=location.key, Body=body(), **condition)["ETag"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return None
            raise

    deadline = time.monotonic() + settings.wait_seconds
    etag = None
    waited = False
    while etag is None:
        etag = put(IfNoneMatch="*")
        if etag is None:
            try:
                current = client.get_object(Bucket=location.bucket, Key=location.key)
                held = json.loads(current["Body"].read() or b"{}")
                if float(held.get("expires_at", 0)) < time.time():
                    etag = put(IfMatch=current["ETag"])  # take over an expired lease: one waiter wins
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
        if etag is None:
            if not waited:
                log.info("tenant %s is being written by another run: waiting for it", tenant)
                waited = True
            if time.monotonic() > deadline:
                raise _timeout(tenant, settings, location.uri)
            time.sleep(settings.poll_seconds)
    stop = threading.Event()
    state = {"etag": etag}

    def heartbeat() -> None:
        while not stop.wait(settings.ttl_seconds / 3):
            renewed = put(IfMatch=state["etag"])
            if renewed is None:
                log.error("tenant %s: lost the lease (%s)", tenant, location.uri)
                return
            state["etag"] = renewed

    renewer = threading.Thread(target=heartbeat, name=f"lease-{tenant}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        try:
            client.delete_object(Bucket=location.bucket, Key=location.key)
        except ClientError:
            log.warning("tenant %s: could not remove the lease %s (it expires by itself)", tenant, location.uri)
