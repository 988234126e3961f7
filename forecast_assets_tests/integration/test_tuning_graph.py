"""Tuning in the graph: tune_job runs a persisted Optuna study, train_job uses its best."""

from pathlib import Path

import dagster as dg
import optuna
import pytest

from forecast_assets.definitions import build_definitions

pytestmark = pytest.mark.integration

TUNING = {
    "n_trials": 3,
    "epochs": 1,
    "sampler": "random",
    "search_space": {
        "channels": {"choices": [8, 16]},
        "learning_rate": {"low": 0.001, "high": 0.01, "log": True},
    },
    "windows": [21, 28],
}


def test_tune_job_feeds_train_job_and_resumes_its_study(write_settings, instance) -> None:
    settings_file = write_settings(
        {"clustering": {"k_min": 2, "k_max": 2}, "tuning": TUNING, "training": {"epochs": 1}}
    )
    defs = build_definitions(str(settings_file))
    assert defs.resolve_job_def("ingest_job").execute_in_process(instance=instance).success

    tune = defs.resolve_job_def("tune_job")
    assert tune.execute_in_process(instance=instance, partition_key="cluster_0").success
    metadata = latest_metadata(instance, "tuned_hyperparameters")
    assert metadata["trials"].value == 3 and metadata["trials_this_run"].value == 3
    assert "data:image/png;base64," in metadata["optimization_history"].value
    best = metadata["best_params"].value
    assert best["channels"] in (8, 16) and best["window"] in (21, 28)

    # The study lives in the instance's storage: a stopped or repeated run resumes it.
    database = Path(instance.storage_directory()) / "optuna.db"
    study = optuna.load_study(study_name="cluster_0-lightweight", storage=f"sqlite:///{database}")
    assert len(study.trials) == 3
    assert tune.execute_in_process(instance=instance, partition_key="cluster_0").success
    assert latest_metadata(instance, "tuned_hyperparameters")["trials_this_run"].value == 0

    train = defs.resolve_job_def("train_job")
    assert train.execute_in_process(instance=instance, partition_key="cluster_0").success
    # Tuning is off in the settings: train_job reads the study's best, never extends it.
    assert latest_metadata(instance, "tuned_hyperparameters")["trials"].value == 3
    assert latest_metadata(instance, "encoded_features")["window"].value == best["window"]
    model = defs.load_asset_value(
        "cluster_model", partition_key="cluster_0", instance=instance
    ).candidate
    assert model.hyperparameters["channels"] == best["channels"]
    assert model.hyperparameters["window"] == best["window"]
    assert latest_metadata(instance, "cluster_model")["learning_rate"].value == pytest.approx(
        best["learning_rate"]
    )

    # A cluster never tuned trains with the settings' values.
    assert train.execute_in_process(instance=instance, partition_key="cluster_1").success
    model = defs.load_asset_value(
        "cluster_model", partition_key="cluster_1", instance=instance
    ).candidate
    assert model.hyperparameters["channels"] == 16 and model.hyperparameters["window"] == 28


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.asset_materialization.metadata
