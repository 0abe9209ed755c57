"""Ingest: raw source files -> one long table -> the landing partition of a logical date.

The source is read a chunk of rows at a time and spooled to local Parquet; DuckDB (the engine of
Feast's offline store here) orders the spool by entity and time, spilling to disk past its memory
limit, and the ordered rows stream into the landing file a row group at a time. A process holds a
chunk of the source, never the whole table: a source of a hundred thousand series lands in the same
memory as one of a thousand.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd

from core.dataset import DatasetConfig, Layout
from core.objects import exists, parquet_parts, read_object
from core.partitions import landing_path, validated_path
from core.settings import Settings
from core.windows import end_of
from data_pipeline.outcomes import Landed
from data_pipeline.sources import SourceError, readable

log = logging.getLogger(__name__)

# Source rows parsed at a time, and rows per row group of the landing file: a row group of a few
# hundred series' days, so a reader of some series decodes little more than their rows.
CHUNK_ROWS = 1_000_000
ROW_GROUP_ROWS = 1 << 17
# DuckDB's sort of the spool keeps this much in memory and spills the rest to the spool's folder.
SORT_MEMORY = "1GB"
ORDER_COLUMN = "_source_row"


def _chunks(source: str | bytes, dataset: DatasetConfig, uri: str) -> Iterator[pd.DataFrame]:
    """The file's rows, ``CHUNK_ROWS`` at a time, as frames of its own columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if dataset.source.format == "parquet":
            parquet = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, bytes) else source)
            batches = parquet.iter_batches(batch_size=CHUNK_ROWS, use_threads=False)
            read = 0
            for batch in batches:
                read += 1
                yield batch.to_pandas(use_threads=False)
            if not read:
                yield parquet.schema_arrow.empty_table().to_pandas()
            return

        def opened() -> io.BytesIO | str:
            return io.BytesIO(source) if isinstance(source, bytes) else source

        read = 0
        with pd.read_csv(opened(), chunksize=CHUNK_ROWS) as reader:
            for frame in reader:
                read += 1
                yield frame
        if not read:  # a header and no row: its columns
            yield pd.read_csv(opened(), nrows=0)
    except FileNotFoundError as exc:  # gone since the policy saw it
        raise SourceError(f"source file not found: {uri}") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"cannot parse {uri} as {dataset.source.format}: {exc}") from exc


def _normalized(raw: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """The config's columns of ``raw`` (those it lacks stay missing, for validation to report),
    timestamps in UTC to the nanosecond, entities as text."""
    keep = [c for c in dataset.raw_columns if c in raw.columns]
    raw = raw[keep].copy()
    ts = dataset.timestamp_column
    if ts in raw.columns:
        raw[ts] = pd.to_datetime(raw[ts], format=dataset.source.timestamp_format, utc=True).dt.as_unit("ns")
    raw[dataset.entity_column] = raw[dataset.entity_column].astype(str)
    return raw


def source_chunks(dataset: DatasetConfig, settings: Settings) -> Iterator[pd.DataFrame]:
    """Every source file's rows a chunk at a time, with the config's columns.

    Columns that the config does not name are dropped; missing ones are kept missing so that
    validation, not ingest, reports them.
    """
    if dataset.source.layout is Layout.WIDE_PER_ENTITY:
        for entity, uri in dataset.source.uris.items():
            resolved = dataset.resolve_uri(uri)
            for frame in _chunks(readable(resolved, settings), dataset, resolved):
                frame.insert(0, dataset.entity_column, entity)
                yield _normalized(frame, dataset)
        return
    assert dataset.source.uri is not None
    resolved = dataset.resolve_uri(dataset.source.uri)
    for frame in _chunks(readable(resolved, settings), dataset, resolved):
        yield _normalized(frame, dataset)


def load_source(dataset: DatasetConfig, settings: Settings) -> pd.DataFrame:
    """Every source file's rows in one long frame (:func:`source_chunks` joined): for tools that
    study a whole dataset in memory; the daily ingest streams instead."""
    return pd.concat(list(source_chunks(dataset, settings)), ignore_index=True)


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


def newest_rows(raw: pd.DataFrame, dataset: DatasetConfig, logical_date: date) -> pd.Series:
    """Each entity's newest timestamp before the end of ``logical_date`` (rows after it are not
    known yet); entities without one are absent."""
    stamps = raw[dataset.timestamp_column]
    return stamps[stamps < pd.Timestamp(end_of(logical_date))].groupby(raw[dataset.entity_column]).max()


def require_day(newest: pd.Series, dataset: DatasetConfig, logical_date: date) -> None:
    """Refuse a source whose newest row of some entity (``newest``, :func:`newest_rows`) lies more
    than the dataset's ``max_gap`` before the end of ``logical_date``: the day has not arrived for
    that entity (freshness alone, ``max_age``, lets a whole day be missing when it allows more than a
    day)."""
    due = pd.Timestamp(end_of(logical_date)) - pd.Timedelta(dataset.quality.max_gap)
    late = {str(entity): stamp for entity, stamp in newest.items() if pd.isna(stamp) or stamp < due}
    if late or newest.empty:
        shown = ", ".join(f"{entity} (newest row {stamp})" for entity, stamp in sorted(late.items())) or "every entity"
        raise DayNotArrivedError(
            f"{dataset.name}'s source does not hold {logical_date} yet: {shown}; rows up to {due} at least "
            f"are due (the day's end less max_gap). Nothing was landed; the task retries"
        )


def _quoted(column: str) -> str:
    """``column`` as a SQL identifier, whatever characters the dataset's config gave its name."""
    return '"' + column.replace('"', '""') + '"'


class _Spool:
    """The source's rows known at the end of a date, written as they are read: one local Parquet
    file per chunk, each row numbered in source order so that the ordering is stable."""

    def __init__(self, folder: Path, dataset: DatasetConfig, logical_date: date) -> None:
        self.folder = folder
        self.dataset = dataset
        self.logical_date = logical_date
        self.rows = 0
        self.files = 0
        self.empty: pd.DataFrame | None = None
        self._newest: list[pd.Series] = []

    def add(self, raw: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        ts = self.dataset.timestamp_column
        if self.empty is None:
            self.empty = raw.iloc[0:0]
        if ts in raw.columns:
            self._newest.append(newest_rows(raw, self.dataset, self.logical_date))
            raw = raw[raw[ts] < pd.Timestamp(end_of(self.logical_date))]
        if raw.empty:
            return
        table = pa.Table.from_pandas(raw, preserve_index=False)
        if ts in raw.columns:
            # Nanoseconds as integers: DuckDB's timestamps with a zone hold microseconds.
            table = table.set_column(table.schema.get_field_index(ts), ts, pc.cast(table[ts], pa.int64()))
        table = table.append_column(ORDER_COLUMN, pa.array(range(self.rows, self.rows + len(raw)), pa.int64()))
        pq.write_table(table, self.folder / f"{self.files:06d}.parquet")
        self.rows += len(raw)
        self.files += 1

    def newest(self) -> pd.Series:
        newest = [n for n in self._newest if not n.empty]
        return pd.concat(newest).groupby(level=0).max() if newest else pd.Series(dtype="datetime64[ns, UTC]")

    def ordered(self) -> Iterator[pd.DataFrame]:
        """The spooled rows by entity, then time (missing times last), then source order, a row
        group's worth at a time."""
        import duckdb
        import pyarrow as pa

        ts, entity = self.dataset.timestamp_column, self.dataset.entity_column
        assert self.empty is not None
        keys = [_quoted(c) for c in (entity, ts) if c in self.empty.columns]
        spilled = self.folder / "sort"
        connection = duckdb.connect(config={"memory_limit": SORT_MEMORY, "temp_directory": str(spilled), "threads": 1})
        try:
            query = (
                f"SELECT * EXCLUDE ({ORDER_COLUMN}) FROM read_parquet(?, union_by_name = true) "
                f"ORDER BY {', '.join(f'{k} NULLS LAST' for k in keys)}{', ' if keys else ''}{ORDER_COLUMN}"
            )
            reader = connection.sql(query, params=[str(self.folder / "*.parquet")]).to_arrow_reader(ROW_GROUP_ROWS)
            for batch in reader:
                table = pa.Table.from_batches([batch])
                if ts in table.column_names:
                    stamps = table[ts].cast(pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
                    table = table.set_column(table.schema.get_field_index(ts), ts, stamps)
                yield table.to_pandas(use_threads=False)
        finally:
            connection.close()


def ingest(dataset: DatasetConfig, logical_date: date, settings: Settings, complete_day: bool = False) -> Landed:
    """Land the source as known at the end of ``logical_date``, ordered by entity and time;
    re-running replaces the partition.

    With ``complete_day`` (the daily run of a day), a source that does not hold the day yet raises
    :class:`DayNotArrivedError` before anything is written.
    """
    path = landing_path(settings, dataset, logical_date)
    with tempfile.TemporaryDirectory(prefix="ingest") as folder:
        spool = _Spool(Path(folder), dataset, logical_date)
        for chunk in source_chunks(dataset, settings):
            spool.add(chunk)
        if spool.empty is None:
            raise SourceError(f"{dataset.name}'s source holds no file to read")
        if complete_day and dataset.timestamp_column in spool.empty.columns:
            require_day(spool.newest(), dataset, logical_date)
        with parquet_parts(path, settings) as landing:
            landing.write(spool.empty)  # the columns, should no row be known at the date's end
            if spool.rows:
                for part in spool.ordered():
                    landing.write(part)
    log.info("landed %d rows of %s for %s at %s", spool.rows, dataset.name, logical_date, path)
    return Landed(dataset=dataset.name, logical_date=logical_date, path=path, rows=spool.rows)
