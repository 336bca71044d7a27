"""Delta tables: merge plans rendered once, and the two engines (delta-rs, delta-spark) behind one protocol.

Layer 4 of 11: modules ``engines``, ``merge``. Imports only from: settings, rules, landing.
"""
