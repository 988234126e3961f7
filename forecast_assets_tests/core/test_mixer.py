"""The mixer model and the shared StochasticDepth and PatchEmbedding components."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from forecast_assets.core.models.components import PatchEmbedding, StochasticDepth
from forecast_assets.core.models.mixer import MixerForecaster
from forecast_assets_tests.core.model_tasks import fit_briefly, holdout_mae, seasonal_task

SIZES = dict(n_skus=10, n_static=3, n_time_features=4)


def inputs(
    batch: int = 5, window: int = 28, horizon: int = 7, n_time: int = 4, n_static: int = 3
) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(batch, window, generator=generator),
        torch.randn(batch, window, n_time, generator=generator),
        torch.randn(batch, horizon, n_time, generator=generator),
        torch.randint(0, 10, (batch,), generator=generator),
        torch.randn(batch, n_static, generator=generator),
    )


def randomise_head(model: MixerForecaster) -> MixerForecaster:
    """Undo the zero-init of the last layer, which otherwise hides everything but the skip."""
    with torch.no_grad():
        for parameter in model.head[-1].parameters():
            parameter.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("horizon", [1, 7, 14])
def test_mixer_maps_the_shared_signature_to_batch_by_horizon(batch: int, horizon: int) -> None:
    model = MixerForecaster(**SIZES, window=28, horizon=horizon)
    assert model(*inputs(batch=batch, horizon=horizon)).shape == (batch, horizon)


def test_mixer_without_categoricals_works() -> None:
    model = MixerForecaster(n_skus=10, n_static=0, n_time_features=4, window=28, horizon=7)
    past, past_time, future_time, sku, _ = inputs()
    assert model(past, past_time, future_time, sku, torch.zeros(5, 0)).shape == (5, 7)


@pytest.mark.parametrize("window", [30, 25, 5])
def test_mixer_takes_windows_that_are_not_a_multiple_of_the_patch(window: int) -> None:
    model = randomise_head(MixerForecaster(**SIZES, window=window, horizon=6, patch_length=7))
    out = model(*inputs(window=window, horizon=6))
    assert out.shape == (5, 6)
    assert torch.isfinite(out).all()


def test_mixer_every_parameter_gets_a_finite_gradient() -> None:
    torch.manual_seed(0)
    model = randomise_head(MixerForecaster(**SIZES, window=28, horizon=7)).train()
    model(*inputs(batch=16)).square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_mixer_stays_under_half_a_million_parameters_at_defaults() -> None:
    small = MixerForecaster(n_skus=300, n_static=10, n_time_features=8, window=56, horizon=14)
    large = MixerForecaster(n_skus=5000, n_static=50, n_time_features=8, window=56, horizon=28)
    assert small.parameter_count() < large.parameter_count() < 500_000


def test_mixer_hyperparameters_rebuild_the_same_model() -> None:
    model = MixerForecaster(**SIZES, window=30, horizon=5, d_model=16, season_length=7)
    # The settings are generated from the signature, so every argument must be recorded.
    assert set(model.hyperparameters) == set(inspect.signature(MixerForecaster).parameters)
    rebuilt = MixerForecaster(**model.hyperparameters)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.hyperparameters == model.hyperparameters
    assert model.quantiles == ()


def test_mixer_uses_no_attention() -> None:
    model = MixerForecaster(**SIZES, window=28, horizon=7)
    for module in model.modules():
        assert not isinstance(module, nn.MultiheadAttention)
        assert "attention" not in type(module).__name__.lower()


@pytest.mark.parametrize(("season", "window"), [(7, 30), (52, 30), (1, 30)])
def test_untrained_mixer_is_exactly_seasonal_naive(season: int, window: int) -> None:
    model = MixerForecaster(**SIZES, window=window, horizon=9, season_length=season).eval()
    past, past_time, future_time, sku, static = inputs(window=window, horizon=9)
    out = model(past, past_time, future_time, sku, static)
    if 1 < season <= window:
        expected = torch.stack([past[:, window - season + h % season] for h in range(9)], dim=1)
    else:
        expected = past[:, -1:].expand(-1, 9)
    torch.testing.assert_close(out, expected)


def test_token_mixing_carries_an_early_patch_to_the_last_token() -> None:
    torch.manual_seed(0)
    model = randomise_head(MixerForecaster(**SIZES, window=28, horizon=7, season_length=7))
    model.eval()
    tokens: list[torch.Tensor] = []
    model.blocks[-1].register_forward_hook(lambda _m, _i, output: tokens.append(output))
    past, past_time, future_time, sku, static = inputs()
    changed = past.clone()
    changed[:, :7] += 3.0  # the first patch only: outside the seasonal naive skip
    before = model(past, past_time, future_time, sku, static)
    after = model(changed, past_time, future_time, sku, static)
    assert not torch.allclose(before, after)
    # Channel mixing and FiLM act per patch, so only token mixing can move the change into
    # the most recent patch.
    assert not torch.allclose(tokens[0][:, -1], tokens[1][:, -1])


def test_mixer_beats_seasonal_naive_on_a_noisy_weekly_signal() -> None:
    task = seasonal_task()
    torch.manual_seed(0)
    model = MixerForecaster(**task.model_sizes(), season_length=task.season)
    fit_briefly(model, task)
    model_mae, naive_mae = holdout_mae(model, task)
    assert model_mae < 0.85 * naive_mae


def test_stochastic_depth_is_the_identity_at_evaluation_and_for_p_zero() -> None:
    x = torch.randn(50, 3, 2)
    assert torch.equal(StochasticDepth(0.5).eval()(x), x)
    assert torch.equal(StochasticDepth(0.0).train()(x), x)


def test_stochastic_depth_drops_whole_samples_and_rescales_the_survivors() -> None:
    torch.manual_seed(0)
    out = StochasticDepth(0.5).train()(torch.ones(1000, 4))
    dropped = (out == 0).all(dim=1)
    kept = (out == 2.0).all(dim=1)
    assert bool((dropped | kept).all())  # each row dropped or kept whole, survivors x 1/(1-p)
    assert 400 < int(dropped.sum()) < 600


@pytest.mark.parametrize(
    ("length", "patch_length", "stride", "n_patches"),
    [(56, 7, 7, 8), (54, 7, 7, 8), (56, 8, 4, 13), (30, 7, 7, 5), (11, 4, 3, 4), (5, 7, 7, 1)],
)
def test_patch_embedding_counts_patches(
    length: int, patch_length: int, stride: int, n_patches: int
) -> None:
    embedding = PatchEmbedding(length, 2, patch_length, stride, d_model=6)
    assert embedding.n_patches == n_patches
    assert embedding(torch.randn(3, length, 2)).shape == (3, n_patches, 6)


@pytest.mark.parametrize(("length", "patch_length", "stride"), [(56, 7, 7), (54, 7, 7), (11, 4, 3)])
def test_patch_embedding_last_patch_ends_on_the_last_period(
    length: int, patch_length: int, stride: int
) -> None:
    n_features = 3
    embedding = PatchEmbedding(length, n_features, patch_length, stride, d_model=1)
    with torch.no_grad():
        # Patches flatten to (position, feature): pick the last position's second feature.
        embedding.projection.weight.zero_()
        embedding.projection.weight[0, (patch_length - 1) * n_features + 1] = 1.0
        embedding.projection.bias.zero_()
    x = torch.randn(4, length, n_features)
    torch.testing.assert_close(embedding(x)[:, -1, 0], x[:, -1, 1])


@pytest.mark.parametrize(
    ("length", "patch_length", "stride", "expected"),
    [
        (12, 4, 4, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]),
        # Left-padded by repeating period 0 so that the last patch ends on period 10.
        (11, 4, 3, [[0, 0, 0, 1], [1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]),
        (9, 4, 2, [[0, 0, 1, 2], [1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 8]]),
    ],
)
def test_patch_embedding_patches_are_the_expected_slices(
    length: int, patch_length: int, stride: int, expected: list[list[int]]
) -> None:
    n_features = 2
    embedding = PatchEmbedding(length, n_features, patch_length, stride, d_model=1)
    embedding.projection = nn.Identity()  # expose the raw flattened patches
    t = torch.arange(length, dtype=torch.float32)
    x = torch.stack([t, 100.0 + t], dim=-1).unsqueeze(0)  # [1, L, 2]
    patches = embedding(x).view(len(expected), patch_length, n_features)
    slices = torch.tensor(expected, dtype=torch.float32)
    torch.testing.assert_close(patches[..., 0], slices)
    torch.testing.assert_close(patches[..., 1], 100.0 + slices)
