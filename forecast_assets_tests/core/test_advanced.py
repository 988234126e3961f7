"""The advanced model (TFT-style, quantile heads) and its gating blocks."""

from __future__ import annotations

import pytest
import torch

from forecast_assets.core.models.advanced import AdvancedForecaster
from forecast_assets.core.models.components import SeriesDecomposition
from forecast_assets.core.models.gating import (
    GatedResidualNetwork,
    InterpretableMultiHeadAttention,
    VariableSelectionNetwork,
    causal_mask,
)
from forecast_assets.core.models.losses import pinball_loss
from forecast_assets_tests.core.model_tasks import (
    fit_briefly,
    holdout_mae,
    inputs_of,
    seasonal_task,
)

N_SKUS, N_STATIC, N_TIME, WINDOW = 20, 3, 4, 30


def inputs(
    batch: int = 5,
    window: int = WINDOW,
    horizon: int = 6,
    n_time: int = N_TIME,
    n_static: int = N_STATIC,
    seed: int = 0,
) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, window, generator=generator),
        torch.randn(batch, window, n_time, generator=generator),
        torch.randn(batch, horizon, n_time, generator=generator),
        torch.randint(0, N_SKUS, (batch,), generator=generator),
        torch.randn(batch, n_static, generator=generator),
    )


def model_for(horizon: int = 6, **overrides: object) -> AdvancedForecaster:
    torch.manual_seed(0)
    sizes = dict(
        n_skus=N_SKUS, n_static=N_STATIC, n_time_features=N_TIME, window=WINDOW, horizon=horizon
    )
    return AdvancedForecaster(**{**sizes, **overrides})


def randomise_heads(model: AdvancedForecaster, std: float = 0.3) -> None:
    """The heads start at zero (an untrained model is seasonal naive); give them weights so
    that the learned path actually reaches the output."""
    with torch.no_grad():
        model.quantile_head.weight.normal_(0.0, std)


# --- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 7, 14])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_forward_is_batch_by_horizon_by_quantile(batch: int, horizon: int) -> None:
    model = model_for(horizon).eval()
    out = model(*inputs(batch=batch, horizon=horizon))
    assert out.shape == (batch, horizon, 3)
    assert model.point_forecast(out).shape == (batch, horizon)


@pytest.mark.parametrize("quantiles", [(0.5,), (0.05, 0.25, 0.5, 0.75, 0.95), (0.7,)])
def test_any_number_of_quantiles(quantiles: tuple[float, ...]) -> None:
    model = model_for(quantiles=quantiles).eval()
    assert model.quantiles == quantiles
    assert model(*inputs()).shape == (5, 6, len(quantiles))


def test_works_without_categoricals_and_without_calendar_features() -> None:
    model = model_for(n_static=0).eval()
    assert model(*inputs(n_static=0)).shape == (5, 6, 3)
    model = model_for(n_static=0, n_time_features=0).eval()
    assert model(*inputs(n_static=0, n_time=0)).shape == (5, 6, 3)


@pytest.mark.parametrize(
    "quantiles", [(), (0.9, 0.5), (0.1, 0.1, 0.9), (0.0, 0.5), (0.5, 1.0), (-0.1,)]
)
def test_rejects_invalid_quantiles(quantiles: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="quantile"):
        model_for(quantiles=quantiles)


def test_rebuilds_from_its_hyperparameters() -> None:
    model = model_for(quantiles=(0.2, 0.5, 0.8), d_model=16, n_heads=2, season_length=7)
    randomise_heads(model)
    hyperparameters = model.hyperparameters
    assert hyperparameters["quantiles"] == (0.2, 0.5, 0.8)
    assert hyperparameters["d_model"] == 16 and hyperparameters["season_length"] == 7
    twin = AdvancedForecaster(**hyperparameters)
    twin.load_state_dict(model.state_dict())
    x = inputs()
    torch.testing.assert_close(twin.eval()(*x), model.eval()(*x))


def test_rows_do_not_depend_on_the_rest_of_the_batch() -> None:
    model = model_for(horizon=7).eval()
    randomise_heads(model)
    x = inputs(batch=64, horizon=7)
    full = model(*x)
    for size in (1, 7):
        torch.testing.assert_close(model(*(t[:size] for t in x)), full[:size])


@pytest.mark.parametrize("season", [7, 1, 52])
def test_untrained_median_is_seasonal_naive_with_an_ordered_band(season: int) -> None:
    model = model_for(horizon=9, season_length=season).eval()
    past, *rest = inputs(horizon=9)
    out = model(past, *rest)
    if 1 < season <= WINDOW:
        expected = torch.stack([past[:, WINDOW - season + h % season] for h in range(9)], dim=1)
    else:
        expected = past[:, -1:].expand(-1, 9)
    torch.testing.assert_close(model.point_forecast(out), expected)
    assert (out[..., 0] < out[..., 1]).all() and (out[..., 1] < out[..., 2]).all()


def test_quantiles_are_ordered_whatever_the_head_weights() -> None:
    model = model_for(quantiles=(0.05, 0.25, 0.5, 0.75, 0.95)).eval()
    randomise_heads(model, std=3.0)
    with torch.no_grad():
        model.quantile_head.bias.normal_(0.0, 3.0)
    out = model(*inputs(batch=64))
    assert (out[..., 1:] >= out[..., :-1]).all()


def test_backward_reaches_every_parameter_with_finite_gradients() -> None:
    model = model_for(stochastic_depth=0.1)
    randomise_heads(model)
    model.train()
    out = model(*inputs(batch=16))
    target = torch.randn(16, 6)
    pinball_loss(out, target, model.quantiles).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_attention_weights_cover_the_patches_and_sum_to_one() -> None:
    model = model_for(horizon=7).eval()
    x = inputs(batch=4, horizon=7)
    weights = model.attention_weights(*x)
    assert model.n_patches == 1 + -(-(WINDOW - 8) // 4)  # patch 8, stride 4 at the defaults
    assert weights.shape == (4, 7, model.n_patches)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 7))
    past_weights, future_weights = model.variable_selection_weights(*x)
    assert past_weights.shape == (4, model.n_patches, 2 + N_TIME)
    assert future_weights.shape == (4, 7, N_TIME)
    torch.testing.assert_close(past_weights.sum(-1), torch.ones(4, model.n_patches))
    torch.testing.assert_close(future_weights.sum(-1), torch.ones(4, 7))


# --- gating blocks -----------------------------------------------------------------------


def test_grn_shapes_with_and_without_context() -> None:
    grn = GatedResidualNetwork(input_dim=6, hidden_dim=8, output_dim=4, context_dim=3)
    x = torch.randn(2, 5, 6)
    out = grn(x, torch.randn(2, 3))  # the context is broadcast over the 5 steps
    assert out.shape == (2, 5, 4)
    assert not torch.allclose(grn(x, torch.randn(2, 3)), out)
    assert GatedResidualNetwork(6, 8)(x).shape == (2, 5, 6)
    with pytest.raises(ValueError, match="context"):
        grn(x)


def test_grn_gate_can_shut_the_branch() -> None:
    grn = GatedResidualNetwork(input_dim=6, hidden_dim=8, output_dim=4, context_dim=3).eval()
    gate = grn.gate_add_norm.glu.linear  # rows [value | gate]
    with torch.no_grad():
        gate.weight[4:].zero_()
        gate.bias[4:].fill_(-40.0)  # sigmoid(-40) ~ 4e-18
    x = torch.randn(2, 5, 6)
    expected = grn.gate_add_norm.norm(grn.skip(x))
    torch.testing.assert_close(grn(x, torch.randn(2, 3)), expected)
    with torch.no_grad():
        gate.bias[4:].fill_(40.0)  # open again: the branch changes the output
    assert not torch.allclose(grn(x, torch.randn(2, 3)), expected)


def test_per_variable_grn_bank_equals_independent_grns() -> None:
    bank = GatedResidualNetwork(5, 7, 4, n_variables=3).eval()
    x = torch.randn(2, 6, 3, 5)
    out = bank(x)
    assert out.shape == (2, 6, 3, 4)
    for v in range(3):
        single = GatedResidualNetwork(5, 7, 4).eval()
        with torch.no_grad():
            for mine, banked in [
                (single.input, bank.input),
                (single.hidden, bank.hidden),
                (single.skip, bank.skip),
                (single.gate_add_norm.glu.linear, bank.gate_add_norm.glu.linear),
            ]:
                mine.weight.copy_(banked.weight[v].T)
                mine.bias.copy_(banked.bias[v])
            # A per-variable LayerNorm scale and shift too.
            bank.gate_add_norm.norm_weight[v].fill_(2.0 + v)
            bank.gate_add_norm.norm_bias[v].fill_(0.5 * v)
            single.gate_add_norm.norm.weight.fill_(2.0 + v)
            single.gate_add_norm.norm.bias.fill_(0.5 * v)
        torch.testing.assert_close(bank(x)[:, :, v], single(x[:, :, v]))


def test_variable_selection_weights_sum_to_one_and_follow_the_context() -> None:
    vsn = VariableSelectionNetwork(n_variables=4, input_dim=6, hidden_dim=8, context_dim=3)
    x = torch.randn(2, 5, 4, 6)
    context = torch.randn(2, 3)
    selected, weights = vsn(x, context)
    assert selected.shape == (2, 5, 8)
    assert weights.shape == (2, 5, 4)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))
    assert not torch.allclose(vsn(x, torch.randn(2, 3))[1], weights)


def test_interpretable_attention_averages_heads_over_a_shared_value() -> None:
    attention = InterpretableMultiHeadAttention(d_model=8, n_heads=4).eval()
    query, memory = torch.randn(3, 5, 8), torch.randn(3, 9, 8)
    out, weights = attention(query, memory, memory)
    assert out.shape == (3, 5, 8)
    assert weights.shape == (3, 5, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    # One value projection for all heads: the output is exactly the averaged weights applied.
    torch.testing.assert_close(out, attention.output(weights @ attention.value(memory)))
    with pytest.raises(ValueError, match="divisible"):
        InterpretableMultiHeadAttention(d_model=10, n_heads=4)


def test_causal_mask_is_respected() -> None:
    attention = InterpretableMultiHeadAttention(d_model=8, n_heads=2).eval()
    x = torch.randn(2, 6, 8)
    mask = causal_mask(6, 6)
    out, weights = attention(x, x, x, mask)
    assert torch.equal(weights.triu(diagonal=1), torch.zeros_like(weights))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6))
    later = x.clone()
    later[:, 4:] += 10.0  # a change at step 4 is invisible to queries 0..3
    out_later, _ = attention(later, later, later, mask)
    torch.testing.assert_close(out_later[:, :4], out[:, :4])
    assert not torch.allclose(out_later[:, 4:], out[:, 4:])
    # Fewer queries than keys: aligned with the last keys.
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool())


# --- decomposition and loss --------------------------------------------------------------


def test_decomposition_reconstructs_the_input_and_keeps_a_constant_trend() -> None:
    decomposition = SeriesDecomposition(kernel_size=7)
    x = torch.randn(4, 30, 2)
    seasonal, trend = decomposition(x)
    assert seasonal.shape == trend.shape == x.shape
    torch.testing.assert_close(seasonal + trend, x, rtol=0, atol=1e-6)
    constant = torch.full((2, 30, 1), 3.25)
    seasonal, trend = decomposition(constant)
    torch.testing.assert_close(trend, constant)
    torch.testing.assert_close(seasonal, torch.zeros_like(constant))


def test_moving_average_is_clipped_to_the_window() -> None:
    model = model_for(moving_average=25, window=10)
    assert model.decomposition.kernel_size == 10
    assert model.eval()(*inputs(window=10)).shape == (5, 6, 3)


# --- learning ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> tuple[AdvancedForecaster, object]:
    task = seasonal_task()
    torch.manual_seed(0)
    model = AdvancedForecaster(**task.model_sizes(), season_length=task.season)
    fit_briefly(model, task)
    return model, task


def test_learns_to_beat_seasonal_naive(trained) -> None:
    model, task = trained
    mae, naive = holdout_mae(model, task)
    assert mae < 0.85 * naive, (mae, naive)


def test_trained_quantiles_are_ordered_and_cover_about_80_percent(trained) -> None:
    model, task = trained
    with torch.no_grad():
        train_out = model(*inputs_of(task.train))
        test_out = model(*inputs_of(task.test))
    for out in (train_out, test_out):
        assert (out[..., 1:] >= out[..., :-1]).all()
    # The heads spread during training (they start ~1 seasonal-naive MAE apart).
    target = task.train["target"]
    inside = (train_out[..., 0] <= target) & (target <= train_out[..., 2])
    coverage = inside.float().mean().item()
    assert 0.6 < coverage < 0.95, coverage
    below_median = (target < train_out[..., 1]).float().mean().item()
    assert 0.35 < below_median < 0.65, below_median
