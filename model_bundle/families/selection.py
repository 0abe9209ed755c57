"""A choice among fitted candidates: one model for the dataset, each series its own, or a combination.

The candidates are fitted models of any family (:mod:`model_bundle.forecasters`); the choice names,
per entity, the candidates whose forecasts it takes (one: that candidate's; several: their median
or mean, step by step). An entity the choice does not name (one that appeared after training) takes
the dataset's ``default``. Each candidate forecasts only the rows that need it. Saved as each
candidate's own files in a folder of its own and the choice as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

COMBINERS = ("median", "mean")


class SelectedForecaster:
    family: ClassVar[str] = "selection"
    # A bundle of chosen candidates may hold any family: it pins every family's library.
    serving_requirements: ClassVar[tuple[str, ...]] = ("statsforecast", "xgboost", "lightgbm")

    def __init__(
        self,
        members: dict[str, Any],
        families: dict[str, str],
        default: list[str],
        choice: dict[str, list[str]],
        entity_column: str,
        combine: str = "median",
    ):
        unknown = {name for names in [default, *choice.values()] for name in names} - set(members)
        if unknown:
            raise ValueError(f"the choice names candidates that are not members: {sorted(unknown)}")
        if combine not in COMBINERS:
            raise ValueError(f"combine must be one of {COMBINERS}, not {combine!r}")
        if not default:
            raise ValueError("the dataset's default names no candidate")
        self.members, self.families = members, families
        self.default, self.choice = list(default), {str(e): list(n) for e, n in choice.items()}
        self.entity_column, self.combine = entity_column, combine
        self.params: dict[str, Any] = {"default": "+".join(self.default), "combine": combine, "members": len(members)}

    # A choice per series needs each row's entity, which a model of feature rows alone is not given:
    # rows come with their entity, time and history, as a per-series family's do.
    per_series: ClassVar[bool] = True

    def chosen(self, entity: str) -> list[str]:
        return self.choice.get(str(entity), self.default)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if self.entity_column not in features.columns:
            picks = [self.default] * len(features)
        else:
            picks = [self.chosen(e) for e in features[self.entity_column].astype(str)]
        needed: dict[str, list[int]] = {}
        for row, names in enumerate(picks):
            for name in names:
                needed.setdefault(name, []).append(row)
        forecasts: dict[str, dict[int, np.ndarray]] = {}
        for name, rows in needed.items():
            predicted = np.asarray(self.members[name].predict(features.iloc[rows]), dtype=np.float64)
            forecasts[name] = dict(zip(rows, predicted, strict=True))
        combine = np.median if self.combine == "median" else np.mean
        return np.stack([combine([forecasts[n][row] for n in names], axis=0) for row, names in enumerate(picks)])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, member in self.members.items():
            member.save(directory / "members" / name)
        meta = {
            "families": self.families,
            "default": self.default,
            "choice": self.choice,
            "entity_column": self.entity_column,
            "combine": self.combine,
        }
        (directory / "selection.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> SelectedForecaster:
        from model_bundle.forecasters import load

        meta = json.loads((directory / "selection.json").read_text())
        members = {name: load(family, directory / "members" / name) for name, family in meta["families"].items()}
        return cls(
            members=members,
            families=meta["families"],
            default=meta["default"],
            choice=meta["choice"],
            entity_column=meta["entity_column"],
            combine=meta["combine"],
        )
