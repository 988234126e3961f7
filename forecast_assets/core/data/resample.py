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
    sales: pd.DataFrame,
    freq: str,
    min_history: int = 1,
    attribute_columns: tuple[str, ...] = (),
    drop_zero: bool = True,
) -> ResampleResult:
    """Turn standardized sales (``raw_sales``) into a regular SalesPanel.

    - Quantities are summed per SKU and period; period labels follow pandas resampling
      (``W-FRI`` is labelled by the Friday that ends the week, ``MS`` by the month start).
    - A SKU's series runs from its first sale to the last period of the data: periods without
      a row are zero demand; periods before the first sale stay NaN (the SKU did not exist).
    - A last period that the data covers only in part (e.g. a week with three days of data)
      is dropped, so a half-filled bucket does not look like a collapse in demand.
    - SKUs with fewer than ``min_history`` periods, or with no demand at all when
      ``drop_zero``, are dropped.
    """
    if sales.empty:
        raise InsufficientDataError("there are no sales to resample")
    # Columnar and vectorized: SKUs and dates become integer codes, each (SKU, period) cell an
    # index into the [SKU, period] matrix; no copy of the frame, no per-SKU loop.
    dates = _dates(sales)
    date_codes, unique_dates = pd.factorize(dates)
    sku_codes, unique_skus = pd.factorize(sales["sku"].to_numpy())
    quantity = sales["quantity"].to_numpy(dtype="float64")
    complete = bool((date_codes >= 0).all() and (sku_codes >= 0).all())
    if not complete:
        # Rows without a SKU or a date belong to no (SKU, period) group and are left out;
        # their dates still bin the axis, as with a pandas time grouper.
        valid = (date_codes >= 0) & (sku_codes >= 0)
        date_codes, quantity = date_codes[valid], quantity[valid]
        used, sku_codes = np.unique(sku_codes[valid], return_inverse=True)
        unique_skus = unique_skus[used]

    label_of_date = _period_labels(unique_dates, freq)
    labels = label_of_date if complete else label_of_date[np.unique(date_codes)]
    grid = pd.date_range(labels.min(), labels.max(), freq=freq)
    partial = _partial_last_period(unique_dates, freq, grid)
    if partial is not None:
        grid = grid[:-1]
        if len(grid) == 0:
            raise InsufficientDataError(f"the data covers less than one full '{freq}' period")

    order = np.argsort(unique_skus)
    skus = pd.Index(unique_skus[order], name="sku")
    row_of_sku = np.empty(len(order), dtype=np.int64)
    row_of_sku[order] = np.arange(len(order))
    latest_row = _latest_rows(sku_codes, date_codes, unique_dates) if complete else None

    n_periods = len(grid)
    cols = grid.get_indexer(label_of_date)[date_codes]
    cell = row_of_sku[sku_codes]
    del sku_codes, date_codes
    cell *= n_periods
    cell += cols
    inside = cols >= 0
    del cols
    if not inside.all():
        cell, quantity = cell[inside], quantity[inside]
    del inside
    values = _sum_cells(cell, quantity, len(skus) * n_periods).reshape(len(skus), n_periods)
    del cell, quantity
    first = first_observed_index(values)
    started = np.arange(n_periods)[None, :] >= first[:, None]
    started &= np.isnan(values)
    values[started] = 0.0
    del started

    history = n_periods - first
    total = _row_nansum(values)
    short = history < min_history
    zero = ~short & (total <= 0) & drop_zero
    keep = ~short & ~zero
    if not keep.any():
        raise InsufficientDataError(
            f"no SKU has {min_history} periods of '{freq}' history with demand "
            f"(longest has {int(history.max())}); lower timeseries.min_history"
        )
    latest = None
    if attribute_columns and latest_row is not None:
        latest = sales[list(attribute_columns)].iloc[latest_row]
    if latest is not None and not latest.isna().to_numpy().any():
        attributes = latest.set_axis(pd.Index(unique_skus, name="sku"), axis=0)
        attributes = attributes.reindex(skus[keep])
    else:
        # A missing value in a latest row: pandas' groupby last takes an earlier row's value.
        attributes = _latest_attributes(sales, attribute_columns).reindex(skus[keep])
    panel = SalesPanel(
        values=values if keep.all() else values[keep],
        skus=skus[keep],
        dates=grid,
        freq=freq,
        attributes=attributes,
    )
    del values
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


def _dates(sales: pd.DataFrame) -> pd.DatetimeIndex:
    """The ``date`` of each row: the index named ``date`` (the contract), else the column."""
    if sales.index.name == "date":
        return pd.DatetimeIndex(sales.index)
    return pd.DatetimeIndex(sales["date"])


def _period_labels(unique_dates: pd.DatetimeIndex, freq: str) -> pd.DatetimeIndex:
    """The period label of each date, binned exactly as a pandas time grouper bins the data
    (the bins depend only on the first and the last date, which the distinct dates share)."""
    order = np.argsort(unique_dates.asi8, kind="stable")
    position = pd.Series(np.arange(len(order)), index=unique_dates[order])
    # Sorted dates fill each bin in one run: a bin's first position marks where it starts.
    starts = position.resample(freq).min().dropna()
    bins = np.empty(len(order), dtype=np.int64)
    bins[order] = np.searchsorted(starts.to_numpy(), np.arange(len(order)), side="right") - 1
    return starts.index[bins]


def _sum_cells(cell: np.ndarray, quantity: np.ndarray, n_cells: int) -> np.ndarray:
    """Flat [SKU x period] matrix: the sum of each cell's quantities, NaN for cells without a row.

    Sums as pandas' groupby sum does (NaN skipped, compensated summation in row order), so the
    result is the same to the last bit; a cell with a single row takes its quantity as is.
    """
    present = np.zeros(n_cells, dtype=bool)
    present[cell] = True
    values = np.full(n_cells, np.nan)
    if int(np.count_nonzero(present)) == len(cell):  # one row per cell (daily data)
        values[cell] = np.where(np.isnan(quantity), 0.0, quantity) + 0.0  # -0.0 sums to 0.0
    else:
        sums = pd.Series(quantity, copy=False).groupby(cell, sort=False).sum()
        values[sums.index.to_numpy()] = sums.to_numpy()
    return values


def _row_nansum(values: np.ndarray, rows_per_chunk: int = 4096) -> np.ndarray:
    """``np.nansum(values, axis=1)`` a block of rows at a time (nansum copies what it sums)."""
    return np.concatenate(
        [
            np.nansum(values[start : start + rows_per_chunk], axis=1)
            for start in range(0, len(values), rows_per_chunk)
        ]
    )


def _latest_rows(
    sku_codes: np.ndarray, date_codes: np.ndarray, unique_dates: pd.DatetimeIndex
) -> np.ndarray:
    """Per SKU code, the position of its most recent row (the later row on a tie)."""
    date_rank = np.empty(len(unique_dates), dtype=np.int64)
    date_rank[np.argsort(unique_dates.asi8, kind="stable")] = np.arange(len(unique_dates))
    rank = date_rank[date_codes]
    n_skus = int(sku_codes.max()) + 1
    newest = np.full(n_skus, -1, dtype=np.int64)
    np.maximum.at(newest, sku_codes, rank)
    latest = np.full(n_skus, -1, dtype=np.int64)
    on_newest = np.flatnonzero(rank == newest[sku_codes])
    np.maximum.at(latest, sku_codes[on_newest], on_newest)
    return latest


def _partial_last_period(
    dates: pd.Series | pd.DatetimeIndex, freq: str, grid: pd.DatetimeIndex
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
