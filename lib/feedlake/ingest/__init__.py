"""One ingest run: plan, read, the stages, hooks, bookkeeping, the run report; backfills in chunks.

Layer 6 of 11: modules ``hooks``, ``stages``, ``pipeline``, ``file_plan``, ``lease``, ``report``, ``report_html``, ``backfill``. Imports only from: settings, rules, landing, delta, streams.
"""
