"""Landing zones: layouts and discovery, local and S3 stores, parsing lines on the JVM.

Layer 3 of 11: modules ``layouts``, ``storage``, ``parsing``, ``jvm_parse``. Imports only from: settings, rules.
"""
