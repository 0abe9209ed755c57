"""The rows a training reads: the whole training set, or a bounded sample of it for a global model.

A model of all series that learns from feature rows (the tabular families, naive) needs many rows,
not every row: a hundred thousand series of two years are seventy million rows, more than a
process can hold. Past ``training.max_rows`` such a model trains on a sample. Every row of the
backtest's test windows is kept (the folds score the model on every series), and of the older
rows each series keeps a share, drawn by a hash of the row's (entity, time): the same rows whatever
the process, the run or the part a row is read in. The file is read a part of series at a time,
so memory holds a part and the sample.

A model per series (the statistical families, and a selection among them) forecasts each row
from its series' history in the set, which a sample would cut: it reads every row.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.objects import ParquetRows, read_parquet
from core.partitions import SERIES_PER_PART
from core.settings import Settings
from model_training.forecasters import PER_SERIES

log = logging.getLogger(__name__)

SELECTION = "selection"
# The share of the budget the backtest's test windows may take; a test window bigger than that is
# sampled too, at the same share for every row.
TEST_SHARE = 0.5


def learns_from_rows(family: str) -> bool:
    """Whether ``family`` fits one model of all series on feature rows (a sample of them serves)."""
    return family not in PER_SERIES and family != SELECTION


def drawn(frame: pd.DataFrame, dataset: DatasetConfig) -> np.ndarray:
    """Each row's draw in [0, 1): a hash of its (entity, time), the same in every process."""
    keys = frame[[dataset.entity_column, EVENT_TIMESTAMP]]
    return pd.util.hash_pandas_object(keys, index=False).to_numpy() / float(2**64)


def test_start(first: pd.Timestamp, last: pd.Timestamp, dataset: DatasetConfig) -> pd.Timestamp:
    """The earliest backtest cutoff of labelled rows from ``first`` to ``last``: the rows after it
    are the folds' test rows (:func:`model_training.backtest.make_folds`)."""
    from model_training.backtest import make_folds

    folds = make_folds(pd.Series([first, last]), dataset)
    return min(fold.cutoff for fold in folds)


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp if stamp.tzinfo is not None else stamp.tz_localize("UTC")


def training_rows(location: str, dataset: DatasetConfig, family: str, settings: Settings) -> pd.DataFrame:
    """The training set at ``location`` as ``family`` trains on it: every row, or for a model that
    learns from rows (:func:`learns_from_rows`) a sample of at most about ``training.max_rows``."""
    budget = dataset.training.max_rows
    if budget is None or not learns_from_rows(family):
        return read_parquet(location, settings)
    rows = ParquetRows(location, settings)
    if rows.rows <= budget:
        return rows.frame()
    first, last = (_utc(pd.Timestamp(bound)) for bound in rows.bounds(EVENT_TIMESTAMP))
    cutoff = test_start(first, last, dataset)
    tested = sum(int((group > cutoff).sum()) for group in rows.column(EVENT_TIMESTAMP))
    keep_tested = min(1.0, TEST_SHARE * budget / tested) if tested else 1.0
    older = rows.rows - tested
    keep_older = min(1.0, max(0.0, budget - keep_tested * tested) / older) if older else 1.0
    kept = []
    for part in rows.parts(dataset.entity_column, SERIES_PER_PART):
        share = np.where(part[EVENT_TIMESTAMP] > cutoff, keep_tested, keep_older)
        kept.append(part[drawn(part, dataset) < share])
    sample = pd.concat(kept, ignore_index=True)
    log.info(
        "training %s on a sample of %d of %d rows (training.max_rows %d): every test row kept with "
        "probability %.3f, older rows %.3f",
        family,
        len(sample),
        rows.rows,
        budget,
        keep_tested,
        keep_older,
    )
    return sample
