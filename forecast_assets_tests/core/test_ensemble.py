"""The ensemble across architectures: the mean of its members, each trained on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forecast_assets.core.inference.predictor import predict_windows
from forecast_assets.core.models.base import point_of
from forecast_assets.core.models.registry import build_model
from forecast_assets.core.training.cluster_model import train_cluster_model
from forecast_assets.core.training.trainer import TrainingConfig
from forecast_assets_tests.core.test_evaluation import SEASON, encode, weekly_panel

SIZES = dict(n_skus=5, n_static=2, n_time_features=3, window=21, horizon=7, season_length=7)


def inputs(batch: int = 6, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, SIZES["window"], generator=generator),
        torch.randn(batch, SIZES["window"], 3, generator=generator),
        torch.randn(batch, SIZES["horizon"], 3, generator=generator),
        torch.randint(0, SIZES["n_skus"], (batch,), generator=generator),
        torch.randn(batch, 2, generator=generator),
    ]


@torch.no_grad()
def test_the_forecast_is_the_mean_of_the_members_point_forecasts() -> None:
    torch.manual_seed(0)
    ensemble = build_model("ensemble", **SIZES, members=("lightweight", "advanced")).eval()
    batch = inputs()
    lightweight = ensemble.members["lightweight"](*batch)
    advanced = ensemble.members["advanced"]
    median = point_of(advanced(*batch), advanced.quantiles)  # a quantile member's median head
    assert advanced.quantiles and median.shape == lightweight.shape
    torch.testing.assert_close(ensemble(*batch), (lightweight + median) / 2)
    assert ensemble.quantiles == ()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (("lightweight",), "two or more"),
        (("mixer", "mixer"), "two or more"),
        (("mixer", "prophet"), "prophet"),
        (("mixer", "ensemble"), "ensemble"),
    ],
)
def test_bad_members_are_refused(members, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_model("ensemble", **SIZES, members=members)


def test_members_are_trained_on_their_own_and_combined(tmp_path) -> None:
    encoded, _ = encode(weekly_panel())
    config = TrainingConfig(epochs=2, batch_size=64, max_windows_per_epoch=256, seed=3)
    options = {
        "members": ("lightweight", "mixer"),
        "member_options": {"lightweight": {"channels": 8}, "mixer": {"d_model": 16}},
        "season_length": SEASON,
    }
    model = train_cluster_model(encoded, "ensemble", options, config, checkpoint=tmp_path / "c.pt")
    assert model.model_type == "ensemble"
    assert {key.split(".")[1] for key in model.state_dict} == {"lightweight", "mixer"}
    assert model.hyperparameters["member_options"]["lightweight"]["channels"] == 8
    assert set(model.members) == {"lightweight", "mixer"}
    # Each member is exactly what training that family alone gives (same seed, same data).
    alone = train_cluster_model(
        encoded, "mixer", {**options["member_options"]["mixer"], "season_length": SEASON}, config
    )
    for key, tensor in alone.state_dict.items():
        torch.testing.assert_close(model.state_dict[f"members.mixer.{key}"], tensor)
    # Each member checkpoints on its own, next to the ensemble's checkpoint path.
    assert sorted(p.name for p in tmp_path.glob("c-*.pt")) == ["c-lightweight.pt", "c-mixer.pt"]
    # Rebuilt from the artifact, it predicts the mean of its members.
    module = model.to_module()
    windows = encoded.validation
    both = predict_windows(module, encoded, windows, device="cpu")
    parts = [predict_windows(m, encoded, windows, device="cpu") for m in module.members.values()]
    np.testing.assert_allclose(both, np.mean(parts, axis=0), atol=1e-5)
