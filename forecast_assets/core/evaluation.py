"""Rolling-origin backtest of a cluster model next to seasonal naive, the accuracy gate that
decides which model serves, and the evaluation report.

The backtest forecasts from every fold origin of the split (see ``core/data/windows.py``):
the fitted weights never saw a fold's targets, and a fold's inputs are the history before
its origin. Metrics are computed per fold (MASE and RMSSE scaled on the history before the
fold's origin) and averaged over folds; seasonal naive is scored on the same windows.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import asdict, dataclass, field

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
    interval_width,
    per_series_metrics,
    pinball_losses,
    scaled_interval_width,
    seasonal_naive_forecast,
    seasonal_naive_scale,
)
from forecast_assets.core.models.artifact import ClusterModel, RefitInfo, seasonal_naive_model
from forecast_assets.core.models.base import point_of
from forecast_assets.core.pool.pool import PoolResult

# Metrics that the per-fold table and the per-SKU table show.
FOLD_METRICS = ("mase", "rmsse", "smape", "mae", "bias")
SKU_METRICS = ("mase", "rmsse", "smape", "mae", "bias")


@dataclass
class Backtest:
    """One model's rolling-origin backtest, next to seasonal naive on the same windows."""

    model_type: str
    season: int
    origins: list[pd.Timestamp]  # the first forecast period of each fold
    # fold, origin, sku, step, date, actual, forecast, seasonal_naive (+ p10, p50... per quantile)
    predictions: pd.DataFrame
    by_fold: pd.DataFrame  # fold, origin, <metric> and <metric>_seasonal_naive per FOLD_METRICS
    by_step: pd.DataFrame  # step, model, seasonal_naive: mean absolute error / MASE scale
    by_sku: pd.DataFrame  # sku: SKU_METRICS and mase_seasonal_naive, averaged over folds
    metrics: dict[str, float]  # every accuracy metric, averaged over folds
    baseline: dict[str, float]  # the same for seasonal naive
    residuals: np.ndarray  # [n_windows, horizon] actual - forecast in scaled units
    forecast: np.ndarray  # [n_windows, horizon] point forecast in original units
    actual: np.ndarray  # [n_windows, horizon]
    quantiles: np.ndarray | None = None  # [n_windows, horizon, n_quantiles], original units

    @property
    def relative_mase(self) -> float:
        """Backtest MASE over seasonal naive's: below 1 means better than seasonal naive."""
        naive = self.baseline["mase"]
        if not np.isfinite(naive) or naive <= 0:
            return float("nan") if not np.isfinite(self.metrics["mase"]) else float("inf")
        return float(self.metrics["mase"] / naive)


def run_backtest(
    model: ClusterModel,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    season: int,
    nonnegative: bool = True,
    device: str = "auto",
    engine: str = "auto",
) -> Backtest:
    """Forecast every fold of ``encoded.test`` with ``model`` and score it against seasonal
    naive per fold, per horizon step and per SKU."""
    windows = encoded.test
    output = predict_cluster(model, encoded, windows, device, engine)
    scaled = point_of(output, model.quantiles)
    residuals = encoded.batch(windows)["target"] - scaled
    forecast = to_original_units(scaled, windows.rows, scalers, nonnegative)
    quantiles = (
        to_original_units(output, windows.rows, scalers, nonnegative) if model.quantiles else None
    )
    horizon = encoded.horizon
    steps = np.arange(horizon)
    actual = encoded.raw[windows.rows[:, None], windows.origins[:, None] + steps[None, :]]

    fold_rows, sku_frames, frames, fold_metrics, fold_baselines = [], [], [], [], []
    step_error = {"model": np.zeros(horizon), "seasonal_naive": np.zeros(horizon)}
    step_count = np.zeros(horizon)
    origins = [int(o) for o in np.unique(windows.origins)]
    for fold, origin in enumerate(origins):
        mask = windows.origins == origin
        rows = windows.rows[mask]
        history = encoded.raw[rows, :origin]
        fold_actual, fold_forecast = actual[mask], forecast[mask]
        naive = seasonal_naive_forecast(history, horizon, season)
        metrics = accuracy_metrics(fold_actual, fold_forecast, history, season)
        baseline = accuracy_metrics(fold_actual, naive, history, season)
        fold_metrics.append(metrics)
        fold_baselines.append(baseline)
        fold_rows.append(
            {
                "fold": fold,
                "origin": encoded.dates[origin],
                **{m: metrics[m] for m in FOLD_METRICS},
                **{f"{m}_seasonal_naive": baseline[m] for m in FOLD_METRICS},
            }
        )
        scale = seasonal_naive_scale(history, season)
        usable = np.isfinite(scale) & (scale > 0)
        for name, values in (("model", fold_forecast), ("seasonal_naive", naive)):
            scaled_error = np.abs(fold_actual - values)[usable] / scale[usable, None]
            step_error[name] += scaled_error.sum(axis=0)
        step_count += usable.sum()
        per_sku = per_series_metrics(fold_actual, fold_forecast, history, season)
        per_sku_naive = per_series_metrics(fold_actual, naive, history, season)
        sku_frames.append(
            pd.DataFrame(
                {
                    "sku": encoded.skus[rows],
                    **{m: per_sku[m] for m in SKU_METRICS},
                    "mase_seasonal_naive": per_sku_naive["mase"],
                }
            )
        )
        frames.append(
            pd.DataFrame(
                {
                    "fold": fold,
                    "origin": encoded.dates[origin],
                    "sku": np.repeat(encoded.skus[rows].to_numpy(), horizon),
                    "step": np.tile(steps + 1, len(rows)),
                    "date": np.tile(encoded.dates[origin + steps].to_numpy(), len(rows)),
                    "actual": fold_actual.ravel(),
                    "forecast": fold_forecast.ravel(),
                    "seasonal_naive": naive.ravel(),
                }
            )
        )
    predictions = pd.concat(frames, ignore_index=True)
    if quantiles is not None:
        predictions = pd.concat([predictions, quantile_frame(quantiles, model.quantiles)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step no usable series reached
        by_step = pd.DataFrame(
            {
                "step": steps + 1,
                "model": step_error["model"] / step_count,
                "seasonal_naive": step_error["seasonal_naive"] / step_count,
            }
        )
    by_step.attrs["metric"] = "MAE / seasonal naive scale"
    by_sku = pd.concat(sku_frames).groupby("sku", sort=False).mean()
    return Backtest(
        model_type=model.model_type,
        season=season,
        origins=[encoded.dates[o] for o in origins],
        predictions=predictions,
        by_fold=pd.DataFrame(fold_rows),
        by_step=by_step,
        by_sku=by_sku,
        metrics=_mean_over_folds(fold_metrics),
        baseline=_mean_over_folds(fold_baselines),
        residuals=residuals,
        forecast=forecast,
        actual=actual,
        quantiles=quantiles,
    )


def _mean_over_folds(folds: list[dict[str, float]]) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every fold
        return {name: float(np.nanmean([f[name] for f in folds])) for name in folds[0]}


@dataclass(frozen=True)
class GateDecision:
    """Which model serves a cluster after training, and why."""

    served: str  # "candidate", "previous" or "seasonal_naive"
    threshold: float  # evaluation.max_relative_mase
    candidate_relative_mase: float
    candidate_mase: float
    seasonal_naive_mase: float
    reason: str
    previous_relative_mase: float | None = None
    previous_trained_at: str | None = None

    @property
    def promoted(self) -> bool:
        return self.served == "candidate"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def accuracy_gate(
    candidate: ClusterModel,
    previous: ClusterModel | None,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    season: int,
    threshold: float,
    nonnegative: bool = True,
    device: str = "auto",
    engine: str = "auto",
    candidate_backtest: Backtest | None = None,
) -> tuple[ClusterModel, GateDecision, Backtest]:
    """The model that serves the cluster, the decision and the backtest of the served
    model (of the model it was refit from, for a refit model). ``candidate_backtest`` is
    the candidate's, when the caller has already run it.

    The candidate serves when its backtest MASE over seasonal naive's is below
    ``threshold``. Otherwise the previously served model does, if it still fits the data
    (same SKUs and inputs) and passes the same test on today's backtest; otherwise seasonal
    naive does. So the served model is never worse than seasonal naive on the backtest.
    Each model is backtested through its ONNX export when it has one (unless ``engine`` is
    torch), the way it serves.
    """
    engine = judging_engine(engine)
    tested = candidate_backtest or run_backtest(
        candidate, encoded, scalers, season, nonnegative, device, engine
    )
    relative = tested.relative_mase
    common = dict(
        threshold=threshold,
        candidate_relative_mase=relative,
        candidate_mase=tested.metrics["mase"],
        seasonal_naive_mase=tested.baseline["mase"],
    )
    summary = (
        f"the new {candidate.model_type} model's backtest MASE {tested.metrics['mase']:.3f} is "
        f"{relative:.3f} times seasonal naive's {tested.baseline['mase']:.3f}"
    )
    if relative < threshold:
        reason = f"promoted: {summary}, below the gate's {threshold:g}"
        return candidate, GateDecision("candidate", reason=reason, **common), tested
    rejected = f"rejected: {summary}, not below the gate's {threshold:g}"
    if previous is not None and previous.model_type != "seasonal_naive":
        if previous.fits(encoded):
            # A refit model trained on periods that are in today's backtest: judge the model
            # it was refit from, which did not.
            earlier = run_backtest(
                previous.evaluated, encoded, scalers, season, nonnegative, device, engine
            )
            if earlier.relative_mase < threshold:
                reason = (
                    f"{rejected}; the previous {previous.model_type} model trained at "
                    f"{previous.trained_at} keeps serving (relative MASE "
                    f"{earlier.relative_mase:.3f})"
                )
                decision = GateDecision(
                    "previous",
                    reason=reason,
                    previous_relative_mase=earlier.relative_mase,
                    previous_trained_at=previous.trained_at,
                    **common,
                )
                return previous, decision, earlier
            rejected += (
                f"; the previous model trained at {previous.trained_at} does not pass either "
                f"(relative MASE {earlier.relative_mase:.3f})"
            )
        else:
            rejected += "; the previous model was trained for other SKUs or inputs"
    naive = seasonal_naive_model(encoded, season)
    decision = GateDecision(
        "seasonal_naive", reason=f"{rejected}; seasonal naive serves this cluster", **common
    )
    tested = run_backtest(naive, encoded, scalers, season, nonnegative, device, engine)
    return naive, decision, tested


def judging_engine(engine: str) -> str:
    """The engine that backtests a model under the ``forecast.engine`` setting: its ONNX
    export when it has one, unless torch is asked for. A model that is judged but never
    served (a candidate to be refit) may have no export; then torch judges it."""
    return "torch" if engine == "torch" else "auto"


@dataclass
class EvaluationReport:
    """A cluster's served model on the rolling-origin backtest, its intervals' coverage,
    the gate's decision, and the residuals the forecast's intervals come from."""

    cluster: str
    model_type: str
    n_skus: int
    horizon: int
    season: int
    backtest: Backtest
    coverage: float  # share of backtest actuals inside intervals from validation residuals
    coverage_by_fold: list[float]
    interval_width: float  # mean width in original units
    scaled_interval_width: float  # mean width over the seasonal naive scale
    confidence: float
    intervals: ResidualQuantiles  # from validation and backtest residuals, for the forecast
    # A quantile model's outer heads: the band they span, the share of backtest actuals in
    # it, and the pinball loss of every head.
    quantile_band: tuple[float, float] | None = None
    quantile_coverage: float | None = None
    pinball: dict[str, float] = field(default_factory=dict)
    gate: GateDecision | None = None  # of the training run that chose the served model
    refit: RefitInfo | None = None  # when the served model is a refit
    # The pool that serves the cluster SKU by SKU; the figures above are then those of its
    # neural member alone.
    pool: PoolResult | None = None

    @property
    def served_coverage(self) -> float:
        """Interval coverage of what serves: the pool's on its scoring fold, or the model's."""
        return self.pool.scoring_metrics()["coverage"] if self.pool else self.coverage

    @property
    def metrics(self) -> dict[str, float]:
        return self.backtest.metrics

    @property
    def baseline(self) -> dict[str, float]:
        return self.backtest.baseline

    @property
    def predictions(self) -> pd.DataFrame:
        """Every backtest forecast with its interval (``lower``, ``upper``)."""
        return self.backtest.predictions

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
        rows = "\n".join(
            f"| {name} | {row.model:.4g} | {row.seasonal_naive:.4g} |"
            for name, row in self.metrics_table().iterrows()
        )
        folds = "\n".join(
            f"| {row.fold} | {row.origin.date()} | {row.mase:.3f} | "
            f"{row.mase_seasonal_naive:.3f} | {row.rmsse:.3f} | {coverage:.1%} |"
            for row, coverage in zip(
                self.backtest.by_fold.itertuples(), self.coverage_by_fold, strict=True
            )
        )
        steps = " | ".join(f"{v:.2f}" for v in self.backtest.by_step["model"])
        naive_steps = " | ".join(f"{v:.2f}" for v in self.backtest.by_step["seasonal_naive"])
        header = " | ".join(str(s) for s in self.backtest.by_step["step"])
        verdict = "beats" if self.beats_seasonal_naive else "does not beat"
        worst = self.backtest.by_sku.nlargest(5, "mase")
        worst_rows = "\n".join(
            f"| {sku} | {row.mase:.3f} | {row.mase_seasonal_naive:.3f} |"
            for sku, row in worst.iterrows()
        )
        n_folds = len(self.backtest.origins)
        return (
            f"### Evaluation of {self.cluster} ({self.model_type}, {self.n_skus} SKUs)\n\n"
            f"Rolling-origin backtest: {n_folds} fold(s) from "
            f"{self.backtest.origins[0].date()} to {self.backtest.origins[-1].date()}, each "
            f"forecasting {self.horizon} periods with weights that never saw them; seasonal "
            f"naive (season {self.season}) on the same windows. Metrics are means over folds. "
            f"The model {verdict} seasonal naive on MASE.\n\n"
            + self._gate_line()
            + "| metric | model | seasonal naive |\n|---|---|---|\n"
            f"{rows}\n\n"
            "| fold | origin | MASE | MASE seasonal naive | RMSSE | interval coverage |\n"
            f"|---|---|---|---|---|---|\n{folds}\n\n"
            "Error by horizon step (MAE over the seasonal naive scale):\n\n"
            f"| step | {header} |\n|---|{'---|' * len(self.backtest.by_step)}\n"
            f"| model | {steps} |\n| seasonal naive | {naive_steps} |\n\n"
            f"Intervals from validation residuals cover {self.coverage:.1%} of the backtest "
            f"actuals (nominal {self.confidence:.0%}); mean width {self.interval_width:.4g} "
            f"({self.scaled_interval_width:.2f} seasonal naive scales).\n"
            + self._quantile_line()
            + "\nSKUs with the highest backtest MASE:\n\n"
            "| SKU | MASE | MASE seasonal naive |\n|---|---|---|\n"
            f"{worst_rows}\n" + (f"\n{self.pool.to_markdown(self.cluster)}" if self.pool else "")
        )

    def _gate_line(self) -> str:
        line = f"Accuracy gate: {self.gate.reason}.\n\n" if self.gate else ""
        if self.refit:
            line += (
                f"The served model is the same family refit on all the data "
                f"({self.refit.windows} windows, {self.refit.epochs} epochs); the figures "
                "below are those of the model it was refit from, which never saw the backtest.\n\n"
            )
        return line

    def _quantile_line(self) -> str:
        if self.quantile_band is None or self.quantile_coverage is None:
            return ""
        low, high = self.quantile_band
        losses = ", ".join(f"{k} {v:.4g}" for k, v in self.pinball.items())
        return (
            f"Quantile heads {low:g}..{high:g} cover {self.quantile_coverage:.1%} of the "
            f"backtest actuals (nominal {high - low:.0%}); pinball loss {losses}.\n"
        )


def evaluate_cluster(
    cluster: str,
    model: ClusterModel,
    backtest: Backtest,
    encoded: EncodedPanel,
    scalers: ScalerManager,
    confidence: float,
    nonnegative: bool = True,
    device: str = "auto",
    engine: str = "auto",
    gate: GateDecision | None = None,
    pool: PoolResult | None = None,
) -> EvaluationReport:
    """The report of the served ``model`` from the ``backtest`` that judged it (the gate's:
    it is not run again), with its intervals measured.

    Coverage is honest: the backtest intervals use validation residuals only. The residual
    quantiles kept for forecasting pool validation and backtest residuals (the most recent
    errors). A refit model is judged by the model it was refit from, which never saw the
    backtest (its residuals then also make the intervals).
    """
    judged = model.evaluated
    if backtest.model_type != judged.model_type:
        raise ValueError(
            f"the backtest is of a {backtest.model_type} model, not of the "
            f"{judged.model_type} model that serves {cluster}"
        )
    tested, season = backtest, backtest.season
    validation_residuals = _residuals(
        judged, encoded, encoded.validation, device, judging_engine(engine)
    )
    if len(validation_residuals) == 0:  # e.g. one validation period shorter than the horizon
        validation_residuals = tested.residuals
    validation_quantiles = residual_quantiles(validation_residuals, confidence)
    windows = encoded.test
    units = scalers.units(windows.rows)
    lower, upper = interval_bounds(tested.forecast, units, validation_quantiles, nonnegative)
    inside = (tested.actual >= lower) & (tested.actual <= upper)
    origins = np.unique(windows.origins)
    coverage_by_fold = [float(inside[windows.origins == o].mean()) for o in origins]
    history = np.where(
        np.arange(encoded.raw.shape[1])[None, :] < windows.origins[:, None],
        encoded.raw[windows.rows],
        np.nan,
    )
    # A copy: the gate's backtest stays as it was.
    tested = dataclasses.replace(
        tested, predictions=tested.predictions.assign(lower=lower.ravel(), upper=upper.ravel())
    )
    band = band_coverage = None
    pinball: dict[str, float] = {}
    if tested.quantiles is not None:
        pinball = pinball_losses(tested.actual, tested.quantiles, judged.quantiles)
        if len(judged.quantiles) > 1:
            band = (judged.quantiles[0], judged.quantiles[-1])
            band_coverage = interval_coverage(
                tested.actual, tested.quantiles[..., 0], tested.quantiles[..., -1]
            )
    return EvaluationReport(
        cluster=cluster,
        model_type=model.model_type,
        n_skus=encoded.n_skus,
        horizon=encoded.horizon,
        season=season,
        backtest=tested,
        coverage=float(inside.mean()),
        coverage_by_fold=coverage_by_fold,
        interval_width=interval_width(lower, upper),
        scaled_interval_width=scaled_interval_width(lower, upper, history, season),
        confidence=confidence,
        intervals=residual_quantiles(
            np.vstack([validation_residuals, tested.residuals]), confidence
        ),
        quantile_band=band,
        quantile_coverage=band_coverage,
        pinball=pinball,
        gate=gate,
        refit=model.refit,
        pool=pool,
    )


def _residuals(
    model: ClusterModel, encoded: EncodedPanel, windows: WindowSet, device: str, engine: str
) -> np.ndarray:
    output = predict_cluster(model, encoded, windows, device, engine)
    return encoded.batch(windows)["target"] - point_of(output, model.quantiles)


def combined_summary(reports: dict[str, EvaluationReport]) -> pd.DataFrame:
    """One row per cluster: served model, SKUs, backtest MASE / RMSSE / sMAPE next to
    seasonal naive, interval coverage and the gate's verdict."""
    rows = []
    for cluster, report in sorted(reports.items()):
        rows.append(
            {
                "cluster": cluster,
                "model": report.model_type,
                "skus": report.n_skus,
                "mase": report.metrics["mase"],
                "mase_seasonal_naive": report.baseline["mase"],
                "relative_mase": report.backtest.relative_mase,
                "rmsse": report.metrics["rmsse"],
                "rmsse_seasonal_naive": report.baseline["rmsse"],
                "smape": report.metrics["smape"],
                "coverage": report.coverage,
                "nominal": report.confidence,
                "served": report.gate.served if report.gate else "candidate",
                **_served_columns(report),
            }
        )
    return pd.DataFrame(rows)


def _served_columns(report: EvaluationReport) -> dict[str, object]:
    """What serves the cluster and its figures on the scoring fold, when a pool serves."""
    if report.pool is None:
        return {}
    metrics = report.pool.scoring_metrics()
    return {
        "pool_mase": metrics["mase"],
        "pool_rmsse": metrics["rmsse"],
        "pool_coverage": metrics["coverage"],
        "pool_mix": ", ".join(f"{k} {v}" for k, v in report.pool.served.mix().items()),
    }


def overall_metrics(reports: dict[str, EvaluationReport]) -> dict[str, float]:
    """Means over every SKU of every cluster (each SKU's metrics averaged over folds), and
    the interval coverage pooled over all backtest forecasts."""
    by_sku = pd.concat([r.backtest.by_sku for r in reports.values()])
    predictions = pd.concat([r.predictions for r in reports.values()])
    inside = (predictions["actual"] >= predictions["lower"]) & (
        predictions["actual"] <= predictions["upper"]
    )
    pooled = {}
    if all(r.pool is not None for r in reports.values()):
        served = pd.concat([r.pool.scoring_by_sku() for r in reports.values()])
        pooled = {
            "pool_mase": float(served["mase"].mean()),
            "pool_rmsse": float(served["rmsse"].mean()),
            "pool_coverage": float(np.average(served["coverage"], weights=served["points"])),
        }
    return {
        **pooled,
        "skus": float(len(by_sku)),
        "mase": float(by_sku["mase"].mean()),
        "mase_seasonal_naive": float(by_sku["mase_seasonal_naive"].mean()),
        "rmsse": float(by_sku["rmsse"].mean()),
        "smape": float(by_sku["smape"].mean()),
        "coverage": float(inside.mean()),
    }


def combined_markdown(reports: dict[str, EvaluationReport]) -> str:
    """The all-clusters report: overall figures and one row per cluster."""
    summary = combined_summary(reports)
    overall = overall_metrics(reports)
    rows = "\n".join(
        f"| {r.cluster} | {r.model} | {r.skus} | {r.mase:.3f} | {r.mase_seasonal_naive:.3f} | "
        f"{r.rmsse:.3f} | {r.smape:.1f} | {r.coverage:.1%} | {r.served} |"
        for r in summary.itertuples()
    )
    confidence = next(iter(reports.values())).confidence
    return (
        "## Backtest of every cluster\n\n"
        + _pool_lines(summary, overall, confidence)
        + f"{int(overall['skus'])} SKUs: MASE {overall['mase']:.3f} against seasonal naive's "
        f"{overall['mase_seasonal_naive']:.3f} (means over SKUs); RMSSE {overall['rmsse']:.3f}; "
        f"interval coverage {overall['coverage']:.1%} (nominal {confidence:.0%}).\n\n"
        "| cluster | model | SKUs | MASE | MASE seasonal naive | RMSSE | sMAPE | coverage "
        "| served |\n|---|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n"
    )


def _pool_lines(summary: pd.DataFrame, overall: dict[str, float], confidence: float) -> str:
    if "pool_mase" not in overall:
        return ""
    rows = "\n".join(
        f"| {r.cluster} | {r.skus} | {r.pool_mase:.3f} | {r.pool_rmsse:.3f} | "
        f"{r.pool_coverage:.1%} | {r.pool_mix} |"
        for r in summary.itertuples()
    )
    return (
        "What serves, the pool's choice per SKU, on the last fold (which took no part in "
        f"the choice): MASE {overall['pool_mase']:.3f}, RMSSE {overall['pool_rmsse']:.3f} "
        f"(means over SKUs), interval coverage {overall['pool_coverage']:.1%} (nominal "
        f"{confidence:.0%}).\n\n"
        "| cluster | SKUs | MASE | RMSSE | coverage | SKUs served by |\n"
        f"|---|---|---|---|---|---|\n{rows}\n\n"
        "The figures below are those of each cluster's neural model alone (or of seasonal "
        "naive where it failed the gate), on every fold.\n\n"
    )
