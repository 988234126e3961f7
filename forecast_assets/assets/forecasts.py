"""The combined forecast table that users consume."""

from typing import Any

import dagster as dg
import pandas as pd

from forecast_assets.assets.inputs import per_cluster
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.inference.forecast import combine_forecasts
from forecast_assets.core.models.artifact import utc_now
from forecast_assets.core.pool.newcomers import forecast_newcomers
from forecast_assets.frames import FORECAST_FRAME
from forecast_assets.resources import ForecastSettingsResource, OutputStore
from forecast_assets.settings import Settings


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
    resampled_series: SalesPanel,
    forecast_table: Any,  # {cluster: table}; the bare table when there is one cluster
) -> pd.DataFrame:
    """All clusters' forecasts as one table (sku, date, forecast, lower, upper, cluster, model,
    trained_at; typed as ForecastFrame), checked so every SKU appears once per future
    period, and written to ``<output.dir>/forecasts.parquet`` and ``.csv``. SKUs that sold
    first after the last clustering are forecast by a simple method (cluster
    ``unclustered``) until the next training run clusters them."""
    loaded = settings.load()
    tables = per_cluster(context, "forecast_table", forecast_table)
    newcomers = newcomer_forecasts(loaded, resampled_series, clusters)
    table = combine_forecasts(
        tables, clusters.assignments, loaded.timeseries.horizon, unclustered=newcomers
    )
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
            "unclustered_skus": 0 if newcomers is None else int(newcomers["sku"].nunique()),
            "first_date": str(table["date"].min().date()),
            "last_date": str(table["date"].max().date()),
            "parquet": dg.MetadataValue.path(str(paths["parquet"])),
            "csv": dg.MetadataValue.path(str(paths["csv"])),
            "preview": dg.MetadataValue.md(table.head(10).to_markdown(index=False)),
        }
    )
    return table


def newcomer_forecasts(
    settings: Settings, panel: SalesPanel, clusters: ClusterResult
) -> pd.DataFrame | None:
    """The rows of the SKUs in the history that the clustering does not know yet."""
    newcomers = panel.skus.difference(clusters.assignments.index)
    if newcomers.empty:
        return None
    return forecast_newcomers(
        panel.select(list(newcomers)),
        settings.timeseries.horizon,
        settings.timeseries.season,
        settings.forecast.confidence,
        utc_now(),
    )
