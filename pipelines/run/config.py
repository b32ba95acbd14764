"""The settings of a run: ``core.settings`` read and checked, then the checks only a stage can make of its section.

``core.settings`` knows no stage, so what needs a stage's knowledge (a fire table's satellite names
and columns) is checked here, at start, with the same one-line ``ConfigError`` naming the key.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core import settings
from pipelines.core.settings import Config, ConfigError
from pipelines.fires.readers.tables import check_format


def load_config(path: str | Path) -> Config:
    """The validated settings of ``path`` (``config.toml``); ``ConfigError`` naming the first key that cannot be used.

    Relative paths in the file are resolved against its folder.

    Example::

        config = load_config("config.toml")
        config.grid.path, config.fires.points       # the grid layer, the fire-file patterns
    """
    config = settings.load_config(path)
    for i, table in enumerate(config.fires.tables):
        try:
            check_format(table)
        except ValueError as exc:
            raise ConfigError(f"{path}: [[fires.tables]] #{i + 1} {exc}") from None
    return config
