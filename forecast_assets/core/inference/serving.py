"""Serving files of a trained cluster model: ONNX for onnxruntime, TorchScript for the
lightweight families, written next to each other in the model folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from forecast_assets.core.errors import ExportError
from forecast_assets.core.inference.export import export_onnx, export_torchscript
from forecast_assets.core.models.artifact import ClusterModel
from forecast_assets.core.storage import ArtifactPath, atomic_write_bytes

logger = logging.getLogger(__name__)

# Families small enough for CPU and edge serving, which also ship as TorchScript.
TORCHSCRIPT_TYPES = ("lightweight", "mixer")


@dataclass
class ServingFiles:
    onnx: ArtifactPath | None = None
    torchscript: ArtifactPath | None = None
    problems: list[str] = field(default_factory=list)


def export_for_serving(model: ClusterModel, folder: ArtifactPath, name: str) -> ServingFiles:
    """Export ``model`` to ``folder/<name>.onnx`` (and ``.torchscript.pt`` for the
    lightweight families) and keep the ONNX bytes in the model, so the forecast always runs
    the export of these very weights.

    The exporter checks onnxruntime against torch before writing. A failed export is
    reported in ``problems`` and leaves the model without ONNX (forecasts then use torch)
    rather than failing the training run.
    """
    files = ServingFiles()
    module = model.to_module()
    try:
        files.onnx = export_onnx(module, folder / f"{name}.onnx")
        model.onnx = files.onnx.read_bytes()
    except ExportError as error:
        model.onnx = None
        # A file from an earlier model must not pass for this one's export.
        (folder / f"{name}.onnx").unlink(missing_ok=True)
        files.problems.append(str(error))
        logger.warning("ONNX export of %s failed, forecasts will use torch: %s", name, error)
    if model.model_type in TORCHSCRIPT_TYPES:
        try:
            files.torchscript = export_torchscript(module, folder / f"{name}.torchscript.pt")
        except ExportError as error:
            (folder / f"{name}.torchscript.pt").unlink(missing_ok=True)
            files.problems.append(str(error))
            logger.warning("TorchScript export of %s failed: %s", name, error)
    return files


def publish(staged: ServingFiles, folder: ArtifactPath, name: str, model_type: str) -> ServingFiles:
    """Put the files of an export made elsewhere (``export_for_serving`` into a staging
    folder) at ``folder/<name>.*``, each written whole. A file the export could not make is
    removed there, so an earlier model's file cannot pass for this one's."""
    published = ServingFiles(problems=list(staged.problems))
    targets = {"onnx": folder / f"{name}.onnx", "torchscript": folder / f"{name}.torchscript.pt"}
    for kind, target in targets.items():
        source = getattr(staged, kind)
        if source is not None:
            setattr(published, kind, atomic_write_bytes(target, Path(source).read_bytes()))
        elif kind == "onnx" or model_type in TORCHSCRIPT_TYPES:
            target.unlink(missing_ok=True)
    return published
