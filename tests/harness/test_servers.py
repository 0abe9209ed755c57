"""Server processes: started and awaited, and stopped with everything they forked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.net import free_port, port_open
from harness.servers import Server, postgres_accepts, running
from harness.wait import wait_for

# A server that forks a worker into its own process group, says the worker's pid, then listens.
FORKING_SERVER = """
import signal, socket, subprocess, sys, time
if sys.argv[3] == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen(["sleep", "300"])
open(sys.argv[2], "w").write(str(worker.pid))
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
time.sleep(300)
"""


def _gone(pid: int) -> bool:
    """No such process, or one that has exited and waits to be reaped (its parent is gone too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _argv(port: int, pid_file: Path, mode: str = "plain") -> list[str]:
    return [sys.executable, "-c", FORKING_SERVER, str(port), str(pid_file), mode]


def test_the_server_and_the_workers_it_forked_are_stopped_when_the_block_ends(tmp_path: Path) -> None:
    port, pid_file = free_port(), tmp_path / "worker.pid"
    with running(_argv(port, pid_file), lambda: port_open(port), log=tmp_path / "server.log") as process:
        assert port_open(port)
        worker = int(pid_file.read_text())
        assert not _gone(worker)
    assert process.poll() is not None
    wait_for(lambda: _gone(worker), f"the forked worker {worker} to be gone", timeout=10)


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    port, pid_file = free_port(), tmp_path / "worker.pid"
    argv = _argv(port, pid_file, "ignore-sigterm")
    with running(argv, lambda: port_open(port), grace=0.5) as process:
        worker = int(pid_file.read_text())
    assert process.returncode == -9
    wait_for(lambda: _gone(worker), f"the forked worker {worker} to be gone", timeout=10)


def test_a_server_that_exits_before_it_is_ready_fails_at_once_naming_it(tmp_path: Path) -> None:
    server = Server([sys.executable, "-c", "raise SystemExit(3)"], name="the broken server", log=tmp_path / "b.log")
    with pytest.raises(RuntimeError, match=r"the broken server \(log: .*b\.log\) exited with code 3"):
        server.start(lambda: False, timeout=60)


def test_a_missing_binary_says_how_to_install_it() -> None:
    with pytest.raises(RuntimeError, match="no-such-server-binary is not installed: apt-get install it"):
        Server(["no-such-server-binary"], hint="apt-get install it")


def test_a_server_in_the_callers_group_is_stopped_alone(tmp_path: Path) -> None:
    """Without a session of its own the server shares the caller's process group: only it is signalled."""
    port, pid_file = free_port(), tmp_path / "worker.pid"
    server = Server(_argv(port, pid_file), new_session=False)
    process = server.start(lambda: port_open(port))
    worker = int(pid_file.read_text())
    try:
        server.stop(grace=10)
        assert process.returncode is not None
        assert not _gone(worker), "the caller's process group was left alone"
    finally:
        subprocess.run(["kill", str(worker)], check=False)


@pytest.mark.integration
def test_postgres_accepts_only_where_a_server_takes_connections(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    assert postgres_accepts(int(make_url(postgres_url).port or 0))
    assert not postgres_accepts(free_port()), "nothing listens there"
