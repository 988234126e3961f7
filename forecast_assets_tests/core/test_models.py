"""Model building blocks and the lightweight TCN."""

import pytest
import torch

from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.models.components import (
    CausalConv1d,
    FiLM,
    StaticContext,
    TemporalConvNet,
)
from forecast_assets.core.models.lightweight import LightweightForecaster
from forecast_assets.core.models.registry import available_model_types, build_model
from forecast_assets_tests.core.model_tasks import fit_briefly, holdout_mae, seasonal_task


def inputs(batch: int = 5, window: int = 30, horizon: int = 6, n_time: int = 4, n_static: int = 3):
    torch.manual_seed(0)
    return (
        torch.randn(batch, window),
        torch.randn(batch, window, n_time),
        torch.randn(batch, horizon, n_time),
        torch.randint(0, 10, (batch,)),
        torch.randn(batch, n_static),
    )


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("horizon", [1, 7, 14])
def test_tcn_maps_the_shared_signature_to_batch_by_horizon(batch: int, horizon: int) -> None:
    model = LightweightForecaster(
        n_skus=10, n_static=3, n_time_features=4, window=30, horizon=horizon
    )
    assert model(*inputs(batch=batch, horizon=horizon)).shape == (batch, horizon)


def test_tcn_backward_reaches_every_parameter() -> None:
    model = LightweightForecaster(n_skus=10, n_static=3, n_time_features=4, window=30, horizon=6)
    with torch.no_grad():  # the zero-initialised head would block gradients upstream
        model.decoder[-1].weight.normal_()
    model(*inputs()).square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_tcn_rebuilds_from_its_hyperparameters() -> None:
    model = LightweightForecaster(
        n_skus=10, n_static=3, n_time_features=4, window=30, horizon=6, levels=2
    )
    rebuilt = LightweightForecaster(**model.hyperparameters)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.eval()(*inputs()), model.eval()(*inputs()))


def test_tcn_learns_a_seasonal_signal_better_than_seasonal_naive() -> None:
    task = seasonal_task()
    torch.manual_seed(0)
    model = LightweightForecaster(**task.model_sizes(), season_length=task.season)
    fit_briefly(model, task)
    model_mae, naive_mae = holdout_mae(model, task)
    assert model_mae < 0.85 * naive_mae


def test_tcn_stays_lightweight_at_defaults() -> None:
    model = LightweightForecaster(
        n_skus=5000, n_static=50, n_time_features=8, window=56, horizon=28
    )
    assert model.parameter_count() < 1_000_000


def test_tcn_without_categoricals_works() -> None:
    model = LightweightForecaster(n_skus=10, n_static=0, n_time_features=4, window=30, horizon=6)
    past, past_time, future_time, sku, _ = inputs()
    assert model(past, past_time, future_time, sku, torch.zeros(5, 0)).shape == (5, 6)


def test_causal_convolution_never_looks_ahead() -> None:
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=4)
    x = torch.randn(1, 2, 40)
    changed = x.clone()
    changed[:, :, 25] += 10.0
    before, after = conv(x), conv(changed)
    assert torch.equal(before[:, :, :25], after[:, :, :25])
    assert not torch.allclose(before[:, :, 25], after[:, :, 25])


def test_tcn_receptive_field_covers_the_window() -> None:
    net = TemporalConvNet(channels=4, levels=3, kernel_size=3, dropout=0.0, context_dim=2).eval()
    field = TemporalConvNet.receptive_field(levels=3, kernel_size=3)  # 1 + 2*2*7 = 29
    assert field == 29
    x = torch.randn(1, 4, 40)
    context = torch.randn(1, 2)
    last = net(x, context)[:, :, -1]
    inside, outside = x.clone(), x.clone()
    inside[:, :, 40 - field] += 5.0  # oldest input the last output can see
    outside[:, :, 40 - field - 1] += 5.0  # one step older: invisible
    assert not torch.allclose(net(inside, context)[:, :, -1], last)
    assert torch.allclose(net(outside, context)[:, :, -1], last)


def test_film_modulates_by_context_and_starts_near_identity() -> None:
    film = FiLM(context_dim=3, channels=2)
    x = torch.randn(4, 2, 7)
    torch.nn.init.zeros_(film.to_gamma_beta.weight)
    torch.nn.init.zeros_(film.to_gamma_beta.bias)
    assert torch.equal(film(x, torch.randn(4, 3)), x)
    with torch.no_grad():
        film.to_gamma_beta.bias.copy_(
            torch.tensor([1.0, 0.0, 0.5, -2.0])
        )  # gamma=(1,0), beta=(.5,-2)
    out = film(x, torch.randn(4, 3))
    assert torch.allclose(out[:, 0], x[:, 0] * 2 + 0.5)
    assert torch.allclose(out[:, 1], x[:, 1] - 2.0)


def test_static_context_depends_on_sku_and_attributes() -> None:
    context = StaticContext(n_skus=4, n_static=2, embedding_dim=3, context_dim=5)
    sku = torch.tensor([0, 1])
    static = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    out = context(sku, static)
    assert out.shape == (2, 5)
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(context(sku, torch.tensor([[0.0, 1.0], [0.0, 1.0]])), out)


def test_registry_builds_by_name_and_rejects_unknown() -> None:
    assert sorted(available_model_types()) == [
        "advanced",
        "ensemble",
        "lightweight",
        "mixer",
        "standard",
    ]
    model = build_model(
        "lightweight", n_skus=3, n_static=0, n_time_features=2, window=10, horizon=2
    )
    assert isinstance(model, LightweightForecaster)
    assert model.hyperparameters["window"] == 10
    with pytest.raises(ModelNotFoundError, match="prophet"):
        build_model("prophet")


@pytest.mark.parametrize(("season", "window"), [(7, 30), (52, 30), (1, 30)])
def test_untrained_tcn_is_exactly_seasonal_naive(season: int, window: int) -> None:
    model = LightweightForecaster(
        n_skus=10, n_static=3, n_time_features=4, window=window, horizon=9, season_length=season
    )
    past, past_time, future_time, sku, static = inputs(window=window, horizon=9)
    out = model.eval()(past, past_time, future_time, sku, static)
    if season <= window and season > 1:
        # Step h repeats the value one season before it: past[W - m + (h mod m)].
        expected = torch.stack([past[:, window - season + h % season] for h in range(9)], dim=1)
    else:
        expected = past[:, -1:].expand(-1, 9)  # a season longer than the window: last value
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(("season", "window", "seasons"), [(7, 30, 3), (7, 30, 9), (1, 10, 4)])
def test_skip_path_can_start_as_the_mean_of_several_seasons(season, window, seasons) -> None:
    from forecast_assets.core.models.components import SeasonalNaiveSkip

    skip = SeasonalNaiveSkip(window, horizon=10, season_length=season, seasons=seasons)
    past = torch.randn(4, window, dtype=torch.float32)
    period = season if season > 1 else 1
    count = min(seasons, window // period)  # no more seasons than the window holds
    for step in range(10):
        last = window - period + (step % period)
        expected = past[:, [last - k * period for k in range(count)]].mean(dim=1)
        torch.testing.assert_close(skip(past)[:, step], expected)
    tcn = build_model(
        "lightweight",
        n_skus=2,
        n_static=0,
        n_time_features=2,
        window=window,
        horizon=10,
        season_length=season,
        skip_seasons=seasons,
    )
    assert tcn.hyperparameters["skip_seasons"] == seasons
