"""Tenant leases (feedlake.ingest.lease): one writer per tenant, other tenants free, a killed holder blocks no one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from feedlake.ingest.lease import LeaseSettings, LeaseTimeout, tenant_leases

FAST = LeaseSettings(wait_seconds=1.5, ttl_seconds=3, poll_seconds=0.05)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from feedlake.ingest.lease import tenant_leases
    with tenant_leases(sys.argv[1], sys.argv[2].split(",")):
        print("held", flush=True)
        time.sleep(600)
    """
)


def hold(warehouse, tenants: str) -> subprocess.Popen:
    """Another process (another run) holding the leases of ``tenants`` until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse), tenants], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_leased_tenant_waits_and_other_tenants_do_not(tmp_path):
    holder = hold(tmp_path, "acme")
    try:
        with tenant_leases(str(tmp_path), ["globex", "initech"], FAST):
            pass  # other tenants: taken at once
        started = time.monotonic()
        with pytest.raises(LeaseTimeout, match="tenant acme"):
            with tenant_leases(str(tmp_path), ["globex", "acme"], FAST):
                pytest.fail("acme is leased by the other process")
        assert time.monotonic() - started >= FAST.wait_seconds
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_releases_its_tenants(tmp_path):
    holder = hold(tmp_path, "acme,globex")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with tenant_leases(str(tmp_path), ["acme", "globex"], FAST):
        assert sorted(p.name for p in (tmp_path / "_leases").iterdir()) == ["acme.lock", "globex.lock"]


def test_a_waiting_run_proceeds_when_the_holder_finishes(tmp_path):
    holder = hold(tmp_path, "acme")
    patient = LeaseSettings(wait_seconds=30, ttl_seconds=3, poll_seconds=0.05)
    started = time.monotonic()
    subprocess.Popen(["sh", "-c", f"sleep 1; kill {holder.pid}"])
    with tenant_leases(str(tmp_path), ["acme"], patient):
        waited = time.monotonic() - started
    holder.wait()
    assert 0.8 <= waited < 30


@pytest.mark.parametrize("tenant", ["", "../x", "a/b", ".."])
def test_only_tenant_ids_name_a_lease(tmp_path, tenant):
    with pytest.raises(ValueError):
        with tenant_leases(str(tmp_path), [tenant], FAST):
            pass
