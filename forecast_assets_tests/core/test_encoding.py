"""CategoricalEncoder: one-hot and multi-label encoding of static SKU attributes."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from forecast_assets.core.data.encoding import CategoricalEncoder
from forecast_assets.core.errors import DataValidationError, ModelNotFoundError


def attributes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store": ["north", "south", "north"],
            "category": ["dairy", "dairy", "toys"],
            "tags": ["organic|local", "local", ""],
        },
        index=pd.Index(["a", "b", "c"], name="sku"),
    )


def fitted() -> CategoricalEncoder:
    encoder = CategoricalEncoder(onehot_columns=["store", "category"], multilabel_columns=["tags"])
    return encoder.fit(attributes())


def test_feature_names_list_onehot_then_multilabel_columns() -> None:
    assert fitted().feature_names == [
        "store_north",
        "store_south",
        "category_dairy",
        "category_toys",
        "tags_local",
        "tags_organic",
    ]


def test_encoded_values_match_the_attributes() -> None:
    encoded = fitted().transform(attributes())

    # Columns: store_north, store_south, category_dairy, category_toys, tags_local, tags_organic
    expected = np.array(
        [
            [1, 0, 1, 0, 1, 1],  # a: north, dairy, organic|local
            [0, 1, 1, 0, 1, 0],  # b: south, dairy, local
            [1, 0, 0, 1, 0, 0],  # c: north, toys, no tags
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(encoded, expected)
    assert encoded.dtype == np.float32


def test_fit_transform_equals_fit_then_transform() -> None:
    encoder = CategoricalEncoder(onehot_columns=["store"], multilabel_columns=["tags"])

    np.testing.assert_array_equal(
        encoder.fit_transform(attributes()), fitted().transform(attributes())[:, [0, 1, 4, 5]]
    )


def test_multilabel_cells_are_split_and_stripped() -> None:
    frame = pd.DataFrame({"tags": [" premium | value ", "value||", None]})
    encoder = CategoricalEncoder(multilabel_columns=["tags"], separator="|").fit(frame)

    assert encoder.feature_names == ["tags_premium", "tags_value"]
    np.testing.assert_array_equal(encoder.transform(frame), [[1, 1], [0, 1], [0, 0]])


def test_custom_separator() -> None:
    frame = pd.DataFrame({"tags": ["x;y", "y"]})
    encoder = CategoricalEncoder(multilabel_columns=["tags"], separator=";").fit(frame)

    np.testing.assert_array_equal(encoder.transform(frame), [[1, 1], [0, 1]])


def test_unknown_categories_encode_as_zeros() -> None:
    new = pd.DataFrame(
        {"store": ["east", "south"], "category": ["toys", "garden"], "tags": ["new", "organic|new"]}
    )

    encoded = fitted().transform(new)

    np.testing.assert_array_equal(
        encoded,
        [
            [0, 0, 0, 1, 0, 0],  # east unknown, toys known, tag "new" unknown
            [0, 1, 0, 0, 0, 1],  # south known, garden unknown, organic known
        ],
    )


def test_nothing_configured_gives_zero_columns() -> None:
    encoder = CategoricalEncoder().fit(attributes())

    assert encoder.transform(attributes()).shape == (3, 0)
    assert encoder.feature_names == []


def test_missing_column_is_a_validation_error() -> None:
    with pytest.raises(DataValidationError, match="'category'") as caught:
        fitted().transform(attributes().drop(columns="category"))

    assert caught.value.column == "category"


def test_transform_before_fit_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        CategoricalEncoder(onehot_columns=["store"]).transform(attributes())


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    encoder = fitted()
    new = pd.DataFrame(
        {"store": ["south", "west"], "category": ["toys", "dairy"], "tags": ["local", "x"]}
    )

    loaded = CategoricalEncoder.load(encoder.save(tmp_path / "encoder.joblib"))

    assert loaded.feature_names == encoder.feature_names
    np.testing.assert_array_equal(loaded.transform(attributes()), encoder.transform(attributes()))
    np.testing.assert_array_equal(loaded.transform(new), encoder.transform(new))


def test_load_rejects_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        CategoricalEncoder.load(tmp_path / "absent.joblib")
    joblib.dump({"not": "an encoder"}, tmp_path / "other.joblib")
    with pytest.raises(ModelNotFoundError):
        CategoricalEncoder.load(tmp_path / "other.joblib")
