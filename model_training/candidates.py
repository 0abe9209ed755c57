"""One candidate of a selection, evaluated on its own: what the choice needs from it, and nothing else.

A candidate's evaluation holds its forecasts of every backtest fold of the training rows (the choice
is made on these), the same for the folds of each fold's own training rows (so that the run's
backtest can choose inside each fold, on what that fold knew), and the candidate fitted on all rows.
Every candidate is evaluated on the same rows and the same folds, so their forecasts line up row
by row; each can be evaluated in a process (a training pod) of its own, and the choice
(:func:`model_training.selection.assemble`) only reads them.

Saved as one zip object (a local file or an ``s3://`` object): ``evaluation.json``, the forecasts as
``forecasts.npz`` (no pickles) and the fitted model's own files under ``model/``.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.columns import label_names
from core.dataset import DatasetConfig
from core.objects import join, read_object, write_object
from core.settings import Settings
from model_bundle.forecasters import Predictor
from model_training import forecasters
from model_training.backtest import fold_frames
from model_training.devices import Device

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """One candidate on one training set (see the module's text)."""

    name: str
    forecasts: list[np.ndarray]  # per fold of the rows: forecasts of the fold's test rows, (rows, H)
    inner: list[list[np.ndarray]]  # per fold: the same over the folds of that fold's training rows
    model: Predictor | None  # fitted on all the rows (None: not yet, until it is chosen)
    fit_seconds: float  # every fit of the evaluation
    # Series its newest fit could not fit (too short, constant, a failed fit), which forecast their last
    # value: the leaderboard shows how many.
    series_left_out: int = 0
    rows: str = ""  # the fingerprint of the rows it was evaluated on: a choice reads only its own rows'

    def check_rows(self, frame: pd.DataFrame) -> None:
        """Refuse an evaluation made on other rows than ``frame`` (its forecasts would not line up)."""
        from feature_store.training_set import fingerprint

        if self.rows != fingerprint(frame):
            raise ValueError(
                f"the evaluation of {self.name} was made on other rows ({self.rows[:12] or 'unknown'}) than the "
                f"training set's ({fingerprint(frame)[:12]}): evaluate the candidates on this training set"
            )

    @property
    def params(self) -> dict[str, Any]:
        return {} if self.model is None else dict(self.model.params)

    def fitted(self, frame: pd.DataFrame, dataset: DatasetConfig, device: Device) -> Predictor:
        """The candidate fitted on all of ``frame``: the evaluation's, or fitted now (and kept)."""
        if self.model is None:
            started = time.monotonic()
            self.model = fit(frame, dataset, self.name, device)
            self.fit_seconds += time.monotonic() - started
        return self.model


def fit(rows: pd.DataFrame, dataset: DatasetConfig, name: str, device: Device) -> forecasters.Forecaster:
    """Candidate ``name`` fitted on ``rows``."""
    targets = rows[label_names(dataset)].to_numpy(dtype=np.float64)
    return forecasters.create(name, dataset, device=device).fit(rows, targets)


def location(prefix: str, name: str) -> str:
    """Where the evaluation of candidate ``name`` is handed over, under a run's ``prefix``."""
    return join(prefix, f"{name}.zip")


def evaluate(
    frame: pd.DataFrame,
    dataset: DatasetConfig,
    name: str,
    device: Device,
    nested: bool = True,
    final: bool = True,
) -> Evaluation:
    """Backtest candidate ``name`` on the folds of ``frame`` (and, when ``nested``, on the folds of each
    fold's training rows), then, when ``final``, fit it on all of ``frame`` (a process that also
    chooses fits only what it chose: :meth:`Evaluation.fitted`)."""
    from feature_store.training_set import fingerprint

    started = time.monotonic()

    def forecasts_of(rows: pd.DataFrame) -> list[np.ndarray]:
        return [
            forecasters.forecast_rows(fit(train, dataset, name, device), test, rows, dataset)
            for _, train, test in fold_frames(rows, dataset)
        ]

    outer, inner, newest = [], [], None
    for _, train, test in fold_frames(frame, dataset):
        newest = fit(train, dataset, name, device)
        outer.append(forecasters.forecast_rows(newest, test, frame, dataset))
        if nested:
            inner.append(forecasts_of(train))
    model = fit(frame, dataset, name, device) if final else None
    newest_fit = model if model is not None else newest
    left_out = int(newest_fit.params.get("series_left_out", 0)) if newest_fit is not None else 0
    seconds = time.monotonic() - started
    log.info("evaluated candidate %s on %d rows in %.1fs", name, len(frame), seconds)
    rows = fingerprint(frame)
    return Evaluation(name, outer, inner, model, seconds, series_left_out=left_out, rows=rows)


def save(evaluation: Evaluation, where: str, settings: Settings) -> str:
    """Write ``evaluation`` as one zip object at ``where``; returns ``where``."""
    arrays = {f"outer_{i}": f for i, f in enumerate(evaluation.forecasts)}
    for i, folds in enumerate(evaluation.inner):
        arrays |= {f"inner_{i}_{j}": f for j, f in enumerate(folds)}
    meta = {
        "name": evaluation.name,
        "folds": len(evaluation.forecasts),
        "inner_folds": [len(folds) for folds in evaluation.inner],
        "fit_seconds": evaluation.fit_seconds,
        "series_left_out": evaluation.series_left_out,
        "rows": evaluation.rows,
    }
    if evaluation.model is None:
        raise ValueError(f"the evaluation of {evaluation.name} holds no fitted model to hand over")
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as directory, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        evaluation.model.save(Path(directory))
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                archive.write(path, f"model/{path.relative_to(directory)}")
        packed = io.BytesIO()
        np.savez(packed, **arrays)  # type: ignore[arg-type]
        archive.writestr("forecasts.npz", packed.getvalue())
        archive.writestr("evaluation.json", json.dumps(meta, indent=2))
    return write_object(where, buffer.getvalue(), settings)


def load(where: str, settings: Settings) -> Evaluation:
    """The evaluation :func:`save` wrote at ``where``, its model loaded as a bundle loads it."""
    with zipfile.ZipFile(io.BytesIO(read_object(where, settings))) as archive:
        meta = json.loads(archive.read("evaluation.json"))
        with np.load(io.BytesIO(archive.read("forecasts.npz")), allow_pickle=False) as arrays:
            outer = [arrays[f"outer_{i}"] for i in range(meta["folds"])]
            inner = [[arrays[f"inner_{i}_{j}"] for j in range(n)] for i, n in enumerate(meta["inner_folds"])]
        with tempfile.TemporaryDirectory() as directory:
            for member in archive.namelist():
                if member.startswith("model/"):
                    archive.extract(member, directory)
            model = forecasters.load(meta["name"], Path(directory) / "model")
    left_out = int(meta.get("series_left_out", 0))
    return Evaluation(meta["name"], outer, inner, model, meta["fit_seconds"], left_out, meta.get("rows", ""))
