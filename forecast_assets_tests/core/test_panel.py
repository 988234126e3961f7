"""SalesPanel: selection, long form and the dates after the history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.panel import SalesPanel


def make_panel() -> SalesPanel:
    values = np.array(
        [
            [1.0, 2.0, 0.0, 4.0],
            [np.nan, np.nan, 5.0, 0.0],
            [7.0, 0.0, 0.0, 8.0],
        ]
    )
    skus = pd.Index(["a", "b", "c"], name="sku")
    attributes = pd.DataFrame({"category": ["x", "y", "z"]}, index=skus)
    dates = pd.date_range("2024-01-05", periods=4, freq="W-FRI")
    return SalesPanel(values=values, skus=skus, dates=dates, freq="W-FRI", attributes=attributes)


def test_select_keeps_the_requested_order() -> None:
    panel = make_panel()

    picked = panel.select(["c", "a"])

    assert list(picked.skus) == ["c", "a"]
    np.testing.assert_array_equal(picked.values, panel.values[[2, 0]])
    assert picked.attributes["category"].tolist() == ["z", "x"]
    assert list(picked.attributes.index) == ["c", "a"]
    assert picked.dates.equals(panel.dates)
    assert picked.freq == panel.freq


def test_select_unknown_sku_raises_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        make_panel().select(["a", "nope"])


def test_to_long_skips_periods_before_start_but_keeps_zeros() -> None:
    long = make_panel().to_long()

    # 4 + 4 + 4 cells, minus the 2 NaN cells of b before its first sale.
    assert len(long) == 10
    assert list(long.columns) == ["sku", "date", "quantity"]
    b = long[long["sku"] == "b"]
    assert list(b["date"]) == [pd.Timestamp("2024-01-19"), pd.Timestamp("2024-01-26")]
    assert b["quantity"].tolist() == [5.0, 0.0]
    assert (long["quantity"] == 0).sum() == 4
    assert long["quantity"].sum() == 1 + 2 + 4 + 5 + 7 + 8


def test_first_index_is_the_first_observed_period() -> None:
    np.testing.assert_array_equal(make_panel().first_index, [0, 2, 0])


def test_future_dates_continue_the_weekly_grid() -> None:
    future = make_panel().future_dates(3)

    # Last history date is 2024-01-26; the next three Fridays follow.
    assert list(future) == [pd.Timestamp(d) for d in ("2024-02-02", "2024-02-09", "2024-02-16")]


def test_future_dates_continue_the_monthly_grid() -> None:
    dates = pd.date_range("2023-11-01", periods=2, freq="MS")
    panel = SalesPanel(
        values=np.ones((1, 2)),
        skus=pd.Index(["a"]),
        dates=dates,
        freq="MS",
        attributes=pd.DataFrame(index=pd.Index(["a"])),
    )

    assert list(panel.future_dates(2)) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]


def test_mismatched_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not match"):
        SalesPanel(
            values=np.ones((2, 3)),
            skus=pd.Index(["a"]),
            dates=pd.date_range("2024-01-05", periods=3, freq="W-FRI"),
            freq="W-FRI",
            attributes=pd.DataFrame(),
        )
