"""ClusterModel: one trained model of one cluster as a stored artifact (weights, the
hyperparameters that rebuild it, what its training recorded), with no pickled module.

Inference, evaluation and the gate read it from here without importing the trainer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import torch

from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.registry import SEASONAL_NAIVE, SIZE_ARGUMENTS, build_model
from forecast_assets.core.storage import ArtifactPath, artifact_path, atomic_write


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float
    seconds: float
    learning_rate: float = 0.0  # at the end of the epoch


@dataclass
class TrainingResult:
    best_epoch: int
    best_validation_loss: float
    stopped_early: bool
    device: str
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0  # the checkpoint's epoch when the run was resumed


@dataclass(frozen=True)
class RefitInfo:
    """How a model was refit on all the data: its epochs and how many windows it saw."""

    epochs: int
    windows: int


@dataclass
class ClusterModel:
    """Weights plus everything needed to rebuild and use them."""

    model_type: str
    hyperparameters: dict[str, object]
    state_dict: dict[str, torch.Tensor]
    skus: list[str]
    trained_at: str  # ISO 8601, UTC
    training: TrainingResult
    parameter_count: int = 0
    quantiles: tuple[float, ...] = ()  # of the output heads; empty for a point model
    onnx: bytes | None = None  # the same weights exported to ONNX, served by onnxruntime
    # An ensemble's members: family -> best epoch and training seconds.
    members: dict[str, dict[str, float]] = field(default_factory=dict)
    refit: RefitInfo | None = None  # set when this is its family refit on all the data
    # The candidate a refit model was refit from: it never saw the backtest, so its figures
    # and residuals are the honest ones.
    refit_from: ClusterModel | None = None

    @property
    def evaluated(self) -> ClusterModel:
        """The model whose backtest is honest: the one this was refit from, or itself."""
        return self.refit_from if self.refit_from is not None else self

    def to_module(self) -> ForecastModel:
        model = build_model(self.model_type, **self.hyperparameters)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def fits(self, encoded: EncodedPanel) -> bool:
        """Whether this model can forecast ``encoded``: the same SKUs in the same order and
        the same input shapes (a new clustering or new attributes make it unusable)."""
        sizes = encoded.model_sizes()
        same_shapes = all(self.hyperparameters.get(k) == v for k, v in sizes.items())
        return same_shapes and list(self.skus) == list(encoded.skus)


@dataclass(frozen=True)
class ServingPaths:
    """Where a cluster's served model, its exports and its training checkpoints live."""

    model_dir: ArtifactPath
    checkpoint_dir: ArtifactPath

    def served_model(self, cluster: str) -> ArtifactPath:
        return self.model_dir / f"{cluster}.served.pt"

    def served_choice(self, cluster: str) -> ArtifactPath:
        """The pool's choice per SKU (JSON), kept for the next run's comparison."""
        return self.model_dir / f"{cluster}.choice.json"


def seasonal_naive_model(encoded: EncodedPanel, season: int) -> ClusterModel:
    """The seasonal naive forecaster of ``encoded``'s cluster as a ClusterModel."""
    sizes = {**encoded.model_sizes(), "season_length": season}
    assert set(sizes) == set(SIZE_ARGUMENTS)
    module = build_model(SEASONAL_NAIVE, **sizes)
    return ClusterModel(
        model_type=SEASONAL_NAIVE,
        hyperparameters=dict(module.hyperparameters),
        state_dict={},
        skus=list(encoded.skus),
        trained_at=utc_now(),
        training=TrainingResult(
            best_epoch=0, best_validation_loss=float("nan"), stopped_early=False, device="cpu"
        ),
    )


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def save_cluster_model(path: str | os.PathLike[str], model: ClusterModel) -> ArtifactPath:
    """Write ``model`` to ``path`` atomically (a reader sees the old model or the new one)."""
    return atomic_write(path, lambda tmp: torch.save(model, tmp))


def load_cluster_model(path: str | os.PathLike[str]) -> ClusterModel | None:
    """The model stored at ``path``; None when there is none. An unreadable file raises
    ModelNotFoundError naming it."""
    stored = artifact_path(path)
    if not stored.exists():
        return None
    try:
        with stored.open("rb") as handle:
            model = torch.load(handle, weights_only=False)
    except Exception as exc:
        raise ModelNotFoundError(f"cannot read the stored model {path}: {exc}") from exc
    if not isinstance(model, ClusterModel):
        raise ModelNotFoundError(f"{path} holds a {type(model).__name__}, not a ClusterModel")
    return model
