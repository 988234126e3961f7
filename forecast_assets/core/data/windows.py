"""Time-based splits, sliding windows over a cluster's panel, and the tensors a model consumes.

Periods are numbered 0..T-1 over the panel's dates. A window with origin ``o`` sees the past
``window`` periods [o - window, o) and predicts the ``horizon`` periods [o, o + horizon).
Periods before a SKU's first sale read as zero demand, so young SKUs still get windows.

Split, on time only (no SKU is held out, no future leaks into fitting):
    [0, train_end)                   training targets; scalers are fitted here
    [train_end, test_start)          validation targets (early stopping, interval residuals)
    [test_start, T)                  backtest targets: ``folds`` rolling origins
                                     test_start, test_start + step, ..., T - horizon, each
                                     forecasting ``horizon`` periods (the last fold is the
                                     held-out last horizon)
    origin T                         the forecast of the periods after the data

No training or validation window has a target at or after ``test_start``, so every backtest
fold is scored on periods the fitted weights never saw; a fold's inputs are the actual
history before its origin, as they would have been on that day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forecast_assets.core.errors import InsufficientDataError


@dataclass(frozen=True)
class PeriodSplit:
    n_periods: int
    horizon: int
    validation_periods: int
    folds: int = 1  # rolling-origin backtest folds
    step: int = 1  # periods between consecutive fold origins

    @property
    def test_periods(self) -> int:
        """Periods held out for the backtest: the last horizon plus the earlier origins."""
        return self.horizon + (self.folds - 1) * self.step

    @property
    def test_start(self) -> int:
        """The first backtest origin; no fitted target reaches it."""
        return self.n_periods - self.test_periods

    @property
    def train_end(self) -> int:
        return self.test_start - self.validation_periods

    @property
    def test_origin(self) -> int:
        """The last fold's origin: its targets are the last ``horizon`` periods."""
        return self.n_periods - self.horizon

    @property
    def fold_origins(self) -> list[int]:
        return [self.test_start + fold * self.step for fold in range(self.folds)]

    def check(self) -> None:
        if self.folds < 1 or self.step < 1:
            raise ValueError(f"backtest folds and step must be >= 1: {self.folds}, {self.step}")
        if self.train_end < 1:
            raise InsufficientDataError(
                f"{self.n_periods} periods cannot hold a training stretch, "
                f"{self.validation_periods} validation periods and a {self.test_periods}-period "
                f"backtest ({self.folds} folds of {self.horizon} periods, {self.step} apart)"
            )


@dataclass(frozen=True)
class WindowSet:
    """Windows as (SKU row, origin) pairs."""

    rows: np.ndarray  # [n_windows] int64
    origins: np.ndarray  # [n_windows] int64

    def __len__(self) -> int:
        return len(self.rows)


def sliding_windows(
    first_index: np.ndarray, first_origin: int, last_origin: int, stride: int = 1
) -> WindowSet:
    """All (sku, origin) with ``first_origin <= origin <= last_origin`` on a ``stride`` grid that
    ends at ``last_origin`` (the most recent window is always kept), skipping origins before a
    SKU's second period (a window must see at least one real observation)."""
    if last_origin < first_origin:
        return WindowSet(np.zeros(0, np.int64), np.zeros(0, np.int64))
    origins = np.arange(last_origin, first_origin - 1, -stride)[::-1]
    rows = np.repeat(np.arange(len(first_index)), len(origins))
    tiled = np.tile(origins, len(first_index))
    keep = tiled >= first_index[rows] + 1
    return WindowSet(rows[keep].astype(np.int64), tiled[keep].astype(np.int64))


def backtest_windows(first_index: np.ndarray, split: PeriodSplit) -> WindowSet:
    """One window per SKU and fold origin, ordered by fold, then SKU."""
    folds = [sliding_windows(first_index, origin, origin) for origin in split.fold_origins]
    return WindowSet(
        np.concatenate([f.rows for f in folds]), np.concatenate([f.origins for f in folds])
    )


@dataclass
class EncodedPanel:
    """A cluster's model-ready data: scaled history, calendar and static features, windows."""

    skus: pd.Index
    dates: pd.DatetimeIndex  # history periods
    future_dates: pd.DatetimeIndex  # the forecast periods after the history
    window: int
    horizon: int
    split: PeriodSplit
    padded: np.ndarray  # [n_skus, window + T] float32 scaled demand, left-padded with scaled zero
    calendar: np.ndarray  # [window + T + horizon, n_time_features] float32
    static: np.ndarray  # [n_skus, n_static_features] float32
    calendar_names: list[str]
    static_names: list[str]
    train: WindowSet
    validation: WindowSet
    test: WindowSet  # backtest: every fold origin x SKU
    raw: np.ndarray  # [n_skus, T] demand in original units, NaN before each SKU's start
    encoder: object  # the fitted CategoricalEncoder, kept to encode new data the same way
    scaled_zero: np.ndarray  # [n_skus] float32: what zero demand scales to (for scale-free losses)
    stride: int = 1  # between training windows

    def all_windows(self) -> WindowSet:
        """Every window whose target the history holds (training, validation and backtest
        periods alike), on the training stride: what a refit on all the data learns from."""
        first_index = np.argmax(~np.isnan(self.raw), axis=1)
        return sliding_windows(first_index, 1, self.split.n_periods - self.horizon, self.stride)

    @property
    def n_skus(self) -> int:
        return len(self.skus)

    @property
    def n_time_features(self) -> int:
        return self.calendar.shape[1]

    @property
    def n_static_features(self) -> int:
        return self.static.shape[1]

    def model_sizes(self) -> dict[str, int]:
        """The constructor arguments every model takes from the data (season_length aside)."""
        return {
            "n_skus": self.n_skus,
            "n_static": self.n_static_features,
            "n_time_features": self.n_time_features,
            "window": self.window,
            "horizon": self.horizon,
        }

    def forecast_windows(self) -> WindowSet:
        """One window per SKU whose horizon is the periods after the data."""
        rows = np.arange(self.n_skus, dtype=np.int64)
        return WindowSet(rows, np.full(self.n_skus, self.split.n_periods, dtype=np.int64))

    def batch(self, windows: WindowSet, with_target: bool = True) -> dict[str, np.ndarray]:
        """Arrays for ``windows``: past [B, W], past_time [B, W, F], future_time [B, H, F],
        sku [B], static [B, C], scaled_zero [B] and, when asked, target [B, H]."""
        past_cols = windows.origins[:, None] + np.arange(self.window)[None, :]  # padded coords
        future_cols = past_cols[:, -1:] + 1 + np.arange(self.horizon)[None, :]
        out = {
            "past": self.padded[windows.rows[:, None], past_cols],
            "past_time": self.calendar[past_cols],
            "future_time": self.calendar[future_cols],
            "sku": windows.rows,
            "static": self.static[windows.rows],
            "scaled_zero": self.scaled_zero[windows.rows],
        }
        if with_target:
            if (windows.origins + self.horizon > self.split.n_periods).any():
                raise ValueError("windows reach past the history; ask with with_target=False")
            out["target"] = self.padded[windows.rows[:, None], future_cols]
        return out


def encode_panel(
    raw: np.ndarray,
    scaled: np.ndarray,
    skus: pd.Index,
    dates: pd.DatetimeIndex,
    future_dates: pd.DatetimeIndex,
    calendar: np.ndarray,
    calendar_names: list[str],
    static: np.ndarray,
    static_names: list[str],
    first_index: np.ndarray,
    scaled_zero: np.ndarray,
    window: int,
    horizon: int,
    split: PeriodSplit,
    encoder: object,
    stride: int = 1,
    min_history: int = 1,
) -> EncodedPanel:
    """Assemble an EncodedPanel.

    ``raw`` and ``scaled`` [n_skus, T] are the history in original and scaled units (NaN before
    each SKU's start), ``calendar``
    covers ``window`` periods before the history, the history and ``horizon`` future periods,
    and ``scaled_zero`` [n_skus] is what zero demand scales to for each SKU. Only SKUs with
    ``min_history`` periods or more give training and validation windows; every SKU is in
    the backtest and the forecast.
    """
    split.check()
    expected = window + len(dates) + horizon
    if calendar.shape[0] != expected:
        raise ValueError(f"calendar has {calendar.shape[0]} rows, expected {expected}")
    filled = np.where(np.isnan(scaled), scaled_zero[:, None], scaled)
    padded = np.hstack([np.repeat(scaled_zero[:, None], window, axis=1), filled]).astype(np.float32)
    last_train = split.train_end - horizon
    trains = split.n_periods - first_index >= min_history
    return EncodedPanel(
        skus=skus,
        dates=dates,
        future_dates=future_dates,
        window=window,
        horizon=horizon,
        split=split,
        padded=padded,
        calendar=calendar.astype(np.float32),
        static=static.astype(np.float32),
        calendar_names=calendar_names,
        static_names=static_names,
        train=_long_enough(sliding_windows(first_index, 1, last_train, stride), trains),
        validation=_long_enough(
            sliding_windows(first_index, split.train_end, split.test_start - horizon), trains
        ),
        test=backtest_windows(first_index, split),
        raw=raw,
        encoder=encoder,
        scaled_zero=scaled_zero.astype(np.float32),
        stride=stride,
    )


def _long_enough(windows: WindowSet, trains: np.ndarray) -> WindowSet:
    """The windows of the SKUs that ``trains`` [n_skus] marks."""
    keep = trains[windows.rows]
    return windows if keep.all() else WindowSet(windows.rows[keep], windows.origins[keep])


class WindowDataset(torch.utils.data.Dataset):
    """Batched access to an EncodedPanel's windows for a torch DataLoader (``__getitems__``)."""

    def __init__(self, panel: EncodedPanel, windows: WindowSet) -> None:
        self.panel = panel
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        picked = np.asarray(indices)
        subset = WindowSet(self.windows.rows[picked], self.windows.origins[picked])
        return batch_to_tensors(self.panel.batch(subset))


def batch_to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        name: torch.from_numpy(np.ascontiguousarray(value))
        if name != "sku"
        else torch.from_numpy(value.astype(np.int64))
        for name, value in batch.items()
    }
