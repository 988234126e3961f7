"""The interface every forecasting model implements, so the graph works with any of them."""

from __future__ import annotations

import torch
from torch import nn


class ForecastModel(nn.Module):
    """Base of all models: one forward signature, hyperparameters kept for re-building.

    ``forward(past, past_time, future_time, sku, static)``:
        past         [batch, window]            scaled demand
        past_time    [batch, window, n_time]    calendar features of the past periods
        future_time  [batch, horizon, n_time]   calendar features of the forecast periods
        sku          [batch]                    SKU index within the cluster (int64)
        static       [batch, n_static]          encoded categorical attributes
    returns          [batch, horizon]           scaled point forecast
    """

    def __init__(self) -> None:
        super().__init__()
        self.hyperparameters: dict[str, object] = {}

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        raise NotImplementedError

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
