"""Typed configuration, the Spark session and warehouse locations: read once at the entry point.

Layer 1 of 11: modules ``config``, ``job``, ``tables``, ``errors``, ``session``, ``locations``. Imports only from: nothing but third-party packages.
"""
