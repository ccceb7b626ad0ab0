"""User-facing errors.

Every problem a user can cause (bad name, bad data, missing token, ...) raises a
``SpurbenchError``; the CLI prints its message as one line and exits non-zero.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SpurbenchError(Exception):
    """An error caused by input, data or environment, reported in one line."""

    exit_code = 2


class UnknownNameError(SpurbenchError):
    """A model, family or benchmark name that no registry knows."""


class DataError(SpurbenchError):
    """Missing, malformed or corrupt benchmark data."""


class ChecksumMismatchError(DataError):
    """Downloaded or local benchmark content differs from its recorded checksum."""


class LabelSpaceError(SpurbenchError):
    """A benchmark class that cannot be scored in the model's label space."""


class AccessError(SpurbenchError):
    """Gated data without a token or without granted access."""
