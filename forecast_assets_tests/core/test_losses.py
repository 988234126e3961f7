"""Training losses against hand-computed values, and how the combined loss weighs them."""

import pytest
import torch

from forecast_assets.core.models.losses import (
    ForecastLoss,
    loss_weights,
    mase_loss,
    pinball_loss,
    smape_loss,
)


def test_smape_is_computed_in_original_units_through_the_scaled_zero() -> None:
    # Scaled zero -1: scaled 1 and 3 are 2 and 4 units of demand; 2|2 - 4| / (2 + 4) = 2/3.
    # Both zero (scaled -1 and -1) counts as a perfect forecast.
    prediction = torch.tensor([[1.0, -1.0]])
    target = torch.tensor([[3.0, -1.0]])
    loss = smape_loss(prediction, target, torch.tensor([-1.0]))
    assert loss.item() == pytest.approx((2 / 3 + 0.0) / 2)


def test_mase_divides_by_the_windows_seasonal_naive_error() -> None:
    # Season 2: in-sample naive errors |3-1|, |4-2|, |7-3| -> mean 8/3; error |10 - 6| = 4.
    past = torch.tensor([[1.0, 2.0, 3.0, 4.0, 7.0]])
    loss = mase_loss(torch.tensor([[6.0]]), torch.tensor([[10.0]]), past, season=2)
    assert loss.item() == pytest.approx(4 / (8 / 3))
    # A season as long as the window falls back to lag 1: errors 1, 1, 1, 3 -> mean 1.5.
    lag_one = mase_loss(torch.tensor([[6.0]]), torch.tensor([[10.0]]), past, season=5)
    assert lag_one.item() == pytest.approx(4 / 1.5)


def test_mase_floors_the_scale_of_flat_windows() -> None:
    flat = torch.zeros(1, 6)
    loss = mase_loss(torch.tensor([[0.5]]), torch.tensor([[0.0]]), flat, season=1)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.5 / 1e-2)


def test_pinball_matches_a_hand_computation() -> None:
    # y = 1 and 3; quantile 0.1 forecast 2, 0.9 forecast 2 at both steps.
    # step 1: e = -1 -> q0.1: 0.9, q0.9: 0.1; step 2: e = 1 -> q0.1: 0.1, q0.9: 0.9.
    prediction = torch.full((1, 2, 2), 2.0)
    loss = pinball_loss(prediction, torch.tensor([[1.0, 3.0]]), (0.1, 0.9))
    assert loss.item() == pytest.approx((0.9 + 0.1 + 0.1 + 0.9) / 4)


def test_combined_loss_is_the_weighted_sum_of_its_terms() -> None:
    prediction = torch.tensor([[1.0, 2.0]])
    target = torch.tensor([[2.0, 4.0]])
    past = torch.tensor([[0.0, 1.0, 3.0]])
    zero = torch.tensor([0.0])
    combined = ForecastLoss({"mae": 1.0, "mse": 0.5, "smape": 2.0})(prediction, target, past, zero)
    mae, mse = 1.5, 2.5
    smape = (2 * 1 / 3 + 2 * 2 / 6) / 2
    assert combined.item() == pytest.approx(mae + 0.5 * mse + 2.0 * smape)


def test_quantile_models_always_get_the_pinball_term_and_point_losses_use_the_median() -> None:
    quantiles = (0.1, 0.5, 0.9)
    loss = ForecastLoss({"mae": 1.0}, quantiles=quantiles)
    assert loss.weights == {"mae": 1.0, "pinball": 1.0}
    output = torch.tensor([[[0.0, 2.0, 5.0]]])  # median head 2
    target = torch.tensor([[3.0]])
    value = loss(output, target, torch.zeros(1, 3), torch.zeros(1))
    pinball = (0.1 * 3 + 0.5 * 1 + 0.1 * 2) / 3  # e = 3, 1, -2
    assert value.item() == pytest.approx(1.0 + pinball)


def test_unknown_or_empty_losses_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        ForecastLoss({"rmsle": 1.0})
    with pytest.raises(ValueError, match="at least one term"):
        ForecastLoss({"mae": 0.0})
    assert loss_weights("mase", {"mae": 3.0}) == {"mase": 1.0}
    assert loss_weights("combined", {"mae": 3.0}) == {"mae": 3.0}
