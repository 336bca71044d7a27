"""The one error of a configuration that does not follow its documented shape."""

from __future__ import annotations


class ConfigError(ValueError):
    """Raised when a configuration file does not follow its documented shape."""
