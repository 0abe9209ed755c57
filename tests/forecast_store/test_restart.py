"""The forecast table's PostgreSQL crashes and comes back: nothing committed is lost, and the
platform's engine (its pooled connections died with the server) reads and writes again by itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from forecast_store import store
from harness.servers import postgres_accepts
from harness.wait import wait_for
from tests.forecast_store.test_store import DAY, ISSUED, rows
from tests.utils.servers import free_port, postgres_bin, wait_for_port

pytestmark = pytest.mark.integration


class Cluster:
    """A PostgreSQL cluster of its own (a crash must not touch the session's server), with fsync on."""

    def __init__(self, root: Path):
        self.data, self.sockets, self.port = root / "data", root / "sockets", free_port()
        self.sockets.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(root, "postgres")
            shutil.chown(self.sockets, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        initdb = [postgres_bin("initdb"), "-D", str(self.data), "-U", "mlops", "--auth=trust", "-E", "UTF8"]
        subprocess.run([*self.as_user, *initdb], check=True, capture_output=True, timeout=120)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
                "-k", str(self.sockets)]  # fmt: skip
        self.process = subprocess.Popen([*self.as_user, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, timeout=60)
        wait_for(lambda: postgres_accepts(self.port), "PostgreSQL to accept connections (WAL replayed)", 60, 0.2)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): no checkpoint, every connection cut; restart replays the WAL."""
        assert self.process is not None
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGQUIT)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="pg-restart-"))
    made = Cluster(root)
    made.start()
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_committed_forecasts_and_scores_survive_a_crash_and_the_engine_reconnects(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://mlops@127.0.0.1:{cluster.port}/postgres"
    settings = Settings(home=tmp_path / "home", forecast_db=url, _env_file=None)  # type: ignore[call-arg]
    store.upgrade(settings)
    store.replace_day(settings, "synthetic", DAY, rows(10.0, steps=24))
    due = store.due(settings, "synthetic", until=ISSUED + timedelta(days=2), rescore_from=ISSUED)
    store.replace_scores(
        settings, [store.Score(f.id, "synthetic", DAY, 1.0, f.value - 1.0, None, None, DAY) for f in due]
    )
    issued, scored = store.issued(settings, "synthetic"), store.scored(settings, "synthetic")

    cluster.crash()
    cluster.start()

    # The same engine: its pooled connections died with the server; pre-ping replaces them.
    assert store.issued(settings, "synthetic") == issued
    assert store.scored(settings, "synthetic") == scored
    assert len(issued) == len(scored) == 2 * 24
    next_day = DAY + timedelta(days=1)
    assert store.replace_day(settings, "synthetic", next_day, rows(20.0, day=next_day)) == 6
    assert store.latest_day(settings, "synthetic") == next_day
    store.engine(settings).dispose()
