"""Tuning: studies search, prune, persist and resume, tune the window, reject bad spaces."""

from __future__ import annotations

import importlib.util
import logging
import math
import time

import optuna
import pandas as pd
import pytest

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.data.features import build_features, fit_scalers
from forecast_assets.core.data.panel import SalesPanel
from forecast_assets.core.data.windows import EncodedPanel
from forecast_assets.core.errors import ConfigurationError, TrainingError
from forecast_assets.core.plots import optimization_history_plot
from forecast_assets.core.training.search_space import (
    Categorical,
    FloatRange,
    IntRange,
    SearchSpace,
    default_search_space,
)
from forecast_assets.core.training.trainer import TrainingConfig
from forecast_assets.core.training.tuning import TuningConfig, mask_url, tune_cluster
from forecast_assets_tests.core.test_trainer import weekly_pattern_panel

# Tiny models and few windows per epoch keep every study to about a second on one thread.
TRAINING = TrainingConfig(
    device="cpu", epochs=30, batch_size=64, patience=5, threads=1, max_windows_per_epoch=256
)
BASE = {"dropout": 0.0, "season_length": 7}
SPACE = SearchSpace.from_dict(
    {
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "channels": {"choices": [4, 8]},
        "levels": {"low": 1, "high": 2},
    }
)


@pytest.fixture(scope="module")
def encoded() -> EncodedPanel:
    return weekly_pattern_panel()


def rewindowed(encoded: EncodedPanel, window: int) -> EncodedPanel:
    """The same series encoded with another window length, as the asset's builder would."""
    panel = SalesPanel(
        encoded.raw, encoded.skus, encoded.dates, "D", pd.DataFrame(index=encoded.skus)
    )
    scalers = fit_scalers(panel, encoded.split)
    return build_features(
        panel, scalers, CategoricalEncoder(), window, encoded.horizon, encoded.split
    )


def test_a_small_study_finds_parameters_inside_the_space(encoded, caplog) -> None:
    windows_asked, hook_calls = [], []

    def encoded_for(window):
        windows_asked.append(window)
        return encoded

    verbosity = optuna.logging.get_verbosity()
    with caplog.at_level(logging.INFO, logger="forecast_assets.core.training.tuning"):
        result = tune_cluster(
            encoded_for,
            "lightweight",
            BASE,
            TRAINING,
            TuningConfig(n_trials=5, epochs=2, pruner="none"),
            SPACE,
            on_trial_end=lambda *args: hook_calls.append(args),
        )

    assert result.n_trials == result.n_complete == result.n_new == 5
    assert len(result.history) == 5
    assert list(result.history["number"]) == [0, 1, 2, 3, 4]
    assert (result.history["epochs"] == 2).all()  # TuningConfig.epochs, not the 30 of training
    assert windows_asked == [None]  # built once, for the default window
    best = result.best_params
    assert 1e-4 <= best["learning_rate"] <= 1e-2
    assert best["channels"] in (4, 8) and best["levels"] in (1, 2)
    assert result.best_value == pytest.approx(result.history["value"].min())
    # Proposals vary: the sampler explores rather than repeating one point.
    assert result.history["params_learning_rate"].nunique() == 5
    # Best params split back into what they configure.
    assert result.model_options(BASE) == {
        **BASE,
        "channels": best["channels"],
        "levels": best["levels"],
    }
    assert result.training_overrides() == {"learning_rate": best["learning_rate"]}
    assert result.training_config(TRAINING).learning_rate == best["learning_rate"]
    assert result.window is None
    # One hook call and one log line per trial; Optuna's own verbosity is restored.
    assert [(n, s) for n, _, _, s in hook_calls] == [(n, "COMPLETE") for n in range(5)]
    assert hook_calls[0][1] == pytest.approx(result.history["value"][0])
    assert hook_calls[0][2] == {k: result.history[f"params_{k}"][0] for k in SPACE.parameters}
    trial_lines = [r for r in caplog.records if r.getMessage().startswith("trial #")]
    assert len(trial_lines) == 5
    assert optuna.logging.get_verbosity() == verbosity


def test_the_same_seed_gives_the_same_study(encoded) -> None:
    def run():
        config = TuningConfig(n_trials=3, epochs=1, pruner="none", seed=7)
        return tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, SPACE)

    first, second = run(), run()
    pd.testing.assert_frame_equal(
        first.history.drop(columns="seconds"), second.history.drop(columns="seconds")
    )


def test_the_median_pruner_stops_trials_with_a_useless_learning_rate() -> None:
    # Noisy data: a trained model clearly beats the seasonal naive it starts from, while a
    # learning rate of 1e-6 leaves it there, so those trials fall behind the median.
    noisy = weekly_pattern_panel(noise=15.0)
    space = SearchSpace({"learning_rate": Categorical((1e-6, 1e-2)), "channels": Categorical((8,))})
    config = TuningConfig(
        n_trials=6, epochs=3, sampler="random", pruner_startup_trials=1, pruner_warmup_epochs=0
    )
    training = TrainingConfig(
        device="cpu", batch_size=64, threads=1, loss="mse", max_windows_per_epoch=512
    )
    result = tune_cluster(
        lambda w: noisy, "lightweight", {**BASE, "levels": 2}, training, config, space
    )

    history = result.history
    pruned = history[history["state"] == "PRUNED"]
    assert result.n_pruned == len(pruned) >= 1
    assert result.n_trials == 6 and result.n_complete == 6 - result.n_pruned
    assert (pruned["params_learning_rate"] == 1e-6).all()
    assert (pruned["epochs"] < 3).all()  # stopped before the last epoch
    assert result.best_params["learning_rate"] == 1e-2


def test_a_sqlite_study_resumes_with_its_finished_trials(encoded, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'nested' / 'optuna.db'}"  # an absolute path: sqlite:////
    assert storage.startswith("sqlite:////")

    def run(n_trials: int):
        config = TuningConfig(
            n_trials=n_trials, epochs=1, storage=storage, study_name="cluster-0", pruner="none"
        )
        return tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, SPACE)

    first = run(3)
    assert (first.n_new, first.n_trials) == (3, 3)
    assert first.storage == storage
    # A crashed worker's trial stays RUNNING: it is not a finished trial and is not counted.
    optuna.load_study(study_name="cluster-0", storage=storage).ask()

    second = run(5)
    assert (second.n_new, second.n_trials, second.n_complete) == (2, 5, 5)
    states = second.history["state"].value_counts().to_dict()
    assert states == {"COMPLETE": 5, "RUNNING": 1}
    # The resumed run proposes new points rather than replaying the first run's.
    assert second.history["params_learning_rate"].dropna().nunique() == 5
    assert second.best_value == pytest.approx(
        second.history.loc[second.history["state"] == "COMPLETE", "value"].min()
    )

    third = run(5)
    assert (third.n_new, third.n_trials) == (0, 5)
    assert third.best_params == second.best_params


def test_a_stored_study_refuses_another_model_type(encoded, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = TuningConfig(n_trials=1, epochs=1, storage=storage, pruner="none")
    tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, SPACE)
    mixer_space = SearchSpace({"blocks": IntRange(1, 2)})
    with pytest.raises(ConfigurationError, match="model_type 'lightweight'"):
        tune_cluster(lambda w: encoded, "mixer", {}, TRAINING, config, mixer_space)


def test_the_window_is_tuned_through_the_data_builder(encoded) -> None:
    asked = []

    def encoded_for(window):
        asked.append(window)
        return rewindowed(encoded, window)

    space = SearchSpace({"window": Categorical((14, 21)), "channels": Categorical((4,))})
    config = TuningConfig(n_trials=4, epochs=1, sampler="random", pruner="none")
    result = tune_cluster(encoded_for, "lightweight", BASE, TRAINING, config, space)

    assert sorted(asked) == [14, 21]  # each window built once, the default never
    assert result.window in (14, 21)
    best_row = result.history.loc[result.history["value"].idxmin()]
    assert result.window == best_row["params_window"]
    assert result.training_overrides() == {} and "window" not in result.model_options()


def test_a_trial_that_cannot_train_fails_and_the_study_goes_on(encoded) -> None:
    # An unknown positional encoding makes the transformer's constructor raise ValueError.
    space = SearchSpace({"positional": Categorical(("sinusoidal", "bogus"))})
    options = {"d_model": 8, "n_heads": 2, "dim_feedforward": 16, "embedding_dim": 4}
    config = TuningConfig(n_trials=4, epochs=1, sampler="random", pruner="none")
    result = tune_cluster(lambda w: encoded, "standard", options, TRAINING, config, space)
    failed = result.history[result.history["state"] == "FAIL"]
    assert result.n_failed == len(failed) >= 1
    assert (failed["params_positional"] == "bogus").all()
    assert result.best_params == {"positional": "sinusoidal"}
    # FAIL trials are not finished trials.
    assert result.n_trials == result.n_complete == 4 - result.n_failed

    only_bad = SearchSpace({"positional": Categorical(("bogus",))})
    with pytest.raises(TrainingError, match=r"no completed trial.*unknown positional"):
        tune_cluster(lambda w: encoded, "standard", options, TRAINING, config, only_bad)
    # A training value the TrainingConfig refuses fails its trial too, not the study.
    zero_rate = SearchSpace({"learning_rate": Categorical((0.0,))})
    with pytest.raises(TrainingError, match=r"no completed trial.*training\.learning_rate"):
        tune_cluster(lambda w: encoded, "standard", options, TRAINING, config, zero_rate)


def test_an_unknown_parameter_is_rejected_before_any_trial() -> None:
    def encoded_for(window):
        raise AssertionError("no data may be built for an invalid space")

    space = SearchSpace({"learning_rate": FloatRange(1e-4, 1e-2), "kernel_sise": IntRange(2, 3)})
    with pytest.raises(ConfigurationError, match="'kernel_sise'"):
        tune_cluster(encoded_for, "lightweight", {}, TRAINING, TuningConfig(), space)
    # A family's option is unknown to another family.
    with pytest.raises(ConfigurationError, match=r"'levels'.*'mixer'"):
        SearchSpace({"levels": IntRange(1, 3)}).resolved("mixer")
    with pytest.raises(ConfigurationError, match="'epochs' cannot be tuned"):
        SearchSpace({"epochs": IntRange(1, 3)}).resolved("mixer")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (5, "must be a mapping"),
        ({"low": 1}, "needs 'choices' or 'low' and 'high'"),
        ({"low": 1, "high": 2, "lg": True}, "needs 'choices'"),
        ({"choices": []}, "at least one choice"),
        ({"choices": "abc"}, "must be a list"),
        ({"choices": [1], "low": 0}, "cannot be combined"),
        ({"choices": [[1, 2]]}, "None, bool, int, float or str"),
        ({"low": "1e-4", "high": 1.0}, "YAML reads 1e-4 as text"),
        ({"low": 2, "high": 1}, "must not exceed"),
        ({"low": 0.0, "high": 1.0, "log": True}, "needs low > 0"),
        ({"low": 1, "high": 2, "log": "yes"}, "log must be true or false"),
    ],
)
def test_a_malformed_entry_is_a_configuration_error(entry, message) -> None:
    with pytest.raises(ConfigurationError, match="'x'") as error:
        SearchSpace.from_dict({"x": entry})
    assert message in str(error.value)


def test_from_dict_picks_the_parameter_kind_and_fits_the_declared_type() -> None:
    space = SearchSpace.from_dict(
        {
            "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "channels": {"choices": [32, 64]},
            "levels": {"low": 2, "high": 6, "step": 2},
            "dropout": {"low": 0, "high": 1},  # integers, but dropout is a float
        }
    )
    assert space.parameters == {
        "learning_rate": FloatRange(1e-4, 1e-2, log=True),
        "channels": Categorical((32, 64)),
        "levels": IntRange(2, 6, step=2),
        "dropout": IntRange(0, 1),
    }
    assert SearchSpace.from_dict(space.to_dict()) == space
    resolved = space.resolved("lightweight")
    assert resolved.parameters["dropout"] == FloatRange(0.0, 1.0)
    with pytest.raises(ConfigurationError, match="'levels' takes integers"):
        SearchSpace({"levels": FloatRange(1.0, 3.0)}).resolved("lightweight")
    with pytest.raises(ConfigurationError, match="'loss' choices \\['l3'\\]"):
        SearchSpace({"loss": Categorical(("mae", "l3"))}).resolved("lightweight")


def test_spaces_cannot_propose_heads_that_do_not_divide_d_model(encoded) -> None:
    with pytest.raises(ConfigurationError, match="d_model 48 / n_heads 5"):
        SearchSpace({"d_model": Categorical((48, 64)), "n_heads": Categorical((4, 5))}).resolved(
            "advanced"
        )
    # Against the fixed options too: n_heads 3 from the settings cannot divide 32.
    with pytest.raises(ConfigurationError, match="divisible"):
        SearchSpace({"d_model": Categorical((32, 48))}).resolved("standard", {"n_heads": 3})
    for model_type in ("standard", "advanced", "lightweight", "mixer"):
        default_search_space(model_type).resolved(model_type)  # every default pair is valid

    # A short study of the default transformer space trains every trial it proposes.
    config = TuningConfig(n_trials=3, epochs=1, pruner="none")
    training = TrainingConfig(device="cpu", threads=1, max_windows_per_epoch=128)
    result = tune_cluster(lambda w: encoded, "standard", {}, training, config)
    assert result.n_complete == 3 and result.n_failed == 0
    assert result.best_params["d_model"] % result.best_params["n_heads"] == 0


def test_the_timeout_is_checked_between_trials(encoded) -> None:
    def slow_data(window):
        time.sleep(0.3)  # the first trial alone outlasts the timeout
        return encoded

    config = TuningConfig(n_trials=5, epochs=1, pruner="none", timeout_seconds=0.2)
    result = tune_cluster(slow_data, "lightweight", BASE, TRAINING, config, SPACE)
    assert result.n_new == result.n_trials == 1  # the started trial ends, no other starts


@pytest.mark.parametrize("pruner", ["hyperband", "none"])
def test_other_pruners_and_samplers_run(encoded, pruner) -> None:
    config = TuningConfig(n_trials=3, epochs=2, pruner=pruner, sampler="random")
    result = tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, SPACE)
    assert result.n_trials == 3 and result.n_complete >= 1


def test_the_cmaes_sampler_needs_its_package(encoded) -> None:
    config = TuningConfig(n_trials=2, epochs=1, pruner="none", sampler="cmaes")
    space = SearchSpace({"learning_rate": FloatRange(1e-4, 1e-2, log=True)})
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(ConfigurationError, match="'cmaes' package"):
            tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, space)
    else:
        result = tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, space)
        assert result.n_trials == 2


def test_an_empty_space_is_rejected(encoded) -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        tune_cluster(
            lambda w: encoded, "lightweight", BASE, TRAINING, TuningConfig(), SearchSpace()
        )


def test_the_default_space_adds_the_window_only_when_asked() -> None:
    assert "window" not in default_search_space("mixer")
    space = default_search_space("lightweight", windows=[14, 28])
    assert space.parameters["window"] == Categorical((14, 28))
    assert {"channels", "levels", "dropout", "learning_rate", "batch_size"} <= set(space.parameters)
    assert "n_heads" in default_search_space("advanced")


def test_tuning_settings_are_checked() -> None:
    for bad in (
        {"n_trials": 0},
        {"sampler": "grid"},
        {"pruner": "percentile"},
        {"metric": "accuracy"},
        {"direction": "maximize"},  # of a loss
        {"epochs": 0},
        {"timeout_seconds": 0},
    ):
        with pytest.raises(ConfigurationError):
            TuningConfig(**bad)


def test_passwords_are_masked_in_the_storage_url() -> None:
    masked = mask_url("postgresql://tuner:s3cret@db.internal:5432/optuna")
    assert "s3cret" not in masked and "tuner" in masked and "db.internal" in masked
    assert mask_url("sqlite:////data/optuna.db") == "sqlite:////data/optuna.db"
    assert mask_url(None) is None


def test_the_optimization_history_plot_is_a_png(encoded) -> None:
    config = TuningConfig(n_trials=2, epochs=1, pruner="none")
    result = tune_cluster(lambda w: encoded, "lightweight", BASE, TRAINING, config, SPACE)
    png = optimization_history_plot(result.history, "tuning", result.direction)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert not math.isnan(result.best_value)
