"""The time to first token of an unstreamed reply, from llama.cpp's server ``timings``."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.providers.openai import server_ttft

# A real llama-server reply's timings (64 tokens, SmolLM2): predicted_ms covers the 63 after
# the first; a one-token answer's predicted_ms is 0.001.
TIMINGS = {"prompt_n": 40, "prompt_ms": 113.296, "predicted_n": 64, "predicted_ms": 1201.499}


def test_the_time_after_the_first_token_is_taken_from_the_latency() -> None:
    assert server_ttft({"timings": TIMINGS}, 1.3196) == pytest.approx(0.118101)


def test_a_one_token_answer_took_its_whole_latency_to_come() -> None:
    one = {**TIMINGS, "predicted_n": 1, "predicted_ms": 0.001}
    assert server_ttft({"timings": one}, 0.1366) == pytest.approx(0.1366, abs=1e-5)


def test_it_stays_within_the_latency() -> None:
    # The server's clock and the client's disagree: 0, not negative.
    assert server_ttft({"timings": TIMINGS}, 1.0) == 0.0


@pytest.mark.parametrize(
    "response",
    [{}, {"timings": None}, {"timings": {"prompt_ms": 3.0}}, {"timings": {"predicted_ms": "1"}}],
)
def test_a_reply_without_timings_has_no_time_to_first_token(response: dict[str, Any]) -> None:
    assert server_ttft(response, 1.0) is None
