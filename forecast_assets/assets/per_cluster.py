"""Per-cluster assets: one partition per cluster, from scalers to the cluster's forecast."""

import dagster as dg
import pandas as pd
from pydantic import Field

from forecast_assets.concurrency import TRAINING_POOL
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel, PeriodSplit
from forecast_assets.core.errors import DataValidationError
from forecast_assets.core.evaluation import EvaluationReport, evaluate_cluster
from forecast_assets.core.inference.predictor import engine_for
from forecast_assets.core.models.artifact import ClusterModel
from forecast_assets.core.plots import (
    error_by_step_plot,
    fold_metrics_plot,
    forecast_report_plot,
    forecast_vs_actual_plot,
    loss_curve_plot,
    markdown_image,
    prediction_quality_plot,
)
from forecast_assets.core.pool.pool import PoolResult
from forecast_assets.core.pool.table import forecast_served
from forecast_assets.core.training.serve import (
    ServedCluster,
    previous_served_model,
    resolve_model_spec,
    serve_cluster,
)
from forecast_assets.core.training.trainer import EpochRecord, TrainerCallback
from forecast_assets.core.training.tuning import TuningResult
from forecast_assets.frames import CLUSTER_FORECAST_FRAME
from forecast_assets.partitions import cluster_partitions
from forecast_assets.resources import ForecastSettingsResource, OutputStore
from forecast_assets.settings import Settings, override_section
from forecast_assets.specs import gate_config, model_spec, pool_run

GROUP = "per_cluster"


def cluster_panel(
    context: dg.AssetExecutionContext, panel: SalesPanel, clusters: ClusterResult
) -> SalesPanel:
    """The SKUs of this run's cluster partition."""
    key = context.partition_key
    skus = clusters.assignments.index[clusters.assignments == key]
    if len(skus) == 0:
        raise DataValidationError(
            f"cluster partition '{key}' is not in the current clustering {clusters.keys}; "
            "materialize clusters again or pick an existing partition",
            source="clusters",
            column="cluster",
            values=[key],
        )
    return panel.select(list(skus))


@dg.asset(partitions_def=cluster_partitions, group_name=GROUP, kinds={"scikitlearn"})
def scalers(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    resampled_series: SalesPanel,
    clusters: ClusterResult,
) -> ScalerManager:
    """Per-SKU scalers of the cluster, fitted on the training periods only."""
    config = settings.load()
    panel = cluster_panel(context, resampled_series, clusters)
    split = split_of(config, panel)
    manager = fit_scalers(panel, split, config.scaling.method)
    context.add_output_metadata(
        {
            "skus": panel.n_skus,
            "method": manager.method,
            "fitted_through": str(panel.dates[split.train_end - 1].date()),
        }
    )
    return manager


@dg.asset(partitions_def=cluster_partitions, group_name=GROUP)
def encoded_features(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    resampled_series: SalesPanel,
    clusters: ClusterResult,
    scalers: ScalerManager,
    tuned_hyperparameters: TuningResult | None,
) -> EncodedPanel:
    """Scaled demand, calendar features, encoded categoricals and the sliding windows
    (training, validation and the held-out test horizon) of the cluster, with the tuned
    window length when tuning chose one."""
    config = settings.load()
    panel = cluster_panel(context, resampled_series, clusters)
    window = tuned_hyperparameters.window if tuned_hyperparameters is not None else None
    encoded = encode_cluster(config, panel, scalers, window)
    context.add_output_metadata(
        {
            "skus": encoded.n_skus,
            "window": encoded.window,
            "train_windows": len(encoded.train),
            "validation_windows": len(encoded.validation),
            "test_windows": len(encoded.test),
            "calendar_features": dg.MetadataValue.json(encoded.calendar_names),
            "static_features": dg.MetadataValue.json(encoded.static_names),
        }
    )
    return encoded


class TrainingRunConfig(dg.Config):
    """Launch-time overrides of the training settings for one run (the Launchpad's config,
    or ``run_config`` in code); anything left empty comes from the settings file."""

    epochs: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    patience: int | None = None
    max_windows_per_epoch: int | None = None
    loss: str | None = None
    model_type: str | None = None
    resume: bool = Field(
        default=True,
        description="continue from the checkpoint an interrupted attempt left behind",
    )

    def training_overrides(self) -> dict[str, object]:
        fields = ("epochs", "learning_rate", "batch_size", "patience", "max_windows_per_epoch")
        chosen = {name: getattr(self, name) for name in (*fields, "loss")}
        return {name: value for name, value in chosen.items() if value is not None}


class RunLog(TrainerCallback):
    """Training progress into the run's log, as the UI shows it while the run is going."""

    def __init__(self, log: dg.DagsterLogManager) -> None:
        self.log = log

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.log.info(
            f"epoch {record.epoch}: train loss {record.train_loss:.4f}, "
            f"validation loss {record.validation_loss:.4f}, "
            f"learning rate {record.learning_rate:.2e} ({record.seconds:.1f}s)"
        )

    def on_early_stop(self, epoch: int, best_epoch: int) -> None:
        self.log.info(f"early stop after epoch {epoch}; keeping epoch {best_epoch}")


@dg.asset(
    partitions_def=cluster_partitions,
    group_name=GROUP,
    kinds={"pytorch"},
    pool=TRAINING_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "accuracy_gate",
            asset="cluster_model",
            blocking=True,
            description="the newly trained model beats seasonal naive on the backtest "
            "(MASE ratio below evaluation.max_relative_mase); otherwise it is not served",
        )
    ],
)
def cluster_model(
    context: dg.AssetExecutionContext,
    config: TrainingRunConfig,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    encoded_features: EncodedPanel,
    scalers: ScalerManager,
    tuned_hyperparameters: TuningResult | None,
):  # MaterializeResult holding the ServedCluster
    """The model that serves the cluster. A new model (``model.type``, or the cluster's
    override in ``model.per_cluster``, with the tuned hyperparameters when there are any,
    trained with early stopping on the validation periods; launch-time run config beats
    both) serves only if it passes the accuracy gate on the backtest; otherwise the model
    that served before stays, or seasonal naive when there is none that passes. Runs in
    the training pool, so clusters queue for the device instead of sharing it."""
    key = context.partition_key
    loaded = settings.load()
    launch = config.training_overrides()
    override_section(loaded.training, launch, "run config of cluster_model")  # checks them
    spec = resolve_model_spec(
        model_spec(loaded, key, config.model_type), tuned_hyperparameters, launch
    )
    if spec.tuned:
        context.log.info(f"using tuned hyperparameters {spec.tuned}")
    paths = output_store.serving_paths
    served = serve_cluster(
        key,
        encoded_features,
        scalers,
        spec,
        previous_served_model(paths, key, context.log),
        gate_config(loaded),
        paths,
        callbacks=[RunLog(context.log)],
        resume=config.resume,
        log=context.log,
        pool=pool_run(loaded),
    )
    return dg.MaterializeResult(
        value=served, metadata=served_metadata(served), check_results=[gate_check(served)]
    )


def gate_check(served: ServedCluster) -> dg.AssetCheckResult:
    """The gate's verdict on the new model for the whole cluster and, with the pool, what
    serves each SKU: how many take the new choice and how many kept what served them."""
    decision = served.gate
    metadata: dict[str, object] = {
        "served": decision.served,
        "candidate_relative_mase": decision.candidate_relative_mase,
        "threshold": decision.threshold,
        "candidate_mase": decision.candidate_mase,
        "seasonal_naive_mase": decision.seasonal_naive_mase,
    }
    description = decision.reason
    if served.pool is not None:
        pool = served.pool
        description += (
            f". Per SKU, the pool serves {served_by(served)}; {pool.kept_previous} SKU(s) "
            "kept what served them before, which the new choice did not beat"
        )
        metadata |= {
            "pool_mix": dg.MetadataValue.json(pool.served.mix()),
            "pool_kept_previous": pool.kept_previous,
            "pool_mase": pool.scoring_metrics()["mase"],
        }
    return dg.AssetCheckResult(
        check_name="accuracy_gate",
        passed=decision.promoted,
        # A rejection is a warning, not an error: the fallback already serves, so the
        # cluster's evaluation and forecast go on with it.
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def served_metadata(served: ServedCluster) -> dict[str, object]:
    """What the UI shows of a serving step: the verdict, the candidate and its training."""
    candidate, result, exports = served.candidate, served.training, served.exports
    return {
        "served": served.gate.served,
        "served_model_type": served.model.model_type,
        "served_trained_at": served.model.trained_at,
        "refit": served.model.refit is not None and served.promoted,
        "gate": served.gate.reason,
        "backtest_mase": served.backtest.metrics["mase"],
        "backtest_mase_seasonal_naive": served.backtest.baseline["mase"],
        "candidate_relative_mase": served.gate.candidate_relative_mase,
        "model_type": candidate.model_type,
        "quantiles": dg.MetadataValue.json(list(candidate.quantiles)),
        "onnx": dg.MetadataValue.path(str(exports.onnx)) if exports.onnx else "none",
        "torchscript": (
            dg.MetadataValue.path(str(exports.torchscript)) if exports.torchscript else "none"
        ),
        "parameters": candidate.parameter_count,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "best_validation_loss": result.best_validation_loss,
        "training_seconds": round(result.seconds, 2),
        "resumed_from_epoch": result.resumed_from_epoch,
        "learning_rate": served.spec.training.learning_rate,
        "device": result.device,
        "trained_at": candidate.trained_at,
        "seconds_by_phase": dg.MetadataValue.json(
            {phase: round(value, 2) for phase, value in served.seconds.items()}
        ),
        "loss_curve": dg.MetadataValue.md(
            markdown_image(loss_curve_plot(result.history, result.best_epoch), "loss curve")
        ),
    }


@dg.asset(
    partitions_def=cluster_partitions,
    group_name=GROUP,
    pool=TRAINING_POOL,  # the backtest runs the model on the device
    check_specs=[
        dg.AssetCheckSpec(
            "interval_coverage",
            asset="evaluation_report",
            description="the intervals' empirical coverage on the backtest is within "
            "evaluation.coverage_tolerance of forecast.confidence",
        )
    ],
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    cluster_model: ServedCluster,
    encoded_features: EncodedPanel,
    scalers: ScalerManager,
):  # MaterializeResult holding the EvaluationReport
    """The served model on the rolling-origin backtest that the gate ran: MSE, RMSE, MAE,
    MAPE, sMAPE, MASE, RMSSE, WRMSSE, R², correlation and bias next to seasonal naive on the
    same windows, per fold, per horizon step and per SKU; the intervals' coverage; the
    gate's decision; plots."""
    config = settings.load()
    key = context.partition_key
    report = evaluate_cluster(
        key,
        cluster_model.model,
        cluster_model.backtest,
        encoded_features,
        scalers,
        confidence=config.forecast.confidence,
        nonnegative=config.nonnegative,
        device=config.device,
        engine=config.forecast.engine,
        gate=cluster_model.gate,
        pool=cluster_model.pool,
    )
    plots = evaluation_plots(key, report, encoded_features, cluster_model.model)
    markdown = report.to_markdown()
    path = output_store.write_report(
        f"evaluation_{key}",
        markdown + "".join(f"\n{{{name}}}\n" for name in plots),
        plots,
    )
    # Per SKU and per fold, for planners who want to find the SKUs to watch.
    by_sku = output_store.write_table(
        f"reports/evaluation_{key}_by_sku", report.backtest.by_sku.reset_index()
    )
    output_store.write_table(f"reports/evaluation_{key}_by_fold", report.backtest.by_fold)
    tolerance = config.evaluation.coverage_tolerance
    coverage = report.served_coverage
    coverage_check = dg.AssetCheckResult(
        check_name="interval_coverage",
        passed=bool(abs(coverage - report.confidence) <= tolerance),
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"intervals of what serves cover {coverage:.1%} of the backtest actuals against a "
            f"nominal {report.confidence:.0%} (tolerance {tolerance:.0%})"
        ),
        metadata={"coverage": coverage, "nominal": report.confidence},
    )
    metadata = {
        **report_metadata(report, markdown, plots),
        "report_path": dg.MetadataValue.path(str(path)),
        "by_sku_path": dg.MetadataValue.path(str(by_sku["csv"])),
    }
    return dg.MaterializeResult(value=report, metadata=metadata, check_results=[coverage_check])


def evaluation_plots(
    key: str, report: EvaluationReport, encoded: EncodedPanel, served: ClusterModel
) -> dict[str, bytes]:
    """The evaluation report's PNGs: prediction quality, the last fold against what sold,
    error by step and by fold, and the served model's training history."""
    tested = report.backtest
    last_fold = report.predictions[report.predictions["fold"] == report.predictions["fold"].max()]
    plots = {
        "prediction_quality": prediction_quality_plot(
            report.predictions, f"{key}: backtest prediction quality"
        ),
        "forecast_vs_actual": forecast_vs_actual_plot(
            last_fold,
            _recent_history(encoded, 4 * encoded.horizon, encoded.split.test_origin),
            f"{key}: last backtest fold",
        ),
        "error_by_step": error_by_step_plot(tested.by_step, f"{key}: error by horizon step"),
        "error_by_fold": fold_metrics_plot(
            tested.by_fold[["fold", "mase", "mase_seasonal_naive"]].rename(
                columns={"mase": "model", "mase_seasonal_naive": "seasonal_naive"}
            ),
            f"{key}: MASE per backtest fold",
        ),
    }
    history = served.training.history
    if history:
        plots["training_history"] = loss_curve_plot(history, served.training.best_epoch)
    return plots


def report_metadata(
    report: EvaluationReport, markdown: str, plots: dict[str, bytes]
) -> dict[str, object]:
    """What the UI shows of a cluster's evaluation: headline metrics, the report, plots."""
    return {
        "model_type": report.model_type,
        "folds": len(report.backtest.origins),
        "mase": report.metrics["mase"],
        "mase_seasonal_naive": report.baseline["mase"],
        "rmsse": report.metrics["rmsse"],
        "rmsse_seasonal_naive": report.baseline["rmsse"],
        "wrmsse": report.metrics["wrmsse"],
        "smape": report.metrics["smape"],
        "smape_seasonal_naive": report.baseline["smape"],
        "bias": report.metrics["bias"],
        "beats_seasonal_naive": report.beats_seasonal_naive,
        "interval_coverage": report.coverage,
        "interval_width": report.interval_width,
        **(
            {"quantile_band_coverage": report.quantile_coverage}
            if report.quantile_coverage is not None
            else {}
        ),
        **(pool_metadata(report.pool) if report.pool else {}),
        "report": dg.MetadataValue.md(markdown),
        **{
            name: dg.MetadataValue.md(markdown_image(png, name.replace("_", " ")))
            for name, png in plots.items()
        },
    }


def pool_metadata(pool: PoolResult) -> dict[str, object]:
    """The pool's figures on its scoring fold and who serves how many SKUs."""
    metrics = pool.scoring_metrics()
    return {
        "pool_mase": metrics["mase"],
        "pool_rmsse": metrics["rmsse"],
        "pool_coverage": metrics["coverage"],
        "pool_combination": pool.served.describe(),
        "pool_mix": dg.MetadataValue.json(pool.served.mix()),
        "pool_candidates": dg.MetadataValue.md(
            pool.candidate_table().to_markdown(index=False, floatfmt=".3f")
        ),
    }


@dg.asset(
    partitions_def=cluster_partitions,
    group_name=GROUP,
    kinds={"pandas"},
    pool=TRAINING_POOL,  # the forecast runs the model on the device
    dagster_type=CLUSTER_FORECAST_FRAME.dagster_type,
    metadata=CLUSTER_FORECAST_FRAME.metadata,
)
def forecast_table(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    cluster_model: ServedCluster,
    encoded_features: EncodedPanel,
    scalers: ScalerManager,
    evaluation_report: EvaluationReport,
) -> pd.DataFrame:
    """The next horizon for every SKU of the cluster from the served model, in original
    units, with lower/upper bounds from the historical residuals at ``forecast.confidence``."""
    config = settings.load()
    served = cluster_model.model
    table = forecast_served(
        context.partition_key,
        cluster_model,
        pool_run(config),
        encoded_features,
        scalers,
        evaluation_report.intervals,
        device=config.device,
        engine=config.forecast.engine,
    )
    recent = _recent_history(
        encoded_features, 4 * encoded_features.horizon, encoded_features.split.n_periods
    )
    plot = forecast_report_plot(recent, table, f"{context.partition_key}: forecast")
    path = output_store.write_report(
        f"forecast_{context.partition_key}",
        f"### Forecast of {context.partition_key} ({served_by(cluster_model)})\n\n{{forecast}}\n",
        {"forecast": plot},
    )
    context.add_output_metadata(
        {
            "model_type": served.model_type,
            "served_by": served_by(cluster_model),
            "trained_at": served.trained_at,
            "forecast_plot": dg.MetadataValue.md(markdown_image(plot, "forecast")),
            "report_path": dg.MetadataValue.path(str(path)),
            "engine": engine_for(served, config.forecast.engine),
            "rows": len(table),
            "skus": int(table["sku"].nunique()),
            "first_date": str(table["date"].min().date()),
            "last_date": str(table["date"].max().date()),
            "preview": dg.MetadataValue.md(table.head(10).to_markdown(index=False)),
        }
    )
    return table


def served_by(served: ServedCluster) -> str:
    """Who forecasts the cluster, in words: the pool's mix of SKUs, or the one model."""
    if served.pool is None:
        return served.model.model_type
    return ", ".join(f"{name}: {n} SKUs" for name, n in served.pool.served.mix().items())


def encode_cluster(
    config: Settings, panel: SalesPanel, scalers: ScalerManager, window: int | None = None
) -> EncodedPanel:
    """The cluster's model-ready data with ``window`` past periods (None: the settings')."""
    encoder = CategoricalEncoder(
        config.data.categorical_columns,
        config.data.multilabel_columns,
        config.data.multilabel_separator,
    )
    return build_features(
        panel,
        scalers,
        encoder,
        window=window or config.timeseries.window,
        horizon=config.timeseries.horizon,
        split=split_of(config, panel),
        stride=config.timeseries.stride,
        min_history=config.timeseries.min_history or 1,
    )


def split_of(config: Settings, panel: SalesPanel) -> PeriodSplit:
    """Training, validation and backtest periods of ``panel`` under ``config``."""
    return period_split(
        panel,
        config.timeseries.horizon,
        config.validation_periods,
        config.evaluation.folds,
        config.backtest_step,
    )


def _recent_history(encoded: EncodedPanel, periods: int, stop: int) -> pd.DataFrame:
    """The ``periods`` of history before period ``stop``, as a long frame."""
    start = max(stop - periods, 0)
    dates = encoded.dates[start:stop]
    values = encoded.raw[:, start:stop]
    return pd.DataFrame(
        {
            "sku": encoded.skus.repeat(len(dates)),
            "date": list(dates) * encoded.n_skus,
            "quantity": values.ravel(),
        }
    )
