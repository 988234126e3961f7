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


class SeasonalNaiveSkip(nn.Linear):
    """Linear map past [B, window] -> [B, horizon] that starts as the seasonal naive forecast.

    Step h copies period ``window - m + (h mod m)``; with a season longer than the window (or
    m = 1) it copies the last value. With ``seasons`` k > 1 it starts as the mean of that
    period in the last k seasons (as many as the window holds): on noisy demand a mean of
    several seasons is a far better prior than one season's value. Models add their learned
    output to this path, and with a zero-initialised last layer an untrained model is
    exactly this forecast, so training only has to learn what improves on it.
    """

    def __init__(self, window: int, horizon: int, season_length: int, seasons: int = 1) -> None:
        super().__init__(window, horizon)
        if seasons < 1:
            raise ValueError(f"skip_seasons must be >= 1, got {seasons}")
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()
            seasonal = 1 < season_length <= window
            period = season_length if seasonal else 1
            count = max(1, min(seasons, window // period))
            for step in range(horizon):
                last = window - period + (step % period if seasonal else 0)
                for back in range(count):
                    self.weight[step, last - back * period] = 1.0 / count


def zero_init(layer: nn.Linear) -> nn.Linear:
    """Zero a model's last layer so that it starts as its skip path (see SeasonalNaiveSkip)."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class StochasticDepth(nn.Module):
    """Drops a residual branch for whole samples during training (Huang et al., 2016).

    ``x + StochasticDepth(p)(branch(x))``: each sample's branch output is zeroed with
    probability p and the survivors are scaled by 1 / (1 - p); identity at evaluation.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        # branch [B, ...] -> [B, ...]
        if not self.training or self.p == 0.0:
            return branch
        keep = 1.0 - self.p
        shape = (branch.shape[0],) + (1,) * (branch.dim() - 1)
        mask = torch.empty(shape, dtype=branch.dtype, device=branch.device).bernoulli_(keep)
        return branch * mask / keep


class PatchEmbedding(nn.Module):
    """Cuts a series into patches and embeds each (PatchTST, Nie et al., 2023).

    [B, L, F] -> [B, n_patches, d_model]. The series is left-padded by repeating its first
    period so that the last patch ends on the last period (the most recent data is never
    cut off). Patches are gathered with a fixed index table, which exports to ONNX as is.
    """

    def __init__(self, length: int, n_features: int, patch_length: int, stride: int, d_model: int):
        super().__init__()
        if patch_length > length:
            patch_length = length
        self.n_patches = 1 + -(-(length - patch_length) // stride)  # ceil division
        self.left_padding = (self.n_patches - 1) * stride + patch_length - length
        starts = torch.arange(self.n_patches) * stride
        self.register_buffer(
            "index", starts[:, None] + torch.arange(patch_length)[None, :], persistent=False
        )  # [N, P]
        self.projection = nn.Linear(patch_length * n_features, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, L, F] -> [B, N, D]
        if self.left_padding:
            x = torch.cat([x[:, :1].expand(-1, self.left_padding, -1), x], dim=1)
        patches = x[:, self.index]  # [B, N, P, F]
        return self.projection(patches.flatten(2))


class SeriesDecomposition(nn.Module):
    """Moving-average trend and seasonal remainder (Autoformer, Wu et al., 2021).

    [B, L, C] -> (seasonal [B, L, C], trend [B, L, C]) with seasonal + trend == input. The
    ends are padded by repeating the first / last period so the trend keeps length L.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.front = (kernel_size - 1) // 2
        self.back = kernel_size - 1 - self.front

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x [B, L, C] -> seasonal [B, L, C], trend [B, L, C]
        padded = torch.cat(
            [x[:, :1].expand(-1, self.front, -1), x, x[:, -1:].expand(-1, self.back, -1)], dim=1
        )
        trend = nn.functional.avg_pool1d(
            padded.transpose(1, 2), self.kernel_size, stride=1
        ).transpose(1, 2)
        return x - trend, trend
