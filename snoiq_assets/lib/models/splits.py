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
    split_date: dt.date | dt.datetime  # a datetime (UTC) for an hourly table
    train: np.ndarray  # boolean masks over the rows
    test: np.ndarray

    def describe(self, dates: np.ndarray) -> dict:
        d = _as_dates(dates)
        tr, te = d[self.train], d[self.test]
        return {
            "split_date": self.split_date.isoformat(timespec="minutes") if isinstance(self.split_date, dt.datetime)
            else str(self.split_date),
            "train_start": period_text(tr.min()), "train_end": period_text(tr.max()), "train_rows": int(self.train.sum()),
            "test_start": period_text(te.min()), "test_end": period_text(te.max()), "test_rows": int(self.test.sum()),
        }


def _as_dates(dates) -> np.ndarray:
    """Period starts as datetime64: days for a daily (or coarser) table, their own (finer) unit
    for an hourly one, so an hourly table splits between hours, not between days."""
    arr = np.asarray(dates)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[D]")
    if arr.ndim != 1:
        raise ModelError("dates must be one-dimensional")
    return arr


def split_point(split: dt.date | dt.datetime) -> np.datetime64:
    if isinstance(split, dt.datetime):
        if split.tzinfo is not None:  # periods are UTC; numpy datetimes are naive
            split = split.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return np.datetime64(split, "s")
    return np.datetime64(split, "D")


def period_text(value: np.datetime64) -> str:
    """ISO text of a period start: ``2023-01-02`` for days, ``2023-01-02T05:00`` for hours."""
    if np.datetime_data(value.dtype)[0] in ("D", "W", "M", "Y"):
        return str(value.astype("datetime64[D]"))
    return str(value.astype("datetime64[m]"))


def parse_period(text: str) -> dt.date | dt.datetime:
    """Inverse of ``period_text`` (a naive datetime is UTC)."""
    if "T" in text or " " in text:
        t = dt.datetime.fromisoformat(text)
        return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t
    return dt.date.fromisoformat(text)


def time_split(dates, split_date: dt.date | dt.datetime | None = None, test_fraction: float = 0.2,
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
        split = split_point(split_date)
    train, test = d < split, d >= split
    n_tr, n_te = int(train.sum()), int(test.sum())
    if n_tr < min_train or n_te < min_test:
        raise InsufficientDataError(
            f"too little data around split date {split}: {n_tr} training rows (need at least {min_train}) "
            f"and {n_te} test rows (need at least {min_test}); the rows with a target span {d.min()} to {d.max()}"
        )
    return TimeSplit(split_date=_to_python(split), train=train, test=test)


def _to_python(value: np.datetime64) -> dt.date | dt.datetime:
    if np.datetime_data(value.dtype)[0] in ("D", "W", "M", "Y"):
        return value.astype("datetime64[D]").astype(dt.date)
    return value.astype("datetime64[us]").astype(dt.datetime).replace(tzinfo=dt.timezone.utc)


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
