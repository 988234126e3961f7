"""Per-cluster feature building: fit the scalers, then encode everything the model consumes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.scaling import ScalerManager, ScalingMethod
from forecast_assets.core.data.time_features import calendar_feature_names, calendar_features
from forecast_assets.core.data.windows import EncodedPanel, PeriodSplit, encode_panel
from forecast_assets.core.errors import InsufficientDataError


def period_split(
    panel: SalesPanel, horizon: int, validation_periods: int, folds: int = 1, step: int = 1
) -> PeriodSplit:
    """The configured split of ``panel``'s periods, shrunk to the history that exists: the
    validation stretch first (down to one horizon, the least that holds a window), then the
    backtest folds (down to one), so that a short history trains and is judged with what it
    has instead of being refused. Only a history that cannot hold one training window, one
    validation window and one fold is refused."""
    n = panel.n_periods
    validation = validation_periods
    for count in range(folds, 0, -1):
        split = PeriodSplit(n, horizon, validation, count, step)
        # At least one training window: its target must end before the validation stretch.
        spare = split.train_end - (horizon + 1)
        if spare >= 0:
            return split
        shrunk = validation + spare
        if shrunk >= horizon:
            return PeriodSplit(n, horizon, shrunk, count, step)
        validation = horizon
    split = PeriodSplit(n, horizon, horizon, 1, step)
    if split.train_end < horizon + 1:
        raise InsufficientDataError(
            f"{n} periods cannot hold a training window, a validation window and a backtest "
            f"fold of {horizon} periods each (at least {3 * horizon + 1} periods)"
        )
    return split


def fit_scalers(
    panel: SalesPanel, split: PeriodSplit, method: ScalingMethod = "standard"
) -> ScalerManager:
    """Per-SKU scalers fitted on the training periods only (validation and test stay unseen).

    A SKU that first sold after the training periods (a newcomer the neural models do not
    train on) is scaled by the history it has, so that its inputs are finite."""
    train = panel.values[:, : split.train_end]
    unseen = ~np.isfinite(train).any(axis=1)
    with warnings.catch_warnings():
        # scikit-learn divides by zero counts for the unseen SKUs, refitted below.
        warnings.simplefilter("ignore", RuntimeWarning)
        manager = ScalerManager(method).fit(train, panel.skus)
    if unseen.any():
        late = ScalerManager(method).fit(panel.values[unseen], panel.skus[unseen])
        manager.offset[unseen], manager.unit[unseen] = late.offset, late.unit
    return manager


def build_features(
    panel: SalesPanel,
    scalers: ScalerManager,
    encoder: CategoricalEncoder,
    window: int,
    horizon: int,
    split: PeriodSplit,
    stride: int = 1,
    min_history: int = 1,
) -> EncodedPanel:
    """Scale the panel, fit ``encoder`` on the SKU attributes, add calendar features and windows."""
    if list(scalers.skus) != list(panel.skus):
        raise ValueError("the scalers were fitted for other SKUs than this panel's")
    scaled = scalers.transform(panel.values)
    scaled_zero = scalers.transform(np.zeros((panel.n_skus, 1)))[:, 0]
    static = encoder.fit_transform(panel.attributes)
    future = panel.future_dates(horizon)
    before = pd.date_range(end=panel.dates[0], periods=window + 1, freq=panel.freq)[:-1]
    calendar_dates = before.append(panel.dates).append(future)
    return encode_panel(
        raw=panel.values,
        scaled=scaled,
        skus=panel.skus,
        dates=panel.dates,
        future_dates=future,
        calendar=calendar_features(calendar_dates, panel.freq),
        calendar_names=calendar_feature_names(panel.freq),
        static=static,
        static_names=encoder.feature_names,
        first_index=panel.first_index,
        scaled_zero=scaled_zero,
        window=window,
        horizon=horizon,
        split=split,
        encoder=encoder,
        stride=stride,
        min_history=min_history,
    )
