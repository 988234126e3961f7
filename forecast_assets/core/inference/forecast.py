"""The forecast table: next horizon per SKU with intervals, per cluster and combined."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import DataValidationError, ModelNotFoundError
from forecast_assets.core.inference.intervals import ResidualQuantiles, interval_bounds
from forecast_assets.core.inference.predictor import predict_cluster, to_original_units
from forecast_assets.core.models.artifact import ClusterModel
from forecast_assets.core.models.base import point_of

# The forecast table's columns, by name for the code that handles them one by one.
SKU, DATE, FORECAST, LOWER, UPPER = "sku", "date", "forecast", "lower", "upper"
CLUSTER, MODEL, TRAINED_AT = "cluster", "model", "trained_at"
FORECAST_COLUMNS = (SKU, DATE, FORECAST, LOWER, UPPER, CLUSTER, MODEL, TRAINED_AT)


def quantile_column(quantile: float) -> str:
    """Column name of a quantile forecast: 0.1 -> p10, 0.5 -> p50, 0.975 -> p97.5."""
    return f"p{round(quantile * 100, 4):g}"


def quantile_frame(values: np.ndarray, quantiles: tuple[float, ...]) -> pd.DataFrame:
    """[n, horizon, n_quantiles] quantile forecasts as one column per quantile, rows in
    (window, step) order like the other columns of the tables."""
    return pd.DataFrame(
        {quantile_column(q): values[..., i].ravel() for i, q in enumerate(quantiles)}
    )


def forecast_cluster(
    cluster: str,
    model: ClusterModel,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    intervals: ResidualQuantiles,
    nonnegative: bool = True,
    device: str = "auto",
    engine: str = "auto",
) -> pd.DataFrame:
    """Forecast the ``horizon`` periods after the data for every SKU of the cluster; a
    quantile model adds one column per quantile (p10, p50, p90, ...)."""
    if list(model.skus) != list(encoded.skus):
        raise ModelNotFoundError(
            f"the model of {cluster} was trained for other SKUs; retrain it before forecasting"
        )
    windows = encoded.forecast_windows()
    forecast, quantiles = forecast_arrays(model, encoded, scalers, nonnegative, device, engine)
    lower, upper = interval_bounds(forecast, scalers.units(windows.rows), intervals, nonnegative)
    n = len(windows.rows)
    table = pd.DataFrame(
        {
            "sku": np.repeat(encoded.skus[windows.rows].to_numpy(), encoded.horizon),
            "date": np.tile(encoded.future_dates.to_numpy(), n),
            "forecast": forecast.ravel(),
            "lower": lower.ravel(),
            "upper": upper.ravel(),
            "cluster": cluster,
            "model": model.model_type,
            "trained_at": pd.Timestamp(model.trained_at),
        }
    )[list(FORECAST_COLUMNS)]
    if quantiles is None:
        return table
    return pd.concat([table, quantile_frame(quantiles, model.quantiles)], axis=1)


def forecast_arrays(
    model: ClusterModel,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    nonnegative: bool = True,
    device: str = "auto",
    engine: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None]:
    """The point forecast [n_skus, horizon] of the periods after the data in original units,
    and a quantile model's [n_skus, horizon, n_quantiles] (None for a point model)."""
    windows = encoded.forecast_windows()
    output = predict_cluster(model, encoded, windows, device, engine)
    forecast = to_original_units(
        point_of(output, model.quantiles), windows.rows, scalers, nonnegative
    )
    if not model.quantiles:
        return forecast, None
    return forecast, to_original_units(output, windows.rows, scalers, nonnegative)


def combine_forecasts(
    tables: Mapping[str, pd.DataFrame],
    assignments: pd.Series,
    horizon: int,
    unclustered: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One table of all clusters, checked: every clustered SKU exactly once per future period.

    ``assignments`` maps SKU -> cluster (the current clustering). A cluster with no table, or
    a table made for an older clustering, is an error naming the cluster, never a silent gap.
    ``unclustered`` holds the rows of SKUs that sold first after the clustering; they are
    checked like the others.
    """
    missing = sorted(set(assignments.unique()) - set(tables))
    if missing:
        raise ModelNotFoundError(
            f"no forecast for cluster(s) {missing}; materialize forecast_table for them"
        )
    parts = []
    for cluster, table in tables.items():
        expected = set(assignments.index[assignments == cluster])
        got = set(table["sku"].unique())
        if got != expected:
            raise DataValidationError(
                f"forecast of {cluster} covers {len(got)} SKUs but the current clustering puts "
                f"{len(expected)} there ({len(got - expected)} extra, {len(expected - got)} "
                f"missing); re-materialize forecast_table for {cluster}",
                source=f"forecast_table[{cluster}]",
                column="sku",
                values=sorted(got ^ expected)[:5],
            )
        parts.append(table)
    if unclustered is not None and len(unclustered):
        parts.append(unclustered)
        newcomers = pd.Index(unclustered["sku"].unique())
        assignments = pd.concat([assignments, pd.Series(unclustered["cluster"].iloc[0], newcomers)])
    combined = pd.concat(parts, ignore_index=True).sort_values(["sku", "date"], ignore_index=True)
    # The same rule the forecasts_complete check applies to the published table.
    problems = forecast_completeness_problems(combined, assignments, horizon)
    if problems:
        counts = combined.groupby("sku")["date"].agg(["size", "nunique"])
        wrong = counts[(counts["size"] != horizon) | (counts["nunique"] != horizon)]
        raise DataValidationError(
            f"not every SKU has exactly one forecast for each of {horizon} periods: "
            + "; ".join(problems),
            source="forecasts",
            column="date",
            values=wrong.index[:5].tolist(),
        )
    return combined


def forecast_completeness_problems(
    table: pd.DataFrame, assignments: pd.Series, horizon: int
) -> list[str]:
    """Whether every clustered SKU (``assignments``: SKU -> cluster) is forecast exactly
    once for each of the same ``horizon`` periods, and nothing else is."""
    problems = []
    expected, got = set(assignments.index), set(table["sku"].unique())
    if expected - got:
        missing = sorted(expected - got)
        problems.append(f"{len(missing)} clustered SKU(s) have no forecast, e.g. {missing[:5]}")
    if got - expected:
        extra = sorted(got - expected)
        problems.append(f"{len(extra)} SKU(s) are forecast but not clustered, e.g. {extra[:5]}")
    periods = sorted(table["date"].unique())
    if len(periods) != horizon:
        problems.append(f"{len(periods)} forecast periods instead of {horizon}")
    counts = table.groupby(["sku", "date"]).size()
    if (counts > 1).any():
        twice = counts[counts > 1].index.get_level_values("sku").unique()
        problems.append(f"{len(twice)} SKU(s) forecast more than once for a period")
    per_sku = table.groupby("sku")["date"].nunique()
    short = per_sku[per_sku < len(periods)]
    if not short.empty:
        problems.append(
            f"{len(short)} SKU(s) lack some of the periods, e.g. {list(short.index[:5])}"
        )
    return problems
