"""ClusterModel: one trained model of one cluster, as a plain, picklable artifact."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import torch

from forecast_assets.core.data.windows import EncodedPanel, WindowDataset
from forecast_assets.core.errors import ModelNotFoundError
from forecast_assets.core.models.base import ForecastModel
from forecast_assets.core.models.ensemble import ENSEMBLE
from forecast_assets.core.models.registry import SEASONAL_NAIVE, SIZE_ARGUMENTS, build_model
from forecast_assets.core.storage import ArtifactPath, artifact_path, atomic_write
from forecast_assets.core.training.trainer import (
    Trainer,
    TrainerCallback,
    TrainingConfig,
    TrainingResult,
    seed_everything,
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

    def fits(self, encoded: EncodedPanel) -> bool:
        """Whether this model can forecast ``encoded``: the same SKUs in the same order and
        the same input shapes (a new clustering or new attributes make it unusable)."""
        sizes = encoded.model_sizes()
        same_shapes = all(self.hyperparameters.get(k) == v for k, v in sizes.items())
        return same_shapes and list(self.skus) == list(encoded.skus)


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
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training=TrainingResult(
            best_epoch=0, best_validation_loss=float("nan"), stopped_early=False, device="cpu"
        ),
    )


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
    if model_type == ENSEMBLE:
        return _train_ensemble(encoded, model_options, config, callbacks, checkpoint)
    seed_everything(config.seed)  # the initial weights, too, follow from the seed
    model = build_model(model_type, **encoded.model_sizes(), **model_options)
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


def refit_cluster_model(
    candidate: ClusterModel,
    encoded: EncodedPanel,
    model_options: Mapping[str, object],
    config: TrainingConfig,
    callbacks: Sequence[TrainerCallback] = (),
) -> ClusterModel:
    """``candidate``'s family trained again, from scratch, on every window whose target the
    data holds (validation and backtest periods included), for the number of epochs early
    stopping chose for ``candidate``. The refit model serves; ``candidate``, which never saw
    the backtest, stays inside it as ``extra["evaluated_model"]`` so that accuracy and
    intervals are still measured honestly."""
    everything = encoded.all_windows()
    # The last fold stands in as the validation set: with patience past the last epoch, it
    # only picks the best epoch among the fixed budget, it stops nothing.
    refit_data = dataclasses.replace(encoded, train=everything, validation=encoded.test)
    epochs = max(candidate.training.best_epoch, 1)
    refit_config = dataclasses.replace(config, epochs=epochs, patience=epochs + 1)
    refit = train_cluster_model(
        refit_data, candidate.model_type, model_options, refit_config, callbacks
    )
    refit.extra["evaluated_model"] = candidate
    refit.extra["refit"] = {"epochs": epochs, "windows": len(everything)}
    return refit


def evaluated_model(model: ClusterModel) -> ClusterModel:
    """The model whose backtest is honest: the candidate a refit model was refit from, or
    the model itself."""
    return model.extra.get("evaluated_model", model)


def _train_ensemble(
    encoded: EncodedPanel,
    model_options: Mapping[str, object],
    config: TrainingConfig,
    callbacks: Sequence[TrainerCallback],
    checkpoint: str | os.PathLike[str] | None,
) -> ClusterModel:
    """Train every member on its own (each with early stopping and its own checkpoint),
    then put their weights into one ensemble module."""
    ensemble = build_model(ENSEMBLE, **encoded.model_sizes(), **model_options)
    trained = {}
    for name, member in ensemble.members.items():
        member_checkpoint = None
        if checkpoint is not None:
            path = artifact_path(checkpoint)
            member_checkpoint = path.with_name(f"{path.stem}-{name}{path.suffix}")
        options = {**member.hyperparameters}
        for size in SIZE_ARGUMENTS:
            options.pop(size, None)
        options["season_length"] = member.hyperparameters["season_length"]
        trained[name] = train_cluster_model(
            encoded, name, options, config, callbacks, member_checkpoint
        )
    ensemble.load_state_dict(
        {
            f"members.{name}.{key}": tensor
            for name, model in trained.items()
            for key, tensor in model.state_dict.items()
        }
    )
    results = [model.training for model in trained.values()]
    longest = max(results, key=lambda r: len(r.history))
    return ClusterModel(
        model_type=ENSEMBLE,
        hyperparameters=dict(ensemble.hyperparameters),
        state_dict={name: tensor.detach().cpu() for name, tensor in ensemble.state_dict().items()},
        skus=list(encoded.skus),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training=TrainingResult(
            best_epoch=longest.best_epoch,
            best_validation_loss=float(np.mean([r.best_validation_loss for r in results])),
            stopped_early=all(r.stopped_early for r in results),
            device=longest.device,
            history=longest.history,
            seconds=sum(r.seconds for r in results),
            resumed_from_epoch=max(r.resumed_from_epoch for r in results),
        ),
        parameter_count=ensemble.parameter_count(),
        extra={
            "members": {
                name: {"best_epoch": m.training.best_epoch, "seconds": m.training.seconds}
                for name, m in trained.items()
            }
        },
    )


def checkpoint_path(
    folder: ArtifactPath,
    cluster: str,
    encoded: EncodedPanel,
    model_type: str,
    model_options: Mapping[str, object],
    config: TrainingConfig,
) -> ArtifactPath:
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


def remove_checkpoints(folder: ArtifactPath, cluster: str) -> None:
    """Drop the cluster's checkpoints once its trained model is stored."""
    for stale in folder.glob(f"{cluster}-*.pt"):
        stale.unlink(missing_ok=True)
