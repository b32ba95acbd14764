"""Readers of fire-point products, declared by file pattern and header.

A new product is one more ``PointProduct`` entry: a file-name pattern, a sniff
of the file's first characters, and a ``read(path, text) -> (frame, skips)`` that
returns the common fire-point frame of ``schema.FIRE_DTYPES``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..schema import empty_fires
from ..skips import Skip
from . import firms, himawari
from .csvtext import UnreadableFile, read_text


@dataclass(frozen=True)
class PointProduct:
    name: str
    filename: str  # fnmatch pattern of the file names this product claims first
    sniff: Callable[[str], bool]  # does this text (the file's start) look like the product?
    read: Callable[[Path, str], tuple[pd.DataFrame, list[Skip]]]  # (path, its decoded text)


POINT_PRODUCTS: tuple[PointProduct, ...] = (
    PointProduct("Himawari L2 WLF", himawari.FILENAME, himawari.sniff, himawari.read),
    PointProduct("NASA FIRMS", "*", firms.sniff, firms.read),
)


def detect(path: Path, text: str) -> PointProduct | None:
    """The product of a file: by name pattern, confirmed by its header."""
    by_name = [p for p in POINT_PRODUCTS if fnmatch.fnmatch(path.name, p.filename)]
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
            raise UnreadableFile("not a known fire-point product (expected a FIRMS CSV or a Himawari L2 WLF CSV)")
        return product.read(path, text)
    except UnreadableFile as exc:
        return empty_fires(), [Skip(path.name, str(exc))]


__all__ = ["POINT_PRODUCTS", "PointProduct", "UnreadableFile", "detect", "read_points"]
