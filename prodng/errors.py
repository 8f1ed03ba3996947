"""One error hierarchy: each error knows its CLI exit code and its HTTP status."""

from __future__ import annotations


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
