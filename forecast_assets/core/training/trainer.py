"""Trainer: AdamW, early stopping on a time-based validation set, best-epoch restore."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from forecast_assets.core.errors import TrainingError
from forecast_assets.core.models.base import MODEL_INPUTS, ForecastModel
from forecast_assets.core.models.losses import ForecastLoss, loss_weights

logger = logging.getLogger(__name__)

LossName = Literal["mae", "mse", "huber", "smape", "mase", "pinball", "combined"]


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    grad_clip: float = 1.0
    max_windows_per_epoch: int | None = None  # a fresh random subset each epoch when set
    loss: LossName = "mae"
    loss_weights: dict[str, float] = field(default_factory=dict)  # for loss "combined"
    season_length: int = 1  # of the in-sample seasonal naive that scales the MASE loss
    seed: int = 42
    device: str = "auto"


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float
    seconds: float


@dataclass
class TrainingResult:
    best_epoch: int
    best_validation_loss: float
    stopped_early: bool
    device: str
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when there is a card, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return [batch[name].to(device, non_blocking=True) for name in MODEL_INPUTS]


class Trainer:
    """Fits a ForecastModel on scaled targets with the configured loss (see ``losses``).

    Stops when the validation loss has not improved for ``patience`` epochs and puts the
    best epoch's weights back, so the returned model is the one that validated best.
    ``on_epoch_end`` is called with each EpochRecord (for logging and progress).
    """

    def __init__(
        self, config: TrainingConfig, on_epoch_end: Callable[[EpochRecord], None] | None = None
    ) -> None:
        self.config = config
        self.on_epoch_end = on_epoch_end
        self.device = resolve_device(config.device)

    def loss_for(self, model: ForecastModel) -> ForecastLoss:
        weights = loss_weights(self.config.loss, self.config.loss_weights)
        return ForecastLoss(weights, model.quantiles, self.config.season_length).to(self.device)

    def fit(self, model: ForecastModel, train: Dataset, validation: Dataset) -> TrainingResult:
        if len(train) == 0:
            raise TrainingError("there are no training windows")
        if len(validation) == 0:
            raise TrainingError("there are no validation windows")
        seed_everything(self.config.seed)
        started = time.perf_counter()
        model.to(self.device)
        loss_fn = self.loss_for(model)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        generator = torch.Generator().manual_seed(self.config.seed)
        per_epoch = min(len(train), self.config.max_windows_per_epoch or len(train))
        sampler = RandomSampler(train, num_samples=per_epoch, generator=generator)
        train_loader = self._loader(train, sampler=sampler)
        validation_loader = self._loader(validation)

        best_state = copy.deepcopy(model.state_dict())
        best_loss, best_epoch, stale = math.inf, 0, 0
        result = TrainingResult(0, math.inf, False, str(self.device))
        for epoch in range(1, self.config.epochs + 1):
            epoch_started = time.perf_counter()
            train_loss = self._train_epoch(model, optimizer, train_loader, loss_fn)
            validation_loss = self.evaluate(model, validation_loader, loss_fn)
            if not math.isfinite(train_loss) or not math.isfinite(validation_loss):
                raise TrainingError(
                    f"loss became {train_loss} / {validation_loss} in epoch {epoch}"
                )
            record = EpochRecord(
                epoch, train_loss, validation_loss, time.perf_counter() - epoch_started
            )
            result.history.append(record)
            if self.on_epoch_end is not None:
                self.on_epoch_end(record)
            if validation_loss < best_loss - 1e-7:
                best_loss, best_epoch, stale = validation_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= self.config.patience:
                    result.stopped_early = True
                    logger.info("early stop after epoch %d (best %d)", epoch, best_epoch)
                    break
        model.load_state_dict(best_state)
        model.eval()
        result.best_epoch, result.best_validation_loss = best_epoch, best_loss
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

    def _batch_loss(
        self, model: ForecastModel, batch: dict[str, torch.Tensor], loss_fn: ForecastLoss
    ) -> torch.Tensor:
        output = model(*model_inputs(batch, self.device))
        target, past, zero = (
            batch[name].to(self.device, non_blocking=True)
            for name in ("target", "past", "scaled_zero")
        )
        return loss_fn(output, target, past, zero)

    def _train_epoch(
        self,
        model: ForecastModel,
        optimizer: torch.optim.Optimizer,
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
            total += float(loss.detach()) * len(batch["target"])
            count += len(batch["target"])
        return total / max(count, 1)

    def _loader(self, dataset: Dataset, sampler: RandomSampler | None = None) -> DataLoader:
        # The dataset builds whole batches itself (__getitems__); collation is a pass-through.
        return DataLoader(
            dataset, batch_size=self.config.batch_size, sampler=sampler, collate_fn=_as_is
        )


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch
