"""The serving image's lock is a subset of the platform's: same pins, and none of the pipeline tools."""

import re
from pathlib import Path

from core.settings import PROJECT_ROOT


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, version = line.split("==")
        found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return found


# The serving lock's CPU-only builds of a platform package: the same version, the same module.
CPU_BUILDS = {"xgboost-cpu": "xgboost"}


def test_the_serving_lock_pins_what_the_platform_pins() -> None:
    platform, serving = pins(PROJECT_ROOT / "requirements.txt"), pins(PROJECT_ROOT / "requirements-serving.txt")
    differ = {name: version for name, version in serving.items() if platform.get(CPU_BUILDS.get(name, name)) != version}
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
