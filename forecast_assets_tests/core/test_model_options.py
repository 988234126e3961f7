"""The options classes of the model families are their constructors' hyperparameters, with
the same defaults and types, and refuse what the constructors refuse without building."""

import pytest

from forecast_assets.core.errors import ConfigurationError
from forecast_assets.core.models.ensemble import ENSEMBLE
from forecast_assets.core.models.options import MODEL_OPTIONS, TRAINABLE_OPTIONS
from forecast_assets.core.models.registry import (
    MODEL_TYPES,
    SIZE_ARGUMENTS,
    build_model,
    tunable_hyperparameters,
)

SIZES = dict(n_skus=3, n_static=2, n_time_features=4, window=28, horizon=7, season_length=7)


def test_every_family_has_its_options_class() -> None:
    assert list(MODEL_OPTIONS) == list(MODEL_TYPES)
    assert set(TRAINABLE_OPTIONS) == set(MODEL_TYPES) - {ENSEMBLE}
    assert set(SIZES) == set(SIZE_ARGUMENTS)


@pytest.mark.parametrize("model_type", list(MODEL_TYPES))
def test_a_family_has_one_name_in_settings_file_and_classes(model_type: str) -> None:
    title = model_type.capitalize()
    model = MODEL_TYPES[model_type]
    assert model.__module__ == f"forecast_assets.core.models.{model_type}"
    assert model.__name__ == f"{title}Forecaster"
    assert MODEL_OPTIONS[model_type].__name__ == f"{title}Options"
    assert MODEL_OPTIONS[model_type].section_name == f"model.{model_type}"


@pytest.mark.parametrize("model_type", list(MODEL_TYPES))
def test_the_fields_are_the_constructor_hyperparameters(model_type: str) -> None:
    constructor = tunable_hyperparameters(model_type)  # name -> (type, default)
    fields = MODEL_OPTIONS[model_type].model_fields
    assert list(fields) == list(constructor)  # the same names, in the same order
    for name, (hint, default) in constructor.items():
        assert fields[name].annotation == hint, name
        assert fields[name].default == default, name
        assert fields[name].description, name
    assert MODEL_OPTIONS[model_type]().model_dump() == {
        name: default for name, (_, default) in constructor.items()
    }


@pytest.mark.parametrize("model_type", list(MODEL_TYPES))
def test_the_default_options_build_the_model(model_type: str) -> None:
    options = MODEL_OPTIONS[model_type]().model_dump()
    model = build_model(model_type, **SIZES, **options)
    assert model.hyperparameters["season_length"] == SIZES["season_length"]


@pytest.mark.parametrize(
    ("model_type", "options", "message"),
    [
        ("standard", {"d_model": 30}, r"d_model \(30\) must be divisible by n_heads \(4\)"),
        ("advanced", {"n_heads": 3}, r"d_model \(32\) must be divisible by n_heads \(3\)"),
        ("standard", {"positional": "alibi"}, "unknown positional encoding 'alibi'"),
        ("standard", {"positional": "rope", "d_model": 12, "n_heads": 4}, "even head"),
        ("advanced", {"quantiles": (0.5, 1.2)}, "strictly between 0 and 1"),
        ("advanced", {"patch_length": 0}, "greater than or equal to 1"),
        ("mixer", {"patch_stride": 0}, "greater than or equal to 1"),
        ("lightweight", {"skip_seasons": 0}, "greater than or equal to 1"),
        ("lightweight", {"dropout": 1.5}, "less than or equal to 1"),
        (ENSEMBLE, {"members": ("lightweight",)}, "two or more different families"),
        (ENSEMBLE, {"members": ("lightweight", ENSEMBLE)}, "not trainable model families"),
        (
            ENSEMBLE,
            {"member_options": {"mixer": {"blocks": "many"}}},
            r"member_options\.mixer: blocks",
        ),
    ],
)
def test_options_refuse_what_the_model_refuses(
    model_type: str, options: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        MODEL_OPTIONS[model_type](**options)
    assert f"model.{model_type}" in str(caught.value)
    with pytest.raises((ValueError, RuntimeError, TypeError)):
        build_model(model_type, **SIZES, **options)


def test_options_of_a_family_that_is_no_member_are_left_alone() -> None:
    # The ensemble ignores them, as it always has: a file holding them still loads.
    options = MODEL_OPTIONS[ENSEMBLE](member_options={"standard": {"d_model": 30}})
    assert options.member_options == {"standard": {"d_model": 30}}
