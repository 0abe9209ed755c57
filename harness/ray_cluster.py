"""A throwaway Ray cluster of separate processes on this machine, as the tests and benchmarks need it.

``ray start --head`` and one ``ray start --address`` per worker node, each in the foreground
(``--block``) in a session of its own, so that leaving the block stops every process the node
started (its GCS, raylet, object store and worker processes) and nothing else: ``ray stop`` would
stop every Ray on the machine, another run's included. Every port a node opens is one the system
handed out a moment before, on the loopback address; its state and logs stay in a temporary folder
(short: Ray's sockets live there, and a socket's path has at most 107 characters).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.net import LOOPBACK, free_ports, port_open
from harness.servers import Server
from harness.wait import wait_for

# Object store per node: the tests' partitions are small, and the default takes 30 % of the memory.
OBJECT_STORE_BYTES = 200 * 1024 * 1024


def _ray() -> str:
    """The ``ray`` command of this interpreter's environment."""
    return str(Path(sys.executable).with_name("ray"))


@dataclass(frozen=True)
class RayCluster:
    """How a driver reaches the cluster: ``address`` (``host:port`` of the head's GCS) from one of its
    nodes' machines, ``client_address`` (``ray://host:port``, Ray Client) from anywhere else."""

    address: str
    client_address: str


def _node(root: Path, name: str, cpus: int, head: tuple[int, int]) -> tuple[list[str], int]:
    """``ray start`` of node ``name`` (``head``: the head itself) and the port that says it is up (the
    head's GCS, a worker's raylet); ``head``: the head's GCS and client ports."""
    manager, objects, metrics, runtime_env, agent, agent_grpc = free_ports(6)
    argv = [
        _ray(),
        "start",
        "--block",
        "--disable-usage-stats",
        f"--num-cpus={cpus}",
        "--num-gpus=0",
        f"--node-ip-address={LOOPBACK}",
        f"--node-manager-port={manager}",
        f"--object-manager-port={objects}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
    ]
    gcs, client = head
    if name == "head":
        temp = root / name
        temp.mkdir()
        argv += [
            "--head",
            f"--port={gcs}",
            f"--ray-client-server-port={client}",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
        ]
        return argv, gcs
    return [*argv, f"--address={LOOPBACK}:{gcs}"], manager


@contextlib.contextmanager
def ray_cluster(
    workers: int = 1, cpus: int = 1, logs: Path | None = None, timeout: float = 90.0
) -> Iterator[RayCluster]:
    """A head and ``workers`` worker nodes of ``cpus`` CPUs each (the head gets none: the work goes
    to the workers); yields its addresses for ``ray.init(address=...)``. ``logs``: a folder for each
    node's ``ray start`` output and, once stopped, the head's error logs (``ray-head-session/``)."""
    root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    nodes: list[Server] = []
    try:
        gcs_port, client_port = free_ports(2)
        ports = gcs_port, client_port
        argv, gcs = _node(root, "head", 0, ports)
        head = Server(argv, name="ray head", log=None if logs is None else logs / "ray-head.log")
        nodes.append(head)
        head.start(lambda: port_open(gcs), timeout)
        for number in range(workers):
            argv, manager = _node(root, f"worker{number}", cpus, ports)
            name = f"ray worker {number}"
            node = Server(argv, name=name, log=None if logs is None else logs / f"ray-worker{number}.log")
            nodes.append(node)
            node.start(lambda port=manager: port_open(port), timeout)  # type: ignore[misc]
        wait_for(lambda: port_open(ports[1]), "the Ray head's client server", timeout)
        yield RayCluster(f"{LOOPBACK}:{gcs}", f"ray://{LOOPBACK}:{ports[1]}")
    finally:
        for node in reversed(nodes):
            node.stop(signal.SIGINT, grace=15.0)
        if logs is not None:
            _keep_errors(root / "head", logs / "ray-head-session")
        shutil.rmtree(root, ignore_errors=True)


def _keep_errors(temp: Path, into: Path) -> None:
    """Copy what the head's processes wrote to their ``.err`` logs (its GCS, the Ray Client servers it
    started for each driver) out of its temporary folder before that goes: a failure's cause."""
    for err in temp.glob("session_*/logs/*.err"):
        if err.stat().st_size:
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(err, into / err.name)
