"""Feast, imported without two costs its import puts on every process that loads it.

Every process that touches the feature store imports Feast: each Airflow task that builds a
training set or materializes, and each worker of the forecasting service at startup. Two things in
that import do nothing for the platform:

- **typeguard.** Feast decorates its definition classes (``FeatureView``, ``Entity``,
  ``FileSource``...) with typeguard's ``@typechecked``, which re-reads and compiles each class's
  source at import to add run-time argument checks (agronholm/typeguard#468): about 2 s of CPU per
  process here, 5 on a busy machine, more than the rest of Feast's import. The platform builds its
  definitions in one place (:mod:`feature_store.repo`), with the types its tests exercise; the
  checks are left out by importing Feast while the decorator hands each class back unchanged.
- **PyTorch.** ``feast.torch_wrapper`` imports torch when Feast is imported, for a tensor export
  of retrieved features the platform never calls: about 1.2 s of CPU and a few hundred MB per
  process, in a service whose champion may be a tree model. Torch is kept from Feast's import (Feast
  records it as unavailable); the platform's own imports of torch, later, load it as usual.

Nothing else changes: the decorator is restored and the import block removed once Feast is in.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_LOCK = threading.Lock()
_TORCH = "torch"


class _WithoutTorch(importlib.abc.MetaPathFinder):
    """Refuses ``torch`` (and its submodules) for as long as it is on ``sys.meta_path``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == _TORCH or fullname.startswith(f"{_TORCH}."):
            raise ModuleNotFoundError(f"{fullname} is not imported with Feast", name=fullname)
        return None


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``@typechecked`` and ``@typechecked(...)`` that hand the decorated object back unchanged."""
    return target if target is not None else (lambda decorated: decorated)


def load_feast() -> ModuleType:
    """The ``feast`` package, imported once per process as this module's docstring says; the
    platform calls it before its first ``from feast import ...``."""
    with _LOCK:
        loaded = sys.modules.get("feast")
        if loaded is not None:
            return loaded
        import typeguard

        checked = typeguard.typechecked
        blocker = _WithoutTorch() if _TORCH not in sys.modules else None
        typeguard.typechecked = _unchecked
        if blocker is not None:
            sys.meta_path.insert(0, blocker)
        try:
            return importlib.import_module("feast")
        finally:
            typeguard.typechecked = checked
            if blocker is not None:
                sys.meta_path.remove(blocker)
