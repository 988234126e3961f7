"""ScalerManager: per-SKU affine scaling, its inverse, and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.scaling import ScalerManager
from forecast_assets.core.errors import ConfigurationError, ModelNotFoundError

SKUS = pd.Index(["a", "b", "c"], name="sku")
# [n_skus, n_periods]; b has not started for the first two periods.
VALUES = np.array(
    [
        [2.0, 4.0, 6.0, 8.0],
        [np.nan, np.nan, 10.0, 30.0],
        [-1.0, 3.0, 0.0, 2.0],
    ]
)


@pytest.mark.parametrize("method", ["standard", "minmax", "maxabs"])
def test_inverse_transform_undoes_transform(method: str) -> None:
    scalers = ScalerManager(method).fit(VALUES, SKUS)  # type: ignore[arg-type]

    restored = scalers.inverse_transform(scalers.transform(VALUES))

    np.testing.assert_allclose(restored, VALUES, equal_nan=True)
    assert np.isnan(scalers.transform(VALUES)[1, :2]).all()


def test_standard_scaling_uses_mean_and_population_std_of_observed_values() -> None:
    scalers = ScalerManager("standard").fit(VALUES, SKUS)

    # a: mean 5, population variance (9 + 1 + 1 + 9) / 4 = 5.
    # b: only 10 and 30 count: mean 20, std 10 (the NaN are ignored, not zeros).
    # c: mean 1, variance (4 + 4 + 1 + 1) / 4 = 2.5.
    np.testing.assert_allclose(scalers.offset, [5.0, 20.0, 1.0])
    np.testing.assert_allclose(scalers.unit, [np.sqrt(5.0), 10.0, np.sqrt(2.5)])
    scaled = scalers.transform(VALUES)
    np.testing.assert_allclose(scaled[1, 2:], [-1.0, 1.0])
    np.testing.assert_allclose(scaled[0], (VALUES[0] - 5.0) / np.sqrt(5.0))


def test_minmax_scaling_maps_training_range_to_unit_interval() -> None:
    scalers = ScalerManager("minmax").fit(VALUES, SKUS)

    # offset = min, unit = max - min per SKU.
    np.testing.assert_allclose(scalers.offset, [2.0, 10.0, -1.0])
    np.testing.assert_allclose(scalers.unit, [6.0, 20.0, 4.0])
    np.testing.assert_allclose(scalers.transform(VALUES)[2], [0.0, 1.0, 0.25, 0.75])


def test_maxabs_scaling_divides_by_largest_magnitude() -> None:
    scalers = ScalerManager("maxabs").fit(VALUES, SKUS)

    np.testing.assert_allclose(scalers.offset, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(scalers.unit, [8.0, 30.0, 3.0])


def test_rows_select_each_rows_own_sku() -> None:
    scalers = ScalerManager("standard").fit(VALUES, SKUS)
    rows = np.array([2, 0, 2])
    batch = np.array([[1.0, 2.0], [5.0, 7.0], [0.0, -1.0]])  # rows of SKUs c, a, c

    scaled = scalers.transform(batch, rows=rows)

    expected = np.array(
        [
            (batch[0] - 1.0) / np.sqrt(2.5),
            (batch[1] - 5.0) / np.sqrt(5.0),
            (batch[2] - 1.0) / np.sqrt(2.5),
        ]
    )
    np.testing.assert_allclose(scaled, expected)
    np.testing.assert_allclose(scalers.inverse_transform(scaled, rows=rows), batch)


def test_rows_broadcast_over_extra_dimensions() -> None:
    scalers = ScalerManager("minmax").fit(VALUES, SKUS)
    batch = np.arange(12.0).reshape(2, 3, 2)  # [B, H, quantiles] for SKUs b, a

    scaled = scalers.transform(batch, rows=np.array([1, 0]))

    np.testing.assert_allclose(scaled[0], (batch[0] - 10.0) / 20.0)
    np.testing.assert_allclose(scaled[1], (batch[1] - 2.0) / 6.0)


def test_units_are_per_sku_scale() -> None:
    scalers = ScalerManager("minmax").fit(VALUES, SKUS)

    np.testing.assert_allclose(scalers.units(), [6.0, 20.0, 4.0])
    np.testing.assert_allclose(scalers.units(np.array([2, 2, 1])), [4.0, 4.0, 20.0])


def test_save_and_load_give_identical_outputs(tmp_path: Path) -> None:
    scalers = ScalerManager("standard").fit(VALUES, SKUS)
    probe = np.array([[0.0, 100.0], [-3.0, 2.5], [1e6, 7.0]])

    path = scalers.save(tmp_path / "nested" / "scalers.joblib")
    loaded = ScalerManager.load(path)

    assert loaded.method == "standard"
    assert list(loaded.skus) == list(SKUS)
    np.testing.assert_array_equal(loaded.transform(probe), scalers.transform(probe))
    np.testing.assert_array_equal(loaded.inverse_transform(probe), scalers.inverse_transform(probe))
    np.testing.assert_array_equal(loaded.units(), scalers.units())


def test_load_missing_file_raises_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        ScalerManager.load(tmp_path / "absent.joblib")


@pytest.mark.parametrize("method", ["standard", "minmax", "maxabs"])
def test_constant_sku_does_not_divide_by_zero(method: str) -> None:
    values = np.array([[4.0, 4.0, 4.0], [1.0, 2.0, 3.0]])
    scalers = ScalerManager(method).fit(values, pd.Index(["flat", "moving"]))  # type: ignore[arg-type]

    scaled = scalers.transform(values)

    assert np.isfinite(scaled).all()
    assert scalers.units()[0] != 0
    # A later level change of the flat SKU still maps back exactly.
    later = np.array([[9.0], [2.0]])
    np.testing.assert_allclose(scalers.inverse_transform(scalers.transform(later)), later)


def test_constant_sku_keeps_its_level_with_unit_scale() -> None:
    values = np.array([[4.0, 4.0, 4.0]])
    scalers = ScalerManager("standard").fit(values, pd.Index(["flat"]))

    np.testing.assert_allclose(scalers.transform(values), [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(scalers.transform(np.array([[6.0]])), [[2.0]])


def test_all_zero_sku_scales_to_finite_values() -> None:
    values = np.zeros((1, 5))
    scalers = ScalerManager("maxabs").fit(values, pd.Index(["zero"]))

    np.testing.assert_allclose(scalers.transform(np.array([[3.0]])), [[3.0]])


def test_unknown_method_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="robust"):
        ScalerManager("robust")  # type: ignore[arg-type]


def test_unfitted_manager_refuses_to_transform() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ScalerManager().transform(VALUES)
