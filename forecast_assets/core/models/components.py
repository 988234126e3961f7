"""Building blocks shared by the models, each a small module with shapes on ``forward``."""

from __future__ import annotations

import torch
from torch import nn


class StaticContext(nn.Module):
    """SKU embedding plus a projection of the categorical attributes: [B] + [B, C] -> [B, D]."""

    def __init__(self, n_skus: int, n_static: int, embedding_dim: int, context_dim: int) -> None:
        super().__init__()
        self.sku_embedding = nn.Embedding(n_skus, embedding_dim)
        self.static_projection = nn.Linear(n_static, embedding_dim) if n_static else None
        inputs = embedding_dim * (2 if n_static else 1)
        self.output = nn.Sequential(nn.Linear(inputs, context_dim), nn.GELU())

    def forward(self, sku: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        parts = [self.sku_embedding(sku)]  # [B, E]
        if self.static_projection is not None:
            parts.append(self.static_projection(static))  # [B, E]
        return self.output(torch.cat(parts, dim=-1))  # [B, D]


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., 2018): x * (1 + gamma(c)) + beta(c).

    The ``1 +`` keeps an untrained layer close to the identity.
    """

    def __init__(self, context_dim: int, channels: int) -> None:
        super().__init__()
        self.to_gamma_beta = nn.Linear(context_dim, 2 * channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x [B, C, L], context [B, D] -> [B, C, L]
        gamma, beta = self.to_gamma_beta(context).unsqueeze(-1).chunk(2, dim=1)  # [B, C, 1] each
        return x * (1 + gamma) + beta


class CausalConv1d(nn.Module):
    """1-D convolution that only looks back: output t depends on inputs <= t."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int
    ) -> None:
        super().__init__()
        self.left_padding = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, C_in, L] -> [B, C_out, L]
        return self.conv(nn.functional.pad(x, (self.left_padding, 0)))


class TemporalBlock(nn.Module):
    """Residual block of two dilated causal convolutions (Bai, Kolter & Koltun, 2018),
    modulated by FiLM from the static context after each convolution."""

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, dropout: float, context_dim: int
    ) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(channels, channels, kernel_size, dilation)
        self.conv2 = CausalConv1d(channels, channels, kernel_size, dilation)
        self.film1 = FiLM(context_dim, channels)
        self.film2 = FiLM(context_dim, channels)
        self.activation = nn.GELU()
        # Spatial dropout (whole channels): the usual choice for TCNs, and it draws L times
        # fewer random numbers than element-wise dropout, which dominated CPU step time.
        self.dropout = nn.Dropout1d(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x [B, C, L], context [B, D] -> [B, C, L]
        h = self.dropout(self.activation(self.film1(self.conv1(x), context)))
        h = self.dropout(self.activation(self.film2(self.conv2(h), context)))
        return x + h


class TemporalConvNet(nn.Module):
    """Stack of TemporalBlocks with dilations 1, 2, 4, ...: receptive field
    1 + 2 (kernel_size - 1) (2^levels - 1) periods."""

    def __init__(
        self, channels: int, levels: int, kernel_size: int, dropout: float, context_dim: int
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TemporalBlock(channels, kernel_size, 2**level, dropout, context_dim)
            for level in range(levels)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x [B, C, L], context [B, D] -> [B, C, L]
        for block in self.blocks:
            x = block(x, context)
        return x

    @staticmethod
    def receptive_field(levels: int, kernel_size: int) -> int:
        return 1 + 2 * (kernel_size - 1) * (2**levels - 1)
