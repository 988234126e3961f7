"""Seasonal naive as a model: the forecast served when no trained model beats it."""

from __future__ import annotations

import torch

from forecast_assets.core.models.base import ForecastModel


class SeasonalNaiveForecaster(ForecastModel):
    """Repeats the last season of the window, y[o + h] = y[o - m + (h mod m)], or the last
    value when the window is shorter than a season. No parameters and nothing to train;
    being a ForecastModel, it is predicted, evaluated and exported like any other."""

    def __init__(
        self,
        n_skus: int,
        n_static: int,
        n_time_features: int,
        window: int,
        horizon: int,
        season_length: int = 1,
    ) -> None:
        super().__init__()
        self.keep_hyperparameters(locals())
        steps = torch.arange(horizon)
        if 1 <= season_length <= window:
            positions = window - season_length + steps % season_length
        else:
            positions = torch.full((horizon,), window - 1)
        self.register_buffer("positions", positions, persistent=False)

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        return past[:, self.positions]
