"""What a batch forecast issued, as a typed value (it crosses task boundaries)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict


class IssuedForecasts(BaseModel):
    """The forecasts a champion issued for every entity from the features of one day, and those of the
    versions that forecast in its shadow."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    data_date: date
    model_name: str
    model_version: str
    entities: int  # how many were forecast (their names are in the table, not in a value passed between tasks)
    rows: int  # the champion's and the shadow versions'
    shadow_versions: list[str] = []  # versions that forecast the same rows without serving
