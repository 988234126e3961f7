"""Resources: the settings, the store where artifacts land (forecasts, reports, models,
history) and the IO manager that keeps the assets' values beside them.

Both take ``output.dir``: a local folder or an object-store URL, so one setting moves every
artifact of a deployment, and run pods on different machines share them without a volume.
"""

import logging
import os
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath

from forecast_assets.core.models.artifact import ServingPaths
from forecast_assets.core.storage import (
    ArtifactPath,
    artifact_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
)
from forecast_assets.settings import SETTINGS_ENV_VAR, Settings, load_settings

# Under output.dir: where the IO manager keeps each asset's value between steps and runs.
ASSET_VALUES = "assets"


class ForecastSettingsResource(dg.ConfigurableResource):
    """The settings of this deployment, read from ``settings_file`` (or $FORECAST_SETTINGS,
    or the packaged default) with environment overrides applied."""

    settings_file: str | None = None

    def load(self) -> Settings:
        settings = load_settings(self.settings_file)
        logging.getLogger("forecast_assets").setLevel(settings.log_level)
        return settings


class OutputStore(dg.ConfigurableResource):
    """Files users read directly: the forecast table, the reports, the models' serving
    files (ONNX, TorchScript), and the history and checkpoints. ``base_dir`` is a local
    folder or an fsspec URL (``s3://bucket/prefix``) with ``storage_options`` for it. Every
    write is atomic."""

    base_dir: str
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @property
    def root(self) -> ArtifactPath:
        return artifact_path(self.base_dir, self.storage_options)

    def write_table(self, name: str, frame: pd.DataFrame) -> dict[str, ArtifactPath]:
        """``<base_dir>/<name>.parquet`` and ``.csv``."""
        root = self.root
        return {
            "parquet": atomic_write(
                root / f"{name}.parquet", lambda tmp: frame.to_parquet(tmp, index=False)
            ),
            "csv": atomic_write(root / f"{name}.csv", lambda tmp: frame.to_csv(tmp, index=False)),
        }

    def write_report(self, name: str, markdown: str, images: dict[str, bytes]) -> ArtifactPath:
        """``<base_dir>/reports/<name>.md`` with its PNGs beside it, named ``<name>_<image>.png``.

        The markdown may refer to the images as ``{image}`` placeholders."""
        folder = self.root / "reports"
        for image, png in images.items():
            file = atomic_write_bytes(folder / f"{name}_{image}.png", png)
            markdown = markdown.replace("{" + image + "}", f"![{image}]({file.name})")
        return atomic_write_text(folder / f"{name}.md", markdown)

    @property
    def history_dir(self) -> ArtifactPath:
        """``<base_dir>/history``: the sales history store that new files are merged into."""
        return self.root / "history"

    @property
    def checkpoint_dir(self) -> ArtifactPath:
        """``<base_dir>/checkpoints``: training state of unfinished runs, for resuming."""
        return self.root / "checkpoints"

    @property
    def model_dir(self) -> ArtifactPath:
        """``<base_dir>/models``: each cluster model's ONNX / TorchScript files."""
        return self.root / "models"

    @property
    def serving_paths(self) -> ServingPaths:
        """Where the serving step keeps each cluster's served model, exports and
        checkpoints."""
        return ServingPaths(model_dir=self.model_dir, checkpoint_dir=self.checkpoint_dir)

    def served_model_path(self, cluster: str) -> ArtifactPath:
        """The last model of ``cluster`` that passed the accuracy gate, kept so that a
        rejected successor never replaces it."""
        return self.serving_paths.served_model(cluster)


def build_resources(
    settings_file: str | None = None, settings: Settings | None = None
) -> dict[str, object]:
    """The resources for a settings file (None: $FORECAST_SETTINGS or the default); pass
    ``settings`` when they are loaded already."""
    chosen = settings_file or os.environ.get(SETTINGS_ENV_VAR)
    settings = settings or load_settings(chosen)
    output_dir = str(settings.output.location)
    options = dict(settings.output.storage_options)
    return {
        "settings": ForecastSettingsResource(
            settings_file=str(Path(chosen).resolve()) if chosen else None
        ),
        "output_store": OutputStore(base_dir=output_dir, storage_options=options),
        "io_manager": ArtifactIOManager(
            base_dir=_join(output_dir, ASSET_VALUES), storage_options=options
        ),
    }


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


class AtomicPickleIOManager(dg.UPathIOManager):
    """Pickles each asset value (one file per partition) under ``base_path``; a value is
    written whole or not at all, so a crashed step never leaves a half file for the next."""

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        # A partition key is one path segment: '/', '..' and the like cannot climb out.
        return base_path / quote(partition, safe="")

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        atomic_write(path, lambda tmp: _pickle_to(tmp, obj))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        with path.open("rb") as handle:
            return pickle.load(handle)


def _pickle_to(file: Path, obj: Any) -> None:
    with file.open("wb") as handle:
        pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)


class ArtifactIOManager(dg.ConfigurableIOManagerFactory):
    """The assets' values between steps and runs, in ``<output.dir>/assets/<asset>[/<cluster>]``:
    on a local disk or an object store, where every run pod of a deployment finds them."""

    base_dir: str
    storage_options: dict[str, Any] = Field(default_factory=dict)

    def create_io_manager(self, context: dg.InitResourceContext) -> AtomicPickleIOManager:
        return AtomicPickleIOManager(base_path=UPath(self.base_dir, **self.storage_options))
