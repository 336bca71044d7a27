"""Entry points: the feedlake command, notebook helpers, JVM package resolution, the spark-submit bundle.

Layer 11 of 11: modules ``cli``, ``notebook``, ``jars``, ``explore``, ``bundle``. Imports only from: settings, rules, landing, delta, streams, ingest, derived, quality, erasure, export.
"""
