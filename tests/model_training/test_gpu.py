"""The GPU paths of every family. Run where a CUDA device is: ``make test-gpu`` (pytest -m gpu).

Each test asserts on what ran on the device, as the library itself reports it, so none passes on a
CPU: XGBoost asked for CUDA without a usable GPU trains on the CPU with a warning (its config then
says ``cpu``), LightGBM's probe falls back to ``cpu`` for a build without GPU support, and PyTorch
allocates no CUDA memory. The families are given the CUDA device as such (not through
``devices.select``, which refuses it on a CPU machine), so on a CPU run these asserts are what fails.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.columns import label_names
from core.dataset import DatasetConfig
from model_training import devices, forecasters
from model_training.metrics import mae
from tests.utils.data import split_in_time, training_frame, write_dataset

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame]:
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path_factory.mktemp("gpu")))
    return dataset, *split_in_time(training_frame(dataset))


def test_auto_picks_the_gpu() -> None:
    assert devices.cuda_available()
    assert devices.select("auto").is_cuda
    assert devices.select("cuda").torch == "cuda:0"


CUDA = devices.Device("cuda")


@pytest.mark.parametrize("family", forecasters.TABULAR)
def test_family_trains_on_the_gpu_and_serves_on_the_cpu(family: str, frames, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    dataset, train, test = frames
    labels = label_names(dataset)
    model = forecasters.create(family, dataset, device=CUDA)
    if family in ("nlinear", "dlinear"):
        torch.cuda.reset_peak_memory_stats()
    model.fit(train, train[labels].to_numpy())
    if family in ("nlinear", "dlinear"):
        assert torch.cuda.max_memory_allocated() > 0, "the fit allocated no CUDA memory"
    if family == "xgboost":
        assert model.fit_device in ("cuda", "cuda:0"), f"XGBoost trained on {model.fit_device}"  # type: ignore[attr-defined]
    if family == "lightgbm":
        assert model.fit_device in ("cuda", "gpu"), f"LightGBM trained on {model.fit_device}"  # type: ignore[attr-defined]
    predictions = model.predict(test)
    actual = test[labels].to_numpy()
    assert mae(actual, predictions) < mae(actual, forecasters.baseline(dataset).predict(test))
    model.save(tmp_path / "bundle")
    restored = forecasters.load(family, tmp_path / "bundle")  # loads without a GPU in play
    np.testing.assert_allclose(restored.predict(test), predictions, rtol=1e-5, atol=1e-6)
    if family in ("nlinear", "dlinear"):
        history = json.loads((tmp_path / "bundle" / f"{family}.json").read_text())["history"]
        assert history["device"] == "cuda", "the weights were not on the GPU while fitting"
    if family == "xgboost":
        config = json.loads(model.booster.save_config())  # type: ignore[attr-defined]
        assert config["learner"]["generic_param"]["device"] == "cpu", "reset for serving on CPUs"


@pytest.mark.parametrize("family", ["nlinear", "dlinear", "xgboost"])
def test_gpu_training_is_repeatable(family: str, frames) -> None:  # type: ignore[no-untyped-def]
    dataset, train, test = frames
    labels = label_names(dataset)
    first, second = (
        forecasters.create(family, dataset, device=CUDA).fit(train, train[labels].to_numpy()) for _ in range(2)
    )
    if family == "xgboost":  # repeatable on the GPU, not on the CPU it fell back to
        assert first.fit_device in ("cuda", "cuda:0"), f"XGBoost trained on {first.fit_device}"  # type: ignore[attr-defined]
    np.testing.assert_allclose(first.predict(test), second.predict(test), rtol=1e-6)


def test_lightgbm_finds_its_gpu() -> None:
    """This LightGBM build trains on the GPU: no fallback to the CPU."""
    assert devices.lightgbm_device_type(CUDA) in ("cuda", "gpu")
