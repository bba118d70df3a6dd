"""Errors labctl reports to people, and the exit codes they map to."""

from __future__ import annotations


class LabctlError(Exception):
    """Something went wrong that the user can act on; the message says what and where."""

    exit_code = 1


class UsageError(LabctlError):
    """Bad input: a flag, a file, a row. Nothing was changed."""

    exit_code = 2


class MissingBinariesError(LabctlError):
    """The toolchain is not built yet."""

    exit_code = 2
