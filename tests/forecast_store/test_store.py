"""The forecast table on both databases it runs on: SQLite (the default) and a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.settings import Settings
from forecast_store import schema, store

pytestmark = pytest.mark.integration

DAY = date(2024, 3, 31)
ISSUED = datetime(2024, 3, 31, 23, tzinfo=UTC)


def rows(
    value: float, entities: tuple[str, ...] = ("a", "b"), day: date = DAY, steps: int = 3
) -> list[store.ForecastRow]:
    return [
        store.ForecastRow(
            "synthetic", e, day, ISSUED, h, ISSUED + timedelta(hours=h), value + h, "m", "1", dag_run_id="r"
        )
        for e in entities
        for h in range(1, steps + 1)
    ]


def values(settings: Settings, day: date = DAY) -> list[tuple[str, int, float]]:
    return [(r.entity_id, r.step, r.value) for r in store.issued(settings, "synthetic", data_date=day)]


def test_the_migrations_make_the_table_once_with_named_indexes(settings: Settings) -> None:
    store.upgrade(settings)
    store.upgrade(settings)  # again: nothing to do
    inspector = sa.inspect(store.engine(settings))
    tables = {"forecasts", "forecast_scores", "forecast_intervals", "forecast_spool_marks", "alembic_version"}
    assert tables <= set(inspector.get_table_names())
    indexes = {i["name"]: i for i in inspector.get_indexes("forecasts")}
    assert set(indexes) == {
        "uq_forecasts_batch_day",
        "uq_forecasts_shadow_day",
        "uq_forecasts_online_answer",
        "ix_forecasts_lookup",
        "ix_forecasts_target",
    }
    assert indexes["uq_forecasts_batch_day"]["unique"]
    assert indexes["uq_forecasts_shadow_day"]["unique"]
    assert indexes["uq_forecasts_online_answer"]["unique"]
    [foreign_key] = inspector.get_foreign_keys("forecast_scores")
    assert (foreign_key["referred_table"], foreign_key["options"].get("ondelete")) == ("forecasts", "CASCADE")
    with store.engine(settings).connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0006"


def test_a_day_rerun_replaces_its_rows_and_only_its_rows(settings: Settings) -> None:
    store.upgrade(settings)
    assert store.replace_day(settings, "synthetic", DAY, rows(10.0)) == 6
    store.replace_day(settings, "synthetic", DAY - timedelta(days=1), rows(5.0, day=DAY - timedelta(days=1)))
    store.replace_day(settings, "synthetic", DAY, rows(20.0, entities=("a",)))  # a corrected day: fewer rows
    assert values(settings) == [("a", 1, 21.0), ("a", 2, 22.0), ("a", 3, 23.0)]
    assert len(values(settings, DAY - timedelta(days=1))) == 6, "another day is left as it was"
    assert store.latest_day(settings, "synthetic") == DAY


def test_a_day_with_a_duplicate_forecast_is_refused_and_the_stored_day_stays(settings: Settings) -> None:
    store.upgrade(settings)
    store.replace_day(settings, "synthetic", DAY, rows(10.0))
    with pytest.raises(sa.exc.IntegrityError):
        store.replace_day(settings, "synthetic", DAY, [*rows(30.0), rows(30.0)[0]])
    assert [v for _, _, v in values(settings)] == [11.0, 12.0, 13.0] * 2, "the failed write changed nothing"
    with pytest.raises(ValueError, match="that day's batch and shadow forecasts only"):
        store.replace_day(settings, "synthetic", DAY, rows(1.0, day=DAY + timedelta(days=1)))


def test_a_day_given_as_a_stream_is_written_whole_and_a_bad_row_late_in_it_undoes_it_all(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "REPLACE_CHUNK", 4)
    store.upgrade(settings)
    taken: list[int] = []

    def counted(given: list[store.ForecastRow]) -> Iterator[store.ForecastRow]:
        for n, row in enumerate(given):
            taken.append(n)
            yield row

    assert store.replace_day(settings, "synthetic", DAY, counted(rows(10.0, entities=("a", "b", "c")))) == 9
    assert values(settings) == [(e, h, 10.0 + h) for e in "abc" for h in (1, 2, 3)], "three chunks, every row"
    taken.clear()
    late = [*rows(30.0, entities=("a", "b", "c")), *rows(1.0, day=DAY + timedelta(days=1))]
    with pytest.raises(ValueError, match="that day's batch and shadow forecasts only"):
        store.replace_day(settings, "synthetic", DAY, counted(late))
    assert len(taken) == 12, "every chunk read, the third (which holds the other day's rows) refused"
    assert [v for _, _, v in values(settings)] == [11.0, 12.0, 13.0] * 3, "the chunks before it are undone"


def test_shadow_forecasts_are_kept_per_version_and_replaced_with_their_day(settings: Settings) -> None:
    """The champion's rows (batch) and those of versions forecasting in its shadow share a day: each
    version has one forecast per entity and step, and a re-run of the day replaces all of them."""
    from dataclasses import replace

    from forecast_store.schema import SHADOW

    def shadow(value: float, version: str) -> list[store.ForecastRow]:
        return [replace(r, source=SHADOW, model_version=version) for r in rows(value)]

    store.upgrade(settings)
    assert store.replace_day(settings, "synthetic", DAY, [*rows(10.0), *shadow(30.0, "2"), *shadow(50.0, "3")]) == 18
    stored = store.issued(settings, "synthetic", data_date=DAY, source=SHADOW)
    assert sorted({(r.model_version, r.value) for r in stored if r.step == 1}) == [("2", 31.0), ("3", 51.0)]
    assert values(settings) == [(e, h, 10.0 + h) for e in "ab" for h in (1, 2, 3)]  # the champion's, as issued
    with pytest.raises(sa.exc.IntegrityError):  # one shadow forecast per version, entity and step
        store.replace_day(settings, "synthetic", DAY, [*rows(10.0), *shadow(30.0, "2"), shadow(40.0, "2")[0]])
    assert len(store.issued(settings, "synthetic", data_date=DAY, source=SHADOW)) == 12, "the failed write kept all"
    store.replace_day(settings, "synthetic", DAY, rows(20.0))  # issued again, with no shadow now
    assert store.issued(settings, "synthetic", data_date=DAY, source=SHADOW) == []
    with pytest.raises(ValueError, match="written a day at a time"):
        store.append(settings, shadow(1.0, "2"))


def test_times_are_kept_in_utc_and_come_back_timezone_aware(settings: Settings) -> None:
    store.upgrade(settings)
    local = ISSUED.astimezone(timezone(timedelta(hours=2)))
    row = store.ForecastRow("synthetic", "a", DAY, local, 1, local + timedelta(hours=1), 1.0, "m", "1")
    store.replace_day(settings, "synthetic", DAY, [row])
    [back] = store.issued(settings, "synthetic", "a", DAY)
    assert (back.issue_time, back.target_time) == (ISSUED, ISSUED + timedelta(hours=1))
    assert back.issue_time.utcoffset() == timedelta(0)


def test_two_writers_of_one_day_leave_one_of_them_whole(settings: Settings) -> None:
    """Writers of the same day are serialized, or the later one fails cleanly: never a mix."""
    store.upgrade(settings)
    outcomes: list[str] = []

    def write(value: float) -> None:
        try:
            store.replace_day(settings, "synthetic", DAY, rows(value, steps=24))
            outcomes.append("written")
        except sa.exc.DBAPIError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(v,)) for v in (100.0, 200.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "written" in outcomes
    stored = values(settings)
    assert len(stored) == 48
    assert {v - s for _, s, v in stored} in ({100.0}, {200.0})


def score_all(settings: Settings, day: date = DAY, actual: float = 10.0) -> int:
    due = store.due(settings, "synthetic", until=ISSUED + timedelta(days=1), rescore_from=ISSUED)
    scores = [
        store.Score(f.id, "synthetic", f.target_time.date(), actual, f.value - actual, None, None, day) for f in due
    ]
    return store.replace_scores(settings, scores)


def test_each_forecast_has_one_score_and_a_replaced_day_takes_its_scores_along(settings: Settings) -> None:
    store.upgrade(settings)
    store.replace_day(settings, "synthetic", DAY, rows(10.0))
    assert score_all(settings) == 6
    assert score_all(settings, actual=11.0) == 6, "scored again: the earlier scores are replaced"
    scored = store.scored(settings, "synthetic")
    assert len(scored) == 6
    assert {r["actual"] for r in scored} == {11.0}
    assert store.count_due_unscored(settings, "synthetic", ISSUED + timedelta(days=1)) == 0
    again = {"forecast_id": scored[0]["forecast_id"], "dataset": "synthetic", "target_date": DAY, "actual": 1.0,
             "error": 0.0, "actuals_date": DAY, "scored_at": ISSUED}  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)unique"), store.engine(settings).begin() as connection:
        connection.execute(sa.insert(schema.forecast_scores), [again])  # a second score of one forecast

    store.replace_day(settings, "synthetic", DAY, rows(20.0))  # the day issued again
    assert store.scored(settings, "synthetic") == []
    assert store.count_due_unscored(settings, "synthetic", ISSUED + timedelta(days=1)) == 6


def test_appended_online_rows_read_and_compare_like_the_rest(settings: Settings) -> None:
    """The service's rows go in through the driver, not SQLAlchemy's bind processing: they must come
    back the same, and compare with times like the day-by-day rows do (SQLite compares text)."""
    store.upgrade(settings)
    local = ISSUED.astimezone(timezone(timedelta(hours=-5)))
    online = [
        store.ForecastRow(
            "synthetic", "a", DAY, local, h, local + timedelta(hours=h), 1.5 * h, "m", "2", source="online"
        )
        for h in (1, 2)
    ]
    assert store.append(settings, online) == 2
    back = store.issued(settings, "synthetic", source="online")
    assert [(r.issue_time, r.target_time, r.value, r.model_version, r.dag_run_id) for r in back] == [
        (ISSUED, ISSUED + timedelta(hours=1), 1.5, "2", None),
        (ISSUED, ISSUED + timedelta(hours=2), 3.0, "2", None),
    ]
    store.replace_day(settings, "synthetic", DAY, rows(10.0, entities=("a",), steps=2))
    # Until the second step's target exactly: the first steps of both sources are due, not the second.
    due = store.due(settings, "synthetic", until=ISSUED + timedelta(hours=2), rescore_from=ISSUED)
    assert sorted((d.source, d.step) for d in due) == [("batch", 1), ("online", 1)]
    with pytest.raises(ValueError, match="a day at a time"):
        store.append(settings, rows(1.0))


def online(value: float, version: str = "2", answers: int = 1) -> list[store.ForecastRow]:
    return [
        store.ForecastRow(
            "synthetic", "a", DAY, ISSUED, h, ISSUED + timedelta(hours=h), value + h, "m", version, source="online",
            answers=answers, intervals=((0.8, value + h - h, value + h + h), (0.95, value + h - 2 * h, value + 3 * h)),
        )
        for h in (1, 2)
    ]  # fmt: skip


def test_an_online_forecast_answered_again_is_one_row_whose_answers_grow(settings: Settings) -> None:
    """Same entity, features and version: the same forecast, stored once and counted; another version
    (or other features) is another forecast."""
    store.upgrade(settings)
    store.append(settings, online(1.0))
    store.append(settings, [*online(1.0, answers=3), *online(1.0, version="3")])
    back = store.issued(settings, "synthetic", source="online")
    assert sorted((r.model_version, r.step, r.value, r.answers) for r in back) == [
        ("2", 1, 2.0, 4),
        ("2", 2, 3.0, 4),
        ("3", 1, 2.0, 1),
        ("3", 2, 3.0, 1),
    ]
    store.append(settings, online(9.0))  # features corrected at the same event time: the first answer stays
    back = store.issued(settings, "synthetic", source="online")
    assert {(r.model_version, r.value, r.answers) for r in back} == {
        ("2", 2.0, 5),
        ("2", 3.0, 5),
        ("3", 2.0, 1),
        ("3", 3.0, 1),
    }
    # Each forecast's bands are stored once with it, the first answer's, whatever the number of answers.
    assert {(r.model_version, r.step, r.intervals) for r in back} == {
        ("2", 1, ((0.8, 1.0, 3.0), (0.95, 0.0, 4.0))),
        ("2", 2, ((0.8, 1.0, 5.0), (0.95, -1.0, 7.0))),
        ("3", 1, ((0.8, 1.0, 3.0), (0.95, 0.0, 4.0))),
        ("3", 2, ((0.8, 1.0, 5.0), (0.95, -1.0, 7.0))),
    }
    with store.engine(settings).connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM forecast_intervals").scalar() == 8


def test_the_migration_collapses_online_rows_stored_per_answer_into_one(settings: Settings) -> None:
    """A table from before the answers column, holding an online forecast three times (one scored):
    after the upgrade it is one row with three answers that keeps the score; nothing else changes."""
    store.upgrade(settings, "0003")
    with store.engine(settings).begin() as connection:
        # Through the table's own types (times as the store writes them), without the new column.
        connection.execute(
            sa.insert(schema.forecasts),
            [
                {"dataset": "synthetic", "entity_id": "a", "source": source, "data_date": DAY, "issue_time": ISSUED,
                 "step": h, "target_time": ISSUED + timedelta(hours=h), "value": 1.0 + h, "model_name": "m",
                 "model_version": "2", "created_at": ISSUED}
                for source in ("online", "online", "batch", "online")
                for h in (1, 2)
            ],
        )  # fmt: skip
        first = connection.execute(sa.text("SELECT MIN(id) FROM forecasts WHERE step = 1")).scalar()
        connection.execute(
            sa.text(
                "INSERT INTO forecast_scores (forecast_id, dataset, target_date, actual, error, actuals_date, "
                "scored_at) VALUES (:id, 'synthetic', :day, 1.5, 0.5, :day, :now)"
            ),
            {"id": first, "day": DAY, "now": ISSUED},
        )
    store.upgrade(settings)
    back = store.issued(settings, "synthetic", source="online")
    assert sorted((r.step, r.value, r.answers) for r in back) == [(1, 2.0, 3), (2, 3.0, 3)]
    assert [(r.step, r.answers) for r in store.issued(settings, "synthetic")] == [(1, 1), (2, 1)]  # batch: as is
    with store.engine(settings).connect() as connection:
        assert connection.execute(sa.text("SELECT forecast_id FROM forecast_scores")).scalars().all() == [first]


def test_a_day_written_in_bulk_reads_back_field_for_field_beside_online_answers(settings: Settings) -> None:
    """On PostgreSQL a day goes in through ``COPY``, its ids drawn from the table's sequence: every
    field reads back as given (times in UTC whatever zone they came in), online answers appended
    before and after it and a re-run of the day all get ids of their own, and each band stays with
    its forecast."""
    from dataclasses import replace

    store.upgrade(settings)
    store.append(settings, online(1.0))
    plus_two = timezone(timedelta(hours=2))
    day = [
        replace(r, issue_time=ISSUED.astimezone(plus_two), dag_run_id=None if r.entity_id == "b" else "run 1",
                intervals=((0.8, r.value - r.step, r.value + r.step),))
        for r in rows(10.0, entities=("a", "b", "c"))
    ]  # fmt: skip
    assert store.replace_day(settings, "synthetic", DAY, day) == 9
    store.append(settings, online(5.0, version="3"))
    assert store.replace_day(settings, "synthetic", DAY, day) == 9  # again: the first rows' ids are not reused
    back = store.issued(settings, "synthetic", data_date=DAY)
    assert [(r.entity_id, r.data_date, r.issue_time, r.step, r.target_time, r.value, r.model_name, r.model_version,
             r.source, r.dag_run_id, r.answers, r.intervals) for r in back] == [
        (r.entity_id, r.data_date, ISSUED, r.step, r.target_time, r.value, r.model_name, r.model_version, r.source,
         r.dag_run_id, 1, r.intervals)
        for r in day
    ]  # fmt: skip
    assert all(r.issue_time.utcoffset() == timedelta(0) for r in back)
    assert len(store.issued(settings, "synthetic", source="online")) == 4
    with store.engine(settings).connect() as connection:
        ids = connection.execute(sa.select(schema.forecasts.c.id)).scalars().all()
        assert len(ids) == len(set(ids)) == 13
        bands = connection.execute(sa.select(sa.func.count()).select_from(schema.forecast_intervals)).scalar()
        assert bands == 9 + 4 * 2


def test_a_forecasts_bands_are_stored_with_it_and_replaced_with_its_day(settings: Settings) -> None:
    store.upgrade(settings)
    banded = [
        store.ForecastRow(
            **{**r.__dict__, "intervals": ((0.8, r.value - 1, r.value + 1), (0.95, r.value - 2, r.value + 2))}
        )
        for r in rows(10.0)
    ]
    store.replace_day(settings, "synthetic", DAY, banded)
    back = store.issued(settings, "synthetic", data_date=DAY)
    assert [r.intervals for r in back] == [r.intervals for r in banded]
    store.replace_day(settings, "synthetic", DAY, rows(20.0))  # a re-run by a version without intervals
    assert [r.intervals for r in store.issued(settings, "synthetic", data_date=DAY)] == [()] * len(banded)
    with store.engine(settings).connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(schema.forecast_intervals)).scalar() == 0


def test_the_databases_sums_of_accuracy_are_those_of_the_scored_rows(settings: Settings) -> None:
    """Accuracy and bands summed up by the database, per any grouping the scoring uses, equal the
    same sums over the scored rows read back one by one: counts, MAE, naive's MAE on the targets it
    could forecast (none where it could forecast none), coverage, width and interval score."""
    import numpy as np
    import pandas as pd

    from model_bundle.intervals import score_bands

    rng = np.random.default_rng(7)
    store.upgrade(settings)
    for offset in range(3):  # three days of batch and shadow forecasts, two bands each
        day = DAY - timedelta(days=offset)
        issued = ISSUED - timedelta(days=offset)
        made = []
        for e in range(12):
            for h in range(1, 5):
                for source, version in (("batch", "2"), ("shadow", "3")):
                    v = float(rng.normal(10, 3))
                    made.append(store.ForecastRow(
                        "synthetic", f"e{e}", day, issued, h, issued + timedelta(hours=h), v, "m", version,
                        source=source, intervals=((0.8, v - 2.0, v + 2.0), (0.95, v - 5.0, v + 5.0)),
                    ))  # fmt: skip
        store.replace_day(settings, "synthetic", day, made)
    due = store.due(settings, "synthetic", until=ISSUED + timedelta(days=2), rescore_from=ISSUED)
    naive = [None if rng.random() < 0.3 else float(rng.normal(10, 3)) for _ in due]
    actual = [f.value + float(rng.normal(0, 3)) for f in due]  # inside a band or not, by chance
    scores = [
        store.Score(f.id, "synthetic", f.target_time.date(), a, f.value - a, n, None if n is None else n - a, DAY)
        for f, a, n in zip(due, actual, naive, strict=True)
    ]
    assert store.replace_scores(settings, scores) == 12 * 4 * 2 * 3
    frame = pd.DataFrame(store.scored(settings, "synthetic"))
    first, last = DAY - timedelta(days=1), DAY + timedelta(days=1)
    frame = frame[(frame["target_date"] >= first) & (frame["target_date"] <= last)]
    for by in (
        ["source"],
        ["source", "step"],
        ["source", "entity_id"],
        ["model_name", "model_version"],
        ["target_date"],
    ):
        summed = store.accuracy(settings, "synthetic", by, first, last)
        expected = []
        for key, group in frame.groupby(by, sort=True):
            fair = group[group["naive_error"].notna()]
            expected.append((tuple(key), len(group), group["error"].abs().mean(), len(fair),
                             fair["naive_error"].abs().mean() if len(fair) else None,
                             fair["error"].abs().mean() if len(fair) else None))  # fmt: skip
        got = [(a.key, a.forecasts, a.mae, a.fair, a.naive_mae, a.mae_on_naive_targets) for a in summed]
        assert_same_groups(got, expected)
    assert store.accuracy(settings, "synthetic", ["source"], first, last, ["shadow"])[0].key == ("shadow",)

    bands = pd.DataFrame(store.scored_intervals(settings, "synthetic", target_from=first, target_to=last))
    for by in (["source"], ["source", "step"]):
        wanted = []
        for key, group in bands.groupby([*by, "level"], sort=True):
            lower, upper, actuals = (group[c].to_numpy() for c in ("lower", "upper", "actual"))
            scored = score_bands(lower, upper, actuals, float(key[-1]))
            wanted.append(
                (tuple(key), len(group), scored.inside.mean(), scored.width.mean(), scored.interval_score.mean())
            )
        banded = store.band_accuracy(settings, "synthetic", by, first, last)
        found = [(b.key, b.forecasts, b.coverage, b.mean_width, b.interval_score) for b in banded]
        assert_same_groups(found, wanted)
        assert min(b.coverage for b in banded) > 0
        assert max(b.coverage for b in banded) < 1


def assert_same_groups(got: Sequence[tuple[object, ...]], expected: Sequence[tuple[object, ...]]) -> None:
    """The same group keys (in any order), each with the same figures (to rounding)."""
    ours, theirs = sorted(got, key=lambda r: str(r[0])), sorted(expected, key=lambda r: str(r[0]))
    assert [r[0] for r in ours] == [r[0] for r in theirs]
    for found, wanted in zip(ours, theirs, strict=True):
        assert found[1:] == pytest.approx(wanted[1:]), found[0]
