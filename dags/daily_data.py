"""The daily data DAG of each dataset: ``ingest_<dataset>``.

Each run lands the day that has just ended (its data interval), checks it with Great Expectations,
rebuilds the features and loads them into the online store. It tells the DAGs that judge new data
through Airflow Assets (:mod:`orchestration.assets`), with the day in each event: they are scheduled
on those Assets, not on a clock that guesses when data is there. A backfill over a date range fills
days in order; a day re-run after its source was corrected replaces that day's partitions.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from data_pipeline.outcomes import Landed, ValidationOutcome
from feature_store.outcomes import Materialized, OfflineFeatures
from orchestration import assets
from orchestration.dags import dag_arguments, dags_for_each_dataset, daily_config
from orchestration.plan import scope

DOC = """
### Daily data of {name}

ingest (the source as known at the end of the run's day) -> validate (Great Expectations; emits
`{name}_validated`) -> build features (Feast's offline source) -> materialize (online store; emits
`{name}_online_features`).

Each asset event names its day (`extra.data_date`); the drift monitor and the nightly backtest run
when `{name}_online_features` has new events. A failed check stops the day: nothing downstream is
written and no event tells the consumers. Schedule `{schedule}` (UTC), from `{start}`, catchup
{catchup}{end}: `daily` in the dataset config. Backfill: `airflow backfill create --dag-id ingest_{name}
--from-date ... --to-date ...`. Config: `{config}`.
"""


def build(name: str, config: Path) -> Any:
    daily = daily_config(config)
    validated, online = assets.validated(name), assets.online_features(name)
    # No run is scheduled past daily.end; a run of that day itself (its logical date up to the end of
    # the day after, when the day's run is due) still runs its tasks.
    end = datetime.combine(daily.end + timedelta(days=1), time.max, tzinfo=UTC) if daily.end else None
    doc = DOC.format(
        name=name, config=config, schedule=daily.schedule, start=daily.start, catchup=daily.catchup,
        end=f", none scheduled for a day after {daily.end}" if end else "",
    )  # fmt: skip

    @dag(
        **dag_arguments(
            f"ingest_{name}",
            CronDataIntervalTimetable(daily.schedule, timezone="UTC"),
            ["data", "daily", name],
            doc,
            start_date=datetime.combine(daily.start, time(), tzinfo=UTC),
            end_date=end,
            catchup=daily.catchup,
        )
    )
    def daily_data() -> None:
        @task
        def ingest() -> Landed:
            """Land the source as known at the end of the run's day (its data interval's start),
            replacing that day's landing partition; a source that does not hold the whole day yet
            (a late file) fails the attempt before anything is written, and the retry reads it again."""
            from data_pipeline.ingest import ingest

            start = get_current_context()["data_interval_start"]
            assert start is not None, "a daily data run always covers an interval"
            run = scope(config)
            return ingest(run.dataset, start.date(), run.settings, complete_day=True)

        @task(retries=0, outlets=[validated])
        def validate(landed: Landed) -> ValidationOutcome:
            """Check the landed day with Great Expectations and publish it as validated; only then is
            its event emitted. Not retried: the same data fails the same way."""
            from data_pipeline.validation import validate

            run = scope(config)
            outcome = validate(run.dataset, landed.logical_date, run.settings)
            assets.record_day(get_current_context(), validated, landed.logical_date)
            return outcome

        @task
        def build_features(checked: ValidationOutcome) -> OfflineFeatures:
            """Rebuild Feast's offline source from the validated day."""
            from feature_store.build import write_offline_source

            assert checked.logical_date is not None
            run = scope(config)
            return write_offline_source(run.settings, run.dataset, checked.logical_date)

        @task(outlets=[online])
        def materialize(features: OfflineFeatures) -> Materialized:
            """Register the Feast definitions and load the newest features into the online store (a day
            run again is loaded in full: a corrected day replaces what it loaded); then the consumers of
            the day's data are told."""
            from feature_store.repo import load_day

            run = scope(config)
            loaded = load_day(run.settings, run.dataset, features.logical_date)
            assets.record_day(get_current_context(), online, features.logical_date)
            return loaded

        materialize(build_features(validate(ingest())))

    return daily_data()


globals().update(dags_for_each_dataset(build))
