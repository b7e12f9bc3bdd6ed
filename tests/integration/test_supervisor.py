"""Supervisors through the real model client and the OpenAI SDK, against scripted members on
the loopback server: the plan asked for with its schema and checked against it, each
sub-question sent to its specialist, every sub-answer shown to the synthesiser, the step
limit, failed plans as rows, and what the answer costs and how long it took."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.scoring.score import score_completions
from llmbench.strategies.registry import strategy_class
from llmbench.strategies.supervisor import plan_schema
from llmbench.types import Sample
from tests.fakes.provider_server import Fault, ProviderServer, RecordedRequest, Reply
from tests.integration.test_nested_asks import answer_as
from tests.integration.test_strategies import (
    CHEAP,
    ZERO_WAIT,
    answer,
    bench,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
    samples,
)
from tests.integration.test_vote_and_refine import THIRD, assert_refused, trace_cost

DELEGATE = "Answer this question briefly"
SYNTHESISE = "Answer the question below. Specialists"
MEMBERS = {"planner": "strong", "math": "cheap", "facts": "third", "synthesiser": "strong"}


def supervisor(members: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    return {
        "name": "supervisor",
        "kind": "supervisor",
        "members": members or MEMBERS,
        "options": options,
    }


def kind_of(request: RecordedRequest) -> str:
    if "response_format" in request.body:
        return "plan"
    text = request.last_user_text or ""
    if text.startswith(DELEGATE):
        return "delegate"
    return "synthesise" if text.startswith(SYNTHESISE) else "answer"


def of_kind(server: ProviderServer, kind: str) -> list[RecordedRequest]:
    return [r for r in server.requests if kind_of(r) == kind]


def plan_of(*steps: tuple[str | None, str]) -> str:
    return json.dumps({"steps": [{"question": q} | ({"role": r} if r else {}) for r, q in steps]})


def scripted(plans: dict[str, str]) -> Any:
    """The planner plans by the question (``plans``); a specialist answers its sub-question
    in two lines naming its model; the synthesiser says how many answers it was shown."""

    def reply(request: RecordedRequest) -> Reply:
        kind, text = kind_of(request), request.last_user_text or ""
        if kind == "plan":
            question = text.splitlines()[-1]  # the plan prompt ends with the question
            return Reply(text=plans[question], input_tokens=40, output_tokens=20)
        if kind == "delegate":
            asked = text.removeprefix(DELEGATE).splitlines()[-1]
            return Reply(text=f"{request.model} on {asked}:\nit is 4", output_tokens=6)
        if kind == "synthesise":
            return Reply(text=f"shown {text.count('Sub-question ')}: 8", input_tokens=90)
        return Reply(text="unasked")

    return reply


def test_the_plan_is_asked_with_its_schema_and_each_step_goes_to_its_specialist(
    server: ProviderServer,
) -> None:
    plan = plan_of(
        ("arithmetic", "What is 3+5?"),
        ("FACTS", "Who counts?"),
        ("poetry", "Why rhyme?"),
        (None, "What else?"),
    )
    server.default = scripted({"3+5, said who?": plan})
    item = Sample(
        sample_id="0", prompt="3+5, said who?", system="Answer in digits.", references=("8",)
    )
    config = bench(
        [
            supervisor(
                MEMBERS | {"planner": "cheap"},
                roles={"arithmetic": "math"},
                default="facts",
                max_steps=4,
            )
        ],
        (THIRD,),
        stop=["\n"],
    )
    [done] = answer(config, [item])

    [planned] = of_kind(server, "plan")
    roles = ["math", "facts", "arithmetic"]
    assert planned.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": plan_schema(roles, 4)},
    }
    asked_for = planned.body["response_format"]["json_schema"]["schema"]["properties"]["steps"]
    assert asked_for["maxItems"] == 4 and asked_for["items"]["properties"]["role"]["enum"] == roles
    asked = planned.last_user_text or ""
    assert "one of math, facts, arithmetic" in asked and "at most 4" in asked
    assert asked.endswith("Question:\nAnswer in digits.\n\n3+5, said who?")  # as a judge sees it
    assert planned.model == "gpt-cheap" and planned.max_tokens == 512
    assert "stop" not in planned.body  # the task's stop sequences would cut the JSON

    delegated = {(r.last_user_text or "").splitlines()[-1]: r for r in of_kind(server, "delegate")}
    assert {q: r.model for q, r in delegated.items()} == {
        "What is 3+5?": "gpt-cheap",  # the role map
        "Who counts?": "gpt-third",  # its own role name, in any case
        "Why rhyme?": "gpt-third",  # unknown: the default
        "What else?": "gpt-third",  # none: the default
    }
    for request in delegated.values():
        assert "response_format" not in request.body and request.system_text is None
        assert "stop" not in request.body and request.max_tokens == 256
    assert of_kind(server, "answer") == []

    [synthesised] = of_kind(server, "synthesise")
    shown = synthesised.last_user_text or ""
    assert "Question:\n3+5, said who?\n" in shown
    for n, (role, question) in enumerate(
        [
            ("math", "What is 3+5?"),
            ("facts", "Who counts?"),
            ("facts", "Why rhyme?"),
            ("facts", "What else?"),
        ],
        start=1,
    ):
        model = "gpt-cheap" if role == "math" else "gpt-third"
        answered = f"Answer {n}:\n{model} on {question}:\nit is 4\n"
        assert f"Sub-question {n} (to {role}): {question}\n{answered}" in shown  # verbatim
    assert synthesised.system_text == "Answer in digits." and synthesised.model == "gpt-strong"

    assert done.text == "shown 4: 8" and done.answered_by == "strong" and done.error is None
    assert [(c.role, c.purpose, c.round) for c in done.trace] == [
        ("planner", "plan", 0),
        ("math", "delegate math", 1),
        ("facts", "delegate facts", 1),
        ("facts", "delegate facts", 1),
        ("facts", "delegate facts", 1),
        ("synthesiser", "synthesise", 2),
    ]
    assert [c.note for c in done.trace] == [
        "plan: 4 sub-questions",
        "step 1: role 'arithmetic' -> math",
        "step 2: role 'FACTS' -> facts",
        "step 3: unknown role 'poetry': default facts",
        "step 4: no role: default facts",
        "synthesised from 4 sub-answers",
    ]
    assert done.trace[0].input is not None and done.trace[0].input[-1]["content"] == asked


def test_costs_add_up_and_the_delegates_run_side_by_side(server: ProviderServer) -> None:
    server.default = scripted({"q": plan_of(("math", "a?"), ("facts", "b?"))})
    [done] = answer(bench([supervisor()], (THIRD,)), samples("q"))

    assert done.cost_usd == pytest.approx(trace_cost(done))
    plan_cost = (40 * 10.0 + 20 * 30.0) / 1e6
    assert done.trace[0].cost_usd == pytest.approx(plan_cost)
    assert done.input_tokens == 40 + 10 + 10 + 90
    assert done.output_tokens == 20 + 6 + 6 + 5
    plan, *delegates, synthesis = done.trace
    slowest = max(c.latency_s for c in delegates)
    assert done.latency_s == pytest.approx(plan.latency_s + slowest + synthesis.latency_s)
    assert done.latency_s < plan.latency_s + sum(c.latency_s for c in delegates) + (
        synthesis.latency_s
    )
    assert [c.start_s for c in delegates] == [plan.latency_s] * 2
    assert synthesis.start_s == pytest.approx(plan.latency_s + slowest)


def test_the_step_limit_delegates_only_the_first_steps_and_says_so(
    server: ProviderServer,
) -> None:
    plan = plan_of(*((None, f"part {n}?") for n in range(1, 6)))
    server.default = scripted({"q": plan})
    config = bench([supervisor(max_steps=2)], (THIRD,))
    [done] = answer(config, samples("q"))

    asked = sorted((r.last_user_text or "").splitlines()[-1] for r in of_kind(server, "delegate"))
    assert asked == ["part 1?", "part 2?"]
    assert done.trace[0].note == "plan: 5 sub-questions; step limit 2: 3 dropped"
    assert done.text == "shown 2: 8"
    assert strategy_class("supervisor").max_calls(config.strategies[0]) == {
        "planner": 1,
        "math": 2,
        "facts": 2,
        "synthesiser": 1,
    }


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        ("Step 1: add.", "plan rejected: not valid JSON (Expecting value: line 1 column 1)"),
        ('{"steps": []}', "plan rejected: does not fit the plan's schema: steps: [] should be"),
        (
            '{"steps": [{"role": "math"}]}',
            "plan rejected: does not fit the plan's schema: steps.0: 'question' is a required",
        ),
        (
            '{"steps": [{"question": "a?", "why": "b"}]}',
            "plan rejected: does not fit the plan's schema: steps.0: Additional properties",
        ),
    ],
)
def test_a_plan_that_is_not_json_or_not_of_the_schema_is_a_failed_row_and_the_run_goes_on(
    server: ProviderServer, plan: str, why: str
) -> None:
    server.default = scripted({"bad": plan, "good": plan_of(("math", "a?"))})
    config = bench([supervisor()], (THIRD,))
    items = [Sample(sample_id=p, prompt=p, references=("8",)) for p in ("bad", "good")]
    bad, good = answer(config, items)

    assert bad.text == "" and bad.error is None  # the planner answered: its plan is wrong
    [planner] = bad.trace
    assert planner.role == "planner" and planner.purpose == "plan" and planner.output == plan
    assert planner.error is not None and planner.error.startswith(why)
    assert planner.note == planner.error
    assert bad.cost_usd == pytest.approx(planner.cost_usd) and bad.cost_usd > 0
    assert bad.latency_s == pytest.approx(planner.latency_s)
    assert good.text == "shown 1: 8"
    assert len(of_kind(server, "delegate")) == 1 and len(of_kind(server, "synthesise")) == 1

    scores, _ = score_completions(config.tasks[0], items, [bad, good])
    assert scores["score.exact_match"].tolist() == [0.0, 1.0]  # wrong, not unscored
    assert scores["answer"].isna().tolist() == [True, False]


def test_a_plan_cut_at_its_length_says_so(server: ProviderServer) -> None:
    def reply(request: RecordedRequest) -> Reply:
        return Reply(text='{"steps": [{"question": "a', finish="length", output_tokens=40)

    server.default = reply
    [done] = answer(bench([supervisor(planner_max_tokens=40)], (THIRD,)), samples("q"))
    assert done.trace[0].error is not None
    assert done.trace[0].error.endswith("(cut at planner_max_tokens, 40)")
    assert server.requests[0].max_tokens == 40


def test_a_failed_planner_request_is_an_error_row(server: ProviderServer) -> None:
    def reply(request: RecordedRequest) -> Reply | Fault:
        if kind_of(request) == "plan" and (request.last_user_text or "").endswith("first"):
            return Fault(status=400)
        return scripted({"second": plan_of(("math", "a?"))})(request)

    server.default = reply
    first, second = answer(bench([supervisor()], (THIRD,)), samples("first", "second"))
    assert first.error is not None and [c.note for c in first.trace] == ["plan: failed"]
    assert second.error is None and second.text == "shown 1: 8"


def test_a_failed_delegation_is_left_out_of_the_synthesis(server: ProviderServer) -> None:
    script = scripted({"q": plan_of(("math", "a?"), ("facts", "b?"))})

    def reply(request: RecordedRequest) -> Reply | Fault:
        if kind_of(request) == "delegate" and request.model == "gpt-third":
            return Fault(status=400)
        return script(request)

    server.default = reply
    [done] = answer(bench([supervisor()], (THIRD,)), samples("q"))
    assert done.text == "shown 1: 8"
    assert done.trace[2].note == "step 2: role 'facts'; failed"
    assert done.trace[-1].note == "synthesised from 1 sub-answer (1 failed, left out)"


def test_an_unchanged_rerun_sends_nothing(server: ProviderServer, tmp_path: Path) -> None:
    server.default = scripted({"q": plan_of(("math", "a?"), ("facts", "b?"))})
    config = bench([supervisor()], (THIRD,))
    cache = ResponseCache(tmp_path)
    settings = RunSettings(cache=cache, retries=ZERO_WAIT)
    [done] = answer(config, samples("q"), settings)
    assert len(server.requests) == 4
    server.clear()
    [again] = answer(config, samples("q"), settings)
    cache.close()
    assert server.requests == [] and again.cached
    assert again.text == done.text and again.cost_usd == pytest.approx(done.cost_usd)
    assert again.latency_s == pytest.approx(done.latency_s)


CLAUDE = {
    "name": "claude",
    "provider": "anthropic",
    "model": "claude-x",
    "params": {"max_tokens": 16},
    "price": CHEAP.model_dump(),
}


@pytest.mark.parametrize(
    ("strategy", "field", "message"),
    [
        (
            supervisor({"planner": "cheap", "math": "cheap"}),
            "members.synthesiser",
            "needs a 'synthesiser'",
        ),
        (
            supervisor({"planner": "cheap", "synthesiser": "cheap"}),
            "members",
            "at least one specialist",
        ),
        (supervisor(roles={"sums": "maths"}), "options.roles.sums", "no specialist with role"),
        (
            supervisor(roles={"sums": "planner"}),
            "options.roles.sums",
            "the specialists are math, facts",
        ),
        (supervisor(roles={"Math": "facts"}), "options.roles.Math", "already a specialist"),
        (
            supervisor(roles={"sums": "math", " Sums": "facts"}),
            "options.roles. Sums",
            "'sums' and ' Sums' are one name",
        ),
        (supervisor(default="poetry"), "options.default", "no specialist with role 'poetry'"),
        (supervisor(max_steps=0), "options.max_steps", "greater than or equal to 1"),
        (supervisor(steps=2), "options.steps", "unknown option"),
        (supervisor(plan_prompt="{{ answer }}"), "options.plan_prompt", "uses answer"),
        (
            supervisor(MEMBERS | {"planner": "inner"}),
            "members.planner",
            "inner is a strategy, but the plan is asked for as structured output",
        ),
        (
            supervisor(MEMBERS | {"planner": "claude"}),
            "members.planner",
            "cannot constrain an answer to a JSON schema",
        ),
    ],
)
def test_bad_supervisors_are_config_errors_naming_the_field(
    strategy: dict[str, Any], field: str, message: str
) -> None:
    assert_refused(strategy, field, message, (THIRD, CLAUDE))


def test_the_dry_run_counts_a_full_plan_and_every_sub_answer_shown() -> None:
    from llmbench.estimate import Estimate, strategy_estimates
    from llmbench.pricing import estimated_tokens
    from llmbench.strategies.supervisor import SupervisorOptions

    spec = supervisor(
        {"planner": "strong", "math": "cheap", "synthesiser": "strong"},
        max_steps=2,
        planner_max_tokens=100,
        delegate_max_tokens=50,
    )
    config = bench([spec])
    members = [Estimate(m.name, m.provider, 10, 300, "estimated", 160, None) for m in config.models]
    [row] = strategy_estimates(config, members)
    options = SupervisorOptions.model_validate(spec["options"])
    schema = estimated_tokens(json.dumps(plan_schema(["math"], 2)))
    plan = estimated_tokens(options.plan_prompt) + estimated_tokens("math") + schema + 30
    delegate = 2 * (estimated_tokens(options.delegate_prompt) + 30) + 100
    synthesise = estimated_tokens(options.synthesise_prompt) + 30 + 100 + 2 * 50
    assert row.prompt_tokens == 10 * (plan + delegate + synthesise)
    assert row.max_output_tokens == 10 * (100 + 2 * 50 + 16)
    cheap, strong = (m.price for m in config.models)
    assert cheap is not None and strong is not None
    expected = (
        10 * delegate * cheap.input_per_1m
        + 10 * 100 * cheap.output_per_1m
        + 10 * (plan + synthesise) * strong.input_per_1m
        + 10 * (100 + 16) * strong.output_per_1m
    ) / 1e6
    assert row.max_cost_usd == pytest.approx(expected)


def test_a_strategy_specialist_answers_the_sub_question_sent_to_it(server: ProviderServer) -> None:
    """A specialist that is itself a strategy (a router over ``cheap``) is handed the
    sub-question built for it, not the sample's own question."""
    server.default = scripted({"3+5?": plan_of(("facts", "Who counts?"))})
    inner = {
        "name": "inner",
        "kind": "router",
        "members": {"x": "cheap"},
        "options": {"default": "x"},
    }
    config = bench([inner, supervisor(MEMBERS | {"facts": "inner"}, default="facts")], (THIRD,))
    item = Sample(sample_id="0", prompt="3+5?", references=("8",))
    [done] = answer_as(config, "supervisor", [item])
    [delegated] = of_kind(server, "delegate")
    assert delegated.model == "gpt-cheap"
    assert (delegated.last_user_text or "").endswith("Who counts?")
    assert done.text == "shown 1: 8"
    assert {c.parent for c in done.trace if c.model == "cheap"} == {"facts:inner"}
