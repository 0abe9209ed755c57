"""What the data steps made, as typed values: they cross task boundaries and name their files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field

from core.outcomes import Outcome


class Landed(Outcome):
    """A landing partition: the source as known at the end of its logical date."""

    dataset: str
    logical_date: date
    path: str  # a local path or an s3:// object (core.objects)
    rows: int


class FailedExpectation(Outcome):
    expectation: str
    column: str | None
    details: str

    def __str__(self) -> str:
        where = f" on {self.column}" if self.column else ""
        return f"{self.expectation}{where}: {self.details}"


class ValidationOutcome(Outcome):
    """The data-quality gate's result on one partition; ``validated`` is set once it passed."""

    logical_date: date | None = None
    success: bool
    evaluated: int
    failures: list[FailedExpectation] = Field(default_factory=list)
    result_path: str | None = None
    data_docs_path: Path | None = None
    validated: str | None = None

    @property
    def lineage(self) -> dict[str, str]:
        """What a model version trained on this partition records of the check (version tags)."""
        verdict = "passed" if self.success else "failed"
        return {"ge_result": f"{verdict}: {self.evaluated} expectations", "ge_result_path": str(self.result_path)}
