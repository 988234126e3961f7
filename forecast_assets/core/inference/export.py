"""Export trained models to ONNX and TorchScript, and serve ONNX files with onnxruntime."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forecast_assets.core.data.windows import EncodedPanel, WindowSet
from forecast_assets.core.errors import ExportError, ModelNotFoundError
from forecast_assets.core.models.base import MODEL_INPUTS, ForecastModel, point_of
from forecast_assets.core.models.registry import MODEL_TYPES
from forecast_assets.core.storage import atomic_write

OUTPUT_NAME = "forecast"
# torch.export specialises example sizes 0 and 1, so the traced batch must be at least 2; the
# check batch differs from it so that a graph that baked the batch size in is caught.
EXAMPLE_BATCH = 8
CHECK_BATCH = 3
CHECK_ATOL = 1e-4
CHECK_RTOL = 1e-3
METADATA_PREFIX = "forecast_assets."
# Hyperparameters every model has that fix its input shapes (only the batch varies).
SIZE_NAMES = ("window", "horizon", "n_time_features", "n_static", "n_skus")
TORCHSCRIPT_METADATA = "forecast_assets.json"

logger = logging.getLogger(__name__)


# --- shared helpers ----------------------------------------------------------------------------


def model_type_of(model: ForecastModel) -> str:
    """The registry name of ``model``'s class (``model.type`` in the settings)."""
    for name, model_class in MODEL_TYPES.items():
        if type(model) is model_class:
            return name
    return type(model).__name__


def example_inputs(model: ForecastModel, batch: int = EXAMPLE_BATCH, seed: int = 0) -> tuple:
    """Random inputs in the shapes of ``model``'s hyperparameters, in MODEL_INPUTS order."""
    sizes = _sizes(model)
    generator = torch.Generator().manual_seed(seed)
    window, horizon, n_time = sizes["window"], sizes["horizon"], sizes["n_time_features"]
    return (
        torch.randn(batch, window, generator=generator),
        torch.randn(batch, window, n_time, generator=generator),
        torch.randn(batch, horizon, n_time, generator=generator),
        torch.randint(0, max(sizes["n_skus"], 1), (batch,), generator=generator),
        torch.randn(batch, sizes["n_static"], generator=generator),
    )


def export_metadata(model: ForecastModel) -> dict[str, str]:
    """What a server needs to know about an exported model, as strings."""
    sizes = _sizes(model)
    return {
        "model_type": model_type_of(model),
        "quantiles": json.dumps([float(q) for q in model.quantiles]),
        "window": str(sizes["window"]),
        "horizon": str(sizes["horizon"]),
        "inputs": json.dumps(list(MODEL_INPUTS)),
        "hyperparameters": json.dumps(model.hyperparameters, default=str, sort_keys=True),
    }


def _sizes(model: ForecastModel) -> dict[str, int]:
    hyperparameters = model.hyperparameters
    missing = [name for name in SIZE_NAMES if name not in hyperparameters]
    if missing:
        raise ExportError(
            f"{type(model).__name__}.hyperparameters lacks {missing}: the input shapes of an "
            "export are read from them"
        )
    return {name: int(hyperparameters[name]) for name in SIZE_NAMES}


def _cpu_copy(model: ForecastModel) -> ForecastModel:
    # A copy, so that exporting neither moves the caller's model nor changes its train/eval mode.
    return copy.deepcopy(model).cpu().float().eval()


def _check_close(expected: np.ndarray, actual: np.ndarray, what: str) -> None:
    if expected.shape != actual.shape:
        raise ExportError(f"{what} returns shape {actual.shape}, the torch model {expected.shape}")
    if not np.allclose(actual, expected, atol=CHECK_ATOL, rtol=CHECK_RTOL):
        worst = float(np.abs(actual - expected).max())
        raise ExportError(f"{what} differs from the torch model by up to {worst:.3g}")


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporters' noise off the console for the duration of an export.

    torch logs warnings (missing torchvision ops, unhinted symbols), warns about deprecations
    and axis renames, and prints whole FX graphs to stderr when torch.export fails; the error
    raised carries what matters. Printed text is kept at DEBUG level on this module's logger.
    Levels and filters are restored afterwards.
    """
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)  # children without their own level follow
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stderr(printed):
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
            yield
    finally:
        torch_logger.setLevel(level)
        if printed.getvalue():
            logger.debug("exporter output:\n%s", printed.getvalue())


def _summary(error: BaseException) -> str:
    """The root cause of an exporter error in a few lines (they run to pages of graph dumps,
    ANSI colours and generic advice)."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    lines = [_ANSI.sub("", line).rstrip() for line in str(root).strip().splitlines()]
    summary = [f"{type(root).__name__}: {lines[0] if lines else ''}"]
    for marker in ("The following call raised this error:", "Caused by:"):
        if marker in lines:
            at = lines.index(marker)
            summary += [line.strip() for line in lines[at + 1 : at + 3] if line.strip()]
            break
    return " | ".join(summary)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- ONNX --------------------------------------------------------------------------------------


def export_onnx(
    model: ForecastModel, path: str | os.PathLike[str], opset: int | None = None
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically) and return the path.

    Inputs are named as MODEL_INPUTS with a dynamic batch dimension (window, horizon and
    feature counts are fixed by the model); the output "forecast" is [B, H], or [B, H, Q] for
    a quantile model. The model type, quantiles, window, horizon and hyperparameters are kept
    in the file's metadata. The exported graph is run once with onnxruntime on a batch size
    other than the traced one and compared with the torch model before the file is written.
    """
    module = _cpu_copy(model)
    inputs = example_inputs(module)
    batch = torch.export.Dim("batch", min=1)
    dynamic_shapes = {name: {0: batch} for name in MODEL_INPUTS}
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                module,
                inputs,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                input_names=list(MODEL_INPUTS),
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
    except Exception as error:
        raise ExportError(
            f"{type(model).__name__} cannot be exported to ONNX: {_summary(error)}"
        ) from error
    for key, value in export_metadata(module).items():
        program.model.metadata_props[METADATA_PREFIX + key] = value

    def write(tmp: Path) -> None:
        program.save(tmp, external_data=False)
        _check_onnx_file(tmp, module)

    try:
        return atomic_write(path, write)
    except ExportError:
        raise
    except Exception as error:
        raise ExportError(f"could not write the ONNX model to {path}: {error}") from error


def _check_onnx_file(path: Path, module: ForecastModel) -> None:
    check = example_inputs(module, batch=CHECK_BATCH, seed=1)
    with torch.no_grad():
        expected = module(*check).numpy()
    forecaster = OnnxForecaster(path, intra_op_threads=1, providers=["CPUExecutionProvider"])
    actual = forecaster.predict(dict(zip(MODEL_INPUTS, (t.numpy() for t in check), strict=True)))
    _check_close(expected, actual, f"the ONNX export of {type(module).__name__}")


def _default_providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [provider for provider in preferred if provider in available] or available


class OnnxForecaster:
    """An exported model served by onnxruntime, called like the torch model on numpy arrays.

    ``source`` is the path of an ``export_onnx`` file or its bytes. ``predict(batch)`` takes
    the arrays named in MODEL_INPUTS (extra keys such as ``scaled_zero`` are ignored) and
    returns the scaled forecast [B, H] or [B, H, Q].
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes,
        intra_op_threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        model: str | bytes
        if isinstance(source, bytes | bytearray | memoryview):
            self.path: Path | None = None
            self.source = "the in-memory ONNX model"
            model = bytes(source)
        else:
            self.path = Path(source)
            self.source = f"the ONNX model at {self.path}"
            if not self.path.is_file():
                raise ModelNotFoundError(f"no ONNX model at {self.path}")
            model = str(self.path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no per-node provider-placement warnings
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        try:
            self.session = ort.InferenceSession(
                model, sess_options=options, providers=providers or _default_providers()
            )
        except Exception as error:
            raise ModelNotFoundError(
                f"{self.source} is not readable (corrupt or truncated?): {_summary(error)}"
            ) from error
        stored = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {
            key.removeprefix(METADATA_PREFIX): value
            for key, value in stored.items()
            if key.startswith(METADATA_PREFIX)
        }
        # The exporter may drop an input the graph never reads, so feed what the session
        # declares rather than all of MODEL_INPUTS.
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.input_shapes = {node.name: node.shape for node in self.session.get_inputs()}
        shape = self.session.get_outputs()[0].shape
        self.horizon = int(self.metadata.get("horizon", shape[1]))
        self.window = int(self.metadata["window"]) if "window" in self.metadata else None
        self.quantiles: tuple[float, ...] = tuple(json.loads(self.metadata.get("quantiles", "[]")))
        self.model_type = self.metadata.get("model_type")

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def predict(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.input_names if name not in batch]
        if missing:
            raise KeyError(f"the batch lacks the model inputs {missing}")
        size = len(batch[self.input_names[0]])
        if size == 0:
            return np.zeros((0, self.horizon, *self._quantile_axis()), dtype=np.float32)
        feed = {
            name: np.ascontiguousarray(batch[name], dtype=np.int64 if name == "sku" else np.float32)
            for name in self.input_names
        }
        for name, array in feed.items():
            self._check_shape(name, array.shape)
        return self.session.run([OUTPUT_NAME], feed)[0]

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        # onnxruntime's own message names neither the file nor the fix; a stale export (other
        # window, horizon or attribute encoding than the data) is the usual cause.
        expected = self.input_shapes[name]
        fixed = [dim if isinstance(dim, int) else None for dim in expected]
        if len(shape) != len(fixed) or any(
            want is not None and want != got for want, got in zip(fixed, shape, strict=False)
        ):
            raise ExportError(
                f"input '{name}' has shape {tuple(shape)}, {self.source} takes "
                f"{tuple(dim if isinstance(dim, int) else 'batch' for dim in expected)}: the data "
                "no longer fits the exported model; export it again"
            )

    __call__ = predict

    def point_forecast(self, output: np.ndarray) -> np.ndarray:
        """[B, H] point forecast of an output: as is, or its median column."""
        return point_of(output, self.quantiles)

    def _quantile_axis(self) -> tuple[int, ...]:
        return (len(self.quantiles),) if self.quantiles else ()


def load_onnx(
    path: str | os.PathLike[str],
    intra_op_threads: int | None = None,
    providers: list[str] | None = None,
) -> OnnxForecaster:
    return OnnxForecaster(path, intra_op_threads=intra_op_threads, providers=providers)


def predict_windows_onnx(
    forecaster: OnnxForecaster,
    encoded: EncodedPanel,
    windows: WindowSet,
    batch_size: int = 1024,
) -> np.ndarray:
    """Scaled forecasts for ``windows`` with onnxruntime, like ``predictor.predict_windows``:
    [n_windows, horizon], or [n_windows, horizon, n_quantiles] for a quantile model."""
    outputs = []
    for start in range(0, len(windows), batch_size):
        chunk = WindowSet(
            windows.rows[start : start + batch_size], windows.origins[start : start + batch_size]
        )
        outputs.append(forecaster.predict(encoded.batch(chunk, with_target=False)))
    if not outputs:
        return np.zeros((0, encoded.horizon, *forecaster._quantile_axis()), dtype=np.float32)
    return np.concatenate(outputs)


# --- TorchScript -------------------------------------------------------------------------------


def export_torchscript(model: ForecastModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as TorchScript at ``path`` (atomically) and return the path.

    ``torch.jit.script`` first (keeps any shape-dependent control flow); a model it cannot
    compile is traced instead, checked against eager mode on other batch sizes. The export
    metadata travels in the archive (read it with ``load_torchscript``'s ``metadata``).
    TorchScript is deprecated upstream; ONNX is the serving format, this is the fallback.
    """
    module = _cpu_copy(model)
    with _quiet_exporter():
        try:
            scripted = torch.jit.script(module)
            method = "script"
        except Exception as script_error:
            logger.info(
                "torch.jit.script failed for %s, tracing: %s", type(model).__name__, script_error
            )
            try:
                scripted = torch.jit.trace(
                    module,
                    example_inputs(module),
                    check_inputs=[example_inputs(module, batch=b, seed=b) for b in (1, 5)],
                    check_tolerance=CHECK_ATOL,
                )
                method = "trace"
            except Exception as trace_error:
                raise ExportError(
                    f"{type(model).__name__} cannot be exported to TorchScript: script failed "
                    f"with {_summary(script_error)}; trace failed with {_summary(trace_error)}"
                ) from trace_error
        check = example_inputs(module, batch=CHECK_BATCH, seed=1)
        with torch.no_grad():
            _check_close(
                module(*check).numpy(),
                scripted(*check).numpy(),
                f"the TorchScript ({method}) export of {type(model).__name__}",
            )
    metadata = {**export_metadata(module), "torchscript": method}
    extra_files = {TORCHSCRIPT_METADATA: json.dumps(metadata)}

    def write(tmp: Path) -> None:
        with _quiet_exporter():
            torch.jit.save(scripted, str(tmp), _extra_files=extra_files)

    try:
        return atomic_write(path, write)
    except Exception as error:
        raise ExportError(f"could not write the TorchScript model to {path}: {error}") from error


def load_torchscript(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> torch.jit.ScriptModule:
    """A TorchScript model written by ``export_torchscript``, in eval mode.

    Its export metadata (model type, quantiles, window, horizon, ...) is in ``.metadata``.
    """
    target = Path(path)
    if not target.is_file():
        raise ModelNotFoundError(f"no TorchScript model at {target}")
    extra_files = {TORCHSCRIPT_METADATA: ""}
    try:
        with _quiet_exporter():
            module = torch.jit.load(
                str(target), map_location=map_location, _extra_files=extra_files
            )
    except Exception as error:
        raise ModelNotFoundError(
            f"{target} is not a readable TorchScript model (corrupt or truncated?): "
            f"{_summary(error)}"
        ) from error
    metadata: dict[str, Any] = json.loads(extra_files[TORCHSCRIPT_METADATA] or "{}")
    module.eval()
    # A plain Python attribute on the wrapper, not part of the compiled module.
    object.__setattr__(module, "metadata", metadata)
    return module
