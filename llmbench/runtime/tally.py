"""What a step's fan-out counts as answers come back, whichever way they were sent (in this
process or from worker processes): the error-rate guard and what the run paid."""

from __future__ import annotations

from dataclasses import dataclass

from llmbench.errors import BenchError
from llmbench.runtime.progress import GenerationProgress
from llmbench.types import Completion

MIN_SAMPLES_FOR_ERROR_RATE = 20
ABORTED = "aborted: too many errors (not sent)"


class ErrorRateExceeded(BenchError):
    exit_code = 1


def aborted() -> Completion:
    """The row of a sample not sent because the step's error rate was already too high."""
    return Completion(finish_reason="error", error=ABORTED)


def spend_usd(completion: Completion) -> float:
    """What this answer cost this run: calls served by the response cache cost nothing."""
    if not completion.trace:
        return 0.0 if completion.cached else completion.cost_usd
    return sum(c.cost_usd for c in completion.trace if not c.cached)


@dataclass
class Tally:
    """Live counts of one step, for the error-rate guard and the progress bar."""

    progress: GenerationProgress
    limit: float | None = None  # execution.max_error_rate
    done: int = 0
    errors: int = 0
    abort: str | None = None

    def record(self, completion: Completion) -> None:
        """Count one finished answer (``completion`` priced, so its spend is known)."""
        self.done += 1
        self.errors += int(completion.error is not None)
        if (
            self.limit is not None
            and self.abort is None
            and self.done >= MIN_SAMPLES_FOR_ERROR_RATE
            and self.errors / self.done > self.limit
        ):
            self.abort = (
                f"{self.progress.label}: {self.errors} of the first {self.done} requests "
                f"failed ({self.errors / self.done:.0%}), above execution.max_error_rate "
                f"{self.limit:.0%}"
            )
        attempts = [c.attempts for c in completion.trace] or [completion.attempts]
        self.progress.advance(
            error=completion.error is not None,
            cost=spend_usd(completion),
            retries=sum(max(a - 1, 0) for a in attempts),
            cached=completion.cached,
        )

    def raise_if_aborted(self) -> None:
        if self.abort is not None:
            raise ErrorRateExceeded(
                self.abort,
                hint="check the errors in the step log; fix the cause or raise max_error_rate",
            )
