"""Attention building blocks of the transformer models, each a small module with shapes."""

from __future__ import annotations

import math

import torch
from torch import nn

from forecast_assets.core.models.components import StochasticDepth


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine / cosine position signal added to the inputs (Vaswani et al., "Attention Is
    All You Need", 2017): dimension pair (2i, 2i + 1) of position p holds
    sin(p / 10000^(2i/d)) and cos(p / 10000^(2i/d)).

    The table is a non-persistent buffer: it is rebuilt from the sizes, never saved.
    """

    def __init__(self, d_model: int, max_length: int, base: float = 10000.0) -> None:
        super().__init__()
        positions = torch.arange(max_length, dtype=torch.float32)[:, None]  # [L, 1]
        frequencies = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
        angles = positions * frequencies[None, :]  # [L, ceil(d/2)]
        table = torch.zeros(max_length, d_model)
        table[:, 0::2] = torch.sin(angles)
        table[:, 1::2] = torch.cos(angles[:, : d_model // 2])  # an odd d_model has one less cos
        self.register_buffer("table", table, persistent=False)  # [max_length, D]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        # x [B, L, D] at positions offset .. offset + L - 1 -> [B, L, D]
        return x + self.table[offset : offset + x.shape[1]]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding, RoPE (Su et al., "RoFormer: Enhanced Transformer with Rotary
    Position Embedding", 2021).

    Rotates each pair of feature dimensions of a query or key at position p by the angle
    p * theta_i, theta_i = base^(-2i/d). A rotation keeps the vector's norm, and the dot
    product of a query rotated at m with a key rotated at n depends only on m - n, so the
    attention scores see relative positions. Dimension i is paired with i + d/2 (the halves
    layout); cos / sin tables are precomputed up to ``max_length`` as non-persistent buffers.
    """

    def __init__(self, head_dim: int, max_length: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {head_dim}")
        half = head_dim // 2
        theta = base ** (-torch.arange(half, dtype=torch.float32) / half)  # [d/2]
        angles = torch.arange(max_length, dtype=torch.float32)[:, None] * theta[None, :]
        self.register_buffer("cos", torch.cos(angles), persistent=False)  # [max_length, d/2]
        self.register_buffer("sin", torch.sin(angles), persistent=False)  # [max_length, d/2]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        # x [..., L, d] at positions offset .. offset + L - 1 -> [..., L, d]
        length = x.shape[-2]
        cos = self.cos[offset : offset + length]  # [L, d/2]
        sin = self.sin[offset : offset + length]
        first, second = x.chunk(2, dim=-1)  # [..., L, d/2] each
        return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over several heads (Vaswani et al., 2017), for self- or
    cross-attention.

    Written with plain matmul / softmax (no fused kernel) so that RoPE can rotate the
    queries and keys between projection and product, and so that it exports to ONNX the same
    way at every batch size. ``rotary`` (optional) applies RoPE to queries and keys at their
    positions; ``causal_length`` > 0 adds a causal mask (query i sees keys <= i) precomputed
    for up to that many steps, for self-attention whose queries and keys share positions.
    Dropout acts on the attention weights.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        rotary: RotaryEmbedding | None = None,
        causal_length: int = 0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.output = nn.Linear(d_model, d_model)
        self.attention_dropout = nn.Dropout(dropout)
        self.rotary = rotary
        self.causal = causal_length > 0
        # Registered (empty) even without a mask, so that TorchScript sees the attribute.
        future = torch.ones(causal_length, causal_length, dtype=torch.bool).triu(diagonal=1)
        self.register_buffer("future", future, persistent=False)  # [L, L] True = masked

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # [B, L, D] -> [B, heads, L, D / heads]; unflatten keeps the batch dimension symbolic
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor,
        query_offset: int = 0,
        key_offset: int = 0,
    ) -> torch.Tensor:
        # query [B, Lq, D], key_value [B, Lk, D] -> [B, Lq, D]
        q = self.split_heads(self.query(query))  # [B, h, Lq, d]
        k = self.split_heads(self.key(key_value))  # [B, h, Lk, d]
        v = self.split_heads(self.value(key_value))  # [B, h, Lk, d]
        if self.rotary is not None:
            q = self.rotary(q, query_offset)
            k = self.rotary(k, key_offset)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # [B, h, Lq, Lk]
        if self.causal:
            mask = self.future[: q.shape[-2], : k.shape[-2]]  # [Lq, Lk]
            scores = scores.masked_fill(mask, float("-inf"))
        weights = self.attention_dropout(torch.softmax(scores, dim=-1))
        attended = weights @ v  # [B, h, Lq, d]
        return self.output(attended.transpose(1, 2).flatten(2))  # [B, Lq, D]


class FeedForward(nn.Module):
    """Position-wise feed-forward block (Vaswani et al., 2017) with GELU (Hendrycks & Gimpel,
    2016): [B, L, D] -> [B, L, D].

    No dropout inside: as in the paper, dropout acts on the block's output (see Residual).
    Drawing a mask for the wide hidden layer as well cost a large share of the CPU step time.
    """

    def __init__(self, d_model: int, dim_feedforward: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            nn.GELU(),
            nn.Linear(dim_feedforward, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, L, D] -> [B, L, D]
        return self.layers(x)


class Residual(nn.Module):
    """One residual sub-layer around ``branch``: pre-LayerNorm, x + drop(branch(norm(x)))
    (Xiong et al., "On Layer Normalization in the Transformer Architecture", 2020), or
    post-LayerNorm, norm(x + drop(branch(x))) (Vaswani et al., 2017). ``drop`` is dropout
    followed by stochastic depth (Huang et al., 2016) on the whole branch.
    """

    def __init__(self, d_model: int, dropout: float, stochastic_depth: float, pre_norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = StochasticDepth(stochastic_depth)
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, branch_output: torch.Tensor) -> torch.Tensor:
        # x [B, L, D], branch_output [B, L, D] -> [B, L, D]
        update = self.drop_path(self.dropout(branch_output))
        return x + update if self.pre_norm else self.norm(x + update)

    def branch_input(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, L, D] -> [B, L, D]: what the branch reads (normalised first when pre-norm)
        return self.norm(x) if self.pre_norm else x


class EncoderLayer(nn.Module):
    """Transformer encoder layer (Vaswani et al., 2017): self-attention then a GELU
    feed-forward, each a residual sub-layer with pre- or post-LayerNorm, dropout and
    stochastic depth. With ``rotary`` the self-attention uses RoPE (Su et al., 2021)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dim_feedforward: int,
        dropout: float,
        stochastic_depth: float = 0.0,
        pre_norm: bool = True,
        rotary: RotaryEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, n_heads, dropout, rotary)
        self.feed_forward = FeedForward(d_model, dim_feedforward)
        self.attention_residual = Residual(d_model, dropout, stochastic_depth, pre_norm)
        self.feed_forward_residual = Residual(d_model, dropout, stochastic_depth, pre_norm)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        # x [B, L, D] at positions offset .. offset + L - 1 -> [B, L, D]
        h = self.attention_residual.branch_input(x)
        x = self.attention_residual(x, self.self_attention(h, h, offset, offset))
        h = self.feed_forward_residual.branch_input(x)
        return self.feed_forward_residual(x, self.feed_forward(h))


class DecoderLayer(nn.Module):
    """Transformer decoder layer (Vaswani et al., 2017): causal self-attention among the
    decoder steps, cross-attention to the encoder output (``memory``), then a GELU
    feed-forward; residual sub-layers as in EncoderLayer. ``max_length`` sizes the causal
    mask. With ``rotary`` both attentions use RoPE (Su et al., 2021), so cross-attention
    scores see how far each decoder step lies from each encoder step."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dim_feedforward: int,
        dropout: float,
        max_length: int,
        stochastic_depth: float = 0.0,
        pre_norm: bool = True,
        rotary: RotaryEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.self_attention = MultiHeadAttention(
            d_model, n_heads, dropout, rotary, causal_length=max_length
        )
        self.cross_attention = MultiHeadAttention(d_model, n_heads, dropout, rotary)
        self.feed_forward = FeedForward(d_model, dim_feedforward)
        self.self_residual = Residual(d_model, dropout, stochastic_depth, pre_norm)
        self.cross_residual = Residual(d_model, dropout, stochastic_depth, pre_norm)
        self.feed_forward_residual = Residual(d_model, dropout, stochastic_depth, pre_norm)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, offset: int = 0, memory_offset: int = 0
    ) -> torch.Tensor:
        # x [B, Lq, D] at positions offset ..; memory [B, Lk, D] at memory_offset .. -> [B, Lq, D]
        h = self.self_residual.branch_input(x)
        x = self.self_residual(x, self.self_attention(h, h, offset, offset))
        h = self.cross_residual.branch_input(x)
        x = self.cross_residual(x, self.cross_attention(h, memory, offset, memory_offset))
        h = self.feed_forward_residual.branch_input(x)
        return self.feed_forward_residual(x, self.feed_forward(h))
