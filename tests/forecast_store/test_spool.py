"""The service's spool and its writer, without a service: records in, rows out, each once, and what
the table can never take set aside with its reason."""

from __future__ import annotations

import array
import json
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.frequency import Frequency
from core.settings import Settings
from forecast_store import store
from forecast_store.schema import ONLINE
from forecast_store.spool import DEAD_LETTER, HEADER, SpoolAppender, segments
from forecast_store.writer import Answered, Counters, SpoolWriter

pytestmark = pytest.mark.integration

HOURLY = Frequency.parse("PT1H")
ISSUED = datetime(2024, 3, 31, 23, tzinfo=UTC)


def forecast(entity: str, value: float, event_time: object = ISSUED) -> Answered:
    """An answered forecast of 3 steps with an 80 % band."""
    values = array.array("d", [value, value + 1, value + 2])
    bands = array.array("d", [x for v in values for x in (v - 1, v + 1)])
    return (entity, "m", "1", event_time, values, (0.8,), bands)  # type: ignore[return-value]


def counters() -> Counters:
    return Counters(*(multiprocessing.Value(kind, 0, lock=False) for kind in ("q", "q", "q", "d")))


def writer(settings: Settings, appender: SpoolAppender, seen: Counters | None = None) -> SpoolWriter:
    """A writer of ``appender``'s spool, as a new writer process starts: knowing nothing yet."""
    return SpoolWriter(settings, "synthetic", HOURLY, appender.directory, appender.token, seen or counters())


def stored(settings: Settings) -> dict[tuple[str, int, float], int]:
    """(entity, step, value) -> answers of the stored online forecasts."""
    return {(r.entity_id, r.step, r.value): r.answers for r in store.issued(settings, "synthetic", source=ONLINE)}


def test_a_writer_that_starts_again_goes_on_from_the_tables_mark(settings: Settings, tmp_path: Path) -> None:
    appender = SpoolAppender(tmp_path / "spool")
    for _ in range(3):
        appender.append([forecast("a", 1.0), forecast("b", 5.0)])
    seen = counters()
    assert writer(settings, appender, seen).drain()
    assert seen.written.value == 6
    appender.append([forecast("a", 1.0)])
    # A writer killed after its last transaction knows nothing of it: the table's mark says where it was.
    again = writer(settings, appender)
    assert again.drain()
    assert not again.drain(), "nothing new"
    assert stored(settings) == {("a", 1, 1.0): 4, ("a", 2, 2.0): 4, ("a", 3, 3.0): 4,
                                ("b", 1, 5.0): 3, ("b", 2, 6.0): 3, ("b", 3, 7.0): 3}  # fmt: skip
    assert [p.name for p in segments(appender.directory)] == [f"{appender.token}-000001.seg"], "still held"
    appender.close()
    again.drain()  # its worker let go of it: drained, deleted and its mark forgotten
    assert segments(appender.directory) == []
    assert store.spool_mark(settings, f"{appender.token}-000001.seg") == 0
    assert sum(stored(settings).values()) == 21


def test_rows_and_their_spool_mark_are_written_together_or_not_at_all(settings: Settings, tmp_path: Path) -> None:
    from forecast_store.spool import Record
    from forecast_store.writer import as_rows, combined

    store.upgrade(settings)
    rows = as_rows("synthetic", HOURLY, combined([Record([forecast("a", 1.0)], 0, 10)]))
    refuse = (
        "CREATE TRIGGER refuse_marks BEFORE INSERT ON forecast_spool_marks BEGIN SELECT RAISE(ABORT, 'no marks'); END"
        if store.engine(settings).dialect.name == "sqlite"
        else "ALTER TABLE forecast_spool_marks ADD CONSTRAINT refuse_marks CHECK (position < 0)"
    )
    with store.engine(settings).begin() as connection:
        connection.exec_driver_sql(refuse)
    with pytest.raises(sa.exc.IntegrityError):
        store.append(settings, rows, mark=("segment", 10))
    assert stored(settings) == {}, "the rows went with their mark"
    assert store.append(settings, rows) == 3  # without a mark they are taken


def test_what_the_table_can_never_take_is_dead_lettered_with_its_reason_and_the_rest_written(
    settings: Settings, tmp_path: Path
) -> None:
    appender = SpoolAppender(tmp_path / "spool")
    appender.append([forecast("a", 1.0)])
    appender.append([forecast("b", 2.0), forecast("c", 3.0, event_time="not a time")])
    appender.append([forecast("d", 4.0)])
    segment = segments(appender.directory)[0]
    flipped = segment.stat().st_size - 5  # inside d's record
    appender.append([forecast("e", 5.0)])
    appender.close()
    with open(segment, "r+b") as handle:
        handle.seek(flipped)
        byte = handle.read(1)
        handle.seek(flipped)
        handle.write(bytes([byte[0] ^ 0xFF]))
    seen = counters()
    writer(settings, appender, seen).drain()
    assert {entity for entity, _, _ in stored(settings)} == {"a", "e"}
    letters = {p.name: json.loads(p.read_text()) for p in (appender.directory / DEAD_LETTER).iterdir()}
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters.values())
    assert reasons == ["checksum mismatch", "not convertible"]
    unconverted = next(v for v in letters.values() if v["reason"].startswith("not convertible"))
    # the record is kept whole, its readable forecast included: nothing of it is lost
    assert [f["entity_id"] for f in unconverted["forecasts"]] == ["b", "c"]
    assert unconverted["forecasts"][0]["values"] == [2.0, 3.0, 4.0]
    assert seen.dead_lettered.value == 3  # b and c, and d's unreadable record
    assert seen.written.value == 2
    assert segments(appender.directory) == []


def test_a_record_cut_short_at_the_end_of_a_closed_segment_is_dead_lettered(settings: Settings, tmp_path: Path) -> None:
    appender = SpoolAppender(tmp_path / "spool")
    appender.append([forecast("a", 1.0)])
    size = appender.append([forecast("b", 2.0)])
    appender.close()
    segment = segments(appender.directory)[0]
    os.truncate(segment, segment.stat().st_size - size // 2)
    held = writer(settings, appender)
    held.drain()
    assert set(stored(settings)) == {("a", 1, 1.0), ("a", 2, 2.0), ("a", 3, 3.0)}
    [letter] = [json.loads(p.read_text()) for p in (appender.directory / DEAD_LETTER).iterdir()]
    assert letter["reason"] == "a record cut short at the end of a closed segment"
    assert len(letter["bytes_base64"]) > 0
    assert segments(appender.directory) == []


def test_a_record_still_being_written_waits_for_the_rest(settings: Settings, tmp_path: Path) -> None:
    """The worker holds its segment: a partial record at its end is not dead-lettered but read once
    whole."""
    appender = SpoolAppender(tmp_path / "spool")
    appender.append([forecast("a", 1.0)])
    from forecast_store.spool import encode

    record = encode([forecast("b", 2.0)])
    fd = appender._fd  # the worker's own descriptor: half a record, as a write in progress
    os.write(fd, record[: HEADER.size + 3])
    held = writer(settings, appender)
    held.drain()
    assert {entity for entity, _, _ in stored(settings)} == {"a"}
    os.write(fd, record[HEADER.size + 3 :])
    held.drain()
    assert {entity for entity, _, _ in stored(settings)} == {"a", "b"}
    assert not (appender.directory / DEAD_LETTER).exists()


def test_a_worker_never_shares_a_spool_with_another_table(tmp_path: Path) -> None:
    from forecast_store.spool import spool_directory

    one = Settings(home=tmp_path, forecast_db=f"sqlite:///{tmp_path / 'one.db'}", _env_file=None)  # type: ignore[call-arg]
    two = one.model_copy(update={"forecast_db": f"sqlite:///{tmp_path / 'two.db'}"})
    assert spool_directory(one, "synthetic") != spool_directory(two, "synthetic")
    assert spool_directory(one, "synthetic") != spool_directory(one, "other")
    assert spool_directory(one, "synthetic").parent == tmp_path / "ledger-spool"
