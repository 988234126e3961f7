"""The cluster's neural model as a member of the pool.

Its backtest forecasts are the accuracy gate's (the same fold origins, so nothing is
predicted twice), and its forecast after the data is the served model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.evaluation import Backtest
from forecast_assets.core.inference.forecast import forecast_arrays
from forecast_assets.core.models.artifact import ClusterModel
from forecast_assets.core.models.registry import SEASONAL_NAIVE


def panel_of(encoded: EncodedPanel) -> SalesPanel:
    """The cluster's history in original units, as the statistical members read it."""
    freq = encoded.dates.freqstr or pd.infer_freq(encoded.dates)
    if freq is None:
        raise ValueError("the cluster's dates have no regular frequency")
    return SalesPanel(
        values=encoded.raw,
        skus=encoded.skus,
        dates=encoded.dates,
        freq=freq,
        attributes=pd.DataFrame(encoded.static, index=encoded.skus, columns=encoded.static_names),
    )


def is_neural(model: ClusterModel) -> bool:
    """Whether ``model`` is a trained family (seasonal naive is a statistical member)."""
    return model.model_type != SEASONAL_NAIVE


def backtest_forecasts(
    backtest: Backtest, encoded: EncodedPanel, origins: Sequence[int]
) -> dict[str, np.ndarray]:
    """The gate's backtest of the served model at the pool's ``origins``, [n_folds, n_skus,
    horizon]: NaN at an origin the model's own split did not hold out (a short history
    keeps fewer folds for the neural model than for the pool)."""
    windows = encoded.test
    out = np.full((len(origins), encoded.n_skus, encoded.horizon), np.nan)
    fold_of = {int(origin): fold for fold, origin in enumerate(origins)}
    unknown = sorted(set(int(o) for o in windows.origins) - set(fold_of))
    if unknown:
        raise ValueError(f"backtest origins {unknown} are not among the pool's {list(origins)}")
    folds = np.array([fold_of[int(o)] for o in windows.origins], dtype=np.int64)
    out[folds, windows.rows] = backtest.forecast
    return {backtest.model_type: out}


def neural_forecast(
    model: ClusterModel,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    nonnegative: bool,
    device: str,
    engine: str,
) -> dict[str, np.ndarray]:
    """The served model's forecast of the periods after the data, [n_skus, horizon]."""
    forecast, _ = forecast_arrays(model, encoded, scalers, nonnegative, device, engine)
    return {model.evaluated.model_type: forecast}
