"""The engine interface: partitions of series in order, mapped in this process or by Ray (the Ray
cluster's own tests: tests/model_training/test_ray_engine.py)."""

from __future__ import annotations

import pytest

from core.engine import LOCAL, PARTITIONS_PER_CPU, InProcess, RayEngine, engine, partitions, retrying


class FourCpus(InProcess):
    """An engine that says it runs four partitions at once (a cluster's answer, without a cluster)."""

    def __init__(self) -> None:
        super().__init__(kind="ray")

    def cpus(self) -> int:
        return 4


def test_the_local_engine_takes_everything_in_one_partition_in_order() -> None:
    assert partitions(list(range(10)), LOCAL) == [list(range(10))]
    assert partitions([], LOCAL) == []
    assert LOCAL.map(lambda part: sum(part), [[1, 2], [3]]) == [3, 3]


def test_a_cluster_gets_several_partitions_per_cpu_each_contiguous_and_none_too_small() -> None:
    items = list(range(100))
    parts = partitions(items, FourCpus())
    assert len(parts) == 4 * PARTITIONS_PER_CPU
    assert [x for part in parts for x in part] == items, "contiguous, in order, nothing lost or repeated"
    assert {len(part) for part in parts} == {6, 7}, "of about equal size"
    few = partitions(items[:20], FourCpus(), least=8)
    assert len(few) == 2
    assert [x for part in few for x in part] == items[:20]
    assert partitions(items[:3], FourCpus(), least=8) == [items[:3]]


def test_the_settings_name_the_engine() -> None:
    assert engine("local") is LOCAL
    assert engine("ray", "10.0.0.5:6379") == RayEngine("10.0.0.5:6379")
    with pytest.raises(ValueError, match="unknown engine 'dask'"):
        engine("dask")  # type: ignore[arg-type]


def test_joining_a_cluster_tries_again_after_an_aborted_connection_and_no_more_than_asked() -> None:
    tries: list[int] = []

    def join(fail: int) -> None:
        tries.append(1)
        if len(tries) <= fail:
            raise ConnectionAbortedError("Initialization failure from server")

    retrying(lambda: join(2), "ray://head:10001", attempts=3, backoff=0.0)
    assert len(tries) == 3, "two aborted tries, then the one that connects"
    tries.clear()
    with pytest.raises(ConnectionAbortedError):
        retrying(lambda: join(3), "ray://head:10001", attempts=3, backoff=0.0)
    assert len(tries) == 3
    tries.clear()

    def wrong() -> None:
        tries.append(1)
        raise ValueError("not a Ray address")

    with pytest.raises(ValueError, match="not a Ray address"):
        retrying(wrong, "nowhere", attempts=3, backoff=0.0)
    assert len(tries) == 1, "an error that another try cannot fix is raised at once"
