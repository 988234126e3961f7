"""Settings: YAML file, environment overrides, and clear errors naming the field."""

from pathlib import Path

import pytest
import yaml

from forecast_assets.core.errors import ConfigurationError
from forecast_assets.settings import DEFAULT_SETTINGS_FILE, infer_season_length, load_settings

ARCHITECTURE_EXAMPLE = """
data:
  path: ../shared/data/walmart_store_sales/train.csv.gz
  date_column: Date
  sku_columns: [Store, Dept]
  quantity_column: Weekly_Sales
  categorical_columns: [Store, Dept]
  landing_dir: data/landing
timeseries:
  freq: W-FRI
  window: 52
  horizon: 8
  min_history: 60
model:
  type: lightweight
training:
  epochs: 30
  batch_size: 256
  learning_rate: 0.001
output:
  dir: .forecast
seed: 42
device: auto
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_file_loads_field_by_field(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ARCHITECTURE_EXAMPLE))
    assert settings.data.sku_columns == ("Store", "Dept")
    assert settings.data.quantity_column == "Weekly_Sales"
    assert settings.timeseries.freq == "W-FRI"
    assert settings.timeseries.season == 52
    assert (settings.timeseries.window, settings.timeseries.horizon) == (52, 8)
    assert settings.training.learning_rate == 0.001
    assert settings.device == "auto"


def test_default_file_runs_the_embedded_example() -> None:
    settings = load_settings()
    assert settings.data.path is None
    assert load_settings(DEFAULT_SETTINGS_FILE) == settings


def test_settings_file_is_chosen_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORECAST_SETTINGS", str(write(tmp_path, ARCHITECTURE_EXAMPLE)))
    assert load_settings().data.date_column == "Date"


def test_environment_overrides_one_field_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, ARCHITECTURE_EXAMPLE)
    monkeypatch.setenv("FORECAST_TIMESERIES__HORIZON", "12")
    monkeypatch.setenv("FORECAST_SEED", "7")
    settings = load_settings(path)
    assert settings.timeseries.horizon == 12
    assert settings.seed == 7
    assert settings.timeseries.window == 52  # the file's other fields of the section stay
    assert settings.timeseries.freq == "W-FRI"


def test_single_sku_column_may_be_a_plain_name(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "data:\n  sku_columns: item\n"))
    assert settings.data.sku_columns == ("item",)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("timeseries:\n  horizon: 0\n", "timeseries.horizon"),
        ("timeseries:\n  horizn: 8\n", "timeseries.horizn"),
        ("timeseries:\n  freq: fortnightly\n", "timeseries.freq"),
        ("model:\n  type: prophet\n", "model.type"),
        ("device: tpu\n", "device"),
        ("clustering:\n  k_min: 5\n  k_max: 2\n", "clustering"),
        ("forecast:\n  confidence: 1.5\n", "forecast.confidence"),
        ("automation:\n  retrain_cron: every night\n", "automation.retrain_cron"),
        ("automation:\n  retrain_cron: '0 2 * *'\n", "automation.retrain_cron"),
        ("automation:\n  timezone: Mars/Olympus\n", "automation.timezone"),
        ("automation:\n  forecast_max_age_hours: 0\n", "automation.forecast_max_age_hours"),
        ("data:\n  encoding: klingon\n", "data.encoding"),
        ("data:\n  categorical_columns: [sku]\n", "data"),
        ("data:\n  multilabel_columns: [quantity]\n", "data"),
    ],
)
def test_invalid_settings_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as error:
        load_settings(path)
    assert field in str(error.value)
    assert str(path) in str(error.value)


def test_invalid_environment_override_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORECAST_TRAINING__EPOCHS", "many")
    with pytest.raises(ConfigurationError, match=r"training\.epochs"):
        load_settings(write(tmp_path, ARCHITECTURE_EXAMPLE))


def test_missing_and_malformed_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_settings(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigurationError, match="mapping"):
        load_settings(write(tmp_path, yaml.safe_dump([1, 2])))


@pytest.mark.parametrize(
    ("freq", "season"), [("D", 7), ("W-FRI", 52), ("W", 52), ("MS", 12), ("ME", 12), ("QS", 4)]
)
def test_season_length_follows_the_frequency(freq: str, season: int) -> None:
    assert infer_season_length(freq) == season


def test_every_training_setting_reaches_the_trainer() -> None:
    # The serving step gets the training section as a TrainingConfig by field name: a
    # setting added on one side only would be silently ignored or break training.
    from forecast_assets.core.training.trainer import TrainingConfig, TrainingOptions
    from forecast_assets.settings import TrainingSettings
    from forecast_assets.specs import SERVING_TRAINING_SETTINGS

    trainer_fields = set(TrainingConfig.model_fields) - {"seed", "device", "season_length"}
    assert set(TrainingSettings.model_fields) - SERVING_TRAINING_SETTINGS == trainer_fields
    # Both extend the one class that declares the options (fields, defaults, checks).
    assert issubclass(TrainingSettings, TrainingOptions)
    assert issubclass(TrainingConfig, TrainingOptions)
    assert set(TrainingOptions.model_fields) == trainer_fields


def test_each_model_family_has_a_section_generated_from_its_constructor(tmp_path: Path) -> None:
    import inspect

    from forecast_assets.core.models.options import MODEL_OPTIONS
    from forecast_assets.core.models.registry import MODEL_TYPES, SIZE_ARGUMENTS
    from forecast_assets.settings import ModelSettings

    settings = load_settings(write(tmp_path, "model:\n  type: mixer\n  mixer:\n    blocks: 1\n"))
    assert settings.model.options()["blocks"] == 1
    # A section per family, declared statically with the family's own options class.
    sections = set(ModelSettings.model_fields) - {"type", "onnx", "per_cluster"}
    assert sections == set(MODEL_TYPES)
    for name in MODEL_TYPES:
        assert ModelSettings.model_fields[name].annotation is MODEL_OPTIONS[name]
    for name, model_class in MODEL_TYPES.items():
        parameters = inspect.signature(model_class).parameters
        # Keyword-only arguments are wiring the registry hands in, not settings.
        expected = {
            name: parameter.default
            for name, parameter in parameters.items()
            if name not in SIZE_ARGUMENTS and parameter.kind is not parameter.KEYWORD_ONLY
        }
        assert getattr(settings.model, name).model_dump() == {
            **expected,
            **({"blocks": 1} if name == "mixer" else {}),
        }


def test_a_cluster_can_override_the_model(tmp_path: Path) -> None:
    text = """
model:
  type: lightweight
  lightweight: {channels: 16}
  per_cluster:
    cluster_1: {type: mixer, mixer: {d_model: 24}}
    cluster_2: {lightweight: {levels: 2}}
"""
    model = load_settings(write(tmp_path, text)).model
    assert (model.for_cluster("cluster_0").type, model.for_cluster("cluster_0").options()) == (
        "lightweight",
        model.options(),
    )
    assert model.for_cluster("cluster_1").type == "mixer"
    assert model.for_cluster("cluster_1").options()["d_model"] == 24
    assert model.for_cluster("cluster_2").options() == {**model.options(), "levels": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  type: prophet\n", r"model\.type.*'prophet' is not one of"),
        ("model:\n  lightweight: {chanels: 8}\n", r"model\.lightweight\.chanels"),
        (
            "model:\n  per_cluster:\n    cluster_3: {mixer: {blocks: many}}\n",
            r"per_cluster\.cluster_3: mixer\.blocks",
        ),
        (
            "model:\n  lightweight: {channels: -4}\n",
            r"model\.lightweight\.channels: Input should be greater than or equal to 1",
        ),
        (
            "model:\n  type: standard\n  standard: {d_model: 30}\n",
            r"model\.standard: .*d_model \(30\) must be divisible by n_heads \(4\)",
        ),
        (
            "model:\n  standard: {positional: alibi}\n",
            r"model\.standard\.positional: .*unknown positional encoding 'alibi'",
        ),
        (
            "model:\n  advanced: {quantiles: [0.9, 0.1]}\n",
            r"model\.advanced\.quantiles: .*strictly increasing",
        ),
        (
            "model:\n  ensemble: {members: [lightweight, prophet]}\n",
            r"model\.ensemble: .*\['prophet'\] are not trainable model families",
        ),
        (
            "model:\n  ensemble: {member_options: {mixer: {blokcs: 2}}}\n",
            r"model\.ensemble: .*member_options\.mixer: blokcs: Extra inputs are not permitted",
        ),
        ("training:\n  loss: combined\n", r"combined.*needs loss_weights"),
        ("training:\n  loss_weights: {rmsle: 1}\n", r"unknown loss.*rmsle"),
    ],
)
def test_bad_model_and_loss_settings_fail_at_load_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, text))


def test_validation_shorter_than_the_horizon_is_refused(tmp_path: Path) -> None:
    text = "timeseries:\n  horizon: 12\ntraining:\n  validation_periods: 6\n"
    with pytest.raises(ConfigurationError, match=r"validation_periods \(6\).*horizon \(12\)"):
        load_settings(write(tmp_path, text))


def test_automation_and_landing_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "data:\n  landing_dir: incoming\n"))
    assert settings.automation.retrain_cron == "0 2 * * *"
    assert settings.automation.enabled
    assert settings.data.quarantine_path == Path("incoming") / "quarantine"
    spec = settings.data.column_spec()
    assert (spec.encoding, spec.max_quantity, spec.max_future_days) == ("utf-8", 1e9, 7)


def test_an_attribute_named_like_a_standard_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'sku' has the name of a standard column"):
        load_settings(write(tmp_path, "data:\n  categorical_columns: [store, sku]\n"))


def test_loading_settings_builds_no_model_and_imports_neither_optuna_nor_matplotlib(
    tmp_path: Path,
) -> None:
    # Every run, sensor tick and definitions load reads the settings: that must stay cheap.
    # A fresh interpreter, so that nothing imported by other tests counts.
    import subprocess
    import sys

    path = write(
        tmp_path,
        "model:\n  type: ensemble\n  per_cluster:\n    cluster_1: {type: standard}\n",
    )
    script = f"""
import sys
from forecast_assets.core.models import base

def refuse(*args, **kwargs):
    raise AssertionError("loading settings built a model")

base.ForecastModel.__init__ = refuse
from forecast_assets.settings import Settings, load_settings
load_settings({str(path)!r})
load_settings()
Settings()
print(sorted({{"optuna", "matplotlib"}} & {{name.split(".")[0] for name in sys.modules}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_data_section_is_the_loaders_column_spec(tmp_path: Path) -> None:
    # The section extends ColumnSpec: the loader's fields, defaults and checks are declared
    # once, and the loader gets them as they are.
    from forecast_assets.core.data.loader import ColumnSpec
    from forecast_assets.settings import DataSettings

    assert issubclass(DataSettings, ColumnSpec)
    assert DataSettings().column_spec() == ColumnSpec()
    data = load_settings(write(tmp_path, ARCHITECTURE_EXAMPLE)).data
    spec = data.column_spec()
    assert type(spec) is ColumnSpec
    assert spec.model_dump() == {name: getattr(data, name) for name in ColumnSpec.model_fields}
    assert spec.required_columns == ["Date", "Store", "Dept", "Weekly_Sales"]


def test_the_tuning_section_extends_the_core_tuning_options() -> None:
    from forecast_assets.core.training.tuning_config import TuningConfig, TuningOptions
    from forecast_assets.settings import TuningSettings

    assert issubclass(TuningSettings, TuningOptions)
    assert issubclass(TuningConfig, TuningOptions)
    shared = set(TuningOptions.model_fields)
    assert shared == {"n_trials", "timeout_seconds", "direction", "sampler", "pruner", "epochs"}
    # storage is declared on both sides on purpose: empty means other things there.
    assert set(TuningSettings.model_fields) - shared == {
        "enabled",
        "storage",
        "search_space",
        "windows",
    }


def test_a_min_history_below_what_the_backtest_asks_for_loads(tmp_path: Path) -> None:
    # Each cluster's split shrinks to its history instead; min_history only decides which
    # SKUs the neural models train on.
    settings = load_settings(write(tmp_path, "timeseries:\n  horizon: 30\n  min_history: 40\n"))
    assert settings.timeseries.min_history == 40
    assert settings.validation_periods + settings.timeseries.horizon > 40
