"""Which steps a benchmark runs, their ids, order and cache identities, decided here (and
tested) rather than in the pipeline body, which only submits what is planned.

A step's ZenML cache key is its parameters and input artifacts, so each planned step's
parameters are exactly what shapes its output: a model's generation identity without its
price, a strategy's identity with its members', a judge's verdict-shaping settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llmbench.report.same_spend import SUFFIX, method_of, needs_baseline
from llmbench.retrieval.corpus import load_corpus
from llmbench.retrieval.index import KINDS, settings_of
from llmbench.runtime.runner import request_params
from llmbench.schema import BenchConfig, ModelSpec, PriceEntry, StrategySpec, TaskSpec
from llmbench.scoring.judge import model_pairs, task_template
from llmbench.scoring.relevance import relevance_prompt
from llmbench.scoring.verdict import PARSER_VERSION
from llmbench.strategies.base import TaskView
from llmbench.strategies.build import identity
from llmbench.strategies.usc import UniversalSelfConsistencyOptions


@dataclass(frozen=True)
class Generation:
    """One entrant's answers to one task: a model's requests, or a strategy's."""

    id: str
    entrant: str
    task: str
    kind: Literal["model", "strategy"]
    params: dict[str, Any]  # the step's parameters besides the samples
    after: tuple[str, ...] = ()  # generation ids that must finish first (a strategy's members)
    request_models: tuple[str, ...] = ()  # whose send settings, keys and prices the step needs


@dataclass(frozen=True)
class Judging:
    """One judge over one entrant's answers (grade) or one pair's (compare)."""

    id: str
    mode: Literal["grade", "compare"]
    task: str
    judge: str
    entrants: tuple[str, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class Scoring:
    """Every entrant of one task, scored in one step (``score__<task>``): ZenML's own work
    is ~0.1 s of CPU per step, cached or not, more than scoring an entrant takes, so
    re-scoring a whole task when one entrant changes (no model call) is the cheaper side."""

    id: str
    task: str
    entrants: tuple[str, ...]
    judgings: tuple[str, ...]  # the task's judging ids, in the order of the step's judgments
    judged: dict[str, list[int]]  # entrant -> positions of its judgments in ``judgings``
    prices: dict[str, dict[str, Any]]  # entrant -> the prices its answers are billed at
    judge_prices: dict[str, Any]


@dataclass(frozen=True)
class SameSpend:
    """The same-spend baselines of one task's multi-step strategies
    (:mod:`llmbench.report.same_spend`), in one step (``same_spend__<task>``): drawn after
    the task is scored (the rows of each strategy and of its model members choose its
    baseline) and scored as ``<strategy>.same-spend`` in the same step."""

    id: str
    task: str
    strategies: tuple[str, ...]
    members: tuple[str, ...]  # every model member of those strategies: send settings, keys
    # ``strategies``: each one's model members' generation identities; ``prices``: every
    # member's (and judge's), a parameter so that a price change re-scores the baselines;
    # on a judged task ``judges``, ``judge_fingerprints`` and the judge settings, prompt
    # and parser version, as a grade step's, so a new judge re-grades them.
    params: dict[str, Any]
    judges: tuple[str, ...] = ()  # the task's panel on a judged task: send settings, keys

    @property
    def request_models(self) -> tuple[str, ...]:
        """Every model the step sends requests to: the members, then the judges."""
        return self.members + tuple(j for j in self.judges if j not in self.members)

    @property
    def entrants(self) -> tuple[str, ...]:
        """The baselines' row names, one per strategy."""
        return tuple(name + SUFFIX for name in self.strategies)


@dataclass(frozen=True)
class IndexBuild:
    """One index of one corpus (``index__<corpus digest>__<kind>``), built once per run
    and store, whichever tasks search it."""

    id: str
    params: dict[str, Any]  # corpus, kind, embedding_model, identity


@dataclass(frozen=True)
class Retrieving:
    """A retrieval task's samples: ``load__<task>`` loads its rows (its parameters hold
    no retriever setting, so a new retriever leaves it cached), ``retrieve__<task>`` searches
    the ``indexes`` and renders the prompts; its samples are what every later step reads."""

    id: str
    load_task: dict[str, Any]
    task: dict[str, Any]
    indexes: tuple[str, ...]


@dataclass
class Plan:
    tasks: list[str] = field(default_factory=list)
    indexes: list[IndexBuild] = field(default_factory=list)
    retrievals: dict[str, Retrieving] = field(default_factory=dict)
    generations: list[Generation] = field(default_factory=list)
    judgings: list[Judging] = field(default_factory=list)
    scorings: list[Scoring] = field(default_factory=list)
    same_spend: list[SameSpend] = field(default_factory=list)


def _priced(models: list[ModelSpec]) -> dict[str, Any]:
    prices: dict[str, PriceEntry] = {m.name: m.price for m in models if m.price is not None}
    return {name: price.model_dump(mode="json") for name, price in prices.items()}


def verdict_identity(task: TaskSpec) -> dict[str, Any]:
    """The judge settings that shape a verdict; aggregation and labels only re-score."""
    assert task.judge is not None
    return task.judge.model_dump(mode="json", exclude={"aggregate", "human_labels", "panel"})


def _generations(bench: BenchConfig, fingerprints: dict[str, str]) -> list[Generation]:
    models = {m.name: m for m in bench.models}
    strategies = {s.name: s for s in bench.strategies}
    seed = bench.execution.seed
    out = []
    for task in bench.tasks:
        for model in bench.models:
            params = request_params(model, task, seed)
            out.append(
                Generation(
                    id=f"generate__{model.name}__{task.name}",
                    entrant=model.name,
                    task=task.name,
                    kind="model",
                    params={
                        "model": model.generation_identity(),
                        "params": params.model_dump(mode="json"),
                        "label": f"{model.name} / {task.name}",
                        "data_fingerprint": fingerprints.get(f"model:{model.name}"),
                    },
                    request_models=(model.name,),
                )
            )
        for strategy in bench.strategies:
            if not bench.runs_on(strategy.name, task.name):
                continue
            members = [m.name for m in bench.members_of(strategy)]
            out.append(
                Generation(
                    id=f"answer__{strategy.name}__{task.name}",
                    entrant=strategy.name,
                    task=task.name,
                    kind="strategy",
                    params={
                        "strategy": identity(strategy, models, strategies),
                        "task": TaskView.of(task).model_dump(mode="json"),
                        "seed": seed,
                        "label": f"{strategy.name} / {task.name}",
                        # A recorded member's file changes its answers, not its spec.
                        "data_fingerprints": {
                            m: fingerprints[f"model:{m}"]
                            for m in members
                            if f"model:{m}" in fingerprints
                        },
                    },
                    after=tuple(f"generate__{m}__{task.name}" for m in members)
                    + tuple(
                        f"answer__{s}__{task.name}"
                        for s in strategy.members.values()
                        if s in strategies
                    ),
                    request_models=tuple(members),
                )
            )
    return out


def _judgings(bench: BenchConfig, task: TaskSpec, fingerprints: dict[str, str]) -> list[Judging]:
    if task.judge is None:
        return []
    spec, template = verdict_identity(task), task_template(task)
    names = [e.name for e in bench.entrants_on(task.name)]
    seed = bench.execution.seed
    out = []
    for judge_name in task.judge.panel:
        common = {
            "task": task.name,
            "spec": spec,
            "prompt_template": template,
            # ZenML's cache key sees only the step's own source, not the parser's.
            "parser_version": PARSER_VERSION,
            "judge": bench.grader(judge_name).generation_identity(),
            "judge_fingerprint": fingerprints.get(f"model:{judge_name}"),
            "seed": seed,
        }
        if task.judge.mode == "pairwise":
            for a, b in model_pairs(names, task.judge.baseline):
                out.append(
                    Judging(
                        id=f"compare__{a}__{b}__{task.name}__{judge_name}",
                        mode="compare",
                        task=task.name,
                        judge=judge_name,
                        entrants=(a, b),
                        params={
                            **common,
                            "model_a": a,
                            "model_b": b,
                            "label": f"{judge_name} judges {a} vs {b} / {task.name}",
                        },
                    )
                )
            continue
        for name in names:
            out.append(
                Judging(
                    id=f"grade__{name}__{task.name}__{judge_name}",
                    mode="grade",
                    task=task.name,
                    judge=judge_name,
                    entrants=(name,),
                    params={
                        **common,
                        **relevance_prompt(task),
                        "label": f"{judge_name} grades {name} / {task.name}",
                    },
                )
            )
    return out


def entrant_prices(bench: BenchConfig, entrant: str) -> dict[str, Any]:
    """The prices an entrant's answers are billed at: its own, or its member models'."""
    found = bench.entrant(entrant)
    if isinstance(found, StrategySpec):
        return _priced(bench.members_of(found))
    return _priced([found])


def _same_spend(bench: BenchConfig, fingerprints: dict[str, str]) -> list[SameSpend]:
    """A baseline per multi-step strategy and task it runs on, where the task takes one
    (:func:`~llmbench.report.same_spend.method_of`: scored by metrics, or graded by a
    rubric or reference judge, whose panel then grades the baselines in the step; not a
    pairwise-judged task); a task's baselines share one step."""
    found = {s.name: bench.members_of(s) for s in bench.strategies if needs_baseline(s)}
    out = []
    for task in bench.tasks:
        members = {n: mine for n, mine in found.items() if bench.runs_on(n, task.name)}
        every = list({m.name: m for mine in members.values() for m in mine}.values())
        if method_of(task) is None or not members:
            continue
        params: dict[str, Any] = {
            "strategies": {
                name: [m.generation_identity() for m in mine] for name, mine in members.items()
            },
            "task": task.model_dump(mode="json"),
            "seed": bench.execution.seed,
            "prices": _priced(every),
        }
        panel: tuple[str, ...] = ()
        if task.judge is not None:
            panel = tuple(task.judge.panel)
            judges = [bench.grader(name) for name in panel]
            params.update(
                judges=[j.generation_identity() for j in judges],
                judge_fingerprints={n: fingerprints.get(f"model:{n}") for n in panel},
                judge_prompt=task_template(task),
                parser_version=PARSER_VERSION,
                judge_prices=_priced(judges),
                # The selection prompt's text: editing the file re-draws the baselines.
                select_prompt=UniversalSelfConsistencyOptions(samples=2).select_prompt,
                **relevance_prompt(task),
            )
        out.append(
            SameSpend(
                id=f"same_spend__{task.name}",
                task=task.name,
                strategies=tuple(members),
                members=tuple(m.name for m in every),
                params=params,
                judges=panel,
            )
        )
    return out


def _retrievals(
    bench: BenchConfig, fingerprints: dict[str, str]
) -> tuple[list[IndexBuild], dict[str, Retrieving]]:
    """The index steps (one per corpus content and kind) and each retrieval task's steps.
    ``fingerprints["corpus:<task>"]`` is the corpus's content hash (preflight's); without
    it the corpus is read here."""
    indexes: dict[str, IndexBuild] = {}
    retrievals = {}
    for task in bench.tasks:
        spec = task.retrieval
        if spec is None:
            continue
        corpus = fingerprints.get(f"corpus:{task.name}") or load_corpus(spec.corpus).fingerprint
        ids = []
        for kind in KINDS[spec.retriever]:
            built = IndexBuild(
                id=f"index__{corpus.removeprefix('sha256:')[:12]}__{kind}",
                params={
                    "corpus": spec.corpus.model_dump(mode="json"),
                    "kind": kind,
                    "embedding_model": spec.embedding_model,
                    "identity": {"corpus": corpus, **settings_of(kind, spec.embedding_model)},
                },
            )
            indexes.setdefault(built.id, built)
            ids.append(built.id)
        sample_spec = task.sample_spec().model_dump(mode="json")
        # Loading evaluates the query and gold ids; the rest of `retrieval` is retrieving.
        loading = {k: sample_spec["retrieval"][k] for k in ("corpus", "query", "gold")}
        retrievals[task.name] = Retrieving(
            id=f"retrieve__{task.name}",
            load_task={**sample_spec, "retrieval": loading},
            task=sample_spec,
            indexes=tuple(ids),
        )
    return list(indexes.values()), retrievals


def plan(bench: BenchConfig, fingerprints: dict[str, str]) -> Plan:
    """Every step of a run, in an order that respects their dependencies."""
    result = Plan(tasks=[t.name for t in bench.tasks])
    result.indexes, result.retrievals = _retrievals(bench, fingerprints)
    result.generations = _generations(bench, fingerprints)
    for task in bench.tasks:
        judgings = _judgings(bench, task, fingerprints)
        result.judgings.extend(judgings)
        judge_prices = (
            _priced([bench.grader(name) for name in task.judge.panel]) if task.judge else {}
        )
        names = [entrant.name for entrant in bench.entrants_on(task.name)]
        result.scorings.append(
            Scoring(
                id=f"score__{task.name}",
                task=task.name,
                entrants=tuple(names),
                judgings=tuple(j.id for j in judgings),
                judged={
                    name: [n for n, j in enumerate(judgings) if name in j.entrants]
                    for name in names
                },
                prices={name: entrant_prices(bench, name) for name in names},
                judge_prices=judge_prices,
            )
        )
    result.same_spend = _same_spend(bench, fingerprints)
    return result
