"""feedlake: ingestion of B2B customer data feeds into Delta Lake tables."""

__version__ = "0.1.0"
