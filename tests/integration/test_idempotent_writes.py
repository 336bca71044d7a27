"""Delta idempotent transaction ids: a replayed batch cannot apply twice (issue #13).

Every commit of a batch carries a ``txn`` action (app id + version) derived from the
batch's input (:func:`feedlake.delta.engines.idempotent_writes`); a replay of the same batch
skips the commits that had landed and runs the ones that had not. Both engines, on real
Delta tables; a table written by one engine is recognized by the other (the ids live in
the Delta log, not in feedlake).
"""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from feedlake.delta.engines import idempotent_writes, make_engine
from feedlake.delta.merge import delete_plan, plan_for
from feedlake.settings.config import TableSpec

pytestmark = pytest.mark.delta_spark

ENGINES = ("delta-rs", "delta-spark")
TABLE = TableSpec(
    "txn_rows", (("tenant_id", "string"), ("k", "string"), ("v", "string"), ("_seq", "string")), ("tenant_id", "k"), "row"
)
SCHEMA = "tenant_id STRING, k STRING, v STRING, _seq STRING"


class Crash(Exception):
    """Stands for a run killed between two commits."""


@pytest.fixture(params=ENGINES)
def engine(request, spark, tmp_path):
    return make_engine(spark, str(tmp_path / "wh"), request.param)


def rows(spark, *values):
    return spark.createDataFrame(list(values), SCHEMA)


def stored(engine, spark, *values):
    assert_df_equality(engine.read(TABLE, ["t"]), rows(spark, *values), ignore_row_order=True, ignore_nullable=True)


def test_a_replayed_merge_is_skipped_and_a_new_batch_applies(engine, spark):
    with idempotent_writes(engine, "batch-1"):
        engine.merge(TABLE, rows(spark, ("t", "a", "a1", "1")), plan_for(TABLE, "t"))
    version = engine.version(TABLE)
    with idempotent_writes(engine, "batch-1"):
        replay = engine.merge(TABLE, rows(spark, ("t", "a", "a2", "2")), plan_for(TABLE, "t"))
    assert (replay.inserted, replay.updated, engine.version(TABLE)) == (0, 0, version)
    stored(engine, spark, ("t", "a", "a1", "1"))
    with idempotent_writes(engine, "batch-2"):
        engine.merge(TABLE, rows(spark, ("t", "a", "a2", "2")), plan_for(TABLE, "t"))
    assert engine.version(TABLE) == version + 1
    stored(engine, spark, ("t", "a", "a2", "2"))


def test_a_replay_after_a_crash_runs_only_the_commits_that_had_not_landed(engine, spark):
    """Killed after its first commit, the batch's rerun skips that commit and runs the second.

    The first commit is a delete: applied twice it would remove the row another batch
    wrote in between, which the transaction id prevents.
    """
    engine.merge(TABLE, rows(spark, ("t", "a", "a1", "1"), ("t", "b", "b1", "1")), plan_for(TABLE, "t"))
    keys = spark.createDataFrame([("t", "a")], "tenant_id STRING, k STRING")
    with pytest.raises(Crash), idempotent_writes(engine, "batch-3"):
        assert engine.delete_matching(TABLE, keys, delete_plan(TABLE, ["tenant_id", "k"], ["t"])) == 1
        raise Crash
    engine.merge(TABLE, rows(spark, ("t", "a", "a9", "9")), plan_for(TABLE, "t"))  # another batch, in between
    with idempotent_writes(engine, "batch-3"):
        assert engine.delete_matching(TABLE, keys, delete_plan(TABLE, ["tenant_id", "k"], ["t"])) == 0
        engine.merge(TABLE, rows(spark, ("t", "c", "c1", "1")), plan_for(TABLE, "t"))
    stored(engine, spark, ("t", "a", "a9", "9"), ("t", "b", "b1", "1"), ("t", "c", "c1", "1"))


def test_two_writes_of_one_plan_in_a_batch_both_apply_and_both_replay_as_skipped(engine, spark):
    with idempotent_writes(engine, "batch-4"):
        engine.merge(TABLE, rows(spark, ("t", "a", "a1", "1")), plan_for(TABLE, "t"))
        engine.merge(TABLE, rows(spark, ("t", "b", "b1", "1")), plan_for(TABLE, "t"))
    version = engine.version(TABLE)
    with idempotent_writes(engine, "batch-4"):
        engine.merge(TABLE, rows(spark, ("t", "a", "a2", "2")), plan_for(TABLE, "t"))
        engine.merge(TABLE, rows(spark, ("t", "b", "b2", "2")), plan_for(TABLE, "t"))
    assert engine.version(TABLE) == version
    stored(engine, spark, ("t", "a", "a1", "1"), ("t", "b", "b1", "1"))


@pytest.mark.parametrize(("first", "second"), [ENGINES, ENGINES[::-1]])
def test_the_other_engine_honours_the_ids_in_the_log(spark, tmp_path, first, second):
    warehouse = str(tmp_path / "wh")
    with idempotent_writes(writer := make_engine(spark, warehouse, first), "batch-5"):
        writer.merge(TABLE, rows(spark, ("t", "a", "a1", "1")), plan_for(TABLE, "t"))
    other = make_engine(spark, warehouse, second)
    with idempotent_writes(other, "batch-5"):
        other.merge(TABLE, rows(spark, ("t", "a", "a2", "2")), plan_for(TABLE, "t"))
    stored(other, spark, ("t", "a", "a1", "1"))
