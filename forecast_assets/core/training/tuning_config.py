"""How to tune: the options a user sets and the configuration of one study. Apart from the
study runner (``tuning``) so that the settings can use them without importing Optuna."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from forecast_assets.core.config import CoreConfig

SamplerName = Literal["tpe", "random", "cmaes"]
PrunerName = Literal["median", "hyperband", "none"]
# Every metric is a loss (the best validation loss of a trial's training run, early stopping
# puts that epoch's weights back), so there is only one direction.
Direction = Literal["minimize"]
METRICS = ("validation_loss",)


class TuningOptions(CoreConfig):
    """What a user chooses about tuning (the ``tuning`` section of the settings extends this
    class with when to tune, where studies live and what to search)."""

    section_name: ClassVar[str] = "tuning"

    n_trials: int = Field(20, ge=1, description="finished trials a study aims for in total")
    timeout_seconds: float | None = Field(None, gt=0, description="wall-time bound of one run")
    direction: Direction = Field(
        "minimize", description="of the metric, the best validation loss of a trial"
    )
    sampler: SamplerName = Field(
        "tpe", description="how Optuna picks the next trial's hyperparameters"
    )
    pruner: PrunerName = Field(
        "median", description="stops trials whose per-epoch validation loss lags"
    )
    epochs: int | None = Field(None, ge=1, description="per trial; empty = training.epochs")


class TuningConfig(TuningOptions):
    """One study. ``storage`` is an SQLAlchemy URL (``sqlite:////abs/path/optuna.db``,
    ``postgresql://user:password@host/db``) that keeps the study, so a stopped run resumes
    with its trials; ``None`` keeps it in memory. ``epochs`` per trial (``None``: the
    TrainingConfig's) is usually shorter than full training. ``timeout_seconds`` is checked
    between trials: a trial that has started runs to its end."""

    metric: str = Field("validation_loss", description=f"the trial value, one of {METRICS}")
    storage: str | None = Field(None, description="SQLAlchemy URL of the study; None = memory")
    study_name: str = Field("forecast", min_length=1, description="the study in the storage")
    seed: int = Field(42, description="of the sampler, offset by the study's trial count")
    # The median pruner compares with this many finished trials at least, and never prunes
    # in the first epochs (the learning-rate warm-up makes them noisy).
    pruner_startup_trials: int = Field(5, ge=0, description="trials before the pruner acts")
    pruner_warmup_epochs: int = Field(1, ge=0, description="epochs of a trial never pruned")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric '{value}'; available: {list(METRICS)}")
        return value
