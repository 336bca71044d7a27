"""Sending data back out: profiles and moments as Segment calls (feedlake export).

Layer 10 of 11: modules ``segment``. Imports only from: settings, rules, landing, delta, streams, ingest, derived, quality, erasure.
"""
