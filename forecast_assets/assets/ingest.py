"""Unpartitioned ingest: raw sales in, a regular panel of demand series out."""

import dagster as dg
import pandas as pd

from forecast_assets.core.data.generator import generate_sales
from forecast_assets.core.data.loader import discover_files, load_sales_files, standardize_sales
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.resample import resample_sales
from forecast_assets.resources import ForecastSettingsResource

EXAMPLE_SOURCE = "<embedded example data>"


@dg.asset(group_name="ingest", kinds={"pandas"})
def raw_sales(
    context: dg.AssetExecutionContext, settings: ForecastSettingsResource
) -> pd.DataFrame:
    """Sales history in long format, validated and standardized: DatetimeIndex ``date``,
    columns ``sku``, ``quantity`` and the configured attributes; one row per (sku, date)."""
    config = settings.load()
    spec = config.data.column_spec()
    if config.data.path:
        files = discover_files(config.data.path)
        sources = [str(file) for file in files]
        sales = load_sales_files(files, spec)
    else:
        example = config.data.example
        generated = generate_sales(example.n_skus, example.periods, example.start, seed=config.seed)
        sources = [EXAMPLE_SOURCE]
        sales = standardize_sales(generated, spec, source=EXAMPLE_SOURCE)
    context.add_output_metadata(
        {
            "rows": len(sales),
            "skus": int(sales["sku"].nunique()),
            "first_date": str(sales.index.min().date()),
            "last_date": str(sales.index.max().date()),
            "sources": dg.MetadataValue.json(sources),
            "preview": dg.MetadataValue.md(sales.head(10).to_markdown()),
        }
    )
    return sales


@dg.asset(group_name="ingest")
def resampled_series(
    context: dg.AssetExecutionContext, settings: ForecastSettingsResource, raw_sales: pd.DataFrame
) -> SalesPanel:
    """Demand per SKU on a regular grid of ``timeseries.freq``: gaps are zero demand; SKUs with
    fewer than ``timeseries.min_history`` periods (or no demand at all) are dropped."""
    config = settings.load()
    result = resample_sales(
        raw_sales,
        config.timeseries.freq,
        config.timeseries.min_history,
        config.data.column_spec().attribute_columns,
    )
    panel = result.panel
    context.add_output_metadata(
        {
            "skus": panel.n_skus,
            "periods": panel.n_periods,
            "freq": panel.freq,
            "first_period": str(panel.dates[0].date()),
            "last_period": str(panel.dates[-1].date()),
            "dropped_skus": len(result.dropped_short) + len(result.dropped_zero),
            "dropped_short_history": len(result.dropped_short),
            "dropped_no_demand": len(result.dropped_zero),
            "dropped_partial_last_period": str(result.dropped_partial_period.date())
            if result.dropped_partial_period is not None
            else "none",
            "zero_share": float((panel.values == 0).sum() / (~pd.isna(panel.values)).sum()),
        }
    )
    return panel
