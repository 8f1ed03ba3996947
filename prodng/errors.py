"""One error hierarchy: each error knows its CLI exit code and its HTTP status."""

from __future__ import annotations

import errno


class ProdngError(Exception):
    """A failure the user can act on; shown as one line, never as a traceback."""

    exit_code = 1
    http_status = 500

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InvalidRequest(ProdngError):
    exit_code = 2
    http_status = 400


class NotFound(ProdngError):
    exit_code = 3
    http_status = 404


class Conflict(ProdngError):
    exit_code = 4
    http_status = 409


class SystemFailure(ProdngError):
    """The host could not do what was asked (no loop device, disk full, ...)."""

    exit_code = 5
    http_status = 503


class ServiceFailed(ProdngError):
    """A unit of the container died or failed to start (its last log lines are in the message)."""

    exit_code = 6
    http_status = 502


# The kinds prodng's C core reports before its message ("KIND MESSAGE"; native/util.h, enum pn_error_kind).
_NATIVE_KINDS: dict[str, type[ProdngError]] = {
    "system": SystemFailure,  # the host could not do it
    "invalid": InvalidRequest,  # the container's command, workdir or a bind source cannot be used
    "refused": InvalidRequest,  # the root is unsafe to set up (a symlink where a mount goes)
    "notfound": NotFound,  # what exec was pointed at is gone
}


def from_native(report: str, context: str) -> ProdngError:
    """The error for a report of the C core ("KIND MESSAGE"), its message prefixed with context."""
    kind, _, message = report.strip().partition(" ")
    if kind not in _NATIVE_KINDS:
        return SystemFailure(f"{context}: {report.strip()}")
    return _NATIVE_KINDS[kind](f"{context}: {message}")


POOL_FULL_HINT = "the pool is full: prodng prune, remove unused containers and templates, or grow it (pool_size)"


def from_os_error(err: OSError) -> ProdngError | None:
    """The user-facing error for a host condition the user can fix (a full pool), else None."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {err.filename}" if err.filename else ""
        return SystemFailure(
            f"no space left{where}",
            hint=POOL_FULL_HINT,
        )
    return None
