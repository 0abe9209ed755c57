"""Great Expectations' Data Docs in a real browser, offline as on an air-gapped cluster: a validated
day lists every expectation as passed, a failed day marks the one that failed, in words."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from data_pipeline.ingest import ingest
from data_pipeline.validation import DataValidationError, validate
from tests.utils.browser import screenshot
from tests.utils.data import synthetic_frame, write_dataset

pytestmark = [pytest.mark.integration, pytest.mark.browser]

FAILED, PASSED = ".fas.fa-times.text-danger", ".fas.fa-check-circle.text-success"


def _status_word(page: Any, selector: str) -> str:
    """What the status mark of the first ``selector`` shows: the stylesheet's word, since the icon
    font comes from a CDN that the browser here cannot reach."""
    return str(page.locator(selector).first.evaluate("e => getComputedStyle(e, '::before').content"))


def _open(browser: Any, page_path: Path) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(page_path.as_uri())
    page.get_by_text("Expectation Validation Result").wait_for()
    return context, page


def test_a_validated_day_lists_every_expectation_as_passed(tmp_path: Path, logical_date: date, browser: Any) -> None:
    config = DatasetConfig.from_yaml(write_dataset(tmp_path / "d"))
    settings = Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    ingest(config, logical_date, settings)
    outcome = validate(config, logical_date, settings)
    assert outcome.data_docs_path is not None
    evaluated = len(json.loads(Path(str(outcome.result_path)).read_text())["results"])

    context, page = _open(browser, outcome.data_docs_path)
    try:
        assert re.search(r"Status:\s*Succeeded", page.inner_text("body"))
        assert page.locator(f"tr:has({PASSED})").count() == evaluated
        assert page.locator(FAILED).count() == 0
        assert "passed" in _status_word(page, PASSED)
        for column in config.raw_columns:  # each column has its section of expectations
            assert page.get_by_role("link", name=column, exact=True).count() == 1, column
        screenshot(page, "ge_data_docs_passed")
    finally:
        context.close()


def test_a_failed_day_shows_which_expectation_failed(tmp_path: Path, logical_date: date, browser: Any) -> None:
    frame = synthetic_frame()
    frame.loc[[5, 6], "temp"] = 999.0  # outside the configured range of temp
    config = DatasetConfig.from_yaml(write_dataset(tmp_path / "d", frame=frame))
    settings = Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    ingest(config, logical_date, settings)
    with pytest.raises(DataValidationError) as raised:
        validate(config, logical_date, settings)
    docs = raised.value.outcome.data_docs_path
    assert docs is not None, "a failed check keeps its Data Docs"

    context, page = _open(browser, docs)
    try:
        assert re.search(r"Status:\s*Failed", page.inner_text("body"))
        failed = page.locator(f"tr:has({FAILED})")
        assert failed.count() == 1
        row = failed.first.inner_text()
        assert "values must be greater than or equal to -50.0 and less than or equal to 150.0" in row
        assert "999.0" in row  # the unexpected values themselves
        assert "failed" in _status_word(page, f"tr {FAILED}")
        failed.first.scroll_into_view_if_needed()
        screenshot(page, "ge_data_docs_failed")
    finally:
        context.close()
