"""The mixer model: an attention-free MLP-Mixer over patches of the past, FiLM-conditioned."""

from __future__ import annotations

import torch
from torch import nn

from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.components import (
    FiLM,
    PatchEmbedding,
    SeasonalNaiveSkip,
    StaticContext,
    StochasticDepth,
    zero_init,
)


class FeedForward(nn.Sequential):
    """Linear-GELU-Dropout-Linear on the last axis: [..., size] -> [..., size]."""

    def __init__(self, size: int, expansion: int, dropout: float) -> None:
        hidden = max(1, size * expansion)
        super().__init__(
            nn.Linear(size, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, size),
            nn.Dropout(dropout),
        )


class MixerBlock(nn.Module):
    """One Mixer block (Tolstikhin et al., 2021): a token-mixing MLP across the patches, then
    a channel-mixing MLP across the features, each a pre-norm residual branch.

    The normalised input of each branch is modulated by FiLM from the static context (as in
    adaptive layer norm), so every SKU can reshape both how periods combine and which
    features matter. Branches are dropped per sample by stochastic depth while training.
    """

    def __init__(
        self,
        n_patches: int,
        d_model: int,
        expansion: int,
        dropout: float,
        drop_path: float,
        context_dim: int,
    ) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(d_model)
        self.token_film = FiLM(context_dim, d_model)
        self.token_mlp = FeedForward(n_patches, expansion, dropout)
        self.channel_norm = nn.LayerNorm(d_model)
        self.channel_film = FiLM(context_dim, d_model)
        self.channel_mlp = FeedForward(d_model, expansion, dropout)
        self.drop_path = StochasticDepth(drop_path)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x [B, N, D], context [B, C] -> [B, N, D]
        # FiLM works on [B, D, N]: the layout the token MLP needs (mixing along N) anyway.
        h = self.token_film(self.token_norm(x).transpose(1, 2), context)  # [B, D, N]
        x = x + self.drop_path(self.token_mlp(h).transpose(1, 2))
        h = self.channel_film(self.channel_norm(x).transpose(1, 2), context).transpose(1, 2)
        return x + self.drop_path(self.channel_mlp(h))


class MixerForecaster(ForecastModel):
    """MLP-Mixer (Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", 2021)
    applied to patches of the past as in TSMixer (Chen et al., 2023) and PatchTST (Nie et
    al., 2023); no attention anywhere.

    Past demand and its calendar features are cut into patches and embedded; mixer blocks
    alternate mixing across patches (time) and across features, each modulated by FiLM
    from the static context (SKU embedding and categorical attributes). A linear temporal
    projection maps the N patch tokens to one token per horizon step; each step's token,
    the context and that step's calendar features feed a small MLP whose output corrects
    the seasonal naive skip path. Its last layer starts at zero, so an untrained model is
    exactly seasonal naive. About 150K parameters at the defaults for 5000 SKUs (80K of
    them the SKU embedding).
    """

    def __init__(
        self,
        n_skus: int,
        n_static: int,
        n_time_features: int,
        window: int,
        horizon: int,
        d_model: int = 48,
        blocks: int = 3,
        patch_length: int = 7,
        patch_stride: int = 7,
        expansion: int = 2,
        dropout: float = 0.1,
        stochastic_depth: float = 0.05,
        embedding_dim: int = 16,
        skip_seasons: int = 1,
        season_length: int = 1,
    ) -> None:
        super().__init__()
        if patch_length < 1 or patch_stride < 1:
            raise ValueError(
                f"patch_length and patch_stride must be >= 1, got {patch_length}, {patch_stride}"
            )
        self.keep_hyperparameters(locals())
        self.horizon = horizon
        self.context = StaticContext(n_skus, n_static, embedding_dim, context_dim=d_model)
        self.patches = PatchEmbedding(
            window, 1 + n_time_features, patch_length, patch_stride, d_model
        )
        n_patches = self.patches.n_patches
        # Deeper blocks drop more often (linear rule of Huang et al., 2016): early blocks
        # carry the low-level features every later block relies on.
        self.blocks = nn.ModuleList(
            MixerBlock(
                n_patches,
                d_model,
                expansion,
                dropout,
                drop_path=stochastic_depth * (index + 1) / max(1, blocks),
                context_dim=d_model,
            )
            for index in range(blocks)
        )
        self.norm = nn.LayerNorm(d_model)
        # Patches -> horizon steps along the time axis (TSMixer's temporal projection):
        # keeps which patch said what, unlike mean pooling, with only N * H weights.
        self.temporal_projection = nn.Linear(n_patches, horizon)
        self.head = nn.Sequential(
            nn.Linear(2 * d_model + n_time_features, d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            zero_init(nn.Linear(d_model, 1)),
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
        context = self.context(sku, static)  # [B, D]
        x = self.patches(torch.cat([past.unsqueeze(-1), past_time], dim=-1))  # [B, N, D]
        for block in self.blocks:
            x = block(x, context)
        steps = self.temporal_projection(self.norm(x).transpose(1, 2)).transpose(1, 2)  # [B,H,D]
        state = context.unsqueeze(1).expand(-1, self.horizon, -1)  # [B, H, D]
        correction = self.head(torch.cat([steps, state, future_time], dim=-1)).squeeze(-1)
        return self.autoregressive(past) + correction  # [B, H]
