"""Forecasts of the SKUs that first sold after the last clustering.

Until the next training run clusters them, no pool has judged them: they get a simple method
that needs no backtest, the mean of their last season (or of all they have), and an
interval spanning what they sold in those periods. The ``model`` column says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.inference.forecast import FORECAST_COLUMNS

UNCLUSTERED = "unclustered"
NEWCOMER_MODEL = "newcomer: mean of the last season"


def forecast_newcomers(
    panel: SalesPanel, horizon: int, season: int, confidence: float, trained_at: str
) -> pd.DataFrame:
    """The forecast table's rows for every SKU of ``panel`` (all unclustered)."""
    future = panel.future_dates(horizon)
    window = max(season, 1)
    recent = panel.values[:, -window:]
    with np.errstate(invalid="ignore"):
        observed = np.isfinite(recent).any(axis=1)
    # A SKU whose sales all lie before the last season has none there: use all it has.
    values = panel.values.copy()
    if panel.n_periods > window:
        values[observed, :-window] = np.nan
    level = np.nanmean(values, axis=1)
    alpha = (1 - confidence) / 2
    lower = np.minimum(np.nanquantile(values, alpha, axis=1), level)
    upper = np.maximum(np.nanquantile(values, 1 - alpha, axis=1), level)
    n = panel.n_skus
    return pd.DataFrame(
        {
            "sku": np.repeat(panel.skus.to_numpy(), horizon),
            "date": np.tile(future.to_numpy(), n),
            "forecast": np.repeat(level, horizon),
            "lower": np.repeat(lower, horizon),
            "upper": np.repeat(upper, horizon),
            "cluster": UNCLUSTERED,
            "model": NEWCOMER_MODEL,
            "trained_at": pd.Timestamp(trained_at),
        }
    )[list(FORECAST_COLUMNS)]
