"""Forecast accuracy metrics on [n_series, horizon] arrays of actuals and forecasts.

Conventions (documented because each has alternatives):
- MAPE skips points whose actual is zero (it is undefined there) and is in percent;
  NaN when every actual is zero.
- sMAPE is the M-competition form, mean of 200 |y - f| / (|y| + |f|), with 0/0 counted as 0.
- MASE divides each series' MAE by the in-sample MAE of the seasonal naive forecast with
  season m (lag 1 when the history is shorter than m + 1), then averages over series;
  series whose scale is zero are left out and counted in ``mase_series_skipped``.
- R² is 1 - SSE / SST over all points pooled; correlation is Pearson over all points pooled.
"""

from __future__ import annotations

import warnings

import numpy as np

METRIC_NAMES = ("mse", "rmse", "mae", "mape", "smape", "mase", "r2", "correlation")


def mse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean((actual - forecast) ** 2))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(mse(actual, forecast)))


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    nonzero = actual != 0
    if not nonzero.any():
        return float("nan")
    return float(100 * np.mean(np.abs(actual - forecast)[nonzero] / np.abs(actual[nonzero])))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(actual - forecast),
        denominator,
        out=np.zeros_like(denominator, dtype=float),
        where=denominator > 0,
    )
    return float(100 * np.mean(ratio))


def seasonal_naive_scale(history: np.ndarray, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast per series; history [n, T] may hold NaN
    before each series starts. Series shorter than season + 1 use lag 1."""
    scales = np.full(history.shape[0], np.nan)
    lengths = (~np.isnan(history)).sum(axis=1)
    for lag in {season, 1}:
        use = (lengths > season) if lag == season else (lengths <= season)
        if not use.any() or history.shape[1] <= lag:
            continue
        diffs = np.abs(history[use, lag:] - history[use, :-lag])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            scales[use] = np.nanmean(diffs, axis=1)
    return scales


def mase(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int
) -> tuple[float, int]:
    """Mean MASE over series and the number of series left out for a zero scale."""
    scale = seasonal_naive_scale(history, season)
    usable = np.isfinite(scale) & (scale > 0)
    if not usable.any():
        return float("nan"), len(scale)
    per_series = np.mean(np.abs(actual - forecast), axis=1)[usable] / scale[usable]
    return float(np.mean(per_series)), int((~usable).sum())


def r2(actual: np.ndarray, forecast: np.ndarray) -> float:
    total = np.sum((actual - actual.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1 - np.sum((actual - forecast) ** 2) / total)


def correlation(actual: np.ndarray, forecast: np.ndarray) -> float:
    a, f = actual.ravel(), forecast.ravel()
    if a.std() == 0 or f.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, f)[0, 1])


def accuracy_metrics(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int
) -> dict[str, float]:
    """Every metric of METRIC_NAMES plus ``mase_series_skipped``."""
    mase_value, skipped = mase(actual, forecast, history, season)
    return {
        "mse": mse(actual, forecast),
        "rmse": rmse(actual, forecast),
        "mae": mae(actual, forecast),
        "mape": mape(actual, forecast),
        "smape": smape(actual, forecast),
        "mase": mase_value,
        "r2": r2(actual, forecast),
        "correlation": correlation(actual, forecast),
        "mase_series_skipped": float(skipped),
    }


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season: f[h] = y[T - m + (h mod m)]; [n, horizon].

    Series with fewer than ``season`` observed periods repeat their last value instead.
    """
    length = history.shape[1]
    observed = (~np.isnan(history)).sum(axis=1)
    steps = np.arange(horizon)
    if length >= season:
        forecast = history[:, length - season + (steps % season)]
    else:
        forecast = np.repeat(history[:, -1:], horizon, axis=1)
    short = observed < season
    forecast[short] = history[short, -1:]
    return np.nan_to_num(forecast, nan=0.0)


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside [lower, upper]."""
    return float(np.mean((actual >= lower) & (actual <= upper)))
