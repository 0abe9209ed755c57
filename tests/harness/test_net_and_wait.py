"""Free ports and waiting for a condition: what every server start of the tools rests on."""

from __future__ import annotations

import socket

import pytest

from harness.net import free_port, free_ports, port_open
from harness.wait import wait_for


def test_free_port_gives_a_port_a_server_can_bind_and_then_is_open() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))  # nothing holds it: the finder's own socket is closed
        assert not port_open(port)  # bound, not yet listening
        server.listen()
        assert port_open(port)


def test_wait_for_returns_as_soon_as_the_condition_holds() -> None:
    calls = []

    def third_time() -> bool:
        calls.append(None)
        return len(calls) == 3

    wait_for(third_time, "the third call", timeout=30, interval=0.001)
    assert len(calls) == 3


def test_wait_for_names_what_never_happened() -> None:
    calls = []

    def never() -> bool:
        calls.append(None)
        return False

    with pytest.raises(TimeoutError, match=r"timed out after 0\.05 s waiting for the moon to rise"):
        wait_for(never, "the moon to rise", timeout=0.05, interval=0.001)
    assert len(calls) > 1, "the condition is asked again until the deadline"


def test_a_condition_that_raises_ends_the_wait_at_once() -> None:
    def gone() -> bool:
        raise RuntimeError("the server exited")

    with pytest.raises(RuntimeError, match="the server exited"):
        wait_for(gone, "a server that will never come", timeout=30)


def test_ports_found_together_are_all_different_and_free() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert not any(port_open(port) for port in ports)
