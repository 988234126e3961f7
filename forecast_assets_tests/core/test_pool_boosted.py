"""BoostedCandidate: the global LightGBM member of the pool, on small synthetic panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlforecast import MLForecast

from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.pool.boosted import (
    BoostedCandidate,
    BoostedOptions,
    calendar_features,
    feature_lags,
    rolling_windows,
)

SEASON = 12
# Fewer trees than the default: the tests judge the wiring, not the last digit of accuracy.
FAST = BoostedOptions(n_estimators=60)


def make_panel(
    values: np.ndarray,
    freq: str = "MS",
    attributes: pd.DataFrame | None = None,
) -> SalesPanel:
    skus = pd.Index([f"sku{i}" for i in range(values.shape[0])], name="sku")
    dates = pd.date_range("2018-01-01", periods=values.shape[1], freq=freq)
    if attributes is None:
        attributes = pd.DataFrame(index=skus)
    return SalesPanel(values, skus, dates, freq, attributes.set_axis(skus))


def seasonal_values(
    n_skus: int = 24, n_periods: int = 72, seed: int = 0, noise: float = 0.05
) -> np.ndarray:
    """Demand with a strong yearly shape (its peak month differs by SKU, so that the calendar
    alone cannot tell it) and a trend, at levels from 1 to 5,000."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_periods)[None, :]
    level = np.geomspace(1.0, 5000.0, n_skus)[:, None]
    phase = rng.uniform(0.0, 2 * np.pi, (n_skus, 1))
    shape = 1.0 + 0.6 * np.sin(2 * np.pi * t / SEASON + phase) + 0.01 * t
    values = level * shape * (1.0 + noise * rng.standard_normal((n_skus, n_periods)))
    return np.maximum(values, 0.0)


def forecast(panel: SalesPanel, origins: list[int], horizon: int, **kwargs: object) -> np.ndarray:
    options = kwargs.pop("options", FAST)
    candidate = BoostedCandidate(season=SEASON, options=options, **kwargs)  # type: ignore[arg-type]
    return candidate.forecast(panel, origins, horizon)["lightgbm"]


def test_names_and_shape() -> None:
    panel = make_panel(seasonal_values())

    out = BoostedCandidate(season=SEASON, options=FAST).forecast(panel, [40, 60, 72], 6)

    assert BoostedCandidate(season=SEASON).names == ("lightgbm",)
    assert set(out) == {"lightgbm"}
    assert out["lightgbm"].shape == (3, panel.n_skus, 6)
    assert np.isfinite(out["lightgbm"]).all()


def test_nan_rows_only_for_skus_unobserved_before_the_origin() -> None:
    values = seasonal_values(n_skus=6)
    values[1, :50] = np.nan  # starts at period 50
    values[2, :] = np.nan  # never observed

    out = forecast(make_panel(values), [40, 50, 51, 72], 4)

    assert np.isnan(out[:, 2]).all()
    assert np.isnan(out[:2, 1]).all()  # origins 40 and 50 see nothing of it
    assert np.isfinite(out[2:, 1]).all()  # one period before 51 is enough
    others = [0, 3, 4, 5]
    assert np.isfinite(out[:, others]).all()


def test_no_origin_sees_its_own_period_or_later() -> None:
    values = seasonal_values()
    changed = values.copy()
    changed[:, 55:] = changed[:, 55:] * 7.0 + 100.0  # every target from period 55 on

    origins = [40, 55, 72]
    before = forecast(make_panel(values), origins, 6)
    after = forecast(make_panel(changed), origins, 6)

    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    # The change is one the model would show: the origin after the data does see it.
    assert not np.allclose(after[2], before[2])


def test_an_origin_forecasts_as_if_the_later_periods_did_not_exist() -> None:
    values = seasonal_values()

    full = forecast(make_panel(values), [50], 6)
    cut = forecast(make_panel(values[:, :50]), [50], 6)

    np.testing.assert_array_equal(full, cut)


def test_same_call_twice_gives_the_same_numbers_and_the_seed_matters() -> None:
    values = seasonal_values(noise=0.3)
    panel = make_panel(values)

    first = forecast(panel, [48, 60, 72], 6, seed=3, threads=2)
    again = forecast(panel, [48, 60, 72], 6, seed=3, threads=2)
    other_seed = forecast(panel, [48, 60, 72], 6, seed=4, threads=2)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_seed)


def test_fits_once_for_the_backtest_and_once_for_the_origin_after_the_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fits: list[int] = []
    original_fit = MLForecast.fit

    def counting_fit(self: MLForecast, df: pd.DataFrame, **kwargs: object) -> MLForecast:
        fits.append(len(df))
        return original_fit(self, df, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MLForecast, "fit", counting_fit)
    values = seasonal_values(n_skus=5)
    values[0, :30] = np.nan  # its first 30 periods are no rows: it did not exist yet
    panel = make_panel(values)

    forecast(panel, [36, 42, 48, 54, 60], 6)
    assert fits == [5 * 36 - 30]
    fits.clear()
    forecast(panel, [36, 48, 60, 72], 6)
    assert fits == [5 * 36 - 30, 5 * 72 - 30]


def test_the_model_sees_lags_rolling_statistics_calendar_and_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fitted: list[MLForecast] = []
    original_fit = MLForecast.fit

    def keeping_fit(self: MLForecast, df: pd.DataFrame, **kwargs: object) -> MLForecast:
        fitted.append(self)
        return original_fit(self, df, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MLForecast, "fit", keeping_fit)
    values = seasonal_values(n_skus=6)
    attributes = pd.DataFrame({"family": list("aabbcc")})

    forecast(make_panel(values, attributes=attributes), [72], 6, options=BoostedOptions())

    model = fitted[0].models_["lightgbm"]
    names = set(model.feature_name_)
    assert {f"lag{k}" for k in [1, 2, 3, 4, 5, 6, 7, 12, 24]} <= names
    for window in (3, 4, 12):
        assert f"rolling_mean_lag1_window_size{window}" in names
        assert f"rolling_std_lag1_window_size{window}" in names
    assert "month" in names
    # The attribute reaches LightGBM as a categorical, not as an arbitrary code.
    assert "attribute_0" in names
    assert model.booster_.pandas_categorical == [["a", "b", "c"]]
    assert [type(t).__name__ for t in fitted[0].ts.target_transforms] == ["LocalStandardScaler"]
    assert model.get_params()["verbosity"] == -1
    assert model.get_params()["n_jobs"] == 1


def test_forecasts_are_never_negative() -> None:
    # Smooth large SKUs next to sparse small ones: leaves learned on the large SKUs' low
    # scaled values sit below a sparse SKU's zero, which unfloored forecasts negative.
    rng = np.random.default_rng(5)
    smooth = seasonal_values(n_skus=10, noise=0.2)
    declining = np.linspace(50.0, 0.0, 72)[None, :].repeat(4, axis=0)
    sparse = rng.poisson(0.15, (10, 72)).astype(float)
    values = np.vstack([smooth, declining, sparse])

    out = forecast(make_panel(values), [24, 36, 48, 60, 72], 12)

    assert np.isfinite(out).all()
    assert out.min() >= 0.0
    assert (out == 0.0).any()


def test_short_series_get_a_finite_forecast_and_leading_nans_are_not_zeros() -> None:
    values = seasonal_values(n_skus=12)
    for sku, n_observed in enumerate([1, 2, 3, 5]):
        values[sku, : 60 - n_observed] = np.nan

    out = forecast(make_panel(values), [60], 6)

    assert np.isfinite(out).all()
    # Read as zeros, the periods before a short SKU's start would drag its forecast to half
    # its level or less; as absent history its forecast stays near its few observations.
    for sku in range(4):
        observed = values[sku, ~np.isnan(values[sku])]
        assert out[0, sku].mean() > 0.6 * observed.mean()


def test_intermittent_and_all_zero_skus_do_not_break_it() -> None:
    rng = np.random.default_rng(2)
    values = rng.poisson(0.1, (20, 60)).astype(float) * rng.integers(1, 20, (20, 1))
    values[0] = 0.0  # never sold
    values[1] = 0.0
    values[1, 10] = 3.0  # one sale, long ago
    values[2] = 5.0  # the same every period: no scale to learn from

    out = forecast(make_panel(values, freq="W-FRI"), [30, 45, 60], 8)

    assert np.isfinite(out).all()
    assert out.min() >= 0.0
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_array_equal(out[:, 2], 5.0)
    # Sparse demand gets a small forecast, not one of the size of a sale.
    assert np.nanmean(out[:, 3:]) < np.nanmean(values[3:][values[3:] > 0])


def test_backtest_error_well_below_the_last_value_forecast() -> None:
    values = seasonal_values(n_skus=30, n_periods=84, noise=0.03)
    panel = make_panel(values)
    origins, horizon = [48, 60, 72], 12

    out = forecast(panel, origins, horizon, options=BoostedOptions())

    boosted_errors, naive_errors = [], []
    for k, origin in enumerate(origins):
        actual = values[:, origin : origin + horizon]
        scale = values[:, :origin].mean(axis=1, keepdims=True)  # so that every SKU counts
        boosted_errors.append(np.abs(out[k] - actual) / scale)
        naive_errors.append(np.abs(values[:, [origin - 1]] - actual) / scale)
    boosted, naive = np.mean(boosted_errors), np.mean(naive_errors)
    assert boosted < 0.35 * naive, (boosted, naive)
    # The per-series scaling lets the smallest SKUs share what the large ones teach.
    small = slice(0, 5)
    assert np.mean([e[small] for e in boosted_errors]) < 0.5 * np.mean(
        [e[small] for e in naive_errors]
    )


def test_categorical_attributes_move_a_sku_towards_its_group() -> None:
    # Two groups whose yearly peaks lie half a year apart, under noise that hides the phase
    # in each SKU's own lags; the group attribute is what tells it. The last two SKUs have the
    # same six periods of history and differ only in their group.
    rng = np.random.default_rng(0)
    t = np.arange(48)
    group = np.array(["early", "late"] * 30)
    phase = np.where(group == "early", 0.0, np.pi)[:, None]
    values = 100.0 * (1.0 + 0.8 * np.sin(2 * np.pi * t[None, :] / SEASON + phase))
    values = np.maximum(values + 60.0 * rng.standard_normal(values.shape), 0.0)
    values[-1] = values[-2]
    values[-2:, :42] = np.nan
    panel = make_panel(values, attributes=pd.DataFrame({"group": group}))

    out = forecast(panel, [48], 12)[0]

    future = np.sin(2 * np.pi * np.arange(48, 60) / SEASON)
    early, late = 100.0 * (1.0 + 0.8 * future), 100.0 * (1.0 - 0.8 * future)
    as_early, as_late = out[-2], out[-1]
    assert np.abs(as_late - late).mean() < np.abs(as_early - late).mean()
    assert np.abs(as_early - early).mean() < np.abs(as_late - early).mean()


@pytest.mark.parametrize("origins", [[0], [73], [10, 100]])
def test_bad_origin_raises(origins: list[int]) -> None:
    with pytest.raises(ValueError, match="origins"):
        forecast(make_panel(seasonal_values()), origins, 6)


def test_bad_horizon_raises() -> None:
    with pytest.raises(ValueError, match="horizon"):
        forecast(make_panel(seasonal_values()), [72], 0)


def test_calendar_features_follow_the_frequency() -> None:
    assert calendar_features("W-FRI") == ["week", "month"]
    assert calendar_features("MS") == ["month"]
    assert calendar_features("D") == ["dayofweek", "day", "month", "week"]
    assert calendar_features("QS") == ["quarter"]


def test_rolling_windows_include_the_season_where_the_history_holds_it() -> None:
    assert rolling_windows(52, 135) == (4, 13, 52)
    assert rolling_windows(52, 40) == (4, 13)
    assert rolling_windows(12, 39) == (3, 4, 12)
    assert rolling_windows(7, 1000) == (4, 7, 28)


def test_lags_reach_the_seasons_the_history_holds() -> None:
    options = BoostedOptions(short_lags=4)

    assert feature_lags(12, 39, options) == [1, 2, 3, 4, 12, 24]
    assert feature_lags(12, 35, options) == [1, 2, 3, 4, 12]
    assert feature_lags(52, 135, options) == [1, 2, 3, 4, 52]
    assert feature_lags(52, 3, options) == [1, 2]
    assert feature_lags(52, 1, options) == [1]


def test_daily_panel_with_attributes() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(120)
    weekly = 1.0 + 0.5 * (t % 7 >= 5)
    values = rng.poisson(20.0 * weekly, (8, 120)).astype(float)
    attributes = pd.DataFrame({"store": list("aabbccdd"), "item": list("xyxyxyxy")})
    panel = make_panel(values, freq="D", attributes=attributes)

    out = BoostedCandidate(season=7, options=FAST).forecast(panel, [91, 120], 14)["lightgbm"]

    assert out.shape == (2, 8, 14)
    assert np.isfinite(out).all()
    # The weekend peak is the pattern to keep: weekend forecasts above weekday ones.
    weekend = panel.dates[91:105].dayofweek >= 5
    assert out[0][:, weekend].mean() > 1.2 * out[0][:, ~weekend].mean()
