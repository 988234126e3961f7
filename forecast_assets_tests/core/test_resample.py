"""Resampling standardized sales to a regular weekly or monthly panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.resample import resample_sales
from forecast_assets.core.errors import InsufficientDataError

# 2024-01-06 is a Saturday, so W-FRI weeks run Saturday..Friday starting there.
FIRST_SATURDAY = pd.Timestamp("2024-01-06")


def sales_frame(rows: list[tuple[str, str, float]], **attributes: list[str]) -> pd.DataFrame:
    """Standardized sales (the raw_sales contract) from (date, sku, quantity) rows."""
    frame = pd.DataFrame(rows, columns=["date", "sku", "quantity"])
    frame["date"] = pd.to_datetime(frame["date"])
    for name, values in attributes.items():
        frame[name] = values
    return frame.set_index("date")


def daily_rows(sku: str, start: str, end: str, quantity: float) -> list[tuple[str, str, float]]:
    return [(str(day.date()), sku, quantity) for day in pd.date_range(start, end, freq="D")]


def test_weekly_sums_match_hand_bucketing() -> None:
    days = pd.date_range(FIRST_SATURDAY, periods=28, freq="D")  # four full weeks, ends Friday
    quantities = np.arange(1.0, 29.0)  # day i sells i + 1
    rows = [(str(d.date()), "a", q) for d, q in zip(days, quantities, strict=True)]

    panel = resample_sales(sales_frame(rows), "W-FRI", min_history=1).panel

    # Week w holds days 7w..7w+6, i.e. quantities 7w+1..7w+7.
    expected = [sum(range(7 * w + 1, 7 * w + 8)) for w in range(4)]
    assert panel.values[0].tolist() == expected
    # Each week is labelled by the Friday that ends it.
    assert list(panel.dates) == [FIRST_SATURDAY + pd.Timedelta(days=7 * w + 6) for w in range(4)]
    assert all(date.day_name() == "Friday" for date in panel.dates)
    assert panel.freq == "W-FRI"


def test_monthly_sums_are_labelled_by_month_start() -> None:
    rows = daily_rows("a", "2024-01-01", "2024-03-31", 2.0)
    rows += [("2024-02-10", "b", 5.0), ("2024-02-20", "b", 1.0), ("2024-03-05", "b", 4.0)]

    panel = resample_sales(sales_frame(rows), "MS", min_history=1).panel

    assert list(panel.dates) == [pd.Timestamp(f"2024-0{m}-01") for m in (1, 2, 3)]
    assert list(panel.skus) == ["a", "b"]
    # 2024 is a leap year: 31, 29 and 31 days of 2 units.
    np.testing.assert_array_equal(panel.values[0], [62.0, 58.0, 62.0])
    # b starts in February (NaN before), then 5 + 1 and 4.
    np.testing.assert_array_equal(panel.values[1], [np.nan, 6.0, 4.0])


def test_gaps_are_zero_and_periods_before_first_sale_are_nan() -> None:
    rows = daily_rows("a", str(FIRST_SATURDAY.date()), "2024-02-02", 1.0)  # four weeks
    rows += [("2024-01-08", "gap", 3.0), ("2024-01-29", "gap", 2.0)]  # weeks 0 and 3 only
    rows += [("2024-01-22", "late", 4.0)]  # week 2 only

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=1)
    panel = result.panel

    gap = panel.values[list(panel.skus).index("gap")]
    late = panel.values[list(panel.skus).index("late")]
    np.testing.assert_array_equal(gap, [3.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(late, [np.nan, np.nan, 4.0, 0.0])
    np.testing.assert_array_equal(panel.first_index, [0, 0, 2])  # a, gap, late


def test_short_skus_are_dropped_and_listed() -> None:
    rows = daily_rows("long", str(FIRST_SATURDAY.date()), "2024-02-02", 1.0)  # 4 weeks
    rows += [("2024-01-24", "young", 5.0)]  # first sale in week 2: 2 periods of history

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=3)

    assert list(result.panel.skus) == ["long"]
    assert result.dropped_short == ["young"]
    assert result.dropped_zero == []


def test_min_history_counts_periods_from_first_sale_to_the_end() -> None:
    rows = daily_rows("long", str(FIRST_SATURDAY.date()), "2024-02-02", 1.0)
    rows += [("2024-01-24", "young", 5.0)]  # weeks 2 and 3: exactly 2 periods

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=2)

    assert list(result.panel.skus) == ["long", "young"]
    assert result.dropped_short == []


def test_all_zero_skus_are_dropped_and_listed() -> None:
    rows = daily_rows("sold", str(FIRST_SATURDAY.date()), "2024-02-02", 1.0)
    rows += daily_rows("never", str(FIRST_SATURDAY.date()), "2024-02-02", 0.0)

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=1)

    assert list(result.panel.skus) == ["sold"]
    assert result.dropped_zero == ["never"]
    assert result.dropped_short == []


def test_all_zero_skus_are_kept_when_asked() -> None:
    rows = daily_rows("sold", str(FIRST_SATURDAY.date()), "2024-02-02", 1.0)
    rows += daily_rows("never", str(FIRST_SATURDAY.date()), "2024-02-02", 0.0)

    result = resample_sales(sales_frame(rows), "W-FRI", drop_zero=False)

    assert list(result.panel.skus) == ["never", "sold"]
    assert result.dropped_zero == []
    assert (result.panel.values[0] == 0).all()


def test_partial_trailing_week_is_dropped() -> None:
    # Four full weeks and three days (Sat, Sun, Mon) of a fifth week ending 2024-02-09.
    rows = daily_rows("a", str(FIRST_SATURDAY.date()), "2024-02-05", 1.0)

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=1)

    assert result.dropped_partial_period == pd.Timestamp("2024-02-09")
    assert result.panel.dates[-1] == pd.Timestamp("2024-02-02")
    assert result.panel.values[0].tolist() == [7.0, 7.0, 7.0, 7.0]


def test_complete_trailing_week_is_kept() -> None:
    rows = daily_rows("a", str(FIRST_SATURDAY.date()), "2024-02-02", 1.0)

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=1)

    assert result.dropped_partial_period is None
    assert result.panel.n_periods == 4


def test_partial_trailing_month_is_dropped() -> None:
    rows = daily_rows("a", "2024-01-01", "2024-03-15", 1.0)

    result = resample_sales(sales_frame(rows), "MS", min_history=1)

    assert result.dropped_partial_period == pd.Timestamp("2024-03-01")
    assert list(result.panel.dates) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    assert result.panel.values[0].tolist() == [31.0, 29.0]


def test_weekly_input_ending_on_the_period_end_keeps_the_last_period() -> None:
    # Data already weekly (one row per Friday): the last Friday closes its week.
    rows = [(str(d.date()), "a", 1.0) for d in pd.date_range("2024-01-05", periods=6, freq="W-FRI")]

    result = resample_sales(sales_frame(rows), "W-FRI", min_history=1)

    assert result.dropped_partial_period is None
    assert result.panel.n_periods == 6


def test_nothing_left_raises_insufficient_data() -> None:
    rows = [("2024-01-08", "a", 1.0), ("2024-01-15", "b", 0.0), ("2024-01-29", "b", 0.0)]

    with pytest.raises(InsufficientDataError, match="min_history"):
        resample_sales(sales_frame(rows), "W-FRI", min_history=10)


def test_only_zero_demand_raises_insufficient_data() -> None:
    rows = daily_rows("a", str(FIRST_SATURDAY.date()), "2024-02-02", 0.0)

    with pytest.raises(InsufficientDataError):
        resample_sales(sales_frame(rows), "W-FRI", min_history=1)


def test_empty_sales_raise_insufficient_data() -> None:
    with pytest.raises(InsufficientDataError):
        resample_sales(sales_frame([]), "W-FRI", min_history=1)


def test_attributes_are_the_latest_per_sku_in_panel_order() -> None:
    rows = [
        ("2024-01-06", "b", 1.0),
        ("2024-01-20", "b", 1.0),
        ("2024-01-06", "a", 1.0),
        ("2024-01-27", "a", 1.0),
        ("2024-01-13", "a", 1.0),
    ]
    sales = sales_frame(rows, category=["b-old", "b-new", "a-old", "a-new", "a-mid"])

    panel = resample_sales(sales, "W-FRI", 1, attribute_columns=("category",)).panel

    assert list(panel.attributes.index) == list(panel.skus) == ["a", "b"]
    assert panel.attributes["category"].tolist() == ["a-new", "b-new"]


def grouped_reference(sales: pd.DataFrame, freq: str) -> pd.Series:
    """pandas' own per-(sku, period) sums, to hold the matrix to."""
    frame = sales.reset_index()
    return frame.groupby(["sku", pd.Grouper(key="date", freq=freq)])["quantity"].sum()


def test_daily_rows_land_in_their_cells() -> None:
    rows = daily_rows("a", "2024-01-01", "2024-01-10", 2.0)
    rows += [("2024-01-04", "b", 1.5), ("2024-01-09", "b", -0.0), ("2024-01-02", "c", 3.0)]
    rows = rows[::-1]  # any row order

    panel = resample_sales(sales_frame(rows), "D", min_history=1).panel

    assert list(panel.skus) == ["a", "b", "c"]
    assert panel.n_periods == 10
    np.testing.assert_array_equal(panel.values[0], np.full(10, 2.0))
    np.testing.assert_array_equal(panel.values[1, 3:], [1.5, 0, 0, 0, 0, 0, 0])
    assert np.isnan(panel.values[1, :3]).all()
    assert not np.signbit(panel.values[1, 8])  # a sold -0.0 counts as 0.0, as pandas sums it
    np.testing.assert_array_equal(panel.values[2, 1:3], [3.0, 0.0])


def test_several_rows_per_period_sum_exactly_as_pandas() -> None:
    rng = np.random.default_rng(3)
    days = pd.date_range(FIRST_SATURDAY, periods=70, freq="D")
    rows = [
        (str(day.date()), sku, float(rng.random() * 10))
        for sku in ("x", "y", "z")
        for day in days
        for _ in range(int(rng.integers(1, 4)))  # several deliveries a day
    ]
    sales = sales_frame([rows[i] for i in rng.permutation(len(rows))])

    panel = resample_sales(sales, "W-FRI", min_history=1).panel

    expected = grouped_reference(sales, "W-FRI").unstack("date")
    np.testing.assert_array_equal(panel.values, expected.loc[list(panel.skus)].to_numpy())


def test_latest_attributes_take_the_later_row_on_a_tie_and_skip_missing_values() -> None:
    rows = [("2024-01-06", "a", 1.0), ("2024-01-27", "a", 1.0), ("2024-01-27", "a", 2.0)]
    rows += [("2024-01-06", "b", 1.0), ("2024-01-20", "b", 1.0)]
    tie = sales_frame(rows, store=["s1", "s2", "s3", "t1", "t2"])
    missing = sales_frame(rows, store=["s1", "s2", "s3", "t1", None])

    tied = resample_sales(tie, "W-FRI", 1, attribute_columns=("store",)).panel
    skipped = resample_sales(missing, "W-FRI", 1, attribute_columns=("store",)).panel

    assert tied.attributes["store"].tolist() == ["s3", "t2"]
    # As pandas' groupby last: a missing value does not replace the latest known one.
    assert skipped.attributes["store"].tolist() == ["s3", "t1"]
