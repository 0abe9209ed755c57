"""The base of the typed values that the platform's steps return.

They cross task boundaries (Airflow passes them between tasks as XComs) and land in MLflow as JSON,
so they are frozen pydantic models, importable without pandas, Evidently or MLflow.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Outcome(BaseModel):
    """A step's result: frozen, so a task downstream cannot change what an upstream one returned."""

    model_config = ConfigDict(frozen=True)

    def as_dict(self) -> dict[str, object]:
        """The JSON form MLflow stores (dates as ISO strings, enums as their values)."""
        return self.model_dump(mode="json")
