"""Asset checks on the published forecast table. The per-cluster checks (the accuracy gate
on ``cluster_model``, interval coverage on ``evaluation_report``) are reported by those
assets themselves, since they come out of the computation the asset already does."""

import dagster as dg
import pandas as pd

from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.inference.forecast import forecast_completeness_problems
from forecast_assets.core.pool.newcomers import UNCLUSTERED
from forecast_assets.frames import FORECAST_FRAME
from forecast_assets.resources import ForecastSettingsResource


def _result(problems: list[str], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else what,
        metadata={"problems": dg.MetadataValue.json(problems)},
    )


@dg.asset_check(asset="forecasts", blocking=True)
def forecasts_schema(
    settings: ForecastSettingsResource, forecasts: pd.DataFrame
) -> dg.AssetCheckResult:
    """The stored table against its type, ForecastFrame (frames.py): the contract's columns
    and dtypes, no nulls, finite values, lower <= forecast <= upper, no negative demand
    unless the settings keep negative quantities. A materialization already fails on a table
    that breaks it; the check shows the verdict among the table's checks, and can judge the
    stored table again on its own (after a settings change, say)."""
    problem = FORECAST_FRAME.violation(forecasts, settings.load().nonnegative)
    return _result(
        [problem] if problem else [],
        f"{len(forecasts)} rows follow the forecast table's type, {FORECAST_FRAME.name}",
    )


@dg.asset_check(
    asset="forecasts",
    blocking=True,
    additional_ins={
        "clusters": dg.AssetIn("clusters"),
        "resampled_series": dg.AssetIn("resampled_series"),
    },
)
def forecasts_complete(
    settings: ForecastSettingsResource,
    forecasts: pd.DataFrame,
    clusters: ClusterResult,
    resampled_series: SalesPanel,
) -> dg.AssetCheckResult:
    """Every SKU of the history, clustered or sold first since the clustering, is forecast
    exactly once per future period."""
    horizon = settings.load().timeseries.horizon
    newcomers = resampled_series.skus.difference(clusters.assignments.index)
    expected = pd.concat([clusters.assignments, pd.Series(UNCLUSTERED, index=newcomers)])
    problems = forecast_completeness_problems(forecasts, expected, horizon)
    return _result(
        problems,
        f"{forecasts['sku'].nunique()} SKUs, each forecast once for each of {horizon} periods",
    )


CHECKS = [forecasts_schema, forecasts_complete]
