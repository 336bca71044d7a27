"""Great Expectations: suites from conf/quality, the GX project, the batch gate and table checks.

Layer 8 of 11: modules ``suites``, ``context``, ``docs_offline``, ``checks``. Imports only from: settings, rules, landing, delta, streams, ingest, derived.
"""
