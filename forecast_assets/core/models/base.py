"""The interface every forecasting model implements, so the graph works with any of them."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from forecast_assets.core.errors import TrainingError

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
        rebuilds the model; reading the signature means none can be forgotten. Keyword-only
        arguments are wiring handed in by the registry, not hyperparameters."""
        self.hyperparameters = {
            name: arguments[name] for name in hyperparameter_names(type(self).__init__)
        }

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def point_forecast(self, output: torch.Tensor) -> torch.Tensor:
        """[B, H] point forecast of a forward output: the median head of a quantile model."""
        return point_of(output, self.quantiles)


def hyperparameter_names(init) -> list[str]:
    """The constructor arguments of a model that are its hyperparameters: all but ``self``
    and the keyword-only ones."""
    return [
        name
        for name, parameter in inspect.signature(init).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.KEYWORD_ONLY
    ]


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """The forward arguments of a batch (see ``encoded.batch``), in order, on ``device``."""
    return [batch[name].to(device, non_blocking=True) for name in MODEL_INPUTS]


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when there is a card, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(requested)


def median_index(quantiles: tuple[float, ...] | list[float]) -> int:
    """Index of the quantile closest to 0.5 (the point forecast of a quantile model)."""
    return min(range(len(quantiles)), key=lambda i: abs(quantiles[i] - 0.5))


def point_of(output, quantiles: tuple[float, ...] | list[float]):
    """Point forecast [B, H] of a model output (torch or numpy): as is, or its median column."""
    return output[..., median_index(quantiles)] if quantiles else output
