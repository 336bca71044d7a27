"""Streams: one module per seed family mapping validated records to table rows (named in conf/streams.yaml).

Layer 5 of 11: modules ``mappers``, ``api_objects``, ``crm``, ``metrics``, ``segment``, ``entity_map``, ``subjects``. Imports only from: settings, rules, landing, delta.
"""
