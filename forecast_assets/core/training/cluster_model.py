"""ClusterModel: one trained model of one cluster, as a plain, picklable artifact."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from forecast_assets.core.data.windows import EncodedPanel, WindowDataset
from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.registry import build_model
from forecast_assets.core.training.trainer import (
    Trainer,
    TrainerCallback,
    TrainingConfig,
    TrainingResult,
)

logger = logging.getLogger(__name__)


@dataclass
class ClusterModel:
    """Weights plus everything needed to rebuild and use them (no pickled nn.Module)."""

    model_type: str
    hyperparameters: dict[str, object]
    state_dict: dict[str, torch.Tensor]
    skus: list[str]
    trained_at: str  # ISO 8601, UTC
    training: TrainingResult
    parameter_count: int = 0
    quantiles: tuple[float, ...] = ()  # of the output heads; empty for a point model
    onnx: bytes | None = None  # the same weights exported to ONNX, served by onnxruntime
    extra: dict[str, object] = field(default_factory=dict)

    def to_module(self) -> ForecastModel:
        model = build_model(self.model_type, **self.hyperparameters)
        model.load_state_dict(self.state_dict)
        return model.eval()


def train_cluster_model(
    encoded: EncodedPanel,
    model_type: str,
    model_options: Mapping[str, object],
    config: TrainingConfig,
    callbacks: Sequence[TrainerCallback] = (),
    checkpoint: str | os.PathLike[str] | None = None,
) -> ClusterModel:
    """Build a ``model_type`` model sized for ``encoded`` and train it with early stopping,
    resuming from ``checkpoint`` when an earlier attempt left one there."""
    model = build_model(
        model_type,
        n_skus=encoded.n_skus,
        n_static=encoded.n_static_features,
        n_time_features=encoded.n_time_features,
        window=encoded.window,
        horizon=encoded.horizon,
        **model_options,
    )
    trainer = Trainer(config, callbacks, checkpoint)
    result = trainer.fit(
        model, WindowDataset(encoded, encoded.train), WindowDataset(encoded, encoded.validation)
    )
    logger.info(
        "trained %s on %d windows: best validation loss %.4f at epoch %d",
        model_type,
        len(encoded.train),
        result.best_validation_loss,
        result.best_epoch,
    )
    return ClusterModel(
        model_type=model_type,
        hyperparameters=dict(model.hyperparameters),
        state_dict={name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        skus=list(encoded.skus),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training=result,
        parameter_count=model.parameter_count(),
        quantiles=tuple(model.quantiles),
    )


def checkpoint_path(
    folder: Path,
    cluster: str,
    encoded: EncodedPanel,
    model_type: str,
    model_options: Mapping[str, object],
    config: TrainingConfig,
) -> Path:
    """Where training of ``cluster`` checkpoints: the name carries a fingerprint of the data,
    the model and the training settings, so that a retried run resumes only the very same
    training, and new data or settings start afresh."""
    digest = hashlib.sha256()
    for array in (encoded.padded, encoded.calendar, encoded.static):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(map(str, encoded.skus)).encode())
    described = [model_type, dict(model_options), asdict(config)]
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return folder / f"{cluster}-{digest.hexdigest()[:16]}.pt"


def remove_checkpoints(folder: Path, cluster: str) -> None:
    """Drop the cluster's checkpoints once its trained model is stored."""
    for stale in folder.glob(f"{cluster}-*.pt"):
        stale.unlink(missing_ok=True)
