"""Registry of metrics, each a Hugging Face ``evaluate`` module under ``metrics/``.

Modules are loaded with ``evaluate.load(<local path>)``, so scoring works offline (loading
``"rouge"`` by Hub name needs the network). ``evaluate`` is imported only when a metric is
computed, so validating a config stays fast.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.hf_imports import HF_LOCK
from llmbench.scoring import bfcl

if TYPE_CHECKING:
    import evaluate

    from llmbench.types import Completion, Sample

METRICS_DIR = Path(__file__).resolve().parents[2] / "metrics"


@dataclass(frozen=True)
class MetricDef:
    """What a metric is called in YAML, which values it reports and which options it takes."""

    name: str
    keys: tuple[str, ...]
    options: frozenset[str] = field(default_factory=frozenset)
    higher_is_better: bool = True  # read by ranks, paired "better" and the overall score
    scale: float = 1.0  # the value of a perfect score (sacrebleu reports 0-100)
    # A corpus score (sacrebleu): the aggregate is not the mean of the per-sample scores, so
    # intervals and paired tests resample its sufficient statistics (scoring/corpus.py).
    corpus: bool = False
    # Compares an answer's tool calls with the sample's ``expected`` payload in plain Python
    # (scoring/bfcl.py), not text with references through an ``evaluate`` module.
    structured: bool = False

    def output_keys(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        if self.name == "rouge" and options.get("rouge_types"):
            return tuple(options["rouge_types"])
        return self.keys


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef(
            "exact_match",
            ("exact_match",),
            frozenset({"ignore_case", "ignore_punctuation", "squad_normalize"}),
        ),
        MetricDef("accuracy", ("accuracy",)),
        MetricDef("token_f1", ("token_f1",)),
        MetricDef(
            "rouge",
            ("rouge1", "rouge2", "rougeL", "rougeLsum"),
            frozenset({"rouge_types", "use_stemmer"}),
        ),
        MetricDef("bleu", ("bleu",), scale=100.0, corpus=True),
        MetricDef("chrf", ("chrf",), scale=100.0, corpus=True),
        # Translation edit rate: edits per reference word, x100; 0 is perfect, can pass 100.
        MetricDef("ter", ("ter",), higher_is_better=False, scale=100.0, corpus=True),
        # BFCL's AST rule over the answer's tool calls: 1 when they match a possible answer.
        MetricDef("bfcl_ast", ("bfcl_ast",), structured=True),
    )
}


@dataclass(frozen=True)
class MetricResult:
    aggregate: dict[str, float]
    per_sample: dict[str, list[float]]


_PER_THREAD = threading.local()


def load_module(name: str) -> evaluate.EvaluationModule:
    """A metric instance for this thread only, kept in memory.

    Scoring steps run in parallel threads. An ``evaluate`` module buffers predictions in its
    instance and, by default, in an Arrow cache file named after the metric, so a shared
    instance or file would mix or corrupt the inputs of concurrent steps. Loading (which
    copies and imports the module) is serialised."""
    with HF_LOCK:  # importing evaluate imports transformers: see llmbench.hf_imports
        import evaluate

    modules: dict[str, evaluate.EvaluationModule] = _PER_THREAD.__dict__.setdefault("modules", {})
    if name not in modules:
        with HF_LOCK:
            modules[name] = evaluate.load(
                str(METRICS_DIR / name), keep_in_memory=True, experiment_id=uuid.uuid4().hex
            )
    return modules[name]


def compute_metric(
    name: str,
    options: Mapping[str, Any],
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
) -> MetricResult:
    """Score predictions; an empty input gives NaN aggregates (nothing was scorable)."""
    definition = METRICS[name]
    keys = definition.output_keys(options)
    if not predictions:
        return MetricResult({k: math.nan for k in keys}, {k: [] for k in keys})
    raw = load_module(name).compute(
        predictions=list(predictions),
        references=[list(r) for r in references],
        **dict(options),
    )
    assert raw is not None
    per_sample = {k: [float(v) for v in raw["per_sample"][k]] for k in keys}
    return MetricResult({k: float(raw[k]) for k in keys}, per_sample)


def compute_structured(
    name: str, samples: Sequence[Sample], completions: Sequence[Completion]
) -> MetricResult:
    """Score a structured metric's answers (a failed request, when scored, is wrong: its
    empty answer would otherwise pass an item whose right answer is no call)."""
    if name != "bfcl_ast":
        raise KeyError(f"{name!r} is not a structured metric")
    values = [
        0.0
        if c.error is not None
        else float(bfcl.ast_match(s.tools, c.tool_calls, s.expected or []))
        for s, c in zip(samples, completions, strict=True)
    ]
    mean = sum(values) / len(values) if values else math.nan
    return MetricResult({name: mean}, {name: values})
