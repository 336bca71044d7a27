"""Weekly activity from events: ``activity_weekly`` (issue #4).

Per tenant, contact, event_text and ISO week (``week_start`` = the Monday, UTC;
``iso_week`` = ``YYYY-Www``): ``event_count`` (events that week) and ``active_days``
(distinct UTC days with at least one), with the contact's account from
``contact_accounts`` ("one account per contact ... we'll use the latest one", seed 000
§1.3; NULL while the contact has none).

Maintained incrementally (see :mod:`feedlake.derived.slices`): after a batch of events is
merged, only the weeks its events fall in are recomputed, from the
``contact_events`` rows of those weeks, for all the batch's tenants in one write
(the union of their weeks: a week a tenant did not touch recomputes to what it holds
and writes nothing). Counting the deduplicated table, never the
batch, keeps the counts right when events are re-sent (the table holds each event
once), when batches arrive out of order and when a run is repeated. When a contact
moves to another account, its activity rows are re-pointed to the new account.
"""

from __future__ import annotations

import logging
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from feedlake.derived.slices import Slices, iso_week, monday, replace_slices, upsert_rows, utc_day
from feedlake.ingest.hooks import HookContext, IngestHook, batch_tenants
from feedlake.settings.config import FeedlakeConfig, StreamSpec
from feedlake.settings.tables import ACTIVITY_WEEKLY, CONTACT_ACCOUNTS, CONTACT_EVENTS

log = logging.getLogger("feedlake.derived.activity")

TABLE = ACTIVITY_WEEKLY


def activity_weekly(events: DataFrame, links: DataFrame) -> DataFrame:
    """``contact_events`` rows + ``contact_accounts`` rows → ``activity_weekly`` rows."""
    day = utc_day(F.col("event_timestamp"))
    accounts = links.select("tenant_id", "contact_key", "account_key")
    return (
        events.select("tenant_id", "contact_key", "event_text", day.alias("day"))
        .withColumn("week_start", monday(F.col("day")))
        .groupBy("tenant_id", "contact_key", "event_text", "week_start")
        .agg(F.count(F.lit(1)).alias("event_count"), F.countDistinct("day").alias("active_days"))
        .join(accounts, on=["tenant_id", "contact_key"], how="left")
        .select(
            "tenant_id", "account_key", "contact_key", "event_text", "week_start",
            iso_week(F.col("week_start")).alias("iso_week"),
            F.col("event_count").cast("bigint").alias("event_count"),
            F.col("active_days").cast("bigint").alias("active_days"),
        )
    )


def reassigned(activity: DataFrame, links: DataFrame) -> DataFrame:
    """Stored activity rows with ``account_key`` set to the contact's current account."""
    current = links.select("tenant_id", "contact_key", F.col("account_key").alias("_current"))
    return activity.join(current, on=["tenant_id", "contact_key"], how="left").select(
        *[F.col("_current").alias(c) if c == "account_key" else F.col(c) for c in activity.columns]
    )


def event_weeks(events: DataFrame) -> list[date]:
    """The Mondays of the weeks the events fall in (a small collect)."""
    week = monday(utc_day(F.col("event_timestamp")))
    return sorted(r["w"] for r in events.select(week.alias("w")).distinct().collect() if r["w"])


def tenant_event_weeks(events: DataFrame) -> dict[str, list[date]]:
    """Per tenant, the Mondays of the weeks its events fall in (a collect of tenants × weeks)."""
    week = monday(utc_day(F.col("event_timestamp")))
    out: dict[str, set[date]] = {}
    for r in events.select("tenant_id", week.alias("w")).distinct().collect():
        if r["w"]:
            out.setdefault(r["tenant_id"], set()).add(r["w"])
    return {t: sorted(w) for t, w in sorted(out.items())}


class ActivityHook(IngestHook):
    """Keeps ``activity_weekly`` in step with ``contact_events`` and ``contact_accounts``."""

    def __init__(self, config: FeedlakeConfig):
        self.enabled = all(t in config.tables for t in (TABLE, CONTACT_EVENTS, CONTACT_ACCOUNTS))

    @classmethod
    def from_conf(cls, config: FeedlakeConfig, conf_dir: str | None) -> ActivityHook:
        return cls(config)

    def after_merge(self, context: HookContext, stream: StreamSpec, table: str, source: DataFrame) -> None:
        if not self.enabled:
            return
        if table == CONTACT_EVENTS:
            self.refresh(context, tenant_event_weeks(source))
        elif table == CONTACT_ACCOUNTS:
            self._repoint(context, source.select("tenant_id", "contact_key").distinct())

    def refresh(self, context: HookContext, weeks_by_tenant: dict[str, list[date]]) -> None:
        """Recompute the activity of the tenants' weeks from the stored events of those weeks: one write."""
        if not weeks_by_tenant:
            return
        config, engine = context.config, context.engine
        tenants = sorted(weeks_by_tenant)
        weeks = sorted({w for ws in weeks_by_tenant.values() for w in ws})
        events = engine.read(
            config.table(CONTACT_EVENTS), tenants, within=Slices.of_weeks("event_timestamp", weeks, unix_seconds=True),
        )
        # Only the links of the contacts active in those weeks (a semi-join, not the tenants' whole table).
        links = engine.read_matching(config.table(CONTACT_ACCOUNTS), events.select("tenant_id", "contact_key"),
                                     ["tenant_id", "contact_key"])
        write = replace_slices(
            engine, config.table(TABLE), tenants, activity_weekly(events, links), Slices.of_weeks("week_start", weeks)
        )
        for tenant, own in weeks_by_tenant.items():
            entry = context.summary("activity", tenant)
            entry["weeks_recomputed"] = sorted({*entry.get("weeks_recomputed", []), *(w.isoformat() for w in own)})
            entry["writes"] = [*entry.get("writes", []), str(write)]
        log.info("activity %s: weeks %s recomputed: %s", tenants, [w.isoformat() for w in weeks], write)

    def _repoint(self, context: HookContext, contacts: DataFrame) -> None:
        """Activity rows of the contacts whose account link changed → their new account (keys matched by join)."""
        config, engine = context.config, context.engine
        table = config.table(TABLE)
        on = ["tenant_id", "contact_key"]
        stored = engine.read_matching(table, contacts, on).persist()
        tenants = batch_tenants(stored)
        if tenants:
            links = engine.read_matching(config.table(CONTACT_ACCOUNTS), contacts, on)
            write = upsert_rows(engine, table, tenants, reassigned(stored, links), stored)
            if write.updated:
                for tenant in tenants:
                    entry = context.summary("activity", tenant)
                    entry["writes"] = [*entry.get("writes", []), f"{write} (contacts re-pointed to their account)"]
        stored.unpersist()
