"""Delta tables on S3 through delta-rs with feedlake's storage options: commits are safe.

Two writers that both read version 1 race for version 2: with conditional puts
(``If-None-Match: *`` on ``_delta_log/<version>.json``) the second one finds the
version taken, re-checks for conflicts and commits as version 3; nothing is lost or
overwritten. Without them (``conditional_put: disabled``) delta-rs refuses to commit
rather than risk an overwrite.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from feedlake.delta.engines import delta_rs_storage_options
from tests.integration.conftest import BUCKET

pytestmark = pytest.mark.s3


def test_stale_writer_commits_after_the_winner_instead_of_overwriting(s3_env, s3_prefix):
    path = f"{s3_prefix}/race"
    options = delta_rs_storage_options()
    assert options["AWS_ALLOW_HTTP"] == "true"  # from AWS_ENDPOINT_URL alone
    write_deltalake(path, pa.table({"n": [0]}), storage_options=options)
    write_deltalake(path, pa.table({"n": [1]}), mode="append", storage_options=options)
    slow, fast = DeltaTable(path, storage_options=options), DeltaTable(path, storage_options=options)
    assert slow.version() == fast.version() == 1

    write_deltalake(fast, pa.table({"n": [2]}), mode="append")
    commit_2 = s3_env.client().get_object(
        Bucket=BUCKET, Key=f"{s3_prefix.removeprefix(f's3://{BUCKET}/')}/race/_delta_log/00000000000000000002.json"
    )["Body"].read()
    write_deltalake(slow, pa.table({"n": [3]}), mode="append")  # still believes version 1 is the latest

    table = DeltaTable(path, storage_options=options)
    assert table.version() == 3
    assert sorted(table.to_pyarrow_table()["n"].to_pylist()) == [0, 1, 2, 3]
    assert s3_env.client().get_object(
        Bucket=BUCKET, Key=f"{s3_prefix.removeprefix(f's3://{BUCKET}/')}/race/_delta_log/00000000000000000002.json"
    )["Body"].read() == commit_2


def test_without_conditional_put_delta_rs_refuses_to_commit(s3_env, s3_prefix):
    options = {**delta_rs_storage_options(), "conditional_put": "disabled"}
    with pytest.raises(OSError, match="conditional put is disabled"):
        write_deltalake(f"{s3_prefix}/unsafe", pa.table({"n": [0]}), storage_options=options)
