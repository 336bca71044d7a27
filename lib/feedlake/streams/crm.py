"""CRM data for customer-fit training (seed 000 §1.4): stream ``crm`` → table ``crm_leads``.

Required: ``email``, ``account``, ``created_at`` (Unix time), ``is_worked`` and
``is_converted`` (booleans), ``amount`` (MRR after conversion). Optional:
``is_unqualified``, ``worked_date``, ``converted_date``, ``deal_amount``; any other
field (self-input information, enrichment such as ``team_size__c``) is kept in
``properties``.

The seed's example sends every value as a string (``"created_at": "1234567890"``,
``"is_worked":"true"``, ``"amount": "2499"``): booleans are ``true``/``false`` (any case,
string or JSON boolean), times are Unix seconds (digits, string or number), amounts
are numbers; the stream contract (conf/streams.yaml) quarantines what does not cast
as ``invalid_type`` naming the field. Times are stored as TIMESTAMP (UTC).

A JSON line that repeats a key (the seed's second example repeats ``is_worked``) keeps
the key's **last** value, as ``JSON.parse`` does (:mod:`feedlake.landing.parsing`); the line is
not an error. Key: ``(tenant_id, email)``; within a file the last line of an email
wins, across files the most recent file wins.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from feedlake.rules.contracts import extra_props, render_properties, typed
from feedlake.settings.config import StreamSpec
from feedlake.settings.tables import CRM_LEADS
from feedlake.streams.mappers import lineage


def _column(name: str, field_type: str):
    value = typed(name, field_type)
    # Unix seconds become a TIMESTAMP column: crm_leads holds instants, not counters.
    return (F.timestamp_seconds(value) if field_type == "unix_seconds" else value).alias(name)


def crm_lead_rows(records: DataFrame, stream: StreamSpec) -> dict[str, DataFrame]:
    """crm → ``crm_leads``: declared fields typed, every other field in ``properties``."""
    declared = [f.name for f in stream.fields]
    leads = records.select(
        "tenant_id",
        *[_column(f.name, f.type) for f in stream.fields],
        render_properties(extra_props(declared)).alias("properties"),
        *lineage(),
    )
    return {CRM_LEADS: leads}
