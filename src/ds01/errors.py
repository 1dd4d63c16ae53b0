"""One error hierarchy; each class carries the exit code of CONTRACT §5."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_FOUND = 3
    QUOTA = 4
    PERMISSION = 5
    ENGINE = 6
    INTERRUPTED = 130


class Ds01Error(Exception):
    """An expected failure: one line for the user, an exit code for scripts."""

    exit_code: ExitCode = ExitCode.FAILURE
    code: str = "failure"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(Ds01Error):
    exit_code = ExitCode.USAGE
    code = "usage"


class InvalidName(UsageError):
    code = "invalid_name"


class ConfigError(UsageError):
    code = "invalid_config"


class NotFound(Ds01Error):
    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class QuotaExceeded(Ds01Error):
    exit_code = ExitCode.QUOTA
    code = "quota_exceeded"


class NoCapacity(QuotaExceeded):
    code = "no_capacity"


class PermissionDenied(Ds01Error):
    exit_code = ExitCode.PERMISSION
    code = "permission_denied"


class EngineUnavailable(Ds01Error):
    exit_code = ExitCode.ENGINE
    code = "engine_unavailable"


class OperationFailed(Ds01Error):
    """A Docker or build operation failed for a reason the user can act on."""

    code = "operation_failed"


class LockTimeout(Ds01Error):
    code = "lock_timeout"
