"""The core serving step's inputs read from the settings: what to train for a cluster and
how the gate judges it. One place, so that the assets and the benchmarks agree."""

from __future__ import annotations

from forecast_assets.core.pool.pool import PoolRun
from forecast_assets.core.training.serve import GateConfig, ModelSpec
from forecast_assets.core.training.trainer import TrainingConfig
from forecast_assets.settings import Settings, override_section

# Training settings the serving step applies itself (the split is already in the encoded
# features, the refit is a step of its own); the rest are the TrainingOptions that both
# TrainingSettings and TrainingConfig extend, so they map one to one.
SERVING_TRAINING_SETTINGS = {"validation_periods", "refit"}


def training_config(settings: Settings) -> TrainingConfig:
    """The trainer's configuration: every training setting maps to the field of the same
    name."""
    return TrainingConfig(
        **settings.training.model_dump(exclude=SERVING_TRAINING_SETTINGS),
        season_length=settings.timeseries.season,
        seed=settings.seed,
        device=settings.device,
    )


def model_spec(settings: Settings, cluster: str, model_type: str | None = None) -> ModelSpec:
    """What the settings train for ``cluster``: ``model.type`` (or the cluster's override in
    ``model.per_cluster``, or ``model_type`` given at launch) with its section's
    hyperparameters."""
    model = settings.model.for_cluster(cluster)
    if model_type:
        model = override_section(model, {"type": model_type}, "run config model_type")
    return ModelSpec(
        model_type=model.type,
        options={**model.options(), "season_length": settings.timeseries.season},
        training=training_config(settings),
        refit=settings.training.refit,
        export_onnx=model.onnx,
    )


def gate_config(settings: Settings) -> GateConfig:
    return GateConfig(
        season=settings.timeseries.season,
        threshold=settings.evaluation.max_relative_mase,
        nonnegative=settings.nonnegative,
        device=settings.device,
        engine=settings.forecast.engine,
    )


def pool_run(settings: Settings) -> PoolRun:
    return PoolRun(
        options=settings.pool,
        season=settings.timeseries.season,
        confidence=settings.forecast.confidence,
        folds=settings.evaluation.folds,
        step=settings.backtest_step,
        seed=settings.seed,
        threads=settings.training.threads or 1,
        nonnegative=settings.nonnegative,
    )
