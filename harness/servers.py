"""Real server processes: started from their binaries, awaited until ready, stopped with everything
they forked.

A server here is a process the tools start (``redis-server``, ``python -m model_serving`` under
uvicorn's supervisor, ``feast serve``, a moto server): by default in a session of its own, so that
stopping it reaches the workers it forked as well (SIGTERM to the process group, SIGKILL to what is
left after a grace period). Its output goes to a log file, or nowhere. Starting waits until a
readiness check holds (:mod:`harness.net`'s probes) and fails at once, naming the log, if the
process exits first; a start that fails stops what it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.wait import wait_for

log = logging.getLogger(__name__)

# Where the servers of the tests and the simulation come from: Debian's packages.
SERVERS_HINT = "run infra/scripts/test-servers.sh (as root it installs the servers from Debian's packages)"


def require(program: str, hint: str | None = None) -> None:
    """Fail with a sentence saying how to install ``program`` (a name on PATH or a path) when it is
    missing, rather than with the ``FileNotFoundError`` of a process that never started."""
    if shutil.which(program) is None and not Path(program).exists():
        raise RuntimeError(f"{program} is not installed" + (f": {hint}" if hint else ""))


def postgres_bin(name: str, hint: str = SERVERS_HINT) -> str:
    """Debian keeps PostgreSQL's server binaries off PATH, under /usr/lib/postgresql/<major>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    if shutil.which(name):
        return name
    raise RuntimeError(f"PostgreSQL's {name} is not installed: {hint}")


def postgres_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the PostgreSQL on ``port`` accepts connections (``pg_isready``): its port opens while it
    is still starting up or replaying its WAL, and refuses connections until then."""
    ready = [postgres_bin("pg_isready"), "-h", host, "-p", str(port)]
    return subprocess.run(ready, capture_output=True, timeout=30).returncode == 0


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], name: str, timeout: float, interval: float = 0.1
) -> None:
    """Wait until ``ready()`` holds; a ``process`` that exits first is a :class:`RuntimeError`, a
    check still false after ``timeout`` seconds a :class:`TimeoutError`, both naming ``name``."""

    def up() -> bool:
        if ready():
            return True
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready")
        return False

    wait_for(up, f"{name} to be ready", timeout, interval)


class Server:
    """One server process, restartable: :meth:`start` runs it and waits until it is ready,
    :meth:`stop` ends it and what it forked. ``append`` keeps the log of earlier starts (a server
    restarted on purpose); ``new_session`` False leaves it in the caller's process group and stops
    only the process itself."""

    def __init__(
        self,
        argv: list[str],
        *,
        name: str | None = None,
        log: Path | None = None,
        append: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        new_session: bool = True,
        hint: str | None = None,
        **popen: Any,
    ):
        require(argv[0], hint)
        self.argv, self.name, self.log = argv, name or Path(argv[0]).name, log
        self.append, self.env, self.cwd, self.new_session, self.popen = append, env, cwd, new_session, popen
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> subprocess.Popen[bytes]:
        """Run the server and return once ``ready()`` holds; on any failure it is stopped again."""
        with contextlib.ExitStack() as files:
            output: Any = subprocess.DEVNULL
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                output = files.enter_context(self.log.open("ab" if self.append else "wb"))
            self.process = subprocess.Popen(
                self.argv,
                stdout=output,
                stderr=subprocess.STDOUT if self.log is not None else output,
                env=self.env,
                cwd=self.cwd,
                start_new_session=self.new_session,
                **self.popen,
            )
        named = self.name if self.log is None else f"{self.name} (log: {self.log})"
        try:
            wait_until_ready(self.process, ready, named, timeout, interval)
        except BaseException:
            self.stop()
            raise
        log.info("%s is ready", named)
        return self.process

    def _send(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            if self.new_session:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
        """``sig`` to the server's process group, ``grace`` seconds to exit, then SIGKILL to whatever
        of the group is left (a worker that outlived its supervisor, a server that ignored ``sig``)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            self._send(sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s still runs %g s after signal %s; killing it", self.name, grace, sig)
        self._send(signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running(
    argv: list[str],
    ready: Callable[[], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    grace: float = 30.0,
    **server: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """A :class:`Server` of ``argv`` (``server``: its keyword arguments) for the duration of the
    block, ready when the block starts and stopped, with its process group, when it ends (also on an
    error)."""
    process = Server(argv, **server)
    try:
        yield process.start(ready, timeout, interval)
    finally:
        process.stop(grace=grace)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind the program like an error, so every ``finally`` and context manager runs
    and the servers it started are stopped (SIGTERM's default would leave them running)."""
    signal.signal(signal.SIGTERM, _exit)


@contextlib.contextmanager
def postgres(databases: tuple[str, ...] = (), log: Path | None = None, timeout: float = 60.0) -> Iterator[int]:
    """A throwaway PostgreSQL (Debian's) on a free loopback port for the duration of the block, with
    ``databases`` created empty; yields its port (user ``mlops``, no password). Its folder is a
    temporary one, removed at the end; as root the server runs as ``postgres`` (PostgreSQL refuses
    root), which must be able to reach that folder. No fsync: its data is thrown away."""
    import tempfile

    from harness.net import free_port

    root = Path(tempfile.mkdtemp(prefix="pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        initdb = [*as_user, postgres_bin("initdb"), "-D", str(data), "-U", "mlops", "--auth=trust", "-E", "UTF8"]
        subprocess.run(initdb, check=True, capture_output=True, timeout=120)
        port = free_port()
        argv = [*as_user, postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1"]
        argv += ["-k", str(sockets), "-c", "fsync=off"]
        with running(argv, lambda: postgres_accepts(port), timeout=timeout, interval=0.2, name="postgres", log=log):
            if databases:
                import psycopg

                with psycopg.connect(f"postgresql://mlops@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                    for name in databases:
                        conn.execute(f"CREATE DATABASE {name}")
            yield port
    finally:
        shutil.rmtree(root, ignore_errors=True)
