"""Trainer: learns a learnable signal, stops early, restores the best epoch, is reproducible."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers, period_split
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.windows import EncodedPanel, WindowDataset
from forecast_assets.core.errors import TrainingError
from forecast_assets.core.models.base import resolve_device
from forecast_assets.core.models.registry import build_model
from forecast_assets.core.training.trainer import (
    EpochRecord,
    Trainer,
    TrainerCallback,
    TrainingConfig,
    warmup_cosine,
)


def weekly_pattern_panel(n_skus: int = 6, n_periods: int = 200, noise: float = 1.0) -> EncodedPanel:
    """Daily series with a strong weekly pattern and noise: easy for a model, hard for 'flat'."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2024-01-01", periods=n_periods, freq="D")
    pattern = np.array([1, 2, 3, 8, 3, 2, 1], dtype=float)
    values = 10 * (1 + np.arange(n_skus))[:, None] * pattern[dates.dayofweek][None, :]
    values = values + rng.normal(0, noise, values.shape)
    skus = pd.Index([f"s{i}" for i in range(n_skus)], name="sku")
    panel = SalesPanel(values, skus, dates, "D", pd.DataFrame(index=skus))
    split = period_split(panel, horizon=7, validation_periods=14)
    return build_features(panel, fit_scalers(panel, split), CategoricalEncoder(), 21, 7, split)


def model_for(encoded: EncodedPanel, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(
        "lightweight",
        n_skus=encoded.n_skus,
        n_static=encoded.n_static_features,
        n_time_features=encoded.n_time_features,
        window=encoded.window,
        horizon=encoded.horizon,
        channels=16,
        levels=3,
        dropout=0.0,
        season_length=7,
    )


def fit(encoded: EncodedPanel, **config):
    model = model_for(encoded)
    trainer = Trainer(TrainingConfig(device="cpu", **config))
    result = trainer.fit(
        model, WindowDataset(encoded, encoded.train), WindowDataset(encoded, encoded.validation)
    )
    return model, trainer, result


def test_training_improves_on_the_seasonal_naive_starting_point() -> None:
    # Noisy weekly pattern: seasonal naive copies last week's noise, a model that averages
    # over weeks does better. The untrained model is exactly seasonal naive.
    encoded = weekly_pattern_panel(noise=15.0)
    validation = WindowDataset(encoded, encoded.validation)
    trainer = Trainer(TrainingConfig(device="cpu", loss="mse"))
    untrained_loss = trainer.evaluate(model_for(encoded), trainer._loader(validation))
    naive = encoded.batch(encoded.validation)
    naive_loss = float(np.mean((naive["past"][:, -7:] - naive["target"]) ** 2))
    assert math.isclose(untrained_loss, naive_loss, rel_tol=1e-4)

    _, _, result = fit(
        encoded, epochs=10, batch_size=32, learning_rate=1e-2, patience=10, loss="mse"
    )
    assert result.best_validation_loss < 0.75 * untrained_loss
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_early_stopping_stops_and_restores_the_best_epoch() -> None:
    encoded = weekly_pattern_panel()
    # A learning rate far too large makes validation loss bounce; patience 2 must stop it.
    model, trainer, result = fit(encoded, epochs=40, batch_size=32, learning_rate=0.05, patience=2)
    epochs_run = len(result.history)
    assert result.stopped_early and epochs_run < 40
    assert epochs_run == result.best_epoch + 2
    best = min(result.history, key=lambda r: r.validation_loss)
    assert result.best_epoch == best.epoch
    # The weights in the model are the best epoch's, not the last epoch's.
    loader = trainer._loader(WindowDataset(encoded, encoded.validation))
    assert math.isclose(trainer.evaluate(model, loader), best.validation_loss, rel_tol=1e-5)


def test_same_seed_gives_the_same_model() -> None:
    encoded = weekly_pattern_panel()
    first, _, _ = fit(encoded, epochs=2, batch_size=64, seed=3)
    second, _, _ = fit(encoded, epochs=2, batch_size=64, seed=3)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


class Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_validation_end(self, epoch: int, validation_loss: float) -> None:
        self.events.append(("validation", epoch))

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.events.append(("epoch", record.epoch))

    def on_early_stop(self, epoch: int, best_epoch: int) -> None:
        self.events.append(("stop", epoch, best_epoch))


def test_epoch_callback_sees_every_epoch_and_subsampling_caps_the_work() -> None:
    encoded = weekly_pattern_panel()
    recorder = Recorder()
    trainer = Trainer(
        TrainingConfig(epochs=3, batch_size=10, max_windows_per_epoch=30, device="cpu"),
        [recorder],
    )
    batches = []
    model = model_for(encoded)
    model.register_forward_hook(
        lambda module, args, output: batches.append(len(args[0])) if module.training else None
    )
    trainer.fit(
        model, WindowDataset(encoded, encoded.train), WindowDataset(encoded, encoded.validation)
    )
    assert recorder.events == [(kind, e) for e in (1, 2, 3) for kind in ("validation", "epoch")]
    assert sum(batches) == 3 * 30


def test_callbacks_hear_of_the_early_stop() -> None:
    recorder = Recorder()
    encoded = weekly_pattern_panel()
    trainer = Trainer(
        TrainingConfig(epochs=40, batch_size=32, learning_rate=0.05, patience=2, device="cpu"),
        [recorder],
    )
    result = trainer.fit(
        model_for(encoded),
        WindowDataset(encoded, encoded.train),
        WindowDataset(encoded, encoded.validation),
    )
    assert recorder.events[-1] == ("stop", len(result.history), result.best_epoch)


def test_learning_rate_warms_up_then_follows_the_cosine() -> None:
    total, warmup, floor = 100, 10, 0.05
    factors = [warmup_cosine(step, total, warmup, floor) for step in range(total + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    for step in (10, 30, 55, 80, 100):
        progress = (step - warmup) / (total - warmup)
        expected = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        assert factors[step] == pytest.approx(expected)
    assert factors[100] == pytest.approx(floor)
    # Inside the trainer the rate moves per batch; each epoch record carries the rate after
    # its last step (2 steps an epoch here: 40 windows in batches of 20).
    _, _, result = fit(
        weekly_pattern_panel(),
        epochs=4,
        batch_size=20,
        max_windows_per_epoch=40,
        learning_rate=0.01,
        warmup_epochs=1,
        min_learning_rate=0.1,
        patience=10,
    )
    rates = [record.learning_rate for record in result.history]
    assert rates == pytest.approx([0.01 * warmup_cosine(2 * e, 8, 2, 0.1) for e in (1, 2, 3, 4)])
    assert rates[0] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.001)


class Interrupt(TrainerCallback):
    """Kills the run after an epoch, as a crash would (the checkpoint is already written)."""

    def __init__(self, after_epoch: int) -> None:
        self.after_epoch = after_epoch

    def on_epoch_end(self, record: EpochRecord) -> None:
        if record.epoch == self.after_epoch:
            raise KeyboardInterrupt


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path) -> None:
    encoded = weekly_pattern_panel(noise=5.0)
    train = WindowDataset(encoded, encoded.train)
    validation = WindowDataset(encoded, encoded.validation)
    config = TrainingConfig(
        epochs=6, batch_size=16, max_windows_per_epoch=64, patience=10, device="cpu", seed=5
    )
    uninterrupted = model_for(encoded, seed=1)
    whole = Trainer(config).fit(uninterrupted, train, validation)

    checkpoint = tmp_path / "cluster_0.pt"
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, [Interrupt(after_epoch=3)], checkpoint).fit(
            model_for(encoded, seed=1), train, validation
        )
    assert checkpoint.is_file()
    # A new process would build a fresh model; its initial weights must not matter.
    resumed_model = model_for(encoded, seed=99)
    resumed = Trainer(config, checkpoint=checkpoint).fit(resumed_model, train, validation)

    assert resumed.resumed_from_epoch == 3
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert [r.validation_loss for r in resumed.history] == [
        r.validation_loss for r in whole.history
    ]
    for (name, a), (_, b) in zip(
        uninterrupted.state_dict().items(), resumed_model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_truncated_checkpoint_is_refused_naming_the_file(tmp_path) -> None:
    encoded = weekly_pattern_panel()
    train = WindowDataset(encoded, encoded.train)
    validation = WindowDataset(encoded, encoded.validation)
    config = TrainingConfig(epochs=2, batch_size=32, device="cpu")
    checkpoint = tmp_path / "cluster_0.pt"
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, [Interrupt(after_epoch=1)], checkpoint).fit(
            model_for(encoded), train, validation
        )
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(TrainingError, match=r"cluster_0\.pt cannot be read"):
        Trainer(config, checkpoint=checkpoint).fit(model_for(encoded), train, validation)
    other = TrainingConfig(epochs=3, batch_size=32, device="cpu")
    checkpoint.unlink()
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, [Interrupt(after_epoch=1)], checkpoint).fit(
            model_for(encoded), train, validation
        )
    with pytest.raises(TrainingError, match="other training settings"):
        Trainer(other, checkpoint=checkpoint).fit(model_for(encoded), train, validation)


def test_empty_windows_and_missing_cuda_are_training_errors() -> None:
    encoded = weekly_pattern_panel()
    empty = WindowDataset(
        encoded, encoded.train.__class__(np.zeros(0, np.int64), np.zeros(0, np.int64))
    )
    with pytest.raises(TrainingError, match="no training windows"):
        Trainer(TrainingConfig(device="cpu")).fit(model_for(encoded), empty, empty)
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="cuda"):
            resolve_device("cuda")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_diverging_training_is_a_training_error() -> None:
    encoded = weekly_pattern_panel()
    with pytest.raises(TrainingError, match="loss became nan"):
        fit(encoded, epochs=3, batch_size=32, learning_rate=1e3)


@pytest.mark.parametrize(
    ("loss", "weights"),
    [("smape", {}), ("mase", {}), ("pinball", {}), ("combined", {"mae": 1.0, "smape": 0.5})],
)
def test_every_loss_of_the_settings_trains(loss: str, weights: dict[str, float]) -> None:
    encoded = weekly_pattern_panel(noise=15.0)
    _, _, result = fit(
        encoded,
        epochs=6,
        batch_size=32,
        learning_rate=1e-2,
        patience=6,
        loss=loss,
        loss_weights=weights,
        season_length=7,
    )
    assert all(math.isfinite(r.validation_loss) for r in result.history)
    assert result.best_validation_loss < result.history[0].validation_loss


def test_a_quantile_model_trains_on_the_pinball_loss_of_its_heads() -> None:
    encoded = weekly_pattern_panel(noise=15.0)
    torch.manual_seed(0)
    model = build_model(
        "advanced",
        n_skus=encoded.n_skus,
        n_static=encoded.n_static_features,
        n_time_features=encoded.n_time_features,
        window=encoded.window,
        horizon=encoded.horizon,
        d_model=16,
        season_length=7,
    )
    trainer = Trainer(TrainingConfig(device="cpu", epochs=4, batch_size=32, learning_rate=1e-2))
    assert trainer.loss_for(model).weights == {"mae": 1.0, "pinball": 1.0}
    result = trainer.fit(
        model, WindowDataset(encoded, encoded.train), WindowDataset(encoded, encoded.validation)
    )
    assert result.best_validation_loss < result.history[0].validation_loss
