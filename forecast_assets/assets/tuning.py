"""Per-cluster hyperparameter tuning with Optuna, feeding the cluster's features and model."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from forecast_assets.assets.per_cluster import GROUP, cluster_panel, encode_cluster
from forecast_assets.concurrency import TRAINING_POOL
from forecast_assets.core.clustering import ClusterResult
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.plots import markdown_image, optimization_history_plot
from forecast_assets.core.training.tuning import (
    TuningConfig,
    TuningResult,
    stored_tuning,
    tune_cluster,
)
from forecast_assets.core.training.tuning_config import TuningOptions
from forecast_assets.partitions import cluster_partitions
from forecast_assets.resources import ForecastSettingsResource
from forecast_assets.settings import Settings, search_space
from forecast_assets.specs import training_config


class TuningRunConfig(dg.Config):
    """Launch-time choices of a tuning run (tune_job sets ``tune``)."""

    tune: bool = Field(
        default=False,
        description="run the study's remaining trials even when tuning.enabled is off",
    )
    n_trials: int | None = Field(default=None, description="overrides tuning.n_trials")


@dg.asset(
    partitions_def=cluster_partitions,
    group_name=GROUP,
    kinds={"optuna"},
    pool=TRAINING_POOL,
)
def tuned_hyperparameters(
    context: dg.AssetExecutionContext,
    config: TuningRunConfig,
    settings: ForecastSettingsResource,
    resampled_series: SalesPanel,
    clusters: ClusterResult,
    scalers: ScalerManager,
) -> TuningResult | None:
    """The best hyperparameters an Optuna study found for the cluster's model family, or
    None (the settings' values) when nothing was tuned yet.

    With tuning on (``tuning.enabled``, or tune_job) the study runs the trials it still
    lacks; it persists in a database, so a stopped run resumes with the trials it had and a
    study that has all its trials costs nothing. With tuning off, the study's best so far is
    read, never extended.
    """
    loaded = settings.load()
    key = context.partition_key
    model_settings = loaded.model.for_cluster(key)
    tuning = tuning_config(loaded, key, model_settings.type, context.instance, config.n_trials)
    if not (loaded.tuning.enabled or config.tune):
        result = stored_tuning(tuning, model_settings.type)
        context.add_output_metadata(
            {
                "tuning": "off; " + ("using the stored study" if result else "nothing tuned"),
                "study": tuning.study_name,
                **(_result_metadata(result) if result else {}),
            }
        )
        return result

    panel = cluster_panel(context, resampled_series, clusters)

    def log_trial(number: int, value: float | None, params: dict, state: str) -> None:
        shown = "-" if value is None else f"{value:.5g}"
        context.log.info(f"trial {number} {state}: validation loss {shown} with {params}")

    result = tune_cluster(
        lambda window: encode_cluster(loaded, panel, scalers, window),
        model_settings.type,
        {**model_settings.options(), "season_length": loaded.timeseries.season},
        training_config(loaded),
        tuning,
        search_space(loaded.tuning, model_settings.type),
        on_trial_end=log_trial,
    )
    context.add_output_metadata({"study": tuning.study_name, **_result_metadata(result)})
    return result


def tuning_config(
    settings: Settings,
    cluster: str,
    model_type: str,
    instance: dg.DagsterInstance,
    n_trials: int | None = None,
) -> TuningConfig:
    """One study per cluster and model family, in the settings' database or else in SQLite
    next to the Dagster instance's storage."""
    tuning = settings.tuning
    storage = tuning.storage or (
        f"sqlite:///{Path(instance.storage_directory()).resolve() / 'optuna.db'}"
    )
    # The user's options as they are (TuningSettings extends TuningOptions), the study's
    # wiring beside them.
    options = tuning.model_dump(include=set(TuningOptions.model_fields))
    if n_trials:
        options["n_trials"] = n_trials
    return TuningConfig(
        **options, storage=storage, study_name=f"{cluster}-{model_type}", seed=settings.seed
    )


def _result_metadata(result: TuningResult) -> dict[str, object]:
    return {
        "best_value": result.best_value,
        "best_params": dg.MetadataValue.json(result.best_params),
        "trials": result.n_trials,
        "trials_pruned": result.n_pruned,
        "trials_failed": result.n_failed,
        "trials_this_run": result.n_new,
        "tuning_seconds": round(result.seconds, 1),
        "storage": str(result.storage),
        "optimization_history": dg.MetadataValue.md(
            markdown_image(tuning_plot(result), "optimization history")
        ),
    }


def tuning_plot(result: TuningResult) -> bytes:
    title = f"Tuning '{result.study_name}': best {result.best_value:.4g}"
    return optimization_history_plot(result.history, title, result.direction)
