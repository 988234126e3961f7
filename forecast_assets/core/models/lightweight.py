"""The lightweight model: a FiLM-conditioned temporal convolutional network."""

from __future__ import annotations

import torch
from torch import nn

from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.components import (
    SeasonalNaiveSkip,
    StaticContext,
    TemporalConvNet,
    zero_init,
)


class LightweightForecaster(ForecastModel):
    """Temporal convolutional network (Bai, Kolter & Koltun, "An Empirical Evaluation of
    Generic Convolutional and Recurrent Networks for Sequence Modeling", 2018) whose blocks
    are modulated by FiLM (Perez et al., 2018) from a static context made of the SKU
    embedding and the categorical attributes.

    The past demand and its calendar features go through the causal TCN; its last state,
    the static context and each future period's calendar features feed a small MLP whose
    output corrects a linear autoregressive skip path. That path starts as the seasonal
    naive forecast (repeat the last ``season_length`` periods) and the MLP's last layer
    starts at zero, so an untrained model is exactly seasonal naive and training only has
    to learn what improves on it. Small enough for CPU serving (under 100K parameters at
    the defaults, far under 1M).
    """

    def __init__(
        self,
        n_skus: int,
        n_static: int,
        n_time_features: int,
        window: int,
        horizon: int,
        channels: int = 32,
        levels: int = 4,
        kernel_size: int = 3,
        dropout: float = 0.1,
        embedding_dim: int = 8,
        skip_seasons: int = 1,
        season_length: int = 1,
    ) -> None:
        super().__init__()
        self.keep_hyperparameters(locals())
        self.horizon = horizon
        self.context = StaticContext(n_skus, n_static, embedding_dim, context_dim=channels)
        self.input_projection = nn.Conv1d(1 + n_time_features, channels, kernel_size=1)
        self.tcn = TemporalConvNet(channels, levels, kernel_size, dropout, context_dim=channels)
        self.decoder = nn.Sequential(
            nn.Linear(2 * channels + n_time_features, channels),
            nn.GELU(),
            nn.Dropout(dropout),
            zero_init(nn.Linear(channels, 1)),
        )
        self.autoregressive = SeasonalNaiveSkip(window, horizon, season_length, skip_seasons)

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        context = self.context(sku, static)  # [B, C]
        x = torch.cat([past.unsqueeze(-1), past_time], dim=-1).transpose(1, 2)  # [B, 1+F, W]
        h = self.tcn(self.input_projection(x), context)[:, :, -1]  # [B, C] last state
        steps = future_time.shape[1]
        state = torch.cat([h, context], dim=-1).unsqueeze(1).expand(-1, steps, -1)  # [B, H, 2C]
        correction = self.decoder(torch.cat([state, future_time], dim=-1)).squeeze(-1)  # [B, H]
        return self.autoregressive(past) + correction
