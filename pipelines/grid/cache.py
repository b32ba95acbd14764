"""Per-grid constants kept between nights: the lookup table of ``attribution.PointIndex``
and the land-cover hectares of every cell (``landcover.land_hectares``).

They depend only on the grid (its cells' geometry as loaded, so on the grid
file's content and the ``[grid]`` settings that shape it) and on settings
(the lookup resolution; the land-cover raster's content and classes), yet
take seconds to compute over a 44k-cell grid. Each is stored as one ``.npz``
file in a cache folder (the nightly run uses ``OUT/state/grid/``), named by
a SHA-256 key of everything it was computed from:

* a changed grid or setting gives another key, so a stale file is never read;
* a file that cannot be read, whose stored key differs, or whose arrays no
  longer match their stored SHA-256 is ignored (with a warning in the run's
  log) and rebuilt;
* files are written to a temporary name and renamed into place, so a crashed
  run or two runs at once never leave half a file under the real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import shapely

from pipelines.core.outputs import atomic_path

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what a cached file means changes
_META = "_meta"


def digest(*parts: object) -> str:
    """SHA-256 (hex) of ``parts``: bytes as they are, arrays by dtype, shape and bytes, anything else by ``repr``."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            data = part
        elif isinstance(part, np.ndarray):
            data = repr((part.dtype.str, part.shape)).encode() + np.ascontiguousarray(part).tobytes()
        else:
            data = repr(part).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def geometry_digest(geoms: Iterable[object]) -> str:
    """SHA-256 of geometries (shapely, any CRS, as given) by their WKB, in order; missing ones count."""
    wkb = shapely.to_wkb(np.asarray(list(geoms) if not isinstance(geoms, np.ndarray) else geoms, dtype=object))
    h = hashlib.sha256()
    for item in wkb:
        blob = b"" if item is None else item
        h.update(len(blob).to_bytes(8, "little"))
        h.update(blob)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes ("" when it cannot be read: then nothing cached is trusted for it)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def cache_path(folder: Path, name: str, key: str) -> Path:
    return Path(folder) / f"{name}-{key[:32]}.npz"


def load(folder: Path | None, name: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``name`` and ``key``, or None (not cached, or not usable: then logged)."""
    if folder is None:
        return None
    path = cache_path(folder, name, key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(bytes(stored[_META]).decode("utf-8"))
            if meta.get("format") != FORMAT or meta.get("key") != key:
                raise ValueError("written for other inputs")
            arrays = {k: stored[k] for k in meta["sha256"]}
        for k, array in arrays.items():
            if digest(array) != meta["sha256"][k]:
                raise ValueError(f"array {k!r} does not match its checksum")
    except Exception as exc:  # noqa: BLE001 - any unreadable cache file is only a lost shortcut
        log.warning("grid cache %s ignored (%s: %s); rebuilding it", path, type(exc).__name__, exc)
        return None
    return arrays


def store(folder: Path | None, name: str, key: str, arrays: dict[str, np.ndarray]) -> Path | None:
    """Write ``arrays`` under ``name`` and ``key`` atomically; older files of ``name`` are removed.

    A folder that cannot be written is a warning, not an error: the night goes on uncached.
    """
    if folder is None:
        return None
    folder = Path(folder)
    path = cache_path(folder, name, key)
    meta = {"format": FORMAT, "key": key, "sha256": {k: digest(np.asarray(a)) for k, a in arrays.items()}}
    try:
        with atomic_path(path) as partial, open(partial, "wb") as f:
            np.savez(f, **{_META: np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}, **arrays)
    except OSError as exc:
        log.warning("grid cache %s not written (%s); the next night computes it again", path, exc)
        return None
    for old in folder.glob(f"{name}-*.npz"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()
    return path
