"""Batched prediction of windows with a trained model."""

from __future__ import annotations

import numpy as np
import torch

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel, WindowSet, batch_to_tensors
from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.training.trainer import model_inputs, resolve_device


@torch.no_grad()
def predict_windows(
    model: ForecastModel,
    encoded: EncodedPanel,
    windows: WindowSet,
    device: str = "auto",
    batch_size: int = 1024,
) -> np.ndarray:
    """Scaled point forecasts for ``windows``: [n_windows, horizon]."""
    target_device = resolve_device(device)
    model = model.to(target_device).eval()
    outputs = []
    for start in range(0, len(windows), batch_size):
        chunk = WindowSet(
            windows.rows[start : start + batch_size], windows.origins[start : start + batch_size]
        )
        batch = batch_to_tensors(encoded.batch(chunk, with_target=False))
        outputs.append(model(*model_inputs(batch, target_device)).float().cpu().numpy())
    if not outputs:
        return np.zeros((0, encoded.horizon), dtype=np.float32)
    return np.concatenate(outputs)


def to_original_units(
    scaled: np.ndarray, rows: np.ndarray, scalers: ScalerManager, nonnegative: bool
) -> np.ndarray:
    """Scaled forecasts [n, horizon] of the SKU ``rows`` back in units, floored at zero when
    demand cannot be negative."""
    forecast = scalers.inverse_transform(scaled.astype(float), rows)
    return np.maximum(forecast, 0.0) if nonnegative else forecast
