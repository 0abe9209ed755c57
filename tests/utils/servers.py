"""Real servers for tests, started from their binaries on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Where PostgreSQL's binaries are: the simulation's servers and the tests' find them the same way.
from simulation.stack import postgres_bin as postgres_bin

MISSING_HINT = "run infra/scripts/test-servers.sh (as root it installs the test servers from Debian's packages)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Return as soon as ``condition()`` holds; fail saying ``what`` did not happen within ``timeout``.

    For states another thread or process brings about (a request answered, a server back): a test
    waits for the state its assertions need rather than for a time that is usually long enough. The
    deadline only bounds a wait that would otherwise hang; it says nothing about speed.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {timeout:g} s"
        time.sleep(interval)


@contextlib.contextmanager
def server_process(
    argv: list[str], port: int, timeout: float = 30.0, log: Path | None = None, **popen: Any
) -> Iterator[None]:
    """Run a real server binary on ``port`` for the duration of the block; its output goes to ``log``."""
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise RuntimeError(f"{argv[0]} is not installed: {MISSING_HINT}")
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT if log else output, **popen)
        try:
            wait_for_port(port, process, timeout=timeout)
            yield
        finally:
            # A server that forks its workers (start_new_session=True): stop the whole group.
            if popen.get("start_new_session"):
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
            process.wait(timeout=10)


def moto_client(endpoint: str, secret: str = "test") -> Any:
    """A boto3 S3 client of the moto server at ``endpoint`` (moto takes any credentials)."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key=secret, region_name="us-east-1"
    )
