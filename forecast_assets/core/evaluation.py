"""Evaluation of a cluster model on the held-out last horizon, next to seasonal naive."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel, WindowSet
from forecast_assets.core.inference.forecast import quantile_frame
from forecast_assets.core.inference.intervals import (
    ResidualQuantiles,
    interval_bounds,
    residual_quantiles,
)
from forecast_assets.core.inference.predictor import predict_cluster, to_original_units
from forecast_assets.core.metrics import (
    METRIC_NAMES,
    accuracy_metrics,
    interval_coverage,
    seasonal_naive_forecast,
)
from forecast_assets.core.models.base import point_of
from forecast_assets.core.training.cluster_model import ClusterModel


@dataclass
class EvaluationReport:
    """Accuracy of one cluster's model on its test horizon and the residuals for intervals."""

    cluster: str
    model_type: str
    n_skus: int
    horizon: int
    season: int
    metrics: dict[str, float]
    baseline: dict[str, float]  # seasonal naive on the same windows
    coverage: float  # share of test actuals inside intervals built from validation residuals
    confidence: float
    intervals: ResidualQuantiles  # from validation and test residuals, for the forecast
    # sku, date, actual, forecast, seasonal_naive, lower, upper (+ p10, p50, ... per quantile)
    predictions: pd.DataFrame
    # A quantile model's outer heads: the band they span, and the share of test actuals in it.
    quantile_band: tuple[float, float] | None = None
    quantile_coverage: float | None = None

    @property
    def beats_seasonal_naive(self) -> bool:
        return bool(self.metrics["mase"] < self.baseline["mase"])

    def metrics_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": [self.metrics[m] for m in METRIC_NAMES],
                "seasonal_naive": [self.baseline[m] for m in METRIC_NAMES],
            },
            index=pd.Index(METRIC_NAMES, name="metric"),
        )

    def to_markdown(self) -> str:
        table = self.metrics_table()
        rows = "\n".join(
            f"| {name} | {row.model:.4g} | {row.seasonal_naive:.4g} |"
            for name, row in table.iterrows()
        )
        verdict = "beats" if self.beats_seasonal_naive else "does not beat"
        return (
            f"### Evaluation of {self.cluster} ({self.model_type}, {self.n_skus} SKUs)\n\n"
            f"Held-out last {self.horizon} periods of every SKU; seasonal naive with season "
            f"{self.season} on the same windows. The model {verdict} seasonal naive on MASE.\n\n"
            "| metric | model | seasonal naive |\n|---|---|---|\n"
            f"{rows}\n\n"
            f"Interval coverage on the test horizon: {self.coverage:.1%} "
            f"(nominal {self.confidence:.0%}).\n" + self._quantile_line()
        )

    def _quantile_line(self) -> str:
        if self.quantile_band is None or self.quantile_coverage is None:
            return ""
        low, high = self.quantile_band
        return (
            f"Quantile heads {low:g}..{high:g} cover {self.quantile_coverage:.1%} of the test "
            f"actuals (nominal {high - low:.0%}).\n"
        )


def evaluate_cluster(
    cluster: str,
    model: ClusterModel,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    season: int,
    confidence: float,
    nonnegative: bool = True,
    device: str = "auto",
    engine: str = "auto",
) -> EvaluationReport:
    """Score ``model`` on the test windows and gather residual quantiles.

    Coverage is honest: the test intervals use validation residuals only. The quantiles kept
    for forecasting pool validation and test residuals (the most recent errors).
    """
    split = encoded.split

    def residuals(windows: WindowSet) -> np.ndarray:
        output = predict_cluster(model, encoded, windows, device, engine)
        return encoded.batch(windows)["target"] - point_of(output, model.quantiles)

    validation_residuals = residuals(encoded.validation)
    test = encoded.test
    test_output = predict_cluster(model, encoded, test, device, engine)
    test_scaled = point_of(test_output, model.quantiles)
    test_residuals = encoded.batch(test)["target"] - test_scaled

    rows = test.rows
    forecast = to_original_units(test_scaled, rows, scalers, nonnegative)
    actual = encoded.raw[rows, split.test_origin :]
    history = encoded.raw[rows, : split.test_origin]
    naive = seasonal_naive_forecast(history, encoded.horizon, season)

    validation_quantiles = residual_quantiles(validation_residuals, confidence)
    lower, upper = interval_bounds(forecast, scalers.units(rows), validation_quantiles, nonnegative)
    dates = encoded.dates[split.test_origin :]
    predictions = pd.DataFrame(
        {
            "sku": np.repeat(encoded.skus[rows].to_numpy(), encoded.horizon),
            "date": np.tile(dates.to_numpy(), len(rows)),
            "actual": actual.ravel(),
            "forecast": forecast.ravel(),
            "seasonal_naive": naive.ravel(),
            "lower": lower.ravel(),
            "upper": upper.ravel(),
        }
    )
    band = band_coverage = None
    if model.quantiles:
        quantiles = to_original_units(test_output, rows, scalers, nonnegative)
        predictions = pd.concat([predictions, quantile_frame(quantiles, model.quantiles)], axis=1)
        if len(model.quantiles) > 1:
            band = (model.quantiles[0], model.quantiles[-1])
            band_coverage = interval_coverage(actual, quantiles[..., 0], quantiles[..., -1])
    return EvaluationReport(
        cluster=cluster,
        model_type=model.model_type,
        n_skus=len(rows),
        horizon=encoded.horizon,
        season=season,
        metrics=accuracy_metrics(actual, forecast, history, season),
        baseline=accuracy_metrics(actual, naive, history, season),
        coverage=interval_coverage(actual, lower, upper),
        confidence=confidence,
        intervals=residual_quantiles(np.vstack([validation_residuals, test_residuals]), confidence),
        predictions=predictions,
        quantile_band=band,
        quantile_coverage=band_coverage,
    )
