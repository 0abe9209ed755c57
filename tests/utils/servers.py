"""Real servers for tests, started from their binaries on free loopback ports.

The parts are :mod:`harness`'s, shared with the benchmarks and the simulation: free ports, waiting
for a condition, and server processes stopped with their process group.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.net import free_port as free_port
from harness.net import port_open
from harness.servers import postgres_bin as postgres_bin
from harness.servers import running, wait_until_ready
from harness.wait import wait_for as wait_for


def answered(check: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    """The first truthy value of ``check()``, asked every ``interval`` seconds; a request to a server
    that does not answer yet (``requests.RequestException``) counts as not yet. After ``timeout``
    seconds, :class:`TimeoutError` names ``what`` and the last value or error seen."""
    import requests

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except requests.RequestException as error:
            last = error
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout:g} s (last: {last})")


MISSING_HINT = "run infra/scripts/test-servers.sh (as root it installs the test servers from Debian's packages)"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Return once something listens on ``port``; fail at once if ``process`` exits first."""
    wait_until_ready(process, lambda: port_open(port), f"the server on port {port}", timeout)


@contextlib.contextmanager
def server_process(
    argv: list[str], port: int, timeout: float = 30.0, log: Path | None = None, **popen: Any
) -> Iterator[None]:
    """Run a real server binary on ``port`` for the duration of the block; its output goes to ``log``.

    ``start_new_session=True`` (a server that forks its workers) stops its whole process group at the
    end; otherwise the server stays in the test's group and only its own process is stopped.
    """
    new_session = bool(popen.pop("start_new_session", False))
    with running(
        argv,
        lambda: port_open(port),
        timeout=timeout,
        grace=10.0,
        log=log,
        new_session=new_session,
        hint=MISSING_HINT,
        **popen,
    ):
        yield


def moto_client(endpoint: str, secret: str = "test") -> Any:
    """A boto3 S3 client of the moto server at ``endpoint`` (moto takes any credentials)."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key=secret, region_name="us-east-1"
    )
