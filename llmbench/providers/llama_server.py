"""llama.cpp's own ``llama-server`` as a child process: one per (model file, settings) per
process, started when a run first needs it and stopped when the process ends, however it ends.

``scripts/build_llama_server.sh`` (called by ``scripts/install.sh``) builds the binary once per
machine from the llama-cpp-python sdist that requirements.lock pins, so both engines run the
same llama.cpp. The server is stopped by ``atexit`` on a normal exit and by the kernel when
this process dies any other way (``kill -9`` included): it is started with
``PR_SET_PDEATHSIG``, from a thread that lives as long as the process, because the kernel
sends that signal when the *thread* that forked the child ends, and steps are threads.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import ctypes.util
import importlib.metadata
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import httpx

from llmbench.errors import MissingDependencyError, ProviderError
from llmbench.types import Completion, Request

if TYPE_CHECKING:
    from llmbench.providers.openai import OpenAIProvider
    from llmbench.schema import ModelSpec

logger = logging.getLogger("llmbench")

BINARY_VARIABLE = "LLMBENCH_LLAMA_SERVER"  # a llama-server binary to use instead of the cache
CACHE_VARIABLE = "LLMBENCH_LLAMA_SERVER_DIR"  # where build_llama_server.sh keeps its builds
START_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1


def server_binary() -> Path:
    """``$LLMBENCH_LLAMA_SERVER``, else the build for the installed llama-cpp-python's version
    (the one install.sh built), else the newest build in the cache."""
    explicit = os.environ.get(BINARY_VARIABLE, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not os.access(path, os.X_OK):
            raise MissingDependencyError(
                f"{BINARY_VARIABLE}={explicit} is not an executable file",
                hint=f"point {BINARY_VARIABLE} at a llama-server binary, or unset it",
            )
        return path
    cache = Path(
        os.environ.get(CACHE_VARIABLE, "").strip()
        or Path.home() / ".cache" / "llmbench" / "llama-server"
    )
    try:
        version: str | None = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = None
    built = cache / str(version) / "bin" / "llama-server"
    if version is not None and os.access(built, os.X_OK):
        return built
    others = sorted(cache.glob("*/bin/llama-server"), key=lambda p: p.stat().st_mtime)
    if others:
        return others[-1]
    raise MissingDependencyError(
        f"llama-server is not built (looked in {cache})",
        hint="run 'make install' or scripts/build_llama_server.sh (once per machine, about "
        "10 minutes), or use engine: in_process",
    )


@dataclass(frozen=True)
class ServerSettings:
    """What a server is started with; one server per distinct value, per process."""

    model: Path
    n_ctx: int
    threads: int
    threads_batch: int
    n_batch: int
    flash_attn: bool = True

    def arguments(self) -> list[str]:
        """Command-line settings; why each is chosen is in llamacpp.py's docstring."""
        return [
            *("--model", str(self.model)),
            *("--ctx-size", str(self.n_ctx)),
            *("--threads", str(self.threads)),
            *("--threads-batch", str(self.threads_batch)),
            *("--batch-size", str(self.n_batch)),
            *("--ubatch-size", str(self.n_batch)),
            *("--flash-attn", "on" if self.flash_attn else "off"),
            *("--parallel", "1"),
            *("--cache-reuse", "0"),
            *("--cache-ram", "0"),
            "--no-webui",
        ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_prctl: Any = None


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when this process dies."""
    global _prctl
    if not sys.platform.startswith("linux"):
        return None  # atexit alone
    if _prctl is None:  # looked up before the fork: the child only calls it
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    prctl, parent = _prctl, os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
            os._exit(127)  # no guard, or the parent died before it was set: do not run

    return preexec


class _Launcher:
    """Forks from one daemon thread that lives as long as the process (see the module's
    docstring: a server forked from a step's thread would die with that thread)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="llama-server-launcher", daemon=True
                )
                self._thread.start()
        done: Future[Any] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as error:  # handed to the caller
                done.set_exception(error)


_LAUNCHER = _Launcher()


class LlamaServer:
    """One running ``llama-server`` on a free loopback port, its log in a file."""

    def __init__(self, settings: ServerSettings, arguments: Sequence[str] | None = None) -> None:
        """``arguments``: a command line instead of the settings' (benchmarks/local_engine.py
        starts llama-server as a user would, with its own defaults)."""
        self.settings = settings
        self.arguments = list(arguments if arguments is not None else settings.arguments())
        self.binary = server_binary()
        self.folder = Path(tempfile.mkdtemp(prefix="llmbench-llama-server-"))
        self.log_path = self.folder / f"{settings.model.stem}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until ``/health`` answers; a port taken meanwhile: another."""
        for _attempt in range(3):
            self.port = _free_port()
            argv = [str(self.binary), *self.arguments]
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
            self._log = log = self.log_path.open("ab")  # a file, not a pipe: a full one blocks

            def spawn(argv: list[str] = argv, log: BinaryIO = log) -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent(),
                )

            self.process = _LAUNCHER.run(spawn)
            logger.info(
                "llama-server for %s on port %d (pid %d), log: %s",
                self.settings.model.name,
                self.port,
                self.process.pid,
                self.log_path,
            )
            if self._wait_healthy():
                return
            self.stop()
            if "bind" not in self.log_tail().lower():
                break
        tail = self.log_tail()
        raise ProviderError(
            f"llama-server did not start for {self.settings.model}: {tail}",
            hint=f"its log: {self.log_path}",
        )

    def _wait_healthy(self) -> bool:
        """True once ``/health`` says ok; False if the process exited first."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.05)
        return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def discard_log(self) -> None:
        """Remove its log folder: a server that ran to a normal stop leaves nothing behind
        (one that failed to start or died keeps its log, which the error names)."""
        shutil.rmtree(self.folder, ignore_errors=True)


_SERVERS: dict[ServerSettings, LlamaServer] = {}
_SERVERS_LOCK = threading.Lock()


def shared_server(settings: ServerSettings) -> LlamaServer:
    """The process's server for these settings: started on first use (blocking: call it in
    a thread), started again if it died."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(settings)
        if server is None or not server.running():
            if server is not None:
                logger.warning(
                    "llama-server for %s had exited; starting it again: %s",
                    settings.model.name,
                    server.log_tail(300),
                )
            server = LlamaServer(settings)
            server.start()
            _SERVERS[settings] = server
        return server


def running_pids() -> list[int]:
    with _SERVERS_LOCK:
        return [s.process.pid for s in _SERVERS.values() if s.process and s.running()]


@atexit.register
def stop_servers() -> None:
    """Stop every server this process started (a normal exit; the kernel does it otherwise),
    removing the logs of those still running: they ran as they should."""
    with _SERVERS_LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for server in servers:
        healthy = server.running()
        server.stop()
        if healthy:
            server.discard_log()


class LocalTurn:
    """One local-model request at a time, process-wide, across event loops.

    Steps are threads, each with its own event loop, and local models share this machine's
    cores: requests of two models at once gain no throughput and inflate each one's latency
    (and so its compute-time cost), and a request queued inside a server would count its
    wait as latency. An ``asyncio.Lock`` belongs to one loop, a ``threading.Lock`` would block
    one; this hands the turn to the next waiter's loop, first come first served.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, turn))
        try:
            await turn
        except asyncio.CancelledError:
            with self._mutex:
                if (loop, turn) in self._waiters:
                    self._waiters.remove((loop, turn))  # never handed the turn
                    raise
            if not turn.cancelled():
                self._release()  # handed the turn, then cancelled: pass it on
            raise  # (a cancelled future handed the turn: _wake passes it on)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        with self._mutex:
            while self._waiters:
                loop, turn = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._wake, turn)
                    return
                except RuntimeError:  # that loop is closed: the next waiter
                    continue
            self._held = False

    def _wake(self, turn: asyncio.Future[None]) -> None:
        if turn.cancelled():
            self._release()
        else:
            turn.set_result(None)


LOCAL_TURN = LocalTurn()


class ServerEngine:
    """One provider's client of the process's server for its settings: the
    ``openai_compatible`` provider's code (the openai SDK, its retry rules) pointed at the
    server, one request at a time.

    Not streamed: on a machine whose cores the server's threads use, reading a stream's
    chunks through the SDK takes CPU from generation (its client CPU per request halves
    unstreamed; under load, streamed, llmbench ran at 0.46-0.78 of a bare loop on the same
    server, unstreamed at 1.07-1.19: benchmarks/local_engine.py --streamed). The time to first token
    comes from the server's own ``timings`` instead (``server_ttft``: wall latency less the
    time spent on the tokens after the first); with the turn held and one slot there is no
    queue in it, so it is the prompt's evaluation plus the first token and the round trip,
    as a stream would have measured it."""

    def __init__(
        self,
        spec: ModelSpec,
        settings: ServerSettings,
        mode: Literal["chat", "completion"],
        model_version: str,
        extra_body: dict[str, Any],
    ) -> None:
        self.spec, self.settings, self.mode = spec, settings, mode
        self.model_version = model_version
        self.extra_body = extra_body
        self.server: LlamaServer | None = None
        self._client: OpenAIProvider | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _connected(self) -> OpenAIProvider:
        """The client, for a running server (started, or started again, off the loop), on
        this event loop (an HTTP client belongs to the loop it was made on)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            self._client = None  # left unclosed by a loop that has ended: a new one here
        if self._client is None or self.server is None or not self.server.running():
            if self._client is not None:
                await self._client.aclose()
            self._loop = loop
            self.server = await asyncio.to_thread(shared_server, self.settings)
            from llmbench.providers.openai import OpenAICompatibleProvider
            from llmbench.schema import ModelSpec

            served = ModelSpec(
                name=self.spec.name,
                provider="openai_compatible",
                model=self.spec.model,
                mode=self.mode,
                params=self.spec.params,
                base_url=f"{self.server.base_url}/v1",
                stream=False,  # the time to first token from the reply's timings
                options={
                    "reasoning": False,
                    "timeout_s": 600.0,  # one request at a time: no queue to wait in
                    "extra_body": self.extra_body,
                },
            )
            self._client = OpenAICompatibleProvider(served)
        return self._client

    async def generate(self, request: Request) -> Completion:
        async with LOCAL_TURN:
            client = await self._connected()
            completion = await client.generate(request)
        completion.model_version = self.model_version
        return completion

    def retryable(self, error: BaseException) -> bool:
        return self._client is not None and self._client.retryable(error)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
