"""The one place that decides where training runs and makes it repeatable.

``auto`` takes the GPU when PyTorch sees one and the CPU otherwise; every family asks here instead of
probing on its own, so a pod on a GPU node pool and a laptop run the same code. A device also names
the engine that the per-series work of a training runs on (:mod:`core.engine`: this process, or a
Ray cluster), which the statistical families fit their series on.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import sys
from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

from core.engine import LOCAL, Engine, engine
from core.settings import Settings

log = logging.getLogger(__name__)

DevicePreference = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Device:
    """Where a training's models fit (``kind``) and where its per-series work runs (``engine``)."""

    kind: Literal["cpu", "cuda"]
    engine: Engine = LOCAL

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def torch(self) -> str:
        return "cuda:0" if self.is_cuda else "cpu"

    @property
    def xgboost(self) -> str:
        return "cuda" if self.is_cuda else "cpu"


CPU = Device("cpu")


def cuda_driver_loads() -> bool:
    """Whether NVIDIA's driver library loads. Without it no framework can see a GPU, and saying so
    costs no PyTorch import (a second or more of CPU in every training process). Elsewhere than
    Linux the answer is left to PyTorch."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@cache
def cuda_available() -> bool:
    if not cuda_driver_loads():
        log.info("CUDA device visible: none (no NVIDIA driver), training on the CPU")
        return False
    try:
        import torch
    except ImportError:  # a slim image without torch trains tree families on CPU
        return False
    available = bool(torch.cuda.is_available())
    log.info("CUDA device visible: %s", torch.cuda.get_device_name(0) if available else "none, training on the CPU")
    return available


def training_device(settings: Settings) -> Device:
    """The device and engine ``settings`` ask for (``MLOPS_TRAINING_DEVICE``, ``MLOPS_ENGINE``)."""
    return select(settings.training_device, engine(settings.engine, settings.ray_address))


def select(preference: str = "auto", engine: Engine = LOCAL) -> Device:
    """``cuda`` asked for but absent is an error (a GPU pod without a GPU is misconfigured);
    ``auto`` falls back to the CPU with a log line. The per-series work runs on ``engine``."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown training device {preference!r}: use auto, cpu or cuda")
    if preference == "cpu":
        return replace(CPU, engine=engine)
    if cuda_available():
        return Device("cuda", engine)
    if preference == "cuda":
        raise RuntimeError("training device 'cuda' requested but no CUDA device is visible")
    return replace(CPU, engine=engine)


@cache
def lightgbm_device_type(device: Device) -> str:
    """LightGBM's pip wheel may lack GPU support: probe once with a tiny fit, else the CPU."""
    if not device.is_cuda:
        return "cpu"
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 2)), rng.normal(size=64)
    for device_type in ("cuda", "gpu"):
        try:
            lgb.train({"device_type": device_type, "verbose": -1, "num_iterations": 1}, lgb.Dataset(x, y))
        except Exception as exc:  # LightGBMError: built without this device
            log.info("LightGBM device_type=%s unavailable (%s)", device_type, str(exc).splitlines()[0])
            continue
        return device_type
    log.info("this LightGBM build has no GPU support: LightGBM trains on the CPU")
    return "cpu"


def seed_everything(seed: int, device: Device = CPU) -> None:
    """Fixed seeds and deterministic kernels, so a rerun with the same data gives the same model."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    if device.is_cuda:
        # cuBLAS needs this before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
