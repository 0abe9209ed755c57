"""Progress bars for long loops, shown only to someone watching a terminal.

Benchmarks, backtests, tuning and the simulation run for minutes to hours; a bar tells the person who
started them how far they are. The same code also runs in CI, in Airflow tasks and under pytest,
whose logs a bar redrawn many times a second would fill with noise. One rule decides for all of
them, here: a bar shows when standard error (where tqdm draws it) is a terminal, and the
``MLOPS_PROGRESS`` environment variable overrides that either way.

tqdm is imported inside the functions: this base layer is imported by the service and by model
bundles, which never draw a bar and should not pay for the import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

ENV_VAR = "MLOPS_PROGRESS"
_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


def show_progress(stream: TextIO | None = None) -> bool:
    """Whether a progress bar should be drawn on ``stream`` (default: the current ``sys.stderr``).

    ``MLOPS_PROGRESS=1`` (or true/yes/on) forces bars on, e.g. to watch a run through ``tee``;
    ``MLOPS_PROGRESS=0`` (or false/no/off) forces them off on a terminal. Unset, empty or any other
    value: on exactly when the stream is a terminal, so CI logs, task logs and captured test output
    stay free of bars. Also the value for Optuna's ``show_progress_bar=``, which draws on stderr.
    """
    setting = os.environ.get(ENV_VAR, "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    target = sys.stderr if stream is None else stream
    try:
        return bool(target.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(
    iterable: Iterable[object] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    leave: bool = True,
    stream: TextIO | None = None,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or, without one, a bar of ``total`` steps to ``update()``),
    drawn on ``stream`` (default: ``sys.stderr``) only when :func:`show_progress` says so.

    A disabled bar still iterates, counts and accepts ``update``/``set_postfix_str``, so callers
    never branch on whether one is shown. ``leave=False`` for a bar inside another one's step (the
    folds of one tuning trial), so it clears when done instead of stacking up lines.
    """
    from tqdm import tqdm

    target = sys.stderr if stream is None else stream
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=target,
        disable=not show_progress(target),
        dynamic_ncols=True,
    )


@contextlib.contextmanager
def logging_beside_progress() -> Iterator[None]:
    """While bars are shown, route the console log handlers through tqdm, so a log line prints
    above the bar instead of breaking it in two. Without bars, logging is left as it is."""
    if not show_progress():
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield
