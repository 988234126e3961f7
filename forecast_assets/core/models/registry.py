"""Model types by name (``model.type`` in the settings) and their hyperparameters."""

from __future__ import annotations

import inspect
import typing

from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.models.advanced import AdvancedForecaster
from forecast_assets.core.models.base import ForecastModel, hyperparameter_names
from forecast_assets.core.models.ensemble import ENSEMBLE, EnsembleForecaster
from forecast_assets.core.models.lightweight import LightweightForecaster
from forecast_assets.core.models.mixer import MixerForecaster
from forecast_assets.core.models.seasonal_naive import SeasonalNaiveForecaster
from forecast_assets.core.models.standard import StandardForecaster

MODEL_TYPES: dict[str, type[ForecastModel]] = {
    "standard": StandardForecaster,
    "advanced": AdvancedForecaster,
    "lightweight": LightweightForecaster,
    "mixer": MixerForecaster,
    ENSEMBLE: EnsembleForecaster,
}

# Served when no trained model passes the accuracy gate; rebuilt like a model, never trained.
SEASONAL_NAIVE = "seasonal_naive"
FALLBACK_TYPES: dict[str, type[ForecastModel]] = {SEASONAL_NAIVE: SeasonalNaiveForecaster}

# Constructor arguments that come from the data, not from the settings.
SIZE_ARGUMENTS = ("n_skus", "n_static", "n_time_features", "window", "horizon", "season_length")


def available_model_types() -> list[str]:
    return list(MODEL_TYPES)


def model_class(model_type: str) -> type[ForecastModel]:
    try:
        return MODEL_TYPES[model_type]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model type '{model_type}'; available: {available_model_types()}"
        ) from None


def build_model(model_type: str, **hyperparameters: object) -> ForecastModel:
    """Instantiate a registered model (or the seasonal naive fallback) with its
    hyperparameters."""
    if model_type in FALLBACK_TYPES:
        return FALLBACK_TYPES[model_type](**hyperparameters)
    if model_type == ENSEMBLE:
        return EnsembleForecaster(**hyperparameters, build_member=_ensemble_member)
    return model_class(model_type)(**hyperparameters)


def _ensemble_member(name: str, **hyperparameters: object) -> ForecastModel:
    if name == ENSEMBLE or name not in MODEL_TYPES:
        trainable = [t for t in MODEL_TYPES if t != ENSEMBLE]
        raise ValueError(f"ensemble member '{name}' is not a trainable model family: {trainable}")
    return build_model(name, **hyperparameters)


def tunable_hyperparameters(model_type: str) -> dict[str, tuple[object, object]]:
    """Name -> (type, default) of every constructor argument that settings may set.

    Read from the constructor's signature, so a model's defaults live in one place and the
    settings section of each family cannot drift from the model.
    """
    init = model_class(model_type).__init__
    hints = typing.get_type_hints(init)
    parameters = inspect.signature(init).parameters
    return {
        name: (hints[name], parameters[name].default)
        for name in hyperparameter_names(init)
        if name not in SIZE_ARGUMENTS
    }
