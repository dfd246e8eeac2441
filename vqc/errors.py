"""Exceptions raised for bad input and bad configuration.

Every error names its culprit (file, row or setting) so a user can fix the input without
reading a traceback.
"""

from __future__ import annotations


class VqcError(Exception):
    """Base class for every error vqc raises on purpose."""


class DataError(VqcError):
    """An input file, row or image is unusable."""


class ConfigError(VqcError):
    """A configuration value is invalid."""
