"""The four real data sets of the benchmark protocol (/work/shared/docs/BENCHMARK.md) as long
frames ``unique_id, ds, y``, with the train / test split and the panel arrays the metrics take.

Files are read in place from ``../shared/data`` (relative to the project root); nothing is
copied into the repository.

| data set | series | freq | h | m |
|---|---|---|---|---|
| walmart_store_sales | Store-Dept with all 143 weeks, negative sales -> 0 | W-FRI | 8 | 52 |
| stallion | agency-sku volume, 350 | MS | 6 | 12 |
| carparts | parts without missing values (wide CSV to long, dates from 1998-01) | MS | 12 | 12 |
| store_item_demand | store-item, 500 | D | 28 | 7 |
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = PROJECT_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Dataset:
    """One data set of the protocol.

    ``frame`` holds every series in full (``unique_id``, ``ds``, ``y``), sorted by id and date.
    ``keys`` maps each ``unique_id`` to the original key columns (``key_columns``), which is
    what the project's loader joins with "-" into its SKU id; ``unique_id`` is built the same
    way, so the project's SKU ids are the benchmark's ids.
    """

    name: str
    freq: str
    horizon: int
    season: int
    frame: pd.DataFrame
    keys: pd.DataFrame
    key_columns: tuple[str, ...]
    note: str = ""

    @property
    def n_series(self) -> int:
        return self.keys.shape[0]


def _joined_key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    key = frame[columns[0]].astype(str)
    for column in columns[1:]:
        key = key + "-" + frame[column].astype(str)
    return key


def _finish(
    name: str,
    raw: pd.DataFrame,
    key_columns: list[str],
    date_column: str,
    target_column: str,
    freq: str,
    horizon: int,
    season: int,
    note: str,
) -> Dataset:
    raw = raw.assign(unique_id=_joined_key(raw, key_columns))
    frame = (
        raw.rename(columns={date_column: "ds", target_column: "y"})[["unique_id", "ds", "y"]]
        .astype({"y": "float64"})
        .sort_values(["unique_id", "ds"], kind="stable")
        .reset_index(drop=True)
    )
    frame["ds"] = pd.to_datetime(frame["ds"])
    keys = raw.drop_duplicates("unique_id")[["unique_id", *key_columns]]
    keys = keys.sort_values("unique_id").reset_index(drop=True)
    return Dataset(name, freq, horizon, season, frame, keys, tuple(key_columns), note)


def walmart_store_sales() -> Dataset:
    raw = pd.read_csv(DATA_ROOT / "walmart_store_sales" / "train.csv.gz", parse_dates=["Date"])
    weeks = raw.groupby(["Store", "Dept"])["Date"].transform("size")
    full = raw[weeks == raw["Date"].nunique()].copy()
    negative = int((full["Weekly_Sales"] < 0).sum())
    # Returns as zero demand, as the project does with data.negative_quantities: clip.
    full["Weekly_Sales"] = full["Weekly_Sales"].clip(lower=0)
    note = f"series with all 143 weeks; {negative} negative weekly sales (returns) clipped to 0"
    return _finish(
        "walmart_store_sales", full, ["Store", "Dept"], "Date", "Weekly_Sales", "W-FRI", 8, 52, note
    )


def stallion() -> Dataset:
    raw = pd.read_parquet(DATA_ROOT / "stallion" / "stallion.parquet", columns=None)
    raw = raw[["agency", "sku", "date", "volume"]].astype({"agency": str, "sku": str})
    # The product column is called ``product`` here: the project's loader names its SKU id
    # column ``sku``, and an input column of that name used as an attribute would clash.
    raw = raw.rename(columns={"sku": "product"})
    return _finish(
        "stallion", raw, ["agency", "product"], "date", "volume", "MS", 6, 12, "agency-sku volume"
    )


def carparts() -> Dataset:
    wide = pd.read_csv(DATA_ROOT / "carparts" / "carparts_wide.csv")
    dates = pd.date_range("1998-01-01", periods=len(wide), freq="MS")
    if "month" in wide:
        if not (pd.to_datetime(wide["month"]) == dates).all():
            raise ValueError("carparts_wide.csv: the month column is not monthly from 1998-01")
        wide = wide.drop(columns="month")
    complete = wide.columns[wide.notna().all()]
    long = (
        wide[complete]
        .set_axis(dates)
        .rename_axis("month")
        .reset_index()
        .melt(id_vars="month", var_name="part", value_name="demand")
    )
    note = f"{len(complete)} of {wide.shape[1]} parts have no missing month; intermittent"
    return _finish("carparts", long, ["part"], "month", "demand", "MS", 12, 12, note)


def store_item_demand() -> Dataset:
    raw = pd.read_csv(DATA_ROOT / "store_item_demand" / "train.csv.gz", parse_dates=["date"])
    return _finish(
        "store_item_demand", raw, ["store", "item"], "date", "sales", "D", 28, 7, "store-item"
    )


LOADERS = {
    "walmart_store_sales": walmart_store_sales,
    "stallion": stallion,
    "carparts": carparts,
    "store_item_demand": store_item_demand,
}


def load_dataset(name: str, max_series: int | None = None, seed: int = 0) -> Dataset:
    """The data set ``name``; with ``max_series``, a random subset of that many series."""
    data = LOADERS[name]()
    if max_series is None or max_series >= data.n_series:
        return data
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(data.keys["unique_id"].to_numpy(), max_series, replace=False))
    keys = data.keys[data.keys["unique_id"].isin(chosen)].reset_index(drop=True)
    frame = data.frame[data.frame["unique_id"].isin(chosen)].reset_index(drop=True)
    note = f"{data.note}; quick: {max_series} random series"
    return replace(data, frame=frame, keys=keys, note=note)


def split(data: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the last ``horizon`` periods of every series are the test."""
    position_from_end = data.frame.groupby("unique_id").cumcount(ascending=False)
    test = position_from_end < data.horizon
    return (
        data.frame[~test].reset_index(drop=True),
        data.frame[test].reset_index(drop=True),
    )


def panel(frame: pd.DataFrame, ids: pd.Index) -> np.ndarray:
    """[n_series, n_dates] values of ``frame`` in the order of ``ids``; NaN where a series has
    no row (before it starts)."""
    wide = frame.pivot(index="unique_id", columns="ds", values="y")
    return wide.reindex(ids).to_numpy(dtype="float64")
