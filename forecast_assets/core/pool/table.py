"""The forecast table of a cluster that its pool serves, SKU by SKU."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.inference.forecast import FORECAST_COLUMNS, forecast_cluster
from forecast_assets.core.inference.intervals import ResidualQuantiles
from forecast_assets.core.models.artifact import ClusterModel
from forecast_assets.core.pool.neural import neural_forecast, panel_of
from forecast_assets.core.pool.pool import PoolResult, PoolRun, forecast_pool
from forecast_assets.core.training.serve import ServedCluster


def forecast_served(
    cluster: str,
    served: ServedCluster,
    run: PoolRun,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    intervals: ResidualQuantiles,
    device: str = "auto",
    engine: str = "auto",
) -> pd.DataFrame:
    """The cluster's forecast table from what the serving step chose: the pool's choice per
    SKU, or, when no pool was judged, the served model with ``intervals`` (the evaluation
    report's residual quantiles)."""
    if served.pool is not None:
        return forecast_cluster_pool(
            cluster, served.pool, run, served.pool_member, encoded, scalers, device, engine
        )
    return forecast_cluster(
        cluster, served.model, encoded, scalers, intervals, run.nonnegative, device, engine
    )


def forecast_cluster_pool(
    cluster: str,
    pool: PoolResult,
    run: PoolRun,
    model: ClusterModel,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    device: str = "auto",
    engine: str = "auto",
) -> pd.DataFrame:
    """The horizon after the data for every SKU of the cluster from what serves it: one
    candidate or the cluster's combination, with the pool's conformal intervals. The
    ``model`` column names it."""
    if list(pool.backtest.names) and pool.backtest.actual.shape[1] != encoded.n_skus:
        raise ModelNotFoundError(
            f"the pool of {cluster} was chosen for other SKUs; retrain it before forecasting"
        )
    neural = None
    if pool.neural is not None and pool.neural in pool.served.used():
        if list(model.skus) != list(encoded.skus):
            raise ModelNotFoundError(
                f"the model of {cluster} was trained for other SKUs; retrain it first"
            )
        neural = neural_forecast(model, encoded, scalers, run.nonnegative, device, engine)
    panel = panel_of(encoded)
    result = forecast_pool(
        pool, panel, encoded.horizon, pool.member_groups(run), neural, run.nonnegative
    )
    n, horizon = encoded.n_skus, encoded.horizon
    return pd.DataFrame(
        {
            "sku": np.repeat(encoded.skus.to_numpy(), horizon),
            "date": np.tile(encoded.future_dates.to_numpy(), n),
            "forecast": result.forecast.ravel(),
            "lower": result.lower.ravel(),
            "upper": result.upper.ravel(),
            "cluster": cluster,
            "model": np.repeat(result.labels, horizon),
            "trained_at": pd.Timestamp(pool.judged_at),
        }
    )[list(FORECAST_COLUMNS)]
