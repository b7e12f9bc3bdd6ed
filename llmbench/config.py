"""Benchmark configuration: loading and the checks that need the registries.

Everything is validated up front, before ZenML or any model is touched: a bad config fails
fast with a :class:`~llmbench.errors.ConfigError` naming the file and field. Relative paths
are resolved against the file that declares them, so a config runs from any directory. The
schema itself is :mod:`llmbench.schema` (re-exported here).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llmbench import pricing, prompts
from llmbench.errors import ConfigError
from llmbench.providers.registry import PROVIDERS, provider_class
from llmbench.schema import (
    DATA_FORMATS,
    DEFAULT_CRITERIA,
    DEFAULT_PRICES_FILE,
    NAME_PATTERN,
    PROJECT_ROOT,
    BenchConfig,
    Entrant,
    ExecutionSpec,
    FewShotSpec,
    HumanLabelsSpec,
    JudgeSpec,
    MetricSpec,
    ModelSpec,
    PriceEntry,
    PriceTable,
    SampleSpec,
    SourceSpec,
    StatsSpec,
    StrategySpec,
    SubsetSpec,
    TaskSpec,
    TrackingSpec,
    _Strict,
    format_validation_error,
)
from llmbench.strategies.registry import STRATEGIES, strategy_class
from llmbench.suggest import did_you_mean

__all__ = [
    "DATA_FORMATS",
    "DEFAULT_CRITERIA",
    "DEFAULT_PRICES_FILE",
    "NAME_PATTERN",
    "PROJECT_ROOT",
    "BenchConfig",
    "Entrant",
    "ExecutionSpec",
    "FewShotSpec",
    "HumanLabelsSpec",
    "JudgeSpec",
    "MetricSpec",
    "ModelSpec",
    "PriceEntry",
    "PriceTable",
    "SampleSpec",
    "SourceSpec",
    "StatsSpec",
    "StrategySpec",
    "SubsetSpec",
    "TaskSpec",
    "TrackingSpec",
    "check_registries",
    "format_validation_error",
    "load",
    "load_prices",
    "load_task_file",
    "read_yaml",
]


# ---------------------------------------------------------------- loading


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every failure into a ConfigError that names the file."""
    if not path.is_file():
        raise ConfigError(
            "file not found",
            source=str(path),
            hint="check the path (relative paths are resolved against the file that names them)",
        )
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {where}{problem}", source=str(path), hint="fix the YAML syntax"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", source=str(path)) from None


def _validate(model: type[_Strict], data: Any, source: Path, hint: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        loc, message = format_validation_error(exc)
        raise ConfigError(message, source=str(source), field=loc or None, hint=hint) from None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        # A source is replaced whole: a file path and a Hub id must not be mixed.
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "source":
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_source_paths(task: dict[str, Any], base_dir: Path) -> None:
    """Make a task's file paths absolute: data sources, a retrieval corpus, the judge's
    prompt and human labels, a Python tool's file."""
    judge: dict[str, Any] = task["judge"] if isinstance(task.get("judge"), dict) else {}
    retrieval = task["retrieval"] if isinstance(task.get("retrieval"), dict) else {}
    for holder in (
        task.get("source"),
        (task.get("fewshot") or {}).get("source"),
        (task.get("references_from") or {}).get("source"),
        judge.get("human_labels"),
        retrieval.get("corpus"),
    ):
        if isinstance(holder, dict) and isinstance(holder.get("path"), str):
            holder["path"] = str((base_dir / os.path.expandvars(holder["path"])).resolve())
    if isinstance(judge.get("prompt"), str):
        judge["prompt"] = prompts.resolve(os.path.expandvars(judge["prompt"]), base_dir)
    relevance = judge.get("answer_relevance")
    if isinstance(relevance, dict) and isinstance(relevance.get("prompt"), str):
        relevance["prompt"] = prompts.resolve(os.path.expandvars(relevance["prompt"]), base_dir)
    tools = task.get("tools")
    for python in (tools.get("python") if isinstance(tools, dict) else None) or []:
        function = python.get("function") if isinstance(python, dict) else None
        file, colon, name = function.rpartition(":") if isinstance(function, str) else ("", "", "")
        if colon and file.endswith(".py"):  # a tool module's file, beside the task's YAML
            python["function"] = f"{(base_dir / os.path.expandvars(file)).resolve()}:{name}"
    bfcl = task.get("bfcl")
    if isinstance(bfcl, dict) and isinstance(bfcl.get("possible_answer"), str):
        path = base_dir / os.path.expandvars(bfcl["possible_answer"])
        bfcl["possible_answer"] = str(path.resolve())


def _resolve_prompt_files(node: Any, base_dir: Path) -> None:
    """A strategy's prompt files (``{file: ...}`` anywhere in its options): beside the
    config when there, else names under configs/prompts/."""
    if isinstance(node, dict):
        if set(node) == {"file"} and isinstance(node["file"], str):
            node["file"] = prompts.resolve(os.path.expandvars(node["file"]), base_dir)
        for value in node.values():
            _resolve_prompt_files(value, base_dir)
    elif isinstance(node, list):
        for value in node:
            _resolve_prompt_files(value, base_dir)


def _read_task_mapping(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A task file as a dict, with ``include:`` merged in and source paths made absolute."""
    if path in chain:
        raise ConfigError("include cycle: " + " -> ".join(str(p) for p in (*chain, path)))
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("a task file must be a mapping of fields", source=str(path))
    _resolve_source_paths(data, path.parent)
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str):
        raise ConfigError("must be a path to another task file", source=str(path), field="include")
    parent = _read_task_mapping((path.parent / include).resolve(), (*chain, path))
    return _deep_merge(parent, data)


def load_task_file(path: Path) -> TaskSpec:
    data = _read_task_mapping(path.resolve())
    task: TaskSpec = _validate(
        TaskSpec, data, path, "see the task reference in README.md (Config reference)"
    )
    _check_tools(task, str(path), "tools")
    return task


def _check_tools(task: TaskSpec, source: str, field: str) -> None:
    """A tool-using task's local and Python tools exist, import and have valid schemas
    (its MCP servers are started by the preflight)."""
    if task.tools is not None:
        from llmbench.tools.toolset import local_tools

        local_tools(task.tools, source=source, field=field)


def load_prices(path: Path) -> PriceTable:
    data = read_yaml(path)
    table: PriceTable = _validate(
        PriceTable, data, path, "each entry needs source, date and token or hourly prices"
    )
    return table


RECORDED_PRICE = PriceEntry(
    per_hour=0.0, source="recorded outputs: what they cost was not recorded", date="n/a"
)


def _resolve_price(model: ModelSpec, table: PriceTable, prices_file: Path) -> ModelSpec:
    markup = provider_class(model.provider).cache_write_markup
    if model.price is not None:
        return model.model_copy(update={"price": pricing.with_cache_writes(model.price, markup)})
    if model.provider == "recorded":  # priced only where the table knows the model by name
        return model.model_copy(update={"price": table.models.get(model.name, RECORDED_PRICE)})
    entry = table.models.get(model.model) or table.models.get(model.name)
    if entry is None:
        raise ConfigError(
            f"model {model.name!r} ({model.model}) has no price",
            source=str(prices_file),
            hint=f"add an entry for {model.model!r} to {prices_file} or set 'price:' "
            "on the model in the config (use per_hour for local models)",
        )
    return model.model_copy(update={"price": pricing.with_cache_writes(entry, markup)})


def _tracking_defaults(tracking: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    tracking = dict(tracking)
    uri = tracking.get("uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = f"sqlite:///{(base_dir / 'mlruns' / 'mlflow.db').resolve()}"
    elif re.match(r"^sqlite:///(?!/)", uri):
        uri = f"sqlite:///{(base_dir / uri.removeprefix('sqlite:///')).resolve()}"
    tracking["uri"] = uri
    if not tracking.get("artifact_location") and uri.startswith("sqlite:///"):
        db_dir = Path(uri.removeprefix("sqlite:///")).parent
        tracking["artifact_location"] = str(db_dir / "artifacts")
    return tracking


def _check_model(model: ModelSpec, field: str, source: str | None) -> None:
    if model.provider not in PROVIDERS:
        raise ConfigError(
            f"unknown provider {model.provider!r}; {did_you_mean(model.provider, PROVIDERS)}",
            source=source,
            field=f"{field}.provider",
            hint="see Providers in README.md",
        )
    cls = provider_class(model.provider)
    try:
        cls.options_model.model_validate(model.options)
    except ValidationError as exc:
        loc, message = format_validation_error(exc)
        raise ConfigError(message, source=source, field=f"{field}.options.{loc}") from None
    if not cls.remote and (model.base_url or model.api_key_env or model.stream or model.secret):
        raise ConfigError(
            f"provider {model.provider!r} runs in-process: base_url, api_key_env, "
            "stream and secret do not apply",
            source=source,
            field=field,
            hint="remove them, or use a server provider (openai_compatible, ollama)",
        )


def check_registries(config: BenchConfig, source: str | None = None) -> BenchConfig:
    """What the schema cannot know without the registries, checked once: every provider
    exists and takes its model's options; every strategy kind exists and takes its members'
    roles, its options and (for kinds that care) its members' settings."""
    for group, models in (("models", config.models), ("judges", config.judges)):
        for index, model in enumerate(models):
            _check_model(model, f"{group}.{index}", source)
    for index, strategy in enumerate(config.strategies):
        field = f"strategies.{index}"
        if strategy.kind not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy kind {strategy.kind!r}; "
                f"{did_you_mean(strategy.kind, STRATEGIES)}",
                source=source,
                field=f"{field}.kind",
                hint="see Strategies in README.md",
            )
        cls = strategy_class(strategy.kind)
        try:
            cls.check(strategy)
            cls.check_config(strategy, config)
        except ValueError as exc:
            where, _, message = str(exc).partition(": ")
            raise ConfigError(
                message or where, source=source, field=f"{field}.{where}" if message else field
            ) from None
    return config


def load(path: str | Path) -> BenchConfig:
    """Read, resolve and validate a benchmark config and everything it references."""
    config_path = Path(path).resolve()
    raw = read_yaml(config_path)
    if not isinstance(raw, dict):
        raise ConfigError(
            "the config must be a mapping with 'models' and 'tasks'", source=str(config_path)
        )
    base_dir = config_path.parent
    raw = dict(raw)
    prices_file = Path(raw.pop("prices", None) or DEFAULT_PRICES_FILE)
    if not prices_file.is_absolute():
        prices_file = (base_dir / prices_file).resolve()

    for model in [*(raw.get("models") or []), *(raw.get("judges") or [])]:
        model_file = model.get("model") if isinstance(model, dict) else None
        is_file = isinstance(model_file, str) and (
            model_file.endswith(".gguf") or model.get("provider") == "recorded"
        )
        if is_file and isinstance(model_file, str) and not Path(model_file).is_absolute():
            model["model"] = str((base_dir / model_file).resolve())

    for strategy in raw.get("strategies") or []:
        options = (strategy.get("options") or {}) if isinstance(strategy, dict) else {}
        threshold = options.get("threshold") if isinstance(options, dict) else None
        if isinstance(threshold, dict) and isinstance(threshold.get("path"), str):
            threshold["path"] = str((base_dir / os.path.expandvars(threshold["path"])).resolve())
        _resolve_prompt_files(options, base_dir)

    tasks: list[Any] = []
    entries = raw.get("tasks")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, str):
            tasks.append(load_task_file(base_dir / entry))
        elif isinstance(entry, dict):
            entry = dict(entry)
            _resolve_source_paths(entry, base_dir)
            inline: TaskSpec = _validate(
                TaskSpec, entry, config_path, f"fix the inline task at tasks.{index}"
            )
            _check_tools(inline, str(config_path), f"tasks.{index}.tools")
            tasks.append(inline)
        else:
            raise ConfigError(
                "each task must be a path to a task YAML file or an inline task mapping",
                source=str(config_path),
                field=f"tasks.{index}",
            )
    if isinstance(entries, list):
        raw["tasks"] = tasks
    raw["tracking"] = _tracking_defaults(raw.get("tracking") or {}, base_dir)

    config: BenchConfig = _validate(
        BenchConfig, raw, config_path, "see the config reference in README.md"
    )
    check_registries(config, str(config_path))
    table = load_prices(prices_file)
    models = [_resolve_price(m, table, prices_file) for m in config.models]
    judges = [_resolve_price(m, table, prices_file) for m in config.judges]
    return config.model_copy(update={"models": models, "judges": judges})
