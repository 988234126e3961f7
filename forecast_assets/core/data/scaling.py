"""ScalerManager: one scaler per SKU, so a global model sees all SKUs on a comparable scale."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import joblib
import numpy as np
import pandas as pd
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

from forecast_assets.core.errors import ConfigurationError, ModelNotFoundError
from forecast_assets.core.storage import artifact_path, atomic_write

ScalingMethod = Literal["standard", "minmax", "maxabs"]
_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "maxabs": MaxAbsScaler}


class ScalerManager:
    """Per-SKU affine scaling: ``scaled = (raw - offset[sku]) / unit[sku]``.

    The fitting is scikit-learn's, run on the matrix [periods, skus] so each SKU is one
    feature; NaN (periods before a SKU existed) are ignored when fitting. Keeping the
    transform as offset/unit lets any batch of rows be scaled by their SKU index.
    """

    def __init__(self, method: ScalingMethod = "standard") -> None:
        if method not in _SCALERS:
            raise ConfigurationError(
                f"unknown scaling method '{method}', use one of {list(_SCALERS)}"
            )
        self.method = method
        self.skus: pd.Index | None = None
        self.offset: np.ndarray | None = None  # [n_skus]
        self.unit: np.ndarray | None = None  # [n_skus], never zero

    def fit(self, values: np.ndarray, skus: pd.Index) -> ScalerManager:
        """Fit on ``values`` [n_skus, n_periods] (only the training periods, to avoid leakage)."""
        scaler = _SCALERS[self.method]()
        scaler.fit(values.T)
        zeros = np.zeros((1, values.shape[0]))
        self.offset = scaler.inverse_transform(zeros)[0]
        self.unit = scaler.inverse_transform(np.ones_like(zeros))[0] - self.offset
        # A SKU with no variation in its training data keeps its own level but a unit scale.
        self.unit = np.where(np.abs(self.unit) > 1e-12, self.unit, 1.0)
        self.skus = pd.Index(skus)
        return self

    def transform(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Scale ``values`` [n, ...] whose rows are the SKUs ``rows`` (all SKUs if None)."""
        offset, unit = self._params(rows, values.ndim)
        return (values - offset) / unit

    def inverse_transform(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Back to original units; same row convention as ``transform``."""
        offset, unit = self._params(rows, values.ndim)
        return values * unit + offset

    def units(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Size of one scaled unit in original units, per SKU: turns scaled errors into units."""
        return self._params(rows, 1)[1]

    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        state = {
            "method": self.method,
            "skus": list(self.skus),
            "offset": self.offset,
            "unit": self.unit,
        }
        return atomic_write(path, lambda tmp: joblib.dump(state, tmp))

    @classmethod
    def load(cls, path: str | Path) -> ScalerManager:
        stored = artifact_path(path)
        if not stored.is_file():
            raise ModelNotFoundError(f"no saved scalers at {path}")
        with stored.open("rb") as handle:
            state = joblib.load(handle)
        manager = cls(state["method"])
        manager.skus = pd.Index(state["skus"])
        manager.offset = np.asarray(state["offset"])
        manager.unit = np.asarray(state["unit"])
        return manager

    def _params(self, rows: np.ndarray | None, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        offset = self.offset if rows is None else self.offset[rows]
        unit = self.unit if rows is None else self.unit[rows]
        shape = (-1,) + (1,) * (ndim - 1)
        return offset.reshape(shape), unit.reshape(shape)

    def _check_fitted(self) -> None:
        if self.offset is None or self.unit is None:
            raise RuntimeError("ScalerManager is not fitted")
