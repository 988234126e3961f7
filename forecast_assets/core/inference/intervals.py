"""Prediction intervals from historical residuals.

Residuals (actual - forecast) are taken in scaled units, so SKUs of very different sizes can
be pooled within a cluster, one empirical distribution per horizon step. An interval is the
forecast plus the residual quantiles (1 - c) / 2 and (1 + c) / 2, turned back into each SKU's
units. No normality is assumed, and skewed errors give skewed intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ResidualQuantiles:
    confidence: float
    lower: np.ndarray  # [horizon] scaled-residual quantile (1 - c) / 2
    upper: np.ndarray  # [horizon] scaled-residual quantile (1 + c) / 2
    n_residuals: int  # residual windows behind each step


def residual_quantiles(residuals: np.ndarray, confidence: float) -> ResidualQuantiles:
    """Quantiles per horizon step of ``residuals`` [n_windows, horizon] (scaled units)."""
    if len(residuals) == 0:
        raise ValueError("residual quantiles need at least one residual window")
    alpha = (1.0 - confidence) / 2
    return ResidualQuantiles(
        confidence=confidence,
        lower=np.quantile(residuals, alpha, axis=0),
        upper=np.quantile(residuals, 1.0 - alpha, axis=0),
        n_residuals=len(residuals),
    )


def interval_bounds(
    forecast: np.ndarray, units: np.ndarray, quantiles: ResidualQuantiles, nonnegative: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds [n, horizon] around ``forecast`` (original units); ``units`` [n]
    is the size of one scaled unit per row."""
    lower = forecast + quantiles.lower[None, :] * units[:, None]
    upper = forecast + quantiles.upper[None, :] * units[:, None]
    lower = np.minimum(lower, forecast)
    upper = np.maximum(upper, forecast)
    if nonnegative:
        lower = np.maximum(lower, 0.0)
    return lower, upper
