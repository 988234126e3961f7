"""Gating and attention blocks of the Temporal Fusion Transformer (Lim et al., 2021)."""

from __future__ import annotations

import math

import torch
from torch import nn

from forecast_assets.core.models.components import StochasticDepth


class VariableWiseLinear(nn.Module):
    """One independent linear layer per variable, computed together: [..., V, I] -> [..., V, O].

    Same as a list of V ``nn.Linear`` applied to ``x[..., v, :]``, in one einsum instead of V
    small matmuls (step time on CPU is dominated by the number of small operations).
    """

    def __init__(self, n_variables: int, input_dim: int, output_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(input_dim)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(
            torch.empty(n_variables, input_dim, output_dim).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(n_variables, output_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [..., V, I] -> [..., V, O]
        return torch.einsum("...vi,vio->...vo", x, self.weight) + self.bias


def _linear(input_dim: int, output_dim: int, n_variables: int) -> nn.Module:
    return (
        VariableWiseLinear(n_variables, input_dim, output_dim)
        if n_variables
        else (nn.Linear(input_dim, output_dim))
    )


class GatedLinearUnit(nn.Module):
    """Gated linear unit of TFT (Lim et al., 2021, eq. 5): value(x) * sigmoid(gate(x)).

    [..., input_dim] -> [..., output_dim]; one layer computes [value | gate]. A gate driven
    towards zero switches the whole branch off, which is how TFT lets the network skip what a
    dataset does not need. ``n_variables`` > 0: independent weights per variable, x
    [..., V, input_dim].
    """

    def __init__(
        self, input_dim: int, output_dim: int, dropout: float = 0.0, n_variables: int = 0
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = _linear(input_dim, 2 * output_dim, n_variables)  # [value | gate]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [..., I] -> [..., O]
        return nn.functional.glu(self.linear(self.dropout(x)), dim=-1)


class GateAddNorm(nn.Module):
    """Gated skip connection of TFT (Lim et al., 2021): LayerNorm(residual + GLU(x)).

    x [..., input_dim], residual [..., output_dim] -> [..., output_dim]. ``drop_path`` drops
    the gated branch for whole samples while training (StochasticDepth). ``n_variables`` > 0:
    per-variable weights, including the LayerNorm's scale and shift ([..., V, O]).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        n_variables: int = 0,
    ) -> None:
        super().__init__()
        self.glu = GatedLinearUnit(input_dim, output_dim, dropout, n_variables)
        self.depth = StochasticDepth(drop_path)
        self.norm = nn.LayerNorm(output_dim, elementwise_affine=not n_variables)
        if n_variables:
            self.norm_weight = nn.Parameter(torch.ones(n_variables, output_dim))
            self.norm_bias = nn.Parameter(torch.zeros(n_variables, output_dim))
        else:
            self.norm_weight = self.norm_bias = None

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        # x [..., I], residual [..., O] -> [..., O]
        out = self.norm(residual + self.depth(self.glu(x)))
        if self.norm_weight is not None:
            out = out * self.norm_weight + self.norm_bias
        return out


class GatedResidualNetwork(nn.Module):
    """Gated residual network of TFT (Lim et al., 2021, eqs. 2-4).

    eta2 = ELU(W2 x + W3 c + b2); eta1 = W1 eta2 + b1; out = LayerNorm(skip(x) + GLU(eta1)).
    x [..., input_dim] (+ optional context [B, context_dim], broadcast over the middle
    dimensions of x) -> [..., output_dim]. ``skip`` is a linear projection when the input and
    output sizes differ, else the identity. A closed gate leaves LayerNorm(skip(x)).

    ``n_variables`` > 0 makes it a bank of independent GRNs, one per variable: x
    [..., V, input_dim] -> [..., V, output_dim], no context (what a VSN needs).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int | None = None,
        context_dim: int = 0,
        dropout: float = 0.0,
        n_variables: int = 0,
    ) -> None:
        super().__init__()
        output_dim = input_dim if output_dim is None else output_dim
        if n_variables and context_dim:
            raise ValueError("a per-variable GRN bank takes no context")
        self.skip = (
            _linear(input_dim, output_dim, n_variables)
            if input_dim != output_dim
            else nn.Identity()
        )
        self.input = _linear(input_dim, hidden_dim, n_variables)
        # No bias: the input layer already has one.
        self.context = nn.Linear(context_dim, hidden_dim, bias=False) if context_dim else None
        self.hidden = _linear(hidden_dim, hidden_dim, n_variables)
        self.gate_add_norm = GateAddNorm(hidden_dim, output_dim, dropout, n_variables=n_variables)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # x [B, ..., I], context [B, C] or [B, ..., C] -> [B, ..., O]
        h = self.input(x)  # [B, ..., Hd]
        if self.context is not None:
            if context is None:
                raise ValueError("this GatedResidualNetwork was built with a context input")
            c = self.context(context)
            while c.dim() < h.dim():  # static rank: unrolled when exported
                c = c.unsqueeze(-2)
            h = h + c
        h = self.hidden(nn.functional.elu(h))
        return self.gate_add_norm(h, self.skip(x))


class VariableSelectionNetwork(nn.Module):
    """Variable selection network of TFT (Lim et al., 2021, eqs. 6-8).

    x [..., n_variables, input_dim] (each variable already embedded) + optional context
    [B, context_dim] -> (selected [..., hidden_dim], weights [..., n_variables]).
    Each variable goes through its own GRN (a per-variable bank); a GRN over all variables
    flattened (and the context) gives softmax selection weights, and the output is the
    weighted sum. The weights sum to 1 over the variables and say how much each is used.
    """

    def __init__(
        self,
        n_variables: int,
        input_dim: int,
        hidden_dim: int,
        context_dim: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if n_variables < 1:
            raise ValueError("a VariableSelectionNetwork needs at least one variable")
        self.n_variables = n_variables
        self.variable_networks = GatedResidualNetwork(
            input_dim, hidden_dim, hidden_dim, dropout=dropout, n_variables=n_variables
        )
        self.weight_network = GatedResidualNetwork(
            n_variables * input_dim, hidden_dim, n_variables, context_dim, dropout
        )

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x [B, ..., V, I], context [B, C] -> selected [B, ..., Hd], weights [B, ..., V]
        weights = torch.softmax(self.weight_network(x.flatten(-2), context), dim=-1)
        processed = self.variable_networks(x)  # [B, ..., V, Hd]
        return (weights.unsqueeze(-1) * processed).sum(dim=-2), weights


def causal_mask(n_queries: int, n_keys: int) -> torch.Tensor:
    """[n_queries, n_keys] bool, True where query i may attend key j: j <= i + n_keys - n_queries.

    Queries are aligned with the last keys (self-attention when the sizes match). Build it once
    and register it as a buffer so that an exported graph holds a constant, not a computation.
    """
    return torch.ones(n_queries, n_keys, dtype=torch.bool).tril(diagonal=n_keys - n_queries)


class InterpretableMultiHeadAttention(nn.Module):
    """Interpretable multi-head attention of TFT (Lim et al., 2021, eqs. 13-16).

    Each head has its own query and key projections but all share one value projection, so
    averaging the heads' attention matrices and applying the average to the shared values is
    the same as averaging the heads' outputs: the averaged matrix is an exact account of what
    each query read. query [B, Lq, D], key/value [B, Lk, D], optional mask [Lq, Lk] bool
    (True = may attend) -> (output [B, Lq, D], weights [B, Lq, Lk], rows summing to 1).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.query = nn.Linear(d_model, n_heads * self.d_head)
        self.key = nn.Linear(d_model, n_heads * self.d_head)
        self.value = nn.Linear(d_model, self.d_head)  # shared by all heads
        self.output = nn.Linear(self.d_head, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # query [B, Lq, D], key/value [B, Lk, D], mask [Lq, Lk] -> [B, Lq, D], [B, Lq, Lk]
        q = self.query(query).unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)
        k = self.key(key).unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)  # [B, h, Lq, Lk]
        if mask is not None:
            # The dtype's minimum rather than -inf: a fully masked row stays finite (uniform).
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).mean(dim=1)  # [B, Lq, Lk]
        values = self.value(value)  # [B, Lk, d_head]
        return self.output(self.dropout(weights) @ values), weights
