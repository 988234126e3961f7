"""Time split, sliding windows and the model batches built from a panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.time_features import calendar_features
from forecast_assets.core.data.windows import (
    EncodedPanel,
    PeriodSplit,
    WindowSet,
    encode_panel,
    sliding_windows,
)
from forecast_assets.core.errors import InsufficientDataError

N_PERIODS = 16
WINDOW = 4
HORIZON = 2
VALIDATION = 3
# train_end = 16 - 2 - 3 = 11, test_origin = 16 - 2 = 14, last training origin = 11 - 2 = 9.
TRAIN_END = 11
TEST_ORIGIN = 14
LATE_START = 6


def make_panel() -> SalesPanel:
    t = np.arange(N_PERIODS, dtype=float)
    values = np.stack(
        [
            10.0 + t + (t % 3),  # "a"
            50.0 - 2.0 * t + 5.0 * (t % 2),  # "b"
            np.where(t >= LATE_START, 3.0 * (t % 4), np.nan),  # "late": first sale at period 6
        ]
    )
    values[2, LATE_START] = 1.0
    skus = pd.Index(["a", "b", "late"], name="sku")
    attributes = pd.DataFrame({"store": ["north", "south", "north"]}, index=skus)
    dates = pd.date_range("2024-01-05", periods=N_PERIODS, freq="W-FRI")
    return SalesPanel(values=values, skus=skus, dates=dates, freq="W-FRI", attributes=attributes)


def encode(panel: SalesPanel, stride: int = 1) -> EncodedPanel:
    split = period_split(panel, HORIZON, VALIDATION)
    scalers = fit_scalers(panel, split)
    encoder = CategoricalEncoder(onehot_columns=["store"])
    return build_features(panel, scalers, encoder, WINDOW, HORIZON, split, stride=stride)


def scaled_by_hand(panel: SalesPanel, row: int, period: int) -> float:
    """Standard scaling fitted on the training periods; before the SKU's start demand is zero."""
    train = panel.values[row, :TRAIN_END]
    mean, std = np.nanmean(train), np.nanstd(train)
    raw = panel.values[row, period] if period >= 0 else np.nan
    demand = 0.0 if np.isnan(raw) else raw
    return float((demand - mean) / std)


def period_dates(panel: SalesPanel, periods: np.ndarray) -> pd.DatetimeIndex:
    # Weekly grid: period p is p weeks after the first date (negative p: before the history).
    return pd.DatetimeIndex([panel.dates[0] + pd.Timedelta(weeks=int(p)) for p in periods])


def pairs(windows: WindowSet) -> list[tuple[int, int]]:
    return list(zip(windows.rows.tolist(), windows.origins.tolist(), strict=True))


# --- PeriodSplit and sliding_windows -----------------------------------------------------------


def test_period_split_boundaries() -> None:
    split = PeriodSplit(n_periods=N_PERIODS, horizon=HORIZON, validation_periods=VALIDATION)

    assert split.train_end == TRAIN_END
    assert split.test_origin == TEST_ORIGIN


def test_period_split_without_training_stretch_is_insufficient() -> None:
    with pytest.raises(InsufficientDataError):
        PeriodSplit(n_periods=5, horizon=3, validation_periods=2).check()
    PeriodSplit(n_periods=6, horizon=3, validation_periods=2).check()  # one training period


def monthly_panel(n_periods: int) -> SalesPanel:
    skus = pd.Index(["a"], name="sku")
    dates = pd.date_range("2020-01-01", periods=n_periods, freq="MS")
    return SalesPanel(np.ones((1, n_periods)), skus, dates, "MS", pd.DataFrame(index=skus))


def test_a_short_history_shrinks_validation_then_folds_instead_of_being_refused() -> None:
    # Enough for the configured split: it is kept.
    assert period_split(monthly_panel(80), 12, 24, folds=3, step=6) == PeriodSplit(80, 12, 24, 3, 6)
    # 40 months, horizon 6: the validation stretch shrinks until one training window fits.
    split = period_split(monthly_panel(40), 6, 24, folds=3, step=3)
    assert (split.folds, split.validation_periods) == (3, 21)
    assert split.train_end == 6 + 1
    # 39 months, horizon 12 (carparts' training part): one fold and one validation horizon.
    split = period_split(monthly_panel(39), 12, 24, folds=3, step=6)
    assert (split.folds, split.validation_periods, split.train_end) == (1, 12, 15)
    split.check()
    with pytest.raises(InsufficientDataError, match="at least 37 periods"):
        period_split(monthly_panel(36), 12, 24, folds=3, step=6)


def test_min_history_decides_which_skus_give_training_windows() -> None:
    panel = make_panel()
    split = period_split(panel, HORIZON, VALIDATION)
    scalers = fit_scalers(panel, split)
    encoder = CategoricalEncoder(onehot_columns=["store"])
    # "late" has 10 periods of history, "a" and "b" 16.
    encoded = build_features(panel, scalers, encoder, WINDOW, HORIZON, split, min_history=12)
    assert set(encoded.train.rows) == {0, 1} and set(encoded.validation.rows) == {0, 1}
    assert 2 in set(encoded.test.rows)  # still backtested and forecast
    everyone = build_features(panel, scalers, encoder, WINDOW, HORIZON, split)
    assert 2 in set(everyone.train.rows)


def test_sliding_windows_skip_origins_before_a_skus_second_period() -> None:
    windows = sliding_windows(np.array([0, 3]), first_origin=1, last_origin=5)

    # SKU 0 from origin 1; SKU 1 (first sale at 3) from origin 4.
    assert pairs(windows) == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 4), (1, 5)]
    assert windows.rows.dtype == np.int64
    assert windows.origins.dtype == np.int64
    assert len(windows) == 7


def test_stride_keeps_the_most_recent_origin() -> None:
    windows = sliding_windows(np.array([0]), first_origin=1, last_origin=8, stride=3)

    # Counting back from 8 in steps of 3: 8, 5, 2.
    assert windows.origins.tolist() == [2, 5, 8]


def test_empty_origin_range_gives_no_windows() -> None:
    windows = sliding_windows(np.array([0, 0]), first_origin=5, last_origin=4)

    assert len(windows) == 0


# --- the encoded panel ------------------------------------------------------------------------


def test_training_targets_end_before_train_end() -> None:
    encoded = encode(make_panel())
    panel = make_panel()

    assert len(encoded.train) > 0
    assert (encoded.train.origins + HORIZON <= TRAIN_END).all()
    assert (encoded.train.origins >= panel.first_index[encoded.train.rows] + 1).all()
    # Every origin 1..9 for a and b; the late SKU from period 7 on.
    expected = [(r, o) for r in (0, 1) for o in range(1, 10)] + [(2, o) for o in (7, 8, 9)]
    assert pairs(encoded.train) == expected


def test_validation_targets_lie_between_train_end_and_test_origin() -> None:
    encoded = encode(make_panel())

    origins = encoded.validation.origins
    assert (origins >= TRAIN_END).all()
    assert (origins + HORIZON <= TEST_ORIGIN).all()
    assert pairs(encoded.validation) == [(r, o) for r in (0, 1, 2) for o in (11, 12)]


def test_one_test_window_per_sku_at_the_test_origin() -> None:
    encoded = encode(make_panel())

    assert encoded.test.rows.tolist() == [0, 1, 2]
    assert encoded.test.origins.tolist() == [TEST_ORIGIN] * 3


def test_stride_thins_training_windows_but_keeps_the_latest() -> None:
    encoded = encode(make_panel(), stride=3)

    # Back from the last training origin 9 in steps of 3: 9, 6, 3; the late SKU only has 9.
    assert pairs(encoded.train) == [(0, 3), (0, 6), (0, 9), (1, 3), (1, 6), (1, 9), (2, 9)]
    # Validation and test windows are not thinned.
    assert len(encoded.validation) == 6
    assert len(encoded.test) == 3


def test_batch_shapes() -> None:
    encoded = encode(make_panel())

    batch = encoded.batch(encoded.train)

    b, f, c = len(encoded.train), encoded.n_time_features, encoded.n_static_features
    assert (f, c) == (4, 2)  # W-FRI: week and month sin/cos; stores north and south
    assert batch["past"].shape == (b, WINDOW)
    assert batch["past_time"].shape == (b, WINDOW, f)
    assert batch["future_time"].shape == (b, HORIZON, f)
    assert batch["static"].shape == (b, c)
    assert batch["sku"].shape == (b,)
    assert batch["target"].shape == (b, HORIZON)


@pytest.mark.parametrize(
    ("row", "origin"),
    [
        (0, 1),  # mostly padding before the history
        (1, 9),  # last training window
        (2, 7),  # late SKU: periods before its start read as zero demand
        (0, 12),  # validation
        (2, TEST_ORIGIN),  # test
    ],
)
def test_batch_values_are_the_scaled_panel_at_the_right_periods(row: int, origin: int) -> None:
    panel = make_panel()
    encoded = encode(panel)
    windows = WindowSet(np.array([row], dtype=np.int64), np.array([origin], dtype=np.int64))

    batch = encoded.batch(windows)

    past_periods = np.arange(origin - WINDOW, origin)
    future_periods = np.arange(origin, origin + HORIZON)
    past = [scaled_by_hand(panel, row, p) for p in past_periods]
    target = [scaled_by_hand(panel, row, p) for p in future_periods]
    np.testing.assert_allclose(batch["past"][0], past, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch["target"][0], target, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        batch["past_time"][0], calendar_features(period_dates(panel, past_periods), "W-FRI")
    )
    np.testing.assert_allclose(
        batch["future_time"][0], calendar_features(period_dates(panel, future_periods), "W-FRI")
    )
    store = panel.attributes["store"].iloc[row]
    np.testing.assert_array_equal(batch["static"][0], [store == "north", store == "south"])
    assert batch["sku"].tolist() == [row]


def test_target_undoes_to_raw_demand() -> None:
    panel = make_panel()
    encoded = encode(panel)
    split = period_split(panel, HORIZON, VALIDATION)
    scalers = fit_scalers(panel, split)

    batch = encoded.batch(encoded.test)

    actual = scalers.inverse_transform(batch["target"].astype(float), rows=encoded.test.rows)
    np.testing.assert_allclose(actual, panel.values[:, TEST_ORIGIN:], rtol=1e-5)


def test_forecast_windows_look_past_the_history_without_target() -> None:
    panel = make_panel()
    encoded = encode(panel)

    windows = encoded.forecast_windows()
    batch = encoded.batch(windows, with_target=False)

    assert windows.origins.tolist() == [N_PERIODS] * 3
    assert "target" not in batch
    last = np.arange(N_PERIODS - WINDOW, N_PERIODS)
    expected_past = [[scaled_by_hand(panel, r, p) for p in last] for r in range(3)]
    np.testing.assert_allclose(batch["past"], expected_past, rtol=1e-5, atol=1e-6)
    future = calendar_features(panel.future_dates(HORIZON), "W-FRI")
    for row in range(3):
        np.testing.assert_allclose(batch["future_time"][row], future)
    with pytest.raises(ValueError, match="with_target=False"):
        encoded.batch(windows)


def test_scalers_for_other_skus_are_rejected() -> None:
    panel = make_panel()
    split = period_split(panel, HORIZON, VALIDATION)
    scalers = fit_scalers(panel.select(["b", "a", "late"]), split)

    with pytest.raises(ValueError, match="other SKUs"):
        build_features(panel, scalers, CategoricalEncoder(), WINDOW, HORIZON, split)


def test_encode_panel_checks_calendar_length() -> None:
    panel = make_panel()
    split = PeriodSplit(N_PERIODS, HORIZON, VALIDATION)

    with pytest.raises(ValueError, match="calendar"):
        encode_panel(
            raw=panel.values,
            scaled=panel.values,
            skus=panel.skus,
            dates=panel.dates,
            future_dates=panel.future_dates(HORIZON),
            calendar=np.zeros((N_PERIODS, 4)),  # lacks the window before and the horizon after
            calendar_names=["x"] * 4,
            static=np.zeros((3, 0)),
            static_names=[],
            first_index=panel.first_index,
            scaled_zero=np.zeros(3),
            window=WINDOW,
            horizon=HORIZON,
            split=split,
            encoder=None,
        )


def test_a_sku_first_sold_after_the_training_periods_still_scales_finitely() -> None:
    panel = make_panel()
    values = panel.values.copy()
    values[2, :TRAIN_END] = np.nan  # "late" now starts after the training periods
    values[2, TRAIN_END] = 2.0
    panel = SalesPanel(values, panel.skus, panel.dates, panel.freq, panel.attributes)
    scalers = fit_scalers(panel, period_split(panel, HORIZON, VALIDATION))
    assert np.isfinite(scalers.offset).all() and np.isfinite(scalers.unit).all()
    late = values[2, TRAIN_END:]
    assert scalers.offset[2] == pytest.approx(late.mean())
    # The others are still fitted on the training periods alone.
    assert scalers.offset[0] == pytest.approx(values[0, :TRAIN_END].mean())
