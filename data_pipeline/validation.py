"""Data-quality gate: a Great Expectations 1.x suite built from the dataset config.

The suite is code, versioned with the repo. A landing partition that fails it raises
:class:`DataValidationError` naming every failed expectation with its offending counts, and nothing
is written to the validated area, which is the only place the feature step reads from. The
validation result (JSON, and GE's Data Docs HTML) is written next to the run's artifacts either way,
and the JSON also where later tasks look for it (:func:`core.partitions.state_location`).

A partition of many series is checked a part at a time (whole series in each, a couple of million
rows): GE validates each part, and the parts' results make one result of the whole
(:func:`combined`), as if GE had seen every row at once. Memory holds one part.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import DatasetConfig
from core.files import write_text_atomically
from core.objects import ObjectNotFoundError, ParquetRows, copy_object, delete, exists, read_object, write_object
from core.partitions import landing_path, run_dir, state_location, validated_path
from core.settings import Settings
from core.windows import end_of
from data_pipeline.outcomes import FailedExpectation, ValidationOutcome

log = logging.getLogger(__name__)

STEP_COLUMN = "_step_seconds"
GRID_COLUMN = "_off_grid_seconds"
AGE_COLUMN = "_age_seconds"
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "Float64", "Int64"]
# Rows GE checks at a time: whole series, about this many rows in all.
ROWS_PER_PART = 2_000_000
# Unexpected values a combined result lists, as GE's SUMMARY format lists for one batch.
PARTIAL_LIST = 20


class DataValidationError(RuntimeError):
    """Raised when a landing partition fails the suite; nothing downstream may run."""

    def __init__(self, dataset: str, logical_date: date, outcome: ValidationOutcome):
        self.outcome = outcome
        lines = "\n".join(f"  - {failure}" for failure in outcome.failures)
        super().__init__(
            f"data validation failed for {dataset} on {logical_date}: "
            f"{len(outcome.failures)} of {outcome.evaluated} expectations failed\n{lines}\n"
            f"  result: {outcome.result_path}"
        )


def with_check_columns(frame: pd.DataFrame, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    """Add the derived columns that carry frequency and freshness into row-level expectations."""
    ts, entity = dataset.timestamp_column, dataset.entity_column
    out = frame.copy()
    if ts not in out.columns or entity not in out.columns:
        return out
    stamps = pd.to_datetime(out[ts], utc=True, errors="coerce")
    order = stamps.groupby(out[entity]).rank(method="first")
    steps = (
        pd.DataFrame({"e": out[entity], "t": stamps, "o": order})
        .sort_values(["e", "o"])
        .groupby("e")["t"]
        .diff()
        .dt.total_seconds()
    )
    # The first row of an entity has no predecessor: treat it as one regular step.
    out[STEP_COLUMN] = steps.reindex(out.index).fillna(dataset.frequency.shortest.total_seconds())
    # Seconds past the grid point at or before each timestamp: 0 on the grid (a month's first day,
    # a whole hour); a timestamp that could not be read stays NaN, which the not-null rule reports.
    known = stamps.notna()
    grid = pd.Series(np.nan, index=out.index)
    grid[known] = dataset.frequency.offgrid_seconds(pd.DatetimeIndex(stamps[known]))
    out[GRID_COLUMN] = grid
    out[AGE_COLUMN] = (pd.Timestamp(end_of(logical_date)) - stamps).dt.total_seconds()
    return out


def build_expectations(dataset: DatasetConfig, row_count_hint: int | None = None) -> list[Any]:
    """The suite, one expectation per rule; every rule names the column it guards."""
    import great_expectations as gx

    e = gx.expectations
    q = dataset.quality
    key_columns = [dataset.entity_column, dataset.timestamp_column]
    expectations: list[Any] = [
        e.ExpectTableRowCountToBeBetween(min_value=q.min_rows, max_value=q.max_rows),
    ]
    for column in dataset.raw_columns:
        expectations.append(e.ExpectColumnToExist(column=column))
    for column in [*key_columns, dataset.target]:
        expectations.append(e.ExpectColumnValuesToNotBeNull(column=column))
    for column in [dataset.target, *dataset.features]:
        expectations.append(e.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPES))
    for column, (low, high) in q.value_ranges.items():
        expectations.append(e.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high))
    expectations += [
        e.ExpectCompoundColumnsToBeUnique(column_list=key_columns),
        # Regular frequency: steps between consecutive rows are at least one period (a calendar
        # period's shortest: 28 days for a month) and at most max_gap, and every timestamp sits on
        # the frequency grid.
        e.ExpectColumnValuesToBeBetween(
            column=STEP_COLUMN,
            min_value=dataset.frequency.shortest.total_seconds(),
            max_value=q.max_gap.total_seconds(),
        ),
        e.ExpectColumnValuesToBeInSet(column=GRID_COLUMN, value_set=[0.0]),
        # Freshness: the newest row is at most max_age old at the end of the logical date, and
        # no row lies after it.
        e.ExpectColumnMinToBeBetween(column=AGE_COLUMN, min_value=0, max_value=q.max_age.total_seconds()),
        e.ExpectColumnValuesToBeBetween(column=AGE_COLUMN, min_value=0),
    ]
    return expectations


def _age(seconds: float) -> str:
    """A duration as a person says it: hours under two days, days under a year, then years."""
    hours = seconds / 3600
    if hours < 48:
        return f"{hours:.0f} hours"
    days = hours / 24
    return f"{days:.0f} days" if days < 365 else f"{days:.0f} days ({days / 365.25:.1f} years)"


def _stale(observed: float, logical_date: date, max_age: float) -> str:
    """The freshness failure in words: how old the newest row is, when the data ends, what to set."""
    newest = pd.Timestamp(end_of(logical_date)) - pd.Timedelta(seconds=observed)
    return (
        f"the newest row is {_age(observed)} old at the end of {logical_date} (allowed: {_age(max_age)}); "
        f"the data ends {newest:%Y-%m-%d %H:%M} UTC. Set the run's training window end (training_window_end) "
        "to a day the data reaches, or, for a source that no longer grows, the dataset config's "
        "daily.history_end, which the retraining form takes as its default"
    )


def _describe(result: dict[str, Any], present: set[str], logical_date: date | None = None) -> FailedExpectation:
    config = result.get("expectation_config", {})
    kwargs = config.get("kwargs", {})
    column = kwargs.get("column") or (",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
    details = result.get("result", {}) or {}
    observed = details.get("observed_value")
    if column == AGE_COLUMN and logical_date is not None and isinstance(observed, int | float) and observed >= 0:
        return FailedExpectation(
            expectation=str(config.get("type", "unknown")),
            column=column,
            details=_stale(float(observed), logical_date, float(kwargs.get("max_value") or 0)),
        )
    parts: list[str] = []
    if "column" in kwargs and kwargs["column"] not in present:
        return FailedExpectation(
            expectation=str(config.get("type", "unknown")), column=column, details="column missing from the data"
        )
    if result.get("exception_info", {}).get("raised_exception"):
        parts.append(str(result["exception_info"].get("exception_message", "error")).splitlines()[0])
    if "unexpected_count" in details:
        parts.append(f"{details['unexpected_count']} of {details.get('element_count', '?')} rows unexpected")
        sample = details.get("partial_unexpected_list") or []
        if sample:
            parts.append(f"e.g. {sample[:3]}")
    if "observed_value" in details:
        parts.append(f"observed {details['observed_value']}")
    bounds = {k: kwargs[k] for k in ("min_value", "max_value", "value_set", "type_list") if k in kwargs}
    if bounds:
        parts.append(f"expected {bounds}")
    return FailedExpectation(
        expectation=str(config.get("type", "unknown")), column=column, details="; ".join(parts) or "failed"
    )


# Data Docs load their layout and status icons from CDNs, which an air-gapped machine or cluster does not
# reach: each expectation's passed/failed mark then renders as nothing. GX inlines this stylesheet
# (its documented custom-styles hook), so the status reads as text, and a failed row stands out, with
# or without the network.
DATA_DOCS_STYLES = """/* Status without the CDN's icon font: a word and a colour on every expectation. */
.fas.fa-check-circle.text-success::before { content: "\\2713  passed"; color: #1a7f37; }
.fas.fa-times.text-danger::before { content: "\\2717  failed"; color: #c62828; }
.fas.fa-check-circle.text-success::before, .fas.fa-times.text-danger::before {
  font-family: sans-serif; font-style: normal; font-weight: bold; white-space: nowrap;
}
tr:has(.fa-times.text-danger) { background: #fdecea; }
"""
DOCS_SITE = "gx/uncommitted/data_docs/local_site"


def validation_page(out_dir: Path) -> Path | None:
    """The newest validation result page of the Data Docs under ``out_dir``: the page that lists each
    expectation with its status (the site's index fills its tables with CDN scripts, so offline it
    shows none)."""
    pages = sorted(out_dir.glob(f"{DOCS_SITE}/validations/*/*/*/*.html"), key=lambda page: page.parent.name)
    return pages[-1] if pages else None


def _suite_result(
    parts: Iterable[pd.DataFrame], dataset: DatasetConfig, logical_date: date, out_dir: Path
) -> tuple[Any, set[str]]:
    """GE's result of the suite over every row of ``parts``, stored with its Data Docs page, and the
    columns the checked rows had."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(out_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    styles = out_dir / "gx" / "plugins" / "custom_data_docs" / "styles" / "data_docs_custom_styles.css"
    styles.parent.mkdir(parents=True, exist_ok=True)
    styles.write_text(DATA_DOCS_STYLES)
    name = f"{dataset.name}_landing"
    source = context.data_sources.add_or_update_pandas(name=name)
    asset = source.add_dataframe_asset(name=name)
    batch_definition = asset.add_batch_definition_whole_dataframe(name=name)
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=build_expectations(dataset)))
    results = []
    columns: set[str] = set()
    offset = 0
    for part in parts:
        checked = with_check_columns(part, dataset, logical_date)
        columns.update(checked.columns)
        # Row numbers of the whole partition, so the unexpected rows' index list points into it.
        checked.index = pd.RangeIndex(offset, offset + len(checked))
        offset += len(checked)
        results.append(batch_definition.get_batch(batch_parameters={"dataframe": checked}).validate(suite))
    result = combined(results)
    run_id = RunIdentifier(run_time=datetime.now(UTC))
    result.meta["run_id"] = run_id
    result.meta["validation_time"] = run_id.run_time
    suite_id = ExpectationSuiteIdentifier(name=name)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=result.batch_id
    )
    context.validation_results_store.set(key, result)
    pages: list[Any] = [key, suite_id]  # the result's page and the suite's, as GE's docs action builds
    context.build_data_docs(resource_identifiers=pages)
    return result, columns


def _within(value: Any, kwargs: dict[str, Any]) -> bool:
    """Whether ``value`` lies within an expectation's ``min_value``/``max_value`` (either may be
    absent, either may be strict), as GE judges a table's or column's aggregate."""
    if value is None:
        return False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    above = low is None or (value > low if kwargs.get("strict_min") else value >= low)
    below = high is None or (value < high if kwargs.get("strict_max") else value <= high)
    return bool(above and below)


def _combined_rows(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row-level result of several parts': counts added, shares of the whole, the first
    unexpected values (and their row numbers) listed as GE lists them."""
    total: dict[str, Any] = {}
    for key in ("element_count", "unexpected_count", "missing_count"):
        if key in results[0]:
            total[key] = sum(int(r.get(key) or 0) for r in results)
    elements, unexpected = total["element_count"], total["unexpected_count"]
    present = elements - total.get("missing_count", 0)
    total["unexpected_percent"] = unexpected / present * 100 if present else None
    if "missing_count" in total:
        total["missing_percent"] = total["missing_count"] / elements * 100 if elements else None
        total["unexpected_percent_total"] = unexpected / elements * 100 if elements else None
        total["unexpected_percent_nonmissing"] = total["unexpected_percent"]
    for key in ("partial_unexpected_list", "partial_unexpected_index_list"):
        if key in results[0]:
            total[key] = [v for r in results for v in r.get(key) or []][:PARTIAL_LIST]
    if "partial_unexpected_counts" in results[0]:
        # Counted over the values listed, as GE counts a batch's (rows of several columns as tuples).
        listed = [tuple(v.values()) if isinstance(v, dict) else v for v in total.get("partial_unexpected_list", [])]
        try:
            ranked = sorted(Counter(listed).most_common(PARTIAL_LIST), key=lambda pair: (-pair[1], pair[0]))
            total["partial_unexpected_counts"] = [{"value": value, "count": count} for value, count in ranked]
        except TypeError:
            total["partial_unexpected_counts"] = [{"error": "partial_exception_counts requires a hashable type"}]
    return total


# Aggregates of the whole from those of its parts, for the suite's expectations of one figure.
_AGGREGATES: dict[str, Callable[[list[Any]], Any]] = {
    "expect_table_row_count_to_be_between": sum,
    "expect_column_min_to_be_between": min,
    "expect_column_max_to_be_between": max,
}


def combined(results: list[Any]) -> Any:
    """The suite's result over the rows of every part, from each part's result (GE's
    ``ExpectationSuiteValidationResult``, the suite's expectations in one order in each).

    Parts hold whole series, so a rule about a row and its series' neighbours (unique keys, steps)
    holds for the whole when it holds in each part; the suite sets no ``mostly``, so a row-level rule
    holds when it holds in every part, and its counts add up. A table's row count adds up, a column's
    minimum is the least of the parts', each judged again against the expectation's bounds. Any
    other rule of one figure (a column's type) holds when it holds in every part, and shows the
    figure of the first part where it failed. An error in a part fails its expectation.
    """
    first = results[0]
    if len(results) == 1:
        return first
    merged = []
    for index, expectation in enumerate(first.results):
        parts = [r.results[index] for r in results]
        kind = expectation.expectation_config.type
        kwargs = expectation.expectation_config.kwargs
        raised = next((p for p in parts if p.exception_info.get("raised_exception")), None)
        failed = next((p for p in parts if not p.success), expectation)
        if raised is not None:
            merged.append(raised)
            continue
        if "unexpected_count" in (expectation.result or {}):
            expectation.result = _combined_rows([p.result for p in parts])
            expectation.success = all(p.success for p in parts)
        elif kind in _AGGREGATES:
            figures = [p.result.get("observed_value") for p in parts]
            known = [f for f in figures if f is not None]
            figure = _AGGREGATES[kind](known) if known else None
            expectation.result = {**expectation.result, "observed_value": figure}
            expectation.success = _within(figure, kwargs)
        else:
            expectation = failed
        merged.append(expectation)
    first.results = merged
    successful = sum(1 for r in merged if r.success)
    first.success = successful == len(merged)
    first.statistics = {
        "evaluated_expectations": len(merged),
        "successful_expectations": successful,
        "unsuccessful_expectations": len(merged) - successful,
        "success_percent": 100 * successful / len(merged) if merged else None,
    }
    return first


def validate_frame(frame: pd.DataFrame, dataset: DatasetConfig, logical_date: date, out_dir: Path) -> ValidationOutcome:
    """Run the suite on ``frame`` and write the result JSON and Data Docs under ``out_dir``."""
    return validate_parts([frame], dataset, logical_date, out_dir)


def validate_parts(
    parts: Iterable[pd.DataFrame], dataset: DatasetConfig, logical_date: date, out_dir: Path
) -> ValidationOutcome:
    """Run the suite on the rows of ``parts`` (each holding whole series) as on one table, and write
    the result JSON and Data Docs under ``out_dir``."""
    result, columns = _suite_result(parts, dataset, logical_date, out_dir)
    payload = result.to_json_dict()
    result_path = out_dir / "validation_result.json"
    write_text_atomically(json.dumps(payload, indent=2, default=str), result_path)
    failures = [_describe(r, columns, logical_date) for r in payload["results"] if not r.get("success")]
    return ValidationOutcome(
        success=bool(payload["success"]),
        evaluated=len(payload["results"]),
        failures=failures,
        result_path=str(result_path),
        data_docs_path=validation_page(out_dir),
    )


def landed_parts(rows: ParquetRows, dataset: DatasetConfig) -> Iterator[pd.DataFrame]:
    """The landing partition's rows, whole series at a time, about ``ROWS_PER_PART`` rows each;
    read whole when it has no entity column to part it by (validation then says so) or no row."""
    entity = dataset.entity_column
    names = rows.values(entity) if entity in rows.columns and rows.rows else []
    if not names:
        yield rows.frame()
        return
    yield from rows.parts(entity, max(1, ROWS_PER_PART * len(names) // rows.rows), names)


def result_location(settings: Settings, dataset: DatasetConfig, logical_date: date) -> str:
    """Where the check's result of a date is kept for later tasks: a retraining of the same day reads
    it back instead of checking again (:func:`passed_check`)."""
    return state_location(settings, dataset, logical_date, "validation/validation_result.json")


def validate(dataset: DatasetConfig, logical_date: date, settings: Settings) -> ValidationOutcome:
    """Validate the landing partition; on success publish it to the validated area."""
    landed = landing_path(settings, dataset, logical_date)
    try:
        rows = ParquetRows(landed, settings)
    except ObjectNotFoundError as exc:
        missing = f"no landing partition for {dataset.name} on {logical_date}: run ingest first ({landed})"
        raise FileNotFoundError(missing) from exc
    target = validated_path(settings, dataset, logical_date)
    out_dir = run_dir(settings, dataset, logical_date) / "validation"
    outcome = validate_parts(landed_parts(rows, dataset), dataset, logical_date, out_dir)
    kept = result_location(settings, dataset, logical_date)
    if outcome.result_path is not None and kept != outcome.result_path:
        write_object(kept, Path(outcome.result_path).read_bytes(), settings)
        outcome = outcome.model_copy(update={"result_path": kept})
    if not outcome.success:
        # A failed re-run must not leave an earlier run's validated copy for downstream to read.
        delete(target, settings)
        raise DataValidationError(dataset.name, logical_date, outcome)
    copy_object(landed, target, settings)
    log.info("validated %d rows of %s for %s -> %s", rows.rows, dataset.name, logical_date, target)
    return outcome.model_copy(update={"validated": target, "logical_date": logical_date})


def passed_check(dataset: DatasetConfig, logical_date: date, settings: Settings) -> ValidationOutcome | None:
    """The check a date's partition already passed (its validated copy and result exist), else None.

    A day that the daily DAG landed and checked need not be checked again by a retraining of the
    same day: the result read back is the one that published the validated copy.
    """
    target = validated_path(settings, dataset, logical_date)
    result_path = result_location(settings, dataset, logical_date)
    if not (exists(target, settings) and exists(result_path, settings)):
        return None
    result = json.loads(read_object(result_path, settings))
    if not result.get("success"):
        return None
    # The Data Docs stay with the reports of the process that made them (here, or in another pod).
    reports = run_dir(settings, dataset, logical_date) / "validation"
    return ValidationOutcome(
        logical_date=logical_date,
        success=True,
        evaluated=len(result["results"]),
        result_path=result_path,
        data_docs_path=validation_page(reports),
        validated=target,
    )
