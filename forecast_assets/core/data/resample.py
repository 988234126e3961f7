"""Resample standardized sales to a regular frequency, fill gaps with zeros, drop short series."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast_assets.core.data.panel import SalesPanel, first_observed_index
from forecast_assets.core.errors import InsufficientDataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResampleResult:
    panel: SalesPanel
    dropped_short: list[str]  # fewer than min_history periods
    dropped_zero: list[str]  # never sold anything
    dropped_partial_period: pd.Timestamp | None  # trailing period the data only partly covers


def resample_sales(
    sales: pd.DataFrame, freq: str, min_history: int, attribute_columns: tuple[str, ...] = ()
) -> ResampleResult:
    """Turn standardized sales (``raw_sales``) into a regular SalesPanel.

    - Quantities are summed per SKU and period; period labels follow pandas resampling
      (``W-FRI`` is labelled by the Friday that ends the week, ``MS`` by the month start).
    - A SKU's series runs from its first sale to the last period of the data: periods without
      a row are zero demand; periods before the first sale stay NaN (the SKU did not exist).
    - A last period that the data covers only in part (e.g. a week with three days of data)
      is dropped, so a half-filled bucket does not look like a collapse in demand.
    - SKUs with fewer than ``min_history`` periods, or with no demand at all, are dropped.
    """
    if sales.empty:
        raise InsufficientDataError("there are no sales to resample")
    frame = sales.reset_index()[["date", "sku", "quantity"]]
    grouper = pd.Grouper(key="date", freq=freq)
    summed = frame.groupby(["sku", grouper], sort=False, observed=True)["quantity"].sum()
    labels = summed.index.get_level_values("date")
    grid = pd.date_range(labels.min(), labels.max(), freq=freq)
    partial = _partial_last_period(frame["date"], freq, grid)
    if partial is not None:
        grid = grid[:-1]
        if len(grid) == 0:
            raise InsufficientDataError(f"the data covers less than one full '{freq}' period")

    skus = pd.Index(np.sort(summed.index.get_level_values("sku").unique()), name="sku")
    rows = skus.get_indexer(summed.index.get_level_values("sku"))
    cols = grid.get_indexer(labels)
    inside = cols >= 0
    values = np.full((len(skus), len(grid)), np.nan)
    values[rows[inside], cols[inside]] = summed.to_numpy()[inside]
    first = first_observed_index(values)
    started = np.arange(len(grid))[None, :] >= first[:, None]
    values = np.where(started & np.isnan(values), 0.0, values)

    history = len(grid) - first
    total = np.nansum(values, axis=1)
    short = history < min_history
    zero = ~short & (total <= 0)
    keep = ~short & ~zero
    if not keep.any():
        raise InsufficientDataError(
            f"no SKU has {min_history} periods of '{freq}' history with demand "
            f"(longest has {int(history.max())}); lower timeseries.min_history"
        )
    attributes = _latest_attributes(sales, attribute_columns).reindex(skus[keep])
    panel = SalesPanel(
        values=values[keep], skus=skus[keep], dates=grid, freq=freq, attributes=attributes
    )
    logger.info(
        "resampled %d SKUs to %d '%s' periods; dropped %d short and %d all-zero",
        panel.n_skus,
        panel.n_periods,
        freq,
        short.sum(),
        zero.sum(),
    )
    return ResampleResult(
        panel=panel,
        dropped_short=skus[short].tolist(),
        dropped_zero=skus[zero].tolist(),
        dropped_partial_period=partial,
    )


def _partial_last_period(
    dates: pd.Series, freq: str, grid: pd.DatetimeIndex
) -> pd.Timestamp | None:
    """The last period's label if the data stops before that period ends, else None."""
    unique = np.sort(dates.unique())
    if len(unique) < 2:
        return None
    step = pd.Timedelta(np.median(np.diff(unique)))
    last = pd.Timestamp(unique[-1])
    # Bin the first date (to anchor the bins as for the data), the last date and the date the
    # next row would have: if that next date shares the last date's bin, the data stopped in it.
    probe = pd.Series(1, index=pd.DatetimeIndex([pd.Timestamp(unique[0]), last, last + step]))
    counts = probe.resample(freq).count()
    return grid[-1] if counts.iloc[-1] >= 2 else None


def _latest_attributes(sales: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    if not columns:
        return pd.DataFrame(index=pd.Index(sales["sku"].unique(), name="sku"))
    ordered = sales.reset_index().sort_values("date", kind="stable")
    return ordered.groupby("sku")[list(columns)].last()
