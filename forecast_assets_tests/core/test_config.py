"""The core configs: checked once where they are declared, ConfigurationError when built
directly, validated copies, and values pickled before they were pydantic models still load."""

import pickle

import pytest
from pydantic import ValidationError

from forecast_assets.core.data.loader import ColumnSpec
from forecast_assets.core.errors import ConfigurationError
from forecast_assets.core.training.trainer import TrainingConfig
from forecast_assets.core.training.tuning_config import TuningConfig


def test_a_config_built_directly_raises_a_configuration_error_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"training\.epochs: .*greater than or equal"):
        TrainingConfig(epochs=0)
    with pytest.raises(ConfigurationError, match=r"training\.lr: Extra inputs"):
        TrainingConfig(lr=0.1)  # type: ignore[call-arg]
    # Validated as data (as the settings do) it stays a ValidationError with its location.
    with pytest.raises(ValidationError):
        TrainingConfig.model_validate({"epochs": 0})


def test_configs_are_frozen() -> None:
    config = TrainingConfig()
    with pytest.raises(ValidationError):
        config.epochs = 3  # type: ignore[misc]


def test_updated_checks_the_changes_like_a_new_config() -> None:
    config = TrainingConfig(epochs=3, seed=1)
    assert config.updated(learning_rate=0.01) == TrainingConfig(
        epochs=3, seed=1, learning_rate=0.01
    )
    assert config.updated() is config
    with pytest.raises(ConfigurationError, match=r"training\.batch_size"):
        config.updated(batch_size=0)
    with pytest.raises(ConfigurationError, match=r"tuning\.sampler"):
        TuningConfig().updated(sampler="grid")


def test_the_loss_rules_hold_for_the_trainer_as_for_the_settings() -> None:
    with pytest.raises(ConfigurationError, match="needs loss_weights"):
        TrainingConfig(loss="combined")
    with pytest.raises(ConfigurationError, match=r"unknown loss.*rmsle"):
        TrainingConfig(loss="combined", loss_weights={"rmsle": 1.0})
    assert TrainingConfig(loss="combined", loss_weights={"mae": 1.0}).loss == "combined"


def test_configs_pickle_and_values_pickled_as_dataclasses_still_load() -> None:
    for config in (TrainingConfig(epochs=3), ColumnSpec(sku_columns=("a", "b")), TuningConfig()):
        assert pickle.loads(pickle.dumps(config)) == config
    # A stored asset value holds the dataclass' state: its fields alone (ColumnSpec's had
    # attribute_columns too, now a property).
    old = TrainingConfig.__new__(TrainingConfig)
    old.__setstate__({"epochs": 7, "season_length": 7, "device": "cpu", "loss_weights": {}})
    assert old == TrainingConfig(epochs=7, season_length=7, device="cpu")
    spec = ColumnSpec.__new__(ColumnSpec)
    spec.__setstate__({"categorical_columns": ("store",), "attribute_columns": ("store",)})
    assert spec == ColumnSpec(categorical_columns=("store",))
    assert spec.attribute_columns == ("store",)
