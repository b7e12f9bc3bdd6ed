"""Errors a user can act on.

Every error raised for bad input derives from :class:`BenchError`; ``run.py`` prints its
message (never a traceback) and exits with its ``exit_code``. Messages name the file and
field at fault and say how to fix it.
"""

from __future__ import annotations


class BenchError(Exception):
    """Base class for errors that are reported to the user without a traceback."""

    exit_code: int = 2

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.field = field
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class ConfigError(BenchError):
    """The benchmark or task configuration is invalid."""


class DatasetError(BenchError):
    """A task's data cannot be loaded or does not fit the task's templates."""


class MissingDependencyError(BenchError):
    """An optional package or model file needed by the configuration is not installed."""


class MissingKeyError(BenchError):
    """A provider's API key is not set; raised before any request is sent."""


class ProviderError(BenchError):
    """A provider could not be set up (model file, client). Request failures are data, not this."""
