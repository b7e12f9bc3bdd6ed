"""Answer relevance as RAGAS defines it (``ResponseRelevancy``, "answer_relevancy").

A judge is shown the answer alone (not the question) and asked for ``strictness`` questions
the answer answers, and whether the answer is noncommittal (evasive, vague, "I don't know").
The score is the mean cosine similarity between the embeddings of those questions and of the
question actually asked, times 0 when the answer is noncommittal: an answer that drifts off
the question, or pads it, is answered by other questions than the one asked.

Departures from RAGAS, and why:

- One judge request asks for all ``strictness`` questions (RAGAS sends ``strictness``
  requests, one question each). The judges here are greedy unless configured otherwise, and
  n copies of one greedy request are one answer n times; one request asking for n different
  questions gives n questions on every provider and pays the prompt once. It also makes
  RAGAS's two noncommittal rules agree: its ``ResponseRelevancy`` zeroes the score when
  *any* generation is flagged noncommittal, its newer ``collections.AnswerRelevancy`` only
  when *all* are; with one flag per answer both read the same.
- A reply that cannot be read (no JSON object with a non-empty ``questions`` list and a 0/1
  ``noncommittal``) is unscored (NaN), never 0, like every judge reply here; RAGAS gives
  NaN when every generated question is empty.
- Embeddings are all-MiniLM-L6-v2, the offline model dense retrieval already loads
  (:func:`llmbench.retrieval.index.encode`), where RAGAS defaults to an API's embeddings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmbench import prompts
from llmbench.errors import ConfigError
from llmbench.schema import AnswerRelevanceSpec, JudgeSpec, ModelSpec, TaskSpec
from llmbench.scoring.judge import Runner, judge_model, judge_params
from llmbench.scoring.verdict import json_objects
from llmbench.types import Completion, Sample

RELEVANCE_KEY = "answer_relevance"
DEFAULT_TEMPLATE = "answer_relevance.j2"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# What the relevance prompt is rendered with: never the question, which it must not see.
TEMPLATE_SEES = ("answer", "strictness")
QUESTION_MAX_CHARS = 300
# Per sample, beside a judge's grade: the score and what it came from.
RELEVANCE_COLUMNS = [
    RELEVANCE_KEY,
    "relevance_questions",  # JSON list of the generated questions; None: unscored
    "relevance_noncommittal",  # the judge's flag; None: unscored
    "relevance_output",
    "relevance_error",
]
# The relevance reply's usage, added to the judge's own columns of the same sample.
_USAGE = {
    "judge_cost_usd": "cost_usd",
    "judge_latency_s": "latency_s",
    "judge_input_tokens": "input_tokens",
    "judge_output_tokens": "output_tokens",
    "judge_cached_tokens": "cached_tokens",
    "judge_cache_write_tokens": "cache_write_tokens",
}

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Generated:
    """What one judge reply said: the questions the answer answers, and the flag."""

    questions: tuple[str, ...]
    noncommittal: bool


def reply_schema(strictness: int) -> dict[str, Any]:
    """The JSON the judge replies with (enforced where the provider can)."""
    question = {"type": "string", "minLength": 1, "maxLength": QUESTION_MAX_CHARS}
    return {
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "items": question,
                "minItems": strictness,
                "maxItems": strictness,
            },
            "noncommittal": {"enum": [0, 1]},
        },
        "required": ["questions", "noncommittal"],
    }


def parse_reply(text: str) -> Generated | None:
    """The last JSON object holding ``questions``; None when there is none, it lists no
    non-empty question, or its ``noncommittal`` is not 0/1 (true/false)."""
    for _start, _end, data in reversed(json_objects(text)):
        if "questions" not in data:
            continue
        raw = data["questions"]
        listed = raw if isinstance(raw, list) else []
        questions = tuple(q.strip() for q in listed if isinstance(q, str) and q.strip())
        flag = data.get("noncommittal")
        if isinstance(flag, str) and flag.strip() in ("0", "1"):
            flag = int(flag.strip())
        if not questions or flag not in (0, 1) or isinstance(flag, float):
            return None
        return Generated(questions, bool(flag))
    return None


def relevance_score(question: np.ndarray, generated: np.ndarray, noncommittal: bool) -> float:
    """RAGAS's score: the mean cosine similarity of each generated question's embedding
    (rows of ``generated``) to the asked question's, 0 for a noncommittal answer."""
    if generated.ndim != 2 or generated.shape[0] == 0:
        return math.nan
    norms = np.linalg.norm(generated, axis=1) * np.linalg.norm(question)
    cosines = generated @ question / norms
    return 0.0 if noncommittal else float(np.mean(cosines))


def template_text(spec: AnswerRelevanceSpec) -> str:
    """The relevance prompt: the task's own file, else configs/prompts/answer_relevance.j2."""
    try:
        return prompts.read(spec.prompt or DEFAULT_TEMPLATE, TEMPLATE_SEES)
    except prompts.PromptError as exc:
        raise exc.config_error(
            "judge.answer_relevance.prompt",
            hint="point answer_relevance.prompt at a Jinja2 file (it sees "
            f"{', '.join(TEMPLATE_SEES)}), or remove it to use "
            f"{prompts.PROMPTS_DIR / DEFAULT_TEMPLATE}",
        ) from None


def relevance_prompt(task: TaskSpec) -> dict[str, str]:
    """A grade step's ``relevance_template`` parameter (the prompt's text, so editing the
    file reruns the judging); none when the task's judge does not score relevance."""
    if task.judge is None or task.judge.answer_relevance is None:
        return {}
    return {"relevance_template": template_text(task.judge.answer_relevance)}


def asked_question(sample: Sample) -> str:
    """The question the answer is compared with: a retrieval task's query (the question
    without its passages), else the whole request."""
    return sample.retrieval.query if sample.retrieval is not None else sample.question()


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit embeddings with the encoder dense retrieval loads (imported on first use:
    it loads torch)."""
    from llmbench.retrieval.index import encode

    return encode(EMBEDDING_MODEL, texts)


def score_answers(
    task: str,
    spec: JudgeSpec,
    judge: ModelSpec,
    samples: Sequence[Sample],
    completions: Sequence[Completion],
    run: Runner,
    *,
    seed: int,
    template: str,
    embed_texts: Embed = embed,
) -> pd.DataFrame:
    """One judge's answer relevance of one model's answers: a row per sample
    (``sample_id``, :data:`RELEVANCE_COLUMNS`, the reply's usage). A failed answer is not
    sent (unscored)."""
    assert spec.answer_relevance is not None
    relevance = spec.answer_relevance
    judge = judge_model(judge, spec, schema=reply_schema(relevance.strictness))
    params = judge_params(judge, spec, seed).model_copy(update={"max_tokens": relevance.max_tokens})
    asked = [i for i, answer in enumerate(completions) if answer.error is None]
    requests = []
    for i in asked:
        context = {"answer": completions[i].text, "strictness": relevance.strictness}
        try:
            prompt = prompts.render(template, context).strip()
        except prompts.PromptError as exc:
            raise ConfigError(
                f"the answer relevance prompt cannot be rendered: {exc.message}",
                source=f"task {task}",
                field="judge.answer_relevance.prompt",
                hint=f"it sees: {', '.join(TEMPLATE_SEES)}",
            ) from None
        requests.append(Sample(sample_id=samples[i].sample_id, prompt=prompt, references=()))
    replies = run(judge, requests, params) if requests else []
    rows: list[dict[str, Any]] = [
        {"sample_id": s.sample_id, RELEVANCE_KEY: math.nan} for s in samples
    ]
    parsed = {
        i: (parse_reply(reply.text) if reply.error is None else None, reply)
        for i, reply in zip(asked, replies, strict=True)
    }
    scored = {i: found for i, (found, _reply) in parsed.items() if found is not None}
    vectors = _embeddings(samples, scored, embed_texts)
    for i, (found, reply) in parsed.items():
        row = rows[i]
        row.update({"relevance_output": reply.text, "relevance_error": reply.error})
        row.update({name: getattr(reply, field) for name, field in _USAGE.items()})
        row["judge_cached"] = reply.cached
        if found is not None:
            question, generated = vectors[i]
            row[RELEVANCE_KEY] = relevance_score(question, generated, found.noncommittal)
            row["relevance_questions"] = json.dumps(list(found.questions))
            row["relevance_noncommittal"] = found.noncommittal
    columns = ["sample_id", *RELEVANCE_COLUMNS, *_USAGE, "judge_cached"]
    return pd.DataFrame(rows, columns=columns)


def _embeddings(
    samples: Sequence[Sample], scored: dict[int, Generated], embed_texts: Embed
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each scored sample's (question vector, generated question matrix): one encoder
    call for the whole batch."""
    texts: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    for i, found in scored.items():
        start = len(texts)
        texts.extend([asked_question(samples[i]), *found.questions])
        spans[i] = (start, len(texts))
    if not texts:
        return {}
    matrix = np.asarray(embed_texts(texts), dtype=np.float64)
    return {i: (matrix[a], matrix[a + 1 : b]) for i, (a, b) in spans.items()}


def with_relevance(grades: pd.DataFrame, relevance: pd.DataFrame) -> pd.DataFrame:
    """A judge's grade rows with its relevance columns beside them, the relevance reply's
    cost, seconds and tokens added to the judge's (what judging the sample cost in all)."""
    out = grades.merge(relevance, on="sample_id", how="left", suffixes=("", "_relevance"))
    for column in [*_USAGE, "judge_cached"]:
        extra = out.pop(f"{column}_relevance")
        sent = extra.notna()
        if column == "judge_cached":  # cached only when both replies were
            pairs = zip(out.loc[sent, column], extra[sent], strict=True)
            out.loc[sent, column] = [bool(a) and bool(b) for a, b in pairs]
        else:
            out.loc[sent, column] = out.loc[sent, column].fillna(0) + extra[sent]
    return out
