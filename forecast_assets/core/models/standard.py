"""The standard model: a transformer encoder-decoder conditioned on the static context."""

from __future__ import annotations

import torch
from torch import nn

from forecast_assets.core.models.attention import (
    DecoderLayer,
    EncoderLayer,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.components import (
    FiLM,
    SeasonalNaiveSkip,
    StaticContext,
    zero_init,
)

POSITIONAL_ENCODINGS = ("sinusoidal", "rope")


class StandardForecaster(ForecastModel):
    """Transformer encoder-decoder (Vaswani et al., "Attention Is All You Need", 2017) for
    direct multi-horizon forecasting.

    The encoder reads the past demand with its calendar features, projected to ``d_model``
    and conditioned on a static context (SKU embedding plus categorical attributes) by FiLM
    (Perez et al., 2018), or by adding the context when ``film`` is off. The decoder has one
    query per forecast period, built from that period's calendar features plus the context;
    the queries attend causally to each other and across to the encoder output, and all
    periods are forecast in one pass (no autoregressive loop, so it exports as one graph).

    Positions run on one timeline, past periods 0 .. window - 1 and forecast periods
    window .. window + horizon - 1, either as sinusoidal encodings added to the inputs or as
    rotary embeddings (RoPE, Su et al., 2021) on every attention's queries and keys.

    As in the lightweight TCN, the head's output corrects a linear skip path that starts as
    the seasonal naive forecast, and the head's last layer starts at zero, so an untrained
    model is exactly seasonal naive. About 140K parameters at the defaults with 300 SKUs,
    small enough for CPU training and serving.
    """

    def __init__(
        self,
        n_skus: int,
        n_static: int,
        n_time_features: int,
        window: int,
        horizon: int,
        d_model: int = 64,
        n_heads: int = 4,
        encoder_layers: int = 2,
        decoder_layers: int = 1,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        embedding_dim: int = 16,
        positional: str = "sinusoidal",
        pre_norm: bool = True,
        film: bool = True,
        stochastic_depth: float = 0.0,
        improved_head: bool = True,
        skip_seasons: int = 1,
        season_length: int = 1,
    ) -> None:
        super().__init__()
        if positional not in POSITIONAL_ENCODINGS:
            raise ValueError(
                f"unknown positional encoding '{positional}'; available: {POSITIONAL_ENCODINGS}"
            )
        self.keep_hyperparameters(locals())
        self.window = window
        self.context = StaticContext(n_skus, n_static, embedding_dim, context_dim=d_model)
        self.past_projection = nn.Linear(1 + n_time_features, d_model)
        self.film = FiLM(d_model, d_model) if film else None
        self.query_projection = nn.Linear(n_time_features, d_model)
        self.input_dropout = nn.Dropout(dropout)

        length = window + horizon
        rotary = RotaryEmbedding(d_model // n_heads, length) if positional == "rope" else None
        self.positional = (
            SinusoidalPositionalEncoding(d_model, length) if positional == "sinusoidal" else None
        )
        self.encoder = nn.ModuleList(
            EncoderLayer(
                d_model, n_heads, dim_feedforward, dropout, stochastic_depth, pre_norm, rotary
            )
            for _ in range(encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(
                d_model,
                n_heads,
                dim_feedforward,
                dropout,
                max_length=horizon,
                stochastic_depth=stochastic_depth,
                pre_norm=pre_norm,
                rotary=rotary,
            )
            for _ in range(decoder_layers)
        )
        # Pre-norm layers leave their residual stream unnormalised; normalise it once at the end.
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        if improved_head:
            self.head = nn.Sequential(
                nn.Linear(d_model, d_model),
                nn.GELU(),
                nn.Dropout(dropout),
                zero_init(nn.Linear(d_model, 1)),
            )
        else:
            self.head = zero_init(nn.Linear(d_model, 1))
        self.autoregressive = SeasonalNaiveSkip(window, horizon, season_length, skip_seasons)

    def encode(self, past: torch.Tensor, past_time: torch.Tensor, context: torch.Tensor):
        # past [B, W], past_time [B, W, F], context [B, D] -> memory [B, W, D]
        x = self.past_projection(torch.cat([past.unsqueeze(-1), past_time], dim=-1))  # [B, W, D]
        if self.film is not None:
            x = self.film(x.transpose(1, 2), context).transpose(1, 2)
        else:
            x = x + context.unsqueeze(1)
        if self.positional is not None:
            x = self.positional(x)
        x = self.input_dropout(x)
        for layer in self.encoder:
            x = layer(x)
        return self.encoder_norm(x)

    def decode(self, future_time: torch.Tensor, memory: torch.Tensor, context: torch.Tensor):
        # future_time [B, H, F], memory [B, W, D], context [B, D] -> [B, H, D]
        x = self.query_projection(future_time) + context.unsqueeze(1)  # [B, H, D]
        if self.positional is not None:
            x = self.positional(x, offset=self.window)
        x = self.input_dropout(x)
        for layer in self.decoder:
            x = layer(x, memory, offset=self.window)
        return self.decoder_norm(x)

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        context = self.context(sku, static)  # [B, D]
        memory = self.encode(past, past_time, context)  # [B, W, D]
        steps = self.decode(future_time, memory, context)  # [B, H, D]
        correction = self.head(steps).squeeze(-1)  # [B, H]
        return self.autoregressive(past) + correction
