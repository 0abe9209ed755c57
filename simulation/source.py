"""The dataset's raw source as the simulation reveals it, one day at a time, and the regime changes
(:class:`Shift`) it can inject into one entity's target.

The platform reads the source through the simulation's copy of the dataset config, which points at
copies of the source files that stop at the end of the simulated day: no later row exists yet when
the day's DAGs run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from core.dataset import DatasetConfig, Layout
from core.objects import parquet_frame
from core.settings import Settings
from core.windows import end_of

SHIFTS = ("none", "level", "scale", "level_scale", "daily_cycle")


@dataclass(frozen=True)
class Shift:
    """A change of regime injected into one entity's target from the start of a day on.

    ``level`` moves the target up by ``level`` of its standard deviations; ``scale`` widens its swings
    around its mean ``scale`` times; ``level_scale`` does both; ``daily_cycle`` adds a daily cycle of
    ``level`` standard deviations (peak at 06:00 UTC), a change of how the target moves. Mean and
    standard deviation are the entity's over the 28 days before the shift, so the change is the same
    size on any dataset. A model that forecasts changes from the current value absorbs a level and much
    of a scale change by itself; a new daily cycle it must learn.
    """

    kind: str = "none"
    start: date | None = None
    entity: str | None = None  # None: the first entity
    level: float = 2.0
    scale: float = 2.0

    def apply(self, frame: pd.DataFrame, stamps: pd.Series, rows: pd.Series, target: str) -> pd.DataFrame:
        """``frame`` with ``rows`` (one entity's) changed from the shift's start on."""
        if self.kind == "none" or self.start is None:
            return frame
        begin = pd.Timestamp(datetime.combine(self.start, clock(), tzinfo=UTC))
        after = rows & (stamps >= begin)
        before = frame.loc[rows & (stamps < begin) & (stamps >= begin - pd.Timedelta(days=28)), target]
        mean, std = float(before.mean()), float(before.std())
        out = frame.copy()
        values = out.loc[after, target].astype("float64")
        if self.kind in ("scale", "level_scale"):
            values = mean + self.scale * (values - mean)
        if self.kind in ("level", "level_scale"):
            values = values + self.level * std
        if self.kind == "daily_cycle":
            hours = stamps[after].dt.hour.to_numpy()
            values = values + self.level * std * np.sin(2 * np.pi * hours / 24)
        out.loc[after, target] = values
        return out


class RevealedSource:
    """The dataset's raw source files, revealed up to the end of a day into copies the simulation's
    dataset config reads (with a :class:`Shift` injected, when one is asked for).

    The copies are local files, or objects of an S3 bucket when ``s3`` (a client of S3 itself, as the
    source's producer writes) and ``bucket`` are given.
    """

    def __init__(
        self,
        dataset: DatasetConfig,
        original: Path,
        folder: Path,
        settings: Settings,
        s3: Any = None,
        bucket: str | None = None,
    ):
        from data_pipeline.sources import read_bytes

        self.dataset, self.folder, self.s3, self.bucket = dataset, folder, s3, bucket
        folder.mkdir(parents=True, exist_ok=True)
        uris = dataset.source.uris or {"all": str(dataset.source.uri)}
        self.frames: dict[str, pd.DataFrame] = {}
        self.stamps: dict[str, pd.Series] = {}
        self.paths: dict[str, Path] = {}
        for key, uri in uris.items():
            data = read_bytes(dataset.resolve_uri(uri), settings)
            if dataset.source.format == "parquet":
                frame = parquet_frame(data)
            else:  # exact floats: the revealed copy holds the same values as the source
                frame = pd.read_csv(io.BytesIO(data), float_precision="round_trip")
            stamps = pd.to_datetime(frame[dataset.timestamp_column], format=dataset.source.timestamp_format, utc=True)
            self.frames[key], self.stamps[key] = frame, stamps
            self.paths[key] = folder / f"{key}.{dataset.source.format}"
        self.shift: Shift = Shift()
        self.shifted_entity: str | None = None
        self.config = self._write_config(original)

    def entities(self) -> list[str]:
        if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
            return sorted(self.frames)
        return sorted(self.frames["all"][self.dataset.entity_column].astype(str).unique())

    def inject(self, shift: Shift) -> None:
        """Change the shifted entity's target in the frames the days are revealed from (before any
        day is revealed)."""
        self.shift = shift
        if shift.kind == "none":
            return
        entity = shift.entity or self.entities()[0]
        if entity not in self.entities():
            raise ValueError(f"no entity {entity!r} to shift; there are {self.entities()}")
        for key, frame in self.frames.items():
            if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
                rows = pd.Series(key == entity, index=frame.index)
            else:
                rows = frame[self.dataset.entity_column].astype(str) == entity
            self.frames[key] = shift.apply(frame, self.stamps[key], rows, self.dataset.target)
        self.shifted_entity = entity

    def _uri(self, key: str) -> str:
        if self.s3 is not None:
            return f"s3://{self.bucket}/sources/{self.paths[key].name}"
        return str(self.paths[key])

    def _write_config(self, original: Path) -> Path:
        raw = yaml.safe_load(original.read_text())
        if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
            raw["source"]["uris"] = {key: self._uri(key) for key in self.paths}
        else:
            raw["source"]["uri"] = self._uri("all")
        # The replayed source holds no day after its last: the daily DAG schedules no run of its own
        # (a scheduler would otherwise start one for the newest day by the clock).
        raw.setdefault("daily", {})["end"] = self.last_day().isoformat()
        path = self.folder.parent / original.name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def first_day(self) -> date:
        return min(s.min() for s in self.stamps.values()).date()

    def last_day(self) -> date:
        return max(s.max() for s in self.stamps.values()).date()

    def reveal(self, day: date, corrupt: bool = False) -> None:
        """Every source file as it would be at the end of ``day``; with ``corrupt``, the day's rows of
        the first file arrive with three bad values of the target (two far out of the dataset's value
        range, one missing), as a faulty export would deliver them."""
        end = pd.Timestamp(end_of(day))
        for index, (key, frame) in enumerate(self.frames.items()):
            known = frame[self.stamps[key] < end]
            if corrupt and index == 0:
                known = known.copy()
                rows = known.index[self.stamps[key][known.index] >= end - pd.Timedelta(days=1)]
                target = self.dataset.target
                known[target] = known[target].astype("float64")
                high = self.dataset.quality.value_ranges.get(target, (0.0, 1e6))[1]
                known.loc[rows[:2], target] = 10 * abs(high) + 1000.0
                known.loc[rows[2:3], target] = np.nan
            buffer = io.BytesIO()
            if self.dataset.source.format == "parquet":
                known.to_parquet(buffer, index=False)
            else:
                known.to_csv(buffer, index=False)
            self._publish(key, buffer.getvalue())

    def _publish(self, key: str, data: bytes) -> None:
        if self.s3 is not None:
            self.s3.put_object(Bucket=self.bucket, Key=f"sources/{self.paths[key].name}", Body=data)
        else:
            from core.files import write_atomically_bytes

            write_atomically_bytes(data, self.paths[key])

    def day_rows(self, day: date) -> pd.DataFrame:
        """The source's rows of ``day`` (shifted, when a shift is injected), every file's together, keyed
        by entity and timestamp: what the day's validated partition must hold."""
        start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
        parts = []
        for key, frame in self.frames.items():
            rows = frame[(self.stamps[key] >= start) & (self.stamps[key] < start + pd.Timedelta(days=1))].copy()
            rows["_stamp"] = self.stamps[key][rows.index]
            if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
                rows[self.dataset.entity_column] = key
            parts.append(rows)
        out = pd.concat(parts, ignore_index=True)
        out[self.dataset.entity_column] = out[self.dataset.entity_column].astype(str)
        return out


def default_start(dataset: DatasetConfig, first_day: date) -> date:
    """The first day that leaves a whole training window of history before it (a year when the
    window is unbounded)."""
    window = dataset.training.window or timedelta(days=365)
    return first_day + timedelta(days=window.days + 1)
