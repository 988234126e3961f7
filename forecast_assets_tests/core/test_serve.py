"""The serving step of one cluster: precedence of settings, tuning and launch; what serves,
what is stored, and the backtest it hands to the evaluation report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from forecast_assets.core.errors import ConfigurationError
from forecast_assets.core.evaluation import evaluate_cluster, run_backtest
from forecast_assets.core.models.artifact import ServingPaths, load_cluster_model
from forecast_assets.core.training.serve import (
    GateConfig,
    ModelSpec,
    resolve_model_spec,
    serve_cluster,
)
from forecast_assets.core.training.trainer import TrainingConfig
from forecast_assets_tests.core.test_evaluation import SEASON, encode, weekly_panel

TRAINING = TrainingConfig(epochs=3, batch_size=64, max_windows_per_epoch=256, seed=1)
SPEC = ModelSpec("lightweight", {"channels": 8, "season_length": SEASON}, TRAINING)
# A gate every candidate passes, and one none can pass (relative MASE is never below 0).
LENIENT = GateConfig(season=SEASON, threshold=1e9)
STRICT = GateConfig(season=SEASON, threshold=0.0)


@dataclasses.dataclass
class Tuned:
    model_type: str
    best_params: dict

    def model_options(self, base_options):
        return {**base_options, "channels": self.best_params["channels"]}

    def training_config(self, base):
        return base.updated(learning_rate=self.best_params["learning_rate"])


def paths_in(folder: Path) -> ServingPaths:
    return ServingPaths(model_dir=folder / "models", checkpoint_dir=folder / "checkpoints")


def test_settings_then_tuned_then_launch() -> None:
    tuned = Tuned("lightweight", {"channels": 32, "learning_rate": 0.05})
    spec = resolve_model_spec(SPEC, tuned, {"learning_rate": 0.2, "epochs": 7})
    assert spec.options["channels"] == 32  # tuned over the settings
    assert spec.training.learning_rate == 0.2 and spec.training.epochs == 7  # launch over both
    assert spec.tuned == tuned.best_params
    assert resolve_model_spec(SPEC, tuned).training.learning_rate == 0.05
    # A study of another family does not apply.
    other = resolve_model_spec(SPEC, Tuned("mixer", {"channels": 32, "learning_rate": 0.05}))
    assert other == SPEC


def test_a_passing_candidate_is_stored_exported_and_judged_as_it_serves(tmp_path) -> None:
    encoded, scalers = encode(weekly_panel())
    paths = paths_in(tmp_path)
    served = serve_cluster("c0", encoded, scalers, SPEC, None, LENIENT, paths)
    assert served.promoted and served.model is served.candidate
    assert load_cluster_model(paths.served_model("c0")).trained_at == served.model.trained_at
    assert served.exports.onnx == paths.model_dir / "c0.onnx" and served.exports.onnx.is_file()
    assert served.model.onnx == served.exports.onnx.read_bytes()
    assert not list(paths.checkpoint_dir.glob("c0-*.pt"))  # the checkpoint went
    assert {"train", "export", "gate"} <= set(served.seconds)
    # The gate's backtest ran through the ONNX export that serves, so the report (which
    # reuses it) agrees with a backtest of the served model through its engine.
    again = run_backtest(served.model, encoded, scalers, SEASON, engine="onnxruntime")
    np.testing.assert_array_equal(served.backtest.forecast, again.forecast)
    report = evaluate_cluster(
        "c0", served.model, served.backtest, encoded, scalers, 0.9, gate=served.gate
    )
    assert report.metrics == served.backtest.metrics and report.gate is served.gate


def test_a_rejected_candidate_leaves_the_served_files_alone(tmp_path) -> None:
    encoded, scalers = encode(weekly_panel())
    paths = paths_in(tmp_path)
    first = serve_cluster("c0", encoded, scalers, SPEC, None, LENIENT, paths)
    stored = {p.name: p.read_bytes() for p in paths.model_dir.iterdir()}
    worse = dataclasses.replace(SPEC, training=TRAINING.updated(seed=2))
    second = serve_cluster("c0", encoded, scalers, worse, first.model, STRICT, paths)
    # The previous model does not pass a gate nobody passes either: seasonal naive serves,
    # and nothing stored changed.
    assert second.gate.served == "seasonal_naive" and second.model.model_type == "seasonal_naive"
    assert second.backtest.model_type == "seasonal_naive"
    assert second.candidate.trained_at and second.candidate is not second.model
    assert {p.name: p.read_bytes() for p in paths.model_dir.iterdir()} == stored
    assert not list(paths.checkpoint_dir.glob("c0-*.pt"))


def test_refit_serves_the_family_refit_and_is_judged_by_its_candidate(tmp_path) -> None:
    encoded, scalers = encode(weekly_panel())
    paths = paths_in(tmp_path)
    spec = dataclasses.replace(SPEC, refit=True)
    served = serve_cluster("c0", encoded, scalers, spec, None, LENIENT, paths)
    assert served.promoted and served.model.refit_from is served.candidate
    assert served.model.refit is not None and "refit" in served.seconds
    assert (
        served.backtest.metrics == run_backtest(served.candidate, encoded, scalers, SEASON).metrics
    )
    # The export is the refit model's, the weights that serve.
    assert served.model.onnx == served.exports.onnx.read_bytes()
    assert served.candidate.onnx is None


def test_launch_overrides_must_name_training_fields() -> None:
    with pytest.raises(ConfigurationError, match=r"training\.not_a_field"):
        resolve_model_spec(SPEC, None, {"not_a_field": 1})
    # And are checked like the settings: a launch config cannot set what a file cannot.
    with pytest.raises(ConfigurationError, match=r"training\.epochs"):
        resolve_model_spec(SPEC, None, {"epochs": 0})
