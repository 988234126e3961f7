"""Intervals from residuals, evaluation against seasonal naive, and the combined forecast table."""

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.errors import DataValidationError, ModelNotFoundError
from forecast_assets.core.inference.forecast import FORECAST_COLUMNS, combine_forecasts
from forecast_assets.core.inference.intervals import interval_bounds, residual_quantiles


def test_residual_quantiles_per_horizon_step() -> None:
    # Step 0 residuals 0..100, step 1 residuals 0..-200: quantiles are read off directly.
    residuals = np.stack([np.arange(101.0), -2 * np.arange(101.0)], axis=1)
    quantiles = residual_quantiles(residuals, confidence=0.8)
    np.testing.assert_allclose(quantiles.lower, [10.0, -180.0])
    np.testing.assert_allclose(quantiles.upper, [90.0, -20.0])
    assert quantiles.n_residuals == 101


def test_interval_bounds_scale_by_sku_unit_contain_the_forecast_and_floor_at_zero() -> None:
    quantiles = residual_quantiles(np.array([[-1.0], [0.0], [2.0]]), confidence=0.999)
    forecast = np.array([[10.0], [1.0]])
    units = np.array([2.0, 5.0])
    lower, upper = interval_bounds(forecast, units, quantiles, nonnegative=True)
    np.testing.assert_allclose(lower[:, 0], [10 - 2 * 0.999, 0.0], rtol=1e-3)
    np.testing.assert_allclose(upper[:, 0], [10 + 2 * 2 * 0.999, 1 + 5 * 2 * 0.999], rtol=1e-3)
    raw_lower, _ = interval_bounds(forecast, units, quantiles, nonnegative=False)
    assert raw_lower[1, 0] < 0
    # Residuals all positive: the lower bound never rises above the forecast.
    positive = residual_quantiles(np.array([[1.0], [2.0]]), 0.9)
    low, up = interval_bounds(forecast, units, positive, nonnegative=True)
    assert (low <= forecast).all() and (up >= forecast).all()


def cluster_table(cluster: str, skus: list[str], horizon: int = 3) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=horizon, freq="D")
    rows = [
        (s, d, 1.0, 0.5, 1.5, cluster, "lightweight", pd.Timestamp("2025-01-01"))
        for s in skus
        for d in dates
    ]
    return pd.DataFrame(rows, columns=list(FORECAST_COLUMNS))


def test_combined_table_has_every_sku_once_per_period() -> None:
    assignments = pd.Series({"a": "cluster_0", "b": "cluster_1", "c": "cluster_1"})
    combined = combine_forecasts(
        {
            "cluster_0": cluster_table("cluster_0", ["a"]),
            "cluster_1": cluster_table("cluster_1", ["c", "b"]),
        },
        assignments,
        horizon=3,
    )
    assert list(combined["sku"]) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert list(combined.columns) == list(FORECAST_COLUMNS)


def test_a_missing_cluster_forecast_is_named() -> None:
    assignments = pd.Series({"a": "cluster_0", "b": "cluster_1"})
    with pytest.raises(ModelNotFoundError, match="cluster_1"):
        combine_forecasts({"cluster_0": cluster_table("cluster_0", ["a"])}, assignments, horizon=3)


def test_a_forecast_from_an_older_clustering_is_refused() -> None:
    assignments = pd.Series({"a": "cluster_0", "b": "cluster_0"})
    with pytest.raises(DataValidationError, match=r"cluster_0.*1 missing") as error:
        combine_forecasts({"cluster_0": cluster_table("cluster_0", ["a"])}, assignments, horizon=3)
    assert error.value.values == ["b"]


def test_duplicated_or_short_forecasts_are_refused() -> None:
    assignments = pd.Series({"a": "cluster_0"})
    doubled = pd.concat([cluster_table("cluster_0", ["a"])] * 2)
    with pytest.raises(DataValidationError, match="exactly one forecast"):
        combine_forecasts({"cluster_0": doubled}, assignments, horizon=3)
    with pytest.raises(DataValidationError, match="exactly one forecast"):
        combine_forecasts(
            {"cluster_0": cluster_table("cluster_0", ["a"], horizon=2)}, assignments, horizon=3
        )
