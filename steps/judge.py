"""Steps: an LLM judge grading one model's answers, or comparing two models' answers.

Cached on the answers, the judge settings that shape a verdict (``spec`` without the panel
aggregation or human labels), the prompt template's text, the judge model and the verdict
parser's version (``parser_version``, used only as part of the cache key): changing metrics,
the aggregation or human labels reruns only scoring; changing the judge reruns these steps
and scoring; the models' generations stay cached either way.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step

from llmbench import stages
from llmbench.schema import JudgeSpec
from steps.settings import spec_with_extra, step_requests


def _judge_spec(spec: dict[str, Any], judge: dict[str, Any]) -> JudgeSpec:
    """The task's judge settings as this step needs them: this one judge as the panel."""
    return JudgeSpec.model_validate({**spec, "panel": [judge["name"]]})


@step
def grade(
    samples: pd.DataFrame,
    completions: pd.DataFrame,
    task: str,
    spec: dict[str, Any],
    prompt_template: str,
    parser_version: int,
    judge: dict[str, Any],
    seed: int,
    label: str,
    relevance_template: str | None = None,
    judge_fingerprint: str | None = None,
) -> Annotated[pd.DataFrame, "grades"]:
    """``judge_fingerprint``: what besides its spec decides the judge's answers (part of
    the cache key only)."""
    with step_requests() as (extra, settings):
        return stages.grade(
            task,
            _judge_spec(spec, judge),
            prompt_template,
            spec_with_extra(judge, extra),
            samples,
            completions,
            seed=seed,
            settings=settings,
            label=label,
            relevance_template=relevance_template,
        )


@step
def compare(
    samples: pd.DataFrame,
    completions_a: pd.DataFrame,
    completions_b: pd.DataFrame,
    model_a: str,
    model_b: str,
    task: str,
    spec: dict[str, Any],
    prompt_template: str,
    parser_version: int,
    judge: dict[str, Any],
    seed: int,
    label: str,
    judge_fingerprint: str | None = None,
) -> Annotated[pd.DataFrame, "verdicts"]:
    with step_requests() as (extra, settings):
        return stages.compare(
            task,
            _judge_spec(spec, judge),
            prompt_template,
            spec_with_extra(judge, extra),
            samples,
            (model_a, completions_a),
            (model_b, completions_b),
            seed=seed,
            settings=settings,
            label=label,
        )
