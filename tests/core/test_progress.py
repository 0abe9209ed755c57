"""Progress bars: drawn on a terminal, silent anywhere else, ``MLOPS_PROGRESS`` overriding either way."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from core.progress import ENV_VAR, logging_beside_progress, progress, show_progress
from core.settings import PROJECT_ROOT


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal and keeps what is written to it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_a_stream_that_is_no_terminal_gets_no_bar() -> None:
    log = io.StringIO()
    bar = progress(range(5), desc="folds", unit="fold", stream=log)
    assert list(bar) == [0, 1, 2, 3, 4], "a hidden bar still yields every item"
    bar.close()
    assert not show_progress(log)
    assert bar.disable
    assert log.getvalue() == ""


def test_a_terminal_gets_a_bar_with_its_description_and_count() -> None:
    terminal = FakeTerminal()
    with progress(["a", "b", "c"], desc="folds", unit="fold", stream=terminal) as bar:
        assert list(bar) == ["a", "b", "c"]
    drawn = terminal.getvalue()
    assert "folds" in drawn
    assert "3/3" in drawn
    assert "fold" in drawn


def test_the_default_stream_is_stderr_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    for _ in progress(range(3), desc="trials"):
        pass
    assert quiet.getvalue() == ""
    assert not show_progress()

    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert show_progress()
    for _ in progress(range(3), desc="trials"):
        pass
    assert "trials" in terminal.getvalue()
    assert "3/3" in terminal.getvalue()


def test_a_bar_without_an_iterable_counts_updates() -> None:
    terminal = FakeTerminal()
    bar = progress(total=4, desc="windows", unit="window", stream=terminal)
    bar.update()
    bar.update(3)
    bar.close()
    assert "4/4" in terminal.getvalue()


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_the_override_hides_the_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_VAR, value)
    terminal = FakeTerminal()
    for _ in progress(range(3), desc="days", stream=terminal):
        pass
    assert not show_progress(terminal)
    assert terminal.getvalue() == ""


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_the_override_shows_the_bar_on_any_stream(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_VAR, value)
    log = io.StringIO()
    for _ in progress(range(3), desc="days", stream=log):
        pass
    assert show_progress(log)
    assert "3/3" in log.getvalue()


@pytest.mark.parametrize("value", ["", "auto", "maybe"])
def test_any_other_value_leaves_it_to_the_stream(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_VAR, value)
    assert show_progress(FakeTerminal())
    assert not show_progress(io.StringIO())


def test_a_closed_stream_gets_no_bar() -> None:
    broken = io.StringIO()
    broken.close()
    assert show_progress(broken) is False  # io.StringIO.isatty raises ValueError once closed


def test_log_lines_go_around_a_shown_bar_and_are_left_alone_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    for stream, redirected in ((io.StringIO(), False), (FakeTerminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        console = logging.StreamHandler(stream)
        root.addHandler(console)
        try:
            with logging_beside_progress():
                assert (console not in root.handlers) is redirected
            assert console in root.handlers, "the console handler is back after the block"
        finally:
            root.removeHandler(console)


def test_importing_the_helper_does_not_import_tqdm() -> None:
    """The service and model bundles import the base layer; they must not pay for tqdm."""
    script = "import sys, core.progress; print('tqdm' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60, cwd=PROJECT_ROOT
    )
    assert result.stdout.strip() == "False"
