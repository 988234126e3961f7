"""The README's settings reference is generated from the settings and kept in step with them."""

from pathlib import Path

import pytest

from forecast_assets import settings_reference
from forecast_assets.settings import Settings


def test_the_readme_carries_the_current_reference() -> None:
    readme = settings_reference.README.read_text()
    assert settings_reference.updated_readme(readme) == readme, (
        "README.md's settings reference is stale: run python -m forecast_assets.settings_reference"
    )


def test_every_field_is_described_and_listed() -> None:
    rows = list(settings_reference._fields(Settings))
    assert len(rows) > 100
    undescribed = [name for name, _, description in rows if not description]
    assert undescribed == []
    reference = settings_reference.reference_markdown()
    for name, _, _ in rows:
        # Within its section's table a field is named without the section.
        assert f"| `{name.split('.', 1)[-1]}` | " in reference, name


def test_a_changed_default_shows_up_and_check_fails(tmp_path: Path, monkeypatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(settings_reference.updated_readme(settings_reference.README.read_text()))
    assert settings_reference.main(["--check", "--readme", str(readme)]) == 0

    field = Settings.model_fields["seed"]
    monkeypatch.setattr(field, "default", 1234)
    assert "| `seed` | `1234` |" in settings_reference.reference_markdown()
    assert settings_reference.main(["--check", "--readme", str(readme)]) == 1
    assert settings_reference.main(["--readme", str(readme)]) == 0
    assert "| `seed` | `1234` |" in readme.read_text()


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_reference.updated_readme("# no reference here\n")
