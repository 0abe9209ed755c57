"""Files that tasks and training pods hand to each other: local paths, or objects under ``s3://``.

In the local profile a run's hand-overs (training set, holdout, parameters, the dataset config) are
files under the artifacts folder. In the compose and k8s profiles the task that writes one and the
pod that reads it share no filesystem, so they go through object storage (``MLOPS_EXCHANGE_URI``, a
MinIO or S3 prefix), and so do the data the tasks build on (``MLOPS_LAKE_URI``: partitions, data-check
results, the feature table). Callers hold a *location*, a string that is either, and never care which.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.files import replacing, write_atomically_bytes

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from core.settings import Settings

S3 = "s3://"


class ObjectStoreError(RuntimeError):
    """An object could not be read or written (missing, or the store unreachable)."""


class ObjectNotFoundError(ObjectStoreError):
    """Nothing is stored at the location (the store itself answered)."""


_MISSING = ("404", "NoSuchKey", "NotFound")


def is_remote(location: str) -> bool:
    return location.startswith(S3)


def join(location: str, *parts: str) -> str:
    """``location`` and ``parts`` with one ``/`` between each (a local path or an S3 key alike)."""
    return "/".join([location.rstrip("/"), *(part.strip("/") for part in parts)])


def split(location: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://bucket/key`` location."""
    parts = urlsplit(location)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"not an s3://bucket/key location: {location!r}")
    return parts.netloc, parts.path.lstrip("/")


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client of the settings' endpoint and credentials, with botocore's standard retries
    (``MLOPS_S3_MAX_ATTEMPTS`` attempts in all, the first included)."""
    import boto3
    from botocore.config import Config

    # total_max_attempts counts the first request too; botocore's max_attempts would add one to it.
    retries = {"total_max_attempts": settings.s3_max_attempts, "mode": "standard"}
    return boto3.client("s3", config=Config(retries=retries, connect_timeout=5), **settings.boto3_client_kwargs())


def read_object(location: str, settings: Settings) -> bytes:
    """The bytes at ``location``."""
    if not is_remote(location):
        try:
            return Path(location).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"not found: {location}") from exc
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split(location)
    try:
        return bytes(s3_client(settings).get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            raise ObjectNotFoundError(f"not found: {location}") from exc
        raise ObjectStoreError(f"cannot read {location} ({settings.s3_endpoint_url or 'AWS S3'}): {exc}") from exc
    except BotoCoreError as exc:
        raise ObjectStoreError(f"cannot read {location} ({settings.s3_endpoint_url or 'AWS S3'}): {exc}") from exc


def write_object(location: str, data: bytes, settings: Settings) -> str:
    """Write ``data`` at ``location`` whole or not at all (a local file is renamed into place; an S3
    object appears only once its upload completes); returns ``location``."""
    if not is_remote(location):
        write_atomically_bytes(data, Path(location))
        return location
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split(location)
    try:
        s3_client(settings).put_object(Bucket=bucket, Key=key, Body=data)
    except (BotoCoreError, ClientError) as exc:
        raise ObjectStoreError(f"cannot write {location} ({settings.s3_endpoint_url or 'AWS S3'}): {exc}") from exc
    return location


def copy_object(source: str, target: str, settings: Settings) -> str:
    """Copy the file or object at ``source`` to ``target``, whole or not at all (:func:`write_object`'s
    promise); an object is copied by the store itself, a file a block at a time. Returns ``target``."""
    if is_remote(source) and is_remote(target):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split(target)
        from_bucket, from_key = split(source)
        try:
            s3_client(settings).copy({"Bucket": from_bucket, "Key": from_key}, bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"cannot copy {source} to {target}: {exc}") from exc
        return target
    if not is_remote(source) and not is_remote(target):
        with replacing(Path(target)) as tmp:
            try:
                shutil.copyfile(source, tmp)
            except FileNotFoundError as exc:
                raise ObjectNotFoundError(f"not found: {source}") from exc
        return target
    return write_object(target, read_object(source, settings), settings)


def exists(location: str, settings: Settings) -> bool:
    if not is_remote(location):
        return Path(location).is_file()
    from botocore.exceptions import ClientError

    bucket, key = split(location)
    try:
        s3_client(settings).head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING:
            return False
        raise ObjectStoreError(f"cannot look up {location}: {exc}") from exc
    return True


def delete(location: str, settings: Settings) -> None:
    """Remove the file or object at ``location``; nothing there is no error."""
    if not is_remote(location):
        Path(location).unlink(missing_ok=True)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split(location)
    try:
        s3_client(settings).delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise ObjectStoreError(f"cannot delete {location}: {exc}") from exc


def list_locations(prefix: str, settings: Settings) -> list[str]:
    """Every file or object under the folder or key prefix ``prefix`` (at any depth), sorted."""
    if not is_remote(prefix):
        root = Path(prefix)
        return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(prefix)
    bucket, folder = parts.netloc, parts.path.strip("/")
    below = f"{folder}/" if folder else ""  # the folder's objects, not those of a sibling sharing its name's start
    found: list[str] = []
    try:
        for page in s3_client(settings).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=below):
            found += [f"{S3}{bucket}/{item['Key']}" for item in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as exc:
        raise ObjectStoreError(f"cannot list {prefix}: {exc}") from exc
    return sorted(found)


def read_parquet(location: str, settings: Settings) -> pd.DataFrame:
    if not is_remote(location):
        try:
            return parquet_frame(location)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"not found: {location}") from exc
    return parquet_frame(read_object(location, settings))


def parquet_frame(source: str | bytes) -> pd.DataFrame:
    """A parquet file (a local path, or its bytes) as a frame, read and decoded on the calling thread,
    with no thread of Arrow's pools started.

    Arrow's reads leave work on its I/O and CPU thread pools (pre-buffering's read-ahead futures,
    parallel column decoding); a process that exits while one of those threads still runs aborts
    during finalization ("terminate called without an active exception", exit -6) after its work is
    done (apache/arrow#34314, #39862): on busy cores a finished training task failed so. Pre-buffering
    off made it rarer (1 exit in 12 under the suite's load); the dataset reader without threads
    (``pq.read_table(..., use_threads=False)``) rarer still, yet one exit in 12 aborted again in CI,
    since that reader still starts an I/O pool thread. The file reader below starts none (a process
    that read through it has the threads the import started, no more; a test counts them). The price
    is a single-threaded decode of files that are read whole anyway.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    return table.to_pandas(use_threads=False)


def write_parquet(frame: pd.DataFrame, location: str, settings: Settings) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return write_object(location, buffer.getvalue(), settings)


class ParquetRows:
    """A Parquet file read a part at a time: the rows whose ``column`` holds some values, decoded from
    the row groups whose statistics say they can hold them (a file sorted by that column, as the
    platform writes its tables, gives each part the row groups of its values and few more).

    A local file is read where it lies; an object is downloaded once, compressed, and its parts
    decoded from memory. Reads are on the calling thread, as :func:`parquet_frame`'s.
    """

    def __init__(self, location: str, settings: Settings) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.location = location
        try:
            source = pa.BufferReader(read_object(location, settings)) if is_remote(location) else location
            self._file = pq.ParquetFile(source)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"not found: {location}") from exc

    @property
    def columns(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    def frame(self) -> pd.DataFrame:
        """Every row (a local file read as :func:`parquet_frame` reads it)."""
        if not is_remote(self.location):
            return parquet_frame(self.location)
        return self._file.read(use_threads=False).to_pandas(use_threads=False)

    def column(self, name: str) -> Iterator[pd.Series]:
        """The values of column ``name``, a row group at a time."""
        for group in range(self._file.num_row_groups):
            yield self._file.read_row_group(group, columns=[name], use_threads=False)[name].to_pandas()

    def bounds(self, column: str) -> tuple[Any, Any]:
        """The least and the greatest value of ``column``: from the row groups' statistics where each
        group has them, else read a row group at a time. A file without rows has no bounds
        (``ValueError``)."""
        chunks = [
            self._file.metadata.row_group(g).column(self._index(column)) for g in range(self._file.num_row_groups)
        ]
        stats = [chunk.statistics for chunk in chunks]
        if all(s is not None and s.has_min_max for s in stats):
            lows, highs = [s.min for s in stats], [s.max for s in stats]
        else:
            read = list(self.column(column))
            lows, highs = [v.min() for v in read if len(v)], [v.max() for v in read if len(v)]
        if not lows:
            raise ValueError(f"{self.location} holds no values of {column}")
        return min(lows), max(highs)

    def _index(self, column: str) -> int:
        return int(self._file.schema_arrow.get_field_index(column))

    @property
    def rows(self) -> int:
        """How many rows the file holds (its footer says)."""
        return int(self._file.metadata.num_rows)

    def values(self, column: str) -> list[Any]:
        """The distinct values of ``column``, sorted: read a row group at a time, so memory holds
        one group's column and the distinct values, not the whole column."""
        import pyarrow as pa
        import pyarrow.compute as pc

        seen = [
            pc.unique(self._file.read_row_group(group, columns=[column], use_threads=False)[column])
            for group in range(self._file.num_row_groups)
        ]
        if not seen:
            return []
        return sorted(pc.unique(pa.chunked_array(seen)).to_pylist())

    def where(self, column: str, values: Sequence[Any]) -> pd.DataFrame:
        """The rows whose ``column`` is one of ``values``, in the file's order; values of another type
        than the column's (text naming an integer key) are taken as the column's (a value that is none
        of its values matches nothing)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = sorted(self._typed(column, values))
        if not wanted:
            return self._file.schema_arrow.empty_table().to_pandas()
        groups = [g for g in range(self._file.num_row_groups) if self._may_hold(g, column, wanted[0], wanted[-1])]
        table = self._file.read_row_groups(groups, use_threads=False)
        kept = table.filter(pc.is_in(table[column], value_set=pa.array(wanted, type=table.schema.field(column).type)))
        return kept.to_pandas(use_threads=False)

    def _typed(self, column: str, values: Sequence[Any]) -> list[Any]:
        """``values`` as values of ``column``'s type, those that cannot be one left out."""
        import pyarrow as pa

        kind = self._file.schema_arrow.field(column).type
        if not values or pa.array(values).type == kind:
            return list(values)
        typed = []
        for value in values:
            try:
                typed.append(pa.array([value]).cast(kind)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                continue
        return typed

    def parts(self, column: str, per_part: int, values: Sequence[Any] | None = None) -> Iterator[pd.DataFrame]:
        """The rows of ``per_part`` values of ``column`` at a time, the values in sorted order
        (:meth:`where` of each run of them); ``values``: the column's :meth:`values`, where the
        caller read them already."""
        names = self.values(column) if values is None else values
        for start in range(0, len(names), per_part):
            yield self.where(column, names[start : start + per_part])

    def since(self, column: str, start: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows whose ``column`` is at or after ``start`` (of ``columns`` only, default all), read
        and filtered a row group at a time: memory holds one row group and the rows kept."""
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = self._file.schema_arrow.names if columns is None else list(columns)
        read = wanted if column in wanted else [*wanted, column]
        kept = [self._file.schema_arrow.empty_table().select(wanted)]
        for group in range(self._file.num_row_groups):
            table = self._file.read_row_group(group, columns=read, use_threads=False)
            bound = pa.scalar(start, type=table.schema.field(column).type)
            kept.append(table.filter(pc.greater_equal(table[column], bound)).select(wanted))
        return pa.concat_tables(kept).to_pandas(use_threads=False)

    def _may_hold(self, group: int, column: str, low: Any, high: Any) -> bool:
        """Whether row group ``group`` can hold a value of ``column`` in [``low``, ``high``] (no
        statistics: it can)."""
        chunk = self._file.metadata.row_group(group).column(self._index(column))
        stats = chunk.statistics
        if stats is None or not stats.has_min_max:
            return True
        return bool(stats.min <= high and stats.max >= low)


class ParquetParts:
    """One Parquet file written a frame at a time (a row group each): :func:`parquet_parts` yields it.

    The first frame with rows fixes the schema; later frames are converted to it: an integer column
    of one part is a float column of another when it misses values (NaN), which becomes a missing
    integer, and a conversion that would lose values (1.5 into integers) fails. Empty frames add
    nothing; a file written from empty frames alone has the first one's columns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer: Any = None
        self._schema: pa.Schema | None = None
        self._empty: pd.DataFrame | None = None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame.empty:
            if self._empty is None:
                self._empty = frame
            return
        if self._writer is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.path, self._schema)
        else:
            # NaN is a missing value here, so an integer column with NaN fits its integer type.
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._writer.write_table(table)
        self.rows += len(frame)

    def abort(self) -> None:
        """Let the file go unfinished (its writer closed, whatever it holds not to be used)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self._empty is not None:
            self._empty.to_parquet(self.path, index=False)
        else:
            raise ValueError(f"nothing was written to {self.path}: not even an empty frame")


@contextlib.contextmanager
def parquet_parts(location: str, settings: Settings) -> Iterator[ParquetParts]:
    """Write a Parquet file at ``location`` a frame at a time, holding one frame in memory, not the
    table: the file appears whole when the block ends, and not at all if it raises (a local file is
    renamed into place, an object uploaded from a temporary file)."""
    if not is_remote(location):
        with replacing(Path(location)) as tmp:
            yield from _written(ParquetParts(tmp))
        return
    with tempfile.TemporaryDirectory(prefix="parts") as folder:
        parts = ParquetParts(Path(folder) / "data.parquet")
        yield from _written(parts)
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split(location)
        try:
            s3_client(settings).upload_file(str(parts.path), bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(f"cannot write {location}: {exc}") from exc


def _written(parts: ParquetParts) -> Iterator[ParquetParts]:
    """Yield ``parts`` to be written, then close it; a block that raises leaves it unfinished."""
    try:
        yield parts
    except BaseException:
        parts.abort()
        raise
    parts.close()
