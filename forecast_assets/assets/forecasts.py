"""The combined forecast table that users consume."""

from typing import Any

import dagster as dg
import pandas as pd

from forecast_assets.assets.inputs import per_cluster
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.inference.forecast import combine_forecasts
from forecast_assets.frames import FORECAST_FRAME
from forecast_assets.resources import ForecastSettingsResource, OutputStore


@dg.asset(
    group_name="forecasts",
    kinds={"pandas", "parquet"},
    dagster_type=FORECAST_FRAME.dagster_type,
    metadata=FORECAST_FRAME.metadata,
)
def forecasts(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    clusters: ClusterResult,
    forecast_table: Any,  # {cluster: table}; the bare table when there is one cluster
) -> pd.DataFrame:
    """All clusters' forecasts as one table (sku, date, forecast, lower, upper, cluster, model,
    trained_at; typed as ForecastFrame), checked so every clustered SKU appears once per
    future period, and written to ``<output.dir>/forecasts.parquet`` and ``.csv``."""
    loaded = settings.load()
    tables = per_cluster(context, "forecast_table", forecast_table)
    table = combine_forecasts(tables, clusters.assignments, loaded.timeseries.horizon)
    # Dagster checks the type once the asset returns, after the files below are written:
    # check it first, so that a table breaking its type is never published.
    problem = FORECAST_FRAME.violation(table, loaded.nonnegative)
    if problem:
        raise dg.Failure(description=f"the forecast table breaks {FORECAST_FRAME.name}: {problem}")
    paths = output_store.write_table("forecasts", table)
    context.add_output_metadata(
        {
            "rows": len(table),
            "skus": int(table["sku"].nunique()),
            "clusters": len(tables),
            "first_date": str(table["date"].min().date()),
            "last_date": str(table["date"].max().date()),
            "parquet": dg.MetadataValue.path(str(paths["parquet"])),
            "csv": dg.MetadataValue.path(str(paths["csv"])),
            "preview": dg.MetadataValue.md(table.head(10).to_markdown(index=False)),
        }
    )
    return table
