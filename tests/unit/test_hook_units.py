"""Each ingest hook called directly on a temporary warehouse (a :func:`feedlake.ingest.hooks.hook_context`, no ingest run)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from feedlake.delta.merge import plan_for
from feedlake.derived.activity import ActivityHook
from feedlake.derived.metric_rollup import MetricsHook
from feedlake.derived.remaps import EntityMapHook
from feedlake.ingest.hooks import HookContext, batch_tenants, hook_context
from feedlake.quality.checks import QualityGate
from feedlake.settings.config import FeedlakeConfig

W10 = date(2024, 3, 4)  # Monday of ISO week 2024-W10
W12 = date(2024, 3, 18)


def ts(text: str) -> int:
    """Unix seconds of a UTC ISO time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def rows(config: FeedlakeConfig, table: str, *values: Mapping[str, Any]) -> DataFrame:
    """Rows of ``table`` with its exact schema; every column not given is null."""
    spec = config.table(table)
    for value in values:
        unknown = set(value) - set(spec.column_names)
        assert not unknown, f"{table} has no columns {sorted(unknown)}"
    data = [tuple(value.get(c) for c in spec.column_names) for value in values]
    return SparkSession.active().createDataFrame(data, spec.ddl)


def table_rows(config: FeedlakeConfig, table: str, *values: tuple) -> DataFrame:
    """Expected rows of ``table``, given in its column order."""
    return SparkSession.active().createDataFrame(list(values), config.table(table).ddl)


def store(context: HookContext, table: str, frame: DataFrame) -> None:
    """MERGE ``frame`` into the warehouse table as a run would (the table's policy, the frame's tenants)."""
    spec = context.config.table(table)
    context.engine.merge(spec, frame, plan_for(spec, batch_tenants(frame)))


def stored(context: HookContext, table: str) -> DataFrame:
    return context.engine.read(context.config.table(table))


def version(context: HookContext, table: str) -> int:
    """The table's Delta version (one more per commit)."""
    from deltalake import DeltaTable

    return DeltaTable(f"{context.warehouse}/{table}").version()


@pytest.fixture
def context(spark: SparkSession, config: FeedlakeConfig, tmp_path: Path) -> HookContext:
    """A hook context on an empty warehouse under ``tmp_path`` (engine delta-rs, from the ``config`` fixture)."""
    return hook_context(spark, config, str(tmp_path / "warehouse"))


# --- feedlake.derived.activity.ActivityHook -----------------------------------------------------


def event(tenant: str, contact: str | None, text: str, at: str, seq: str = "1") -> dict[str, Any]:
    return {"tenant_id": tenant, "event_key": f"{contact}-{text}-{at}", "contact_key": contact, "event_text": text,
            "event_timestamp": ts(at), "_seq": seq}


def link(tenant: str, contact: str, account: str | None, seq: str = "1") -> dict[str, Any]:
    return {"tenant_id": tenant, "contact_key": contact, "account_key": account, "_seq": seq}


def test_activity_recomputes_exactly_the_weeks_of_the_batch_events(config: FeedlakeConfig, context: HookContext) -> None:
    """After a contact_events MERGE, the (tenant, week) slices the batch touches are recomputed from the stored
    events of those weeks (all of them, not only the batch's) with each contact's account (NULL without a link);
    stale rows of those slices are deleted and other weeks are left as they are."""
    batch = rows(config, "contact_events",
                 event("t", "c1", "login", "2024-03-06T09:00:00"), event("u", "c1", "login", "2024-03-05T12:00:00"))
    earlier = rows(config, "contact_events",
                   event("t", "c1", "login", "2024-03-04T00:00:00"),  # Monday, first second of W10
                   event("t", "c1", "login", "2024-03-04T23:59:59"),  # same UTC day
                   event("t", "c1", "export", "2024-03-10T23:59:59"),  # Sunday, last second of W10
                   event("t", "c3", "login", "2024-03-05T08:00:00"),  # c3 has no account link
                   event("t", "c1", "login", "2024-03-18T10:00:00"))  # W12: not in the batch's weeks
    store(context, "contact_events", earlier.unionByName(batch))
    store(context, "contact_accounts", rows(config, "contact_accounts", link("t", "c1", "acc1"), link("u", "c1", "acc9")))
    store(context, "activity_weekly", table_rows(
        config, "activity_weekly",
        ("t", "acc1", "c1", "login", W10, "2024-W10", 2, 1),  # counted before the batch: updated
        ("t", "acc1", "c1", "logout", W10, "2024-W10", 1, 1),  # no such event in W10 any more: deleted
        ("t", "acc1", "c1", "login", W12, "2024-W12", 7, 7),  # another week: untouched
    ))

    ActivityHook(config).after_merge(context, config.stream("track"), "contact_events", batch)

    expected = table_rows(
        config, "activity_weekly",
        ("t", "acc1", "c1", "login", W10, "2024-W10", 3, 2),
        ("t", "acc1", "c1", "export", W10, "2024-W10", 1, 1),
        ("t", None, "c3", "login", W10, "2024-W10", 1, 1),
        ("t", "acc1", "c1", "login", W12, "2024-W12", 7, 7),
        ("u", "acc9", "c1", "login", W10, "2024-W10", 1, 1),
    )
    assert_df_equality(stored(context, "activity_weekly"), expected, ignore_row_order=True, ignore_nullable=True)
    one_write = ["activity_weekly +3 ~1 -1"]  # both tenants' slices in one write
    assert context.extras["activity"] == {
        "t": {"weeks_recomputed": ["2024-03-04"], "writes": one_write},
        "u": {"weeks_recomputed": ["2024-03-04"], "writes": one_write},
    }


def test_activity_follows_a_contact_to_its_new_account(config: FeedlakeConfig, context: HookContext) -> None:
    """After a contact_accounts MERGE, the stored activity rows of the batch's contacts point to their current
    account (also a contact that had none); other contacts' rows keep theirs."""
    store(context, "activity_weekly", table_rows(
        config, "activity_weekly",
        ("t", "acc1", "c1", "login", W10, "2024-W10", 3, 2),
        ("t", "acc1", "c1", "login", W12, "2024-W12", 1, 1),
        ("t", None, "c2", "login", W10, "2024-W10", 1, 1),
        ("t", "acc1", "c3", "login", W10, "2024-W10", 4, 3),
    ))
    store(context, "contact_accounts", rows(config, "contact_accounts", link("t", "c1", "acc1"), link("t", "c3", "acc1")))
    batch = rows(config, "contact_accounts", link("t", "c1", "acc2", seq="2"), link("t", "c2", "acc5", seq="2"))
    store(context, "contact_accounts", batch)

    ActivityHook(config).after_merge(context, config.stream("group"), "contact_accounts", batch)

    expected = table_rows(
        config, "activity_weekly",
        ("t", "acc2", "c1", "login", W10, "2024-W10", 3, 2),
        ("t", "acc2", "c1", "login", W12, "2024-W12", 1, 1),
        ("t", "acc5", "c2", "login", W10, "2024-W10", 1, 1),
        ("t", "acc1", "c3", "login", W10, "2024-W10", 4, 3),
    )
    assert_df_equality(stored(context, "activity_weekly"), expected, ignore_row_order=True, ignore_nullable=True)
    assert context.extras["activity"] == {"t": {"writes": ["activity_weekly +0 ~3 -0 (contacts re-pointed to their account)"]}}


# --- feedlake.derived.remaps.EntityMapHook --------------------------------------------------


def account_event(tenant: str, system: str, source_id: str, account: str | None = None) -> dict[str, Any]:
    """An account event as the account_event stream stores it: ``account_key`` = the id as sent while unmapped."""
    return {"tenant_id": tenant, "account_key": account or source_id, "source_system": system,
            "source_account_id": source_id, "event_text": "opportunity won", "event_timestamp": ts("2024-03-05T10:00:00"),
            "_seq": "1"}


def mapping(source_id: str, account: str, seq: str) -> dict[str, Any]:
    return {"tenant_id": "t", "source_system": "salesforce", "source_id": source_id, "account_key": account, "_seq": seq}


def store_mapped_accounts(config: FeedlakeConfig, context: HookContext) -> None:
    """Stored account_events and accounts under source ids, and the mapping of salesforce 001A (tenant t)."""
    store(context, "account_events", rows(
        config, "account_events",
        account_event("t", "salesforce", "001A"),
        account_event("t", "salesforce", "001Z"),  # not mapped
        {**account_event("t", "hubspot", "001A"), "event_text": "demo booked"},  # same id, another system (another key)
        account_event("u", "salesforce", "001A"),  # same id, another tenant
    ))
    store(context, "accounts", rows(
        config, "accounts",
        {"tenant_id": "t", "account_key": "acme-corp", "source_system": "dataapi", "_seq": "1",
         "properties": '{"mrr":100,"name":"Acme","plan_name":"pro"}'},
        {"tenant_id": "t", "account_key": "001A", "source_system": "salesforce", "_seq": "2",
         "properties": '{"industry":"Technology","mrr":120}'},
        {"tenant_id": "u", "account_key": "001A", "source_system": "salesforce", "_seq": "2",
         "properties": '{"name":"Other tenant"}'},
    ))
    store(context, "entity_map", rows(config, "entity_map", mapping("001A", "acme-corp", "2")))


@pytest.mark.parametrize(
    "sent",
    [mapping("001A", "acme-corp", "2"), mapping("001A", "acme-old", "1")],
    ids=["batch-mapping", "older-batch-row-lost-its-merge"],
)
def test_entity_map_moves_rows_stored_under_a_mapped_source_id(
    config: FeedlakeConfig, context: HookContext, sent: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After an entity_map MERGE, the account_events and accounts rows of the mapped (tenant, source system,
    source id) move to the canonical account of the *stored* mapping; the accounts row is merged attribute by
    attribute (higher sequence wins) into the canonical one and removed. Another system, another tenant and
    unmapped ids stay."""
    store_mapped_accounts(config, context)
    batch = rows(config, "entity_map", sent)
    store(context, "entity_map", batch)  # an older row than the stored one changes nothing
    before = {name: version(context, name) for name in ("account_events", "accounts")}

    sources: dict[str, DataFrame] = {}
    merge = context.engine.merge

    def recording(table, source, plan, **options):
        sources[table.name] = source
        return merge(table, source, plan, **options)

    monkeypatch.setattr(context.engine, "merge", recording)
    EntityMapHook().after_merge(context, config.stream("entity_map"), "entity_map", batch)

    # The accounts source reads pinned inputs: planning it does not copy them once per use
    # (it was 140 KB of analyzed plan and 1.3 s of optimizing for these few rows).
    sources["accounts"].explain(mode="extended")
    analyzed = capsys.readouterr().out.split("== Analyzed Logical Plan ==")[1].split("== Optimized Logical Plan ==")[0]
    assert len(analyzed) < 30_000

    # Issue 12 item 3: each moved table takes one commit (the upserts and the deletes of the old keys).
    assert {name: version(context, name) - v for name, v in before.items()} == {"account_events": 1, "accounts": 1}

    events = stored(context, "account_events").select("tenant_id", "account_key", "source_system", "source_account_id")
    expected_events = SparkSession.active().createDataFrame(
        [("t", "acme-corp", "salesforce", "001A"), ("t", "001Z", "salesforce", "001Z"),
         ("t", "001A", "hubspot", "001A"), ("u", "001A", "salesforce", "001A")],
        "tenant_id string, account_key string, source_system string, source_account_id string",
    )
    assert_df_equality(events, expected_events, ignore_row_order=True, ignore_nullable=True)
    accounts = stored(context, "accounts").select(
        "tenant_id", "account_key", "properties", "name", "industry", "mrr", "plan_name", "lifecycle_stage", "source_system"
    )
    expected_accounts = SparkSession.active().createDataFrame(
        [("t", "acme-corp", '{"industry":"Technology","mrr":120,"name":"Acme","plan_name":"pro"}', "Acme", "Technology",
          120.0, "pro", "subscribed", "salesforce"),
         ("u", "001A", '{"name":"Other tenant"}', None, None, None, None, None, "salesforce")],
        "tenant_id string, account_key string, properties string, name string, industry string, mrr double, "
        "plan_name string, lifecycle_stage string, source_system string",
    )
    assert_df_equality(accounts, expected_accounts, ignore_row_order=True, ignore_nullable=True)
    assert context.extras["entity_map_moved"] == {"t": {"account_events": 1, "accounts": 1}}


@pytest.mark.parametrize("failing", ["account_events", "accounts"])
def test_entity_map_releases_the_frames_it_held_when_a_move_fails(
    config: FeedlakeConfig, context: HookContext, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MERGE that raises leaves none of the hook's persisted or pinned frames behind (a notebook or a
    backfill goes on with the same session), and the error reaches the run."""
    store_mapped_accounts(config, context)
    batch = rows(config, "entity_map", mapping("001A", "acme-corp", "2"))
    store(context, "entity_map", batch)
    merge = context.engine.merge

    def failing_merge(table, source, plan, **options):
        if table.name == failing:
            raise RuntimeError(f"MERGE into {table.name} failed")
        return merge(table, source, plan, **options)

    monkeypatch.setattr(context.engine, "merge", failing_merge)
    held = context.spark.sparkContext._jsc.getPersistentRDDs  # noqa: SLF001 -- the cached and checkpointed RDDs
    before = set(held().keySet())
    with pytest.raises(RuntimeError, match=f"MERGE into {failing} failed"):
        EntityMapHook().after_merge(context, config.stream("entity_map"), "entity_map", batch)
    assert set(held().keySet()) - before == set()


# --- feedlake.derived.metric_rollup.MetricsHook -------------------------------------------------


def metric_record(tenant: str, day: date, metrics: str) -> dict[str, Any]:
    return {"tenant_id": tenant, "id_column": "account_id", "source_id": "a1", "metric_date": day, "file_date": day,
            "metrics": metrics, "_seq": "1"}


def test_metrics_weekly_rows_of_the_batch_weeks(config: FeedlakeConfig, context: HookContext) -> None:
    """After a metric_records MERGE, the weekly rows of the batch's weeks are recomputed from the stored records:
    the last value of the week and the days with a value (a null is no value). For a metric the tenant declares
    cumulative (acme: Total Journeys) week_change = the week's value minus the previous week's last one (that week
    is read, not rewritten); metrics a tenant does not declare are stock (week_change NULL) and reported."""
    batch = rows(
        config, "metric_records",
        metric_record("acme", date(2024, 3, 4), '{"Total Journeys": 12, "active users": 3, "seats": 5}'),
        metric_record("acme", date(2024, 3, 6), '{"Total Journeys": 25, "active users": null}'),
        metric_record("other", date(2024, 3, 5), '{"Total Journeys": 40}'),
    )
    previous_week = rows(
        config, "metric_records",
        metric_record("acme", date(2024, 2, 28), '{"Total Journeys": 4}'),
        metric_record("acme", date(2024, 3, 1), '{"Total Journeys": 10}'),  # Friday: the end of the week before
        metric_record("other", date(2024, 3, 1), '{"Total Journeys": 30}'),
    )
    store(context, "metric_records", previous_week.unionByName(batch))

    MetricsHook(config).after_merge(context, config.stream("metrics"), "metric_records", batch)

    expected = table_rows(
        config, "account_metrics_weekly",
        ("acme", "a1", "Total Journeys", W10, 25.0, "cumulative", 2, 15.0),
        ("acme", "a1", "active users", W10, 3.0, "stock", 1, None),
        ("acme", "a1", "seats", W10, 5.0, "stock", 1, None),
        ("other", "a1", "Total Journeys", W10, 40.0, "stock", 1, None),  # cumulative for acme only
    )
    assert_df_equality(stored(context, "account_metrics_weekly"), expected, ignore_row_order=True, ignore_nullable=True)
    # One write per derived table for the whole batch (issue 12): each tenant's entry lists that shared write.
    writes = ["account_metrics +5 ~0 -0", "account_metrics_weekly +4 ~0 -0"]
    assert context.extras["metrics"] == {
        "acme": {"undeclared_metrics_as_stock": ["seats"], "weeks_recomputed": ["2024-03-04"], "writes": writes},
        "other": {"undeclared_metrics_as_stock": ["Total Journeys"], "weeks_recomputed": ["2024-03-04"], "writes": writes},
    }


# --- feedlake.quality.checks.QualityGate -------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"contact_key": None}, "expect_column_values_to_not_be_null(contact_key) (1 unexpected)"),
        ({"event_key": "e1", "event_timestamp": ts("2024-03-04T10:00:00")},  # the same event twice, both ranked 1
         "expect_compound_columns_to_be_unique(tenant_id, contact_key, event_text, event_timestamp) (2 unexpected)"),
    ],
    ids=["null-contact-key", "duplicate-key"],
)
def test_quality_gate_blocks_only_the_tenant_failing_a_critical_expectation(
    config: FeedlakeConfig, context: HookContext, bad: dict[str, Any], reason: str
) -> None:
    """One before_merge call on a batch of two tenants: the tenant whose deduplicated rows (``_rank == 1``) fail a
    critical contact_events expectation gets the reason; the clean tenant, whose duplicate was ranked out, none."""
    def ranked(rank: int, **values: Any) -> dict[str, Any]:
        return {"event_key": "e1", "contact_key": "c1", "event_text": "login", "event_timestamp": ts("2024-03-04T10:00:00"),
                "_seq": str(rank), **values, "_rank": rank}

    lines = [
        ranked(1, tenant_id="good"),
        ranked(2, tenant_id="good"),  # a duplicate the dedupe dropped: not part of the MERGE
        ranked(1, tenant_id="bad"),
        ranked(1, tenant_id="bad", **{"event_key": "e2", "event_timestamp": ts("2024-03-05T10:00:00"), **bad}),
    ]
    spec = config.table("contact_events")
    columns = (*spec.column_names, "_rank")
    batch = SparkSession.active().createDataFrame([tuple(r.get(c) for c in columns) for r in lines], spec.ddl + ", _rank int")

    gate = QualityGate.from_conf(config, None)
    reasons = gate.before_merge(context, config.stream("track"), {"contact_events": batch})

    assert reasons == {"bad": f"quality gate contact_events: {reason}"}
    assert gate.checks is not None and gate.checks.run.blocked == ["bad/track"]
