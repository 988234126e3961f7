"""Accuracy metrics checked against arithmetic done by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecast_assets.core.metrics import (
    METRIC_NAMES,
    accuracy_metrics,
    correlation,
    interval_coverage,
    mae,
    mape,
    mase,
    mse,
    r2,
    rmse,
    seasonal_naive_forecast,
    seasonal_naive_scale,
    smape,
)

ACTUAL = np.array([[2.0, 4.0], [6.0, 8.0]])
FORECAST = np.array([[3.0, 2.0], [6.0, 12.0]])
# errors a - f: -1, 2, 0, -4; squared 1, 4, 0, 16; absolute 1, 2, 0, 4.


def test_mse() -> None:
    assert mse(ACTUAL, FORECAST) == pytest.approx((1 + 4 + 0 + 16) / 4)


def test_rmse() -> None:
    assert rmse(ACTUAL, FORECAST) == pytest.approx(math.sqrt(21 / 4))


def test_mae() -> None:
    assert mae(ACTUAL, FORECAST) == pytest.approx((1 + 2 + 0 + 4) / 4)


def test_mape_in_percent() -> None:
    # |e| / |a|: 1/2, 2/4, 0/6, 4/8 -> mean 0.375 -> 37.5 %.
    assert mape(ACTUAL, FORECAST) == pytest.approx(37.5)


def test_mape_skips_zero_actuals() -> None:
    actual = np.array([[0.0, 10.0, 0.0, 4.0]])
    forecast = np.array([[5.0, 8.0, 1.0, 5.0]])

    # Only 10 -> 8 (20 %) and 4 -> 5 (25 %) count.
    assert mape(actual, forecast) == pytest.approx((20 + 25) / 2)


def test_mape_of_all_zero_actuals_is_nan() -> None:
    assert math.isnan(mape(np.zeros((2, 3)), np.ones((2, 3))))


def test_smape() -> None:
    # 200 |e| / (|a| + |f|): 200/5 = 40, 400/6 = 66.67, 0, 800/20 = 40.
    expected = (40 + 400 / 6 + 0 + 40) / 4
    assert smape(ACTUAL, FORECAST) == pytest.approx(expected)


def test_smape_counts_zero_over_zero_as_zero() -> None:
    actual = np.array([[0.0, 0.0, 2.0]])
    forecast = np.array([[0.0, 1.0, 2.0]])

    # 0/0 -> 0; 2*1/(0+1) -> 200 %; exact -> 0.
    assert smape(actual, forecast) == pytest.approx(200 / 3)
    assert smape(np.zeros((1, 4)), np.zeros((1, 4))) == 0.0


def test_r2() -> None:
    # mean of actuals 5; SST = 9 + 1 + 1 + 9 = 20; SSE = 21.
    assert r2(ACTUAL, FORECAST) == pytest.approx(1 - 21 / 20)


def test_r2_perfect_and_constant() -> None:
    assert r2(ACTUAL, ACTUAL) == 1.0
    assert math.isnan(r2(np.full((2, 2), 3.0), ACTUAL))


def test_correlation_pooled_over_all_points() -> None:
    # a = 2, 4, 6, 8 (mean 5), f = 3, 2, 6, 12 (mean 5.75).
    # cov sum = (-3)(-2.75) + (-1)(-3.75) + (1)(0.25) + (3)(6.25) = 8.25 + 3.75 + 0.25 + 18.75 = 31
    # sum a^2 = 20; sum f^2 = 7.5625 + 14.0625 + 0.0625 + 39.0625 = 60.75
    expected = 31 / math.sqrt(20 * 60.75)
    assert correlation(ACTUAL, FORECAST) == pytest.approx(expected)


def test_correlation_of_constant_forecast_is_nan() -> None:
    assert math.isnan(correlation(ACTUAL, np.ones_like(ACTUAL)))


def test_seasonal_naive_scale_uses_the_season_lag() -> None:
    history = np.array([[1.0, 5.0, 2.0, 8.0, 4.0, 6.0]])

    # Lag 2 differences: |2-1|, |8-5|, |4-2|, |6-8| = 1, 3, 2, 2 -> mean 2.
    np.testing.assert_allclose(seasonal_naive_scale(history, season=2), [2.0])


def test_seasonal_naive_scale_falls_back_to_lag_one_for_short_series() -> None:
    # Season 4 but only 3 observed values (after NaN): lag 1 differences 2, 4 -> mean 3.
    history = np.array(
        [
            [np.nan, np.nan, np.nan, 1.0, 3.0, 7.0],
            [1.0, 2.0, 3.0, 4.0, 9.0, 2.0],
        ]
    )

    scale = seasonal_naive_scale(history, season=4)

    # Second series is long enough for lag 4: |9-1|, |2-2| -> mean 4.
    np.testing.assert_allclose(scale, [3.0, 4.0])


def test_mase_divides_mae_by_the_seasonal_scale_per_series() -> None:
    history = np.array(
        [
            [1.0, 5.0, 2.0, 8.0, 4.0, 6.0],  # lag-2 scale 2 (see above)
            [0.0, 0.0, 4.0, 4.0, 0.0, 0.0],  # lag-2 differences 4, 4, 4, 4 -> scale 4
        ]
    )
    actual = np.array([[3.0, 3.0], [4.0, 0.0]])
    forecast = np.array([[4.0, 6.0], [0.0, 0.0]])

    value, skipped = mase(actual, forecast, history, season=2)

    # Series MAE: (1 + 3) / 2 = 2 and (4 + 0) / 2 = 2; MASE 2/2 = 1 and 2/4 = 0.5.
    assert value == pytest.approx((1.0 + 0.5) / 2)
    assert skipped == 0


def test_mase_leaves_out_series_with_zero_scale() -> None:
    history = np.array(
        [
            [1.0, 5.0, 2.0, 8.0, 4.0, 6.0],  # scale 2
            [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # flat: scale 0
        ]
    )
    actual = np.array([[3.0, 3.0], [3.0, 3.0]])
    forecast = np.array([[4.0, 6.0], [9.0, 9.0]])

    value, skipped = mase(actual, forecast, history, season=2)

    assert value == pytest.approx(2.0 / 2.0)
    assert skipped == 1


def test_mase_all_series_unusable_is_nan() -> None:
    history = np.full((2, 5), 1.0)

    value, skipped = mase(np.ones((2, 2)), np.zeros((2, 2)), history, season=2)

    assert math.isnan(value)
    assert skipped == 2


def test_accuracy_metrics_reports_every_metric() -> None:
    history = np.array([[1.0, 5.0, 2.0, 8.0, 4.0, 6.0], [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]])

    metrics = accuracy_metrics(ACTUAL, FORECAST, history, season=2)

    assert set(metrics) == {*METRIC_NAMES, "mase_series_skipped"}
    assert metrics["mae"] == pytest.approx(7 / 4)
    assert metrics["mape"] == pytest.approx(37.5)
    # Only the first series has a scale (2); its MAE is (1 + 2) / 2 = 1.5.
    assert metrics["mase"] == pytest.approx(1.5 / 2)
    assert metrics["mase_series_skipped"] == 1.0


def test_seasonal_naive_forecast_repeats_the_last_season() -> None:
    history = np.array([[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]])

    forecast = seasonal_naive_forecast(history, horizon=5, season=3)

    # Last season 10, 20, 30 repeated.
    np.testing.assert_array_equal(forecast, [[10.0, 20.0, 30.0, 10.0, 20.0]])


def test_seasonal_naive_forecast_of_young_series_repeats_last_value() -> None:
    history = np.array(
        [
            [np.nan, np.nan, np.nan, np.nan, 4.0, 7.0],  # 2 observed < season 3
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ]
    )

    forecast = seasonal_naive_forecast(history, horizon=4, season=3)

    np.testing.assert_array_equal(forecast, [[7.0, 7.0, 7.0, 7.0], [4.0, 5.0, 6.0, 4.0]])


def test_seasonal_naive_forecast_with_history_shorter_than_season() -> None:
    history = np.array([[2.0, 9.0]])

    np.testing.assert_array_equal(seasonal_naive_forecast(history, 3, season=7), [[9.0, 9.0, 9.0]])


def test_interval_coverage_counts_bounds_as_inside() -> None:
    actual = np.array([[1.0, 5.0, 10.0, 3.0]])
    lower = np.array([[0.0, 5.0, 11.0, 0.0]])
    upper = np.array([[2.0, 6.0, 12.0, 2.0]])

    # Inside: 1 in [0, 2], 5 on the lower bound; outside: 10 < 11, 3 > 2.
    assert interval_coverage(actual, lower, upper) == pytest.approx(0.5)
