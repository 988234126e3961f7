"""Training losses on scaled targets, one function each, and the weighted combination.

Every loss sees scaled values. Scale-free losses stay true to original units: sMAPE shifts
values by the SKU's scaled zero (``y - z`` is demand over the SKU's unit), and MASE divides by
the in-sample seasonal-naive error of the same window, which per-SKU scaling leaves unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from forecast_assets.core.models.base import point_of

POINT_LOSSES = ("mae", "mse", "huber", "smape", "mase")
LOSS_NAMES = (*POINT_LOSSES, "pinball")

# A window whose seasonal-naive error is below this (in scaled units; a flat or all-zero
# window) would weigh thousands of times more than the rest in MASE; it is floored here.
MASE_SCALE_FLOOR = 1e-2


def smape_loss(prediction: torch.Tensor, target: torch.Tensor, scaled_zero: torch.Tensor):
    """Symmetric MAPE in [0, 2]: 2 |y - f| / (|y| + |f|) in original units; 0 when both are 0.

    prediction, target [B, H]; scaled_zero [B] is what zero demand scales to per window.
    """
    zero = scaled_zero[:, None]
    denominator = (target - zero).abs() + (prediction - zero).abs()
    ratio = 2 * (target - prediction).abs() / denominator.clamp_min(1e-6)
    return torch.where(denominator > 1e-6, ratio, torch.zeros_like(ratio)).mean()


def mase_loss(
    prediction: torch.Tensor, target: torch.Tensor, past: torch.Tensor, season: int
) -> torch.Tensor:
    """Absolute error over each window's in-sample seasonal-naive MAE (season m, or 1 when the
    window is shorter than a season): prediction, target [B, H]; past [B, W]."""
    m = season if 1 <= season < past.shape[1] else 1
    scale = (past[:, m:] - past[:, :-m]).abs().mean(dim=1).clamp_min(MASE_SCALE_FLOOR)  # [B]
    return ((target - prediction).abs() / scale[:, None]).mean()


def pinball_loss(
    prediction: torch.Tensor, target: torch.Tensor, quantiles: tuple[float, ...] | list[float]
) -> torch.Tensor:
    """Quantile (pinball) loss averaged over quantiles, windows and steps.

    prediction [B, H, Q] (or [B, H] for the single quantile given); target [B, H]. For
    quantile q and error e = y - f: max(q e, (q - 1) e).
    """
    if prediction.dim() == 2:
        prediction = prediction.unsqueeze(-1)
    levels = torch.as_tensor(quantiles, dtype=prediction.dtype, device=prediction.device)
    error = target.unsqueeze(-1) - prediction  # [B, H, Q]
    return torch.maximum(levels * error, (levels - 1) * error).mean()


class ForecastLoss(nn.Module):
    """Weighted sum of named losses, e.g. ``{"mae": 1.0, "smape": 0.2}``.

    Point losses are applied to the point forecast (the median head of a quantile model).
    ``pinball`` is applied to every quantile head; a point model counts as its median. A model
    with quantile heads always gets the pinball term (weight 1 unless given), because that is
    what trains its non-median heads.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        quantiles: tuple[float, ...] = (),
        season: int = 1,
    ) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown}; known: {list(LOSS_NAMES)}")
        self.weights = {name: float(w) for name, w in weights.items() if w}
        if quantiles and "pinball" not in self.weights:
            self.weights["pinball"] = 1.0
        if not self.weights:
            raise ValueError("the loss needs at least one term with a non-zero weight")
        self.quantiles = tuple(quantiles)
        self.season = season
        self.huber = nn.HuberLoss()

    def forward(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        past: torch.Tensor,
        scaled_zero: torch.Tensor,
    ) -> torch.Tensor:
        point = point_of(output, self.quantiles)
        total = output.new_zeros(())
        for name, weight in self.weights.items():
            if name == "mae":
                term = (point - target).abs().mean()
            elif name == "mse":
                term = ((point - target) ** 2).mean()
            elif name == "huber":
                term = self.huber(point, target)
            elif name == "smape":
                term = smape_loss(point, target, scaled_zero)
            elif name == "mase":
                term = mase_loss(point, target, past, self.season)
            else:
                term = pinball_loss(output, target, self.quantiles or (0.5,))
            total = total + weight * term
        return total


def loss_weights(loss: str, combined_weights: Mapping[str, float] | None) -> dict[str, float]:
    """The terms of ``training.loss``: one loss at weight 1, or the weights of ``combined``."""
    if loss == "combined":
        return dict(combined_weights or {})
    return {loss: 1.0}
