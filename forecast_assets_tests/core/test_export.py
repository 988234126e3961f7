"""ONNX and TorchScript export: parity with eager torch, atomic writes, onnxruntime serving."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from forecast_assets.core.data.windows import EncodedPanel, WindowSet
from forecast_assets.core.errors import ExportError, ModelNotFoundError
from forecast_assets.core.inference.export import (
    OnnxForecaster,
    example_inputs,
    export_onnx,
    export_torchscript,
    load_torchscript,
    predict_windows_onnx,
)
from forecast_assets.core.inference.predictor import engine_for, predict_windows
from forecast_assets.core.inference.serving import TORCHSCRIPT_TYPES, export_for_serving
from forecast_assets.core.models.artifact import ClusterModel, TrainingResult
from forecast_assets.core.models.base import MODEL_INPUTS, ForecastModel
from forecast_assets.core.models.lightweight import LightweightForecaster
from forecast_assets.core.models.registry import MODEL_TYPES, build_model
from forecast_assets_tests.core.test_trainer import model_for, weekly_pattern_panel

BATCH_SIZES = (1, 7, 64)
ATOL = 1e-4
SIZES = dict(n_skus=12, n_static=3, n_time_features=4, window=28, horizon=7)
# Small settings for whichever of these a family's constructor takes: exports stay fast.
SMALL = dict(
    channels=8,
    levels=2,
    blocks=1,
    d_model=16,
    n_heads=2,
    encoder_layers=1,
    decoder_layers=1,
    dim_feedforward=32,
    embedding_dim=4,
    season_length=7,
)
# The families meant for CPU serving must export to TorchScript (the others trace too, but
# TorchScript is only promised for these).


def small_model(model_type: str, seed: int = 0, **sizes: int) -> ForecastModel:
    """A registered model at small sizes with every parameter perturbed, so that zero-initialised
    last layers do not reduce the output to the seasonal-naive skip path."""
    torch.manual_seed(seed)
    accepted = inspect.signature(MODEL_TYPES[model_type].__init__).parameters
    options = {name: value for name, value in SMALL.items() if name in accepted}
    model = build_model(model_type, **{**SIZES, **sizes}, **options)
    return perturbed(model, seed)


def perturbed(model: ForecastModel, seed: int = 0) -> ForecastModel:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.is_floating_point():
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.add_(0.1 * noise)
    return model


def eager(model: ForecastModel, inputs: tuple) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(*inputs).numpy()


def as_batch(inputs: tuple) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in zip(MODEL_INPUTS, inputs, strict=True)}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory):
    """Each registered model type exported to ONNX once: type -> (model, path)."""
    folder = tmp_path_factory.mktemp("onnx")
    cache: dict[str, tuple[ForecastModel, Path]] = {}

    def get(model_type: str) -> tuple[ForecastModel, Path]:
        if model_type not in cache:
            model = small_model(model_type)
            cache[model_type] = (model, export_onnx(model, folder / f"{model_type}.onnx"))
        return cache[model_type]

    return get


# --- ONNX --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_onnx_matches_eager_torch_at_any_batch_size(model_type: str, exports) -> None:
    model, path = exports(model_type)
    forecaster = OnnxForecaster(path, intra_op_threads=1)
    assert forecaster.model_type == model_type
    assert forecaster.quantiles == tuple(model.quantiles)
    assert (forecaster.window, forecaster.horizon) == (SIZES["window"], SIZES["horizon"])
    for batch in BATCH_SIZES:
        inputs = example_inputs(model, batch=batch, seed=batch)
        expected = eager(model, inputs)
        actual = forecaster.predict(as_batch(inputs))
        shape = (batch, SIZES["horizon"], *((len(model.quantiles),) if model.quantiles else ()))
        assert actual.shape == expected.shape == shape
        np.testing.assert_allclose(actual, expected, rtol=0, atol=ATOL)
    # Other dtypes are cast: sku to int64, the rest to float32.
    cast = {**as_batch(inputs), "sku": inputs[3].numpy().astype(np.int32)}
    cast["past"] = cast["past"].astype(np.float64)
    np.testing.assert_array_equal(forecaster.predict(cast), actual)
    # Not only the skip path from ``past``: the other inputs reach the exported output.
    _, *others = example_inputs(model, batch=64, seed=99)
    changed = forecaster.predict(as_batch((inputs[0], *others)))
    assert np.abs(changed - actual).max() > 1e-3


def test_the_quantile_family_exports_every_quantile_in_order(exports) -> None:
    model, path = exports("advanced")
    forecaster = OnnxForecaster(path)
    assert forecaster.quantiles == model.quantiles == (0.1, 0.5, 0.9)
    for batch in BATCH_SIZES:
        inputs = example_inputs(model, batch=batch, seed=batch)
        actual = forecaster.predict(as_batch(inputs))
        assert actual.shape == (batch, SIZES["horizon"], 3)
        np.testing.assert_allclose(actual, eager(model, inputs), rtol=0, atol=ATOL)
        assert np.all(np.diff(actual, axis=-1) >= 0)  # the three quantiles, in order
    np.testing.assert_array_equal(forecaster.point_forecast(actual), actual[..., 1])


def test_onnx_forecasts_of_a_panel_equal_the_torch_ones(tmp_path: Path) -> None:
    encoded = weekly_pattern_panel()
    assert encoded.n_static_features == 0  # no categorical columns: static is [B, 0]
    model = perturbed(model_for(encoded))
    model.train()
    forecaster = OnnxForecaster(export_onnx(model, tmp_path / "panel.onnx"))
    assert model.training  # exported from a copy: the caller's model is left as it was
    assert [p.name for p in tmp_path.iterdir()] == ["panel.onnx"]  # no temp file left
    windows = concatenated(
        encoded.train, encoded.validation, encoded.test, encoded.forecast_windows()
    )
    expected = predict_windows(model, encoded, windows, device="cpu", batch_size=128)
    # Other batches than torch's: the chunking must not change the result.
    actual = predict_windows_onnx(forecaster, encoded, windows, batch_size=50)
    assert actual.shape == (len(windows), encoded.horizon)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=ATOL)
    empty = WindowSet(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert predict_windows_onnx(forecaster, encoded, empty).shape == (0, encoded.horizon)


def concatenated(*sets: WindowSet) -> WindowSet:
    return WindowSet(
        np.concatenate([s.rows for s in sets]), np.concatenate([s.origins for s in sets])
    )


def test_an_export_for_another_window_is_refused(exports) -> None:
    _, path = exports("lightweight")
    encoded: EncodedPanel = weekly_pattern_panel()  # window 21, the export takes 28
    message = r"'past' has shape \(6, 21\).*" + re.escape(str(path)) + r".*\('batch', 28\)"
    with pytest.raises(ExportError, match=message):
        predict_windows_onnx(OnnxForecaster(path), encoded, encoded.forecast_windows())


def test_a_failed_onnx_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous export")

    def save_half_then_fail(self, destination, **kwargs) -> None:
        Path(destination).write_bytes(b"half of an onnx file")
        raise OSError("disk full")

    monkeypatch.setattr(torch.onnx.ONNXProgram, "save", save_half_then_fail)
    with pytest.raises(ExportError, match=r"model\.onnx.*disk full"):
        export_onnx(small_model("lightweight"), path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


class DataDependent(LightweightForecaster):
    """Branches on the data: torch.export cannot capture that."""

    def forward(self, past, past_time, future_time, sku, static):  # type: ignore[override]
        out = super().forward(past, past_time, future_time, sku, static)
        return out if float(past.sum()) > 0 else -out


def test_a_model_that_cannot_be_exported_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="DataDependent cannot be exported to ONNX"):
        export_onnx(DataDependent(**SIZES, channels=4, levels=1), tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []
    model = LightweightForecaster(**SIZES)
    del model.hyperparameters["window"]
    with pytest.raises(ExportError, match=r"lacks \['window'\]"):
        export_onnx(model, tmp_path / "model.onnx")


def test_a_missing_or_corrupt_onnx_file_is_named(tmp_path: Path, exports) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ModelNotFoundError, match=re.escape(str(missing))):
        OnnxForecaster(missing)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model" * 10)
    with pytest.raises(ModelNotFoundError, match=re.escape(str(garbage)) + ".*corrupt"):
        OnnxForecaster(garbage)
    _, path = exports("lightweight")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelNotFoundError, match=re.escape(str(truncated))):
        OnnxForecaster(truncated)
    with pytest.raises(ModelNotFoundError, match="in-memory ONNX model is not readable"):
        OnnxForecaster(path.read_bytes()[:100])


def test_onnx_bytes_serve_like_the_file(exports) -> None:
    model, path = exports("lightweight")
    inputs = as_batch(example_inputs(model, batch=7, seed=5))
    from_bytes = OnnxForecaster(path.read_bytes())
    assert from_bytes.model_type == "lightweight"
    np.testing.assert_array_equal(from_bytes.predict(inputs), OnnxForecaster(path).predict(inputs))


# --- TorchScript -------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", TORCHSCRIPT_TYPES)
def test_torchscript_matches_eager_torch_at_any_batch_size(model_type: str, tmp_path: Path) -> None:
    if model_type not in MODEL_TYPES:
        pytest.skip(f"'{model_type}' is not registered yet")
    model = small_model(model_type)
    loaded = load_torchscript(export_torchscript(model, tmp_path / "model.pt"))
    assert loaded.metadata["model_type"] == model_type
    assert loaded.metadata["window"] == str(SIZES["window"])
    for batch in BATCH_SIZES:
        inputs = example_inputs(model, batch=batch, seed=batch)
        with torch.no_grad():
            actual = loaded(*inputs).numpy()
        assert actual.shape == (batch, SIZES["horizon"])
        np.testing.assert_allclose(actual, eager(model, inputs), rtol=0, atol=ATOL)


def test_torchscript_traces_a_model_that_cannot_be_scripted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cannot_compile(module):
        raise RuntimeError("Unknown builtin op")

    monkeypatch.setattr(torch.jit, "script", cannot_compile)
    model = small_model("advanced")
    loaded = load_torchscript(export_torchscript(model, tmp_path / "quantile.pt"))
    assert loaded.metadata["torchscript"] == "trace"
    assert loaded.metadata["quantiles"] == "[0.1, 0.5, 0.9]"
    for batch in BATCH_SIZES:
        inputs = example_inputs(model, batch=batch, seed=batch)
        with torch.no_grad():
            actual = loaded(*inputs).numpy()
        assert actual.shape == (batch, SIZES["horizon"], 3)
        np.testing.assert_allclose(actual, eager(model, inputs), rtol=0, atol=ATOL)


def test_a_failed_torchscript_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous export")

    def save_half_then_fail(module, destination, **kwargs) -> None:
        Path(destination).write_bytes(b"half of an archive")
        raise OSError("disk full")

    monkeypatch.setattr(torch.jit, "save", save_half_then_fail)
    with pytest.raises(ExportError, match=r"model\.pt.*disk full"):
        export_torchscript(small_model("lightweight"), path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_missing_or_corrupt_torchscript_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    with pytest.raises(ModelNotFoundError, match=re.escape(str(missing))):
        load_torchscript(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(ModelNotFoundError, match=re.escape(str(garbage)) + ".*corrupt"):
        load_torchscript(garbage)


# --- serving files of a cluster model -----------------------------------------------------------


def cluster_model_of(model: ForecastModel, model_type: str) -> ClusterModel:
    return ClusterModel(
        model_type=model_type,
        hyperparameters=dict(model.hyperparameters),
        state_dict=model.state_dict(),
        skus=[f"s{i}" for i in range(model.hyperparameters["n_skus"])],
        trained_at="2026-01-01T00:00:00+00:00",
        training=TrainingResult(1, 0.5, False, "cpu"),
    )


def test_serving_files_sit_in_the_model_folder_and_the_model_keeps_its_onnx(tmp_path) -> None:
    trained = cluster_model_of(small_model("mixer"), "mixer")
    files = export_for_serving(trained, tmp_path, "cluster_3")
    assert files.problems == []
    assert files.onnx == tmp_path / "cluster_3.onnx"
    assert files.torchscript == tmp_path / "cluster_3.torchscript.pt"
    assert trained.onnx == files.onnx.read_bytes()
    assert engine_for(trained) == "onnxruntime"
    assert engine_for(trained, "torch") == "torch"


def test_a_failed_export_leaves_a_torch_model_and_no_stale_file(tmp_path, monkeypatch) -> None:
    stale = tmp_path / "cluster_0.onnx"
    stale.write_bytes(b"an export of an older model")
    trained = cluster_model_of(small_model("lightweight"), "lightweight")
    trained.onnx = b"older bytes"

    def refuse(model, path):
        raise ExportError("unsupported operator")

    monkeypatch.setattr("forecast_assets.core.inference.serving.export_onnx", refuse)
    files = export_for_serving(trained, tmp_path, "cluster_0")
    assert files.onnx is None and trained.onnx is None
    assert not stale.exists()
    assert "unsupported operator" in files.problems[0]
    assert engine_for(trained) == "torch"
    with pytest.raises(ModelNotFoundError, match="no ONNX export"):
        engine_for(trained, "onnxruntime")
