"""logging.getLogger(name), paid for on first use.

Importing logging costs a short verb about 4 ms of CPU (threading, traceback, string, ...)
at every start (issue 11): the modules `prodng ls`, `info` and `freeze` load log only what
goes wrong or is repaired, so they hold one of these instead of a logging.Logger.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs CLI start-up time
if TYPE_CHECKING:
    import logging


class Logger:
    def __init__(self, name: str) -> None:
        self.name = name

    def _logger(self) -> logging.Logger:
        import logging

        return logging.getLogger(self.name)

    def debug(self, message: str, *args: object) -> None:
        self._logger().debug(message, *args)

    def info(self, message: str, *args: object) -> None:
        self._logger().info(message, *args)

    def warning(self, message: str, *args: object) -> None:
        self._logger().warning(message, *args)
