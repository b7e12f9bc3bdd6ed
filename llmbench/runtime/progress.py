"""Progress of a generation loop: a live bar on a terminal, plain log lines elsewhere (CI).

Generation steps run in parallel threads; separate live displays would overwrite each
other's lines, so all bars of a process share one display: a row per (model, task), removed
(and logged once) when it finishes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

logger = logging.getLogger("llmbench")

_DISPLAY_LOCK = threading.Lock()
_DISPLAY: Progress | None = None
_DISPLAY_USERS = 0


def _attach() -> Progress:
    global _DISPLAY, _DISPLAY_USERS
    with _DISPLAY_LOCK:
        if _DISPLAY is None:
            _DISPLAY = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            _DISPLAY.start()
        _DISPLAY_USERS += 1
        return _DISPLAY


def _detach() -> None:
    global _DISPLAY, _DISPLAY_USERS
    with _DISPLAY_LOCK:
        _DISPLAY_USERS -= 1
        if _DISPLAY_USERS == 0 and _DISPLAY is not None:
            _DISPLAY.stop()
            _DISPLAY = None


class GenerationProgress:
    """Counts done/errors/spend for one model on one task and shows them as it goes."""

    def __init__(self, label: str, total: int, *, live: bool | None = None) -> None:
        self.label, self.total = label, total
        self.done = self.errors = self.retries = self.cached = 0
        self.spend = 0.0
        self.started = time.perf_counter()
        self._next_log = 0
        self._live = sys.stdout.isatty() if live is None else live
        self._bar: Progress | None = None
        if self._live:
            self._bar = _attach()
            self._task = self._bar.add_task(label, total=total, extra="")
        else:
            logger.info("%s: generating %d samples", label, total)

    def _summary(self) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate else float("inf")
        return (
            f"{rate:.2f}/s errors={self.errors} retries={self.retries} cached={self.cached} "
            f"spend=${self.spend:.6f} eta={eta:.0f}s"
        )

    def advance(self, *, error: bool, cost: float, retries: int = 0, cached: bool = False) -> None:
        self.done += 1
        self.errors += int(error)
        self.retries += retries
        self.cached += int(cached)
        self.spend += cost
        if self._bar is not None:
            self._bar.update(self._task, advance=1, extra=self._summary())
        elif self.done >= self._next_log or self.done == self.total:
            logger.info("%s: %d/%d %s", self.label, self.done, self.total, self._summary())
            self._next_log = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self._bar is not None:
            logger.info("%s: %d/%d %s", self.label, self.done, self.total, self._summary())
            self._bar.remove_task(self._task)
            self._bar = None
            _detach()
