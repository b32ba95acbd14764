"""Readers of fire products; every product is declared once in ``products.PRODUCTS``.

A point product is a file-name pattern, a sniff of the file's first
characters, and a ``read(path, text) -> (frame, skips)`` that returns the
common fire-point frame of ``schema.FIRE_DTYPES``; rasters are read by
``readers.rasters`` and ``readers.firelist``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.core.csvtext import UnreadableFile, read_text
from pipelines.core.schema import empty_fires
from pipelines.core.skips import Skip
from pipelines.fires.readers.products import POINT_PRODUCTS, PRODUCTS, RASTER_PRODUCTS, PointProduct


def detect(path: Path, text: str) -> PointProduct | None:
    """The point product of a file: by name pattern, confirmed by its header."""
    by_name = [p for p in POINT_PRODUCTS if p.pattern.matches(path.name)]
    return next((p for p in by_name if p.sniff(text)), None)


def read_points(path: str | Path) -> tuple[pd.DataFrame, list[Skip]]:
    """Read any supported fire-point file; never raises for bad input.

    A file that cannot be used at all yields an empty frame and one skip naming
    the file and the reason; bad rows yield one skip each.
    """
    path = Path(path)
    try:
        text = read_text(path)
        product = detect(path, text[:4096])
        if product is None:
            raise UnreadableFile("not a known fire-point product (expected a FIRMS CSV, a Himawari L2 WLF CSV or a CSPP AFIMG text file)")
        return product.read(path, text)
    except UnreadableFile as exc:
        return empty_fires(), [Skip(path.name, str(exc))]


__all__ = ["POINT_PRODUCTS", "PRODUCTS", "RASTER_PRODUCTS", "PointProduct", "UnreadableFile", "detect", "read_points"]
