"""The shipped BFCL tasks on the real files: their possible answers, fed back as tool calls,
score 100% in every category; one wrong argument, type or function name fails an item; the
irrelevance categories pass only with no call. One category also runs through the recorded
provider, the stages and the tables, as a run does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmbench import config as cfg
from llmbench import stages
from llmbench.errors import DatasetError
from llmbench.runtime import runner
from llmbench.scoring.metrics import compute_structured
from llmbench.tasks.build import build_samples
from llmbench.types import Completion, Sample, Tool, ToolCall

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "bfcl"
ANSWERED = ["simple_python", "multiple", "parallel", "parallel_multiple"]
ANSWERED += ["live_simple", "live_multiple"]
IRRELEVANCE = ["irrelevance", "live_irrelevance"]
SIZES = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "live_simple": 258,
    "live_multiple": 1053,
    "irrelevance": 240,
    "live_irrelevance": 884,
}

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"BFCL data not found at {DATA}")


def samples_of(category: str, limit: int | None = None) -> list[Sample]:
    task = cfg.load_task_file(ROOT / "configs" / "tasks" / f"bfcl_{category}.yaml")
    return build_samples(task, limit)


def value_of(allowed: list[Any]) -> Any:
    """The first allowed value; a dict's (or a list of dicts') own values the same way."""
    value = next(v for v in allowed if v != "")
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        return arguments_of(value, None)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [arguments_of(v, None) for v in value]
    return value


def arguments_of(answer: dict[str, list[Any]], tool: Tool | None) -> dict[str, Any]:
    """Each parameter's first allowed value, left out where it may be and either nothing
    else is allowed or the function has no such parameter (a few answers list one)."""
    known = tool.parameters.get("properties", {}) if tool is not None else None
    return {
        param: value_of(allowed)
        for param, allowed in answer.items()
        if any(v != "" for v in allowed)
        and not ("" in allowed and known is not None and param not in known)
    }


def calls_of(sample: Sample) -> list[tuple[str, dict[str, Any]]]:
    tools = {tool.name: tool for tool in sample.tools}
    return [
        (name, arguments_of(answer, tools.get(name)))
        for call in sample.expected or []
        for name, answer in call.items()
    ]


def as_completion(calls: list[tuple[str, dict[str, Any]]]) -> Completion:
    return Completion(
        tool_calls=tuple(
            ToolCall(id=f"call_{i}", name=name, arguments=json.dumps(args))
            for i, (name, args) in enumerate(calls)
        )
    )


def scores(samples: list[Sample], completions: list[Completion]) -> list[float]:
    return compute_structured("bfcl_ast", samples, completions).per_sample["bfcl_ast"]


def wrong_value(value: Any, allowed: list[Any]) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        step = 1
        while value + step in allowed:
            step += 1
        return value + step
    if isinstance(value, str):
        return value + "zq"
    if isinstance(value, list):
        return [*value, value[0] if value else "zq"]
    if isinstance(value, dict):
        return {**value, "zq_unexpected": 1}
    return "zq"


def wrong_type(value: Any) -> Any:
    return 12345 if isinstance(value, str) else json.dumps(value)


def perturbed(sample: Sample, how: str) -> Completion | None:
    """The possible answer with one thing wrong, or None where nothing can be (every
    parameter of every call may be left out: there is no argument to spoil)."""
    calls = calls_of(sample)
    for index, (name, args) in enumerate(calls):
        if how == "name":
            calls[index] = (name + "_zq", args)
            return as_completion(calls)
        if args:
            param, value = next(iter(args.items()))
            answer = next(a for call in sample.expected or [] for n, a in call.items() if n == name)
            new = wrong_value(value, answer[param]) if how == "value" else wrong_type(value)
            calls[index] = (name, {**args, param: new})
            return as_completion(calls)
    return None


# Possible answers that contradict their own function, so that no answer passes BFCL's rule:
# a required parameter that may only be left out (507), parameters the function does not have
# (862, 964), parameters with no allowed value at all (106, 112).
UNSATISFIABLE = {
    "live_simple": {"live_simple_106-63-0", "live_simple_112-68-0"},
    "live_multiple": {
        "live_multiple_507-149-4",
        "live_multiple_862-181-3",
        "live_multiple_964-207-0",
    },
}


def contradicts_itself(sample: Sample) -> bool:
    tools: dict[str, Tool] = {}
    for tool in sample.tools:
        tools.setdefault(tool.name, tool)
    for call in sample.expected or []:
        for name, answer in call.items():
            schema = tools[name].parameters
            required = set(schema.get("required", []))
            if any(
                not allowed
                or (p in required and all(v == "" for v in allowed))
                or (p not in schema.get("properties", {}) and "" not in allowed)
                for p, allowed in answer.items()
            ):
                return True
    return False


@pytest.mark.parametrize("category", ANSWERED)
def test_possible_answers_score_100_and_one_wrong_thing_fails(category: str) -> None:
    samples = samples_of(category)
    assert len(samples) == SIZES[category]
    unsatisfiable = {s.sample_id for s in samples if contradicts_itself(s)}
    assert unsatisfiable == UNSATISFIABLE.get(category, set())
    right = [as_completion(calls_of(s)) for s in samples]
    got = dict(zip([s.sample_id for s in samples], scores(samples, right), strict=True))
    assert {i for i, v in got.items() if v != 1.0} == unsatisfiable
    samples = [s for s in samples if s.sample_id not in unsatisfiable]
    for how in ("value", "type", "name"):
        spoiled = [(s, c) for s in samples if (c := perturbed(s, how)) is not None]
        assert len(spoiled) >= 0.95 * len(samples), how  # some calls take no argument
        assert scores([s for s, _ in spoiled], [c for _, c in spoiled]) == [0.0] * len(spoiled)
    missing = [Completion() for _ in samples]  # no call at all
    assert scores(samples, missing) == [0.0] * len(samples)


@pytest.mark.parametrize("category", IRRELEVANCE)
def test_irrelevance_passes_only_without_a_call(category: str) -> None:
    samples = samples_of(category)
    assert len(samples) == SIZES[category]
    assert all(s.expected == [] for s in samples)
    assert scores(samples, [Completion(text="I cannot help.") for _ in samples]) == [1.0] * len(
        samples
    )
    called = [as_completion([(s.tools[0].name if s.tools else "lookup", {})]) for s in samples]
    assert scores(samples, called) == [0.0] * len(samples)


def test_live_items_keep_their_conversation_in_order() -> None:
    samples = samples_of("live_irrelevance")
    with_history = [s for s in samples if any(m.role == "assistant" for m in s.conversation)]
    assert with_history
    for sample in with_history:
        assert sample.conversation[-1].role == "user"
        assert sample.prompt == sample.conversation[-1].content
    assert any(not s.tools for s in samples)  # items with no function at all


def test_bfcl_types_become_json_schema() -> None:
    kinds: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        kinds.add(node["type"])
        for child in (node.get("properties") or {}).values():
            walk(child)
        if isinstance(node.get("items"), dict):
            walk(node["items"])

    for category in SIZES:
        for sample in samples_of(category, limit=60):
            for tool in sample.tools:
                assert tool.parameters["type"] == "object"
                walk(tool.parameters)
    assert kinds <= {"object", "number", "integer", "string", "boolean", "array"}


def test_a_malformed_line_or_a_missing_file_names_the_file_and_line(tmp_path: Path) -> None:
    good = (DATA / "BFCL_v4_simple_python.json").read_text().splitlines()
    questions = tmp_path / "q.json"
    questions.write_text("\n".join([good[0], "{not json", good[2]]) + "\n")
    task = {
        "name": "broken",
        "source": {"path": str(questions)},
        "bfcl": {"possible_answer": str(DATA / "possible_answer" / "BFCL_v4_simple_python.json")},
        "metrics": ["bfcl_ast"],
    }
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task))
    with pytest.raises(DatasetError) as raised:
        build_samples(cfg.load_task_file(tmp_path / "task.yaml"))
    assert "line 2" in raised.value.render() and str(questions) in raised.value.render()
    questions.write_text(good[1] + "\n")  # simple_python_1 against the answer of item 0
    with pytest.raises(DatasetError, match="does not match question id"):
        build_samples(cfg.load_task_file(tmp_path / "task.yaml"))
    task["source"] = {"path": str(tmp_path / "absent.json")}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task))
    with pytest.raises(DatasetError, match="not found"):
        build_samples(cfg.load_task_file(tmp_path / "task.yaml"))


@pytest.mark.slow
def test_recorded_tool_calls_run_through_the_stages(tmp_path: Path) -> None:
    samples = samples_of("parallel", limit=20)
    recorded = tmp_path / "outputs.jsonl"
    with recorded.open("w") as handle:
        for sample in samples:
            calls = [{"name": n, "arguments": json.dumps(a)} for n, a in calls_of(sample)]
            row = {"question": sample.prompt, "output": "", "tool_calls": calls}
            handle.write(json.dumps(row) + "\n")
    config = {
        "name": "bfcl_replay",
        "models": [
            {
                "name": "answers",
                "provider": "recorded",
                "model": str(recorded),
                "options": {"prompt_field": "question", "tool_calls_field": "tool_calls"},
            }
        ],
        "tasks": [str(ROOT / "configs" / "tasks" / "bfcl_parallel.yaml")],
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(config))
    bench = cfg.load(tmp_path / "bench.yaml").with_limit(20)
    (task,), (model,) = bench.tasks, bench.models
    frame = stages.load_task(task, 20)
    params = runner.request_params(model, task, bench.execution.seed)
    completions = stages.generate(model, frame, params, settings=runner.RunSettings(), label="x")
    results, aggregates = stages.score(model, task, frame, completions)
    assert results["error"].isna().all()
    assert results["score.bfcl_ast"].tolist() == [1.0] * 20
    assert aggregates.set_index("metric").loc["bfcl_ast", "value"] == 1.0
    first = json.loads(results["tool_calls"].iloc[0])
    assert [c["name"] for c in first] == [n for n, _ in calls_of(samples[0])]
