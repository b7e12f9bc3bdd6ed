"""Benchmark configuration: schema and loading.

Everything is validated up front, before ZenML or any model is touched: a bad config fails
fast with a :class:`~llmbench.errors.ConfigError` naming the file and field. Relative paths
are resolved against the file that declares them, so a config runs from any directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llmbench.errors import ConfigError
from llmbench.runtime.limiter import RateLimits
from llmbench.runtime.retry import RetryPolicy
from llmbench.scoring.extract import EXTRACTOR_TYPES, ExtractorSpec
from llmbench.scoring.metrics import METRICS
from llmbench.suggest import did_you_mean
from llmbench.types import GenerationParams

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRICES_FILE = PROJECT_ROOT / "configs" / "prices.yaml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DATA_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- prices


class PriceEntry(_Strict):
    """USD per 1M tokens for APIs, or USD per hour of compute for local models."""

    input_per_1m: float | None = Field(default=None, ge=0)
    output_per_1m: float | None = Field(default=None, ge=0)
    cached_input_per_1m: float | None = Field(
        default=None, ge=0, description="prompt-cache hits, where the provider discounts them"
    )
    per_hour: float | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, ge=1)
    source: str
    date: str

    @model_validator(mode="after")
    def _one_basis(self) -> PriceEntry:
        tokens = self.input_per_1m is not None and self.output_per_1m is not None
        if tokens == (self.per_hour is not None):
            raise ValueError(
                "give either input_per_1m and output_per_1m (API pricing) or per_hour "
                "(compute-time pricing for local models), not both or neither"
            )
        return self

    def cost(
        self, input_tokens: int, output_tokens: int, compute_s: float, cached_tokens: int = 0
    ) -> float:
        """USD for one request: tokens x price, or compute seconds x hourly rate."""
        if self.per_hour is not None:
            return self.per_hour * compute_s / 3600.0
        assert self.input_per_1m is not None and self.output_per_1m is not None
        cached_rate = self.cached_input_per_1m
        if cached_rate is None:
            cached_tokens, cached_rate = 0, 0.0
        fresh = input_tokens - cached_tokens
        return (
            fresh * self.input_per_1m
            + cached_tokens * cached_rate
            + output_tokens * self.output_per_1m
        ) / 1e6


class PriceTable(_Strict):
    models: dict[str, PriceEntry]


# ---------------------------------------------------------------- tasks


class SourceSpec(_Strict):
    """Where a task's rows come from: a local file or a Hugging Face Hub dataset."""

    path: str | None = None
    hf: str | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    field: str | None = Field(
        default=None, description="JSON files only: the key holding the list of rows"
    )

    @model_validator(mode="after")
    def _one_origin(self) -> SourceSpec:
        if (self.path is None) == (self.hf is None):
            raise ValueError("set exactly one of 'path' (local file) or 'hf' (Hub dataset id)")
        if self.path is not None:
            suffix = Path(self.path).suffix.lower()
            if suffix not in DATA_FORMATS:
                raise ValueError(
                    f"unsupported file type {suffix!r} for {self.path}; "
                    f"use one of {', '.join(sorted(DATA_FORMATS))}"
                )
        return self

    def describe(self) -> str:
        if self.path is not None:
            return self.path
        return f"hf:{self.hf}" + (f"/{self.config}" if self.config else "") + f"[{self.split}]"


class FewShotSpec(_Strict):
    """Worked examples prepended to every prompt, taken from another split or file."""

    source: SourceSpec
    n: int = Field(ge=1, le=64)
    separator: str = "\n\n"
    target_delimiter: str = " "


def _metric_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def _extractor_shorthand(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class MetricSpec(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> MetricSpec:
        if self.name not in METRICS:
            raise ValueError(f"unknown metric {self.name!r}; {did_you_mean(self.name, METRICS)}")
        allowed = METRICS[self.name].options
        for option in self.options:
            if option not in allowed:
                known = did_you_mean(option, allowed) if allowed else "it takes no options"
                raise ValueError(f"metric {self.name!r} has no option {option!r}; {known}")
        return self


class SubsetSpec(_Strict):
    """A seeded split of a task's items by sample id: ``share`` of them are ``train``, the
    rest ``test``. The same split trains a learned router and scores it only on items it
    never saw."""

    share: float = Field(gt=0.0, lt=1.0, description="the share of items in the train part")
    seed: int = 0
    part: Literal["train", "test"] = "test"


class SampleSpec(_Strict):
    """The part of a task that decides what each model is asked: data and prompt.

    ``target``, ``sample_id`` and ``choices`` are Jinja2 *expressions* over a row
    (``answer``, ``'ABCD'[answer]``, ``[choice0, choice1]``); ``template`` and ``system`` are
    Jinja2 *templates* that can use the row's columns plus ``choices`` and ``letters``.
    """

    name: str = Field(pattern=NAME_PATTERN)
    source: SourceSpec
    target: str | None = Field(
        default=None,
        description="Jinja2 expression: the reference answer (str or list); "
        "optional for tasks graded only by a rubric or pairwise judge",
    )
    sample_id: str | None = Field(default=None, description="Jinja2 expression; default: row index")
    choices: str | None = Field(default=None, description="Jinja2 expression giving a list")
    system: str | None = None
    template: str
    fewshot: FewShotSpec | None = None
    subset: SubsetSpec | None = Field(
        default=None, description="keep one part of a seeded train/test split of the items"
    )

    @model_validator(mode="after")
    def _fewshot_needs_target(self) -> SampleSpec:
        if self.fewshot is not None and self.target is None:
            raise ValueError("fewshot needs 'target': the answers shown after each example")
        return self


class HumanLabelsSpec(_Strict):
    """A file of human ratings for judge calibration (e.g. the CSV from ``calibrate export``)."""

    path: str
    label: str = Field(default="human_label", description="column with the human rating")
    sample_id: str = Field(default="sample_id", description="column matching the task's ids")
    model: str | None = Field(
        default="model", description="column naming the rated model; null: labels of every model"
    )

    @model_validator(mode="after")
    def _readable_type(self) -> HumanLabelsSpec:
        if Path(self.path).suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(f"human labels must be a .csv or .jsonl file, not {self.path}")
        return self


DEFAULT_CRITERIA = (
    "helpfulness, relevance, accuracy, depth, creativity and level of detail of the response"
)


class JudgeSpec(_Strict):
    """An LLM judge for a task: a rubric score, a reference-guided score or a pairwise
    preference judged in both orders. ``panel`` names judges (``judges:`` or ``models:``)."""

    mode: Literal["rubric", "reference", "pairwise"]
    panel: list[str] = Field(min_length=1)
    criteria: str = DEFAULT_CRITERIA
    scale: tuple[int, int] = Field(default=(1, 10), description="lowest and highest grade")
    pass_fail: bool = Field(default=False, description="grade PASS/FAIL (1/0) instead of a scale")
    aggregate: Literal["mean", "majority"] = Field(
        default="mean", description="how a panel's grades combine into one per sample"
    )
    prompt: str | None = Field(
        default=None, description="Jinja2 template file replacing configs/prompts/<mode>.j2"
    )
    baseline: str | None = Field(
        default=None, description="pairwise: compare every model with this one (default: all pairs)"
    )
    max_tokens: int = Field(default=512, ge=16)
    human_labels: HumanLabelsSpec | None = None

    @model_validator(mode="after")
    def _coherent(self) -> JudgeSpec:
        low, high = self.scale
        if low >= high:
            raise ValueError(f"scale: the lowest grade ({low}) must be below the highest ({high})")
        if len(set(self.panel)) != len(self.panel):
            raise ValueError("panel: a judge is listed twice")
        if self.mode == "pairwise" and (self.pass_fail or self.human_labels):
            raise ValueError("pass_fail and human_labels apply to rubric and reference judging")
        if self.baseline is not None and self.mode != "pairwise":
            raise ValueError("baseline applies to pairwise judging only")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """The grade range a judge may give: (0, 1) for PASS/FAIL."""
        return (0.0, 1.0) if self.pass_fail else (float(self.scale[0]), float(self.scale[1]))


class TaskSpec(SampleSpec):
    """A benchmark task (lm-eval style): data and prompt, then generation limits, answer
    extraction and metrics. Adding a benchmark needs YAML only."""

    description: str = ""
    stop: tuple[str, ...] = ()
    max_tokens: int | None = Field(default=None, ge=1)
    extract: list[Annotated[ExtractorSpec, BeforeValidator(_extractor_shorthand)]] = Field(
        default_factory=list
    )
    metrics: list[Annotated[MetricSpec, BeforeValidator(_metric_shorthand)]] = Field(
        default_factory=list
    )
    judge: JudgeSpec | None = None
    failed_requests: Literal["unscored", "zero"] = Field(
        default="unscored",
        description="a request that failed after its retries: left out of every aggregate "
        "(unscored), or scored as a wrong answer (zero; a judge's lowest grade)",
    )

    @model_validator(mode="after")
    def _scored_somehow(self) -> TaskSpec:
        if not self.metrics and self.judge is None:
            raise ValueError("a task needs 'metrics', a 'judge', or both")
        needs_reference = [m.name for m in self.metrics] or (
            ["judge mode 'reference'"] if self.judge and self.judge.mode == "reference" else []
        )
        if needs_reference and self.target is None:
            raise ValueError(f"{needs_reference[0]} compares with a reference answer: set 'target'")
        return self

    def sample_spec(self) -> SampleSpec:
        """Only what determines the rendered samples: changing metrics or extractors then
        re-scores without reloading data or regenerating."""
        return SampleSpec.model_validate(self.model_dump(include=set(SampleSpec.model_fields)))

    @field_validator("extract", mode="before")
    @classmethod
    def _known_extractors(cls, value: Any) -> Any:
        for item in value if isinstance(value, list) else []:
            kind = (
                item
                if isinstance(item, str)
                else item.get("type")
                if isinstance(item, dict)
                else None
            )
            if isinstance(kind, str) and kind not in EXTRACTOR_TYPES:
                raise ValueError(
                    f"unknown extractor {kind!r}; {did_you_mean(kind, EXTRACTOR_TYPES)}"
                )
        return value


# ---------------------------------------------------------------- models and the benchmark


class ModelSpec(_Strict):
    """One model under test. ``model`` is the provider's id, or a GGUF path for llamacpp."""

    name: str = Field(pattern=NAME_PATTERN)
    provider: str
    model: str
    mode: Literal["chat", "completion"] | None = Field(
        default=None, description="llamacpp: chat template or plain completion; default per model"
    )
    params: GenerationParams = Field(default_factory=GenerationParams)
    options: dict[str, Any] = Field(
        default_factory=dict, description="provider-specific settings (e.g. n_ctx, n_threads)"
    )
    base_url: str | None = Field(
        default=None, description="API endpoint; default: the provider's (or its env variable)"
    )
    api_key_env: str | None = Field(
        default=None, description="environment variable holding the key (default: standard)"
    )
    stream: bool = Field(
        default=False, description="stream responses; measures time to first token"
    )
    secret: str | None = Field(
        default=None,
        description="ZenML secret whose keys (e.g. OPENAI_API_KEY) become environment "
        "variables for this model's steps",
    )
    limits: RateLimits = Field(
        default_factory=RateLimits,
        description="concurrency / RPM / TPM for this model's endpoint (shared by models on it)",
    )
    price: PriceEntry | None = None

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, provider: str) -> str:
        from llmbench.providers.registry import PROVIDERS

        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; {did_you_mean(provider, PROVIDERS)}")
        return provider

    @model_validator(mode="after")
    def _known_options(self) -> ModelSpec:
        from llmbench.providers.registry import provider_class

        cls = provider_class(self.provider)
        try:
            cls.options_model.model_validate(self.options)
        except ValidationError as exc:
            loc, message = format_validation_error(exc)
            raise ValueError(f"options.{loc}: {message}") from None
        if not cls.remote and (self.base_url or self.api_key_env or self.stream or self.secret):
            raise ValueError(
                f"provider {self.provider!r} runs in-process: base_url, api_key_env, "
                "stream and secret do not apply"
            )
        return self

    def generation_identity(self) -> dict[str, Any]:
        """What determines the outputs: everything but the price and the rate limits."""
        return self.model_dump(mode="json", exclude={"price", "limits"})


class StrategySpec(_Strict):
    """A model built from models: ``kind`` says how (router, cascade), ``members`` names
    the models (or other strategies) it uses, by role. It is one more leaderboard row."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    members: dict[str, str] = Field(min_length=1, description="role -> model or strategy name")
    options: dict[str, Any] = Field(default_factory=dict)
    description: str = ""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from llmbench.strategies.registry import STRATEGIES

        if kind not in STRATEGIES:
            raise ValueError(f"unknown strategy kind {kind!r}; {did_you_mean(kind, STRATEGIES)}")
        return kind

    @model_validator(mode="after")
    def _kind_accepts(self) -> StrategySpec:
        from llmbench.strategies.registry import strategy_class

        strategy_class(self.kind).check(self)
        return self

    @property
    def provider(self) -> str:
        """Where a model row says its provider, a strategy says its kind."""
        return f"strategy:{self.kind}"

    @property
    def model(self) -> str:
        return ", ".join(f"{role}={name}" for role, name in self.members.items())


Entrant = ModelSpec | StrategySpec


class ExecutionSpec(_Strict):
    concurrency: int = Field(default=4, ge=1, le=1024)
    limit: int | None = Field(default=None, ge=1, description="first N samples of each task")
    seed: int = 1234
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    response_cache: bool = Field(default=True, description="reuse answers already paid for")
    max_cost_usd: float | None = Field(
        default=None, gt=0, description="stop sending requests before this spend is crossed"
    )
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="abort a step once this share of requests failed"
    )
    cache_dir: str | None = Field(
        default=None, description="response cache folder; default ~/.cache/llmbench/responses"
    )


class TrackingSpec(_Strict):
    experiment: str = "llmbench"
    uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else a local sqlite store",
    )
    artifact_location: str | None = None


class StatsSpec(_Strict):
    """Bootstrap settings for every confidence interval and paired test in the report."""

    resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0


def _cycle_through(start: str, strategies: dict[str, StrategySpec]) -> list[str] | None:
    """A path of members from strategy ``start`` back to itself, if there is one."""

    def walk(name: str, path: list[str]) -> list[str] | None:
        for member in strategies[name].members.values():
            if member == start:
                return [*path, member]
            if member in strategies and member not in path:
                found = walk(member, [*path, member])
                if found:
                    return found
        return None

    return walk(start, [start])


class BenchConfig(_Strict):
    name: str = Field(default="bench", pattern=NAME_PATTERN)
    models: list[ModelSpec] = Field(min_length=1)
    strategies: list[StrategySpec] = Field(
        default_factory=list,
        description="routers, cascades ...: models built from the models above, ranked beside them",
    )
    judges: list[ModelSpec] = Field(
        default_factory=list, description="models that grade answers; not on the leaderboard"
    )
    tasks: list[TaskSpec] = Field(min_length=1)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    stats: StatsSpec = Field(default_factory=StatsSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)

    @model_validator(mode="after")
    def _unique_names(self) -> BenchConfig:
        for kind, names in (
            (
                "model, strategy or judge",
                [
                    *(m.name for m in self.models),
                    *(s.name for s in self.strategies),
                    *(j.name for j in self.judges),
                ],
            ),
            ("task", [t.name for t in self.tasks]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"two {kind}s are named {name!r}; names must be unique")
                seen.add(name)
        return self

    @model_validator(mode="after")
    def _judges_exist(self) -> BenchConfig:
        graders = {m.name for m in (*self.judges, *self.models)}
        models = {m.name for m in self.models} | {s.name for s in self.strategies}
        for index, task in enumerate(self.tasks):
            judge = task.judge
            if judge is None:
                continue
            for name in judge.panel:
                if name not in graders:
                    raise ValueError(
                        f"tasks.{index}.judge.panel: no judge or model named {name!r}; "
                        f"add it under 'judges:' ({did_you_mean(name, graders)})"
                    )
            if judge.mode == "pairwise" and len(models) < 2:
                raise ValueError(
                    f"tasks.{index}.judge: pairwise judging compares models; it needs two "
                    f"or more models or strategies, this config has {len(models)}"
                )
            if judge.baseline is not None and judge.baseline not in models:
                raise ValueError(
                    f"tasks.{index}.judge.baseline: no model or strategy named "
                    f"{judge.baseline!r}; "
                    f"{did_you_mean(judge.baseline, models)}"
                )
        return self

    @model_validator(mode="after")
    def _strategies_resolve(self) -> BenchConfig:
        """Every member names a model or strategy of this config, and no strategy is built,
        through its members, from itself."""
        models = {m.name for m in self.models}
        strategies = {s.name: s for s in self.strategies}
        for index, strategy in enumerate(self.strategies):
            for role, member in strategy.members.items():
                if member not in models and member not in strategies:
                    raise ValueError(
                        f"strategies.{index}.members.{role}: no model or strategy named "
                        f"{member!r}; {did_you_mean(member, models | set(strategies))}"
                    )
        for index, strategy in enumerate(self.strategies):
            cycle = _cycle_through(strategy.name, strategies)
            if cycle:
                raise ValueError(f"strategies.{index}.members: a cycle: {' -> '.join(cycle)}")
        from llmbench.strategies.registry import strategy_class

        for index, strategy in enumerate(self.strategies):
            try:
                strategy_class(strategy.kind).check_config(strategy, self)
            except ValueError as exc:
                raise ValueError(f"strategies.{index}.{exc}") from None
        return self

    @property
    def entrants(self) -> list[Entrant]:
        """Everything ranked on the leaderboard: the models, then the strategies."""
        return [*self.models, *self.strategies]

    def entrant(self, name: str) -> Entrant:
        return next(e for e in self.entrants if e.name == name)

    def members_of(self, strategy: StrategySpec) -> list[ModelSpec]:
        """The models a strategy calls, directly or through member strategies, once each."""
        found: dict[str, ModelSpec] = {}
        pending = list(strategy.members.values())
        while pending:
            entrant = self.entrant(pending.pop(0))
            if isinstance(entrant, StrategySpec):
                pending.extend(entrant.members.values())
            else:
                found.setdefault(entrant.name, entrant)
        return list(found.values())

    def grader(self, name: str) -> ModelSpec:
        """A judge by name: from ``judges:`` first, else a model under test."""
        return next(m for m in (*self.judges, *self.models) if m.name == name)

    def fingerprint(self) -> str:
        """A stable hash of the resolved config, logged with every run."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def select(self, models: list[str] | None, tasks: list[str] | None) -> BenchConfig:
        """A copy restricted to the named models and tasks (the CLI's --models/--tasks)."""
        update: dict[str, Any] = {}
        entrants: dict[str, Any] = {e.name: e for e in self.entrants}
        for kind, wanted, items in (("models", models, entrants), ("tasks", tasks, None)):
            if not wanted:
                continue
            by_name = items if items is not None else {t.name: t for t in self.tasks}
            for name in wanted:
                if name not in by_name:
                    raise ConfigError(
                        f"no {'model or strategy' if kind == 'models' else 'task'} named "
                        f"{name!r} in the config",
                        field=f"--{kind}",
                        hint=did_you_mean(name, by_name),
                    )
            if kind == "tasks":
                update["tasks"] = [by_name[name] for name in wanted]
                continue
            # A selected strategy brings the models (and strategies) it is built from.
            chosen = self._with_members(wanted)
            order = [*wanted, *(e.name for e in self.entrants if e.name not in wanted)]
            picked = [self.entrant(name) for name in order if name in chosen]
            update["models"] = [e for e in picked if isinstance(e, ModelSpec)]
            update["strategies"] = [e for e in picked if isinstance(e, StrategySpec)]
        # Validated again: a selection can drop a pairwise task's baseline or second model.
        data = {
            **self.model_dump(mode="json"),
            **{k: [item.model_dump(mode="json") for item in v] for k, v in update.items()},
        }
        try:
            return BenchConfig.model_validate(data)
        except ValidationError as exc:
            loc, message = format_validation_error(exc)
            raise ConfigError(
                message,
                field=loc or None,
                hint="--models / --tasks left the config inconsistent; select other models",
            ) from None

    def _with_members(self, names: list[str]) -> set[str]:
        chosen: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name in chosen:
                continue
            chosen.add(name)
            entrant = self.entrant(name)
            if isinstance(entrant, StrategySpec):
                pending.extend(entrant.members.values())
        return chosen

    def with_limit(self, limit: int | None) -> BenchConfig:
        if limit is None:
            return self
        return self.model_copy(
            update={"execution": self.execution.model_copy(update={"limit": limit})}
        )


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


def format_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of the first error, readable by someone who wrote the YAML."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field; remove it or check its spelling"
    elif first["type"] == "missing":
        message = "required field is missing"
    count = len(exc.errors())
    if count > 1:
        message += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return loc, message


def _is_union_tag(part: Any) -> bool:
    return (isinstance(part, str) and part in EXTRACTOR_TYPES) or part in ("str", "dict[str,any]")


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
    """Make a task's file paths absolute: data sources, the judge's prompt and human labels."""
    judge: dict[str, Any] = task["judge"] if isinstance(task.get("judge"), dict) else {}
    for holder in (
        task.get("source"),
        (task.get("fewshot") or {}).get("source"),
        judge.get("human_labels"),
    ):
        if isinstance(holder, dict) and isinstance(holder.get("path"), str):
            holder["path"] = str((base_dir / os.path.expandvars(holder["path"])).resolve())
    if isinstance(judge.get("prompt"), str):
        judge["prompt"] = str((base_dir / os.path.expandvars(judge["prompt"])).resolve())


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
    return task


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
    if model.price is not None:
        return model
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
    return model.model_copy(update={"price": entry})


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
        threshold = (
            (strategy.get("options") or {}).get("threshold") if isinstance(strategy, dict) else None
        )
        if isinstance(threshold, dict) and isinstance(threshold.get("path"), str):
            threshold["path"] = str((base_dir / os.path.expandvars(threshold["path"])).resolve())

    tasks: list[Any] = []
    entries = raw.get("tasks")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(entry, str):
            tasks.append(load_task_file(base_dir / entry))
        elif isinstance(entry, dict):
            entry = dict(entry)
            _resolve_source_paths(entry, base_dir)
            tasks.append(
                _validate(TaskSpec, entry, config_path, f"fix the inline task at tasks.{index}")
            )
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
    table = load_prices(prices_file)
    models = [_resolve_price(m, table, prices_file) for m in config.models]
    judges = [_resolve_price(m, table, prices_file) for m in config.judges]
    return config.model_copy(update={"models": models, "judges": judges})
