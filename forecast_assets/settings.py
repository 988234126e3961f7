"""Settings: one YAML file chosen by FORECAST_SETTINGS, single fields overridable by environment.

Precedence, highest first: environment variables (``FORECAST_`` prefix, ``__`` between nested
names, e.g. ``FORECAST_TIMESERIES__HORIZON=28``), then the YAML file, then the defaults below.
Without FORECAST_SETTINGS the packaged ``default_settings.yaml`` runs the embedded example data.
Relative paths in the settings are relative to the working directory (the project root when
started through the Makefile).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from forecast_assets.core.config import describe_errors
from forecast_assets.core.data.loader import ColumnSpec
from forecast_assets.core.errors import ConfigurationError
from forecast_assets.core.models.ensemble import ENSEMBLE
from forecast_assets.core.models.options import (
    AdvancedOptions,
    EnsembleOptions,
    LightweightOptions,
    MixerOptions,
    StandardOptions,
)
from forecast_assets.core.models.registry import available_model_types
from forecast_assets.core.pool.pool import PoolOptions
from forecast_assets.core.storage import ArtifactPath, UnknownStorageError, artifact_path, is_local
from forecast_assets.core.training.search_space import SearchSpace, default_search_space
from forecast_assets.core.training.trainer import TrainingOptions
from forecast_assets.core.training.tuning_config import TuningOptions

SETTINGS_ENV_VAR = "FORECAST_SETTINGS"
SectionT = TypeVar("SectionT", bound=BaseModel)
DEFAULT_SETTINGS_FILE = Path(__file__).parent / "default_settings.yaml"


class _Section(BaseModel):
    # Typos in a settings file must fail loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid")


class ExampleDataSettings(_Section):
    """Size of the embedded example data set used when ``data.path`` is empty."""

    n_skus: int = Field(300, ge=4, description="SKUs in the example data")
    periods: int = Field(900, ge=60, description="days of history")
    start: str = Field("2023-01-01", description="first day of the example history")


class DataSettings(ColumnSpec):
    """The loader's ColumnSpec (which columns hold what, the rules for questionable rows) and
    where the data comes from."""

    path: str | None = Field(
        None, description="file, folder or glob of CSV / Parquet / gzip CSV; empty = example data"
    )
    multilabel_separator: str = Field(
        "|", description="separates the labels in a cell of a multilabel column"
    )
    landing_dir: str = Field(
        "data/landing", description="where new sales files arrive (watched by new_sales_sensor)"
    )
    quarantine_dir: str | None = Field(
        None,
        description="where refused landing files go, each with a .reason.txt beside it; "
        "empty = <landing_dir>/quarantine",
    )
    example: ExampleDataSettings = ExampleDataSettings()

    def column_spec(self) -> ColumnSpec:
        """The loader's view of these settings: the ColumnSpec fields alone."""
        return ColumnSpec(**self.model_dump(include=set(ColumnSpec.model_fields)))

    @property
    def quarantine_path(self) -> Path:
        return Path(self.quarantine_dir or Path(self.landing_dir) / "quarantine")


class TimeseriesSettings(_Section):
    freq: str = Field("D", description="pandas offset alias: D, W-FRI, MS, ...")
    window: int = Field(56, ge=2, description="past periods the model sees")
    horizon: int = Field(14, ge=1, description="periods to forecast")
    min_history: int | None = Field(
        None,
        ge=1,
        description="periods of history a SKU needs before the neural models train on it; "
        "shorter SKUs are still forecast (by the pool). Empty: every SKU",
    )
    season_length: int | None = Field(
        None, ge=1, description="seasonal-naive season; empty = inferred from freq"
    )
    stride: int = Field(1, ge=1, description="step between training windows")

    @field_validator("freq")
    @classmethod
    def _known_frequency(cls, value: str) -> str:
        try:
            pd.tseries.frequencies.to_offset(value)
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a pandas offset alias") from exc
        return value

    @property
    def season(self) -> int:
        return self.season_length or infer_season_length(self.freq)


class ModelSettings(_Section):
    """Model family, its hyperparameters (one section per family) and per-cluster overrides."""

    type: str = Field(
        "lightweight",
        description="model family: standard | advanced | lightweight | mixer | ensemble",
    )
    onnx: bool = Field(
        True, description="export each cluster model to ONNX and forecast through onnxruntime"
    )
    per_cluster: dict[str, dict[str, Any]] = Field(
        {},
        description="overrides for single cluster partitions, e.g. "
        "{cluster_1: {type: advanced}}; same fields as this section",
    )
    # One section per registered family, each the family's own options class (a test checks
    # that every family has its section).
    standard: StandardOptions = StandardOptions()
    advanced: AdvancedOptions = AdvancedOptions()
    lightweight: LightweightOptions = LightweightOptions()
    mixer: MixerOptions = MixerOptions()
    ensemble: EnsembleOptions = EnsembleOptions()

    @field_validator("type")
    @classmethod
    def _registered_type(cls, value: str) -> str:
        if value not in available_model_types():
            raise ValueError(f"'{value}' is not one of {sorted(available_model_types())}")
        return value

    @model_validator(mode="after")
    def _valid_overrides(self) -> ModelSettings:
        for cluster, override in self.per_cluster.items():
            if "per_cluster" in override:
                raise ValueError(f"per_cluster.{cluster} cannot hold per_cluster itself")
            try:
                self.for_cluster(cluster)
            except ValidationError as exc:
                raise ValueError(f"per_cluster.{cluster}: {describe_errors(exc)}") from None
        return self

    def options(self) -> dict[str, Any]:
        """Hyperparameters of the chosen family; an ensemble's members take theirs from
        their own sections unless ``member_options`` says otherwise."""
        chosen = getattr(self, self.type).model_dump()
        if self.type == ENSEMBLE and not chosen.get("member_options"):
            chosen["member_options"] = {
                member: getattr(self, member).model_dump() for member in chosen["members"]
            }
        return chosen

    def for_cluster(self, cluster: str) -> ModelSettings:
        """These settings with the cluster's override applied (itself when there is none)."""
        override = self.per_cluster.get(cluster)
        if not override:
            return self
        merged = deep_merge(self.model_dump(exclude={"per_cluster"}), override)
        return type(self).model_validate(merged)


class TrainingSettings(TrainingOptions):
    """The trainer's options and what the serving step applies itself."""

    validation_periods: int | None = Field(
        None,
        ge=1,
        description="periods before the test horizon used for early stopping; empty = 2 x horizon",
    )
    refit: bool = Field(
        False,
        description="after the gate passes a new model, train it again on all the data "
        "(validation and backtest periods too) for the epochs early stopping chose, and serve "
        "that; accuracy and intervals stay measured on the model that never saw the backtest",
    )


class TuningSettings(TuningOptions):
    """Optuna search of each cluster's hyperparameters (``tuned_hyperparameters``)."""

    enabled: bool = Field(
        False, description="tune in every training run; tune_job tunes regardless"
    )
    # Not TuningConfig.storage: empty here means the Dagster instance's SQLite, not memory.
    storage: str | None = Field(
        None,
        description="SQLAlchemy URL of the Optuna study database; empty = SQLite in the "
        "Dagster instance's storage folder",
    )
    search_space: dict[str, dict[str, Any]] = Field(
        {},
        description="name -> {low, high[, log, step]} or {choices: [...]}; empty = the "
        "family's default space",
    )
    windows: list[int] = Field([], description="window lengths to try; empty = keep window")

    @field_validator("windows")
    @classmethod
    def _windows_at_least_two(cls, value: list[int]) -> list[int]:
        if any(window < 2 for window in value):
            raise ValueError(f"every window must be at least 2, got {value}")
        return value


class ClusteringSettings(_Section):
    k_min: int = Field(2, ge=1, description="fewest clusters tried")
    k_max: int = Field(8, ge=1, description="most clusters tried")
    min_cluster_size: int = Field(
        5, ge=1, description="k values giving smaller clusters are skipped"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ClusteringSettings:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) is larger than k_max ({self.k_max})")
        return self


class ScalingSettings(_Section):
    method: Literal["standard", "minmax", "maxabs"] = Field(
        "standard", description="per-SKU scaling fitted on the training periods"
    )


class ForecastSettings(_Section):
    confidence: float = Field(0.9, gt=0, lt=1, description="prediction interval coverage")
    engine: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto", description="auto: onnxruntime when the cluster model has an ONNX export"
    )


class EvaluationSettings(_Section):
    """The rolling-origin backtest every model is judged on, and the gate a new model passes."""

    folds: int = Field(3, ge=1, description="backtest origins; the last is the held-out horizon")
    step: int | None = Field(
        None, ge=1, description="periods between backtest origins; empty = half the horizon"
    )
    max_relative_mase: float = Field(
        1.0,
        gt=0,
        description="accuracy gate: a new model replaces the served one only when its backtest "
        "MASE divided by seasonal naive's is below this",
    )
    coverage_tolerance: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="interval check: empirical backtest coverage may differ this much from "
        "forecast.confidence",
    )


class GpuSettings(_Section):
    """Where GPU-tagged runs (training, tuning) go when Dagster runs them on Kubernetes."""

    gpus_per_run: int = Field(1, ge=0, description="nvidia.com/gpu limit of the run's pod")
    node_selector: dict[str, str] = Field(
        {}, description="e.g. {cloud.google.com/gke-accelerator: nvidia-l4}"
    )
    tolerations: list[dict[str, str]] = Field(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="Kubernetes tolerations of the run's pod (GPU nodes are usually tainted)",
    )


class AutomationSettings(_Section):
    """What runs on its own: the nightly retraining schedule and the sensors (README:
    "What runs when")."""

    enabled: bool = Field(
        True,
        description="the schedule and sensors run as soon as the daemon loads the code "
        "location; false = they start stopped (switch them on in the UI)",
    )
    retrain_cron: str = Field("0 2 * * *", description="nightly_retrain schedule (cron)")
    timezone: str = Field("UTC", description="time zone of retrain_cron, e.g. Europe/Berlin")
    landing_interval_seconds: int = Field(
        30, ge=1, description="how often new_sales_sensor looks into data.landing_dir"
    )
    settle_seconds: float = Field(
        60,
        ge=0,
        description="a landing file is ingested once two looks see it unchanged, or once it "
        "has not changed for this long",
    )
    max_files_per_run: int = Field(100, ge=1, description="landing files ingested by one run")
    chain_interval_seconds: int = Field(
        30, ge=1, description="how often the sensors that chain runs (refresh, publish) look"
    )
    forecast_max_age_hours: float = Field(
        26,
        gt=0,
        description="the forecasts asset fails its freshness policy when the published table "
        "is older",
    )
    failure_webhook_url: str | None = Field(
        None, description="failed runs are posted here as JSON ({text, job, partition, ...})"
    )

    @field_validator("retrain_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        field = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
        parts = value.split()
        if len(parts) != 5 or not all(re.fullmatch(field, part) for part in parts):
            raise ValueError(f"'{value}' is not a five-field cron expression like '0 2 * * *'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a known time zone") from None
        return value


class OutputSettings(_Section):
    dir: str = Field(
        ".forecast",
        description="where every artifact lands: the history, models, reports, forecasts.parquet "
        "/ .csv and the assets' stored values; a local folder or an object-store URL "
        "(s3://bucket/prefix, gs://bucket/prefix) with its fsspec package installed",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for an object-store output.dir, e.g. "
        "{endpoint_url: http://minio:9000} under client_kwargs; keep credentials in the "
        "environment (AWS_ACCESS_KEY_ID...), not here",
    )

    @field_validator("dir")
    @classmethod
    def _reachable_storage(cls, value: str) -> str:
        try:
            artifact_path(value)
        except UnknownStorageError as error:
            raise ValueError(str(error)) from None
        return value

    @property
    def location(self) -> ArtifactPath:
        """``dir`` as a path object: local folders resolved, URLs with their options."""
        path = artifact_path(self.dir, self.storage_options)
        return path.resolve() if is_local(path) else path


class Settings(BaseSettings):
    """All settings of a forecasting deployment (the field names are a public contract)."""

    model_config = SettingsConfigDict(
        env_prefix="FORECAST_", env_nested_delimiter="__", extra="forbid"
    )

    data: DataSettings = DataSettings()
    timeseries: TimeseriesSettings = TimeseriesSettings()
    model: ModelSettings = ModelSettings()
    training: TrainingSettings = TrainingSettings()
    tuning: TuningSettings = TuningSettings()
    clustering: ClusteringSettings = ClusteringSettings()
    scaling: ScalingSettings = ScalingSettings()
    forecast: ForecastSettings = ForecastSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    pool: PoolOptions = PoolOptions()
    gpu: GpuSettings = GpuSettings()
    automation: AutomationSettings = AutomationSettings()
    output: OutputSettings = OutputSettings()
    seed: int = Field(42, description="seeds clustering, sampling and model initialisation")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where models train and forecast; auto = CUDA when available"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="of the forecast_assets loggers"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML content arrives as init kwargs; environment variables must beat it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        # A history shorter than the backtest and validation periods asks for is not refused:
        # each cluster's split shrinks to what its history holds (``period_split``).
        if self.validation_periods < self.timeseries.horizon:
            # A validation window needs a whole horizon of targets inside the stretch.
            raise ValueError(
                f"training.validation_periods ({self.validation_periods}) must be at least "
                f"timeseries.horizon ({self.timeseries.horizon})"
            )
        # The model sections check their hyperparameters themselves: no model is built here.
        self._search_space_fits()
        return self

    def _search_space_fits(self) -> None:
        try:
            for model in [self.model, *map(self.model.for_cluster, self.model.per_cluster)]:
                search_space(self.tuning, model.type).resolved(model.type, model.options())
        except ConfigurationError as exc:
            raise ValueError(f"tuning.search_space: {exc}") from None

    @property
    def validation_periods(self) -> int:
        return self.training.validation_periods or 2 * self.timeseries.horizon

    @property
    def backtest_step(self) -> int:
        return self.evaluation.step or max(1, self.timeseries.horizon // 2)

    @property
    def nonnegative(self) -> bool:
        """Whether forecasts and bounds are floored at zero (demand cannot be negative)."""
        return self.data.negative_quantities != "keep"


def infer_season_length(freq: str) -> int:
    """Season length of the usual calendar cycle for a frequency (7 for daily, 52 for weekly...)."""
    name = pd.tseries.frequencies.to_offset(freq).name.split("-")[0].upper()
    seasons = {"D": 7, "B": 5, "W": 52, "ME": 12, "MS": 12, "M": 12, "QE": 4, "QS": 4, "Q": 4}
    seasons.update({"H": 24, "h": 24, "YE": 1, "YS": 1, "Y": 1})
    return seasons.get(name, 1)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from ``path``, else from $FORECAST_SETTINGS, else the packaged default.

    Raises ConfigurationError naming the file and every invalid field.
    """
    chosen = Path(path or os.environ.get(SETTINGS_ENV_VAR) or DEFAULT_SETTINGS_FILE)
    if not chosen.is_file():
        raise ConfigurationError(f"settings file {chosen} does not exist")
    try:
        content = yaml.safe_load(chosen.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"settings file {chosen} is not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise ConfigurationError(f"settings file {chosen} must hold a mapping at the top level")
    try:
        return Settings(**content)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings in {chosen}: {describe_errors(exc)}") from exc


def search_space(tuning: TuningSettings, model_type: str) -> SearchSpace:
    """The settings' search space, or the family's default (with the windows to try)."""
    if tuning.search_space:
        space = dict(tuning.search_space)
        if tuning.windows:
            space["window"] = {"choices": tuning.windows}
        return SearchSpace.from_dict(space)
    return default_search_space(model_type, tuning.windows)


def override_section(section: SectionT, overrides: dict[str, Any], where: str) -> SectionT:
    """``section`` with ``overrides`` (e.g. from a run's launch config) applied and checked
    like the settings file; ConfigurationError naming ``where`` and the field otherwise."""
    if not overrides:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **overrides})
    except ValidationError as exc:
        # The message already lists every problem; pydantic's own error would only repeat it.
        raise ConfigurationError(f"invalid {where}: {describe_errors(exc)}") from None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` applied, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
