"""Why a dashboard did not start, said so the user can act on it."""

from __future__ import annotations

from llmbench.errors import BenchError


class DashboardError(BenchError):
    """A dashboard server could not be started or stopped."""
