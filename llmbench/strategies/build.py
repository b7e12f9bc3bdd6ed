"""A strategy with its members, ready to answer one task: each model member gets a client
(its own endpoint limits and price, the run's cache and budget) and the request parameters
its own leaderboard row uses on that task."""

from __future__ import annotations

from collections.abc import Mapping

from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.runtime.runner import request_params
from llmbench.schema import ModelSpec, StrategySpec
from llmbench.strategies.base import Member, Strategy, TaskView
from llmbench.strategies.registry import strategy_class
from llmbench.tools.agent import ToolBox


def build_strategy(
    spec: StrategySpec,
    models: Mapping[str, ModelSpec],
    strategies: Mapping[str, StrategySpec],
    task: TaskView,
    *,
    seed: int,
    settings: RunSettings,
    toolbox: ToolBox | None = None,
) -> Strategy:
    """``models`` / ``strategies``: every entrant the strategy may name, priced.
    ``toolbox``: the tool sets its model members' agent loops share (one for the strategy
    and every strategy nested in it)."""
    members: dict[str, Member] = {}
    clients: dict[str, ModelClient] = {}
    toolbox = toolbox or ToolBox()
    for role, name in spec.members.items():
        if name in strategies:
            nested = build_strategy(
                strategies[name],
                models,
                strategies,
                task,
                seed=seed,
                settings=settings,
                toolbox=toolbox,
            )
            members[role] = Member(role, name, strategy=nested, toolbox=toolbox)
            continue
        model = models[name]
        # One client per model: two roles played by one model share its calls and counts.
        client = clients.setdefault(name, ModelClient(model, settings))
        members[role] = Member(
            role,
            name,
            client=client,
            params=request_params(model, task, seed),
            toolbox=toolbox,
        )
    return strategy_class(spec.kind)(spec, members, task)


def identity(
    spec: StrategySpec,
    models: Mapping[str, ModelSpec],
    strategies: Mapping[str, StrategySpec],
) -> dict[str, object]:
    """What determines a strategy's answers: its own settings and, recursively, each
    member's generation identity (change a member and the strategy re-runs). Its options
    are the validated ones, defaults filled in, so a changed default (a classifier or
    verifier prompt's text, a threshold) re-runs it, and two spellings of one setting
    (given or left to its default) are one identity. Its ``tasks`` are not part of it:
    they say where it runs, not how it answers, so adding a task re-runs nothing cached."""
    members: dict[str, object] = {}
    for role, name in spec.members.items():
        if name in strategies:
            members[role] = identity(strategies[name], models, strategies)
        else:
            members[role] = models[name].generation_identity()
    cls = strategy_class(spec.kind)
    return {
        **spec.model_dump(mode="json", exclude={"description", "tasks"}),
        "options": cls.options_model.model_validate(spec.options).model_dump(mode="json"),
        "members": members,
        **cls.identity_extra(spec),
    }


def from_identity(
    ident: dict[str, object], model_settings: Mapping[str, dict[str, object]]
) -> tuple[StrategySpec, dict[str, ModelSpec], dict[str, StrategySpec]]:
    """The strategy, model and strategy specs back from :func:`identity` (a step parameter)
    and each model's price and limits (``model_settings``, from the step's ``extra``)."""
    models: dict[str, ModelSpec] = {}
    strategies: dict[str, StrategySpec] = {}

    def walk(node: dict[str, object]) -> StrategySpec:
        members = node["members"]
        assert isinstance(members, dict)
        names: dict[str, str] = {}
        for role, member in members.items():
            if "kind" in member:
                nested = walk(member)
                strategies[nested.name] = nested
                names[role] = nested.name
            else:
                name = str(member["name"])
                models[name] = ModelSpec.model_validate({**member, **model_settings[name]})
                names[role] = name
        fields = {k: v for k, v in node.items() if k in StrategySpec.model_fields}
        return StrategySpec.model_validate({**fields, "members": names})

    spec = walk(ident)
    return spec, models, strategies
