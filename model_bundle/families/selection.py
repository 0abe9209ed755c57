"""A choice among fitted candidates: one model for the dataset, each series its own, or a combination.

The candidates are fitted models of any family (:mod:`model_bundle.forecasters`); the choice names,
per entity, the candidates whose forecasts it takes (one: that candidate's; several: their median,
mean or weighted mean, step by step, each entity with its own weights). An entity the choice does
not name (one that appeared after training) takes the dataset's ``default``. Each candidate
forecasts only the rows that need it. Saved as each candidate's own files in a folder of its own and
the choice as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

COMBINERS = ("median", "mean", "weighted")


def combine(forecasts: Sequence[np.ndarray], how: str, weights: Sequence[float] | None = None) -> np.ndarray:
    """Candidates' ``forecasts`` of the same rows combined step by step: their median, mean, or mean
    weighted by ``weights`` (``how`` = ``weighted``)."""
    stacked = np.stack(forecasts)
    if how == "weighted":
        return np.asarray(np.average(stacked, axis=0, weights=weights))
    return np.asarray((np.median if how == "median" else np.mean)(stacked, axis=0))


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
        default_weights: list[float] | None = None,
        weights: dict[str, list[float]] | None = None,
    ):
        unknown = {name for names in [default, *choice.values()] for name in names} - set(members)
        if unknown:
            raise ValueError(f"the choice names candidates that are not members: {sorted(unknown)}")
        if combine not in COMBINERS:
            raise ValueError(f"combine must be one of {COMBINERS}, not {combine!r}")
        if not default:
            raise ValueError("the dataset's default names no candidate")
        self.default_weights: list[float] | None = None
        self.weights: dict[str, list[float]] = {}
        if combine == "weighted":
            own = {str(e): list(w) for e, w in (weights or {}).items()}
            short = [str(e) for e, names in choice.items() if len(own.get(str(e), [])) != len(names)]
            if default_weights is None or len(default_weights) != len(default):
                short.insert(0, "the default")
            if short or default_weights is None:
                raise ValueError(
                    "a weighted combination needs one weight per candidate of the default and of every series the "
                    f"choice names; missing or of another length for {len(short)}: {', '.join(short[:5])}"
                )
            self.default_weights, self.weights = list(default_weights), own
        self.members, self.families = members, families
        self.default, self.choice = list(default), {str(e): list(n) for e, n in choice.items()}
        self.entity_column, self.combine = entity_column, combine
        self.params: dict[str, Any] = {"default": "+".join(self.default), "combine": combine, "members": len(members)}

    # A choice per series needs each row's entity, which a model of feature rows alone is not given:
    # rows come with their entity, time and history, as a per-series family's do.
    per_series: ClassVar[bool] = True

    def chosen(self, entity: str) -> list[str]:
        return self.choice.get(str(entity), self.default)

    def weights_of(self, entity: str) -> list[float] | None:
        """The weights of ``entity``'s candidates in a weighted combination (None: not weighted)."""
        return self.weights.get(str(entity), self.default_weights) if self.combine == "weighted" else None

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if self.entity_column not in features.columns:
            entities = [""] * len(features)  # no entity: every row takes the default
        else:
            entities = list(features[self.entity_column].astype(str))
        picks = [self.chosen(e) for e in entities]
        needed: dict[str, list[int]] = {}
        for row, names in enumerate(picks):
            for name in names:
                needed.setdefault(name, []).append(row)
        forecasts: dict[str, dict[int, np.ndarray]] = {}
        for name, rows in needed.items():
            predicted = np.asarray(self.members[name].predict(features.iloc[rows]), dtype=np.float64)
            forecasts[name] = dict(zip(rows, predicted, strict=True))
        return np.stack(
            [
                combine([forecasts[n][row] for n in names], self.combine, self.weights_of(entities[row]))
                for row, names in enumerate(picks)
            ]
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, member in self.members.items():
            member.save(directory / "members" / name)
        meta: dict[str, Any] = {
            "families": self.families,
            "default": self.default,
            "choice": self.choice,
            "entity_column": self.entity_column,
            "combine": self.combine,
        }
        if self.combine == "weighted":
            meta |= {"default_weights": self.default_weights, "weights": self.weights}
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
            default_weights=meta.get("default_weights"),
            weights=meta.get("weights"),
        )
