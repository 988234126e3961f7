"""A small synthetic forecasting task shared by the model tests.

Each SKU is a level plus a weekly cycle plus noise. Seasonal naive copies last week's noise
(its error is about sqrt(2) times the noise), so a model that learns the cycle and averages
the noise away beats it clearly; that is the loose but real bound the model tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from forecast_assets.core.models.base import MODEL_INPUTS, ForecastModel
from forecast_assets.core.models.losses import ForecastLoss

N_TIME_FEATURES = 2
N_STATIC = 3


@dataclass
class SeasonalTask:
    train: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    window: int
    horizon: int
    season: int
    n_skus: int

    def model_sizes(self) -> dict[str, int]:
        return dict(
            n_skus=self.n_skus,
            n_static=N_STATIC,
            n_time_features=N_TIME_FEATURES,
            window=self.window,
            horizon=self.horizon,
        )


def seasonal_task(
    n_skus: int = 32,
    periods: int = 240,
    window: int = 28,
    horizon: int = 7,
    season: int = 7,
    noise: float = 0.3,
    seed: int = 0,
) -> SeasonalTask:
    """Windows of a noisy weekly signal: training windows from the first periods, one test
    window per SKU at the end."""
    rng = np.random.default_rng(seed)
    t = np.arange(periods)
    level = rng.normal(0.0, 0.5, (n_skus, 1))
    amplitude = rng.uniform(0.5, 1.5, (n_skus, 1))
    phase = rng.uniform(0, 2 * np.pi, (n_skus, 1))
    series = level + amplitude * np.sin(2 * np.pi * t / season + phase)
    series = (series + rng.normal(0.0, noise, series.shape)).astype(np.float32)
    calendar = np.stack([np.sin(2 * np.pi * t / season), np.cos(2 * np.pi * t / season)], 1)
    calendar = calendar.astype(np.float32)
    static = rng.normal(size=(n_skus, N_STATIC)).astype(np.float32)

    def windows(origins: np.ndarray) -> dict[str, torch.Tensor]:
        rows = np.repeat(np.arange(n_skus), len(origins))
        starts = np.tile(origins, n_skus)
        past_cols = starts[:, None] + np.arange(window)[None, :]
        future_cols = starts[:, None] + window + np.arange(horizon)[None, :]
        return {
            "past": torch.from_numpy(series[rows[:, None], past_cols]),
            "past_time": torch.from_numpy(calendar[past_cols]),
            "future_time": torch.from_numpy(calendar[future_cols]),
            "sku": torch.from_numpy(rows.astype(np.int64)),
            "static": torch.from_numpy(static[rows]),
            "scaled_zero": torch.zeros(len(rows)),
            "target": torch.from_numpy(series[rows[:, None], future_cols]),
        }

    last_train = periods - window - 2 * horizon
    return SeasonalTask(
        train=windows(np.arange(0, last_train)),
        test=windows(np.array([periods - window - horizon])),
        window=window,
        horizon=horizon,
        season=season,
        n_skus=n_skus,
    )


def inputs_of(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [batch[name] for name in MODEL_INPUTS]


def fit_briefly(
    model: ForecastModel,
    task: SeasonalTask,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> None:
    """A few hundred AdamW steps with MAE (pinball for quantile models)."""
    torch.manual_seed(seed)
    loss_fn = ForecastLoss({"mae": 1.0}, quantiles=model.quantiles, season=task.season)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    n = len(task.train["target"])
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, n, (batch_size,), generator=generator)
        batch = {name: value[pick] for name, value in task.train.items()}
        optimizer.zero_grad()
        output = model(*inputs_of(batch))
        loss_fn(output, batch["target"], batch["past"], batch["scaled_zero"]).backward()
        optimizer.step()
    model.eval()


@torch.no_grad()
def holdout_mae(model: ForecastModel, task: SeasonalTask) -> tuple[float, float]:
    """(model MAE, seasonal naive MAE) on the task's test windows."""
    model.eval()
    point = model.point_forecast(model(*inputs_of(task.test)))
    target = task.test["target"]
    past = task.test["past"]
    steps = torch.arange(task.horizon)
    naive = past[:, task.window - task.season + steps % task.season]
    return float((point - target).abs().mean()), float((naive - target).abs().mean())
