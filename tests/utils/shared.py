"""Work done once per test run, whichever pytest-xdist worker asks for it first.

``make test`` runs the suite on several workers (``pytest -n``), each a process with session fixtures
of its own. What is costly and only read afterwards (a trained champion) is made once, in a folder
the workers share, under a file lock: the first worker to ask makes it, the others wait for it and
read it. Without xdist the run's folder is the session's own temporary folder, and nothing changes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

DONE = ".done"


def worker_id() -> str:
    """The xdist worker's name (``gw0``, ``gw1``...), ``main`` when the suite runs in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this run sees: xdist gives each worker ``<run>/popen-gwN``."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """``<run>/<name>``, filled by ``make`` once for the whole run; a worker that comes later waits
    for the first one to finish. A ``make`` that failed left no ``.done``: the next worker tries again
    in an empty folder, and fails the same way with its own traceback."""
    folder = run_folder(tmp_path_factory) / name
    with FileLock(f"{folder}.lock"):
        if not (folder / DONE).exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            make(folder)
            (folder / DONE).touch()
    return folder
