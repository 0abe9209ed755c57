"""Loopback ports and the probes a server's readiness is judged by.

Every server the tools start listens on 127.0.0.1 only, on a port the system handed out a moment
before: runs in parallel (tests, a benchmark beside a simulation) never fight over a fixed port.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now, from the system's ephemeral range.

    The socket that found it is closed before returning, so the caller's server can bind it; another
    process could take it in between, which the ephemeral range makes unlikely.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` different free ports (:func:`free_port`), found with their sockets all open at once:
    one at a time, the system may hand a port closed a moment before out again, and a server given
    the same port twice fails to start."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``port``: the readiness of a server without a
    health route."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200: the readiness of a server with a health route, which a
    listening port alone does not prove (the app may still be loading)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
