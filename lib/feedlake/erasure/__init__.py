"""Erasure requests (feedlake forget): every table, file and artifact that holds a person.

Layer 9 of 11: modules ``forget``. Imports only from: settings, rules, landing, delta, streams, ingest, derived, quality.
"""
