"""How pytest-xdist hands the suite's modules to its workers: whole files, longest first, and no more
than a few ``heavy`` modules at once.

A heavy module starts a whole platform (Airflow's scheduler, API server and DAG processor, the
servers, task processes that import every ML library): two of them keep two cores busy. Four at
once, as plain ``--dist loadfile`` hands out the longest modules first, left each a quarter of a
core; their runs took many times longer than alone and the hang guards of their waits fired.
:class:`HeavyLimitedScheduling` hands out files as ``--dist loadfile`` does, except that a worker
that asks for work while ``limit`` heavy modules run on other workers gets the first light module
instead, and the heavy ones wait their turn.

The controller process collects nothing, so the workers say which modules are heavy: each writes the
list (:func:`write_heavy_modules`) when it has collected, before the first module is handed out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

HEAVY_MODULES = "heavy-modules.json"


def write_heavy_modules(folder: Path, items: list[pytest.Item]) -> None:
    """The files of ``items`` marked ``heavy``, as JSON in ``folder`` (atomically: every worker writes
    the same list, and the controller may read it at any time after)."""
    heavy = sorted({item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("heavy")})
    temporary = folder / f"{HEAVY_MODULES}.{os.getpid()}"
    temporary.write_text(json.dumps(heavy))
    temporary.replace(folder / HEAVY_MODULES)


class HeavyLimitedScheduling(LoadFileScheduling):
    """``--dist loadfile`` with at most ``limit`` heavy files assigned to workers other than the one
    asking (a worker finishing a heavy file may take the next: it runs it after its current one)."""

    def __init__(self, config: pytest.Config, log: Any, folder: Path, limit: int) -> None:
        super().__init__(config, log)
        self.folder, self.limit = folder, limit
        self._heavy: set[str] | None = None

    @property
    def heavy(self) -> set[str]:
        if self._heavy is None:  # read once the workers have collected (they wrote it then)
            path = self.folder / HEAVY_MODULES
            self._heavy = set(json.loads(path.read_text())) if path.exists() else set()
        return self._heavy

    def heavy_elsewhere(self, node: Any) -> int:
        """Heavy files assigned to the other workers and not finished."""
        return sum(
            1
            for other, work in self.assigned_work.items()
            if other is not node
            for scope, unit in work.items()
            if scope in self.heavy and not all(unit.values())
        )

    def _assign_work_unit(self, node: Any) -> None:
        if self.heavy_elsewhere(node) >= self.limit:
            light = next((scope for scope in self.workqueue if scope not in self.heavy), None)
            if light is None:
                return  # only heavy files left: this worker waits for one to finish elsewhere
            self.workqueue.move_to_end(light, last=False)
        super()._assign_work_unit(node)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        super().mark_test_complete(node, item_index, duration)
        # A heavy file finished here may be what a waiting worker waits for; with the queue empty, a
        # waiting worker is told to finish (a worker runs its last test once it knows there is no next).
        for other in self.nodes:
            if other is not node:
                self._reschedule(other)
