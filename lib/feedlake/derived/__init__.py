"""Derived tables kept in step by hooks: weekly activity and metrics, slices, entity-map moves, moments.

Layer 7 of 11: modules ``activity``, ``metric_rollup``, ``slices``, ``moments``, ``remaps``. Imports only from: settings, rules, landing, delta, streams, ingest.
"""
