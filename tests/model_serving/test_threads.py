"""How many threads a serving worker's model libraries use: one unless asked for more."""

import os
import subprocess
import sys

import pytest

from model_serving.__main__ import share_cores

# What OpenMP reports in a fresh interpreter once ``share_cores`` ran and XGBoost loaded its runtime.
PROBE = """
import sys
from model_serving.__main__ import share_cores
share_cores(int(sys.argv[1]) if sys.argv[1] != "-" else None)
import xgboost, threadpoolctl
print(max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"))
"""


def test_one_thread_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert share_cores(None) == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert share_cores(3) == 3  # the setting
    assert os.environ["OMP_NUM_THREADS"] == "3"
    assert share_cores(None) == 3  # an operator's OMP_NUM_THREADS is kept
    monkeypatch.setenv("OMP_NUM_THREADS", "0")  # not a count: the default
    assert share_cores(None) == 1


@pytest.mark.parametrize(("threads", "expected"), [("-", 1), ("3", 3)])
def test_the_model_library_runs_with_that_many_threads(threads: str, expected: int) -> None:
    """The count reaches the OpenMP runtime XGBoost predicts with (a machine's default is its CPU count)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, threads], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert int(out.stdout.strip()) == expected
