"""Pure Column and DataFrame rules: field contracts and types, record order and dedupe, profile columns.

Layer 2 of 11: modules ``contracts``, ``dedupe``, ``profiles``. Imports only from: settings.
"""
