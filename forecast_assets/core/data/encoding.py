"""CategoricalEncoder: static SKU attributes (one-hot and multi-label) as one numeric matrix."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.preprocessing import MultiLabelBinarizer, OneHotEncoder

from forecast_assets.core.errors import DataValidationError, ModelNotFoundError
from forecast_assets.core.storage import artifact_path, atomic_write


class CategoricalEncoder:
    """One-hot for single-valued columns, multi-hot for columns holding several labels.

    A multi-label cell such as ``"organic|local"`` is split on ``separator``. Categories not
    seen when fitting encode as all zeros, so a new store or label never breaks forecasting.
    """

    def __init__(
        self,
        onehot_columns: Sequence[str] = (),
        multilabel_columns: Sequence[str] = (),
        separator: str = "|",
    ) -> None:
        self.onehot_columns = list(onehot_columns)
        self.multilabel_columns = list(multilabel_columns)
        self.separator = separator
        self._onehot: OneHotEncoder | None = None
        self._multilabel: dict[str, MultiLabelBinarizer] = {}
        self.fitted = False

    def fit(self, attributes: pd.DataFrame) -> CategoricalEncoder:
        self._check_columns(attributes)
        if self.onehot_columns:
            self._onehot = OneHotEncoder(
                handle_unknown="ignore", sparse_output=False, dtype=np.float32
            )
            self._onehot.fit(self._onehot_input(attributes))
        for name in self.multilabel_columns:
            self._multilabel[name] = MultiLabelBinarizer().fit(self._labels(attributes[name]))
        self.fitted = True
        return self

    def transform(self, attributes: pd.DataFrame) -> np.ndarray:
        """[n_rows, n_features] float32 matrix (zero columns when nothing is configured)."""
        if not self.fitted:
            raise RuntimeError("CategoricalEncoder is not fitted")
        self._check_columns(attributes)
        parts = [np.zeros((len(attributes), 0), dtype=np.float32)]
        if self._onehot is not None:
            parts.append(self._onehot.transform(self._onehot_input(attributes)))
        for name, binarizer in self._multilabel.items():
            with warnings.catch_warnings():
                # Unknown labels are expected for new SKUs; they simply encode as zeros.
                warnings.simplefilter("ignore", UserWarning)
                parts.append(binarizer.transform(self._labels(attributes[name])).astype(np.float32))
        return np.concatenate(parts, axis=1)

    def fit_transform(self, attributes: pd.DataFrame) -> np.ndarray:
        return self.fit(attributes).transform(attributes)

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        if self._onehot is not None:
            names.extend(self._onehot.get_feature_names_out(self.onehot_columns))
        for name, binarizer in self._multilabel.items():
            names.extend(f"{name}_{label}" for label in binarizer.classes_)
        return names

    def save(self, path: str | Path) -> Path:
        return atomic_write(path, lambda tmp: joblib.dump(self, tmp))

    @classmethod
    def load(cls, path: str | Path) -> CategoricalEncoder:
        stored = artifact_path(path)
        if not stored.is_file():
            raise ModelNotFoundError(f"no saved categorical encoder at {path}")
        with stored.open("rb") as handle:
            encoder = joblib.load(handle)
        if not isinstance(encoder, cls):
            raise ModelNotFoundError(f"{path} does not hold a CategoricalEncoder")
        return encoder

    def _onehot_input(self, attributes: pd.DataFrame) -> np.ndarray:
        return attributes[self.onehot_columns].astype(str).to_numpy()

    def _labels(self, column: pd.Series) -> list[list[str]]:
        return [
            [label.strip() for label in str(cell).split(self.separator) if label.strip()]
            if pd.notna(cell)
            else []
            for cell in column
        ]

    def _check_columns(self, attributes: pd.DataFrame) -> None:
        missing = [
            c for c in (*self.onehot_columns, *self.multilabel_columns) if c not in attributes
        ]
        if missing:
            raise DataValidationError(
                f"attribute column(s) {missing} are missing", column=missing[0], values=missing
            )
