"""Step: load a task's rows and render them into samples (a versioned artifact)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.schema import SampleSpec


# No step logs: a pure step logs nothing of its own, and ZenML writes a log record and file
# for every step on every run, cached or not (docs/architecture.md).
@step(enable_step_logs=False)
def load_task(
    task: dict[str, Any], limit: int | None, data_fingerprint: str
) -> Annotated[pd.DataFrame, "samples"]:
    """``data_fingerprint`` (file hash or Hub coordinates) is a parameter only so that
    editing the data file invalidates this step's cache."""
    return stages.load_task(SampleSpec.model_validate(task), limit)
