"""Resources: the settings, and the store where published files (forecasts, reports) land."""

import logging
import os
from pathlib import Path

import dagster as dg
import pandas as pd

from forecast_assets.core.storage import atomic_write, atomic_write_bytes, atomic_write_text
from forecast_assets.settings import SETTINGS_ENV_VAR, Settings, load_settings


class ForecastSettingsResource(dg.ConfigurableResource):
    """The settings of this deployment, read from ``settings_file`` (or $FORECAST_SETTINGS,
    or the packaged default) with environment overrides applied."""

    settings_file: str | None = None

    def load(self) -> Settings:
        settings = load_settings(self.settings_file)
        logging.getLogger("forecast_assets").setLevel(settings.log_level)
        return settings


class OutputStore(dg.ConfigurableResource):
    """Files users read directly: the forecast table, the reports and the models' serving
    files (ONNX, TorchScript). Every write is atomic."""

    base_dir: str

    def write_table(self, name: str, frame: pd.DataFrame) -> dict[str, Path]:
        """``<base_dir>/<name>.parquet`` and ``.csv``."""
        root = Path(self.base_dir)
        return {
            "parquet": atomic_write(
                root / f"{name}.parquet", lambda tmp: frame.to_parquet(tmp, index=False)
            ),
            "csv": atomic_write(root / f"{name}.csv", lambda tmp: frame.to_csv(tmp, index=False)),
        }

    def write_report(self, name: str, markdown: str, images: dict[str, bytes]) -> Path:
        """``<base_dir>/reports/<name>.md`` with its PNGs beside it, named ``<name>_<image>.png``.

        The markdown may refer to the images as ``{image}`` placeholders."""
        folder = Path(self.base_dir) / "reports"
        for image, png in images.items():
            file = atomic_write_bytes(folder / f"{name}_{image}.png", png)
            markdown = markdown.replace("{" + image + "}", f"![{image}]({file.name})")
        return atomic_write_text(folder / f"{name}.md", markdown)

    @property
    def history_dir(self) -> Path:
        """``<base_dir>/history``: the sales history store that new files are merged into."""
        return Path(self.base_dir) / "history"

    @property
    def checkpoint_dir(self) -> Path:
        """``<base_dir>/checkpoints``: training state of unfinished runs, for resuming."""
        return Path(self.base_dir) / "checkpoints"

    @property
    def model_dir(self) -> Path:
        """``<base_dir>/models``: each cluster model's ONNX / TorchScript files."""
        return Path(self.base_dir) / "models"

    def served_model_path(self, cluster: str) -> Path:
        """The last model of ``cluster`` that passed the accuracy gate, kept so that a
        rejected successor never replaces it."""
        return self.model_dir / f"{cluster}.served.pt"


def build_resources(
    settings_file: str | None = None, settings: Settings | None = None
) -> dict[str, object]:
    """The resources for a settings file (None: $FORECAST_SETTINGS or the default); pass
    ``settings`` when they are loaded already."""
    chosen = settings_file or os.environ.get(SETTINGS_ENV_VAR)
    settings = settings or load_settings(chosen)
    return {
        "settings": ForecastSettingsResource(
            settings_file=str(Path(chosen).resolve()) if chosen else None
        ),
        "output_store": OutputStore(base_dir=str(Path(settings.output.dir).resolve())),
    }
