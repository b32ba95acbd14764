"""The ``run.json`` manifest: what a run read, with what, and what it made of it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from collections import Counter
from pathlib import Path

from pipelines.core.skips import Skip

PACKAGES = ("gridwatch", "numpy", "pandas", "pyarrow", "shapely", "pyproj", "geopandas", "pyogrio",
            "rasterio", "xarray", "dask", "distributed", "folium", "chinesecalendar")
# A file with thousands of bad rows should not bury the manifest: past this
# many rows per file and reason, only the count is kept.
MAX_ROWS_PER_REASON = 20


def file_record(path: Path) -> dict[str, object]:
    """Path, size in bytes and SHA-256 of an input file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def skip_records(skips: list[Skip]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Skips for the manifest: each listed up to a cap per (file, field, reason), and the totals."""
    totals = Counter((s.file, s.field, s.reason) for s in skips)
    shown: Counter = Counter()
    listed = []
    for skip in skips:
        key = (skip.file, skip.field, skip.reason)
        if shown[key] < MAX_ROWS_PER_REASON:
            listed.append(skip.to_dict())
        shown[key] += 1
    summary = [
        {"file": f, "field": fld, "reason": r, "count": n} for (f, fld, r), n in sorted(totals.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2]))
    ]
    return listed, summary
