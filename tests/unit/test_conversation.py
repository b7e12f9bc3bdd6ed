"""Conversations: a task's user turns rendered into a sample, bad turns refused before
anything runs, turns assembled into one row, what the judge is shown of each turn, and the
per-turn scores MT-Bench reports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from llmbench.errors import ConfigError, DatasetError
from llmbench.estimate import turn_messages
from llmbench.runtime.conversation import conversation_answer, next_ask
from llmbench.schema import JudgeSpec, TaskSpec
from llmbench.scoring.judge import GRADE_COLUMNS, task_template, turn_contexts
from llmbench.scoring.judged import turn_columns
from llmbench.tables import (
    completions_to_frame,
    frame_to_completions,
    frame_to_samples,
    samples_to_frame,
)
from llmbench.tasks.build import build_samples
from llmbench.types import Ask, Call, Completion, GenerationParams, Message, Sample

QUESTIONS = ["Write a haiku about rain.", "Now make it about snow."]


def conversation_task(path: Path, **fields: Any) -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "name": "talk",
            "source": {"path": str(path)},
            "sample_id": "question_id",
            "turns": "turns",
            "judge": {"mode": "rubric", "panel": ["judge"]},
            **fields,
        }
    )


def data(tmp_path: Path, *rows: dict[str, Any]) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_turns_become_the_prompt_and_its_follow_ups(tmp_path: Path) -> None:
    path = data(
        tmp_path, {"question_id": 81, "turns": QUESTIONS}, {"question_id": 82, "turns": ["Hi"]}
    )
    first, single = build_samples(conversation_task(path, system="Be brief."))
    assert (first.sample_id, first.prompt, first.follow_ups) == (
        "81",
        QUESTIONS[0],
        (QUESTIONS[1],),
    )
    assert first.user_turns() == tuple(QUESTIONS)
    assert first.messages() == [
        Message(role="system", content="Be brief."),
        Message(role="user", content=QUESTIONS[0]),
    ]
    assert single.follow_ups == ()
    # The follow-ups survive the step's table round trip.
    assert frame_to_samples(samples_to_frame([first, single])) == [first, single]


@pytest.mark.parametrize(
    ("turns", "problem"),
    [
        ([], "has no user turn"),
        (["  "], "has no user turn"),
        ("one string", "is not a list of texts (got str)"),
        ([1, 2], "is not a list of texts (got list)"),
    ],
)
def test_a_conversation_without_user_turns_is_refused_naming_file_and_field(
    tmp_path: Path, turns: Any, problem: str
) -> None:
    path = data(
        tmp_path, {"question_id": 1, "turns": QUESTIONS}, {"question_id": 2, "turns": turns}
    )
    with pytest.raises(ConfigError) as caught:
        build_samples(conversation_task(path))
    error = caught.value
    assert error.field == "turns"
    assert str(path) in (error.source or "")
    assert f"row 1: the conversation {problem}" in error.message
    assert error.exit_code == 2


def test_a_dataset_conversation_without_a_user_message_is_refused(tmp_path: Path) -> None:
    """A dataset's own conversation (BFCL's) is checked by its loader, as bad data."""
    path = tmp_path / "BFCL_v4_irrelevance.json"
    item = {"id": "irrelevance_0", "question": [[{"role": "system", "content": "Be terse."}]]}
    path.write_text(json.dumps({**item, "function": []}) + "\n")
    task = TaskSpec.model_validate(
        {
            "name": "calls",
            "source": {"path": str(path)},
            "bfcl": {"possible_answer": None},
            "metrics": ["bfcl_ast"],
        }
    )
    with pytest.raises(DatasetError) as caught:
        build_samples(task)
    assert caught.value.field == "question"
    assert "the question has no user turn" in caught.value.message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({"template": "{{ turns[0] }}"}, "remove 'template'"),
        ({"metrics": ["exact_match"], "target": "answer"}, "remove 'metrics'"),
        ({"judge": {"mode": "pairwise", "panel": ["judge"]}}, "mode 'rubric' or 'reference'"),
    ],
)
def test_what_a_conversation_task_cannot_have(fields: dict[str, Any], refusal: str) -> None:
    with pytest.raises(ValidationError, match=refusal):
        conversation_task(Path("q.jsonl"), **fields)


def answered(text: str, latency: float, tokens: int, error: str | None = None) -> Completion:
    call = Call(
        model="m",
        output=text,
        input_tokens=tokens,
        output_tokens=2,
        latency_s=latency,
        cost_usd=0.5,
        error=error,
    )
    return Completion(
        text=text,
        input_tokens=tokens,
        output_tokens=2,
        latency_s=latency,
        cost_usd=0.5,
        answered_by="m",
        error=error,
        trace=[call],
    )


def test_next_ask_carries_the_question_and_the_answer_verbatim() -> None:
    sample = Sample(sample_id="1", prompt=QUESTIONS[0], follow_ups=(QUESTIONS[1],), references=())
    first = Ask.of(sample)
    second = next_ask(first, answered("Rain falls.", 1.0, 5), QUESTIONS[1])
    assert second.messages == (
        Message(role="user", content=QUESTIONS[0]),
        Message(role="assistant", content="Rain falls."),
        Message(role="user", content=QUESTIONS[1]),
    )
    params = GenerationParams(max_tokens=9)
    assert second.request(params).params == first.request(params).params == params


def test_turns_make_one_row_with_every_answer_and_summed_usage() -> None:
    row = conversation_answer([answered("one", 1.0, 10), answered("two", 2.0, 30)])
    assert (row.text, row.turn_answers, row.error) == ("two", ("one", "two"), None)
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (40, 4, 1.0)
    assert row.latency_s == pytest.approx(3.0)
    assert [(c.turn, c.round, c.start_s, c.output) for c in row.trace] == [
        (0, 0, 0.0, "one"),
        (1, 0, 1.0, "two"),
    ]
    # Through the completion table and back, the answers of each turn stay.
    assert frame_to_completions(completions_to_frame(["1"], [row]))[0].turn_answers == (
        "one",
        "two",
    )


def test_a_failed_turn_ends_the_conversation_with_its_error() -> None:
    row = conversation_answer([answered("one", 1.0, 10), answered("", 0.5, 0, error="HTTP 500")])
    assert row.error == "turn 2: HTTP 500"
    assert row.turn_answers == ("one",)


def test_each_turn_is_judged_with_the_dialogue_up_to_it() -> None:
    spec = JudgeSpec(mode="reference", panel=["judge"])
    sample = Sample(
        sample_id="1",
        prompt=QUESTIONS[0],
        system="Be brief.",
        follow_ups=(QUESTIONS[1],),
        references=("ref one", "ref two"),
    )
    one, two = turn_contexts(spec, sample, Completion(text="B", turn_answers=("A", "B")))
    assert (one["turn"], one["question"], one["answer"], one["reference"]) == (
        1,
        f"Be brief.\n\n{QUESTIONS[0]}",
        "A",
        "ref one",
    )
    assert (two["turn"], two["question"], two["answer"], two["reference"]) == (
        2,
        QUESTIONS[1],
        "B",
        "ref two",
    )
    assert [t["answer"] for t in two["turns"]] == ["A", "B"]
    # A single answer is one turn, shown as it always was.
    plain = Sample(sample_id="2", prompt="Q", references=("R",))
    [only] = turn_contexts(spec, plain, Completion(text="A"))
    assert (only["question"], only["answer"], only["reference"], only["turn"]) == ("Q", "A", "R", 1)


def rendered_turns(references: tuple[str, ...]) -> list[str]:
    """The shipped conversation judge prompt for both turns of one answer."""
    from llmbench import prompts

    task = conversation_task(Path("q.jsonl"))
    assert task.judge is not None
    sample = Sample(
        sample_id="1", prompt=QUESTIONS[0], follow_ups=(QUESTIONS[1],), references=references
    )
    answer = Completion(text="B", turn_answers=("ANSWER-A", "ANSWER-B"))
    return [
        prompts.render(task_template(task), c) for c in turn_contexts(task.judge, sample, answer)
    ]


def test_the_multi_turn_prompt_shows_the_whole_dialogue_for_turn_two() -> None:
    first, second = rendered_turns(())
    assert QUESTIONS[0] in first and "ANSWER-A" in first and QUESTIONS[1] not in first
    assert all(text in second for text in (*QUESTIONS, "ANSWER-A", "ANSWER-B"))
    assert "user question 2" in second and '"score"' in second
    assert "Reference" not in first + second


def test_a_turn_with_references_is_graded_against_them() -> None:
    """MT-Bench's math, reasoning and coding: the reference dialogue beside the answers."""
    first, second = rendered_turns(("REF-ONE", "REF-TWO"))
    assert "REF-ONE" in first and "REF-TWO" not in first and "Reference Answer" in first
    assert second.index("REF-ONE") < second.index("REF-TWO") < second.index("ANSWER-A")
    assert "identify and correct any mistakes" in second


def test_references_from_another_file_are_matched_by_key(tmp_path: Path) -> None:
    path = data(
        tmp_path, {"question_id": 1, "turns": QUESTIONS}, {"question_id": 2, "turns": ["Hi"]}
    )
    refs = tmp_path / "refs.jsonl"
    refs.write_text(json.dumps({"question_id": 1, "choices": [{"turns": ["r1", "r2"]}]}) + "\n")
    spec = {"source": {"path": str(refs)}, "key": "question_id", "target": "choices[0].turns"}
    matched, unmatched = build_samples(conversation_task(path, references_from=spec))
    assert matched.references == ("r1", "r2") and unmatched.references == ()
    with pytest.raises(DatasetError) as caught:
        build_samples(conversation_task(path, references_from={**spec, "key": "qid"}))
    assert caught.value.field == "references_from.key"
    with pytest.raises(ValidationError, match="not both"):
        conversation_task(path, references_from=spec, target="answer")


def grades(judge: str, turns: list[list[float | None]]) -> pd.DataFrame:
    rows = [
        {
            "sample_id": str(n),
            "judge": judge,
            "grade": math.nan,
            "turn_grades": json.dumps(t),
        }
        for n, t in enumerate(turns)
    ]
    return pd.DataFrame(rows, columns=GRADE_COLUMNS)


def test_per_turn_scores_combine_the_panel_turn_by_turn() -> None:
    task = conversation_task(Path("q.jsonl"), judge={"mode": "rubric", "panel": ["a", "b"]})
    columns, rows = turn_columns(
        task,
        ["0", "1"],
        [grades("a", [[8, 4], [6, None]]), grades("b", [[10, 2], [6, None]])],
    )
    assert columns["score.judge_turn1"].tolist() == [9.0, 6.0]
    assert columns["score.judge_turn2"].tolist()[0] == 3.0
    assert math.isnan(columns["score.judge_turn2"].tolist()[1])  # unscored, never 0
    assert [(r["metric"], r["value"], r["scored"]) for r in rows] == [
        ("judge_turn1", 7.5, 2),
        ("judge_turn2", 3.0, 1),
    ]


def test_the_dry_run_counts_every_turn() -> None:
    sample = Sample(sample_id="1", prompt="a", follow_ups=("b", "c"), references=())
    assert [[m.content for m in shown] for shown in turn_messages(sample)] == [
        ["a"],
        ["a", "b"],
        ["a", "b", "c"],
    ]


def test_samples_jsonl_cells_keep_nested_turn_grades_as_lists() -> None:
    """A judgment's turn grades come back from parquet as a nested array."""
    import io

    from llmbench.report.output import _jsonable

    frame = pd.DataFrame({"judgments": [[{"judge": "j", "turn_grades": [8.0, None]}]]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    cell = pd.read_parquet(io.BytesIO(buffer.getvalue()))["judgments"][0]
    assert json.dumps(_jsonable(cell)) == '[{"judge": "j", "turn_grades": [8.0, null]}]'


def test_the_sample_browser_shows_a_conversation_turn_by_turn() -> None:
    from llmbench.report.browser import sample_browser
    from llmbench.schema import BenchConfig, ModelSpec

    task = conversation_task(Path("q.jsonl"))
    model = ModelSpec(name="m", provider="recorded", model="x.jsonl")
    config = BenchConfig(
        models=[model], judges=[model.model_copy(update={"name": "judge"})], tasks=[task]
    )
    row = {
        "model": "m",
        "task": "talk",
        "sample_id": "1",
        "prompt": QUESTIONS[0],
        "follow_ups": json.dumps(QUESTIONS[1:]),
        "output": "B",
        "turn_answers": json.dumps(["A", "B"]),
        "error": None,
        "score.judge": 6.0,
        "score.judge_turn1": 8.0,
        "score.judge_turn2": 4.0,
    }
    [item] = sample_browser(config, pd.DataFrame([row])).items
    assert item.prompt == f"[turn 1] {QUESTIONS[0]}\n\n[turn 2] {QUESTIONS[1]}"
    [answer] = item.answers
    assert answer.output == "[turn 1] A\n\n[turn 2] B"
    assert answer.scores == {"judge": 6.0, "judge_turn1": 8.0, "judge_turn2": 4.0}


def test_the_judges_table_counts_each_turns_reply() -> None:
    from llmbench.report.statistics import judge_report
    from llmbench.schema import BenchConfig, ModelSpec

    task = conversation_task(Path("q.jsonl"))
    model = ModelSpec(name="m", provider="recorded", model="x.jsonl")
    config = BenchConfig(
        models=[model], judges=[model.model_copy(update={"name": "judge"})], tasks=[task]
    )
    judgment = {"judge": "judge", "grade": 8.0, "latency_s": 4.0, "turn_grades": [8.0, None]}
    results = pd.DataFrame(
        [{"model": "m", "task": "talk", "sample_id": "1", "error": None, "judgments": [judgment]}]
    )
    [row] = judge_report(config, results, pd.DataFrame()).to_dict("records")
    assert (row["judged"], row["unscored"], row["latency_p50_s"]) == (2, 1, 2.0)
