"""Compact text columns in the loader and the history store: rows share one str per distinct
value, and the code paths that work on codes give the same frames as plain text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from forecast_assets.core.data import history
from forecast_assets.core.data.history import HistoryStore, SourceRecord
from forecast_assets.core.data.loader import ColumnSpec, standardize_sales

SIGNATURE = {"sku_columns": ["sku"]}
SPEC = ColumnSpec(categorical_columns=("store",), multilabel_columns=("tags",))


def distinct_objects(column: pd.Series) -> int:
    return len({id(value) for value in column.to_numpy()})


def long_sales(n_skus: int = 6, days: int = 40) -> pd.DataFrame:
    """Daily rows of ``n_skus`` SKUs over a year end, as plain text columns."""
    dates = pd.date_range("2023-12-10", periods=days, freq="D")
    skus = [f"sku_{i}" for i in range(n_skus)]
    return pd.DataFrame(
        {
            "date": np.tile(dates, n_skus),
            "sku": np.repeat(skus, days),
            "quantity": np.arange(n_skus * days, dtype=float),
            "store": np.repeat([f"store_{i % 2}" for i in range(n_skus)], days),
            "tags": np.repeat(["organic|local" if i % 3 else "" for i in range(n_skus)], days),
        }
    )


def test_standardized_rows_share_one_str_per_distinct_value() -> None:
    frame = standardize_sales(long_sales(), SPEC, source="s")

    assert frame["sku"].dtype == object and frame["store"].dtype == object
    # One str object per SKU / store / tag set, not one per row.
    assert distinct_objects(frame["sku"]) == 6
    assert distinct_objects(frame["store"]) == 2
    assert distinct_objects(frame["tags"]) == 2
    assert frame.index.is_monotonic_increasing


def test_categorical_input_standardizes_like_text() -> None:
    text = long_sales()
    categorical = text.astype({"sku": "category", "store": "category", "tags": "category"})

    pd.testing.assert_frame_equal(
        standardize_sales(categorical, SPEC, source="c"), standardize_sales(text, SPEC, source="t")
    )


def test_rows_keep_their_order_within_a_date() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-02", "2024-01-01"]),
            "sku": ["b", "c", "a", "a"],
            "quantity": [1.0, 2.0, 3.0, 4.0],
        }
    )

    out = standardize_sales(frame, ColumnSpec(), source="s")

    # A stable sort by date: within a date, the source's order.
    assert out["sku"].tolist() == ["c", "a", "b", "a"]
    assert out["quantity"].tolist() == [2.0, 4.0, 1.0, 3.0]


def test_keys_equal_after_stripping_or_joining_are_one_sku() -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03"]),
            "x": ["a-b", "a", " a ", 7],
            "y": ["c", "b-c", "d", "7"],
            "quantity": [1.0, 2.0, 3.0, 4.0],
        }
    )
    spec = ColumnSpec(sku_columns=("x", "y"))

    out = standardize_sales(frame, spec, source="s")

    # ("a-b", "c") and ("a", "b-c") both join to "a-b-c": one (sku, date), summed.
    assert list(zip(out["sku"], out["quantity"], strict=True)) == [
        ("a-b-c", 3.0),
        ("a-d", 3.0),
        ("7-7", 4.0),
    ]


def test_history_read_rows_share_one_str_per_distinct_value(tmp_path: Path) -> None:
    sales = standardize_sales(long_sales(), SPEC, source="s")
    HistoryStore(tmp_path).merge([(SourceRecord("s"), sales)], SIGNATURE)

    read = HistoryStore(tmp_path).read()

    assert len(read) == len(sales)
    assert [read[name].dtype for name in ("sku", "store", "tags")] == [object] * 3
    assert distinct_objects(read["sku"]) == 6
    assert distinct_objects(read["store"]) == 2
    assert distinct_objects(read["tags"]) == 2
    # The frame's own buffers: 8 bytes per row and column (index, sku, quantity, 2 attributes).
    assert read.memory_usage(index=True, deep=False).sum() == 8 * 5 * len(read)
    expected = sales.reset_index().sort_values(["sku", "date"], kind="stable").set_index("date")
    pd.testing.assert_frame_equal(read, expected)


_PROXY_POOLS: list[pa.MemoryPool] = []


def test_history_read_never_holds_a_string_per_row(tmp_path: Path) -> None:
    # Long names: a table of per-row strings (or a sorted copy of one) would need more than
    # 60 bytes a row on arrow's side; dictionary codes need a few.
    days = pd.date_range("2023-01-01", periods=730, freq="D")
    names = [f"{'x' * 60}{i}" for i in range(20)]
    sales = pd.DataFrame(
        {
            "sku": np.repeat(names, len(days)),
            "quantity": 1.0,
            "store": np.repeat([f"{'s' * 60}{i % 3}" for i in range(20)], len(days)),
        },
        index=pd.DatetimeIndex(np.tile(days, 20), name="date"),
    )
    HistoryStore(tmp_path).merge([(SourceRecord("s"), sales)], SIGNATURE)
    previous = pa.default_memory_pool()
    counting = pa.proxy_memory_pool(previous)
    # Buffers allocated through the proxy return to it when freed, possibly after this test:
    # the proxy must outlive them, or freeing them crashes the process.
    _PROXY_POOLS.append(counting)
    pa.set_memory_pool(counting)
    try:
        read = HistoryStore(tmp_path).read()
    finally:
        pa.set_memory_pool(previous)

    assert len(read) == len(sales)
    assert counting.max_memory() < 40 * len(sales)


def test_read_sorts_parts_in_any_order_with_other_dictionaries_and_nulls() -> None:
    def part(dates: list[str], skus: list[str], quantity: list[float], color: list) -> pa.Table:
        return pa.table(
            {
                "date": pa.array(pd.to_datetime(dates), pa.timestamp("ns")),
                "sku": pa.array(skus).dictionary_encode(),
                "quantity": pa.array(quantity, pa.float64()),
                "color": pa.array(color, pa.string()),  # plain text: encoded on the way
            }
        )

    # Later year first, rows unsorted, and a SKU whose most recent color is missing.
    tables = [
        part(["2024-01-02", "2024-01-01"], ["b", "a"], [1.0, 2.0], ["blue", None]),
        part(["2023-12-31", "2023-12-30", "2023-12-31"], ["a", "b", "c"], [3.0, 4.0, 5.0],
             ["red", "green", "pink"]),
    ]  # fmt: skip

    frame = history._to_frame(tables, ["color"])

    assert tables == []  # handed over, so that the parts can be freed
    assert list(frame.index.strftime("%Y-%m-%d")) == [
        "2023-12-31",
        "2024-01-01",
        "2023-12-30",
        "2024-01-02",
        "2023-12-31",
    ]
    assert frame["sku"].tolist() == ["a", "a", "b", "b", "c"]
    assert frame["quantity"].tolist() == [3.0, 2.0, 4.0, 1.0, 5.0]
    assert frame["color"].tolist() == [None, None, "blue", "blue", "pink"]


def test_sku_date_order_falls_back_to_both_keys() -> None:
    ranks = np.array([1, 0, 1, 0], dtype=np.int32)
    dates = np.array(["2024-01-02", "2024-01-03", "2024-01-01", "2024-01-01"], "datetime64[ns]")

    order = history._sku_date_order(ranks, dates)

    assert order.tolist() == [3, 1, 2, 0]
