"""Model types by name (``model.type`` in the settings)."""

from __future__ import annotations

from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.lightweight import TCNForecaster

MODEL_TYPES: dict[str, type[ForecastModel]] = {
    "lightweight": TCNForecaster,
}


def available_model_types() -> list[str]:
    return list(MODEL_TYPES)


def build_model(model_type: str, **hyperparameters: object) -> ForecastModel:
    """Instantiate a registered model with its hyperparameters."""
    try:
        model_class = MODEL_TYPES[model_type]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown model type '{model_type}'; available: {available_model_types()}"
        ) from None
    return model_class(**hyperparameters)
