"""A lean loopback LLM API for throughput measurements (not a test double).

Raw asyncio HTTP/1.1 with keep-alive: each request is answered with one fixed JSON body (an
OpenAI ``chat.completion`` on ``/v1/chat/completions``, an Anthropic ``message`` on
``/v1/messages``; a fixed SSE stream when the body asks for ``"stream": true``) after
``latency`` seconds on the event loop's timer, the same wait as ``asyncio.sleep(latency)``.
It parses only the request line, ``Content-Length`` and whether the body streams, so its own
CPU per request is small next to any SDK client's: what a benchmark measures is the client.

It runs in a process of its own (``spawn``), like a real API on another machine; in a thread
of the client's process its CPU would share the client's GIL. ``LeanServer`` is the parent's
handle: its URL, ``clear()``, and ``stats()`` (requests seen, the span from the first to the
last arrival, peak in flight, the server's CPU seconds since ``clear``).

The wire-format test double with scripted replies and faults stays
``tests/fakes/provider_server.py``; ``benchmarks/throughput.py --server fake`` selects it.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

TEXT = "The answer is 42."
INPUT_TOKENS, OUTPUT_TOKENS = 12, 6


def _http(body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: keep-alive\r\n\r\n"
        + body
    )


def _openai_body(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-lean",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "system_fingerprint": "fp_lean",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TEXT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": INPUT_TOKENS,
                "completion_tokens": OUTPUT_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    ).encode()


def _openai_stream(model: str) -> bytes:
    head = {"id": "chatcmpl-lean", "object": "chat.completion.chunk", "created": 1_700_000_000}
    chunks: list[dict[str, Any]] = [
        {
            **head,
            "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}}],
        }
        for piece in ("The answer ", "is 42.")
    ]
    chunks.append(
        {**head, "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    usage = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}
    chunks.append({**head, "model": model, "choices": [], "usage": usage})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + (
        b"data: [DONE]\n\n"
    )


def _anthropic_body(model: str) -> bytes:
    return json.dumps(
        {
            "id": "msg_lean",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
        }
    ).encode()


RESPONSES = {
    (b"/v1/chat/completions", False): _http(_openai_body("gpt-4o-mini"), b"application/json"),
    (b"/v1/chat/completions", True): _http(_openai_stream("gpt-4o-mini"), b"text/event-stream"),
    (b"/v1/messages", False): _http(
        _anthropic_body("claude-3-haiku-20240307"), b"application/json"
    ),
}
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.count = 0
        self.in_flight = 0
        self.peak = 0


class _Protocol(asyncio.Protocol):
    def __init__(self, stats: Stats, latency: list[float]) -> None:
        self.stats = stats
        self.latency = latency  # a one-item list, so the parent can change it while serving
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            marker = head.lower().find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            path = head[: head.find(b"\r\n")].split(b" ")[1].split(b"?")[0]
            stream = b'"stream":true' in body.replace(b" ", b"")
            self._arrived()
            reply = RESPONSES.get((path, stream), NOT_FOUND)
            asyncio.get_running_loop().call_later(self.latency[0], self._answer, reply)

    def _arrived(self) -> None:
        stats = self.stats
        now = time.perf_counter()
        if stats.first is None:
            stats.first = now
        stats.last = now
        stats.count += 1
        stats.in_flight += 1
        stats.peak = max(stats.peak, stats.in_flight)

    def _answer(self, reply: bytes) -> None:
        self.stats.in_flight -= 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _serve(latency: float, conn: Connection) -> None:
    """The child process: serve on a free port and answer the parent's commands on a pipe."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the asyncio loop is fine, only a little more CPU per request
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stats = Stats()
        delay = [latency]
        server = await loop.create_server(
            lambda: _Protocol(stats, delay), "127.0.0.1", 0, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
        conn.send(f"http://127.0.0.1:{port}")
        cpu_at_clear = time.process_time()
        stopped = loop.create_future()

        def command() -> None:
            nonlocal cpu_at_clear
            name, argument = conn.recv()
            if name == "stop":
                stopped.set_result(None)
            elif name == "clear":
                stats.clear()
                cpu_at_clear = time.process_time()
                conn.send(None)
            elif name == "latency":
                delay[0] = argument
                conn.send(None)
            elif name == "stats":
                span = stats.last - stats.first if stats.first is not None else 0.0
                conn.send((stats.count, span, stats.peak, time.process_time() - cpu_at_clear))

        loop.add_reader(conn.fileno(), command)
        await stopped
        server.close()

    asyncio.run(main())


class LeanServer:
    """The lean server in a child process; the parent sees its URL and its figures."""

    def __init__(self, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(latency, child), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()

    def _ask(self, name: str, argument: Any = None) -> Any:
        self._conn.send((name, argument))
        return self._conn.recv()

    def clear(self) -> None:
        self._ask("clear")

    def set_latency(self, latency: float) -> None:
        self._ask("latency", latency)

    def stats(self) -> tuple[int, float, int, float]:
        """Requests seen, first-to-last arrival span, peak in flight, server CPU s since clear."""
        count, span, peak, cpu = self._ask("stats")
        return int(count), float(span), int(peak), float(cpu)

    def close(self) -> None:
        self._conn.send(("stop", None))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> LeanServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
