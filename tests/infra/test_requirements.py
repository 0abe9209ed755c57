"""The locks: the serving image's is a subset of the platform's (same pins, none of the pipeline
tools), and each pins every dependency of what it pins."""

import pytest

from core.settings import PROJECT_ROOT
from tests.utils.locks import BUILDS_OF, lock_problems, pins


def test_the_serving_lock_pins_what_the_platform_pins() -> None:
    platform, serving = pins(PROJECT_ROOT / "requirements.txt"), pins(PROJECT_ROOT / "requirements-serving.txt")
    differ = {name: version for name, version in serving.items() if platform.get(BUILDS_OF.get(name, name)) != version}
    assert differ == {}
    assert {"fastapi", "uvicorn", "feast", "mlflow", "xgboost-cpu", "lightgbm", "torch", "redis"} <= set(serving)
    assert "xgboost" not in serving, "one XGBoost: its CPU build"
    assert [name for name in serving if name.startswith("nvidia-")] == [], "no CUDA libraries in the service"


def test_the_serving_lock_leaves_out_airflow_great_expectations_evidently_and_optuna() -> None:
    serving = pins(PROJECT_ROOT / "requirements-serving.txt")
    excluded = ("apache-airflow", "great-expectations", "evidently", "optuna")
    assert [name for name in serving if name.startswith(excluded)] == []


BENCHMARK_PEERS = ("mlforecast", "flaml")


def test_the_benchmarks_peers_stay_out_of_the_platform_and_serving_locks() -> None:
    """mlforecast (`make bench-accuracy`, `make bench-m4`) and FLAML (`make bench-training`) are peers
    the benchmarks compare with, not runtime dependencies; statsforecast is the platform's own library
    of statistical families."""
    bench = pins(PROJECT_ROOT / "requirements-bench.txt")
    assert set(BENCHMARK_PEERS) <= set(bench)
    assert "statsforecast" in pins(PROJECT_ROOT / "requirements.txt")
    assert "statsforecast" not in bench, "one pin, in the platform's lock"
    for lock in ("requirements.txt", "requirements-serving.txt"):
        found = pins(PROJECT_ROOT / lock)
        assert [name for name in BENCHMARK_PEERS if name in found] == [], lock
        assert "requirements-bench" not in (PROJECT_ROOT / lock).read_text(), lock
    assert "-r requirements-bench.txt" in (PROJECT_ROOT / "requirements-dev.txt").read_text().splitlines()


@pytest.mark.parametrize(
    ("lock", "on_top_of"),
    [("requirements.txt", ()), ("requirements-serving.txt", ()), ("requirements-bench.txt", ("requirements.txt",))],
)
def test_each_lock_pins_every_dependency_of_what_it_pins(lock: str, on_top_of: tuple[str, ...]) -> None:
    """A dependency a lock leaves out is installed unpinned (pip resolves it at build time): the
    runtime lock once lacked pluggy and mypy-extensions, and torch's setuptools came unpinned."""
    assert lock_problems(PROJECT_ROOT / lock, tuple(PROJECT_ROOT / base for base in on_top_of)) == []
