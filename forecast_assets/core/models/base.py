"""The interface every forecasting model implements, so the graph works with any of them."""

from __future__ import annotations

import inspect

import torch
from torch import nn

MODEL_INPUTS = ("past", "past_time", "future_time", "sku", "static")


class ForecastModel(nn.Module):
    """Base of all models: one forward signature, hyperparameters kept for re-building.

    ``forward(past, past_time, future_time, sku, static)``:
        past         [batch, window]            scaled demand
        past_time    [batch, window, n_time]    calendar features of the past periods
        future_time  [batch, horizon, n_time]   calendar features of the forecast periods
        sku          [batch]                    SKU index within the cluster (int64)
        static       [batch, n_static]          encoded categorical attributes
    returns          [batch, horizon]           scaled point forecast, or
                     [batch, horizon, n_q]      one output per quantile when ``quantiles``
                                                is not empty (a model with quantile heads)
    """

    def __init__(self) -> None:
        super().__init__()
        self.hyperparameters: dict[str, object] = {}
        self.quantiles: tuple[float, ...] = ()

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        raise NotImplementedError

    def keep_hyperparameters(self, arguments: dict[str, object]) -> None:
        """Keep every constructor argument (pass ``locals()``) so that ``type(self)(**h)``
        rebuilds the model; reading the signature means none can be forgotten."""
        names = inspect.signature(type(self).__init__).parameters
        self.hyperparameters = {name: arguments[name] for name in names if name != "self"}

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def point_forecast(self, output: torch.Tensor) -> torch.Tensor:
        """[B, H] point forecast of a forward output: the median head of a quantile model."""
        return point_of(output, self.quantiles)


def median_index(quantiles: tuple[float, ...] | list[float]) -> int:
    """Index of the quantile closest to 0.5 (the point forecast of a quantile model)."""
    return min(range(len(quantiles)), key=lambda i: abs(quantiles[i] - 0.5))


def point_of(output, quantiles: tuple[float, ...] | list[float]):
    """Point forecast [B, H] of a model output (torch or numpy): as is, or its median column."""
    return output[..., median_index(quantiles)] if quantiles else output
