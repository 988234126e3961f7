"""Accuracy metrics checked against arithmetic done by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecast_assets.core.metrics import (
    METRIC_NAMES,
    accuracy_metrics,
    bias,
    correlation,
    interval_coverage,
    interval_width,
    mae,
    mape,
    mase,
    mase_per_series,
    mse,
    per_series_metrics,
    pinball_loss,
    pinball_losses,
    r2,
    rmse,
    rmsse,
    rmsse_per_series,
    scaled_interval_width,
    seasonal_naive_forecast,
    seasonal_naive_scale,
    smape,
    squared_difference_scale,
    volume_weights,
    wrmsse,
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

    assert set(metrics) == {*METRIC_NAMES, "mase_series_skipped", "rmsse_series_skipped"}
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


def test_metric_names_keep_the_old_order_and_append_the_new_ones() -> None:
    assert METRIC_NAMES[:8] == ("mse", "rmse", "mae", "mape", "smape", "mase", "r2", "correlation")
    assert METRIC_NAMES[8:] == ("bias", "rmsse", "wrmsse")


def test_bias_is_positive_for_over_forecasts() -> None:
    # f - a: 1, -2, 0, 4 -> mean 3 / 4.
    assert bias(ACTUAL, FORECAST) == pytest.approx(0.75)
    assert bias(ACTUAL, ACTUAL + 2.0) == pytest.approx(2.0)
    assert bias(ACTUAL, ACTUAL - 0.5) == pytest.approx(-0.5)


def test_mase_per_series_is_nan_where_the_scale_is_zero() -> None:
    history = np.array(
        [
            [1.0, 5.0, 2.0, 8.0, 4.0, 6.0],  # lag-2 scale 2
            [0.0, 0.0, 4.0, 4.0, 0.0, 0.0],  # lag-2 scale 4
            [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # scale 0
        ]
    )
    actual = np.array([[3.0, 3.0], [4.0, 0.0], [3.0, 3.0]])
    forecast = np.array([[4.0, 6.0], [0.0, 0.0], [9.0, 9.0]])

    # MAE 2 / 2 = 1, 2 / 4 = 0.5, no scale.
    np.testing.assert_allclose(
        mase_per_series(actual, forecast, history, season=2), [1.0, 0.5, np.nan]
    )


def test_mase_of_a_nan_forecast_stays_nan_rather_than_skipped() -> None:
    history = np.array([[1.0, 5.0, 2.0, 8.0, 4.0, 6.0]])

    value, skipped = mase(np.array([[3.0, 3.0]]), np.array([[np.nan, 6.0]]), history, season=2)

    assert math.isnan(value)
    assert skipped == 0


def test_squared_difference_scale_starts_at_the_first_observed_value() -> None:
    history = np.array(
        [
            [np.nan, np.nan, 1.0, 3.0, 2.0, 4.0],  # diffs 2, -1, 2 -> squares 4, 1, 4 -> 3
            [1.0, 2.0, 4.0, 4.0, 5.0, 7.0],  # diffs 1, 2, 0, 1, 2 -> squares 1, 4, 0, 1, 4 -> 2
            [np.nan, np.nan, np.nan, np.nan, np.nan, 5.0],  # one value: undefined
        ]
    )

    np.testing.assert_allclose(squared_difference_scale(history), [3.0, 2.0, np.nan])
    assert np.isnan(squared_difference_scale(np.array([[4.0], [2.0]]))).all()


RMSSE_HISTORY = np.array(
    [
        [np.nan, np.nan, 1.0, 3.0, 2.0, 4.0],  # scale 3 (NaN read as 0 would give 2)
        [1.0, 2.0, 4.0, 4.0, 5.0, 7.0],  # scale 2
        [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # flat: scale 0
        [np.nan, np.nan, np.nan, np.nan, np.nan, 5.0],  # one observed value: no scale
    ]
)
RMSSE_ACTUAL = np.array([[4.0, 5.0], [6.0, 8.0], [3.0, 3.0], [5.0, 5.0]])
RMSSE_FORECAST = np.array([[5.0, 7.0], [8.0, 8.0], [9.0, 9.0], [0.0, 0.0]])
# Squared errors: 1, 4 -> 2.5 and 4, 0 -> 2; RMSSE sqrt(2.5 / 3) and sqrt(2 / 2) = 1.


def test_rmsse_per_series() -> None:
    per_series = rmsse_per_series(RMSSE_ACTUAL, RMSSE_FORECAST, RMSSE_HISTORY)

    np.testing.assert_allclose(per_series, [math.sqrt(2.5 / 3), 1.0, np.nan, np.nan])


def test_rmsse_averages_usable_series_and_counts_the_rest() -> None:
    value, skipped = rmsse(RMSSE_ACTUAL, RMSSE_FORECAST, RMSSE_HISTORY)

    assert value == pytest.approx((math.sqrt(2.5 / 3) + 1.0) / 2)
    assert skipped == 2


def test_rmsse_all_series_unusable_is_nan() -> None:
    value, skipped = rmsse(np.ones((2, 2)), np.zeros((2, 2)), np.full((2, 5), 1.0))

    assert math.isnan(value)
    assert skipped == 2


WRMSSE_HISTORY = np.array(
    [
        [0.0, 2.0, 0.0, 2.0],  # diffs +-2 -> scale 4
        [1.0, 2.0, 3.0, 4.0],  # diffs 1 -> scale 1
        [5.0, 5.0, 5.0, 5.0],  # scale 0
    ]
)
WRMSSE_ACTUAL = np.array([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]])
WRMSSE_FORECAST = np.array([[3.0, 3.0], [2.0, 2.0], [0.0, 0.0]])
# Mean squared errors 4 and 4: RMSSE sqrt(4 / 4) = 1 and sqrt(4 / 1) = 2.


def test_wrmsse_renormalises_weights_over_series_with_a_scale() -> None:
    weights = np.array([0.2, 0.3, 0.5])

    # Third series dropped: 0.2, 0.3 -> 0.4, 0.6; 0.4 * 1 + 0.6 * 2 = 1.6 (not 0.2 + 0.6).
    assert wrmsse(WRMSSE_ACTUAL, WRMSSE_FORECAST, WRMSSE_HISTORY, weights) == pytest.approx(1.6)


def test_wrmsse_uses_equal_weights_when_the_kept_weights_are_zero() -> None:
    weights = np.array([0.0, 0.0, 1.0])

    # 0.5 * 1 + 0.5 * 2.
    assert wrmsse(WRMSSE_ACTUAL, WRMSSE_FORECAST, WRMSSE_HISTORY, weights) == pytest.approx(1.5)


def test_wrmsse_without_usable_series_is_nan_and_checks_weight_count() -> None:
    flat = np.full((2, 4), 1.0)
    assert math.isnan(wrmsse(np.ones((2, 2)), np.zeros((2, 2)), flat, np.array([0.5, 0.5])))
    with pytest.raises(ValueError, match="weights"):
        wrmsse(WRMSSE_ACTUAL, WRMSSE_FORECAST, WRMSSE_HISTORY, np.array([0.5, 0.5]))


def test_volume_weights_share_of_the_last_periods() -> None:
    history = np.array(
        [
            [9.0, np.nan, 1.0, 3.0],  # last 2: 1 + 3 = 4
            [np.nan, np.nan, np.nan, 6.0],  # last 2: NaN as 0 + 6 = 6
            [100.0, 50.0, 0.0, 0.0],  # sold only before the window: 0
        ]
    )

    # Total 10: 4/10, 6/10, 0.
    np.testing.assert_allclose(volume_weights(history, periods=2), [0.4, 0.6, 0.0])


def test_volume_weights_with_prices_weigh_revenue() -> None:
    history = np.array([[9.0, np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan, 6.0]])

    # Revenue 4 * 2.5 = 10 and 6 * 1 = 6; total 16.
    weights = volume_weights(history, periods=2, prices=np.array([2.5, 1.0]))

    np.testing.assert_allclose(weights, [10 / 16, 6 / 16])


def test_volume_weights_default_to_the_last_28_periods() -> None:
    history = np.zeros((2, 30))
    history[0, :] = 1.0  # 28 in the window
    history[1, :2] = 100.0  # only in the two periods before the window

    np.testing.assert_allclose(volume_weights(history), [1.0, 0.0])


def test_volume_weights_without_any_volume_are_equal() -> None:
    history = np.array([[0.0, np.nan], [0.0, 0.0], [np.nan, np.nan]])

    np.testing.assert_allclose(volume_weights(history), [1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="periods"):
        volume_weights(history, periods=0)


PINBALL_ACTUAL = np.array([[10.0, 20.0]])
PINBALL_QUANTILE = np.array([[12.0, 15.0]])
# y - q: -2 and 5.


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        # max(0.1 * -2, -0.9 * -2) = 1.8; max(0.1 * 5, -0.9 * 5) = 0.5 -> 1.15.
        (0.1, (1.8 + 0.5) / 2),
        # 0.5 * 2 = 1 and 0.5 * 5 = 2.5 -> 1.75 = MAE 3.5 / 2.
        (0.5, (1.0 + 2.5) / 2),
        # max(0.9 * -2, -0.1 * -2) = 0.2; max(0.9 * 5, -0.1 * 5) = 4.5 -> 2.35.
        (0.9, (0.2 + 4.5) / 2),
    ],
)
def test_pinball_loss(level: float, expected: float) -> None:
    assert pinball_loss(PINBALL_ACTUAL, PINBALL_QUANTILE, level) == pytest.approx(expected)


def test_pinball_loss_at_the_median_is_half_the_mae() -> None:
    assert pinball_loss(ACTUAL, FORECAST, 0.5) == pytest.approx(7 / 4 / 2)


def test_pinball_losses_per_level_with_two_digit_names() -> None:
    quantiles = np.stack([[[11.0, 14.0]], PINBALL_QUANTILE, [[12.0, 15.0]]], axis=-1)

    losses = pinball_losses(PINBALL_ACTUAL, quantiles, (0.05, 0.5, 0.9))

    # p05, y - q = -1, 6: max(-0.05, 0.95) = 0.95; max(0.3, -5.7) = 0.3 -> 0.625.
    assert losses == pytest.approx(
        {"pinball_p05": (0.95 + 0.3) / 2, "pinball_p50": 1.75, "pinball_p90": 2.35}
    )
    assert list(losses) == ["pinball_p05", "pinball_p50", "pinball_p90"]
    with pytest.raises(ValueError, match="levels"):
        pinball_losses(PINBALL_ACTUAL, quantiles, (0.1, 0.9))


def test_interval_width() -> None:
    lower = np.array([[0.0, 5.0], [1.0, 1.0]])
    upper = np.array([[2.0, 6.0], [4.0, 1.0]])

    # Widths 2, 1, 3, 0.
    assert interval_width(lower, upper) == pytest.approx(1.5)


def test_scaled_interval_width_skips_series_without_a_scale() -> None:
    history = np.array(
        [
            [1.0, 5.0, 2.0, 8.0, 4.0, 6.0],  # lag-2 scale 2
            [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],  # scale 0: left out
            [0.0, 0.0, 4.0, 4.0, 0.0, 0.0],  # lag-2 scale 4
        ]
    )
    lower = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    upper = np.array([[2.0, 4.0], [50.0, 50.0], [3.0, 3.0]])

    # Mean widths 3 / 2 = 1.5 and 2 / 4 = 0.5 -> 1.0.
    assert scaled_interval_width(lower, upper, history, season=2) == pytest.approx(1.0)


PER_SERIES_HISTORY = np.array(
    [
        [1.0, 3.0, 1.0, 3.0, 1.0, 3.0],  # lag-2 diffs 0: no MASE scale; lag-1 squares 4 -> 4
        [0.0, 2.0, 4.0, 2.0, 0.0, 2.0],  # lag-2 diffs 4, 0, 4, 0 -> 2; lag-1 squares 4 -> 4
    ]
)


def test_per_series_metrics() -> None:
    metrics = per_series_metrics(ACTUAL, FORECAST, PER_SERIES_HISTORY, season=2)

    # f - a: row 0 1, -2; row 1 0, 4.
    assert set(metrics) == {"mae", "rmse", "bias", "smape", "mase", "rmsse"}
    assert all(values.shape == (2,) for values in metrics.values())
    np.testing.assert_allclose(metrics["mae"], [1.5, 2.0])
    np.testing.assert_allclose(metrics["rmse"], [math.sqrt(2.5), math.sqrt(8.0)])
    np.testing.assert_allclose(metrics["bias"], [-0.5, 2.0])
    # 200/5 = 40 and 400/6; 0 and 800/20 = 40.
    np.testing.assert_allclose(metrics["smape"], [(40 + 400 / 6) / 2, 20.0])
    np.testing.assert_allclose(metrics["mase"], [np.nan, 2.0 / 2.0])
    np.testing.assert_allclose(metrics["rmsse"], [math.sqrt(2.5 / 4), math.sqrt(8.0 / 4)])


def test_per_series_smape_counts_zero_over_zero_as_zero() -> None:
    history = np.array([[1.0, 2.0, 3.0]])

    metrics = per_series_metrics(np.zeros((1, 3)), np.array([[0.0, 1.0, 0.0]]), history, 1)

    # 0, 200 %, 0.
    np.testing.assert_allclose(metrics["smape"], [200 / 3])


def test_accuracy_metrics_adds_bias_rmsse_and_volume_weighted_wrmsse() -> None:
    metrics = accuracy_metrics(ACTUAL, FORECAST, PER_SERIES_HISTORY, season=2)

    rmsse_0, rmsse_1 = math.sqrt(2.5 / 4), math.sqrt(8.0 / 4)
    assert metrics["bias"] == pytest.approx(0.75)
    assert metrics["rmsse"] == pytest.approx((rmsse_0 + rmsse_1) / 2)
    assert metrics["rmsse_series_skipped"] == 0.0
    # Volume over all 6 (< 28) periods: 12 and 10.
    assert metrics["wrmsse"] == pytest.approx((12 * rmsse_0 + 10 * rmsse_1) / 22)
    # MASE is unchanged: only the second series has a scale.
    assert metrics["mase"] == pytest.approx(1.0)
    assert metrics["mase_series_skipped"] == 1.0


def test_accuracy_metrics_takes_explicit_weights() -> None:
    metrics = accuracy_metrics(
        ACTUAL, FORECAST, PER_SERIES_HISTORY, season=2, weights=np.array([1.0, 0.0])
    )

    assert metrics["wrmsse"] == pytest.approx(math.sqrt(2.5 / 4))
