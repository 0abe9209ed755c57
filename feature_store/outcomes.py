"""What the feature steps made, as typed values: they cross task boundaries and name their files."""

from __future__ import annotations

from datetime import date, datetime

from core.outcomes import Outcome


class OfflineFeatures(Outcome):
    """Feast's offline source of a dataset, rebuilt from the validated partition of ``logical_date``
    (which holds every row known at the end of that day)."""

    logical_date: date
    path: str  # a local path or an s3:// object (core.objects)
    rows: int


class Materialized(Outcome):
    """The interval ``[start, end)`` of the offline source that was loaded into the online store."""

    start: datetime
    end: datetime


class TrainingSet(Outcome):
    """A run's training rows and the holdout kept out of them, written once and read by every later step
    (tuning workers, the final training, the gates), so all of them see the same rows. Locations are
    local paths or ``s3://`` objects (:mod:`core.objects`): a training pod shares no folder with the task."""

    location: str
    holdout_location: str
    rows: int
    holdout_rows: int
    labelled_location: str | None = None  # every labelled row (training.refit): the served model's refit
    labelled_rows: int = 0
