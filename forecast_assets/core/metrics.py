"""Forecast accuracy metrics on [n_series, horizon] arrays of actuals and forecasts.

History arrays are [n_series, T] and may hold NaN before each series starts.

Conventions (documented because each has alternatives):
- MAPE skips points whose actual is zero (it is undefined there) and is in percent;
  NaN when every actual is zero.
- sMAPE is the M-competition form, mean of 200 |y - f| / (|y| + |f|), with 0/0 counted as 0.
- Bias is the mean of f - y: positive means over-forecast.
- MASE divides each series' MAE by the in-sample MAE of the seasonal naive forecast with
  season m (lag 1 when the history is shorter than m + 1), then averages over series;
  series whose scale is zero are left out and counted in ``mase_series_skipped``.
- RMSSE is M5's: per series sqrt(mean (y - f)^2 / mean (y_t - y_{t-1})^2), the in-sample
  differences taken from the series' first observed (non-NaN) value on; averaged over
  series, with series whose scale is zero or undefined (fewer than two observed values)
  left out and counted in ``rmsse_series_skipped``.
- WRMSSE is M5's at the bottom (SKU) level only, sum of w_i RMSSE_i. Series with a zero or
  undefined scale are dropped and the remaining weights renormalised to sum to 1 (equal
  weights among them when their weights are all zero). Default weights come from
  ``volume_weights``: each series' share of the quantity of the last 28 periods (revenue
  when prices are given), NaN counted as 0, equal weights when every total is 0.
- Pinball loss at level q is the mean of max(q (y - f_q), (q - 1) (y - f_q)); at q = 0.5 it
  is half the MAE. Keys are ``pinball_p{round(100 q):02d}``: 0.05 -> pinball_p05.
- Scaled interval width divides each series' mean width by its seasonal naive scale (the
  MASE scale) and averages over series whose scale is positive.
- R² is 1 - SSE / SST over all points pooled; correlation is Pearson over all points pooled.
"""

from __future__ import annotations

import warnings

import numpy as np

METRIC_NAMES = (
    "mse",
    "rmse",
    "mae",
    "mape",
    "smape",
    "mase",
    "r2",
    "correlation",
    "bias",
    "rmsse",
    "wrmsse",
)


def mse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean((actual - forecast) ** 2))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(mse(actual, forecast)))


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def bias(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean of f - y; positive means the forecast is too high on average."""
    return float(np.mean(forecast - actual))


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    nonzero = actual != 0
    if not nonzero.any():
        return float("nan")
    return float(100 * np.mean(np.abs(actual - forecast)[nonzero] / np.abs(actual[nonzero])))


def _smape_ratios(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """2 |y - f| / (|y| + |f|) per point, 0 where both are 0 (a perfect forecast of 0)."""
    denominator = np.abs(actual) + np.abs(forecast)
    return np.divide(
        2 * np.abs(actual - forecast),
        denominator,
        out=np.zeros_like(denominator, dtype=float),
        where=denominator > 0,
    )


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(100 * np.mean(_smape_ratios(actual, forecast)))


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


def squared_difference_scale(history: np.ndarray) -> np.ndarray:
    """In-sample mean of (y_t - y_{t-1})^2 per series (RMSSE's scale). Differences touching a
    NaN are skipped, so each series starts at its first observed value; NaN with fewer than
    two observed values."""
    if history.shape[1] < 2:
        return np.full(history.shape[0], np.nan)
    diffs = (history[:, 1:] - history[:, :-1]) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(diffs, axis=1)


def _usable(scale: np.ndarray) -> np.ndarray:
    return np.isfinite(scale) & (scale > 0)


def _scaled(errors: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """errors / scale per series, NaN where the scale is zero or undefined, and the mask of
    usable scales (kept apart so a NaN error still shows up instead of being skipped)."""
    usable = _usable(scale)
    values = np.full(len(scale), np.nan)
    values[usable] = errors[usable] / scale[usable]
    return values, usable


def _mean_over_usable(values: np.ndarray, usable: np.ndarray) -> tuple[float, int]:
    if not usable.any():
        return float("nan"), len(values)
    return float(np.mean(values[usable])), int((~usable).sum())


def _mase_parts(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int
) -> tuple[np.ndarray, np.ndarray]:
    errors = np.mean(np.abs(actual - forecast), axis=1)
    return _scaled(errors, seasonal_naive_scale(history, season))


def mase_per_series(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int
) -> np.ndarray:
    """MASE of each series, [n]; NaN where the seasonal naive scale is zero or undefined."""
    return _mase_parts(actual, forecast, history, season)[0]


def mase(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int
) -> tuple[float, int]:
    """Mean MASE over series and the number of series left out for a zero scale."""
    return _mean_over_usable(*_mase_parts(actual, forecast, history, season))


def _rmsse_parts(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    squared_errors = np.mean((actual - forecast) ** 2, axis=1)
    values, usable = _scaled(squared_errors, squared_difference_scale(history))
    return np.sqrt(values), usable


def rmsse_per_series(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray) -> np.ndarray:
    """M5 RMSSE of each series, [n]; NaN where the scale is zero or undefined."""
    return _rmsse_parts(actual, forecast, history)[0]


def rmsse(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray) -> tuple[float, int]:
    """Mean RMSSE over series and the number of series left out for a zero scale."""
    return _mean_over_usable(*_rmsse_parts(actual, forecast, history))


def volume_weights(
    history: np.ndarray, periods: int = 28, prices: np.ndarray | None = None
) -> np.ndarray:
    """M5-style weights, [n]: each series' share of the last ``periods`` periods' quantity
    (revenue with ``prices`` [n]), so that the series that sell most count most."""
    if periods < 1:
        raise ValueError(f"periods must be at least 1, got {periods}")
    totals = np.nan_to_num(history[:, -periods:], nan=0.0).sum(axis=1)
    if prices is not None:
        totals = totals * np.asarray(prices, dtype=float)
    grand_total = totals.sum()
    if grand_total == 0:
        return np.full(len(totals), 1.0 / len(totals))
    return totals / grand_total


def _wrmsse_of(values: np.ndarray, usable: np.ndarray, weights: np.ndarray) -> float:
    if not usable.any():
        return float("nan")
    kept = np.asarray(weights, dtype=float)[usable]
    total = kept.sum()
    kept = kept / total if total > 0 else np.full(len(kept), 1.0 / len(kept))
    return float(np.sum(kept * values[usable]))


def wrmsse(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, weights: np.ndarray
) -> float:
    """Sum of weights * RMSSE over series; series with a zero or undefined scale are dropped
    and the remaining weights renormalised to sum to 1 (equal if they are all zero), so a
    dropped series does not pull the score towards 0. M5's WRMSSE at the SKU level only."""
    if len(weights) != actual.shape[0]:
        raise ValueError(f"{len(weights)} weights for {actual.shape[0]} series")
    return _wrmsse_of(*_rmsse_parts(actual, forecast, history), weights)


def pinball_loss(actual: np.ndarray, quantile_forecast: np.ndarray, level: float) -> float:
    """Mean quantile loss of the forecast of quantile ``level``: misses below the forecast
    cost 1 - level, misses above cost level."""
    error = actual - quantile_forecast
    return float(np.mean(np.maximum(level * error, (level - 1) * error)))


def _pinball_key(level: float) -> str:
    # Not forecast.quantile_column: it writes 0.05 as p5 and its module imports torch.
    return f"pinball_p{round(100 * level):02d}"


def pinball_losses(
    actual: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...] | list[float]
) -> dict[str, float]:
    """Pinball loss per level of [n, horizon, Q] quantile forecasts, keyed pinball_p10, ..."""
    if quantiles.shape[-1] != len(levels):
        raise ValueError(f"{quantiles.shape[-1]} quantile forecasts for {len(levels)} levels")
    losses = {
        _pinball_key(level): pinball_loss(actual, quantiles[..., i], level)
        for i, level in enumerate(levels)
    }
    if len(losses) != len(levels):
        raise ValueError(f"levels {list(levels)} share a percent name")
    return losses


def interval_width(lower: np.ndarray, upper: np.ndarray) -> float:
    """Mean of upper - lower, in the data's units."""
    return float(np.mean(upper - lower))


def scaled_interval_width(
    lower: np.ndarray, upper: np.ndarray, history: np.ndarray, season: int
) -> float:
    """Mean width per series over its seasonal naive scale, averaged over series with a
    positive scale, so that widths compare across series of different sizes."""
    values, usable = _scaled(np.mean(upper - lower, axis=1), seasonal_naive_scale(history, season))
    return _mean_over_usable(values, usable)[0]


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
    actual: np.ndarray,
    forecast: np.ndarray,
    history: np.ndarray,
    season: int,
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric of METRIC_NAMES plus ``mase_series_skipped`` and ``rmsse_series_skipped``;
    WRMSSE weights default to ``volume_weights(history)``."""
    mase_value, mase_skipped = mase(actual, forecast, history, season)
    rmsse_values, rmsse_usable = _rmsse_parts(actual, forecast, history)
    rmsse_value, rmsse_skipped = _mean_over_usable(rmsse_values, rmsse_usable)
    if weights is None:
        weights = volume_weights(history)
    return {
        "mse": mse(actual, forecast),
        "rmse": rmse(actual, forecast),
        "mae": mae(actual, forecast),
        "mape": mape(actual, forecast),
        "smape": smape(actual, forecast),
        "mase": mase_value,
        "r2": r2(actual, forecast),
        "correlation": correlation(actual, forecast),
        "bias": bias(actual, forecast),
        "rmsse": rmsse_value,
        "wrmsse": wrmsse(actual, forecast, history, weights),
        "mase_series_skipped": float(mase_skipped),
        "rmsse_series_skipped": float(rmsse_skipped),
    }


def per_series_metrics(
    actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int
) -> dict[str, np.ndarray]:
    """mae, rmse, bias, smape, mase and rmsse of each series, each [n], to find the series a
    pooled score hides; MASE and RMSSE are NaN where their scale is zero or undefined."""
    error = forecast - actual
    return {
        "mae": np.mean(np.abs(error), axis=1),
        "rmse": np.sqrt(np.mean(error**2, axis=1)),
        "bias": np.mean(error, axis=1),
        "smape": 100 * np.mean(_smape_ratios(actual, forecast), axis=1),
        "mase": mase_per_series(actual, forecast, history, season),
        "rmsse": rmsse_per_series(actual, forecast, history),
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
