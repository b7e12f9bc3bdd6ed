"""Answer relevance as RAGAS defines it: the score from fixed vectors, reading the judge's
reply (unparseable: unscored, never 0), one judge's rows, the panel's column and the
config rules."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from llmbench.schema import JudgeSpec, ModelSpec, TaskSpec
from llmbench.scoring import judged, relevance
from llmbench.types import Completion, GenerationParams, Retrieval, Sample

SQRT_HALF = math.sqrt(0.5)


def test_the_score_is_the_mean_cosine_and_zero_when_noncommittal() -> None:
    question = np.array([2.0, 0.0])  # not unit length: cosines, not dot products
    generated = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])  # cosines 1, 0, sqrt(1/2)
    expected = (1.0 + 0.0 + SQRT_HALF) / 3
    assert relevance.relevance_score(question, generated, False) == pytest.approx(expected)
    assert relevance.relevance_score(question, generated, True) == 0.0
    assert math.isnan(relevance.relevance_score(question, np.zeros((0, 2)), False))


@pytest.mark.parametrize(
    ("text", "questions", "noncommittal"),
    [
        ('{"questions": ["Where?", "When?"], "noncommittal": 0}', ("Where?", "When?"), False),
        ('Sure: {"questions": [" Who? ", ""], "noncommittal": 1} done', ("Who?",), True),
        ('{"questions": ["Why?"], "noncommittal": true}', ("Why?",), True),
        ('{"questions": ["Why?"], "noncommittal": "0"}', ("Why?",), False),
    ],
)
def test_a_reply_gives_its_questions_and_flag(
    text: str, questions: tuple[str, ...], noncommittal: bool
) -> None:
    assert relevance.parse_reply(text) == relevance.Generated(questions, noncommittal)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "What is the capital of France?",  # no JSON
        '{"questions": [], "noncommittal": 0}',  # no question
        '{"questions": ["", "  "], "noncommittal": 0}',
        '{"questions": "Where?", "noncommittal": 0}',  # not a list
        '{"questions": ["Where?"]}',  # no flag
        '{"questions": ["Where?"], "noncommittal": "maybe"}',
        '{"questions": ["Where?"], "noncommittal": 0.5}',
        '{"questions": ["Where?", "When',  # cut off
    ],
)
def test_an_unreadable_reply_is_none(text: str) -> None:
    assert relevance.parse_reply(text) is None


VECTORS = {
    "Who wrote it?": [1.0, 0.0],
    "Who is the author?": [1.0, 1.0],
    "Who wrote the book?": [1.0, 0.0],
    "Where is it?": [0.0, 1.0],
}


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    return np.array([VECTORS[t] for t in texts])


def judge_spec() -> JudgeSpec:
    return JudgeSpec(mode="faithfulness", panel=["j"], answer_relevance={"strictness": 2})


def test_one_judges_rows_score_each_answer_and_leave_unreadable_ones_unscored() -> None:
    samples = [
        Sample(
            sample_id=str(n),
            prompt="Passages ... Question: Who wrote it?",
            references=(),
            retrieval=Retrieval(query="Who wrote it?", retriever="bm25", passages=()),
        )
        for n in range(4)
    ]
    answers = [
        Completion(text="Orwell wrote it."),
        Completion(text="I don't know."),
        Completion(text="garbled"),
        Completion(error="timeout"),  # failed: never sent
    ]
    replies = {
        "Orwell wrote it.": '{"questions": ["Who is the author?", "Who wrote the book?"], '
        '"noncommittal": 0}',
        "I don't know.": '{"questions": ["Where is it?", "Who wrote it?"], "noncommittal": 1}',
        "garbled": "no idea what to say",
    }
    sent: list[Sample] = []

    def run(model: ModelSpec, requests: list[Sample], params: GenerationParams) -> list[Completion]:
        assert params.max_tokens == 256 and model.name == "j"
        sent.extend(requests)
        out = []
        for request in requests:
            answer = request.prompt.split("[Answer]\n")[1].split("\n[End of answer]")[0]
            out.append(Completion(text=replies[answer], cost_usd=0.5, input_tokens=10))
        return out

    template = relevance.template_text(judge_spec().answer_relevance)  # type: ignore[arg-type]
    rows = relevance.score_answers(
        "t",
        judge_spec(),
        ModelSpec(name="j", provider="openai", model="gpt-4o"),
        samples,
        answers,
        run,
        seed=1,
        template=template,
        embed_texts=fake_embed,
    )
    assert len(sent) == 3  # the failed answer is not judged
    assert all("Who wrote it?" not in r.prompt for r in sent)  # the judge never sees it
    assert "2 different questions" in sent[0].prompt
    scores = rows[relevance.RELEVANCE_KEY].tolist()
    assert scores[0] == pytest.approx((SQRT_HALF + 1.0) / 2)  # hand-computed cosines
    assert scores[1] == 0.0  # noncommittal, though one question matches exactly
    assert math.isnan(scores[2]) and math.isnan(scores[3])  # unreadable; failed
    assert json.loads(rows["relevance_questions"][0]) == [
        "Who is the author?",
        "Who wrote the book?",
    ]
    assert rows["relevance_noncommittal"].tolist()[:2] == [False, True]
    assert rows["relevance_output"][2] == "no idea what to say"
    assert rows["judge_cost_usd"].tolist()[:3] == [0.5] * 3


def test_relevance_usage_adds_to_the_judges_own() -> None:
    grades = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "judge": ["j", "j"],
            "grade": [8.0, math.nan],
            "judge_cost_usd": [1.0, math.nan],
            "judge_latency_s": [2.0, math.nan],
            "judge_input_tokens": [100, math.nan],
            "judge_output_tokens": [10, math.nan],
            "judge_cached_tokens": [0, math.nan],
            "judge_cache_write_tokens": [0, math.nan],
            "judge_cached": [True, math.nan],
        }
    )
    scored = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            relevance.RELEVANCE_KEY: [0.75, math.nan],
            "judge_cost_usd": [0.5, math.nan],
            "judge_latency_s": [1.0, math.nan],
            "judge_input_tokens": [50, math.nan],
            "judge_output_tokens": [20, math.nan],
            "judge_cached_tokens": [5, math.nan],
            "judge_cache_write_tokens": [0, math.nan],
            "judge_cached": [False, math.nan],
        }
    )
    out = relevance.with_relevance(grades, scored)
    first = out.iloc[0]
    assert (first["judge_cost_usd"], first["judge_latency_s"]) == (1.5, 3.0)
    assert (first["judge_input_tokens"], first["judge_output_tokens"]) == (150, 30)
    assert first["judge_cached"] is False or not first["judge_cached"]
    assert math.isnan(out.iloc[1]["judge_cost_usd"])  # an unjudged sample stays unjudged
    assert out[relevance.RELEVANCE_KEY].tolist()[0] == 0.75


def rag_task(**judge: object) -> TaskSpec:
    return TaskSpec.model_validate(
        {
            "name": "rag",
            "source": {"path": "x.jsonl"},
            "target": "answer",
            "retrieval": {"corpus": {"path": "c.jsonl"}, "query": "question"},
            "template": "{{ question }}",
            "metrics": ["exact_match"],
            "judge": {"mode": "faithfulness", "panel": ["j", "k"], **judge},
        }
    )


def test_the_panels_relevance_is_the_mean_and_failed_answers_follow_the_task() -> None:
    task = rag_task(answer_relevance={})
    assert judged.judged_keys(task) == ["judge", relevance.RELEVANCE_KEY]
    assert judged.judged_keys(rag_task()) == ["judge"]
    frames = [
        pd.DataFrame({"sample_id": ["a", "b", "c"], "judge": j, relevance.RELEVANCE_KEY: v})
        for j, v in (("j", [0.8, math.nan, math.nan]), ("k", [0.6, 0.3, math.nan]))
    ]
    columns, row = judged.relevance_columns(task, ["a", "b", "c"], frames, [False, False, True])
    values = columns["score.answer_relevance"].tolist()
    assert values[:2] == pytest.approx([0.7, 0.3]) and math.isnan(values[2])
    assert (row["metric"], row["scored"], row["samples"]) == ("answer_relevance", 2, 3)
    assert row["value"] == pytest.approx(0.5)
    zero = task.model_copy(update={"failed_requests": "zero"})
    columns, _ = judged.relevance_columns(zero, ["a", "b", "c"], frames, [False, False, True])
    assert columns["score.answer_relevance"].tolist()[2] == 0.0


def test_relevance_is_refused_where_it_cannot_apply() -> None:
    with pytest.raises(ValidationError, match="not pairwise"):
        JudgeSpec(mode="pairwise", panel=["j"], answer_relevance={})
    with pytest.raises(ValidationError, match="strictness"):
        JudgeSpec(mode="rubric", panel=["j"], answer_relevance={"strictness": 0})
    with pytest.raises(ValidationError, match="conversation task"):
        TaskSpec.model_validate(
            {
                "name": "chat",
                "source": {"path": "x.jsonl"},
                "turns": "turns",
                "judge": {"mode": "rubric", "panel": ["j"], "answer_relevance": {}},
            }
        )
