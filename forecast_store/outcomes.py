"""What a batch forecast issued, as a typed value (it crosses task boundaries)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict


class IssuedForecasts(BaseModel):
    """The forecasts a champion issued for every entity from the features of one day."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    data_date: date
    model_name: str
    model_version: str
    entities: list[str]
    rows: int
