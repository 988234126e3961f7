"""SalesPanel: regular demand series of many SKUs as one matrix, the shape every step works on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SalesPanel:
    """Demand of ``len(skus)`` SKUs over the regular ``dates`` grid.

    ``values[i, t]`` is the demand of SKU ``skus[i]`` in period ``dates[t]``: zero where nothing
    was sold, NaN before the SKU's first sale (it did not exist yet). ``attributes`` holds the
    static categorical columns, indexed by SKU in the same order.
    """

    values: np.ndarray  # [n_skus, n_periods] float64
    skus: pd.Index
    dates: pd.DatetimeIndex
    freq: str
    attributes: pd.DataFrame

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.skus), len(self.dates)):
            raise ValueError(
                f"values shape {self.values.shape} does not match "
                f"{len(self.skus)} SKUs x {len(self.dates)} periods"
            )

    @property
    def n_skus(self) -> int:
        return len(self.skus)

    @property
    def n_periods(self) -> int:
        return len(self.dates)

    @property
    def first_index(self) -> np.ndarray:
        """Index of each SKU's first period with data, [n_skus]."""
        return first_observed_index(self.values)

    def select(self, skus: Sequence[str]) -> SalesPanel:
        """The panel restricted to ``skus`` (in that order)."""
        rows = self.skus.get_indexer(pd.Index(skus))
        if (rows < 0).any():
            unknown = [s for s, r in zip(skus, rows, strict=True) if r < 0][:5]
            raise KeyError(f"SKUs not in the panel: {unknown}")
        return SalesPanel(
            values=self.values[rows],
            skus=self.skus[rows],
            dates=self.dates,
            freq=self.freq,
            attributes=self.attributes.iloc[rows],
        )

    def to_long(self) -> pd.DataFrame:
        """Long form ``sku, date, quantity`` without the periods before each SKU's start."""
        sku = np.repeat(self.skus.to_numpy(), self.n_periods)
        date = np.tile(self.dates.to_numpy(), self.n_skus)
        quantity = self.values.reshape(-1)
        keep = ~np.isnan(quantity)
        return pd.DataFrame({"sku": sku[keep], "date": date[keep], "quantity": quantity[keep]})

    def future_dates(self, horizon: int) -> pd.DatetimeIndex:
        """The ``horizon`` periods that follow the last date of the panel."""
        return pd.date_range(self.dates[-1], periods=horizon + 1, freq=self.freq)[1:]


def first_observed_index(values: np.ndarray) -> np.ndarray:
    """Index of the first non-NaN entry of each row (the row length where a row is all NaN)."""
    observed = ~np.isnan(values)
    first = observed.argmax(axis=1)
    first[~observed.any(axis=1)] = values.shape[1]
    return first
