"""The server engine's parts that need no server: its options, the GGUF header reader, where
the binary is looked for, and the process-wide turn local requests take."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmbench.errors import MissingDependencyError
from llmbench.providers.llama_server import LocalTurn, ServerSettings, server_binary
from llmbench.providers.llamacpp import LlamaCppOptions, gguf_strings


def test_each_engine_gets_its_own_prompt_cache_default() -> None:
    assert LlamaCppOptions().prompt_cache == "lines"
    assert LlamaCppOptions(engine="server").prompt_cache == "off"
    assert LlamaCppOptions(engine="server", prefix_cache="any").prompt_cache == "any"
    with pytest.raises(ValidationError, match="in-process only"):
        LlamaCppOptions(engine="server", prefix_cache="lines")
    with pytest.raises(ValidationError):
        LlamaCppOptions(engine="ollama")  # type: ignore[arg-type]


def test_server_threads_default_to_half_the_cores_but_two() -> None:
    assert LlamaCppOptions(n_threads=3).threads() == 3
    cores = os.cpu_count() or 1
    assert LlamaCppOptions().threads() == max(cores // 2, min(2, cores), 1)


def test_one_slot_and_no_cache_reuse() -> None:
    arguments = ServerSettings(Path("m.gguf"), 2048, 2, 2, 512).arguments()
    pairs = dict(zip(arguments[::2], arguments[1::2], strict=False))
    assert pairs["--parallel"] == "1"
    assert pairs["--cache-reuse"] == pairs["--cache-ram"] == "0"
    assert pairs["--batch-size"] == pairs["--ubatch-size"] == "512"


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def test_gguf_header_strings_are_read_past_arrays_and_numbers(tmp_path: Path) -> None:
    def entry(key: str, kind: int, payload: bytes) -> bytes:
        return _gguf_string(key) + struct.pack("<I", kind) + payload

    entries = [
        entry("general.architecture", 8, _gguf_string("llama")),
        entry("llama.context_length", 4, struct.pack("<I", 2048)),
        entry("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + b"\0" * 12),
        entry(
            "tokenizer.ggml.tokens",
            9,
            struct.pack("<IQ", 8, 2) + _gguf_string("<s>") + _gguf_string("hi"),
        ),
        entry("general.file_type", 12, struct.pack("<d", 1.0)),
        entry("general.name", 8, _gguf_string("Tiny Test")),
        entry("tokenizer.chat_template", 8, _gguf_string("{{ messages }}")),
    ]
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries))
    wanted = frozenset({"general.name", "tokenizer.chat_template"})
    assert gguf_strings(path, wanted) == {
        "general.name": "Tiny Test",
        "tokenizer.chat_template": "{{ messages }}",
    }
    assert gguf_strings(path, frozenset({"missing"})) == {}


def test_the_binary_named_must_be_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("")
    monkeypatch.setenv("LLMBENCH_LLAMA_SERVER", str(binary))
    with pytest.raises(MissingDependencyError, match="not an executable"):
        server_binary()
    binary.chmod(0o755)
    assert server_binary() == binary


def test_an_empty_cache_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBENCH_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("LLMBENCH_LLAMA_SERVER_DIR", str(tmp_path))
    with pytest.raises(MissingDependencyError) as raised:
        server_binary()
    assert "build_llama_server.sh" in str(raised.value.hint)
    built = tmp_path / "0.0.1" / "bin" / "llama-server"  # another version's build
    built.parent.mkdir(parents=True)
    built.write_text("")
    built.chmod(0o755)
    assert server_binary() == built


def test_one_local_request_at_a_time_across_event_loops() -> None:
    """Steps are threads with loops of their own: the turn holds across them, and a waiter
    cancelled in the queue does not keep it."""
    turn = LocalTurn()
    holders = 0
    most = 0
    entered = 0
    count = threading.Lock()

    async def request() -> None:
        nonlocal holders, most, entered
        async with turn:
            with count:
                holders += 1
                most = max(most, holders)
                entered += 1
            try:
                for _ in range(3):
                    await asyncio.sleep(0)  # let the other requests of this loop queue up
            finally:
                with count:
                    holders -= 1

    async def step() -> None:
        waiting = asyncio.ensure_future(request())
        await asyncio.sleep(0)
        waiting.cancel()  # queued behind the others, or already through: either way
        await asyncio.gather(*(request() for _ in range(20)))
        await asyncio.gather(waiting, return_exceptions=True)

    threads = [threading.Thread(target=asyncio.run, args=(step(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert 80 <= entered <= 84
    asyncio.run(request())  # released: a new loop gets the turn at once


def test_flash_attention_is_set_explicitly() -> None:
    """llama-server's own choice is ``auto``; the engine states it, as the in-process one does."""
    on = ServerSettings(Path("m.gguf"), 2048, 2, 2, 512).arguments()
    off = ServerSettings(Path("m.gguf"), 2048, 2, 2, 512, flash_attn=False).arguments()
    assert dict(zip(on[::2], on[1::2], strict=False))["--flash-attn"] == "on"
    assert dict(zip(off[::2], off[1::2], strict=False))["--flash-attn"] == "off"
