"""Samples and completions survive the frame round trip between steps, structured fields
included, through parquet as an artifact store writes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmbench.tables import (
    JSON_SAMPLE_COLUMNS,
    SAMPLE_COLUMNS,
    completions_to_frame,
    frame_to_completions,
    frame_to_samples,
    samples_to_frame,
)
from llmbench.types import Completion, GenerationParams, Message, Sample, Tool, ToolCall

WEATHER = Tool(
    name="get_weather",
    description="Weather by city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
SAMPLES = [
    Sample(sample_id="plain", prompt="2+2?", references=("4",), choices=("3", "4")),
    Sample(
        sample_id="tools",
        prompt="Weather in Paris?",
        references=(),
        conversation=(
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hi"),
            Message(role="assistant", content="Hello!"),
            Message(role="user", content="Weather in Paris?"),
        ),
        tools=(WEATHER,),
        expected=[{"get_weather": {"city": ["Paris", "paris"], "days": [1, ""]}}],
    ),
    Sample(sample_id="none", prompt="Tell a joke", references=(), tools=(WEATHER,), expected=[]),
]


def through_parquet(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    frame.to_parquet(tmp_path / "frame.parquet")
    return pd.read_parquet(tmp_path / "frame.parquet")


def test_every_sample_field_is_a_column_so_a_new_one_is_never_dropped() -> None:
    assert list(Sample.model_fields) == SAMPLE_COLUMNS
    assert {"conversation", "tools", "expected"} <= set(JSON_SAMPLE_COLUMNS)


def test_samples_with_conversations_tools_and_expected_answers_round_trip(tmp_path: Path) -> None:
    frame = through_parquet(samples_to_frame(SAMPLES), tmp_path)
    assert frame_to_samples(frame) == SAMPLES


def test_a_samples_request_offers_its_tools_and_asks_its_conversation() -> None:
    request = SAMPLES[1].request(GenerationParams())
    assert request.tools == (WEATHER,)
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert SAMPLES[0].request(GenerationParams()).tools == ()


def test_a_frame_stored_before_the_structured_columns_still_loads() -> None:
    old = samples_to_frame(SAMPLES[:1]).drop(columns=JSON_SAMPLE_COLUMNS)
    assert frame_to_samples(old) == SAMPLES[:1]


def test_tool_calls_of_an_answer_round_trip(tmp_path: Path) -> None:
    completions = [
        Completion(
            text="",
            finish_reason="tool_calls",
            tool_calls=(
                ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="c2", name="get_weather", arguments="{not json"),
            ),
        ),
        Completion(text="no call"),
    ]
    frame = through_parquet(completions_to_frame(["a", "b"], completions), tmp_path)
    assert frame_to_completions(frame) == completions
    assert frame_to_completions(frame.drop(columns=["tool_calls"]))[0].tool_calls == ()
