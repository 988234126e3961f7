"""An ensemble across architectures: the mean point forecast of several model families."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from forecast_assets.core.models.base import ForecastModel, point_of

ENSEMBLE = "ensemble"

# Builds one member family sized like the ensemble: (family, **hyperparameters) -> model. The
# registry hands in its own builder, so this module need not know the other families.
MemberBuilder = Callable[..., ForecastModel]


class EnsembleForecaster(ForecastModel):
    """Averages the point forecasts of ``members`` (family names), each built with its
    ``member_options`` and trained on its own (see ``train_cluster_model``). Families err in
    different ways, a convolution on local shape, a mixer on patches, attention on long
    context, so part of their errors cancel in the mean. Quantile members contribute their
    median head; the ensemble itself is a point model with residual intervals."""

    def __init__(
        self,
        n_skus: int,
        n_static: int,
        n_time_features: int,
        window: int,
        horizon: int,
        season_length: int = 1,
        members: tuple[str, ...] = ("lightweight", "mixer"),
        member_options: dict[str, dict[str, Any]] | None = None,
        *,
        build_member: MemberBuilder,
    ) -> None:
        super().__init__()
        members = tuple(members)
        if len(members) < 2 or len(set(members)) != len(members):
            raise ValueError(f"an ensemble needs two or more different families, got {members}")
        self.keep_hyperparameters(locals())
        self.hyperparameters["members"] = members
        sizes = dict(
            n_skus=n_skus,
            n_static=n_static,
            n_time_features=n_time_features,
            window=window,
            horizon=horizon,
            season_length=season_length,
        )
        options = member_options or {}
        self.members = nn.ModuleDict(
            {name: build_member(name, **sizes, **options.get(name, {})) for name in members}
        )

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        forecasts = [
            point_of(member(past, past_time, future_time, sku, static), member.quantiles)
            for member in self.members.values()
        ]
        return torch.stack(forecasts).mean(dim=0)
