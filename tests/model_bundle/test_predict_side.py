"""The predict side alone: every family's fitted model loads and forecasts with ``model_bundle`` and
its own library, in a process where the rest of the platform, PyTorch, Optuna and scikit-learn cannot
be imported. That is what a registered bundle carries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.columns import feature_names, label_names
from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT
from model_training import devices, forecasters
from tests.utils.data import split_in_time, training_frame, write_dataset

pytestmark = pytest.mark.slow

FAST = {
    "xgboost": {"n_estimators": 10, "max_depth": 3},
    "lightgbm": {"n_estimators": 10, "num_leaves": 7},
    "nlinear": {"solver": "ridge"},
    "dlinear": {"solver": "ridge", "kernel_size": 5},
}
PLATFORM = sorted(p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py"))
REFUSED = ["torch", "optuna", "sklearn", *(name for name in PLATFORM if name not in ("model_bundle", "tests"))]
LOAD_ALONE = """
import importlib.abc, json, sys
refused = set(sys.argv[2].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in refused:
            raise ImportError(f"{name} is refused")
        return None

sys.meta_path.insert(0, Refuse())
import pandas as pd
from pathlib import Path
from model_bundle.forecasters import load

job = json.loads(open(sys.argv[1]).read())
features = pd.read_pickle(job["features"])
forecast = load(job["family"], Path(job["model"])).predict(features)
print(json.dumps(forecast.tolist()))
"""


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame]:
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path_factory.mktemp("predict-side")))
    return dataset, *split_in_time(training_frame(dataset))


@pytest.mark.parametrize("family", forecasters.TABULAR)
def test_a_fitted_model_forecasts_with_the_predict_side_alone(family: str, frames, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, train, test = frames
    model = forecasters.create(family, dataset, FAST[family], device=devices.CPU)
    model.fit(train, train[label_names(dataset)].to_numpy())
    model.save(tmp_path / "model")
    features = test[feature_names(dataset)].head(20)
    # Pickled, not parquet: Arrow's parquet reader can leave a thread that aborts the child at exit
    # ("terminate called without an active exception", apache/arrow#34314) after its forecast is out.
    features.to_pickle(tmp_path / "features.pkl")
    job = {"family": family, "model": str(tmp_path / "model"), "features": str(tmp_path / "features.pkl")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ALONE, str(tmp_path / "job.json"), ",".join(REFUSED)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    forecast = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(forecast, model.predict(features), rtol=1e-6, atol=1e-9)
