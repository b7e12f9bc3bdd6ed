"""--dry-run: validates, counts prompt tokens, prices the run, calls nothing, writes nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import run as cli

ROOT = Path(__file__).resolve().parents[2]
KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "DEEPSEEK_API_KEY",
    "GROQ_API_KEY",
)


def test_cloud_dry_run_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    code = cli.main(["--config", str(ROOT / "configs" / "cloud.yaml"), "--dry-run", "--limit", "3"])
    out = capsys.readouterr().out
    assert code == 0
    for model in (
        "gpt-4o-mini",
        "claude-3-haiku",
        "gemini-2.0-flash",
        "deepseek-r1",
        "llama-3.3-70b-groq",
        "llama3.2-ollama",
    ):
        assert model in out
    assert "estimated: ~4 characters per token" in out
    assert "no API key for model 'gpt-4o-mini': OPENAI_API_KEY is not set" in out
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_estimate_prices_tokens_exactly() -> None:
    from llmbench.config import load
    from llmbench.estimate import estimate

    config = load(ROOT / "configs" / "cloud.yaml").select(["gpt-4o-mini"], ["arithmetic"])
    [row] = estimate(config.with_limit(4))
    assert row.samples == 4 and row.max_output_tokens == 4 * 48  # the task's max_tokens
    price = config.models[0].price
    assert price is not None and price.input_per_1m is not None and price.output_per_1m is not None
    expected = row.prompt_tokens * price.input_per_1m + row.max_output_tokens * price.output_per_1m
    assert row.max_cost_usd == pytest.approx(expected / 1e6)


@pytest.mark.slow
def test_local_models_are_counted_with_their_tokenizer() -> None:
    from llmbench.config import load
    from llmbench.estimate import estimate

    config = load(ROOT / "bench.yaml").with_limit(2)
    rows = {r.model: r for r in estimate(config)}
    models = [rows[m.name] for m in config.models]
    assert {r.counted_by for r in models} == {"tokenizer"}
    assert all(r.max_cost_usd is None and r.prompt_tokens > 0 for r in rows.values())
    # A strategy's worst case is built from its members': a cascade may call both.
    cascade = rows["cascade"]
    assert cascade.counted_by == "members"
    assert cascade.prompt_tokens == sum(r.prompt_tokens for r in models)
    assert cascade.max_output_tokens == sum(r.max_output_tokens for r in models)


def test_dry_run_counts_judge_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmbench.config import load
    from llmbench.estimate import estimate

    (tmp_path / "data.jsonl").write_text(
        "".join(f'{{"q": "question {i}", "a": "{i}"}}\n' for i in range(5))
    )
    (tmp_path / "bench.yaml").write_text(
        """
models:
  - {name: m1, provider: recorded, model: data.jsonl, options: {prompt_field: q, output_field: a}}
  - {name: m2, provider: recorded, model: data.jsonl, options: {prompt_field: q, output_field: a}}
  - {name: m3, provider: recorded, model: data.jsonl, options: {prompt_field: q, output_field: a}}
judges:
  - {name: grader, provider: openai, model: gpt-4o-mini}
tasks:
  - name: versus
    source: {path: data.jsonl}
    template: "{{ q }}"
    judge: {mode: pairwise, panel: [grader], max_tokens: 100}
"""
    )
    rows = {e.model: e for e in estimate(load(tmp_path / "bench.yaml"))}
    judge = rows["judge: grader"]
    assert judge.samples == 5 * 3 * 2  # 5 items x 3 pairs x both orders
    assert judge.max_output_tokens == 30 * 100
    assert judge.max_cost_usd is not None and judge.max_cost_usd > 0
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["--config", str(tmp_path / "bench.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "judge: grader" in out
    assert "no API key for model 'grader'" in out


def test_dry_run_counts_an_agent_loop_up_to_its_step_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tool task's item may take ``max_steps`` model calls, each sent the tools'
    definitions and the loop's earlier outputs: one call per item understated it 6 times."""
    from llmbench.config import load
    from llmbench.estimate import _tool_text, estimate
    from llmbench.pricing import CHARS_PER_TOKEN, estimated_prompt_tokens
    from llmbench.tasks.build import build_samples

    task = (ROOT / "configs" / "tasks" / "tools_weather_stock.yaml").as_posix()
    (tmp_path / "bench.yaml").write_text(
        f"""
models:
  - {{name: mini, provider: openai, model: gpt-4o-mini}}
tasks: [{task}]
"""
    )
    config = load(tmp_path / "bench.yaml").with_limit(2)
    [row] = estimate(config)
    samples = build_samples(config.tasks[0], 2)
    steps, limit = 6, 256  # the task's max_steps and max_tokens
    assert row.max_output_tokens == 2 * steps * limit
    expected = 0
    for sample in samples:
        tools = _tool_text(sample)
        assert "get_weather" in tools and "convert_units" in tools
        asked = estimated_prompt_tokens(sample.messages()) + math.ceil(len(tools) / CHARS_PER_TOKEN)
        expected += sum(asked + step * limit for step in range(steps))
    assert row.prompt_tokens == expected
    assert row.counted_by == "estimated + tool results"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["--config", str(tmp_path / "bench.yaml"), "--dry-run", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "estimated + tool results" in out
    assert "estimated: ~4 characters per token" in out
    assert "tool results: what a tool returns to an agent loop is not counted" in out
