"""Ports and health checks for the dashboard servers (loopback only)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Something already accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def responds(url: str) -> bool:
    """``url`` answers 200 within a few seconds."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until_healthy(url: str, still_starting: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``url`` until it answers 200 (True), ``still_starting()`` turns False or
    ``timeout_s`` passes (False). A server on a busy machine may take a minute to import."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if responds(url):
            return True
        if not still_starting():
            return False
        time.sleep(0.5)
    return responds(url)
