"""Frames the stages read several times (feedlake.settings.session.pinned / release; issue 14), and the Py4J view."""

from __future__ import annotations

import threading
from contextlib import nullcontext

import pytest
from chispa import assert_df_equality
from py4j.java_gateway import JavaClass
from pyspark import StorageLevel
from pyspark.sql import functions as F

from feedlake.settings.session import (
    PY4J_SINGLE_IMPORTS,
    MemoJavaClass,
    MemoJVMView,
    import_jvm_names,
    memoize_jvm_lookups,
    pinned,
    prepared_ahead,
    release,
    union_all,
)

SCHEMA = "k STRING, v BIGINT"


def test_a_pinned_frame_is_computed_once_and_starts_a_fresh_plan_on_a_local_master(spark, tmp_path, capsys):
    path = str(tmp_path / "rows")
    spark.createDataFrame([("a", 1), ("b", None), (None, 3)], SCHEMA).write.parquet(path)
    kept = pinned(spark.read.parquet(path).where(F.col("k").isNotNull()), StorageLevel.MEMORY_AND_DISK)
    # The files change after pinning: the pinned rows do not.
    spark.createDataFrame([("c", 9)], SCHEMA).write.mode("overwrite").parquet(path)
    expected = spark.createDataFrame([("a", 1), ("b", None)], SCHEMA)
    assert_df_equality(kept, expected, ignore_row_order=True, ignore_nullable=True)
    kept.where(F.col("v").isNull()).explain()
    plan = capsys.readouterr().out
    assert "ExistingRDD" in plan  # the checkpoint's blocks: the Parquet scan and its filter are gone
    assert "parquet" not in plan.lower()


def test_release_drops_a_cache_and_leaves_other_frames_alone(spark):
    cached = spark.range(3).persist(StorageLevel.MEMORY_AND_DISK)
    plain = spark.range(2)
    release(cached)
    release(plain)
    assert (cached.is_cached, plain.is_cached) == (False, False)
    assert_df_equality(cached, spark.range(3))


def test_a_released_checkpoint_gives_its_blocks_back(spark):
    rows = spark.createDataFrame([("a", 1), (None, None)], SCHEMA)
    kept = pinned(rows, StorageLevel.MEMORY_AND_DISK)
    assert_df_equality(kept, rows, ignore_row_order=True)
    release(kept)
    with pytest.raises(Exception, match="(?i)checkpoint block"):
        kept.collect()


@pytest.mark.parametrize("fqn", PY4J_SINGLE_IMPORTS)
def test_bare_class_names_pyspark_uses_resolve_through_a_single_import(spark, fqn):
    name = fqn.rsplit(".", 1)[1]
    bare = spark.sparkContext._gateway.new_jvm_view()  # noqa: SLF001 -- a view without PySpark's star imports
    assert not isinstance(getattr(bare, name), JavaClass)  # the name alone finds nothing
    import_jvm_names(bare)
    import_jvm_names(bare)  # idempotent
    assert getattr(bare, name)._fqn == fqn  # noqa: SLF001 -- the class the name now resolves to
    # The session's own view (prepare_session imported them) finds the same class.
    assert getattr(spark.sparkContext._jvm, name)._fqn == fqn  # noqa: SLF001


def test_the_session_view_resolves_a_class_and_a_static_method_once(spark, py4j_commands):
    assert type(spark.sparkContext._jvm) is MemoJVMView  # noqa: SLF001 -- prepare_session memoized the session's view
    F.col("warm")  # the first call may look functions.col up
    py4j_commands.clear()
    F.col("a")
    F.col("b")
    assert [c.split("\n")[:3] for c in py4j_commands] == [
        ["c", "z:org.apache.spark.sql.functions", "col"], ["c", "z:org.apache.spark.sql.functions", "col"],
    ]


def test_a_memoized_view_still_reads_fields_packages_and_new_objects(spark):
    view = spark.sparkContext._gateway.new_jvm_view()  # noqa: SLF001 -- a view of its own
    memoize_jvm_lookups(view)
    memoize_jvm_lookups(view)  # idempotent
    assert type(view) is MemoJVMView
    assert view.java.lang.Integer.toString(6) == "6"  # a package path: JavaPackage attribute look-ups, as before
    integer = getattr(view, "java.lang.Integer")
    assert type(integer) is MemoJavaClass
    assert (integer.MAX_VALUE, integer.MAX_VALUE) == (2**31 - 1, 2**31 - 1)  # a static field, read each time
    assert integer.toString(7) == "7"
    assert integer.toString(8) == "8"  # the same static method (memoized) with other arguments
    system = getattr(view, "java.lang.System")
    assert type(system) is MemoJavaClass
    assert getattr(view, "java.lang.System") is system
    listed = view.java.util.ArrayList()
    listed.add("x")
    assert listed.size() == 1
    with pytest.raises(Exception, match="does not exist"):
        system.noSuchMember  # noqa: B018 -- a missing member still raises, and is not cached


def test_union_all_matches_columns_by_name_and_needs_a_frame(spark):
    first = spark.createDataFrame([("a", 1), (None, None)], SCHEMA)
    swapped = spark.createDataFrame([(2, "b")], "v BIGINT, k STRING")
    expected = spark.createDataFrame([("a", 1), (None, None), ("b", 2)], SCHEMA)
    assert_df_equality(union_all([first, swapped]), expected, ignore_row_order=True)
    with pytest.raises(ValueError, match="at least one"):
        union_all([])


def test_prepared_ahead_yields_in_order_builds_at_most_threads_ahead_and_inherits_local_properties(spark):
    built: list[int] = []
    lock = threading.Lock()

    def prepare(i: int) -> tuple[int, str | None, str]:
        with lock:
            built.append(i)
        return i, spark.sparkContext.getLocalProperty("feedlake.test"), threading.current_thread().name

    spark.sparkContext.setLocalProperty("feedlake.test", "caller")
    try:
        got, waiting = [], []
        for result in prepared_ahead(spark, prepare, range(6), threads=2):
            with lock:
                waiting.append(len(built) - len(got) - 1)
            got.append(result)
    finally:
        spark.sparkContext.setLocalProperty("feedlake.test", None)
    assert [(i, prop) for i, prop, _ in got] == [(i, "caller") for i in range(6)]
    assert all(name.startswith("feedlake-prepare") for _, _, name in got)
    assert max(waiting) <= 2


@pytest.mark.parametrize("stop", ["break", "raise"])
def test_prepared_ahead_discards_what_the_consumer_never_took(spark, stop):
    """A consumer that stops (or a build that fails) leaves built results to ``discard``; later items are never built."""
    built: list[int] = []
    discarded: list[int] = []

    def prepare(i: int) -> int:
        built.append(i)
        if stop == "raise" and i == 1:
            raise ValueError("item 1 cannot be built")
        return i

    taken = []
    with pytest.raises(ValueError, match="item 1") if stop == "raise" else nullcontext():
        for i in prepared_ahead(spark, prepare, range(10), threads=2, discard=discarded.append):
            taken.append(i)
            if stop == "break":
                break
    assert taken == [0]
    # At most two items were submitted beyond the one asked for (any of them may be cancelled
    # before it starts); each one built and never taken is discarded once (the failed one has no result).
    assert 0 in built and set(built) <= set(range(3 if stop == "break" else 4))
    assert sorted(discarded) == sorted(set(built) - {0} - ({1} if stop == "raise" else set()))
