"""Input files named by the settings: glob patterns with the run date in them, relative to the config's folder."""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path


def expand_patterns(patterns: list[str] | tuple[str, ...], base: Path, day: dt.date | None = None) -> list[Path]:
    """Files matching glob ``patterns`` (relative to ``base``), sorted, without repeats.

    A pattern may hold ``{date:%Y%m%d}``-style fields, filled with ``day``
    (a Beijing date). Returns absolute paths; a pattern matching nothing adds
    nothing (no error: the caller decides whether no files is a failure).

    Example::

        config = load_config("config.toml")
        files = expand_patterns(config.fires.points, config.base_dir, dt.date(2022, 6, 3))
    """
    found: set[Path] = set()
    for pattern in patterns:
        if day is not None:
            pattern = pattern.format(date=day)
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        found.update(Path(p).resolve() for p in glob.glob(full, recursive=True) if Path(p).is_file())
    return sorted(found)
