"""The embedded example generator and the M5-sized catalogue."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.generator import (
    M5_CATEGORY_NAMES,
    M5_DEPARTMENTS,
    M5_STATES,
    M5_STORES,
    TAGS,
    generate_catalogue,
    generate_sales,
)
from forecast_assets.core.data.loader import ColumnSpec, standardize_sales
from forecast_assets.core.data.resample import resample_sales

# sha256 of generate_sales(40, 330, "2024-01-01", seed=7).to_csv(index=False), recorded before
# generate_catalogue was added: the demo and the graph tests depend on this exact output.
DEFAULT_CALL_SHA256 = "9fb0e37b17dc3b069479d6d789aae8fc77249668e8b6ac843ebf6d307dafc609"
# The example settings' column spec (default_settings.yaml).
EXAMPLE_SPEC = ColumnSpec(categorical_columns=("store", "category"), multilabel_columns=("tags",))
PERIODS = 400


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return generate_catalogue(1_000, PERIODS, "2015-01-03", seed=3)


def zero_shares(frame: pd.DataFrame) -> pd.Series:
    """Per series: the share of days without a sale, from its first sale to the last day."""
    by_sku = frame.groupby("sku", observed=True)
    alive = (frame["date"].max() - by_sku["date"].min()).dt.days + 1
    return 1.0 - by_sku.size() / alive


# --- generate_sales: unchanged -----------------------------------------------------------------


def test_default_call_output_is_unchanged() -> None:
    frame = generate_sales(40, 330, "2024-01-01", seed=7)

    assert frame.shape == (8910, 7)
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    assert digest == DEFAULT_CALL_SHA256


# --- generate_catalogue ------------------------------------------------------------------------


def test_catalogue_columns_and_compact_dtypes(catalogue: pd.DataFrame) -> None:
    assert list(catalogue.columns) == [
        "date",
        "sku",
        "item",
        "dept",
        "category",
        "store",
        "state",
        "tags",
        "on_promotion",
        "quantity",
    ]
    assert catalogue["date"].dtype == "datetime64[ns]"
    for name in ("sku", "item", "dept", "category", "store", "state", "tags"):
        assert isinstance(catalogue[name].dtype, pd.CategoricalDtype), name
    assert catalogue["on_promotion"].dtype == bool
    assert catalogue["quantity"].dtype == np.int32
    # Dates, codes and counts: about 25 bytes a row, whatever the SKU names.
    assert catalogue.memory_usage(deep=False).sum() / len(catalogue) < 30


def test_catalogue_shape_is_items_in_every_store(catalogue: pd.DataFrame) -> None:
    skus = catalogue["sku"].cat.categories
    assert len(skus) == 1_000
    assert catalogue["sku"].nunique() > 950  # a few late launches never sell
    assert catalogue["date"].min() >= pd.Timestamp("2015-01-03")
    assert catalogue["date"].max() <= pd.Timestamp("2015-01-03") + pd.Timedelta(days=PERIODS - 1)
    # 100 items x 10 stores; a SKU is its item and its store.
    assert skus[0].endswith("_CA_1") and skus[9].endswith("_WI_3")
    sku = catalogue["sku"].astype(str)
    assert (sku == catalogue["item"].astype(str) + "_" + catalogue["store"].astype(str)).all()
    assert set(catalogue["store"].unique()) == set(M5_STORES)
    states = catalogue.drop_duplicates("store").set_index("store")["state"].astype(str)
    assert all(states[store] == store.split("_")[0] for store in M5_STORES)
    assert set(catalogue["state"].unique()) == set(M5_STATES)
    assert set(catalogue["category"].unique()) == set(M5_CATEGORY_NAMES)
    assert set(catalogue["dept"].unique()) == set(M5_DEPARTMENTS)
    assert (
        catalogue["dept"].astype(str).str.rsplit("_", n=1).str[0] == catalogue["category"]
    ).all()


def test_catalogue_of_an_uneven_count_cuts_the_last_item() -> None:
    frame = generate_catalogue(23, 60, seed=1)

    assert len(frame["sku"].cat.categories) == 23
    # Two items in all 10 stores, the third in its first 3 stores only.
    assert frame["sku"].cat.categories[-1].endswith("_CA_3")
    assert len(frame["item"].cat.categories) == 3


def test_catalogue_is_deterministic_for_a_seed() -> None:
    first = generate_catalogue(300, 120, seed=11, prices=True)
    again = generate_catalogue(300, 120, seed=11, prices=True)
    other = generate_catalogue(300, 120, seed=12, prices=True)

    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_smaller_catalogue_is_the_start_of_a_larger_one() -> None:
    small = generate_catalogue(250, 90, seed=5)
    large = generate_catalogue(1_200, 90, seed=5)

    head = large[large["sku"].cat.codes < 250].reset_index(drop=True)
    for name in ("sku", "item", "tags"):
        head[name] = head[name].cat.set_categories(small[name].cat.categories)
    pd.testing.assert_frame_equal(small, head)


def test_catalogue_quantities_are_positive_counts_one_row_per_day(
    catalogue: pd.DataFrame,
) -> None:
    assert (catalogue["quantity"] > 0).all()  # days without sales have no row
    assert not catalogue.duplicated(["sku", "date"]).any()
    assert not catalogue.isna().any().any()


def test_catalogue_is_intermittent_with_late_launches(catalogue: pd.DataFrame) -> None:
    shares = zero_shares(catalogue)
    # Like M5: most series sell nothing on most days, a few sell every day.
    assert 0.5 < shares.median() < 0.85
    assert (shares > 0.5).mean() > 0.5
    assert (shares < 0.1).any()
    first_sale = catalogue.groupby("sku", observed=True)["date"].min()
    late = (first_sale - pd.Timestamp("2015-01-03")).dt.days
    assert 0.15 < (late > 30).mean() < 0.5
    assert (late > PERIODS - 120).any()  # too late to be forecast with min_history 120
    # Christmas: the stores are closed.
    assert not (catalogue["date"] == pd.Timestamp("2015-12-25")).any()


def test_catalogue_has_weekly_seasonality_and_promotion_uplift(catalogue: pd.DataFrame) -> None:
    by_day = catalogue.groupby(catalogue["date"].dt.dayofweek)["quantity"].sum()
    assert by_day[[5, 6]].min() > by_day[[0, 1, 2, 3]].max()  # weekends sell most
    per_row = catalogue.groupby("on_promotion")["quantity"].mean()
    assert per_row[True] > 1.2 * per_row[False]
    assert 0.01 < catalogue["on_promotion"].mean() < 0.2


def test_catalogue_tags_are_sorted_subsets() -> None:
    frame = generate_catalogue(300, 60, seed=2)

    for tags in frame["tags"].unique():
        names = [name for name in tags.split("|") if name]
        assert names == sorted(names) and set(names) <= set(TAGS)
    assert (frame["tags"] == "").any() and (frame["tags"].str.contains("|", regex=False)).any()


def test_catalogue_prices_are_optional() -> None:
    plain = generate_catalogue(200, 120, seed=4)
    priced = generate_catalogue(200, 120, seed=4, prices=True)

    assert "sell_price" not in plain.columns
    pd.testing.assert_frame_equal(plain, priced.drop(columns="sell_price"))
    price = priced["sell_price"]
    assert price.dtype == np.float32 and (price > 0).all()
    # A promotion lowers an item's price in its store.
    relative = price / priced.groupby("sku", observed=True)["sell_price"].transform("max")
    assert relative[priced["on_promotion"]].mean() < relative[~priced["on_promotion"]].mean()


def test_catalogue_rejects_empty_sizes() -> None:
    with pytest.raises(ValueError):
        generate_catalogue(0, 10)
    with pytest.raises(ValueError):
        generate_catalogue(10, 0)


def test_catalogue_goes_through_the_loader_and_the_resampler(catalogue: pd.DataFrame) -> None:
    sales = standardize_sales(catalogue, EXAMPLE_SPEC, source="catalogue")

    assert len(sales) == len(catalogue)
    assert sales.index.name == "date"
    assert list(sales.columns) == ["sku", "quantity", "store", "category", "tags"]
    assert sales["sku"].dtype == object and sales["quantity"].dtype == np.float64
    panel = resample_sales(sales, "D", 120, EXAMPLE_SPEC.attribute_columns).panel
    assert panel.n_periods == PERIODS
    assert 900 < panel.n_skus < 1_000  # the latest launches are too short
    assert (panel.values[~np.isnan(panel.values)] >= 0).all()
    assert set(panel.attributes["store"]) == set(M5_STORES)
