"""Batched prediction of windows with a trained model."""

from __future__ import annotations

import numpy as np
import torch

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.data.windows import EncodedPanel, WindowSet, batch_to_tensors
from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.models.artifact import ClusterModel
from forecast_assets.core.models.base import ForecastModel, model_inputs, resolve_device


@torch.no_grad()
def predict_windows(
    model: ForecastModel,
    encoded: EncodedPanel,
    windows: WindowSet,
    device: str = "auto",
    batch_size: int = 1024,
) -> np.ndarray:
    """Scaled model output for ``windows``: [n_windows, horizon] for a point model,
    [n_windows, horizon, n_quantiles] for a quantile model."""
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
        shape = (0, encoded.horizon) + ((len(model.quantiles),) if model.quantiles else ())
        return np.zeros(shape, dtype=np.float32)
    return np.concatenate(outputs)


def to_original_units(
    scaled: np.ndarray, rows: np.ndarray, scalers: ScalerManager, nonnegative: bool
) -> np.ndarray:
    """Scaled forecasts [n, horizon] (or [n, horizon, n_quantiles]) of the SKU ``rows`` back
    in units, floored at zero when demand cannot be negative."""
    if scaled.ndim == 3:
        columns = [
            to_original_units(scaled[..., q], rows, scalers, nonnegative)
            for q in range(scaled.shape[-1])
        ]
        return np.stack(columns, axis=-1)
    forecast = scalers.inverse_transform(scaled.astype(float), rows)
    return np.maximum(forecast, 0.0) if nonnegative else forecast


def predict_cluster(
    model: ClusterModel,
    encoded: EncodedPanel,
    windows: WindowSet,
    device: str = "auto",
    engine: str = "auto",
) -> np.ndarray:
    """Scaled output of a trained cluster model for ``windows``, through onnxruntime when the
    model carries an ONNX export (``engine`` auto or onnxruntime), through torch otherwise."""
    if engine_for(model, engine) == "onnxruntime":
        from forecast_assets.core.inference.export import OnnxForecaster, predict_windows_onnx

        return predict_windows_onnx(OnnxForecaster(model.onnx), encoded, windows)
    return predict_windows(model.to_module(), encoded, windows, device)


def engine_for(model: ClusterModel, engine: str = "auto") -> str:
    """The engine that serves ``model``: onnxruntime when it has an ONNX export (unless torch
    is asked for), torch otherwise."""
    if engine == "onnxruntime" and model.onnx is None:
        raise ModelNotFoundError(
            f"forecast.engine is onnxruntime but the {model.model_type} model trained at "
            f"{model.trained_at} has no ONNX export; retrain with model.onnx: true"
        )
    return "onnxruntime" if engine != "torch" and model.onnx is not None else "torch"
