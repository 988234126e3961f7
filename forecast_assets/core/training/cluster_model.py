"""Training of one cluster's model: a family trained with early stopping, an ensemble's
members one by one, the refit on all the data, and the checkpoints that resume them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from forecast_assets.core.data.windows import EncodedPanel, WindowDataset
from forecast_assets.core.models.artifact import (
    ClusterModel,
    RefitInfo,
    TrainingResult,
    utc_now,
)
from forecast_assets.core.models.ensemble import ENSEMBLE
from forecast_assets.core.models.registry import SIZE_ARGUMENTS, build_model
from forecast_assets.core.storage import ArtifactPath, artifact_path
from forecast_assets.core.training.trainer import (
    Trainer,
    TrainerCallback,
    TrainingConfig,
    seed_everything,
)

logger = logging.getLogger(__name__)


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
        trained_at=utc_now(),
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
    the backtest, stays inside it as ``refit_from`` so that accuracy and intervals are still
    measured honestly."""
    everything = encoded.all_windows()
    # The last fold stands in as the validation set: with patience past the last epoch, it
    # only picks the best epoch among the fixed budget, it stops nothing.
    refit_data = dataclasses.replace(encoded, train=everything, validation=encoded.test)
    epochs = max(candidate.training.best_epoch, 1)
    refit_config = config.updated(epochs=epochs, patience=epochs + 1)
    refit = train_cluster_model(
        refit_data, candidate.model_type, model_options, refit_config, callbacks
    )
    refit.refit = RefitInfo(epochs=epochs, windows=len(everything))
    refit.refit_from = candidate
    return refit


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
        trained_at=utc_now(),
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
        members={
            name: {"best_epoch": m.training.best_epoch, "seconds": m.training.seconds}
            for name, m in trained.items()
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
    described = [model_type, dict(model_options), config.model_dump()]
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return folder / f"{cluster}-{digest.hexdigest()[:16]}.pt"


def remove_checkpoints(folder: ArtifactPath, cluster: str) -> None:
    """Drop the cluster's checkpoints once its trained model is stored."""
    for stale in folder.glob(f"{cluster}-*.pt"):
        stale.unlink(missing_ok=True)
