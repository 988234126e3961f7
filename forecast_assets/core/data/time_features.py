"""Calendar features that fit the frequency, encoded as sine/cosine pairs (no seam at year end)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def calendar_feature_names(freq: str) -> list[str]:
    return [f"{name}_{part}" for name, _ in _components(freq) for part in ("sin", "cos")]


def calendar_features(dates: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """[len(dates), n_features] float32 cyclic calendar features.

    Daily data: day of week, day of month, week of year, month. Weekly: week of year, month.
    Monthly: month. Sub-daily adds hour of day. Longer frequencies get no features.
    """
    columns = []
    for _name, (values, period) in _component_values(dates, freq):
        angle = 2 * np.pi * values / period
        columns.extend([np.sin(angle), np.cos(angle)])
    if not columns:
        return np.zeros((len(dates), 0), dtype=np.float32)
    return np.stack(columns, axis=1).astype(np.float32)


def period_length_days(freq: str) -> float:
    """Typical length of one period in days (e.g. 7 for W-FRI, about 30.4 for MS)."""
    sample = pd.date_range("2001-01-01", periods=13, freq=freq)
    return float(np.median(np.diff(sample.asi8)) / 86_400e9)


def _components(freq: str) -> list[tuple[str, float]]:
    days = period_length_days(freq)
    chosen: list[tuple[str, float]] = []
    if days < 1:
        chosen.append(("hour", 24))
    if days <= 1:
        chosen.extend([("day_of_week", 7), ("day_of_month", 31)])
    if days <= 7:
        chosen.append(("week_of_year", 53))
    if days <= 31:
        chosen.append(("month", 12))
    return chosen


def _component_values(dates: pd.DatetimeIndex, freq: str):
    getters = {
        "hour": lambda: dates.hour.to_numpy(),
        "day_of_week": lambda: dates.dayofweek.to_numpy(),
        "day_of_month": lambda: dates.day.to_numpy() - 1,
        "week_of_year": lambda: dates.isocalendar().week.to_numpy(dtype=float) - 1,
        "month": lambda: dates.month.to_numpy() - 1,
    }
    return [(name, (getters[name](), period)) for name, period in _components(freq)]
