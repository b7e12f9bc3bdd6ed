"""Prompt chains through the real model client and the OpenAI SDK, against scripted members on
the loopback server: the steps in order, what each template is shown, each gate's action,
retries as distinct draws, the cost, the trace and the response cache."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.runtime.cache import ResponseCache
from llmbench.runtime.client import RunSettings
from llmbench.strategies.chain import Chain, ChainOptions
from llmbench.types import Completion
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply
from tests.integration.test_strategies import (
    ZERO_WAIT,
    answer,
    bench,
    environment,  # noqa: F401  (the autouse fixture: the fake server's key and URL)
    own_row,
    samples,
)
from tests.integration.test_vote_and_refine import assert_refused, seeds


def chain(*steps: dict[str, Any], members: dict[str, str] | None = None, **options: Any) -> Any:
    return {
        "name": "chain",
        "kind": "chain",
        "members": members or {"solver": "cheap", "checker": "strong"},
        "options": {"steps": list(steps), **options},
    }


def step(name: str, member: str = "solver", prompt: str | None = None, **more: Any) -> Any:
    return {"name": name, "member": member, **({"prompt": prompt} if prompt else {}), **more}


def scripted(replies: dict[str, str]) -> Any:
    """Each request answered by the first key its last user turn starts with."""

    def reply(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        said = next(v for k, v in replies.items() if text.startswith(k))
        return Reply(text=said, input_tokens=10, output_tokens=len(said.split()))

    return reply


def asked(server: ProviderServer) -> list[tuple[str | None, str]]:
    return [(r.model, r.last_user_text or "") for r in server.requests]


def top(done: Completion) -> list[tuple[int, str, str | None]]:
    """The chain's own calls: (round, purpose, note)."""
    return [(c.round, c.purpose, c.note) for c in done.trace if c.parent is None]


def test_steps_run_in_order_each_shown_the_earlier_outputs(server: ProviderServer) -> None:
    server.default = scripted(
        {"Solve": "It is 4", "Check": "Checked: 4 is right", "Final": "The answer is 4"}
    )
    config = bench(
        [
            chain(
                step("solve", prompt="Solve: {{ prompt }}", max_tokens=99),
                step("check", "checker", "Check {{ previous }} for {{ prompt }}", stop=["END"]),
                step("final", prompt="Final: {{ steps.check }} / {{ steps.solve }}"),
            )
        ]
    )
    [done] = answer(config, samples("what is 2+2?"))

    # A step's own answer length and stop sequences; else the member's.
    bodies = [r.body for r in server.requests]
    assert [b["max_tokens"] for b in bodies] == [99, 16, 16]
    assert [b.get("stop") for b in bodies] == [None, ["END"], None]

    assert asked(server) == [
        ("gpt-cheap", "Solve: what is 2+2?"),
        ("gpt-strong", "Check It is 4 for what is 2+2?"),
        ("gpt-cheap", "Final: Checked: 4 is right / It is 4"),
    ]
    assert done.text == "The answer is 4" and done.answered_by == "cheap"
    assert top(done) == [(0, "solve", None), (1, "check", None), (2, "final", None)]
    # The steps run one after another: each starts when the one before it ended.
    starts = [c.start_s for c in done.trace]
    ends = [c.start_s + c.latency_s for c in done.trace]
    assert starts[1:] == pytest.approx(ends[:-1])
    assert done.cost_usd == pytest.approx(sum(c.cost_usd for c in done.trace))
    assert done.cost_usd > 0 and done.input_tokens == 30


def test_a_step_without_a_prompt_is_the_members_own_row(server: ProviderServer) -> None:
    cache = ResponseCache(None)
    settings = RunSettings(retries=ZERO_WAIT, cache=cache)
    config = bench([chain(step("solve"), step("check", "checker", "Check: {{ previous }}"))])
    items = samples("what is 2+2?")
    own_row(config, "cheap", items, settings)
    server.clear()

    [done] = answer(config, items, settings)
    assert [model for model, _ in asked(server)] == ["gpt-strong"]  # the first: from the cache
    assert [c.cached for c in done.trace] == [True, False]
    assert done.trace[0].input is None  # the sample's own question

    server.clear()
    [again] = answer(config, items, settings)  # unchanged: nothing is sent
    cache.close()
    assert server.requests == [] and again.cached
    assert again.text == done.text and again.cost_usd == pytest.approx(done.cost_usd)


def test_a_stop_gate_answers_with_that_steps_output(server: ProviderServer) -> None:
    server.default = scripted({"Solve": "It is 4", "Check": "Checked"})
    stop = {"check": "answer", "action": "stop"}
    config = bench(
        [
            chain(
                step("solve", prompt="Solve: {{ prompt }}", gates=[stop]),
                step("check", "checker", "Check: {{ previous }}"),
            )
        ]
    )
    [done] = answer(config, samples("what is 2+2?"))
    assert done.text == "It is 4" and top(done) == [(0, "solve", "gate 1 (answer): passed: stop")]

    server.default = scripted({"Solve": "no idea", "Check": "Checked: 3"})
    server.clear()
    [_, unsure] = answer(config, samples("what is 2+2?", "what is 1+2?"))
    assert unsure.text == "Checked: 3"
    assert top(unsure) == [(0, "solve", "gate 1 (answer): failed"), (1, "check", None)]


def test_a_retry_gate_asks_again_as_distinct_draws(server: ProviderServer) -> None:
    def by_seed(request: RecordedRequest) -> Reply:
        said = {1: "no idea", 2: "still unsure", 3: "It is 4"}[request.body["seed"]]
        return Reply(text=said, input_tokens=10, output_tokens=2)

    server.default = by_seed
    retry = {"check": "answer", "action": "retry", "times": 3}
    config = bench([chain(step("solve", gates=[retry]))], temperature=0.7)
    [done] = answer(config, samples("what is 2+2?"))

    assert seeds(server) == [1, 2, 3]  # seed 1 + draw: three different requests
    assert done.text == "It is 4"
    assert top(done) == [
        (0, "solve", "gate 1 (answer): failed: retry 1 of 3"),
        (0, "solve, retry 1", "gate 1 (answer): failed: retry 2 of 3"),
        (0, "solve, retry 2", "gate 1 (answer): passed"),
    ]
    assert done.cost_usd == pytest.approx(sum(c.cost_usd for c in done.trace))


def test_retries_run_out_and_the_chain_goes_on(server: ProviderServer) -> None:
    server.default = scripted({"what": "no idea", "Check": "Checked: 4"})
    retry = {"check": "answer", "action": "retry", "times": 1}
    config = bench(
        [chain(step("solve", gates=[retry]), step("check", "checker", "Check: {{ previous }}"))],
        temperature=0.7,
    )
    [done] = answer(config, samples("what is 2+2?"))
    assert len(server.requests) == 3 and done.text == "Checked: 4"
    assert top(done) == [
        (0, "solve", "gate 1 (answer): failed: retry 1 of 1"),
        (0, "solve, retry 1", "gate 1 (answer): failed: no retries left"),
        (1, "check", None),
    ]


def test_a_branch_gate_skips_to_the_named_step(server: ProviderServer) -> None:
    server.default = scripted({"Solve": "EASY: 4", "Think": "hard thought", "Final": "4"})
    branch = {"check": "regex", "pattern": "^EASY", "action": "branch", "to": "final"}
    config = bench(
        [
            chain(
                step("solve", prompt="Solve: {{ prompt }}", gates=[branch]),
                step("think", "checker", "Think: {{ previous }}"),
                step("final", prompt="Final: [{{ steps.think }}] {{ steps.solve }}"),
            )
        ]
    )
    [done] = answer(config, samples("what is 2+2?"))
    # The skipped step was never asked; its output is empty where a template reads it.
    assert asked(server) == [
        ("gpt-cheap", "Solve: what is 2+2?"),
        ("gpt-cheap", "Final: [] EASY: 4"),
    ]
    assert top(done) == [
        (0, "solve", "gate 1 (regex): passed: branch to final"),
        (2, "final", None),
    ]


def test_a_branch_back_is_bounded_by_max_steps(server: ProviderServer) -> None:
    server.default = scripted({"Try": "again"})
    loop = {"check": "regex", "pattern": "again", "action": "branch", "to": "attempt"}
    config = bench([chain(step("attempt", prompt="Try: {{ prompt }}", gates=[loop]), max_steps=3)])
    [done] = answer(config, samples("q"))
    assert len(server.requests) == 3 and len(done.trace) == 3 and done.text == "again"
    assert [c.round for c in done.trace] == [0, 0, 0]
    assert done.trace[-1].note == "gate 1 (regex): passed: branch to attempt; max_steps (3) reached"
    assert Chain.max_calls(config.strategies[0]) == {"solver": 3, "checker": 0}


def test_a_judge_gate_asks_a_member_yes_or_no(server: ProviderServer) -> None:
    server.default = scripted(
        {"Solve": "It is 5", "Does this answer": "No, it is wrong.", "Check": "It is 4"}
    )
    stop = {"check": "judge", "judge": "checker", "action": "stop"}
    config = bench(
        [
            chain(
                step("solve", prompt="Solve: {{ prompt }}", gates=[stop]),
                step("check", "checker", "Check: {{ previous }}"),
            )
        ]
    )
    [done] = answer(config, samples("what is 2+2?"))

    judged = server.requests[1]
    text = judged.last_user_text or ""
    assert judged.model == "gpt-strong" and "what is 2+2?" in text and "It is 5" in text
    assert judged.body["max_tokens"] == 512 and "stop" not in judged.body
    assert done.text == "It is 4"
    assert top(done) == [
        (0, "solve", None),
        (0, "solve gate", "gate 1 (judge): failed"),
        (1, "check", None),
    ]
    assert done.trace[1].input is not None  # the judge's prompt is in the trace

    server.clear()
    server.default = scripted({"Solve": "It is 4", "Does this answer": "Yes."})
    [right] = answer(config, samples("what is 2+2?"))
    assert right.text == "It is 4" and len(server.requests) == 2
    assert top(right)[-1] == (0, "solve gate", "gate 1 (judge): passed: stop")


def test_the_shipped_solve_and_check_prompts(server: ProviderServer) -> None:
    config = bench(
        [
            chain(
                step("solve", prompt={"file": "strategies/chain_solve.j2"}),  # type: ignore[arg-type]
                step("check", "checker", {"file": "strategies/chain_check.j2"}),  # type: ignore[arg-type]
            )
        ]
    )
    answer(config, samples("what is 2+2?"))
    solve, check = (text for _, text in asked(server))
    assert solve.startswith("what is 2+2?\n\nWork it out step by step")
    assert check.startswith("what is 2+2?\n\nHere is a worked attempt") and "gpt-cheap: 1" in check


def test_the_dry_run_counts_retries_judges_and_growing_prompts() -> None:
    config = bench(
        [
            chain(
                step(
                    "solve",
                    prompt="Solve: {{ prompt }}",
                    gates=[
                        {"check": "judge", "judge": "checker", "action": "stop"},
                        {"check": "answer", "action": "retry", "times": 2},
                    ],
                ),
                step("check", "checker", "Check: {{ previous }}", max_tokens=50),
            )
        ],
        temperature=0.7,
    )
    [spec] = config.strategies
    assert Chain.max_calls(spec) == {"solver": 3, "checker": 3 + 1}
    options = ChainOptions.model_validate(spec.options)
    gate_prompt = options.steps[0].gates[0].prompt
    worst = Chain.worst_case_tokens(spec, {"solver": (30.0, 16.0), "checker": (30.0, 16.0)})
    from llmbench.pricing import estimated_tokens

    solve_prompt = estimated_tokens("Solve: {{ prompt }}") + 30
    judge_prompt = estimated_tokens(gate_prompt) + 30 + 16
    check_prompt = estimated_tokens("Check: {{ previous }}") + 30 + 16
    assert worst["solver"] == pytest.approx((3 * solve_prompt, 3 * 16))
    assert worst["checker"] == pytest.approx((3 * judge_prompt + check_prompt, 3 * 512 + 50))


@pytest.mark.parametrize(
    ("strategy", "field", "message"),
    [
        (chain(step("solve", "nobody")), "options.steps.0.member", "no member with role 'nobody'"),
        (
            chain(step("solve", gates=[{"check": "answer", "action": "branch", "to": "nowhere"}])),
            "options.steps.0.gates.0.to",
            "no step named 'nowhere'",
        ),
        (
            chain(step("solve", gates=[{"check": "judge", "judge": "jury", "action": "stop"}])),
            "options.steps.0.gates.0.judge",
            "no member with role 'jury'",
        ),
        (chain(step("solve", prompt="{{ prompt ")), "options.steps.0.prompt", "syntax error"),
        (chain(step("solve", prompt="{{ answer }}")), "options.steps.0.prompt", "uses answer"),
        (
            chain(step("solve", prompt="{{ steps.nope }}")),
            "options.steps.0.prompt",
            "reads steps.nope, but no step is named 'nope'",
        ),
        (chain(step("solve"), step("solve")), "options.steps", "two steps are named 'solve'"),
        (chain(step("two words")), "options.steps.0.name", "should match pattern"),
        (
            chain(step("solve", gates=[{"check": "regex", "action": "stop"}])),
            "options.steps.0.gates.0",
            "check: regex needs one",
        ),
        (
            chain(step("solve", gates=[{"check": "regex", "pattern": "(", "action": "stop"}])),
            "options.steps.0.gates.0.pattern",
            "invalid regular expression",
        ),
        (
            chain(step("solve", gates=[{"check": "answer", "action": "retry"}])),
            "options.steps.0.temperature",
            "samples greedily",
        ),
        (
            chain(
                step("solve", gates=[{"check": "answer", "action": "retry"}]),
                members={"solver": "inner"},
            ),
            "options.steps.0.member",
            "'inner' is a strategy, which answers once",
        ),
        (chain(), "options.steps", "at least 1 item"),
        (
            {
                "name": "c",
                "kind": "cascade",
                "members": {"a": "cheap", "b": "strong"},
                "options": {"escalate_on": ["low_grade"], "verifier": "checker"},
            },
            "options.verifier",
            "no member with role 'checker'",
        ),
    ],
)
def test_bad_chains_are_config_errors_naming_the_field(
    strategy: dict[str, Any], field: str, message: str
) -> None:
    assert_refused(strategy, field, message)
