"""Ingest: raw source files -> one long table -> the landing partition of a logical date."""

from __future__ import annotations

import io
import logging
from datetime import date

import pandas as pd

from core.dataset import DatasetConfig, Layout
from core.objects import exists, parquet_frame, read_object, write_parquet
from core.partitions import landing_path, validated_path
from core.settings import Settings
from core.windows import end_of
from data_pipeline.outcomes import Landed
from data_pipeline.sources import SourceError, read_bytes

log = logging.getLogger(__name__)


def _read_table(data: bytes, dataset: DatasetConfig, uri: str) -> pd.DataFrame:
    try:
        if dataset.source.format == "parquet":
            return parquet_frame(data)
        return pd.read_csv(io.BytesIO(data))
    except (ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"cannot parse {uri} as {dataset.source.format}: {exc}") from exc


def load_source(dataset: DatasetConfig, settings: Settings) -> pd.DataFrame:
    """Read every source file into one long frame with the config's columns.

    Columns that the config does not name are dropped; missing ones are kept missing so that
    validation, not ingest, reports them.
    """
    frames: list[pd.DataFrame] = []
    if dataset.source.layout is Layout.WIDE_PER_ENTITY:
        for entity, uri in dataset.source.uris.items():
            resolved = dataset.resolve_uri(uri)
            frame = _read_table(read_bytes(resolved, settings), dataset, resolved)
            frame.insert(0, dataset.entity_column, entity)
            frames.append(frame)
    else:
        assert dataset.source.uri is not None
        resolved = dataset.resolve_uri(dataset.source.uri)
        frames.append(_read_table(read_bytes(resolved, settings), dataset, resolved))
    raw = pd.concat(frames, ignore_index=True)
    keep = [c for c in dataset.raw_columns if c in raw.columns]
    raw = raw[keep].copy()
    ts = dataset.timestamp_column
    if ts in raw.columns:
        raw[ts] = pd.to_datetime(raw[ts], format=dataset.source.timestamp_format, utc=True)
    raw[dataset.entity_column] = raw[dataset.entity_column].astype(str)
    return raw


def already_landed(dataset: DatasetConfig, logical_date: date, settings: Settings) -> Landed | None:
    """The partition landed for the date, when it also passed the data check (the daily DAG made
    both): a retraining of that day reuses it instead of reading the source again."""
    path = landing_path(settings, dataset, logical_date)
    if not (exists(path, settings) and exists(validated_path(settings, dataset, logical_date), settings)):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_metadata(pa.BufferReader(read_object(path, settings))).num_rows
    return Landed(dataset=dataset.name, logical_date=logical_date, path=path, rows=rows)


class DayNotArrivedError(SourceError):
    """The source does not hold the day yet: a file that arrives late. Retried, as a source that is
    unavailable for a while is, and nothing is landed meanwhile."""


def require_day(raw: pd.DataFrame, dataset: DatasetConfig, logical_date: date) -> None:
    """Refuse a source whose newest row of some entity lies more than the dataset's ``max_gap``
    before the end of ``logical_date``: the day has not arrived for that entity (freshness alone,
    ``max_age``, lets a whole day be missing when it allows more than a day)."""
    end = pd.Timestamp(end_of(logical_date))
    due = end - pd.Timedelta(dataset.quality.max_gap)
    stamps = raw[dataset.timestamp_column]
    newest = stamps[stamps < end].groupby(raw[dataset.entity_column]).max()
    late = {str(entity): stamp for entity, stamp in newest.items() if pd.isna(stamp) or stamp < due}
    if late or newest.empty:
        shown = ", ".join(f"{entity} (newest row {stamp})" for entity, stamp in sorted(late.items())) or "every entity"
        raise DayNotArrivedError(
            f"{dataset.name}'s source does not hold {logical_date} yet: {shown}; rows up to {due} at least "
            f"are due (the day's end less max_gap). Nothing was landed; the task retries"
        )


def ingest(dataset: DatasetConfig, logical_date: date, settings: Settings, complete_day: bool = False) -> Landed:
    """Land the source as known at the end of ``logical_date``; re-running replaces the partition.

    With ``complete_day`` (the daily run of a day), a source that does not hold the day yet raises
    :class:`DayNotArrivedError` before anything is written.
    """
    raw = load_source(dataset, settings)
    ts = dataset.timestamp_column
    if ts in raw.columns:
        if complete_day:
            require_day(raw, dataset, logical_date)
        raw = raw[raw[ts] < pd.Timestamp(end_of(logical_date))]
        raw = raw.sort_values([dataset.entity_column, ts], kind="stable").reset_index(drop=True)
    path = landing_path(settings, dataset, logical_date)
    write_parquet(raw, path, settings)
    log.info("landed %d rows of %s for %s at %s", len(raw), dataset.name, logical_date, path)
    return Landed(dataset=dataset.name, logical_date=logical_date, path=path, rows=len(raw))
