"""The benchmark configuration's schema: pydantic models with ``extra="forbid"``.

A leaf module: it imports no provider, strategy or pipeline code, so everything else can
import it without a cycle. What needs a registry (is the provider known, do its options fit,
does a strategy kind take these roles) is checked once, by the loader
(:func:`llmbench.config.check_registries`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

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
from llmbench.tools.spec import ToolsSpec
from llmbench.types import GenerationParams

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRICES_FILE = PROJECT_ROOT / "configs" / "prices.yaml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
logger = logging.getLogger("llmbench")
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
    cache_write_per_1m: float | None = Field(
        default=None,
        ge=0,
        description="prompt-cache writes, where the provider bills them apart (Anthropic: "
        "1.25x input when not given); otherwise they are billed as input",
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
        self,
        input_tokens: int,
        output_tokens: int,
        compute_s: float,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """USD for one request: tokens x price, or compute seconds x hourly rate.
        ``input_tokens`` counts every prompt token, cache reads and writes included."""
        if self.per_hour is not None:
            return self.per_hour * compute_s / 3600.0
        assert self.input_per_1m is not None and self.output_per_1m is not None
        cached_rate = self.cached_input_per_1m
        if cached_rate is None:
            cached_tokens, cached_rate = 0, 0.0
        write_rate = self.cache_write_per_1m
        if write_rate is None:
            cache_write_tokens, write_rate = 0, 0.0
        fresh = input_tokens - cached_tokens - cache_write_tokens
        return (
            fresh * self.input_per_1m
            + cached_tokens * cached_rate
            + cache_write_tokens * write_rate
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
    layout: Literal["rows", "squad"] = Field(
        default="rows",
        description="squad: a SQuAD-format JSON file, read as one row per question (id, "
        "question, answers, title, context, passage_id)",
    )

    @model_validator(mode="after")
    def _one_origin(self) -> SourceSpec:
        if (self.path is None) == (self.hf is None):
            raise ValueError("set exactly one of 'path' (local file) or 'hf' (Hub dataset id)")
        if self.layout == "squad" and (self.path is None or self.field is not None):
            raise ValueError("layout 'squad' reads a local SQuAD JSON file: set 'path', no 'field'")
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


class BfclSpec(_Strict):
    """A Berkeley Function Calling Leaderboard category: ``source.path`` holds its questions
    (JSON Lines: id, question turns, functions) and this its possible answers. Each item's
    conversation is asked with its functions as tools; ``bfcl_ast`` scores the calls."""

    possible_answer: str | None = Field(
        description="the possible_answer file, matched to the questions by id line by line; "
        "null: an irrelevance category, where the right answer is no call"
    )


class CorpusSpec(_Strict):
    """A file of passages to retrieve from, each with an id that is unique and stable (gold
    passage ids and the index cache refer to it). ``jsonl``: one passage per line, its id,
    text and optional title in the named fields; ``squad``: every paragraph of a SQuAD-format
    JSON file, its id ``<article title>#<paragraph index>``."""

    path: str
    format: Literal["jsonl", "squad"] = "jsonl"
    id_field: str = "id"
    text_field: str = "text"
    title_field: str | None = "title"


class RetrievalSpec(_Strict):
    """Retrieval-augmented prompts: each row's ``query`` is searched in ``corpus`` and the
    ``top_k`` passages are given to the task's templates as ``passages`` (each with id,
    title, text, score and rank), which decide how they enter the prompt."""

    corpus: CorpusSpec
    retriever: Literal["bm25", "dense", "hybrid"] = Field(
        default="bm25",
        description="bm25 (bm25s), dense (all-MiniLM-L6-v2 embeddings, cosine), or hybrid: "
        "reciprocal rank fusion of both",
    )
    top_k: int = Field(default=3, ge=1, le=100)
    query: str = Field(description="Jinja2 expression over a row: the text searched for")
    gold: str | None = Field(
        default=None,
        description="Jinja2 expression: the id (or list of ids) of the passages that hold the "
        "answer; needed by the retrieval metrics",
    )
    embedding_model: Literal["all-MiniLM-L6-v2"] = Field(
        default="all-MiniLM-L6-v2",
        description="dense and hybrid: the sentence-transformers model (shipped in a package)",
    )
    rrf_k: int = Field(
        default=60, ge=1, description="hybrid: the constant k of reciprocal rank fusion"
    )


class ReferenceSource(_Strict):
    """Reference answers kept in a file of their own (MT-Bench's
    reference_answer/gpt-4.jsonl), matched to the task's rows by a column both share. A row
    without a match has no reference: a judge grades it without one."""

    source: SourceSpec
    key: str = Field(description="the column both files hold, e.g. question_id")
    target: str = Field(
        description="Jinja2 expression over a reference row: its answer, or one per turn"
    )


class SampleSpec(_Strict):
    """The part of a task that decides what each model is asked: data and prompt.

    ``target``, ``sample_id`` and ``choices`` are Jinja2 *expressions* over a row
    (``answer``, ``'ABCD'[answer]``, ``[choice0, choice1]``); ``template`` and ``system`` are
    Jinja2 *templates* that can use the row's columns plus ``choices`` and ``letters``.
    ``turns``, an expression giving a list of texts, makes each row a conversation: its user
    turns asked one after another, each after the entrant's answer to the one before.
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
    template: str | None = Field(
        default=None, description="required unless the task is 'bfcl' or has 'turns'"
    )
    turns: str | None = Field(
        default=None,
        description="Jinja2 expression giving a conversation's user turns (a list of texts), "
        "asked in order, each after the entrant's own answer to the turn before",
    )
    references_from: ReferenceSource | None = Field(
        default=None, description="reference answers from another file, instead of 'target'"
    )
    fewshot: FewShotSpec | None = None
    subset: SubsetSpec | None = Field(
        default=None, description="keep one part of a seeded train/test split of the items"
    )
    bfcl: BfclSpec | None = Field(
        default=None, description="the rows are a BFCL category: its questions, tools, answers"
    )
    tools: ToolsSpec | None = Field(
        default=None,
        description="answer each item through an agent loop with these tools (local, Python, "
        "MCP) until a final answer, scored by the task's metrics",
    )
    retrieval: RetrievalSpec | None = Field(
        default=None, description="retrieve passages for each row; templates see 'passages'"
    )

    @model_validator(mode="after")
    def _fewshot_needs_target(self) -> SampleSpec:
        if self.fewshot is not None and self.target is None:
            raise ValueError("fewshot needs 'target': the answers shown after each example")
        if self.bfcl is None and self.template is None and self.turns is None:
            raise ValueError(
                "a task needs a 'template', 'turns' (a conversation's user turns) or 'bfcl' "
                "(the data's own questions)"
            )
        if self.target is not None and self.references_from is not None:
            raise ValueError("references come from 'target' or 'references_from', not both")
        rendered = (
            "template",
            "system",
            "target",
            "choices",
            "fewshot",
            "turns",
            "references_from",
        )
        if self.bfcl is not None and (extra := [f for f in rendered if getattr(self, f)]):
            raise ValueError(f"a bfcl task asks the data's own conversations: remove {extra[0]!r}")
        if self.bfcl is not None and self.retrieval is not None:
            raise ValueError("a bfcl task asks the data's own conversations: remove 'retrieval'")
        if self.fewshot is not None and self.retrieval is not None:
            raise ValueError("few-shot examples have no retrieved passages: remove 'fewshot'")
        if self.bfcl is not None and self.tools is not None:
            raise ValueError("a bfcl task scores calls to its data's own functions: remove 'tools'")
        if self.turns is not None and (
            extra := [f for f in ("template", "fewshot", "choices") if getattr(self, f)]
        ):
            raise ValueError(
                f"a conversation task asks the user turns 'turns' gives: remove {extra[0]!r}"
            )
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


class AnswerRelevanceSpec(_Strict):
    """RAGAS's answer relevance, asked of the same panel beside the task judge's grade: the
    judge writes ``strictness`` questions the answer answers and says whether it is
    noncommittal; the score is the mean cosine similarity of their embeddings
    (all-MiniLM-L6-v2) to the question's, 0 for a noncommittal answer."""

    strictness: int = Field(
        default=3, ge=1, le=10, description="questions generated per answer (RAGAS: 3)"
    )
    prompt: str | None = Field(
        default=None,
        description="Jinja2 template file replacing configs/prompts/answer_relevance.j2",
    )
    max_tokens: int = Field(default=256, ge=16)


class JudgeSpec(_Strict):
    """An LLM judge for a task: a rubric score, a reference-guided score, a pairwise
    preference judged in both orders, or faithfulness (how much of the answer the retrieved
    passages support). ``panel`` names judges (``judges:`` or ``models:``); with
    ``answer_relevance`` each also scores the answer's relevance (one more request per answer,
    from the same generations: a RAG task reports faithfulness and answer relevance in one run).
    """

    mode: Literal["rubric", "reference", "pairwise", "faithfulness"]
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
    answer_relevance: AnswerRelevanceSpec | None = Field(
        default=None, description="also score RAGAS answer relevance ({} for its defaults)"
    )

    @model_validator(mode="after")
    def _coherent(self) -> JudgeSpec:
        low, high = self.scale
        if low >= high:
            raise ValueError(f"scale: the lowest grade ({low}) must be below the highest ({high})")
        if len(set(self.panel)) != len(self.panel):
            raise ValueError("panel: a judge is listed twice")
        if self.mode == "pairwise" and (self.pass_fail or self.human_labels):
            raise ValueError("pass_fail and human_labels apply to rubric and reference judging")
        if self.answer_relevance is not None and self.mode == "pairwise":
            raise ValueError(
                "answer_relevance scores each answer on its own: use it with a rubric, "
                "reference or faithfulness judge, not pairwise"
            )
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
        structured = [m.name for m in self.metrics if METRICS[m.name].structured]
        calls = [name for name in structured if not METRICS[name].retrieval]
        if calls and self.bfcl is None:
            raise ValueError(f"{calls[0]} scores tool calls against a 'bfcl' task's answers")
        ranked = [name for name in structured if METRICS[name].retrieval]
        if ranked and (self.retrieval is None or self.retrieval.gold is None):
            raise ValueError(
                f"{ranked[0]} scores retrieved passages against gold ones: set 'retrieval' "
                "with its 'gold' expression"
            )
        for metric in self.metrics:
            k = metric.options.get("k")
            top_k = self.retrieval.top_k if self.retrieval else 0
            if k is not None and (
                not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= top_k
            ):
                raise ValueError(
                    f"metric {metric.name!r}: option k must be a whole number from 1 to "
                    f"retrieval.top_k ({top_k}), not {k!r}"
                )
        if self.judge and self.judge.mode == "faithfulness" and self.retrieval is None:
            raise ValueError(
                "judge mode 'faithfulness' checks answers against retrieved "
                "passages: set 'retrieval'"
            )
        needs_reference = [m.name for m in self.metrics if m.name not in structured] or (
            ["judge mode 'reference'"] if self.judge and self.judge.mode == "reference" else []
        )
        referenced = self.target is not None or self.references_from is not None
        if needs_reference and not referenced and not structured:
            raise ValueError(f"{needs_reference[0]} compares with a reference answer: set 'target'")
        if self.turns is not None and self.metrics:
            raise ValueError(
                "a conversation task ('turns') is judged turn by turn: remove 'metrics' "
                "(they score one answer against one reference)"
            )
        if self.turns is not None and self.judge is not None and self.judge.mode == "pairwise":
            raise ValueError(
                "a conversation task ('turns') is judged with mode 'rubric' or 'reference'"
            )
        if self.turns is not None and self.judge and self.judge.answer_relevance is not None:
            raise ValueError(
                "judge.answer_relevance scores a single answer to a single question: remove "
                "it from a conversation task ('turns')"
            )
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
        default=None,
        description="llamacpp: chat template or plain completion, default per model; "
        "openai-compatible servers: chat (/chat/completions) or completion (/completions)",
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
        description="ZenML secret whose keys (e.g. OPENAI_API_KEY) this model reads before "
        "the environment's (it alone: another model keeps the environment's)",
    )
    limits: RateLimits = Field(
        default_factory=RateLimits,
        description="concurrency / RPM / TPM for this model's endpoint (shared by models on it)",
    )
    price: PriceEntry | None = None

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
    tasks: list[str] | None = Field(
        default=None,
        description="the tasks it runs on (default: every task); a strategy on some tasks "
        "only has no overall score or rank",
    )

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
        return self

    @model_validator(mode="after")
    def _strategy_tasks_exist(self) -> BenchConfig:
        """A strategy's ``tasks`` name tasks of this config, and a strategy used as a member
        runs wherever the strategy using it runs (it answers there only if it has rows)."""
        names = [t.name for t in self.tasks]
        valid = ", ".join(names)
        for index, strategy in enumerate(self.strategies):
            if strategy.tasks is not None and not strategy.tasks:
                raise ValueError(
                    f"strategies.{index}.tasks: empty; name the tasks it runs on or leave "
                    f"'tasks:' out to run it on every task (the tasks are: {valid})"
                )
            for n, name in enumerate(strategy.tasks or []):
                if name in (strategy.tasks or [])[:n]:
                    raise ValueError(
                        f"strategies.{index}.tasks: {name!r} is listed twice; list each "
                        f"task once (the tasks are: {valid})"
                    )
                if name not in names:
                    close = did_you_mean(name, names)
                    close = f"; {close}" if close.startswith("did you mean") else ""
                    raise ValueError(
                        f"strategies.{index}.tasks: no task named {name!r}{close} (the tasks "
                        f"are: {valid})"
                    )
        strategies = {s.name: s for s in self.strategies}
        for index, strategy in enumerate(self.strategies):
            mine = self.tasks_of(strategy.name)
            for role, member in strategy.members.items():
                if member not in strategies:
                    continue
                missing = [t for t in mine if t not in self.tasks_of(member)]
                if missing:
                    raise ValueError(
                        f"strategies.{index}.tasks: runs on {', '.join(missing)}, where its "
                        f"member {role}={member!r} does not run; give {member!r} those tasks "
                        f"too or leave them out of {strategy.name!r}'s tasks (the tasks are: "
                        f"{valid})"
                    )
        for index, task in enumerate(self.tasks):
            baseline = task.judge.baseline if task.judge is not None else None
            if baseline is not None and not self.runs_on(baseline, task.name):
                raise ValueError(
                    f"tasks.{index}.judge.baseline: {baseline!r} does not run on task "
                    f"{task.name!r} (its strategies' tasks); pick an entrant that does"
                )
        return self

    @property
    def entrants(self) -> list[Entrant]:
        """Everything ranked on the leaderboard: the models, then the strategies."""
        return [*self.models, *self.strategies]

    def entrant(self, name: str) -> Entrant:
        return next(e for e in self.entrants if e.name == name)

    def tasks_of(self, entrant: str) -> list[str]:
        """The tasks an entrant runs on, in config order: a model's are every task, a
        strategy's its ``tasks:`` (default: every task)."""
        found = next((s for s in self.strategies if s.name == entrant), None)
        chosen = None if found is None else found.tasks
        return [t.name for t in self.tasks if chosen is None or t.name in chosen]

    def runs_on(self, entrant: str, task: str) -> bool:
        return task in self.tasks_of(entrant)

    def entrants_on(self, task: str) -> list[Entrant]:
        """The entrants with rows on ``task``, in leaderboard order."""
        return [e for e in self.entrants if self.runs_on(e.name, task)]

    def partial(self, entrant: str) -> bool:
        """Whether an entrant runs on only some tasks: it has no overall score or rank."""
        return len(self.tasks_of(entrant)) < len(self.tasks)

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
        if tasks:
            update["strategies"] = self._on_tasks(update.get("strategies", self.strategies), tasks)
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

    @staticmethod
    def _on_tasks(strategies: list[StrategySpec], tasks: list[str]) -> list[StrategySpec]:
        """The strategies restricted to the selected ``tasks``; one that runs on none of them
        is left out of the run, with a logged line (as are those built from it: a member
        strategy runs wherever its user does)."""
        kept = []
        for strategy in strategies:
            if strategy.tasks is None:
                kept.append(strategy)
                continue
            mine = [t for t in strategy.tasks if t in tasks]
            if mine:
                kept.append(strategy.model_copy(update={"tasks": mine}))
            else:
                logger.info(
                    "strategy %s left out: it runs on %s, not on --tasks %s",
                    strategy.name,
                    ", ".join(strategy.tasks),
                    ", ".join(tasks),
                )
        return kept

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
