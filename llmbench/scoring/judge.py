"""LLM-as-judge: rubric grades, reference-guided grades, pairwise preferences and the
faithfulness of an answer to the passages retrieved for it (graded like a rubric, with the
passages in the prompt).

A judge is any configured model; its requests go through the same runner as the models
under test (response cache, retries, rate limits, budget), so re-scoring is cheap and a judge
costs what its provider charges. Pairwise comparisons are judged in both orders: a verdict
counts only when the two orders agree, otherwise it is a tie, and how often they agree is the
judge's *position consistency*. A reply without a valid grade is unscored (NaN), never 0.

A conversation is graded turn by turn, as MT-Bench does: one judge request per user turn,
turn k shown with the dialogue up to it (``turns``) and graded on its last answer; the
sample's grade is the mean of its scored turns, each turn's grade kept (``turn_grades``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from llmbench import pricing, prompts
from llmbench.errors import ConfigError
from llmbench.providers.registry import provider_class
from llmbench.schema import JudgeSpec, ModelSpec, PriceEntry, TaskSpec
from llmbench.scoring.verdict import Preference, parse_grade, parse_preference
from llmbench.types import Completion, GenerationParams, Sample

# One judge's grades of one model's answers on one task: a row per sample.
GRADE_COLUMNS = [
    "sample_id",
    "judge",
    "grade",
    "explanation",
    "judge_output",
    "judge_error",
    "judge_cost_usd",
    "judge_latency_s",
    "judge_input_tokens",
    "judge_output_tokens",
    "judge_cached_tokens",  # prompt tokens the provider served from its prompt cache
    "judge_cache_write_tokens",  # prompt tokens it wrote to that cache
    "judge_cached",
    "turn_grades",  # JSON: a conversation's grade per user turn (null: unscored); else None
]
# One judge's verdicts on one pair of models on one task: a row per sample, both orders.
PAIR_COLUMNS = [
    "task",
    "sample_id",
    "judge",
    "model_a",
    "model_b",
    "forward",  # the verdict with model_a shown first, in model terms: "a", "b", "tie"
    "swapped",  # the verdict with model_b shown first, in the same model terms
    "winner",  # "a", "b", "tie" (orders disagree or both say tie), None: unscored
    "consistent",  # both orders parsed and agree; None when either is unparsed
    "a_failed",  # model_a's request failed: the pair was not sent to the judge
    "b_failed",
    "judge_error",
    "judge_cost_usd",
    "judge_latency_s",  # both orders together
    "judge_input_tokens",
    "judge_output_tokens",
    "judge_cached_tokens",
    "judge_cache_write_tokens",
]

Runner = Callable[[ModelSpec, list[Sample], GenerationParams], list[Completion]]


EXPLANATION_MAX_CHARS = 600


def verdict_schema(spec: JudgeSpec) -> dict[str, Any]:
    """The JSON a judge replies with: its reasoning first, then the verdict."""
    if spec.mode == "pairwise":
        verdict: dict[str, Any] = {"verdict": {"enum": ["A", "B", "tie"]}}
    elif spec.pass_fail:
        verdict = {"verdict": {"enum": ["PASS", "FAIL"]}}
    else:
        low, high = spec.scale
        verdict = {"score": {"enum": list(range(low, high + 1))}}
    return {
        "type": "object",
        "properties": {
            "explanation": {"type": "string", "maxLength": EXPLANATION_MAX_CHARS},
            **verdict,
        },
        "required": ["explanation", *verdict],
    }


def judge_model(
    spec: ModelSpec, judge: JudgeSpec, schema: dict[str, Any] | None = None
) -> ModelSpec:
    """The judge as sent: its reply constrained to the verdict's JSON schema (or
    ``schema``) where the provider can enforce one (llama.cpp grammars), else JSON mode
    where it has one. A judge's own ``json_mode``/``json_schema`` options are left as
    configured."""
    cls = provider_class(spec.provider)
    fields = getattr(cls.options_model, "model_fields", {})
    if "json_mode" in spec.options or "json_schema" in spec.options:
        return spec
    if "json_schema" in fields:
        extra: dict[str, Any] = {"json_schema": schema or verdict_schema(judge)}
    elif "json_mode" in fields and getattr(cls, "supports_json_mode", True):
        extra = {"json_mode": True}
    else:
        return spec
    return spec.model_copy(update={"options": {**spec.options, **extra}})


def judge_params(judge: ModelSpec, spec: JudgeSpec, seed: int) -> GenerationParams:
    """Greedy unless the judge's own params say otherwise; room for an explanation."""
    return judge.params.model_copy(
        update={
            "max_tokens": spec.max_tokens,
            "seed": judge.params.seed if judge.params.seed is not None else seed,
        }
    )


def judge_sees(spec: JudgeSpec) -> tuple[str, ...]:
    """What a judge template is rendered with, in its mode. Rubric and reference templates
    also see ``turn`` (the user turn graded, from 1) and ``turns`` (the dialogue up to it:
    question, answer and reference of each turn; one turn outside conversations);
    faithfulness templates the retrieved passages too, as ``passages``."""
    if spec.mode == "pairwise":
        answers: tuple[str, ...] = ("answer_a", "answer_b")
    else:
        answers = ("answer", "turn", "turns")
    passages = ("passages",) if spec.mode == "faithfulness" else ()
    return ("question", *answers, "reference", "criteria", "low", "high", "pass_fail", *passages)


def default_template(spec: JudgeSpec, conversation: bool = False) -> str:
    """configs/prompts/<mode>.j2; for a conversation task multi_turn.j2, in both rubric and
    reference mode (reference-guided wherever a turn has a reference, as MT-Bench grades)."""
    return "multi_turn.j2" if conversation else f"{spec.mode}.j2"


def template_text(spec: JudgeSpec, conversation: bool = False) -> str:
    """The judge prompt: the task's own template file, else the mode's default."""
    default = default_template(spec, conversation)
    try:
        return prompts.read(spec.prompt or default, judge_sees(spec))
    except prompts.PromptError as exc:
        raise exc.config_error(
            "judge.prompt",
            hint=f"point judge.prompt at a Jinja2 file, or remove it to use "
            f"{prompts.PROMPTS_DIR / default}",
        ) from None


def task_template(task: TaskSpec) -> str:
    """The judge prompt of a judged task (a conversation task's grades each turn)."""
    assert task.judge is not None
    return template_text(task.judge, conversation=task.turns is not None)


def _render(template: str, context: dict[str, Any], task: str, spec: JudgeSpec) -> str:
    try:
        return prompts.render(template, context).strip()
    except prompts.PromptError as exc:
        raise ConfigError(
            f"the judge prompt cannot be rendered: {exc.message}",
            source=f"task {task}",
            field="judge.prompt",
            hint=f"judge templates see: {', '.join(judge_sees(spec))}",
        ) from None


def _base_context(spec: JudgeSpec, sample: Sample) -> dict[str, Any]:
    low, high = spec.scale
    question = sample.question()
    extra: dict[str, Any] = {}
    if spec.mode == "faithfulness":  # the passages apart, and the question without them
        retrieval = sample.retrieval
        extra["passages"] = [p.model_dump() for p in retrieval.passages] if retrieval else []
        question = retrieval.query if retrieval is not None else question
    return {
        **extra,
        "question": question,
        "reference": sample.references[0] if sample.references else "",
        "criteria": spec.criteria,
        "low": low,
        "high": high,
        "pass_fail": spec.pass_fail,
    }


def turn_contexts(spec: JudgeSpec, sample: Sample, answer: Completion) -> list[dict[str, Any]]:
    """What the judge is shown for each user turn of ``answer``: the turn's question, answer
    and reference, and the dialogue up to it. A single answer is one turn; a conversation
    has as many as it answered (a failed turn's and later ones are not judged). With
    follow-ups the references line up with the user turns."""
    base = _base_context(spec, sample)
    if not sample.follow_ups:
        shown = {
            "question": base["question"],
            "answer": answer.text,
            "reference": base["reference"],
        }
        return [{**base, **shown, "turn": 1, "turns": [shown]}]
    questions = (base["question"], *sample.follow_ups)
    dialogue: list[dict[str, str]] = []
    contexts = []
    for n, (question, text) in enumerate(zip(questions, answer.turn_answers, strict=False)):
        reference = sample.references[n] if n < len(sample.references) else ""
        dialogue.append({"question": question, "answer": text, "reference": reference})
        contexts.append({**base, **dialogue[-1], "turn": n + 1, "turns": list(dialogue)})
    return contexts


def grade_answers(
    task: str,
    spec: JudgeSpec,
    judge: ModelSpec,
    samples: Sequence[Sample],
    completions: Sequence[Completion],
    run: Runner,
    params: GenerationParams,
    template: str,
) -> pd.DataFrame:
    """One judge's grades (rubric or reference-guided) for one model's answers; a
    conversation's turns each graded (``turn_grades``), the sample's grade their mean.

    Failed requests of the model under test are not sent to the judge: they stay unscored."""
    asked: list[int] = []  # the sample of each judge request, turns in order
    requests = []
    for i, answer in enumerate(completions):
        if answer.error is not None:
            continue
        for context in turn_contexts(spec, samples[i], answer):
            prompt = _render(template, context, task, spec)
            requests.append(Sample(sample_id=samples[i].sample_id, prompt=prompt, references=()))
            asked.append(i)
    replies = run(judge, requests, params) if requests else []
    by_sample: dict[int, list[Completion]] = {}
    for i, reply in zip(asked, replies, strict=True):
        by_sample.setdefault(i, []).append(reply)
    rows: list[dict[str, Any]] = [
        {"sample_id": s.sample_id, "judge": judge.name, "grade": math.nan} for s in samples
    ]
    for i, turns in by_sample.items():
        rows[i].update(_graded(spec, turns, conversation=bool(samples[i].follow_ups)))
    return pd.DataFrame(rows, columns=GRADE_COLUMNS)


def _graded(spec: JudgeSpec, replies: list[Completion], *, conversation: bool) -> dict[str, Any]:
    """One answer's grade row from its judge replies (one per turn graded)."""
    low, high = spec.bounds
    grades = [parse_grade(r.text, low=low, high=high, pass_fail=spec.pass_fail) for r in replies]
    values = [
        g.value if r.error is None else math.nan for g, r in zip(grades, replies, strict=True)
    ]
    notes = [
        g.explanation if r.error is None else None for g, r in zip(grades, replies, strict=True)
    ]
    if not conversation:
        return {"grade": values[0], "explanation": notes[0], **_reply_fields(replies[0])}
    scored = [v for v in values if not math.isnan(v)]

    def by_turn(texts: Sequence[str | None]) -> str | None:
        kept = [f"[turn {n}] {t}" for n, t in enumerate(texts, start=1) if t]
        return "\n\n".join(kept) if kept else None

    return {
        "grade": math.fsum(scored) / len(scored) if scored else math.nan,
        "explanation": by_turn(notes),
        "judge_output": by_turn([r.text for r in replies]),
        "judge_error": by_turn([r.error for r in replies]),
        "judge_cost_usd": math.fsum(r.cost_usd for r in replies),
        "judge_latency_s": math.fsum(r.latency_s for r in replies),
        "judge_input_tokens": sum(r.input_tokens for r in replies),
        "judge_output_tokens": sum(r.output_tokens for r in replies),
        "judge_cached_tokens": sum(r.cached_tokens for r in replies),
        "judge_cache_write_tokens": sum(r.cache_write_tokens for r in replies),
        "judge_cached": all(r.cached for r in replies),
        "turn_grades": json.dumps([None if math.isnan(v) else v for v in values]),
    }


def turn_grades_of(value: Any) -> list[float]:
    """A ``turn_grades`` cell as grades per turn (NaN: unscored); [] outside conversations."""
    if not isinstance(value, str) or not value:
        return []
    return [math.nan if v is None else float(v) for v in json.loads(value)]


def _reply_fields(reply: Completion) -> dict[str, Any]:
    return {
        "judge_output": reply.text,
        "judge_error": reply.error,
        "judge_cost_usd": reply.cost_usd,
        "judge_latency_s": reply.latency_s,
        "judge_input_tokens": reply.input_tokens,
        "judge_output_tokens": reply.output_tokens,
        "judge_cached_tokens": reply.cached_tokens,
        "judge_cache_write_tokens": reply.cache_write_tokens,
        "judge_cached": reply.cached,
    }


_FLIP: dict[str, str] = {"a": "b", "b": "a", "tie": "tie"}


def _in_model_terms(preference: Preference | None, a_shown_first: bool) -> str | None:
    if preference is None:
        return None
    shown = {"A": "a", "B": "b", "tie": "tie"}[preference]
    return shown if a_shown_first else _FLIP[shown]


def resolve_orders(forward: str | None, swapped: str | None) -> tuple[str | None, bool | None]:
    """(winner, consistent) from the two orders' verdicts in model terms.

    Agreeing orders give their verdict; disagreeing ones a tie (the judge's preference
    followed the position, not the answer); a missing verdict leaves the pair unscored."""
    if forward is None or swapped is None:
        return None, None
    if forward == swapped:
        return forward, True
    return "tie", False


def judge_pair(
    task: str,
    spec: JudgeSpec,
    judge: ModelSpec,
    samples: Sequence[Sample],
    model_a: tuple[str, Sequence[Completion]],
    model_b: tuple[str, Sequence[Completion]],
    run: Runner,
    params: GenerationParams,
    template: str,
) -> pd.DataFrame:
    """One judge's verdicts on model_a vs model_b, every sample judged in both orders."""
    (name_a, answers_a), (name_b, answers_b) = model_a, model_b
    todo = [
        i for i in range(len(samples)) if answers_a[i].error is None and answers_b[i].error is None
    ]
    requests = []
    for i in todo:
        context = _base_context(spec, samples[i])
        first, second = answers_a[i].text, answers_b[i].text
        for shown_a, shown_b in ((first, second), (second, first)):
            shown = {**context, "answer_a": shown_a, "answer_b": shown_b}
            prompt = _render(template, shown, task, spec)
            requests.append(Sample(sample_id=samples[i].sample_id, prompt=prompt, references=()))
    replies = run(judge, requests, params) if requests else []
    rows: list[dict[str, Any]] = [
        {
            "task": task,
            "sample_id": s.sample_id,
            "judge": judge.name,
            "model_a": name_a,
            "model_b": name_b,
            "a_failed": answers_a[i].error is not None,
            "b_failed": answers_b[i].error is not None,
            "judge_cost_usd": 0.0,
            "judge_latency_s": 0.0,
            "judge_input_tokens": 0,
            "judge_output_tokens": 0,
            "judge_cached_tokens": 0,
            "judge_cache_write_tokens": 0,
        }
        for i, s in enumerate(samples)
    ]
    for n, i in enumerate(todo):
        forward_reply, swapped_reply = replies[2 * n], replies[2 * n + 1]
        forward = _in_model_terms(
            parse_preference(forward_reply.text) if forward_reply.error is None else None, True
        )
        swapped = _in_model_terms(
            parse_preference(swapped_reply.text) if swapped_reply.error is None else None, False
        )
        winner, consistent = resolve_orders(forward, swapped)
        errors = [r.error for r in (forward_reply, swapped_reply) if r.error]
        rows[i].update(
            {
                "forward": forward,
                "swapped": swapped,
                "winner": winner,
                "consistent": consistent,
                "judge_error": "; ".join(errors) if errors else None,
                "judge_cost_usd": forward_reply.cost_usd + swapped_reply.cost_usd,
                "judge_latency_s": forward_reply.latency_s + swapped_reply.latency_s,
                "judge_input_tokens": forward_reply.input_tokens + swapped_reply.input_tokens,
                "judge_output_tokens": forward_reply.output_tokens + swapped_reply.output_tokens,
                "judge_cached_tokens": forward_reply.cached_tokens + swapped_reply.cached_tokens,
                "judge_cache_write_tokens": forward_reply.cache_write_tokens
                + swapped_reply.cache_write_tokens,
            }
        )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def score_failures(verdicts: pd.DataFrame, zero: bool) -> pd.DataFrame:
    """Pairs with a failed answer are unjudged (unscored); when the task scores failed
    requests as zero, the side that answered wins, and two failures tie."""
    if not zero or verdicts.empty:
        return verdicts
    out = verdicts.copy()
    a = out["a_failed"].fillna(False).astype(bool)
    b = out["b_failed"].fillna(False).astype(bool)
    out.loc[a & ~b, "winner"] = "b"
    out.loc[b & ~a, "winner"] = "a"
    out.loc[a & b, "winner"] = "tie"
    return out


def reprice(frame: pd.DataFrame, prices: Mapping[str, PriceEntry]) -> pd.DataFrame:
    """Judge costs at the judges' current prices (a cached judging step keeps the price it
    ran with; the tokens, prompt-cache hits and seconds it used are what is billed)."""
    if frame.empty:
        return frame
    out = frame.copy()
    # Verdicts stored before prompt-cache hits (or writes) were kept have none to price.
    for column in ("judge_cached_tokens", "judge_cache_write_tokens"):
        kept = out.get(column, 0)
        out[column] = pd.Series(kept, index=out.index).fillna(0).astype(int)
    out["judge_cost_usd"] = [
        pricing.usage_cost(prices[judge], tokens_in, tokens_out, seconds, cached, written)
        if judge in prices
        else cost
        for judge, tokens_in, tokens_out, seconds, cached, written, cost in zip(
            out["judge"],
            out["judge_input_tokens"].fillna(0),
            out["judge_output_tokens"].fillna(0),
            out["judge_latency_s"].fillna(0.0),
            out["judge_cached_tokens"],
            out["judge_cache_write_tokens"],
            out["judge_cost_usd"],
            strict=True,
        )
    ]
    return out


def model_pairs(models: Sequence[str], baseline: str | None) -> list[tuple[str, str]]:
    """Every pair of models once, or each model against the baseline."""
    if baseline is not None:
        return [(baseline, m) for m in models if m != baseline]
    return [(a, b) for n, a in enumerate(models) for b in models[n + 1 :]]


def combine_grades(grades: pd.DataFrame, how: str) -> pd.Series:
    """A panel's grade per sample: the mean, or the most common grade (a split is unscored)."""
    table = grades.pivot(index="sample_id", columns="judge", values="grade")
    if how == "mean":
        return table.mean(axis=1, skipna=True)

    def majority(row: pd.Series) -> float:
        counts = row.dropna().value_counts()
        if counts.empty or (len(counts) > 1 and counts.iloc[0] == counts.iloc[1]):
            return math.nan
        return float(counts.index[0])

    return table.apply(majority, axis=1)


def combine_verdicts(pairs: pd.DataFrame) -> pd.DataFrame:
    """One verdict per (pair, sample) from a panel: the majority of scored verdicts, a tie
    when the panel splits evenly, unscored when no judge gave one."""

    def majority(winners: pd.Series) -> str | None:
        counts = winners.dropna().value_counts()
        if counts.empty:
            return None
        if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
            return "tie"
        return str(counts.index[0])

    keys = ["task", "model_a", "model_b", "sample_id"]
    return pairs.groupby(keys, sort=False)["winner"].agg(majority).reset_index()


OUTCOME = {"a": 1.0, "b": 0.0, "tie": 0.5}


def outcomes_for(model: str, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per sample, ``model``'s mean outcome over its comparisons (1 win, 0.5 tie, 0 loss)."""
    rows = []
    for record in verdicts.to_dict("records"):
        if model not in (record["model_a"], record["model_b"]):
            continue
        winner = record["winner"]
        value = math.nan
        if isinstance(winner, str):
            value = OUTCOME[winner] if record["model_a"] == model else 1.0 - OUTCOME[winner]
        opponent = record["model_b"] if record["model_a"] == model else record["model_a"]
        rows.append({"sample_id": record["sample_id"], "opponent": opponent, "outcome": value})
    return pd.DataFrame(rows, columns=["sample_id", "opponent", "outcome"])
