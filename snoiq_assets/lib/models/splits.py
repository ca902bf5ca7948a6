"""Time-ordered splits only: train strictly before a split date, test from it on; rolling origin.

Nothing here shuffles. Rows are identified by their period dates; a split never puts a test
period before a training period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from snoiq_assets.lib.models import InsufficientDataError, ModelError

MIN_TRAIN_ROWS = 30
MIN_TEST_ROWS = 10


@dataclass(frozen=True)
class TimeSplit:
    split_date: dt.date
    train: np.ndarray  # boolean masks over the rows
    test: np.ndarray

    def describe(self, dates: np.ndarray) -> dict:
        tr, te = dates[self.train], dates[self.test]
        return {
            "split_date": str(self.split_date),
            "train_start": str(tr.min()), "train_end": str(tr.max()), "train_rows": int(self.train.sum()),
            "test_start": str(te.min()), "test_end": str(te.max()), "test_rows": int(self.test.sum()),
        }


def _as_dates(dates) -> np.ndarray:
    arr = np.asarray(dates, dtype="datetime64[D]")
    if arr.ndim != 1:
        raise ModelError("dates must be one-dimensional")
    return arr


def time_split(dates, split_date: dt.date | None = None, test_fraction: float = 0.2,
               min_train: int = MIN_TRAIN_ROWS, min_test: int = MIN_TEST_ROWS) -> TimeSplit:
    """Train on rows dated before ``split_date``, test on rows from it on.

    Without a split date, the split is the first date at which the last ``test_fraction`` of
    the distinct periods begins.
    """
    d = _as_dates(dates)
    if d.size == 0:
        raise InsufficientDataError(f"no rows with a target: training needs at least {min_train} and testing {min_test}")
    if split_date is None:
        if not 0 < test_fraction < 1:
            raise ModelError(f"test_fraction must be between 0 and 1; got {test_fraction}")
        uniq = np.unique(d)
        cut = uniq[min(len(uniq) - 1, int(np.floor(len(uniq) * (1 - test_fraction))))]
        split = cut
    else:
        split = np.datetime64(split_date, "D")
    train, test = d < split, d >= split
    n_tr, n_te = int(train.sum()), int(test.sum())
    if n_tr < min_train or n_te < min_test:
        raise InsufficientDataError(
            f"too little data around split date {split}: {n_tr} training rows (need at least {min_train}) "
            f"and {n_te} test rows (need at least {min_test}); the rows with a target span {d.min()} to {d.max()}"
        )
    return TimeSplit(split_date=split.astype(dt.date), train=train, test=test)


def rolling_origin(dates, n_folds: int = 3, min_train: int = MIN_TRAIN_ROWS, min_test: int = MIN_TEST_ROWS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over the distinct periods: fold k trains on everything before
    origin k and tests on the periods up to origin k+1. Returns (train_idx, test_idx) pairs."""
    d = _as_dates(dates)
    if n_folds < 1:
        raise ModelError(f"n_folds must be at least 1; got {n_folds}")
    uniq = np.unique(d)
    # Origins split the distinct periods into n_folds + 1 blocks; the first block only trains.
    edges = [uniq[int(round(i * len(uniq) / (n_folds + 1)))] for i in range(1, n_folds + 1)] + [uniq[-1] + np.timedelta64(1, "D")]
    folds = []
    for start, stop in zip(edges[:-1], edges[1:]):
        train_idx = np.flatnonzero(d < start)
        test_idx = np.flatnonzero((d >= start) & (d < stop))
        if len(train_idx) < min_train or len(test_idx) < min_test:
            raise InsufficientDataError(
                f"rolling-origin fold at {start} has {len(train_idx)} training rows (need {min_train}) and "
                f"{len(test_idx)} test rows (need {min_test}); use fewer folds or more data"
            )
        folds.append((train_idx, test_idx))
    return folds
