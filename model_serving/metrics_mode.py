"""Where Prometheus values live: decided before ``prometheus_client`` is first imported.

``prometheus_client`` picks in-memory or file-backed values once, at import, from
``PROMETHEUS_MULTIPROC_DIR``; so this module must not import it (nor anything that does).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_metrics_directory(workers: int, directory: Path | None = None) -> Path | None:
    """Choose how Prometheus values are kept, before any worker imports ``prometheus_client``.

    With several workers, each keeps its values in files of one directory that ``/metrics`` sums
    over, so a scrape counts every worker's requests, not just the one that answers it: the given
    ``directory`` (emptied first: values of an earlier run must not count) or a fresh temporary one.
    With one worker, values stay in memory. Either way an inherited ``PROMETHEUS_MULTIPROC_DIR`` is
    dropped: importing Feast sets one for its own servers, and a child started by such a process
    would otherwise write into, and report, another service's files.
    """
    for name in (MULTIPROCESS_ENV, MULTIPROCESS_ENV.lower()):
        os.environ.pop(name, None)
    if workers <= 1:
        return None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="forecast-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return directory
