"""The quality gate and table checks on tiny inline batches: real Spark, real GX, real delta-rs."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import functions as F

from feedlake.delta.engines import DeltaRsEngine, DeltaSparkEngine
from feedlake.delta.merge import plan_for
from feedlake.quality import checks as checks_module
from feedlake.quality.checks import EXIT_QUALITY, Outcome, QualityChecks, QualityRun, prepare_table_check
from feedlake.quality.suites import load_quality
from feedlake.settings.config import load_config
from tests.conftest import read_table

BATCH_SCHEMA = "tenant_id string, event_key string, contact_key string, event_text string, event_timestamp bigint, _rank int"
MARCH_2024 = 1709251200
YEAR_2100 = 4102444800


@pytest.fixture(params=[None, 0], ids=["pandas", "gx-on-spark"])
def checks(request, spark, config, tmp_path):
    """QualityChecks of one run; the gate and the table checks validated in pandas (default)
    or, with ``quality.driver_max_rows: 0``, by GX's Spark data source: the same outcomes either way."""
    if request.param is not None:
        config = load_config(None, {"engine": "delta-rs", "quality": {"driver_max_rows": request.param}})

    def make(run_id: str) -> QualityChecks:
        engine = DeltaRsEngine(spark, str(tmp_path / "warehouse"))
        return QualityChecks(spark, config, engine, load_quality(None, config), str(tmp_path / "warehouse"), run_id)

    return make


def _outcomes(run: QualityRun, kind: str) -> dict[str, tuple]:
    return {o.expectation: (o.success, o.unexpected_count) for o in run.outcomes if o.kind == kind}


def test_a_critical_failure_blocks_and_names_the_expectation(spark, config, checks):
    batch = spark.createDataFrame(
        [
            ("acme", "e1", "c1", "signed up", MARCH_2024, 1),
            ("acme", "e2", "c1", "logged in", YEAR_2100, 1),  # more than a day in the future
            ("acme", "e3", None, "logged in", MARCH_2024, 1),  # null contact
            ("acme", "e1", "c1", "signed up", MARCH_2024, 2),  # a duplicate the dedupe dropped
        ],
        BATCH_SCHEMA,
    )
    gate = checks("run-1")
    reasons = gate.gate(config.stream("track"), {"contact_events": batch})
    assert reasons == {"acme": (
        "quality gate contact_events: expect_column_values_to_be_between(event_timestamp) (1 unexpected), "
        "expect_column_values_to_not_be_null(contact_key) (1 unexpected)"
    )}
    assert gate.run.blocked == ["acme/track"]
    assert _outcomes(gate.run, "gate") == {
        "expect_column_values_to_be_between(event_timestamp)": (False, 1),
        "expect_column_values_to_not_be_null(contact_key)": (False, 1),
        "expect_column_values_to_not_be_null(event_key)": (True, 0),
        # rows with _rank > 1 are not part of the batch that would be merged
        "expect_compound_columns_to_be_unique(tenant_id, contact_key, event_text, event_timestamp)": (True, 0),
    }


def test_one_gate_run_for_all_tenants_blocks_only_the_failing_ones(spark, config, checks):
    """Issue 12: the gate validates a stream's whole batch once; a failure costs validations per
    failing tenant, not per tenant, and every tenant's outcomes are those of its rows alone."""
    rows = [(f"t{i}", f"e{i}", "c1", "signed up", MARCH_2024, 1) for i in range(6)]
    rows += [
        ("t1", "e10", None, "logged in", MARCH_2024, 1),  # null contact
        ("t3", "e11", "c1", "logged in", YEAR_2100, 1),  # far future
        ("t4", "e12", "c1", "signed up", MARCH_2024, 1),  # a second row with t4's e4 compound key
        ("t4", "e13", "c1", "signed up", MARCH_2024, 2),  # not a winner: not validated
    ]
    gate = checks("run-1")
    batch = spark.createDataFrame(rows, BATCH_SCHEMA)
    reasons = gate.gate(config.stream("track"), {"contact_events": batch})
    assert reasons["t3"] == "quality gate contact_events: expect_column_values_to_be_between(event_timestamp) (1 unexpected)"
    assert sorted(reasons) == ["t1", "t3", "t4"]
    assert gate.run.blocked == ["t1/track", "t3/track", "t4/track"]
    assert len(gate.context.identifiers) == 1 + 3  # the batch, then t1, t3 and t4 alone
    between = {o.tenant_id: (o.success, o.element_count) for o in gate.run.outcomes
               if o.expectation == "expect_column_values_to_be_between(event_timestamp)"}
    assert between == {"t0": (True, 1), "t1": (True, 2), "t2": (True, 1), "t3": (False, 2), "t4": (True, 2), "t5": (True, 1)}
    # A passing tenant's outcomes are derived from the batch's (no validation of its own): as its rows alone give.
    alone = checks("run-t0")
    alone.gate(config.stream("track"), {"contact_events": batch.where(F.col("tenant_id") == "t0")})
    assert [o for o in gate.run.outcomes if o.tenant_id == "t0"] == alone.run.outcomes

    passing = checks("run-2")
    clean = spark.createDataFrame(rows[:5], BATCH_SCHEMA)
    assert passing.gate(config.stream("track"), {"contact_events": clean}) == {}
    assert sorted({o.tenant_id for o in passing.run.outcomes}) == ["t0", "t1", "t2", "t3", "t4"]
    assert all(o.success and o.element_count == 1 for o in passing.run.outcomes)


def test_a_warning_does_not_block(spark, config, checks):
    batch = spark.createDataFrame(
        [("acme", "c1", "paul@madkudu.com", 1), ("acme", "c2", "not an email", 1), ("acme", "c3", None, 2)],
        "tenant_id string, contact_key string, email string, _rank int",
    )
    gate = checks("run-1")
    assert gate.gate(config.stream("identify"), {"contacts": batch}) == {}
    failed = gate.run.failed()
    assert [(o.expectation, o.severity, o.unexpected_count, o.sample) for o in failed] == [
        ("expect_column_values_to_match_regex(email)", "warning", 1, '["not an email"]')
    ]
    assert gate.run.exit_code(None) == 0
    assert gate.run.exit_code("critical") == 0
    assert gate.run.exit_code("warning") == EXIT_QUALITY


def _rows(spark, table, rows):
    """Rows of a declared table from the columns given; every other column null."""
    return spark.createDataFrame([tuple(r.get(c) for c in table.column_names) for r in rows], table.ddl)


def _contacts(spark, config, rows):
    return _rows(spark, config.table("contacts"), [{"tenant_id": t, "contact_key": k, "_seq": "0"} for t, k in rows])


def test_row_counts_never_shrink_per_tenant(spark, config, checks, tmp_path):
    engine = DeltaRsEngine(spark, str(tmp_path / "warehouse"))
    table = config.table("contacts")
    for tenant, keys in (("a", ["c1", "c2", "c3"]), ("b", ["c1"])):
        engine.merge(table, _contacts(spark, config, [(tenant, k) for k in keys]), plan_for(table, tenant))
    first = checks("run-1")
    first.tables(None, ["contacts"])
    first.finish()
    DeltaTable(str(tmp_path / "warehouse" / "contacts")).delete("tenant_id = 'a' AND contact_key = 'c3'")
    second = checks("run-2")
    second.tables(None, ["contacts"])
    run = second.finish()
    assert [(o.tenant_id, o.expectation, o.sample) for o in run.failed("critical")] == [
        ("a", "row_count_never_shrinks", '[{"previous_rows": 3, "rows": 2}]')
    ]
    assert run.exit_code("critical") == EXIT_QUALITY
    stored = read_table(spark, tmp_path / "warehouse", "quality_results",
                        ["run_id", "tenant_id", "kind", "table_name", "expectation", "success", "observed_value"])
    expected = spark.createDataFrame(
        [
            ("run-1", "*", "table", "contacts", "expect_compound_columns_to_be_unique(tenant_id, contact_key)", True, None),
            ("run-1", "a", "table", "contacts", "row_count_never_shrinks", True, "3"),
            ("run-1", "b", "table", "contacts", "row_count_never_shrinks", True, "1"),
            ("run-2", "*", "table", "contacts", "expect_compound_columns_to_be_unique(tenant_id, contact_key)", True, None),
            ("run-2", "a", "table", "contacts", "row_count_never_shrinks", False, "2"),
            ("run-2", "b", "table", "contacts", "row_count_never_shrinks", True, "1"),
        ],
        "run_id string, tenant_id string, kind string, table_name string, expectation string, success boolean, "
        "observed_value string",
    ).orderBy("run_id", "tenant_id", "kind", "table_name", "expectation", "success", "observed_value")
    assert_df_equality(stored, expected, ignore_nullable=True)


def test_references_flag_events_whose_contact_is_unknown_in_that_tenant(spark, config, checks, tmp_path):
    engine = DeltaRsEngine(spark, str(tmp_path / "warehouse"))
    contacts, events = config.table("contacts"), config.table("contact_events")
    engine.merge(contacts, _contacts(spark, config, [("a", "c1")]), plan_for(contacts, "a"))
    rows = [("a", "e1", "c1"), ("b", "e2", "c1"), ("a", "e3", None)]  # b has no contact c1; null is not a reference
    events_df = _rows(spark, events, [
        {"tenant_id": t, "event_key": e, "contact_key": c, "event_text": "x", "event_timestamp": MARCH_2024, "_seq": "0"}
        for t, e, c in rows
    ])
    for tenant in ("a", "b"):
        engine.merge(events, events_df.where(f"tenant_id = '{tenant}'"), plan_for(events, tenant))
    run = checks("run-1")
    run.tables(None, ["contact_events"])
    failed = run.run.failed()
    assert [(o.tenant_id, o.expectation, o.severity, o.unexpected_count, o.sample) for o in failed] == [
        ("*", "expect_column_pair_values_to_be_equal(tenant_id/contact_key, contacts:tenant_id/contact_key)", "warning",
         1, '[["b/c1", null]]')
    ]


@pytest.fixture(scope="module")
def both_engines(spark, config, tmp_path_factory):
    """contacts (tenants a, b) and contact_events (a, b, z) MERGEd by delta-rs and by delta-spark."""
    root = tmp_path_factory.mktemp("both_engines")
    contacts, events = config.table("contacts"), config.table("contact_events")
    contact_rows = _contacts(spark, config, [("a", "c1"), ("b", "c2")])
    event_rows = _rows(spark, events, [
        {"tenant_id": t, "event_key": e, "contact_key": c, "event_text": "x", "event_timestamp": MARCH_2024, "_seq": "0"}
        for t, e, c in (("a", "e1", "c1"), ("a", "e2", "c2"), ("a", "e3", None), ("b", "e4", "c2"), ("z", "e5", "c1"))
    ])
    engines = (DeltaRsEngine(spark, str(root / "rs")), DeltaSparkEngine(spark, str(root / "ds")))
    for engine in engines:
        engine.merge(contacts, contact_rows, plan_for(contacts, ["a", "b"]))
        engine.merge(events, event_rows, plan_for(events, ["a", "b", "z"]))
    return engines


@pytest.mark.delta_spark
@pytest.mark.parametrize("driver_max_rows", [100, 0], ids=["pandas", "gx-on-spark"])
def test_a_table_check_counts_and_checks_the_same_rows_whether_the_log_or_the_frame_counts(
    spark, both_engines, driver_max_rows
):
    """delta-rs counts a table's rows per tenant from the Delta log; delta-spark's log cannot
    tell (deletion vectors), so the check frame (one row per stored row) counts them. Both give
    the same counts and the same frame, for every tenant in scope and none outside it."""
    config = load_config(None, {"engine": "delta-rs", "quality": {"driver_max_rows": driver_max_rows}})
    quality = load_quality(None, config)
    prepared = {
        engine.name: [
            prepare_table_check(engine, config, quality.checked([name])[0], tenants)
            for name, tenants in (("contact_events", ["a", "b", "nobody"]), ("contact_events", ["nobody"]),
                                  ("contacts", None))
        ]
        for engine in both_engines
    }
    for rs, ds in zip(prepared["delta-rs"], prepared["delta-spark"], strict=True):
        assert ds.rows == rs.rows
        if rs.frame is None or ds.frame is None:  # no stored row in scope: nothing to check
            assert rs.frame is ds.frame is None
            continue
        assert ds.in_driver == rs.in_driver == (driver_max_rows > 0)
        if rs.in_driver:
            assert_df_equality(spark.createDataFrame(ds.frame), spark.createDataFrame(rs.frame), ignore_row_order=True)
        else:
            assert_df_equality(ds.frame, rs.frame, ignore_row_order=True, ignore_nullable=True)
        rs.release()
        ds.release()
    assert [check.rows for check in prepared["delta-spark"]] == [{"a": 3, "b": 1}, {}, {"a": 1, "b": 1}]


def test_check_frames_are_built_ahead_of_gx_and_the_outcomes_are_those_of_one_table_at_a_time(
    spark, config, checks, tmp_path, monkeypatch
):
    """While GX validates one table, the next tables' frames are already being built on other
    threads (``CHECK_THREADS``); GX still takes the tables one after the other in name
    order, so the outcomes equal those of building one table at a time (``CHECK_THREADS = 0``)."""
    engine = DeltaRsEngine(spark, str(tmp_path / "warehouse"))
    contacts, events, links = config.table("contacts"), config.table("contact_events"), config.table("contact_accounts")
    engine.merge(contacts, _contacts(spark, config, [("a", "c1"), ("a", "c2"), ("b", "c1")]), plan_for(contacts, ["a", "b"]))
    engine.merge(events, _rows(spark, events, [
        {"tenant_id": t, "event_key": e, "contact_key": c, "event_text": "x", "event_timestamp": MARCH_2024, "_seq": "0"}
        for t, e, c in (("a", "e1", "c1"), ("b", "e2", "c9"), ("b", "e3", None))
    ]), plan_for(events, ["a", "b"]))
    engine.merge(links, _rows(spark, links, [
        {"tenant_id": t, "contact_key": c, "account_key": k, "_seq": "0"} for t, c, k in (("a", "c1", "x"), ("a", "c1", "y"))
    ]), plan_for(links, ["a"]))
    names = ["contact_accounts", "contact_events", "contacts"]

    monkeypatch.setattr(checks_module, "CHECK_THREADS", 0)
    alone = checks("run-1")
    alone.tables(None, names)

    monkeypatch.setattr(checks_module, "CHECK_THREADS", 2)
    ahead = checks("run-2")
    counted = {name: threading.Event() for name in names}
    row_counts, validate = ahead.engine.row_counts, ahead.context.run
    seen: list[tuple[str, bool]] = []

    def counting(table, tenants=None):
        counted[table.name].set()
        return row_counts(table, tenants)

    def validating(checkpoint, frame, *args, **kwargs):
        first = names[0] if not seen else None
        if first is not None:  # the second table's frame is being built while GX validates the first
            seen.append((first, counted[names[1]].wait(timeout=30)))
        return validate(checkpoint, frame, *args, **kwargs)

    monkeypatch.setattr(ahead.engine, "row_counts", counting)
    monkeypatch.setattr(ahead.context, "run", validating)
    ahead.tables(None, names)
    assert seen == [("contact_accounts", True)]
    assert ahead.run.outcomes == alone.run.outcomes
    assert {(o.table_name, o.expectation) for o in alone.run.failed()} == {
        ("contact_accounts", "expect_compound_columns_to_be_unique(tenant_id, contact_key)"),
        ("contact_accounts", "expect_column_pair_values_to_be_equal(tenant_id/account_key, accounts:tenant_id/account_key)"),
        ("contact_events", "expect_column_pair_values_to_be_equal(tenant_id/contact_key, contacts:tenant_id/contact_key)"),
    }


@pytest.mark.parametrize(
    ("severities", "fail_on", "code"),
    [
        ((), "critical", 0),
        (("warning",), None, 0),
        (("warning",), "critical", 0),
        (("warning",), "warning", EXIT_QUALITY),
        (("critical",), "critical", EXIT_QUALITY),
        (("critical",), "warning", EXIT_QUALITY),
    ],
)
def test_exit_code_follows_fail_on(severities, fail_on, code):
    run = QualityRun("r", datetime(2024, 1, 1, tzinfo=timezone.utc), [
        Outcome("table", "*", None, "t", f"x{i}", s, False) for i, s in enumerate(severities)
    ] + [Outcome("table", "*", None, "t", "ok", "critical", True)])
    assert run.exit_code(fail_on) == code


def test_a_run_validates_after_another_run_registered_the_same_suite(tmp_path):
    """Two runs on one warehouse (two tenants, concurrently) share its GX project: the one whose registered
    suite another run replaced meanwhile re-registers its own and validates, instead of failing on GX's
    freshness check ("ExpectationSuite ... has changed since it has last been saved")."""
    import pandas as pd

    from feedlake.quality.context import QualityContext
    from feedlake.quality.suites import ExpectationSpec

    specs = [ExpectationSpec("expect_column_values_to_not_be_null", {"column": "contact_key"}, "critical")]
    first, second = QualityContext(str(tmp_path / "_quality")), QualityContext(str(tmp_path / "_quality"))
    checkpoint = first.checkpoint("contacts.gate", "contacts", specs, {"result_format": "SUMMARY"})
    second.checkpoint("contacts.gate", "contacts", specs, {"result_format": "SUMMARY"})  # the other run, later
    frame = pd.DataFrame({"contact_key": ["a", None]})
    result = first.run(checkpoint, frame, {}, "run-1", datetime.now(timezone.utc))
    assert [r.success for r in result.run_results.values()] == [False]


def test_opening_a_project_declares_every_asset_and_a_reopen_keeps_their_ids(tmp_path):
    """Both data sources get every declared asset with its ``whole`` batch when the project opens; another
    run opening the same project later finds them all and rewrites nothing, so the ids the first run's
    checkpoints hold stay valid, and an asset nobody declared is still added when a checkpoint needs it."""
    from feedlake.quality.context import DATA_SOURCE, SPARK_SOURCE, WHOLE, QualityContext
    from feedlake.quality.suites import ExpectationSpec

    def ids(project: QualityContext) -> dict:
        sources = {name: project.context.data_sources.get(name) for name in (DATA_SOURCE, SPARK_SOURCE)}
        return {name: {asset.name: (str(asset.id), str(asset.get_batch_definition(WHOLE).id)) for asset in source.assets}
                for name, source in sources.items()}

    root = str(tmp_path / "_quality")
    first = ids(QualityContext(root, assets=["contacts", "accounts", "contacts"]))
    assert {name: sorted(assets) for name, assets in first.items()} == {
        DATA_SOURCE: ["accounts", "contacts"], SPARK_SOURCE: ["accounts", "contacts"]}
    assert QualityContext(root).context.data_sources.get(SPARK_SOURCE).persist is False
    again = QualityContext(root, assets=["accounts", "contacts"])
    assert ids(again) == first
    specs = [ExpectationSpec("expect_column_values_to_not_be_null", {"column": "event_key"}, "critical")]
    again.checkpoint("contact_events.gate", "contact_events", specs, {"result_format": "SUMMARY"})
    assert sorted(ids(again)[DATA_SOURCE]) == ["accounts", "contact_events", "contacts"]


@pytest.mark.parametrize("driver_max_rows", [None, 0], ids=["pandas", "gx-on-spark"])
def test_mostly_is_judged_on_each_tenants_own_rows(spark, tmp_path, driver_max_rows):
    """Tenant isolation: 80 % of the batch has a contact, but t9's only rows have none: t9 is blocked alone."""
    from feedlake.quality.suites import build_quality

    settings = {"engine": "delta-rs"} if driver_max_rows is None else {"engine": "delta-rs", "quality": {"driver_max_rows": 0}}
    config = load_config(None, settings)
    quality = build_quality(
        {"contact_events": {"batch": [
            {"expect": "expect_column_values_to_not_be_null", "column": "contact_key", "mostly": 0.75, "severity": "critical"},
        ]}},
        {}, config,
    )
    rows = [(f"t{i}", f"e{i}", "c1", "signed up", MARCH_2024, 1) for i in range(8)]
    rows += [("t9", "e90", None, "signed up", MARCH_2024, 1), ("t9", "e91", None, "logged in", MARCH_2024, 1)]
    rows += [("t0", "e02", None, "logged in", MARCH_2024, 1)]  # 1 of t0's 2 rows: 50 %, under 75 % too
    rows += [(f"t{i}", f"e{i}b", "c2", "logged in", MARCH_2024, 1) for i in range(1, 4)]
    gate = QualityChecks(spark, config, DeltaRsEngine(spark, str(tmp_path / "wh")), quality, str(tmp_path / "wh"), "run-1")
    reasons = gate.gate(config.stream("track"), {"contact_events": spark.createDataFrame(rows, BATCH_SCHEMA)})
    assert sorted(reasons) == ["t0", "t9"]
    outcomes = {o.tenant_id: (o.success, o.element_count, o.unexpected_count) for o in gate.run.outcomes}
    assert outcomes == {
        "t0": (False, 2, 1), "t1": (True, 2, 0), "t2": (True, 2, 0), "t3": (True, 2, 0), "t4": (True, 1, 0),
        "t5": (True, 1, 0), "t6": (True, 1, 0), "t7": (True, 1, 0), "t9": (False, 2, 2),
    }
