"""The servers a simulation under faults runs against, each a real process it can stop and restart.

A plain simulation runs on the embedded default (SQLite, local files). Under faults the loop runs as
it is deployed, on servers from Debian's packages: ``redis-server`` holds the online store,
PostgreSQL the forecast table and MLflow's backend store, S3 (a moto server, behind a proxy that can
answer 503) the raw source files, and the forecasting service runs with two workers under uvicorn's
supervisor. MLflow's tracking server (``mlflow server``) stands in front of its backend store and
serves the artifacts, and Airflow's components (:mod:`simulation.scheduler`) keep their metadata in a
database of the same PostgreSQL. Every server is started on a free loopback port, in its own session, with its log under
the simulation's home, and stopped when the stack closes.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.net import free_port, http_ok, port_open
from harness.servers import SERVERS_HINT, Server, postgres_bin
from simulation.scheduler import Airflow

log = logging.getLogger(__name__)

REDIS_PASSWORD = "simulation-redis"
BUCKET = "raw"
READY_SECONDS = 120.0
STOP_GRACE_SECONDS = 30.0  # SIGTERM, then this long to exit before SIGKILL
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>"
)


class Redis:
    """``redis-server`` with an append-only file: a restarted server comes back with what it held."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--dir", str(folder), "--requirepass", REDIS_PASSWORD]  # fmt: skip
        self.server = Server(argv, name="redis-server", log=folder / "redis.log", append=True, hint=SERVERS_HINT)

    def start(self) -> None:
        self.server.start(lambda: port_open(self.port), READY_SECONDS)

    def stop(self) -> None:
        self.server.stop(grace=STOP_GRACE_SECONDS)

    def restart(self, down_seconds: float) -> None:
        """Stop (SIGTERM: the append-only file is flushed), stay down ``down_seconds``, start again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


class Postgres:
    """A PostgreSQL cluster under ``pg_ctl``, which restarts it on the same data directory and port.

    Its folder is a temporary one, not under the home: as root the server runs as ``postgres``,
    which must be able to reach it.
    """

    def __init__(self, databases: tuple[str, ...]):
        self.root = Path(tempfile.mkdtemp(prefix="mlops-simulation-pg-"))
        self.data, self.log, sockets = self.root / "data", self.root / "server.log", self.root / "sockets"
        sockets.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sockets, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        initdb = [postgres_bin("initdb"), "-D", str(self.data), "-U", "mlops", "--auth=trust", "-E", "UTF8"]
        subprocess.run([*self.as_user, *initdb], check=True, capture_output=True, timeout=120)
        self.port = free_port()
        self.options = f"-p {self.port} -h 127.0.0.1 -k {sockets} -c fsync=off"
        self.databases = databases

    def _pg_ctl(self, *args: str) -> None:
        argv = [postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args]
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        import psycopg

        self._pg_ctl("start", "-o", self.options)
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            for name in self.databases:
                conn.execute(f"CREATE DATABASE {name}")

    def restart(self) -> None:
        """Fast mode: open transactions are rolled back and every client's connection is cut."""
        self._pg_ctl("restart", "-m", "fast", "-o", self.options)

    def restart_in_a_write(self, database: str, table: str, ours: Callable[[], set[int]], timeout: float) -> bool:
        """Restart the server while a statement of the DAG's on ``table`` is in flight.

        A connection of its own locks ``table``; the next statement that touches it waits for the
        lock, and once a waiting statement comes from one of the ports ``ours()`` names (the
        connections of the task's process, or of the tracking server it logs through), the server
        restarts: that statement and its transaction are cut midway. Without such a statement within
        ``timeout`` seconds the server restarts all the same; the answer says whether a statement was
        caught.
        """
        import psycopg

        caught = False
        conninfo = self.conninfo(database)
        holder = psycopg.connect(conninfo)  # not autocommit: the lock lasts until the restart
        try:
            holder.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            with psycopg.connect(conninfo, autocommit=True) as watcher:
                deadline = time.monotonic() + timeout
                while not caught and time.monotonic() < deadline:
                    waiting = watcher.execute(
                        "SELECT client_port FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                        (database,),
                    ).fetchall()
                    caught = any(port in ours() for (port,) in waiting)
                    time.sleep(0.02)
            self.restart()
        finally:
            with contextlib.suppress(Exception):  # its server is gone
                holder.close()
        return caught

    def client_ports(self, roots: list[int]) -> set[int]:
        """The local ports of the connections to the server from the processes ``roots`` and their
        descendants (a scheduler's task processes, a tracking server's workers)."""
        import psutil

        ports = set()
        for root in roots:
            try:
                family = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in family:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    ports |= {
                        c.laddr.port
                        for c in process.net_connections(kind="tcp")
                        if c.raddr and c.raddr.port == self.port and c.raddr.ip == "127.0.0.1"
                    }
        return ports

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def conninfo(self, database: str) -> str:
        return f"postgresql://mlops@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://mlops@127.0.0.1:{self.port}/{database}"


class Mlflow:
    """``mlflow server`` on the ``mlflow`` database, serving the artifacts it keeps in ``folder``: what
    clients talk to, restartable like any server (their requests are retried meanwhile)."""

    def __init__(self, folder: Path, backend_store: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", backend_store, "--artifacts-destination", str(folder / "artifacts"),
                "--serve-artifacts", "--workers", "1"]  # fmt: skip
        # Without MLflow's job runner, as compose runs it (infra/compose/mlflow-server.sh): about ten huey
        # consumer processes for GenAI jobs the platform never submits.
        env = {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **os.environ,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        self.server = Server(argv, name="mlflow server", log=folder / "mlflow.log", append=True, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server.start(lambda: http_ok(f"{self.url}/health"), READY_SECONDS, 0.25)

    def stop(self) -> None:
        self.server.stop(grace=STOP_GRACE_SECONDS)

    def pid(self) -> int | None:
        process = self.server.process
        return process.pid if process is not None and process.poll() is None else None


class FlakyS3:
    """An HTTP proxy in front of an S3 endpoint that answers S3's 503 SlowDown while it is told to
    (its first ``failures`` requests; all of them while :meth:`unavailable` holds, or until
    :meth:`unavailable_for` runs out) and forwards every other request."""

    def __init__(self, upstream: str, failures: int | None = 0):
        self.failures = failures
        self.requests: list[str] = []
        self.refused = 0
        self._down_until = 0.0
        self._lock = threading.Lock()
        target = urlparse(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def do_PUT(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def do_DELETE(self) -> None:
                self._answer()

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._failing(f"{self.command} {self.path}"):
                    self._send(503, {"Content-Type": "application/xml"}, SLOW_DOWN)
                    return
                connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
                try:
                    connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                    response = connection.getresponse()
                    self._send(response.status, dict(response.getheaders()), response.read())
                finally:
                    connection.close()

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                skip = {"content-length", "transfer-encoding", "connection", "server", "date"}
                for name, value in headers.items():
                    if name.lower() not in skip:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the proxy counts what it saw; nothing to print

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _failing(self, request: str) -> bool:
        with self._lock:
            self.requests.append(request)
            failing = (
                self.failures is None or len(self.requests) <= self.failures or time.monotonic() < self._down_until
            )
            self.refused += failing
            return failing

    def unavailable_for(self, seconds: float) -> None:
        """Answer 503 to every request for the next ``seconds``."""
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def __enter__(self) -> FlakyS3:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Service:
    """``python -m model_serving`` with its workers under uvicorn's supervisor, which replaces a worker
    that dies."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, workers: int):
        self.port, self.workers = port, workers
        argv = [sys.executable, "-m", "model_serving"]
        self.server = Server(argv, name="forecast service", log=log_path, append=True, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return http_ok(f"{self.url}/health/ready")

    def start(self) -> None:
        self.server.start(lambda: self.ready() and len(self.worker_pids()) == self.workers, READY_SECONDS)

    def workers_started(self) -> int:
        """How many workers have finished starting (loaded the model) since the service started."""
        assert self.server.log is not None
        return self.server.log.read_text(errors="replace").count("Application startup complete.")

    def stop(self) -> None:
        self.server.stop(grace=STOP_GRACE_SECONDS)

    def worker_pids(self) -> list[int]:
        """The supervisor's worker processes (uvicorn's multiprocess children, not its helpers)."""
        import psutil

        if self.server.process is None:
            return []
        try:
            children = psutil.Process(self.server.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        return sorted(c.pid for c in children if "multiprocessing.resource_tracker" not in " ".join(c.cmdline()))


class Stack:
    """Redis, PostgreSQL (databases ``forecasts`` and ``mlflow``; Airflow's metadata on a cluster of its
    own), MLflow's tracking server
    and S3 behind :class:`FlakyS3`, started for a simulation under faults; :meth:`environment` points
    the platform at them, :meth:`start_airflow` runs Airflow's components on them."""

    def __init__(self, home: Path):
        self.home = home
        self.redis = Redis(home / "servers" / "redis")
        self.postgres = Postgres(("forecasts", "mlflow"))
        # Airflow's metadata on a cluster of its own: the restarts above are faults of the forecast
        # table and MLflow's store, not of the scheduler's own database.
        self.metadata = Postgres(("airflow",))
        self.mlflow = Mlflow(home / "servers" / "mlflow", self.postgres.url("mlflow"))
        self.moto_port = free_port()
        argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.moto_port)]
        self.moto = Server(argv, name="moto_server", log=home / "servers" / "moto.log", append=True, hint=SERVERS_HINT)
        self.s3: FlakyS3 | None = None
        self.service: Service | None = None
        self.airflow: Airflow | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Stack:
        try:
            self.redis.start()
            self._stack.callback(self.redis.stop)
            self.postgres.start()
            self._stack.callback(self.postgres.stop)
            self.metadata.start()
            self._stack.callback(self.metadata.stop)
            self.mlflow.start()
            self._stack.callback(self.mlflow.stop)
            self.moto.start(lambda: port_open(self.moto_port), READY_SECONDS)
            self._stack.callback(self.moto.stop, grace=STOP_GRACE_SECONDS)
            self.s3 = self._stack.enter_context(FlakyS3(self.moto_endpoint))
            self.s3_client().create_bucket(Bucket=BUCKET)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def moto_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    def s3_client(self) -> Any:
        """A client of S3 itself, not through the proxy: how the source's producer writes its files."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.moto_endpoint, aws_access_key_id="simulation",
            aws_secret_access_key="simulation", region_name="us-east-1",
        )  # fmt: skip

    def environment(self) -> dict[str, str]:
        """The ``MLOPS_*`` variables of a platform on these servers."""
        assert self.s3 is not None
        return {
            "MLOPS_ONLINE_STORE": "redis",
            "MLOPS_REDIS_HOST": "127.0.0.1",
            "MLOPS_REDIS_PORT": str(self.redis.port),
            "MLOPS_REDIS_PASSWORD": REDIS_PASSWORD,
            "MLOPS_FORECAST_DB": self.postgres.url("forecasts"),
            "MLOPS_MLFLOW_TRACKING_URI": self.mlflow.url,
            "MLOPS_S3_ENDPOINT_URL": self.s3.url,
            "MLOPS_AWS_ACCESS_KEY_ID": "simulation",
            "MLOPS_AWS_SECRET_ACCESS_KEY": "simulation",
            "MLOPS_SOURCE_BUCKETS": f'["{BUCKET}"]',
        }

    def metadata_environment(self) -> dict[str, str]:
        """Airflow's variables that put its metadata on this PostgreSQL (for this process's Airflow
        too, which reads its configuration once, at its import)."""
        url = self.metadata.url("airflow")
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url}

    def start_airflow(self, environ: dict[str, str], dag_ids: list[str]) -> Airflow:
        """Airflow's api-server, dag-processor and scheduler with the platform's environment
        ``environ``, metadata in the ``airflow`` database; ``dag_ids`` unpaused once parsed."""
        self.airflow = Airflow(
            environ, self.metadata.url("airflow"), self.metadata.conninfo("airflow"), self.home / "servers"
        )
        self._stack.callback(self.airflow.stop)
        self.airflow.start(dag_ids)
        return self.airflow

    def start_service(self, settings: Any, workers: int = 2) -> Service:
        """The forecasting service on the platform's settings, following the champion alias."""
        from core.settings import child_environment

        port = free_port()
        env = child_environment(
            settings, serving_port=port, serving_workers=workers, model_poll_seconds=5.0,
            serving_metrics_dir=self.home / "servers" / "service-metrics",
        )  # fmt: skip
        self.service = Service(env, port, self.home / "servers" / "service.log", workers)
        self.service.start()
        self._stack.callback(self.service.stop)
        return self.service
