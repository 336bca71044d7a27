"""Tenant leases on an S3 warehouse (conditional puts on the real SeaweedFS server of the test run)."""

from __future__ import annotations

import json
import time

import pytest

from feedlake.ingest.lease import LeaseSettings, LeaseTimeout, tenant_leases
from feedlake.landing.storage import parse_s3_uri

pytestmark = pytest.mark.s3

FAST = LeaseSettings(wait_seconds=1.5, ttl_seconds=3, poll_seconds=0.05)


def lease_object(client, warehouse: str, tenant: str) -> dict:
    loc = parse_s3_uri(f"{warehouse}/_leases/{tenant}.json")
    return json.loads(client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read())


def test_one_holder_per_tenant_released_at_the_end(s3_env, s3_prefix):
    warehouse = f"{s3_prefix}/warehouse"
    with tenant_leases(warehouse, ["acme"], FAST):
        assert lease_object(s3_env.client(), warehouse, "acme")["expires_at"] > time.time()
        with tenant_leases(warehouse, ["globex"], FAST):
            pass  # another tenant: free
        with pytest.raises(LeaseTimeout, match="tenant acme"):
            with tenant_leases(warehouse, ["acme"], FAST):
                pytest.fail("acme is leased")
    with tenant_leases(warehouse, ["acme"], FAST):
        pass  # released


def test_an_expired_lease_of_a_killed_run_is_taken_over(s3_env, s3_prefix):
    warehouse = f"{s3_prefix}/warehouse"
    loc = parse_s3_uri(f"{warehouse}/_leases/acme.json")
    # What a SIGKILLed run leaves: its lease object, no heartbeat renewing it.
    s3_env.client().put_object(
        Bucket=loc.bucket, Key=loc.key, Body=json.dumps({"owner": "dead", "expires_at": time.time() - 1}).encode()
    )
    with tenant_leases(warehouse, ["acme"], FAST):
        assert lease_object(s3_env.client(), warehouse, "acme")["owner"] != "dead"


def test_the_heartbeat_keeps_a_long_run_leased(s3_env, s3_prefix):
    warehouse = f"{s3_prefix}/warehouse"
    short = LeaseSettings(wait_seconds=1.0, ttl_seconds=1.5, poll_seconds=0.05)
    with tenant_leases(warehouse, ["acme"], short):
        time.sleep(2 * short.ttl_seconds)  # longer than the ttl: renewed meanwhile
        with pytest.raises(LeaseTimeout):
            with tenant_leases(warehouse, ["acme"], short):
                pytest.fail("the lease expired although its holder is alive")
