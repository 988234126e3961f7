"""Trainer: AdamW with a warm-up + cosine learning-rate schedule, early stopping on a
time-based validation set, best-epoch restore, callbacks, and checkpoints that resume an
interrupted run exactly where it stopped."""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from forecast_assets.core.config import CoreConfig
from forecast_assets.core.errors import TrainingError
from forecast_assets.core.models.artifact import EpochRecord, TrainingResult
from forecast_assets.core.models.base import ForecastModel, model_inputs, resolve_device
from forecast_assets.core.models.losses import LOSS_NAMES, ForecastLoss, loss_weights
from forecast_assets.core.storage import artifact_path, atomic_write

logger = logging.getLogger(__name__)

LossName = Literal["mae", "mse", "huber", "smape", "mase", "pinball", "combined"]
CHECKPOINT_VERSION = 1


class TrainingOptions(CoreConfig):
    """What a user chooses about training (the ``training`` section of the settings extends
    this class with what the serving step does itself)."""

    section_name: ClassVar[str] = "training"

    epochs: int = Field(30, ge=1, description="most epochs per training run")
    batch_size: int = Field(256, ge=1, description="windows per optimizer step")
    learning_rate: float = Field(1e-3, gt=0, description="AdamW's peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW's weight decay")
    patience: int = Field(5, ge=1, description="epochs without improvement before stopping")
    grad_clip: float = Field(1.0, gt=0, description="largest gradient norm per step")
    loss: LossName = Field(
        "mae",
        description="on scaled targets; mae matches the MAE-based MASE it is judged by; "
        "combined = the weighted sum in loss_weights",
    )
    loss_weights: dict[str, float] = Field(
        {}, description="for loss: combined, e.g. {mae: 1.0, smape: 0.2, pinball: 1.0}"
    )
    warmup_epochs: float = Field(
        1.0, ge=0, description="linear learning-rate warm-up, then a cosine decay to the end"
    )
    min_learning_rate: float = Field(
        0.05, ge=0, le=1, description="where the cosine ends, as a fraction of learning_rate"
    )
    mixed_precision: bool = Field(
        False,
        description="bfloat16 autocast when training on CUDA (slower than float32 for the "
        "default model sizes on an H100; worth it for large models)",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads; empty = torch's default. 1 is fastest when other "
        "CPU-heavy processes share the machine",
    )
    max_windows_per_epoch: int | None = Field(
        None,
        ge=1,
        description="train each epoch on a fresh random subset of this many windows; "
        "empty = all windows",
    )

    @model_validator(mode="after")
    def _combined_loss(self) -> Self:
        unknown = sorted(set(self.loss_weights) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"loss_weights has unknown loss(es) {unknown}; known: {LOSS_NAMES}")
        if self.loss == "combined" and not any(self.loss_weights.values()):
            raise ValueError("loss 'combined' needs loss_weights with a non-zero weight")
        return self


class TrainingConfig(TrainingOptions):
    """A training run: the user's options and what the run itself fixes."""

    season_length: int = Field(
        1, ge=1, description="of the in-sample seasonal naive that scales the MASE loss"
    )
    seed: int = Field(42, description="seeds the weights and the sampling of windows")
    device: str = Field("auto", description="auto = CUDA when available, else the CPU")


class TrainerCallback:
    """Hooks into a training run; override what you need. A callback may stop the run by
    raising (e.g. Optuna's TrialPruned from ``on_validation_end``)."""

    def on_validation_end(self, epoch: int, validation_loss: float) -> None:
        """After each epoch's validation, before early stopping is decided."""

    def on_epoch_end(self, record: EpochRecord) -> None:
        """After each epoch, with its losses, time and learning rate."""

    def on_early_stop(self, epoch: int, best_epoch: int) -> None:
        """When patience runs out, before the best weights are put back."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, floor: float) -> float:
    """Learning-rate factor at ``step``: linear from 1/warmup to 1 over the warm-up, then a
    cosine from 1 down to ``floor`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Fits a ForecastModel on scaled targets with the configured loss (see ``losses``).

    Stops when the validation loss has not improved for ``patience`` epochs and puts the
    best epoch's weights back, so the returned model is the one that validated best.

    With ``checkpoint`` set, the whole state (weights, optimizer, schedule, epoch, best
    weights so far, random generators) is written there atomically after every epoch, and
    ``fit`` resumes from it when it exists: an interrupted run then ends with exactly the
    weights of an uninterrupted one (same device, seed and data). The caller deletes the
    checkpoint once the result is stored.
    """

    def __init__(
        self,
        config: TrainingConfig,
        callbacks: Sequence[TrainerCallback] = (),
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.checkpoint = artifact_path(checkpoint) if checkpoint is not None else None
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)

    def loss_for(self, model: ForecastModel) -> ForecastLoss:
        weights = loss_weights(self.config.loss, self.config.loss_weights)
        return ForecastLoss(weights, model.quantiles, self.config.season_length).to(self.device)

    def fit(self, model: ForecastModel, train: Dataset, validation: Dataset) -> TrainingResult:
        if len(train) == 0:
            raise TrainingError("there are no training windows")
        if len(validation) == 0:
            raise TrainingError("there are no validation windows")
        config = self.config
        seed_everything(config.seed)
        started = time.perf_counter()
        model.to(self.device)
        loss_fn = self.loss_for(model)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        generator = torch.Generator().manual_seed(config.seed)
        per_epoch = min(len(train), config.max_windows_per_epoch or len(train))
        sampler = RandomSampler(train, num_samples=per_epoch, generator=generator)
        train_loader = self._loader(train, sampler=sampler)
        validation_loader = self._loader(validation)
        steps_per_epoch = math.ceil(per_epoch / config.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine(
                step,
                total_steps=config.epochs * steps_per_epoch,
                warmup_steps=max(round(config.warmup_epochs * steps_per_epoch), 1),
                floor=config.min_learning_rate,
            ),
        )

        state = _RunState(best_state=copy.deepcopy(model.state_dict()))
        result = TrainingResult(0, math.inf, False, str(self.device))
        if self.checkpoint is not None and self.checkpoint.exists():
            state = self._resume(model, optimizer, scheduler, generator, result)
        for epoch in range(state.epoch + 1, config.epochs + 1):
            epoch_started = time.perf_counter()
            train_loss = self._train_epoch(model, optimizer, scheduler, train_loader, loss_fn)
            validation_loss = self.evaluate(model, validation_loader, loss_fn)
            if not math.isfinite(train_loss) or not math.isfinite(validation_loss):
                raise TrainingError(
                    f"loss became {train_loss} / {validation_loss} in epoch {epoch}"
                )
            for callback in self.callbacks:
                callback.on_validation_end(epoch, validation_loss)
            record = EpochRecord(
                epoch,
                train_loss,
                validation_loss,
                time.perf_counter() - epoch_started,
                optimizer.param_groups[0]["lr"],
            )
            result.history.append(record)
            state.epoch = epoch
            if validation_loss < state.best_loss - 1e-7:
                state.best_loss, state.best_epoch, state.stale = validation_loss, epoch, 0
                state.best_state = copy.deepcopy(model.state_dict())
            else:
                state.stale += 1
            state.stopped = state.stale >= config.patience
            if self.checkpoint is not None:
                self._save(model, optimizer, scheduler, generator, state, result)
            for callback in self.callbacks:
                callback.on_epoch_end(record)
            if state.stopped:
                break
        if state.stopped:
            result.stopped_early = True
            logger.info("early stop after epoch %d (best %d)", state.epoch, state.best_epoch)
            for callback in self.callbacks:
                callback.on_early_stop(state.epoch, state.best_epoch)
        model.load_state_dict(state.best_state)
        model.eval()
        result.best_epoch, result.best_validation_loss = state.best_epoch, state.best_loss
        result.seconds = time.perf_counter() - started
        return result

    @torch.no_grad()
    def evaluate(
        self, model: ForecastModel, loader: DataLoader, loss_fn: ForecastLoss | None = None
    ) -> float:
        model.eval()
        loss_fn = loss_fn or self.loss_for(model)
        total, count = 0.0, 0
        for batch in loader:
            loss = self._batch_loss(model, batch, loss_fn)
            total += float(loss) * len(batch["target"])
            count += len(batch["target"])
        return total / max(count, 1)

    def _autocast(self):
        # bfloat16 keeps float32's range, so no loss scaling is needed.
        enabled = self.config.mixed_precision and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _batch_loss(
        self, model: ForecastModel, batch: dict[str, torch.Tensor], loss_fn: ForecastLoss
    ) -> torch.Tensor:
        with self._autocast():
            output = model(*model_inputs(batch, self.device))
        target, past, zero = (
            batch[name].to(self.device, non_blocking=True)
            for name in ("target", "past", "scaled_zero")
        )
        return loss_fn(output.float(), target, past, zero)

    def _train_epoch(
        self,
        model: ForecastModel,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        loader: DataLoader,
        loss_fn: ForecastLoss,
    ) -> float:
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(model, batch, loss_fn)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(batch["target"])
            count += len(batch["target"])
        return total / max(count, 1)

    def _loader(self, dataset: Dataset, sampler: RandomSampler | None = None) -> DataLoader:
        # The dataset builds whole batches itself (__getitems__); collation is a pass-through.
        return DataLoader(
            dataset, batch_size=self.config.batch_size, sampler=sampler, collate_fn=_as_is
        )

    # --- checkpoints ---------------------------------------------------------------------

    def _save(self, model, optimizer, scheduler, generator, state, result) -> None:
        payload = {
            "version": CHECKPOINT_VERSION,
            "config": self.config.model_dump(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler_generator": generator.get_state(),
            "random": _random_states(),
            "state": asdict(state),
            "history": [asdict(record) for record in result.history],
        }
        atomic_write(self.checkpoint, lambda tmp: torch.save(payload, tmp))

    def _resume(self, model, optimizer, scheduler, generator, result) -> _RunState:
        payload = load_checkpoint(self.checkpoint)
        if payload["config"] != self.config.model_dump():
            raise TrainingError(
                f"checkpoint {self.checkpoint} was written with other training settings; "
                "delete it to start over"
            )
        try:
            model.load_state_dict(payload["model"])
        except RuntimeError as error:
            raise TrainingError(
                f"checkpoint {self.checkpoint} holds another model: {error}"
            ) from error
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        generator.set_state(payload["sampler_generator"])
        _set_random_states(payload["random"])
        result.history = [EpochRecord(**record) for record in payload["history"]]
        state = _RunState(**payload["state"])
        result.resumed_from_epoch = state.epoch
        logger.info("resumed from %s after epoch %d", self.checkpoint, state.epoch)
        return state


@dataclass
class _RunState:
    """What early stopping knows between epochs; saved in checkpoints."""

    best_state: dict[str, torch.Tensor]
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    stale: int = 0
    stopped: bool = False


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's content; a truncated or foreign file is a TrainingError naming it."""
    try:
        with artifact_path(path).open("rb") as handle:
            payload = torch.load(handle, map_location="cpu", weights_only=False)
    except Exception as error:
        raise TrainingError(
            f"checkpoint {path} cannot be read (truncated or not a checkpoint): {error}"
        ) from error
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"checkpoint {path} is not a training checkpoint of this version")
    return payload


def _random_states() -> dict[str, Any]:
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_random_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch
