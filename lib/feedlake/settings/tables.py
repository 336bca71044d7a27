"""The names of the Delta tables the code itself relies on, written once.

``conf/tables.yaml`` declares every table (columns, key, policy...); these constants are
the names Python code refers to: the tables a mapper writes, a hook reads or derives, a
run's bookkeeping (manifest, quarantine, quality results), erasure and export. A table
renamed in conf must be renamed here too (tests/unit/test_table_names.py checks that each
constant names a table of the packaged ``conf/tables.yaml``). Conf itself (streams'
``targets:``, ``reads:``) names tables by their YAML names and needs none of these.
"""

from __future__ import annotations

# Profiles and events of seed 000 (identify, track, group) and seed 001 (API objects).
CONTACTS = "contacts"
CONTACT_EVENTS = "contact_events"
CONTACT_ACCOUNTS = "contact_accounts"
ACCOUNTS = "accounts"
ACCOUNT_EVENTS = "account_events"
CRM_LEADS = "crm_leads"
# seed 004: source-system ids mapped to account keys.
ENTITY_MAP = "entity_map"
# seed 002: Segment messages as received.
SEGMENT_MESSAGES = "segment_messages"

# A run's bookkeeping: refused records, the landing-file manifest, quality outcomes.
QUARANTINE = "quarantine"
INGEST_FILES = "ingest_files"
QUALITY_RESULTS = "quality_results"

# seed 003 metrics and the weekly tables derived after a run.
METRIC_RECORDS = "metric_records"
METRIC_FILES = "metric_files"
ACCOUNT_METRICS = "account_metrics"
ACCOUNT_METRICS_WEEKLY = "account_metrics_weekly"
ACTIVITY_WEEKLY = "activity_weekly"

# Erasure requests (issue 15).
PRIVACY_REQUESTS = "privacy_requests"
SUPPRESSED_SUBJECTS = "suppressed_subjects"

# Export (issue 17): customer moments and what was sent where.
MOMENTS = "moments"
EXPORT_STATE = "export_state"

TABLE_NAMES = (
    CONTACTS, CONTACT_EVENTS, CONTACT_ACCOUNTS, ACCOUNTS, ACCOUNT_EVENTS, CRM_LEADS, ENTITY_MAP, SEGMENT_MESSAGES,
    QUARANTINE, INGEST_FILES, QUALITY_RESULTS,
    METRIC_RECORDS, METRIC_FILES, ACCOUNT_METRICS, ACCOUNT_METRICS_WEEKLY, ACTIVITY_WEEKLY,
    PRIVACY_REQUESTS, SUPPRESSED_SUBJECTS,
    MOMENTS, EXPORT_STATE,
)
