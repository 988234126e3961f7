"""Per-cluster assets: one partition per cluster, from scalers to the cluster's forecast."""

import dataclasses

import dagster as dg
import pandas as pd
from pydantic import Field

from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import DataValidationError
from forecast_assets.core.evaluation import EvaluationReport, evaluate_cluster
from forecast_assets.core.inference.forecast import forecast_cluster
from forecast_assets.core.inference.predictor import engine_for
from forecast_assets.core.inference.serving import ServingFiles, export_for_serving
from forecast_assets.core.plots import forecast_vs_actual_plot, loss_curve_plot, markdown_image
from forecast_assets.core.training.cluster_model import (
    ClusterModel,
    checkpoint_path,
    remove_checkpoints,
    train_cluster_model,
)
from forecast_assets.core.training.trainer import EpochRecord, TrainerCallback, TrainingConfig
from forecast_assets.core.training.tuning import TuningResult
from forecast_assets.jobs import TRAINING_POOL
from forecast_assets.partitions import cluster_partitions
from forecast_assets.resources import ForecastSettingsResource, OutputStore
from forecast_assets.settings import Settings, TrainingSettings, override_section

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
    split = period_split(panel, config.timeseries.horizon, config.validation_periods)
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
)
def cluster_model(
    context: dg.AssetExecutionContext,
    config: TrainingRunConfig,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    encoded_features: EncodedPanel,
    tuned_hyperparameters: TuningResult | None,
) -> ClusterModel:
    """The cluster's forecasting model (``model.type``, or the cluster's override in
    ``model.per_cluster``) with the tuned hyperparameters when there are any, trained with
    early stopping on the validation periods. Launch-time run config beats both. Runs in
    the training pool, so clusters queue for the device instead of sharing it."""
    key = context.partition_key
    loaded = settings.load()
    model_settings = loaded.model.for_cluster(key)
    if config.model_type:
        model_settings = override_section(
            model_settings, {"type": config.model_type}, "run config model_type"
        )
    launch = config.training_overrides()
    override_section(loaded.training, launch, "run config of cluster_model")  # checks them
    model_options = {**model_settings.options(), "season_length": loaded.timeseries.season}
    training = training_config(loaded, loaded.training)
    tuned = tuned_hyperparameters
    if tuned is not None and tuned.model_type == model_settings.type:
        model_options = tuned.model_options(model_options)
        training = tuned.training_config(training)
        context.log.info(f"using tuned hyperparameters {tuned.best_params}")
    training = dataclasses.replace(training, **launch)  # settings < tuned < launch
    checkpoint = checkpoint_path(
        output_store.checkpoint_dir,
        key,
        encoded_features,
        model_settings.type,
        model_options,
        training,
    )
    if not config.resume:
        remove_checkpoints(output_store.checkpoint_dir, key)
    model = train_cluster_model(
        encoded_features,
        model_settings.type,
        model_options,
        training,
        [RunLog(context.log)],
        checkpoint,
    )
    serving = ServingFiles()
    if model_settings.onnx:
        serving = export_for_serving(model, output_store.model_dir, context.partition_key)
        for problem in serving.problems:
            context.log.warning(problem)
    result = model.training
    context.add_output_metadata(
        {
            "model_type": model.model_type,
            "quantiles": dg.MetadataValue.json(list(model.quantiles)),
            "onnx": dg.MetadataValue.path(str(serving.onnx)) if serving.onnx else "none",
            "torchscript": (
                dg.MetadataValue.path(str(serving.torchscript)) if serving.torchscript else "none"
            ),
            "parameters": model.parameter_count,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "best_validation_loss": result.best_validation_loss,
            "training_seconds": round(result.seconds, 2),
            "resumed_from_epoch": result.resumed_from_epoch,
            "learning_rate": training.learning_rate,
            "device": result.device,
            "trained_at": model.trained_at,
            "loss_curve": dg.MetadataValue.md(
                markdown_image(loss_curve_plot(result.history, result.best_epoch), "loss curve")
            ),
        }
    )
    # Only now that the model is about to be stored may its checkpoint go.
    remove_checkpoints(output_store.checkpoint_dir, key)
    return model


@dg.asset(partitions_def=cluster_partitions, group_name=GROUP)
def evaluation_report(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    output_store: OutputStore,
    cluster_model: ClusterModel,
    encoded_features: EncodedPanel,
    scalers: ScalerManager,
) -> EvaluationReport:
    """Accuracy on the held-out last horizon (MSE, RMSE, MAE, MAPE, sMAPE, MASE, R²,
    correlation), each next to seasonal naive on the same windows, and interval coverage."""
    config = settings.load()
    report = evaluate_cluster(
        context.partition_key,
        cluster_model,
        encoded_features,
        scalers,
        season=config.timeseries.season,
        confidence=config.forecast.confidence,
        nonnegative=config.nonnegative,
        device=config.device,
        engine=config.forecast.engine,
    )
    history = _recent_history(encoded_features, periods=4 * encoded_features.horizon)
    plot = forecast_vs_actual_plot(
        report.predictions, history, f"{report.cluster}: held-out horizon"
    )
    path = output_store.write_report(
        f"evaluation_{report.cluster}",
        report.to_markdown() + "\n{forecast_vs_actual}\n",
        {"forecast_vs_actual": plot},
    )
    context.add_output_metadata(
        {
            "mase": report.metrics["mase"],
            "mase_seasonal_naive": report.baseline["mase"],
            "smape": report.metrics["smape"],
            "smape_seasonal_naive": report.baseline["smape"],
            "beats_seasonal_naive": report.beats_seasonal_naive,
            "interval_coverage": report.coverage,
            **(
                {"quantile_band_coverage": report.quantile_coverage}
                if report.quantile_coverage is not None
                else {}
            ),
            "report": dg.MetadataValue.md(report.to_markdown()),
            "forecast_vs_actual": dg.MetadataValue.md(markdown_image(plot, "forecast vs actual")),
            "report_path": dg.MetadataValue.path(str(path)),
        }
    )
    return report


@dg.asset(partitions_def=cluster_partitions, group_name=GROUP, kinds={"pandas"})
def forecast_table(
    context: dg.AssetExecutionContext,
    settings: ForecastSettingsResource,
    cluster_model: ClusterModel,
    encoded_features: EncodedPanel,
    scalers: ScalerManager,
    evaluation_report: EvaluationReport,
) -> pd.DataFrame:
    """The next horizon for every SKU of the cluster, in original units, with lower/upper
    bounds from the historical residuals at ``forecast.confidence``."""
    config = settings.load()
    table = forecast_cluster(
        context.partition_key,
        cluster_model,
        encoded_features,
        scalers,
        evaluation_report.intervals,
        nonnegative=config.nonnegative,
        device=config.device,
        engine=config.forecast.engine,
    )
    context.add_output_metadata(
        {
            "engine": engine_for(cluster_model, config.forecast.engine),
            "rows": len(table),
            "skus": int(table["sku"].nunique()),
            "first_date": str(table["date"].min().date()),
            "last_date": str(table["date"].max().date()),
            "preview": dg.MetadataValue.md(table.head(10).to_markdown(index=False)),
        }
    )
    return table


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
        split=period_split(panel, config.timeseries.horizon, config.validation_periods),
        stride=config.timeseries.stride,
    )


def training_config(config: Settings, training: TrainingSettings) -> TrainingConfig:
    """The trainer's configuration: every training setting maps to the field of the same
    name (the validation split is already applied in the encoded features)."""
    return TrainingConfig(
        **training.model_dump(exclude={"validation_periods"}),
        season_length=config.timeseries.season,
        seed=config.seed,
        device=config.device,
    )


def _recent_history(encoded: EncodedPanel, periods: int) -> pd.DataFrame:
    start = max(encoded.split.test_origin - periods, 0)
    dates = encoded.dates[start : encoded.split.test_origin]
    values = encoded.raw[:, start : encoded.split.test_origin]
    return pd.DataFrame(
        {
            "sku": encoded.skus.repeat(len(dates)),
            "date": list(dates) * encoded.n_skus,
            "quantity": values.ravel(),
        }
    )
