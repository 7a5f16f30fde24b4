"""Models shipped inside the package (contextemb/models/<name>/), found by name with no download."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ModelFormatError


def packaged_models_dir() -> Path:
    return Path(str(resources.files("contextemb") / "models"))


def list_models() -> list[str]:
    """Names of the packaged models (directories under contextemb/models/ that hold a config.json)."""
    root = packaged_models_dir()
    if not root.is_dir():
        return []
    return sorted(path.name for path in root.iterdir() if (path / "config.json").is_file())


def resolve_model(name_or_path: str | Path) -> Path:
    """A packaged model's name, or a path to a model directory -> the model directory."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if isinstance(name_or_path, str) and name_or_path in list_models():
        return packaged_models_dir() / name_or_path
    known = ", ".join(list_models()) or "none"
    raise ModelFormatError(f"{name_or_path} is neither a model directory nor a packaged model (packaged: {known})")
