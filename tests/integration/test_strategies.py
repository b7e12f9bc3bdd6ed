"""Routers and cascades through the real model client and the OpenAI SDK, against scripted
members on the loopback server: what each member is sent, why, what it costs, and which
calls are shared with the members' own rows."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from llmbench import plan, stages
from llmbench.config import BenchConfig, PriceEntry, StrategySpec, check_registries
from llmbench.errors import ConfigError
from llmbench.runtime.budget import Budget
from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.runtime.limiter import RateLimits
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import ModelAnswerer, run_answers
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import build_strategy, identity
from llmbench.tables import frame_to_completions, samples_to_frame
from llmbench.types import Completion, Sample
from tests.fakes.provider_server import Fault, ProviderServer, RecordedRequest, Reply

CHEAP = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="t", date="d")
STRONG = PriceEntry(input_per_1m=10.0, output_per_1m=30.0, source="t", date="d")
ZERO_WAIT = RetryPolicy(max_attempts=6, backoff_base_s=0.0, backoff_max_s=0.0)


@pytest.fixture(autouse=True)
def environment(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.clear()
    server.default = echo
    monkeypatch.setenv("OPENAI_API_KEY", "sk-strategy-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")


def echo(request: RecordedRequest) -> Reply:
    return Reply(text=f"{request.model}: 1", input_tokens=10, output_tokens=5)


def bench(
    strategies: list[dict[str, Any]],
    extra_models: tuple[dict[str, Any], ...] = (),
    **cheap_params: Any,
) -> BenchConfig:
    """A config as the loader returns it: the schema, then the registry checks."""
    return check_registries(
        BenchConfig.model_validate(
            {
                "models": [
                    {
                        "name": "cheap",
                        "provider": "openai",
                        "model": "gpt-cheap",
                        "params": {"max_tokens": 16, **cheap_params},
                        "price": CHEAP.model_dump(),
                    },
                    {
                        "name": "strong",
                        "provider": "openai",
                        "model": "gpt-strong",
                        "params": {"max_tokens": 16},
                        "price": STRONG.model_dump(),
                    },
                    *extra_models,
                ],
                "strategies": strategies,
                "tasks": [
                    {
                        "name": "math",
                        "source": {"path": "x.jsonl"},
                        "template": "{{ q }}",
                        "target": "a",
                        "extract": ["last_number"],
                        "metrics": ["exact_match"],
                    }
                ],
            }
        )
    )


def cascade(**options: Any) -> dict[str, Any]:
    return {
        "name": "cascade",
        "kind": "cascade",
        "members": {"cheap": "cheap", "strong": "strong"},
        "options": options,
    }


def samples(*prompts: str) -> list[Sample]:
    return [Sample(sample_id=str(i), prompt=p, references=("1",)) for i, p in enumerate(prompts)]


def answer(
    config: BenchConfig, items: list[Sample], settings: RunSettings | None = None
) -> list[Completion]:
    """The config's only strategy over ``items`` (the step's code path, without ZenML)."""
    [spec] = config.strategies
    models = {m.name: m for m in config.models}
    frame = stages.answer(
        identity(spec, models, {}),
        {
            m.name: {"price": m.price.model_dump(), "limits": m.limits.model_dump()}  # type: ignore[union-attr]
            for m in config.models
        },
        TaskView.of(config.tasks[0]),
        samples_to_frame(items),
        seed=1,
        settings=settings or RunSettings(retries=ZERO_WAIT),
        label="t",
    )
    return frame_to_completions(frame)


def own_row(config: BenchConfig, name: str, items: list[Sample], settings: RunSettings) -> None:
    """The member's own leaderboard row, as its generate step would send it."""
    from llmbench.runtime.client import ModelClient
    from llmbench.runtime.runner import request_params

    model = next(m for m in config.models if m.name == name)
    client = ModelClient(model, settings)
    params = request_params(model, config.tasks[0], 1)
    asyncio.run(
        run_answers(
            ModelAnswerer(client, params),
            items,
            progress=GenerationProgress("own", len(items), live=False),
            settings=settings,
        )
    )


def models_asked(server: ProviderServer) -> list[str | None]:
    return [r.model for r in server.requests]


# ---------------------------------------------------------------- router


def router(**options: Any) -> dict[str, Any]:
    return {
        "name": "router",
        "kind": "router",
        "members": {"small": "cheap", "big": "strong"},
        "options": options,
    }


def test_router_rules_pick_a_member_by_length_regex_and_task(server: ProviderServer) -> None:
    config = bench(
        [
            router(
                rules=[
                    {"regex": r"\bprove\b", "use": "big"},
                    {"max_chars": 10, "use": "small"},
                    {"task": "other", "use": "small"},
                ],
                default="big",
            )
        ]
    )
    done = answer(config, samples("2+2?", "prove it now, please", "a long question here"))

    assert [c.answered_by for c in done] == ["cheap", "strong", "strong"]
    assert sorted(map(str, models_asked(server))) == ["gpt-cheap", "gpt-strong", "gpt-strong"]
    notes = [c.trace[0].note for c in done]
    assert notes[0] == "routed to small: rule 2: prompt 4 <= 10 chars"
    assert notes[1] == r"routed to big: rule 1: prompt matches /\bprove\b/"
    assert notes[2] == "routed to big: no rule matched: default"
    assert [c.trace[0].role for c in done] == ["small", "big", "big"]


def test_router_classifier_labels_the_prompt_and_its_call_is_paid_for(
    server: ProviderServer,
) -> None:
    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Which kind"):
            label = "hard" if "integral" in text else "easy"
            return Reply(text=f"{label}.", input_tokens=30, output_tokens=1)
        return echo(request)

    server.default = members
    config = bench(
        [
            {
                "name": "router",
                "kind": "router",
                "members": {"small": "cheap", "big": "strong", "triage": "cheap"},
                "options": {
                    "classifier": {"member": "triage", "labels": {"easy": "small", "hard": "big"}}
                },
            }
        ]
    )
    easy, hard = answer(config, samples("what is 1+1", "solve this integral"))

    assert (easy.answered_by, hard.answered_by) == ("cheap", "strong")
    assert [c.purpose for c in hard.trace] == ["classify", "answer"]
    assert hard.trace[1].note == "routed to big: classifier said 'hard'"
    classify, routed = hard.trace
    assert classify.cost_usd == pytest.approx((30 * 1.0 + 1 * 2.0) / 1e6)
    assert routed.cost_usd == pytest.approx((10 * 10.0 + 5 * 30.0) / 1e6)
    assert hard.cost_usd == pytest.approx(classify.cost_usd + routed.cost_usd)
    assert hard.input_tokens == 40 and hard.output_tokens == 6
    assert len(server.requests) == 4


# ---------------------------------------------------------------- cascade


def unsure_on_odd(request: RecordedRequest) -> Reply:
    """The cheap model finds no number for prompts ending in an odd digit."""
    text = request.last_user_text or ""
    if request.model == "gpt-cheap" and int(text[-1]) % 2:
        return Reply(text="I am not sure.", input_tokens=10, output_tokens=4)
    return echo(request)


def test_cascade_escalates_when_no_answer_is_found_and_cost_is_the_sum(
    server: ProviderServer,
) -> None:
    server.default = unsure_on_odd
    done = answer(bench([cascade()]), samples("q0", "q1", "q2", "q3"))

    assert [c.answered_by for c in done] == ["cheap", "strong", "cheap", "strong"]
    assert [len(c.trace) for c in done] == [1, 2, 1, 2]
    first, second = done[1].trace
    assert (first.role, first.note) == ("cheap", "escalated: no answer extracted")
    assert (second.role, second.output) == ("strong", "gpt-strong: 1")
    assert first.cost_usd == pytest.approx((10 * 1.0 + 4 * 2.0) / 1e6)
    assert done[1].cost_usd == pytest.approx(first.cost_usd + second.cost_usd)
    assert done[0].trace[0].note == "accepted"
    assert models_asked(server).count("gpt-strong") == 2


def test_a_call_the_members_own_row_made_is_sent_once(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.default = unsure_on_odd
    config = bench([cascade()])
    items = samples("q0", "q1", "q2", "q3")
    cache = ResponseCache(tmp_path)
    settings = RunSettings(cache=cache, retries=ZERO_WAIT)
    own_row(config, "cheap", items, settings)
    own_row(config, "strong", items, settings)
    assert len(server.requests) == 8

    done = answer(config, items, settings)
    cache.close()

    assert len(server.requests) == 8  # every member call came from the cache
    assert all(call.cached for c in done for call in c.trace)
    assert [c.answered_by for c in done] == ["cheap", "strong", "cheap", "strong"]


def test_cascade_escalates_at_each_threshold_of_grade_and_confidence(
    server: ProviderServer,
) -> None:
    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Is this answer"):
            grade = re.search(r"Question:\n(\w+)", text).group(1)  # type: ignore[union-attr]
            return Reply(text=f"Looks fine. [[{grade[-1]}]]", input_tokens=50, output_tokens=3)
        return Reply(text=f"It is 4. Confidence: {text[-1]}0%", input_tokens=10, output_tokens=6)

    server.default = members
    config = bench(
        [
            {
                "name": "cascade",
                "kind": "cascade",
                "members": {"cheap": "cheap", "strong": "strong", "checker": "strong"},
                "options": {"escalate_on": ["low_grade"], "verifier": "checker", "min_grade": 7},
            }
        ]
    )
    graded = answer(config, samples("q6", "q7", "q9"))
    assert [c.answered_by for c in graded] == ["strong", "cheap", "cheap"]
    assert graded[0].trace[1].note == "escalated: verifier grade 6 < 7"
    assert [c.purpose for c in graded[0].trace] == ["answer", "verify", "answer"]

    server.clear()
    sure = bench([cascade(escalate_on=["low_confidence"], min_confidence=0.8)])
    done = answer(sure, samples("q5", "q8", "q9"))
    assert [c.answered_by for c in done] == ["strong", "cheap", "cheap"]
    assert done[0].trace[0].note == "escalated: stated confidence 0.50 < 0.80"


def test_the_classifier_and_the_verifier_see_the_tasks_system_prompt(
    server: ProviderServer,
) -> None:
    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Which kind"):
            return Reply(text="hard")
        if text.startswith("Is this answer"):
            return Reply(text="[[9]]")
        return echo(request)

    server.default = members
    router_ = router(classifier={"member": "small", "labels": {"easy": "small", "hard": "big"}})
    graded = cascade(escalate_on=["low_grade"], verifier="checker") | {
        "members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}
    }
    item = Sample(sample_id="0", prompt="2+2?", system="Answer in Roman numerals.", references=())
    for strategy, asked in ((router_, "Which kind"), (graded, "Is this answer")):
        server.clear()
        answer(bench([strategy]), [item])
        [prompt] = [t for r in server.requests if (t := r.last_user_text or "").startswith(asked)]
        assert "Answer in Roman numerals.\n\n2+2?" in prompt


def test_k_draws_are_k_distinct_requests_and_disagreement_escalates(
    server: ProviderServer,
) -> None:
    def draws(request: RecordedRequest) -> Reply:
        if request.model == "gpt-cheap":
            seed = request.body.get("seed")
            text = request.last_user_text or ""
            number = 7 if text == "q0" else int(str(seed)[-1])  # q0: every draw says 7
            return Reply(text=f"answer {number}", input_tokens=10, output_tokens=2)
        return echo(request)

    server.default = draws
    config = bench(
        [cascade(escalate_on=["disagreement"], samples=3, min_agreement=1.0)],
        temperature=0.7,
    )
    agreed, split = answer(config, samples("q0", "q1"))

    cheap = [r for r in server.requests if r.model == "gpt-cheap"]
    assert len(cheap) == 6  # 3 draws for each of 2 prompts
    assert len({(r.last_user_text, r.body.get("seed")) for r in cheap}) == 6
    assert agreed.answered_by == "cheap" and len(agreed.trace) == 3
    assert split.answered_by == "strong"
    assert split.trace[2].note is not None and "draws agree" in split.trace[2].note
    assert [c.purpose for c in split.trace] == ["answer", "draw 1", "draw 2", "answer"]


def test_disagreement_with_a_greedy_member_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"strategies\.0\.members\.cheap: disagreement"):
        bench([cascade(escalate_on=["disagreement"])])


def test_identical_requests_in_flight_are_sent_once(server: ProviderServer) -> None:
    def slow(request: RecordedRequest) -> Reply:
        return Reply(text="7", delay_s=0.2)

    server.default = slow
    config = bench([])
    from llmbench.runtime.client import ModelClient
    from llmbench.runtime.runner import request_params

    model = config.models[0]
    settings = RunSettings(concurrency=8, retries=ZERO_WAIT)
    items = samples("same", "same", "same", "other", "same", "other")
    done = asyncio.run(
        run_answers(
            ModelAnswerer(ModelClient(model, settings), request_params(model, config.tasks[0], 1)),
            items,
            progress=GenerationProgress("t", len(items), live=False),
            settings=settings,
        )
    )
    assert len(server.requests) == 2
    assert sum(c.cached for c in done) == 4
    assert all(c.text == "7" and c.error is None for c in done)


def test_budget_and_endpoint_limits_apply_to_each_member(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.default = unsure_on_odd
    config = bench([cascade()])
    # Each cheap call reserves $37e-6 and costs $18-20e-6; an escalation would reserve
    # $530e-6 at the strong model's price, more than is left of $100e-6.
    budget = Budget(limit_usd=100e-6)
    settings = RunSettings(concurrency=1, retries=ZERO_WAIT, budget=budget)
    done = answer(config, samples("q0", "q1", "q2"), settings)
    assert done[0].error is None and done[2].error is None
    assert done[1].error is not None and done[1].error.startswith("budget: not sent")
    assert models_asked(server).count("gpt-strong") == 0

    server.clear()
    server.default = lambda r: Reply(text="5", delay_s=0.05)
    limited = bench([cascade()])
    # A key of its own: limits are per endpoint and key, process-wide, and the other tests'
    # models share this server.
    monkeypatch.setenv("LIMITED_KEY", "sk-limited")
    cheap = limited.models[0].model_copy(
        update={"api_key_env": "LIMITED_KEY", "limits": RateLimits(max_concurrency=1)}
    )
    limited = limited.model_copy(update={"models": [cheap, limited.models[1]]})
    answer(limited, samples(*(f"q{2 * i}" for i in range(6))), RunSettings(concurrency=6))
    assert server.peak_in_flight == 1


def test_a_fault_storm_on_a_member_loses_no_answer(server: ProviderServer) -> None:
    server.default = unsure_on_odd
    server.script(
        Fault(status=429),
        Fault(status=500),
        Fault(status=503),
        Fault(status=429, retry_after_ms=1),
        Fault(status=502),
    )
    done = answer(bench([cascade()]), samples(*(f"q{i}" for i in range(10))))
    assert all(c.error is None for c in done)
    assert sum(call.attempts for c in done for call in c.trace) == len(server.requests)
    assert len(server.requests) == 10 + 5 + 5  # answers, escalations, retried faults


# ---------------------------------------------------------------- identity and plan


def test_a_changed_member_changes_the_strategys_step_identity() -> None:
    config = bench([cascade()])
    steps = plan.plan(config, {"math": "f"})
    [step] = [g for g in steps.generations if g.kind == "strategy"]
    assert step.id == "answer__cascade__math"
    assert step.after == ("generate__cheap__math", "generate__strong__math")
    changed = bench([cascade()], temperature=0.3)
    [again] = [g for g in plan.plan(changed, {"math": "f"}).generations if g.kind == "strategy"]
    assert again.params["strategy"] != step.params["strategy"]
    priced = bench([cascade()])
    cheaper = priced.models[0].model_copy(
        update={"price": CHEAP.model_copy(update={"input_per_1m": 0.5})}
    )
    repriced = priced.model_copy(update={"models": [cheaper, priced.models[1]]})
    [same] = [g for g in plan.plan(repriced, {"math": "f"}).generations if g.kind == "strategy"]
    assert same.params == step.params  # a price change re-prices; it never re-answers
    scores = {s.id: s for s in plan.plan(repriced, {"math": "f"}).scorings}
    assert set(scores["score__math"].prices["cascade"]) == {"cheap", "strong"}


def test_a_strategys_identity_is_its_options_with_defaults_and_prompt_texts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from llmbench import prompts

    def step_identity(strategy: dict[str, Any]) -> dict[str, object]:
        config = bench([strategy])
        return identity(config.strategies[0], {m.name: m for m in config.models}, {})

    def graded(**options: Any) -> dict[str, Any]:
        return cascade(escalate_on=["low_grade"], verifier="checker", **options) | {
            "members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}
        }

    labelled = router(classifier={"member": "small", "labels": {"easy": "small", "hard": "big"}})
    # Defaults spelled out or left out: one strategy, one identity.
    assert step_identity(cascade()) == step_identity(
        cascade(escalate_on=["no_answer"], samples=3, min_grade=7.0)
    )
    before = {"cascade": step_identity(graded()), "router": step_identity(labelled)}
    assert step_identity(cascade(min_grade=8)) != step_identity(cascade())

    # The same text inline, in one file or in another: one identity; edit it and it changes.
    default = (prompts.PROMPTS_DIR / "strategies" / "verifier.j2").read_text()
    one, other = tmp_path / "one.j2", tmp_path / "other.j2"
    one.write_text(default)
    other.write_text(default)
    assert step_identity(graded(verifier_prompt={"file": str(one)})) == before["cascade"]
    assert step_identity(graded(verifier_prompt={"file": str(other)})) == before["cascade"]
    assert step_identity(graded(verifier_prompt=default.rstrip("\n"))) == before["cascade"]
    one.write_text(default.replace("Grade it", "Rate it"))
    assert step_identity(graded(verifier_prompt={"file": str(one)})) != before["cascade"]

    # A reworded default prompt file re-runs every strategy using it.
    shipped = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPTS_DIR, shipped)
    monkeypatch.setattr(prompts, "PROMPTS_DIR", shipped)
    assert step_identity(graded()) == before["cascade"]
    for name in ("verifier", "classifier"):
        path = shipped / "strategies" / f"{name}.j2"
        path.write_text(path.read_text().replace("Answer", "Reply"))
    assert step_identity(graded()) != before["cascade"]
    assert step_identity(labelled) != before["router"]


def test_the_classifier_and_verifier_prompts_sent_are_the_old_inline_ones(
    server: ProviderServer,
) -> None:
    """The defaults moved into files render as they did inline, so the response cache keys
    of classifier and verifier calls already paid for still hold."""
    from tests.unit.test_prompts import OLD_CLASSIFIER, OLD_VERIFIER

    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        return Reply(text="[[9]]" if text.startswith("Is this") else "hard 4")

    server.default = members
    labelled = router(classifier={"member": "small", "labels": {"easy": "small", "hard": "big"}})
    graded = cascade(escalate_on=["low_grade"], verifier="checker") | {
        "members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}
    }
    item = Sample(sample_id="0", prompt="2+2?\n", system="Be brief.", references=())
    old = SandboxedEnvironment(undefined=StrictUndefined)
    expected = {
        "Which kind": old.from_string(OLD_CLASSIFIER).render(
            prompt=item.question(), labels=["easy", "hard"]
        ),
        "Is this": old.from_string(OLD_VERIFIER).render(prompt=item.question(), answer="hard 4"),
    }
    for strategy, asked in ((labelled, "Which kind"), (graded, "Is this")):
        server.clear()
        answer(bench([strategy]), [item])
        sent = [t for r in server.requests if (t := r.last_user_text or "").startswith(asked)]
        assert sent == [expected[asked]]


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (cascade() | {"members": {"cheap": "cheap", "strong": "nobody"}}, "no model or strategy"),
        (router(default="huge"), "options.default: no member with role 'huge'"),
        (cascade(order=["cheap"]), "two or more stages"),
        (cascade(escalate_on=["low_grade"]), "needs 'verifier'"),
        ({"name": "x", "kind": "ruoter", "members": {"a": "cheap"}}, "did you mean 'router'"),
        (router(default="small", rules=[{"use": "big"}]), "a rule needs a condition"),
    ],
)
def test_bad_strategies_are_config_errors_naming_the_field(
    strategy: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, ConfigError), match=re.escape(message)):
        bench([strategy])


def test_a_cycle_of_strategies_is_refused() -> None:
    a = {"name": "a", "kind": "router", "members": {"x": "b"}, "options": {"default": "x"}}
    b = {"name": "b", "kind": "router", "members": {"x": "a"}, "options": {"default": "x"}}
    with pytest.raises(ValueError, match=r"a cycle: a -> b -> a"):
        bench([a, b])


def test_selecting_a_strategy_brings_its_members() -> None:
    config = bench([cascade()])
    chosen = config.select(["cascade"], None)
    assert [e.name for e in chosen.entrants] == ["cheap", "strong", "cascade"]
    assert isinstance(chosen.entrants[-1], StrategySpec)


def test_nested_strategies_answer_through_their_members(server: ProviderServer) -> None:
    server.default = unsure_on_odd
    config = bench(
        [
            cascade(),
            {
                "name": "front",
                "kind": "router",
                "members": {"fast": "cheap", "careful": "cascade"},
                "options": {"rules": [{"max_chars": 2, "use": "fast"}], "default": "careful"},
            },
        ]
    )
    models = {m.name: m for m in config.models}
    strategies = {s.name: s for s in config.strategies}
    built = build_strategy(
        strategies["front"],
        models,
        strategies,
        TaskView.of(config.tasks[0]),
        seed=1,
        settings=RunSettings(retries=ZERO_WAIT),
    )
    items = samples("q1", "long q1")
    done = asyncio.run(
        run_answers(
            built,
            items,
            progress=GenerationProgress("t", 2, live=False),
            settings=RunSettings(retries=ZERO_WAIT),
        )
    )
    assert done[0].answered_by == "cheap" and len(done[0].trace) == 1
    assert done[1].answered_by == "strong"
    # The cascade's calls under its path, then its answer as one call of the router's.
    first, second, whole = done[1].trace
    assert [(c.kind, c.model, c.parent, c.round) for c in done[1].trace] == [
        ("model", "cheap", "careful:cascade", 0),
        ("model", "strong", "careful:cascade", 1),
        ("strategy", "cascade", None, 0),
    ]
    assert first.note == "escalated: no answer extracted"
    assert whole.role == "careful" and whole.note is not None and "routed to careful" in whole.note
    assert (whole.output, whole.cost_usd) == ("gpt-strong: 1", 0.0)
    assert second.start_s == first.latency_s and whole.latency_s == done[1].latency_s
    assert done[1].cost_usd == pytest.approx(first.cost_usd + second.cost_usd)


def nested_config() -> BenchConfig:
    """A router whose default is a cascade, and a cascade whose first stage is a router."""
    return bench(
        [
            cascade(),
            {
                "name": "front",
                "kind": "router",
                "members": {"fast": "cheap", "careful": "cascade"},
                "options": {"rules": [{"max_chars": 2, "use": "fast"}], "default": "careful"},
            },
            {
                "name": "inner",
                "kind": "router",
                "members": {"small": "cheap"},
                "options": {"default": "small"},
            },
            {
                "name": "outer",
                "kind": "cascade",
                "members": {"first": "inner", "last": "strong"},
            },
        ]
    )


def test_calls_by_and_escalations_count_the_strategys_own_level(server: ProviderServer) -> None:
    """A nested strategy is one member call of its outer strategy: an inner cascade's
    escalations are not the router's, and an outer cascade escalating from a router stage
    counts once, whichever model the router asked."""
    import json

    import pandas as pd

    from llmbench.report.strategies import strategy_table
    from llmbench.tables import completions_to_frame

    server.default = unsure_on_odd
    config = nested_config()
    models = {m.name: m for m in config.models}
    strategies = {s.name: s for s in config.strategies}
    items = samples("q1", "long q1", "long q3", "long q2")
    frames = []
    for name in ("front", "outer"):
        built = build_strategy(
            strategies[name],
            models,
            strategies,
            TaskView.of(config.tasks[0]),
            seed=1,
            settings=RunSettings(retries=ZERO_WAIT),
        )
        done = asyncio.run(
            run_answers(
                built,
                items,
                progress=GenerationProgress(name, len(items), live=False),
                settings=RunSettings(retries=ZERO_WAIT),
            )
        )
        frame = completions_to_frame([s.sample_id for s in items], done)
        frame.insert(0, "task", "math")
        frame.insert(0, "model", name)
        frames.append(frame)
    results = pd.concat(frames, ignore_index=True)
    names = [e.name for e in config.entrants]
    board = pd.DataFrame({"model": names, "cost_usd": 1.0, "score": 0.5})
    table = strategy_table(config, board, results).set_index("model")

    # front: q1 to cheap by its rule; the others to the cascade, which escalates 2 of 3.
    assert table.loc["front", "escalation_rate"] == 0.0
    assert json.loads(str(table.loc["front", "calls_by"])) == {"cascade": 3, "cheap": 1}
    assert table.loc["front", "member_calls"] == 1 + 3 + 2  # requests, every level
    # outer: the router stage answers all four; cheap is unsure on odd ones: escalated.
    assert table.loc["outer", "escalation_rate"] == 0.75
    assert json.loads(str(table.loc["outer", "calls_by"])) == {"inner": 4, "strong": 3}


def test_a_trace_records_inputs_rounds_and_start_offsets(server: ProviderServer) -> None:
    """k draws side by side start together in round 0; the verifier's prompt is recorded
    as sent, in the next round; the escalation starts when the slowest of them is done, and
    the answer's latency is where its last call ends."""

    def members(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if text.startswith("Is this answer"):
            return Reply(text="Wrong. [[2]]", input_tokens=40, output_tokens=3)
        return Reply(text="answer 7", input_tokens=10, output_tokens=2)

    server.default = members
    config = bench(
        [
            cascade(escalate_on=["disagreement", "low_grade"], samples=3, verifier="checker")
            | {"members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}}
        ],
        temperature=0.7,
    )
    [done] = answer(config, samples("q1"))
    *draws, verdict, last = done.trace
    assert [c.purpose for c in done.trace] == ["answer", "draw 1", "draw 2", "verify", "answer"]
    assert [c.round for c in done.trace] == [0, 0, 0, 1, 2]
    assert all(c.start_s == 0.0 and c.input is None for c in draws)
    assert verdict.start_s == max(c.latency_s for c in draws)
    assert verdict.input is not None and verdict.input[0]["role"] == "user"
    assert verdict.input[0]["content"].startswith("Is this answer to the question correct?")
    assert "Answer:\nanswer 7" in verdict.input[0]["content"]
    assert last.start_s == pytest.approx(verdict.start_s + verdict.latency_s)
    assert done.latency_s == pytest.approx(last.start_s + last.latency_s)
    assert all(c.parent is None and c.kind == "model" for c in done.trace)


def test_calls_stored_before_their_timing_and_inputs_still_load() -> None:
    from llmbench.tables import trace_of

    old = '[{"model": "cheap", "role": "cheap", "output": "1", "latency_s": 0.5}]'
    [call] = trace_of(old)
    assert (call.kind, call.input, call.round, call.parent, call.start_s) == (
        "model",
        None,
        0,
        None,
        0.0,
    )


def test_a_changed_recorded_member_file_changes_the_strategy_step() -> None:
    config = bench([cascade()])
    before = plan.plan(config, {"math": "f", "model:cheap": "v1"}).generations
    after = plan.plan(config, {"math": "f", "model:cheap": "v2"}).generations
    [one] = [g for g in before if g.kind == "strategy"]
    [two] = [g for g in after if g.kind == "strategy"]
    assert one.params["data_fingerprints"] == {"cheap": "v1"}
    assert one.params != two.params


def test_a_verifier_has_room_to_explain_before_its_grade(server: ProviderServer) -> None:
    """The verifier prompt asks for a grade at the end of a reply: one that explains first
    (here 100 words, then [[9]]) must not be cut off and read as no grade. The call's own
    answer length is the strategy's option, sent with that request only."""
    explanation = " ".join(["reasoning"] * 100)

    def members(request: RecordedRequest) -> Reply:
        if (request.last_user_text or "").startswith("Is this answer"):
            words = f"{explanation} [[9]]".split()[: request.max_tokens]  # cut like a model
            return Reply(text=" ".join(words), input_tokens=50, output_tokens=len(words))
        return Reply(text="It is 4.", input_tokens=10, output_tokens=3)

    server.default = members
    config = bench(
        [
            cascade(escalate_on=["low_grade"], verifier="checker")
            | {"members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}}
        ]
    )
    [graded] = answer(config, samples("q"))
    assert graded.answered_by == "cheap"
    assert [c.purpose for c in graded.trace] == ["answer", "verify"]
    assert graded.trace[-1].score == 9.0
    answered, verified = server.requests
    assert answered.max_tokens == 16 and verified.max_tokens == 512
    assert "stop" not in verified.body  # the task's stop sequences are not a grader's

    server.clear()
    short = bench(
        [
            cascade(escalate_on=["low_grade"], verifier="checker", verifier_max_tokens=32)
            | {"members": {"cheap": "cheap", "strong": "strong", "checker": "strong"}}
        ]
    )
    [cut] = answer(short, samples("q"))
    assert cut.answered_by == "strong"  # 32 words of reasoning and no grade: escalated
    assert cut.trace[1].note == "escalated: the verifier gave no grade"
