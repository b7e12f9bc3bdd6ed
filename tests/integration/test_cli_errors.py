"""Bad input through the real CLI: exit code 2, one message, nothing written, no model called."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run as cli

GOOD_TASK = """
name: t1
source: {path: data.jsonl}
target: answer
template: "Q: {{ question }}"
metrics: [exact_match]
"""

GOOD_BENCH = """
models:
  - name: m1
    provider: llamacpp
    model: smollm2-135m-instruct
tasks: [task.yaml]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp_path / "task.yaml").write_text(GOOD_TASK)
    (tmp_path / "bench.yaml").write_text(GOOD_BENCH)
    return tmp_path


def run_cli(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = cli.main(["--config", str(workdir / "bench.yaml"), *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not (workdir / "results").exists(), "nothing may be written on bad input"
    assert not (workdir / "mlruns").exists()
    return code, err


CASES = {
    "malformed_yaml": ("bench.yaml", "models: [\n  - {name: m1\n", "not valid YAML"),
    "unknown_field": ("bench.yaml", GOOD_BENCH + "colour: blue\n", "colour: unknown field"),
    "unknown_provider": (
        "bench.yaml",
        GOOD_BENCH.replace("llamacpp", "openia"),
        "unknown provider 'openia'",
    ),
    "unknown_metric": ("task.yaml", GOOD_TASK.replace("exact_match", "rogue"), "unknown metric"),
    "unknown_extractor": ("task.yaml", GOOD_TASK + "extract: [lastnumber]\n", "unknown extractor"),
    "missing_dataset": (
        "task.yaml",
        GOOD_TASK.replace("data.jsonl", "missing.jsonl"),
        "data file not found",
    ),
    "template_variable": (
        "task.yaml",
        GOOD_TASK.replace("{{ question }}", "{{ prompt_text }}"),
        "'prompt_text' is undefined",
    ),
    "empty_dataset": ("data.jsonl", "", "data.jsonl"),
    "missing_task_file": ("bench.yaml", GOOD_BENCH.replace("task.yaml", "nope.yaml"), "not found"),
    "strategy_unknown_task": (
        "bench.yaml",
        GOOD_BENCH
        + "strategies:\n  - {name: twice, kind: vote, members: {a: m1}, tasks: [sums]}\n",
        "bench.yaml: strategies.0.tasks: no task named 'sums' (the tasks are: t1)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_one_message(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    filename, content, expected = CASES[case]
    (workdir / filename).write_text(content)
    code, err = run_cli(workdir, capsys)
    assert code == 2
    assert err.startswith("error: ")
    assert expected in err
    assert "fix:" in err or case in {"empty_dataset"}


def test_a_tool_task_on_a_local_model_without_tool_support(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SmolLM2's chat template has no tools: without the JSON convention every item would be
    an error row, so the run stops before it starts, naming the option that fixes it."""
    (workdir / "task.yaml").write_text(GOOD_TASK + "tools: {builtin: [calculator]}\n")
    code, err = run_cli(workdir, capsys)
    assert code == 2 and "models.m1.options.tool_format" in err
    assert "has no tool support" in err and "tool_format: json" in err
    bench = GOOD_BENCH.replace(
        "model: smollm2-135m-instruct",
        "model: smollm2-135m-instruct\n    options: {tool_format: json}",
    )
    (workdir / "bench.yaml").write_text(bench)
    code, err = run_cli(workdir, capsys, "--dry-run")
    assert code == 0, err


def test_missing_config_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "bench.yaml").unlink()
    code, err = run_cli(workdir, capsys)
    assert code == 2 and "bench.yaml: file not found" in err


def test_unknown_model_in_filter(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(workdir, capsys, "--models", "m2")
    assert code == 2 and "no model or strategy named 'm2'" in err


def test_missing_model_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = GOOD_BENCH.replace("smollm2-135m-instruct", "weights/absent.gguf")
    bench += "prices: p.yaml\n"
    (workdir / "p.yaml").write_text(
        json.dumps({"models": {"m1": {"per_hour": 1, "source": "s", "date": "d"}}})
    )
    (workdir / "bench.yaml").write_text(bench)
    code, err = run_cli(workdir, capsys)
    assert code == 2 and "model file not found" in err


def test_bad_flag_value_is_a_usage_error(workdir: Path) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--config", str(workdir / "bench.yaml"), "--limit", "0"])
    assert info.value.code == 2


def test_shared_task_files_validate(shared_data: Path, project_root: Path) -> None:
    """The shipped task YAMLs for the shared benchmark files load and render."""
    from llmbench.config import load_task_file
    from llmbench.tasks.build import build_samples

    for name, reference in {
        "gsm8k": "18",
        "arc_challenge": "C",
        "mmlu": "B",
        "truthfulqa": "Nothing happens",
    }.items():
        task = load_task_file(project_root / "configs" / "tasks" / f"{name}.yaml")
        [sample] = build_samples(task, limit=1)
        assert reference in sample.references, (name, sample.references)
