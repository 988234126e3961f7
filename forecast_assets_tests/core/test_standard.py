"""The standard model: transformer encoder-decoder and its attention building blocks."""

from __future__ import annotations

import inspect
import itertools
import typing

import pytest
import torch

from forecast_assets.core.models.attention import (
    MultiHeadAttention,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from forecast_assets.core.models.standard import StandardForecaster
from forecast_assets_tests.core.model_tasks import fit_briefly, holdout_mae, seasonal_task

N_SKUS, N_STATIC, N_TIME = 10, 3, 4
SIZE_ARGUMENTS = ("n_skus", "n_static", "n_time_features", "window", "horizon", "season_length")


def inputs(
    batch: int = 5, window: int = 30, horizon: int = 6, n_static: int = N_STATIC, seed: int = 0
):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, window, generator=generator),
        torch.randn(batch, window, N_TIME, generator=generator),
        torch.randn(batch, horizon, N_TIME, generator=generator),
        torch.randint(0, N_SKUS, (batch,), generator=generator),
        torch.randn(batch, n_static, generator=generator),
    )


def small_model(window: int = 30, horizon: int = 6, **options) -> StandardForecaster:
    torch.manual_seed(0)
    sizes = dict(d_model=16, n_heads=2, dim_feedforward=32, embedding_dim=4) | options
    return StandardForecaster(N_SKUS, N_STATIC, N_TIME, window, horizon, **sizes)


def randomise_head(model: StandardForecaster) -> None:
    """Undo the zero initialisation of the head so that the transformer path shows in the
    output (an untrained model is exactly its seasonal naive skip path)."""
    with torch.no_grad():
        for parameter in model.head.parameters():
            parameter.normal_(0.0, 0.5)


OPTIONS = [
    dict(positional=positional, pre_norm=pre_norm, film=film, improved_head=improved_head)
    for positional, pre_norm, film, improved_head in itertools.product(
        ["sinusoidal", "rope"], [True, False], [True, False], [True, False]
    )
]


@pytest.mark.parametrize(("batch", "horizon"), list(itertools.product([1, 7, 64], [1, 7, 14])))
def test_forward_maps_the_shared_signature_to_batch_by_horizon(batch: int, horizon: int) -> None:
    model = small_model(horizon=horizon).eval()
    assert model(*inputs(batch=batch, horizon=horizon)).shape == (batch, horizon)


def test_works_without_categoricals() -> None:
    model = StandardForecaster(N_SKUS, 0, N_TIME, window=30, horizon=6)
    past, past_time, future_time, sku, _ = inputs()
    assert model(past, past_time, future_time, sku, torch.zeros(5, 0)).shape == (5, 6)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_every_option_combination_trains_and_predicts(options: dict) -> None:
    model = small_model(stochastic_depth=0.1, **options)
    model.train()  # dropout and stochastic depth active
    out = model(*inputs(batch=8))
    assert out.shape == (8, 6)
    out.sum().backward()
    assert model.eval()(*inputs(batch=3)).shape == (3, 6)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_backward_gives_every_parameter_a_finite_nonzero_gradient(options: dict) -> None:
    model = small_model(dropout=0.0, **options)
    randomise_head(model)
    model.train()
    model(*inputs(batch=16)).square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_zero_initialised_head_still_gets_a_gradient_on_the_first_step() -> None:
    model = small_model()
    model(*inputs(batch=16)).square().mean().backward()
    last = model.head[-1]
    assert last.weight.grad.abs().sum() > 0
    assert last.bias.grad.abs().sum() > 0


@pytest.mark.parametrize(("season", "positional"), [(7, "sinusoidal"), (7, "rope"), (52, "rope")])
def test_untrained_model_is_exactly_seasonal_naive(season: int, positional: str) -> None:
    model = small_model(horizon=9, season_length=season, positional=positional).eval()
    past, *rest = inputs(horizon=9)
    out = model(past, *rest)
    if season <= 30:
        expected = torch.stack([past[:, 30 - season + h % season] for h in range(9)], dim=1)
    else:
        expected = past[:, -1:].expand(-1, 9)
    torch.testing.assert_close(out, expected)


def test_parameter_count_stays_under_budget_at_defaults() -> None:
    model = StandardForecaster(n_skus=300, n_static=10, n_time_features=8, window=56, horizon=14)
    assert model.parameter_count() < 200_000  # about 139K
    large = StandardForecaster(n_skus=5000, n_static=50, n_time_features=8, window=56, horizon=28)
    assert large.parameter_count() < 1_000_000


def test_constructor_follows_the_settings_convention() -> None:
    """The settings section is generated from the signature: every tunable argument has a
    default of its simple annotated type, and ``hyperparameters`` holds every argument."""
    hints = typing.get_type_hints(StandardForecaster.__init__)
    parameters = inspect.signature(StandardForecaster.__init__).parameters
    for name, parameter in parameters.items():
        if name == "self" or name in SIZE_ARGUMENTS[:5]:
            continue
        assert hints[name] in (int, float, bool, str), name
        assert type(parameter.default) is hints[name], name
    assert list(parameters)[-1] == "season_length"
    model = small_model(positional="rope", pre_norm=False, season_length=7)
    assert set(model.hyperparameters) == set(parameters) - {"self"}
    assert model.quantiles == ()


def test_rebuilds_from_its_hyperparameters() -> None:
    model = small_model(positional="rope", film=False, season_length=7).eval()
    randomise_head(model)
    rebuilt = StandardForecaster(**model.hyperparameters).eval()
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(*inputs()), model(*inputs()))


def test_rejects_unknown_positional_encoding_and_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="alibi"):
        small_model(positional="alibi")
    with pytest.raises(ValueError, match="divisible"):
        small_model(d_model=18, n_heads=4)


@pytest.mark.parametrize("positional", ["sinusoidal", "rope"])
def test_a_row_gets_the_same_forecast_at_any_batch_size(positional: str) -> None:
    model = small_model(positional=positional).eval()
    randomise_head(model)
    batch = inputs(batch=64)
    full = model(*batch)
    for size in (1, 7):
        torch.testing.assert_close(model(*[x[:size] for x in batch]), full[:size])


def test_rope_scores_depend_only_on_relative_position() -> None:
    rope = RotaryEmbedding(head_dim=8, max_length=32)
    torch.manual_seed(0)
    q, k = torch.randn(1, 8), torch.randn(1, 8)  # [L=1, d]

    def score(m: int, n: int) -> torch.Tensor:
        return (rope(q, offset=m) * rope(k, offset=n)).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8))
    torch.testing.assert_close(score(20, 20), score(0, 0))
    torch.testing.assert_close(score(0, 0), (q * k).sum())  # position 0 is no rotation
    assert not torch.allclose(score(3, 1), score(3, 2))
    x = torch.randn(2, 3, 32, 8)
    torch.testing.assert_close(rope(x).norm(dim=-1), x.norm(dim=-1))
    assert not torch.allclose(rope(x)[..., 1:, :], x[..., 1:, :])


def test_rope_of_a_sequence_rotates_each_step_at_its_position() -> None:
    rope = RotaryEmbedding(head_dim=4, max_length=16)
    x = torch.randn(1, 5, 4)
    sequence = rope(x, offset=3)
    for step in range(5):
        torch.testing.assert_close(sequence[:, step], rope(x[:, step : step + 1], 3 + step)[:, 0])


def test_sinusoidal_encoding_is_a_fixed_buffer_on_one_timeline() -> None:
    encoding = SinusoidalPositionalEncoding(d_model=6, max_length=20)
    assert list(encoding.parameters()) == []
    zeros = torch.zeros(2, 5, 6)
    first = encoding(zeros)[0]
    torch.testing.assert_close(first[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    one = torch.tensor(1.0)
    torch.testing.assert_close(first[1, :2], torch.stack([one.sin(), one.cos()]))  # p=1, i=0
    # An offset continues the same timeline (the decoder's positions follow the encoder's).
    torch.testing.assert_close(encoding(torch.zeros(1, 3, 6), offset=2)[0], first[2:5])
    assert (first.norm(dim=-1) > 0).all()
    assert not torch.allclose(first[1], first[2])


def test_causal_attention_never_looks_ahead() -> None:
    attention = MultiHeadAttention(d_model=8, n_heads=2, causal_length=6).eval()
    x = torch.randn(2, 6, 8)
    changed = x.clone()
    changed[:, 4] += 5.0
    before, after = attention(x, x), attention(changed, changed)
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])


@pytest.mark.parametrize(
    ("positional", "pre_norm"), list(itertools.product(["sinusoidal", "rope"], [True, False]))
)
def test_a_forecast_step_never_depends_on_later_calendar_features(
    positional: str, pre_norm: bool
) -> None:
    model = small_model(horizon=8, positional=positional, pre_norm=pre_norm).eval()
    randomise_head(model)
    past, past_time, future_time, sku, static = inputs(horizon=8)
    before = model(past, past_time, future_time, sku, static)
    for step in (0, 3, 7):
        changed = future_time.clone()
        changed[:, step] += 3.0
        after = model(past, past_time, changed, sku, static)
        torch.testing.assert_close(after[:, :step], before[:, :step])
        assert not torch.allclose(after[:, step], before[:, step])
    # Every step reads the whole past through cross-attention.
    changed_past = past_time.clone()
    changed_past[:, 0] += 3.0
    after = model(past, changed_past, future_time, sku, static)
    assert not torch.allclose(after, before, atol=1e-4, rtol=0)


def test_learns_a_seasonal_signal_better_than_seasonal_naive() -> None:
    task = seasonal_task()
    torch.manual_seed(0)
    # Smaller than the defaults to keep the test to a few CPU seconds; the defaults reach
    # about the same ratio (0.77 to 0.82 over task seeds 0 to 2) in about three times as long.
    model = StandardForecaster(
        **task.model_sizes(),
        d_model=32,
        dim_feedforward=64,
        embedding_dim=8,
        season_length=task.season,
    )
    fit_briefly(model, task)
    model_mae, naive_mae = holdout_mae(model, task)
    assert model_mae < 0.85 * naive_mae


def test_rope_cross_attention_sees_query_and_key_positions() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(head_dim=4, max_length=64)
    attention = MultiHeadAttention(d_model=8, n_heads=2, rotary=rope).eval()
    query, memory = torch.randn(2, 3, 8), torch.randn(2, 10, 8)
    forecast_steps = attention(query, memory, query_offset=10, key_offset=0)
    # Shifting both timelines together keeps every distance, so the output too.
    torch.testing.assert_close(attention(query, memory, 30, 20), forecast_steps)
    assert not torch.allclose(attention(query, memory, 10, 5), forecast_steps)
    assert not torch.allclose(attention(query, memory, 0, 0), forecast_steps)


def test_sinusoidal_positions_continue_from_the_past_into_the_forecast() -> None:
    model = small_model(window=30, horizon=6).eval()
    offsets = []
    model.positional.register_forward_pre_hook(
        lambda module, args, kwargs: offsets.append((args[0].shape[1], kwargs.get("offset", 0))),
        with_kwargs=True,
    )
    model(*inputs())
    assert offsets == [(30, 0), (6, 30)]  # encoder at 0 .. 29, decoder at 30 .. 35


def test_rope_decoder_layers_work_at_forecast_positions() -> None:
    model = small_model(window=30, horizon=6, positional="rope", decoder_layers=2).eval()
    assert model.positional is None  # RoPE replaces the additive encoding
    offsets = []
    for layer in model.decoder:
        layer.register_forward_pre_hook(
            lambda module, args, kwargs: offsets.append(kwargs.get("offset", 0)),
            with_kwargs=True,
        )
    model(*inputs())
    assert offsets == [30, 30]  # forecast periods sit right after the 30 past periods
