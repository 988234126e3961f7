"""Cyclic calendar features per frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.time_features import (
    calendar_feature_names,
    calendar_features,
    period_length_days,
)


@pytest.mark.parametrize(
    ("freq", "names"),
    [
        ("D", ["day_of_week", "day_of_month", "week_of_year", "month"]),
        ("W-FRI", ["week_of_year", "month"]),
        ("MS", ["month"]),
    ],
)
def test_feature_set_depends_on_frequency(freq: str, names: list[str]) -> None:
    dates = pd.date_range("2023-01-06", periods=60, freq=freq)

    features = calendar_features(dates, freq)

    # One sine and one cosine per component.
    assert features.shape == (60, 2 * len(names))
    assert features.dtype == np.float32
    assert calendar_feature_names(freq) == [f"{n}_{p}" for n in names for p in ("sin", "cos")]


@pytest.mark.parametrize("freq", ["D", "W-FRI", "MS"])
def test_values_lie_on_the_unit_circle(freq: str) -> None:
    features = calendar_features(pd.date_range("2020-01-01", periods=400, freq=freq), freq)

    assert features.min() >= -1.0
    assert features.max() <= 1.0
    # Each (sin, cos) pair is a point on the unit circle.
    np.testing.assert_allclose(features[:, 0::2] ** 2 + features[:, 1::2] ** 2, 1.0, rtol=1e-5)


def test_day_of_week_repeats_every_seven_days() -> None:
    dates = pd.date_range("2024-01-01", periods=35, freq="D")  # starts on a Monday
    day_of_week = calendar_features(dates, "D")[:, :2]

    np.testing.assert_allclose(day_of_week[7:], day_of_week[:-7], atol=1e-6)
    # Within one week every day gets its own point.
    assert len({tuple(np.round(row, 5)) for row in day_of_week[:7]}) == 7
    # Monday is day 0: angle 0; Wednesday is day 2: angle 4 pi / 7.
    np.testing.assert_allclose(day_of_week[0], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(
        day_of_week[2], [np.sin(4 * np.pi / 7), np.cos(4 * np.pi / 7)], atol=1e-6
    )


def test_month_of_monthly_data_repeats_every_year() -> None:
    dates = pd.date_range("2022-01-01", periods=36, freq="MS")
    month = calendar_features(dates, "MS")

    np.testing.assert_allclose(month[12:], month[:-12], atol=1e-6)
    # July is month index 6 of 12: half way round the circle.
    np.testing.assert_allclose(month[6], [0.0, -1.0], atol=1e-6)


def test_weekly_month_feature_follows_the_label_date() -> None:
    dates = pd.DatetimeIndex(["2024-03-29", "2024-04-05"])  # Fridays in March and April

    month = calendar_features(dates, "W-FRI")[:, 2:]

    expected = [[np.sin(2 * np.pi * m / 12), np.cos(2 * np.pi * m / 12)] for m in (2, 3)]
    np.testing.assert_allclose(month, expected, atol=1e-6)


def test_period_length_in_days() -> None:
    assert period_length_days("D") == 1.0
    assert period_length_days("W-FRI") == 7.0
    assert 28 <= period_length_days("MS") <= 31


def test_yearly_frequency_has_no_features() -> None:
    dates = pd.date_range("2020-01-01", periods=3, freq="YS")

    assert calendar_features(dates, "YS").shape == (3, 0)
    assert calendar_feature_names("YS") == []
