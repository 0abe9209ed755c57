"""Where the per-series work runs: in this process, or as tasks of a Ray cluster.

Fitting a statistical model per series, or building the features of a part of series, is the same
small function over many independent partitions of series. An :class:`Engine` maps such a function
over partitions and gives the results back in the partitions' order, so a caller assembles the same
output whichever engine ran it (``imap`` streams them: a step that reads its parts one after the
other and writes each result as it comes holds a few parts, not all):

* :class:`InProcess` (``MLOPS_ENGINE=local``, the default and what ``make demo`` uses) calls the
  function on each partition in turn, in this process;
* :class:`RayEngine` (``MLOPS_ENGINE=ray``, the compose and k8s profiles' default) submits one Ray
  task per partition to the cluster at ``MLOPS_RAY_ADDRESS`` and waits for them all: ``ray://host:port``
  connects through Ray Client, as Airflow's tasks and training pods do from outside the cluster (the
  compose stack's ``ray-head``, the k8s profile's RayCluster in ``infra/k8s/ray/``); ``host:port`` of
  the head's GCS, from one of the cluster's machines; unset, Ray's own ``RAY_ADDRESS`` or a cluster
  started on this machine with ``ray start``. A Ray task ships the function by reference, so the
  workers need the platform's packages installed, as the training and Airflow images have them.
  Each partition is one task: enough partitions for every worker CPU several times over
  (:func:`partitions`) keeps the workers busy when some series take longer than others.

Ray is imported when a Ray engine first maps: this base layer is imported by the service and by
model bundles, which never need it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

log = logging.getLogger(__name__)

EngineKind = Literal["local", "ray"]
T = TypeVar("T")
R = TypeVar("R")

# Partitions per CPU of the engine: some slack for partitions slower than others.
PARTITIONS_PER_CPU = 4
# Tasks out per CPU of a cluster while a step streams its partitions: each CPU has the next one
# queued, and the step holds that many partitions and results, not all of them.
AHEAD_PER_CPU = 2
# Tries to join a cluster, and seconds before the second (doubled each time): Ray Client's server
# starts a process per driver, which can fail on a busy head; the next try gets a new one.
CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_S = 2.0


class Engine(Protocol):
    """Maps a function over partitions of independent work; the results come back in order."""

    @property
    def kind(self) -> EngineKind: ...

    def cpus(self) -> int:
        """How many partitions can run at once."""
        ...

    def map(self, function: Callable[[T], R], partitions: Sequence[T]) -> list[R]:
        """``[function(p) for p in partitions]``, wherever the engine runs it."""
        ...

    def imap(self, function: Callable[[T], R], partitions: Iterable[T]) -> Iterator[R]:
        """``function(p)`` of each partition, yielded in order as the partitions are drawn: a few
        partitions are out at a time, so that neither the partitions nor the results are all held
        at once (a step that streams its parts in and its results out)."""
        ...


@dataclass(frozen=True)
class InProcess:
    """Each partition in turn, in this process."""

    kind: EngineKind = "local"

    def cpus(self) -> int:
        return 1

    def map(self, function: Callable[[T], R], partitions: Sequence[T]) -> list[R]:
        return [function(partition) for partition in partitions]

    def imap(self, function: Callable[[T], R], partitions: Iterable[T]) -> Iterator[R]:
        return (function(partition) for partition in partitions)


@dataclass(frozen=True)
class RayEngine:
    """One Ray task per partition on the cluster at ``address`` (None: Ray finds it: ``RAY_ADDRESS``,
    else a cluster started on this machine)."""

    address: str | None = None
    kind: EngineKind = "ray"

    def connect(self) -> None:
        """Join the cluster as a driver, once per process (a second call is a no-op)."""
        import ray

        if not ray.is_initialized():
            address = self.address or "auto"
            retrying(lambda: ray.init(address=address, log_to_driver=False, configure_logging=False), address)
            log.info("connected to the Ray cluster at %s: %s", address, ray.cluster_resources())

    def cpus(self) -> int:
        import ray

        self.connect()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, function: Callable[[T], R], partitions: Sequence[T]) -> list[R]:
        import ray

        self.connect()
        remote = ray.remote(num_cpus=1, max_retries=2)(function)
        results: list[R] = ray.get([remote.remote(partition) for partition in partitions])
        return results

    def imap(self, function: Callable[[T], R], partitions: Iterable[T]) -> Iterator[R]:
        """One task per partition, at most :data:`AHEAD_PER_CPU` per CPU of the cluster out at a
        time; a result is yielded once it and those before it are done."""
        import ray

        self.connect()
        remote = ray.remote(num_cpus=1, max_retries=2)(function)
        ahead = self.cpus() * AHEAD_PER_CPU
        out: collections.deque[Any] = collections.deque()
        for partition in partitions:
            out.append(remote.remote(partition))
            if len(out) >= ahead:
                yield ray.get(out.popleft())
        while out:
            yield ray.get(out.popleft())


LOCAL = InProcess()


def retrying(
    join: Callable[[], object], address: str, attempts: int = CONNECT_ATTEMPTS, backoff: float = CONNECT_BACKOFF_S
) -> None:
    """``join()`` until it connects, at most ``attempts`` times, waiting ``backoff`` seconds (doubled
    each time) between tries; a refused or aborted connection (Ray Client's "Initialization failure
    from server") is tried again, the last one raised. Other errors (a wrong address's
    ``ValueError``) are raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            join()
            return
        except ConnectionError as error:
            if attempt == attempts:
                raise
            wait = backoff * 2 ** (attempt - 1)
            log.warning("joining the Ray cluster at %s failed (%s); trying again in %.0f s", address, error, wait)
            time.sleep(wait)


def engine(kind: EngineKind = "local", address: str | None = None) -> Engine:
    """The engine of ``MLOPS_ENGINE`` (``kind``) and ``MLOPS_RAY_ADDRESS`` (``address``)."""
    if kind == "local":
        return LOCAL
    if kind == "ray":
        return RayEngine(address)
    raise ValueError(f"unknown engine {kind!r}: use local or ray")


def partitions(items: Sequence[T], engine: Engine, least: int = 1) -> list[list[T]]:
    """``items`` in contiguous partitions of about equal size: one for the in-process engine, else
    :data:`PARTITIONS_PER_CPU` per CPU of the engine, each of at least ``least`` items."""
    if not items:
        return []
    wanted = 1 if engine.kind == "local" else engine.cpus() * PARTITIONS_PER_CPU
    count = max(1, min(wanted, len(items) // max(least, 1)))
    size, longer = divmod(len(items), count)  # the first ``longer`` partitions take one item more
    bounds = [part * size + min(part, longer) for part in range(count + 1)]
    return [list(items[start:stop]) for start, stop in itertools.pairwise(bounds)]
