"""The advanced model: a patch-based Temporal Fusion Transformer with quantile heads."""

from __future__ import annotations

from itertools import pairwise
from statistics import NormalDist

import torch
from torch import nn

from forecast_assets.core.models.base import ForecastModel, median_index
from forecast_assets.core.models.components import (
    PatchEmbedding,
    SeasonalNaiveSkip,
    SeriesDecomposition,
    StaticContext,
    zero_init,
)
from forecast_assets.core.models.gating import (
    GateAddNorm,
    GatedResidualNetwork,
    InterpretableMultiHeadAttention,
    VariableSelectionNetwork,
)

# Floor of the per-window spread unit (scaled units): a flat window still gets a usable band.
SPREAD_FLOOR = 0.05


def validate_quantiles(quantiles: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """The quantile levels as a tuple of floats; ValueError unless non-empty, each in (0, 1)
    and strictly increasing."""
    levels = tuple(float(q) for q in quantiles)
    if not levels:
        raise ValueError("quantiles must name at least one level, e.g. (0.1, 0.5, 0.9)")
    if any(not 0.0 < q < 1.0 for q in levels):
        raise ValueError(f"every quantile must lie strictly between 0 and 1, got {levels}")
    if any(b <= a for a, b in pairwise(levels)):
        raise ValueError(f"quantiles must be strictly increasing, got {levels}")
    return levels


class AdvancedForecaster(ForecastModel):
    """Temporal Fusion Transformer (Lim, Arik, Loeff & Pfister, "Temporal Fusion Transformers
    for Interpretable Multi-horizon Time Series Forecasting", 2021) over patches of the past
    (PatchTST, Nie et al., 2023) of its trend / seasonal decomposition (Autoformer, Wu et al.,
    2021), with one output per quantile.

    Flow (shapes for batch B, window W, horizon H, calendar features F, N patches, D=d_model):

    1. Static context: SKU embedding + categoricals (StaticContext) -> two GRNs give the
       variable-selection context and the static-enrichment context, [B, D] each.
    2. The past [B, W] is split by a moving average into seasonal and trend. The past
       variables are seasonal, trend and each calendar feature, V = 2 + F; each is cut into
       patches by one shared PatchEmbedding, plus a learned embedding per variable ->
       [B, N, V, D]. A variable selection network (its per-variable GRNs have their own
       weights) weighs the variables per patch ([B, N, V] weights, e.g. "this patch is read
       mostly through its trend"), plus a learned patch-position embedding -> [B, N, D].
    3. The future variables are the F calendar features of each horizon step, each embedded
       linearly, selected by their own network ([B, H, F] weights), plus a learned step
       embedding -> [B, H, D].
    4. Both go through a static-enrichment GRN. Interpretable multi-head attention lets each
       horizon step (query) read the patch tokens (keys / values): weights [B, H, N]. A gated
       skip, a position-wise GRN and a gated skip back to the step tokens follow, as in TFT.
       TFT's LSTM encoder is left out: patches already carry the local pattern, and the
       position embeddings give order, which keeps the model exportable and fast on CPU.
    5. Quantile heads [B, H, Q] corrected onto a SeasonalNaiveSkip path.

    Quantile parameterisation (guarantees q_1 < q_2 < ... at every point, trained or not):
    the head gives one raw value per quantile. The quantile nearest 0.5 (the median head) is
    ``skip + raw_median``; the others step away from it by cumulative sums of
    ``softplus(raw) * unit``, upwards above the median and downwards below it. ``unit`` is
    the window's in-sample seasonal-naive MAE (floored at SPREAD_FLOOR), so a noisier series
    gets a wider band from the start. The head's weights start at zero, the median bias at
    zero and the other biases so that the band starts as a normal distribution with standard
    deviation ``unit``: an untrained model's median is exactly seasonal naive.

    Use ``attention_weights`` / ``variable_selection_weights`` for interpretation; they
    run the same computation as ``forward`` and are never part of an exported graph.
    """

    def __init__(
        self,
        n_skus: int,
        n_static: int,
        n_time_features: int,
        window: int,
        horizon: int,
        d_model: int = 32,
        n_heads: int = 4,
        patch_length: int = 8,
        patch_stride: int = 4,
        moving_average: int = 7,
        dropout: float = 0.1,
        stochastic_depth: float = 0.0,
        embedding_dim: int = 8,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        skip_seasons: int = 1,
        season_length: int = 1,
    ) -> None:
        super().__init__()
        levels = validate_quantiles(quantiles)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if min(patch_length, patch_stride, moving_average) < 1:
            raise ValueError("patch_length, patch_stride and moving_average must be >= 1")
        self.keep_hyperparameters(locals())
        self.hyperparameters["quantiles"] = self.quantiles = levels
        self.horizon = horizon
        # Lag of the spread unit: the season when the window holds one, else one period.
        self.spread_lag = season_length if 1 <= season_length < window else 1
        if window <= self.spread_lag:
            self.spread_lag = 0  # a one-period window has no in-sample error: floor only

        # 1. Static covariate encoders.
        self.static_context = StaticContext(n_skus, n_static, embedding_dim, context_dim=d_model)
        self.selection_context = GatedResidualNetwork(d_model, d_model, dropout=dropout)
        self.enrichment_context = GatedResidualNetwork(d_model, d_model, dropout=dropout)

        # 2. Past: decomposition, patch embedding, variable selection.
        self.decomposition = SeriesDecomposition(min(moving_average, window))
        self.n_past_variables = 2 + n_time_features
        # One patch projection shared by the variables (each patch of one variable -> D) plus
        # a learned embedding per variable; the per-variable GRNs of the selection network
        # then process each variable with its own weights.
        self.patch_embedding = PatchEmbedding(window, 1, patch_length, patch_stride, d_model)
        self.variable_embedding = nn.Parameter(0.02 * torch.randn(self.n_past_variables, d_model))
        self.n_patches = self.patch_embedding.n_patches
        self.past_selection = VariableSelectionNetwork(
            self.n_past_variables, d_model, d_model, context_dim=d_model, dropout=dropout
        )
        self.patch_position = nn.Parameter(0.02 * torch.randn(self.n_patches, d_model))

        # 3. Future: one linear embedding per calendar feature, selection, step embedding.
        if n_time_features:
            self.future_embedding_weight = nn.Parameter(torch.randn(n_time_features, d_model))
            self.future_embedding_bias = nn.Parameter(torch.zeros(n_time_features, d_model))
            self.future_selection = VariableSelectionNetwork(
                n_time_features, d_model, d_model, context_dim=d_model, dropout=dropout
            )
        else:
            self.future_selection = None
        self.step_position = nn.Parameter(0.02 * torch.randn(horizon, d_model))

        # 4. Static enrichment, attention, position-wise feed-forward.
        self.past_enrichment = GatedResidualNetwork(
            d_model, d_model, context_dim=d_model, dropout=dropout
        )
        self.future_enrichment = GatedResidualNetwork(
            d_model, d_model, context_dim=d_model, dropout=dropout
        )
        self.attention = InterpretableMultiHeadAttention(d_model, n_heads, dropout)
        self.post_attention = GateAddNorm(d_model, d_model, dropout, stochastic_depth)
        self.feed_forward = GatedResidualNetwork(d_model, d_model, dropout=dropout)
        self.pre_output = GateAddNorm(d_model, d_model, dropout, stochastic_depth)

        # 5. Quantile heads on the seasonal-naive skip path.
        self.quantile_head = zero_init(nn.Linear(d_model, len(levels)))
        self.median = median_index(levels)
        with torch.no_grad():
            z = [NormalDist().inv_cdf(q) for q in levels]
            for j in range(len(levels)):
                if j != self.median:
                    gap = abs(z[j] - z[j + 1 if j < self.median else j - 1])
                    self.quantile_head.bias[j] = gap + torch.log(-torch.expm1(torch.tensor(-gap)))
        # offsets[j, q] = +1 / -1 when raw step j lies between the median and quantile q.
        offsets = torch.zeros(len(levels), len(levels))
        for q in range(len(levels)):
            for j in range(len(levels)):
                if self.median < j <= q:
                    offsets[j, q] = 1.0
                elif q <= j < self.median:
                    offsets[j, q] = -1.0
        self.register_buffer("quantile_offsets", offsets, persistent=False)
        self.autoregressive = SeasonalNaiveSkip(window, horizon, season_length, skip_seasons)

    def forward(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        return self._run(past, past_time, future_time, sku, static)[0]  # [B, H, Q]

    @torch.no_grad()
    def attention_weights(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> torch.Tensor:
        """[B, H, n_patches]: how much each horizon step read each past patch (rows sum to 1,
        averaged over heads), in the model's current mode (call ``eval()`` first). Patch i
        covers the periods ``W - P - (N - 1 - i) S .. W - 1 - (N - 1 - i) S`` of the window
        (0-based; negative = padding by the first period), so the last patch ends on the
        last period."""
        return self._run(past, past_time, future_time, sku, static)[1]

    @torch.no_grad()
    def variable_selection_weights(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(past [B, n_patches, 2 + F] over seasonal, trend, calendar features; future
        [B, H, F] over calendar features); each row sums to 1 (F = 0: future is empty)."""
        _, _, past_weights, future_weights = self._run(past, past_time, future_time, sku, static)
        return past_weights, future_weights

    def _run(
        self,
        past: torch.Tensor,
        past_time: torch.Tensor,
        future_time: torch.Tensor,
        sku: torch.Tensor,
        static: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        static_embedding = self.static_context(sku, static)  # [B, D]
        selection = self.selection_context(static_embedding)  # [B, D]
        enrichment = self.enrichment_context(static_embedding)  # [B, D]

        seasonal, trend = self.decomposition(past.unsqueeze(-1))  # [B, W, 1] each
        series = torch.cat([seasonal, trend, past_time], dim=-1)  # [B, W, V]
        patches = self.patch_embedding(series.transpose(1, 2).reshape(-1, series.shape[1], 1))
        embedded = patches.reshape(past.shape[0], self.n_past_variables, self.n_patches, -1)
        embedded = embedded.transpose(1, 2) + self.variable_embedding  # [B, N, V, D]
        past_tokens, past_weights = self.past_selection(embedded, selection)  # [B,N,D], [B,N,V]
        past_tokens = past_tokens + self.patch_position

        if self.future_selection is not None:
            future_embedded = (
                future_time.unsqueeze(-1) * self.future_embedding_weight
                + self.future_embedding_bias
            )  # [B, H, F, D]
            future_tokens, future_weights = self.future_selection(future_embedded, selection)
            future_tokens = future_tokens + self.step_position  # [B, H, D]
        else:
            future_tokens = self.step_position.expand(past.shape[0], -1, -1)  # [B, H, D]
            future_weights = future_time  # [B, H, 0]

        keys = self.past_enrichment(past_tokens, enrichment)  # [B, N, D]
        queries = self.future_enrichment(future_tokens, enrichment)  # [B, H, D]
        attended, attention = self.attention(queries, keys, keys)  # [B, H, D], [B, H, N]
        h = self.post_attention(attended, queries)  # [B, H, D]
        h = self.pre_output(self.feed_forward(h), future_tokens)  # [B, H, D]
        return (
            self._quantile_outputs(self.quantile_head(h), past),
            attention,
            past_weights,
            (future_weights),
        )

    def _quantile_outputs(self, raw: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        # raw [B, H, Q], past [B, W] -> ordered quantile forecasts [B, H, Q]
        if self.spread_lag:
            lag = self.spread_lag
            unit = (past[:, lag:] - past[:, :-lag]).abs().mean(dim=1)  # [B]
            unit = unit.clamp_min(SPREAD_FLOOR)[:, None, None]
        else:
            unit = past.new_full((1, 1, 1), SPREAD_FLOOR)
        spread = nn.functional.softplus(raw) @ self.quantile_offsets  # [B, H, Q]
        center = raw[..., self.median : self.median + 1] + self.autoregressive(past).unsqueeze(-1)
        return center + unit * spread
