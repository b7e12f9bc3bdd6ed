"""Cost before spending: prompt tokens per model and the most the run could cost.

Prompt tokens are counted with the model's own tokenizer where one is available offline
(the GGUF's, for llama.cpp models) and estimated at ~4 characters per token otherwise; the
table says which. Output is bounded by max_tokens, so the cost shown is an upper bound, but
for what a tool returns to an agent loop, which nothing bounds in advance: a tool task's row
counts every step's request up to the loop's limit, with its tool definitions and earlier
outputs, and says "+ tool results" (not counted).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from llmbench.pricing import CHARS_PER_TOKEN, estimated_prompt_tokens, max_cost
from llmbench.runtime.runner import request_params
from llmbench.schema import BenchConfig, ModelSpec, TaskSpec
from llmbench.tasks.build import build_samples
from llmbench.types import Message, Sample


@dataclass(frozen=True)
class Estimate:
    model: str
    provider: str
    samples: int
    prompt_tokens: int
    counted_by: str
    max_output_tokens: int
    max_cost_usd: float | None  # None: priced by compute time, unknown before running


def _token_counter(model: ModelSpec) -> tuple[str, object | None]:
    if model.provider != "llamacpp":
        return "estimated", None
    from llama_cpp import Llama

    from llmbench.providers.llamacpp import quiet_llama_logs, resolve_model_file

    quiet_llama_logs()
    vocab = Llama(model_path=str(resolve_model_file(model.model)), vocab_only=True, verbose=False)
    return "tokenizer", vocab


def estimate(config: BenchConfig) -> list[Estimate]:
    samples = {t.name: build_samples(t, config.execution.limit) for t in config.tasks}
    # The tool definitions each sample's requests carry: the same for every model.
    tool_texts = {name: [_tool_text(s) for s in items] for name, items in samples.items()}
    rows = []
    per_task: dict[str, list[Estimate]] = {t.name: [] for t in config.tasks}
    for model in config.models:
        counted_by, vocab = _token_counter(model)
        tool_results = False
        for task in config.tasks:
            prompt = output = count = 0
            params = request_params(model, task, config.execution.seed)
            for sample, tools in zip(samples[task.name], tool_texts[task.name], strict=True):
                steps = 1 if sample.agent is None else sample.agent.max_steps
                tool_results |= sample.agent is not None
                # A conversation sends each turn with the turns before it and their answers
                # (each at most max_tokens); an agent loop, each turn's request again after
                # each of its own calls (at most max_tokens each), up to its step limit.
                for turn, shown in enumerate(turn_messages(sample)):
                    if vocab is None:
                        asked = estimated_prompt_tokens(shown) + math.ceil(
                            len(tools) / CHARS_PER_TOKEN
                        )
                    else:
                        text = "\n".join([*(m.content for m in shown), tools])
                        asked = len(vocab.tokenize(text.encode(), add_bos=True))  # type: ignore[attr-defined]
                    for step in range(steps):
                        prompt += asked + (turn * steps + step) * params.max_tokens
                        output += params.max_tokens
                count += 1
            cost = max_cost(model.price, prompt, output)
            per_task[task.name].append(
                Estimate(model.name, model.provider, count, prompt, counted_by, output, cost)
            )
        mine = _summed([r for found in per_task.values() for r in found if r.model == model.name])
        suffix = " + tool results" if tool_results else ""
        rows.append(replace(mine, counted_by=mine.counted_by + suffix))
    # A strategy's row sums its tasks' (each from its members' rows on that task): one that
    # runs on some tasks only is counted on those.
    strategies = [
        _summed(
            [
                row
                for task, found in per_task.items()
                for row in strategy_estimates(config, found)
                if row.model == spec.name and config.runs_on(spec.name, task)
            ]
        )
        for spec in config.strategies
    ]
    baselines = same_spend_estimates(config, strategies)
    return rows + strategies + baselines + judge_estimates(config, samples)


def _summed(rows: list[Estimate]) -> Estimate:
    """One entrant's rows over several tasks as one row."""
    costs = [r.max_cost_usd for r in rows]
    return Estimate(
        rows[0].model,
        rows[0].provider,
        sum(r.samples for r in rows),
        sum(r.prompt_tokens for r in rows),
        rows[0].counted_by,
        sum(r.max_output_tokens for r in rows),
        None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
    )


def _tool_text(sample: Sample) -> str:
    """The tool definitions each of the sample's requests carries, as text to count: its
    own (BFCL's functions) and its agent's local and Python tools (an MCP server's are
    listed only once it runs: not counted)."""
    tools = list(sample.tools)
    if sample.agent is not None:
        from llmbench.tools.toolset import local_tools

        tools += [bound.tool for bound in local_tools(sample.agent, source=None, field="tools")]
    return "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters})
        for t in tools
    )


def turn_messages(sample: Sample) -> list[list[Message]]:
    """The messages each turn of ``sample`` sends besides the entrant's earlier answers:
    its first request's, then each follow-up added to those before it."""
    first = sample.messages()
    return [
        [*first, *(Message(role="user", content=q) for q in sample.follow_ups[:turn])]
        for turn in range(1 + len(sample.follow_ups))
    ]


def strategy_estimates(config: BenchConfig, models: list[Estimate]) -> list[Estimate]:
    """A row per strategy from its members' rows: per sample, each role's most tokens
    (:meth:`Strategy.worst_case_tokens`: its most calls, with the prompts of loops growing)
    priced at that member's price (an upper bound: a router calls one route, not all, and
    calls its members' rows already made come from the response cache)."""
    from llmbench.strategies.registry import strategy_class

    by_name = {row.model: row for row in models}
    prices = {m.name: m.price for m in config.models}
    done: dict[str, Estimate] = {}

    def of(name: str) -> Estimate:
        if name in by_name:
            return by_name[name]
        if name not in done:
            spec = next(s for s in config.strategies if s.name == name)
            members = {role: of(member) for role, member in spec.members.items()}
            samples = next(iter(members.values())).samples
            per = max(samples, 1)
            own = {
                role: (row.prompt_tokens / per, row.max_output_tokens / per)
                for role, row in members.items()
            }
            worst = strategy_class(spec.kind).worst_case_tokens(spec, own)
            prompt = output = 0
            costs: list[float | None] = []
            for role, (role_prompt, role_output) in worst.items():
                row, member = members[role], spec.members[role]
                tokens = (math.ceil(role_prompt * samples), math.ceil(role_output * samples))
                prompt, output = prompt + tokens[0], output + tokens[1]
                if member in prices:  # a model: its price, at these tokens
                    costs.append(max_cost(prices[member], *tokens))
                elif row.max_cost_usd is None or row.prompt_tokens + row.max_output_tokens == 0:
                    costs.append(row.max_cost_usd)
                else:  # a nested strategy: its own worst case, scaled by the calls asked of it
                    scale = sum(tokens) / (row.prompt_tokens + row.max_output_tokens)
                    costs.append(row.max_cost_usd * scale)
            total = None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
            done[name] = Estimate(name, spec.provider, samples, prompt, "members", output, total)
        return done[name]

    return [of(s.name) for s in config.strategies]


def same_spend_estimates(config: BenchConfig, strategies: list[Estimate]) -> list[Estimate]:
    """A row per same-spend baseline the run will draw (``<strategy>.same-spend``): n draws
    of the strategy's best model member, n chosen so they cost about what the strategy did
    per item (on a judged task with the universal self-consistency's selection call
    counted in); the first draw is the member's own row, from the response cache, so the
    new draws cost at most the strategy's own spend. The bound is the strategy's worst
    case. Judging the baselines of a judged task is counted on the judges' rows
    (:func:`judge_estimates`)."""
    from llmbench.report.same_spend import needs_baseline

    by_name = {row.model: row for row in strategies}
    models = {m.name for m in config.models}
    rows = []
    for spec in config.strategies:
        row = by_name[spec.name]
        if needs_baseline(spec) and models & set(spec.members.values()):
            rows.append(
                Estimate(
                    f"{spec.name}.same-spend",
                    "same-spend draws (+ selection)",
                    row.samples,
                    row.prompt_tokens,
                    "bound",
                    row.max_output_tokens,
                    row.max_cost_usd,
                )
            )
    return rows


def same_spend_entrants(config: BenchConfig, task: TaskSpec) -> list[str]:
    """The same-spend baselines drawn on ``task`` (``<strategy>.same-spend``): those of the
    multi-step strategies running on it, where it takes one (as the plan draws them)."""
    from llmbench.report.same_spend import SUFFIX, method_of, needs_baseline

    if method_of(task) is None:
        return []
    return [
        spec.name + SUFFIX
        for spec in config.strategies
        if needs_baseline(spec) and config.runs_on(spec.name, task.name)
    ]


def judge_estimates(config: BenchConfig, samples: dict[str, list[Sample]]) -> list[Estimate]:
    """A row per judge: its calls, and prompt tokens with every answer at max_tokens (judge
    prompts hold the answers, which do not exist yet), so again an upper bound."""
    from llmbench.scoring.judge import model_pairs, task_template
    from llmbench.scoring.relevance import relevance_prompt

    totals: dict[str, list[int]] = {}  # judge -> [calls, prompt tokens, output tokens]
    for task in config.tasks:
        judge = task.judge
        if judge is None:
            continue
        names = [m.name for m in config.entrants_on(task.name)]
        # The panel grades each same-spend baseline's answers as it grades an entrant's.
        graded = names + same_spend_entrants(config, task)
        template = math.ceil(len(task_template(task)) / CHARS_PER_TOKEN)
        relevance_template = math.ceil(
            sum(len(t) for t in relevance_prompt(task).values()) / CHARS_PER_TOKEN
        )
        answer = max(request_params(m, task, 0).max_tokens for m in config.models)
        per_call_answers = 2 if judge.mode == "pairwise" else 1
        calls_per_sample = (
            2 * len(model_pairs(names, judge.baseline)) if judge.mode == "pairwise" else len(graded)
        )
        for name in judge.panel:
            total = totals.setdefault(name, [0, 0, 0])
            for sample in samples[task.name]:
                # A conversation's turn k is graded with the k turns up to it.
                for turn, shown in enumerate(turn_messages(sample), start=1):
                    question = estimated_prompt_tokens(shown)
                    refs = sample.references[:turn] if sample.follow_ups else sample.references[:1]
                    reference = math.ceil(sum(len(r) for r in refs) / CHARS_PER_TOKEN)
                    prompt = template + question + reference + per_call_answers * answer * turn
                    total[0] += calls_per_sample
                    total[1] += calls_per_sample * prompt
                    total[2] += calls_per_sample * judge.max_tokens
                if judge.answer_relevance is not None:  # one more call, shown the answer alone
                    total[0] += calls_per_sample
                    total[1] += calls_per_sample * (relevance_template + answer)
                    total[2] += calls_per_sample * judge.answer_relevance.max_tokens
    rows = []
    for name, (calls, prompt, output) in totals.items():
        grader = config.grader(name)
        rows.append(
            Estimate(
                f"judge: {name}",
                grader.provider,
                calls,
                prompt,
                "estimated",
                output,
                max_cost(grader.price, prompt, output),
            )
        )
    return rows
