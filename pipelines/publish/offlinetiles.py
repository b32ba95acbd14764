"""An offline basemap from a user's MBTiles file, copied into the run folder around the mapped cells.

Online basemaps (OpenStreetMap, Tianditu, Amap) are slow or out of reach in
much of the countryside, and a grey canvas is nothing to find the way by. A
unit that has a basemap as an MBTiles file (the SQLite layout of the MBTiles
1.3 specification: a ``metadata`` table of name/value pairs and a ``tiles``
table of ``zoom_level``, ``tile_column``, ``tile_row`` in the TMS scheme, with
the origin at the bottom, and ``tile_data``) names it in ``[maps]
offline_tiles``. Each night copies the tiles that cover the mapped cells,
at every zoom level the file has, into ``OUT/D/static/tiles/{z}/{x}/{y}.png``
(the XYZ scheme Leaflet asks for), and every page draws them as its base
layer by relative path: the folder still opens offline from a USB stick or a
phone. Tiles are Web Mercator (EPSG:3857) in WGS84 longitude and latitude, as
Tianditu's are; a GCJ-02 tile set would have to be declared, and is not
supported.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import folium

from pipelines.core.exceptions import OfflineTilesError

TILE_FOLDER = "tiles"  # under the run's static folder
MAX_TILES = 200_000  # a night never copies more: beyond it the highest zoom levels are left out
FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}


@dataclass(frozen=True)
class MBTiles:
    """What gridwatch needs to know of an MBTiles file (from its ``metadata`` table)."""

    path: Path
    name: str
    format: str  # file extension of the tiles: png, jpg, webp
    minzoom: int
    maxzoom: int
    attribution: str

    @classmethod
    def open(cls, path: Path) -> MBTiles:
        """Read and check the metadata; ``OfflineTilesError`` naming the file when it is not usable MBTiles."""
        path = Path(path)
        if not path.is_file():
            raise OfflineTilesError(f"{path}: file not found")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                meta = dict(db.execute("SELECT name, value FROM metadata").fetchall())
                zooms = db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        except sqlite3.Error as exc:
            raise OfflineTilesError(f"{path}: not an MBTiles file ({exc}); expected SQLite tables metadata and tiles") from None
        kind = FORMATS.get(str(meta.get("format", "png")).lower())
        if kind is None:
            raise OfflineTilesError(f"{path}: tile format {meta.get('format')!r} is not an image; expected png, jpg or webp (vector tiles are not drawn)")
        if zooms[0] is None:
            raise OfflineTilesError(f"{path}: holds no tiles")
        return cls(path, str(meta.get("name", path.stem)), kind, int(zooms[0]), int(zooms[1]), str(meta.get("attribution", "")))


def tile_range(west: float, south: float, east: float, north: float, zoom: int) -> tuple[range, range]:
    """The XYZ columns and rows of the Web-Mercator tiles covering a WGS84 box at ``zoom``."""
    n = 2**zoom

    def column(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))

    def row(lat: float) -> int:
        lat = max(-85.0511, min(85.0511, lat))
        y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
        return min(n - 1, max(0, int(y)))

    return range(column(west), column(east) + 1), range(row(north), row(south) + 1)


def export_tiles(mbtiles: MBTiles, boxes: Iterable[tuple[float, float, float, float]], static: Path,
                 max_zoom: int | None = None) -> dict[str, int]:
    """Copy the tiles that cover ``boxes`` (WGS84 west, south, east, north) into ``static/tiles/z/x/y.ext``.

    Zoom levels go from the file's lowest up to ``max_zoom`` (default: its
    highest), and stop before the level that would take the night past
    ``MAX_TILES``. Returns counts: tiles wanted,
    written, missing from the file, and the highest zoom copied.
    """
    boxes = list(boxes)
    wanted: list[tuple[int, int, int]] = []
    top = mbtiles.minzoom - 1
    for zoom in range(mbtiles.minzoom, min(mbtiles.maxzoom, max_zoom if max_zoom is not None else mbtiles.maxzoom) + 1):
        level = {(zoom, x, y) for box in boxes for xs, ys in [tile_range(*box, zoom)] for x in xs for y in ys}
        if len(wanted) + len(level) > MAX_TILES:
            break
        wanted += sorted(level)
        top = zoom
    written = 0
    with sqlite3.connect(f"file:{mbtiles.path}?mode=ro", uri=True) as db:
        for zoom, x, y in wanted:
            # MBTiles rows count from the bottom (TMS); Leaflet's from the top.
            found = db.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                               (zoom, x, 2**zoom - 1 - y)).fetchone()
            if found is None:
                continue
            target = static / TILE_FOLDER / str(zoom) / str(x) / f"{y}.{mbtiles.format}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(found[0])
            written += 1
    return {"tiles_wanted": len(wanted), "tiles_written": written, "tiles_missing": len(wanted) - written, "max_zoom_copied": top}


def add_offline_basemap(m: Any, mbtiles: MBTiles, static_url: str, max_zoom: int | None = None) -> None:
    """Draw the copied tiles under everything on ``m`` (a ``mappage.MapPage`` or a folium map); ``static_url`` is the static
    folder relative to the page."""
    url = f"{static_url}/{TILE_FOLDER}/{{z}}/{{x}}/{{y}}.{mbtiles.format}"
    name = f"离线底图 offline basemap ({mbtiles.name})"
    native = max_zoom if max_zoom is not None else mbtiles.maxzoom
    if hasattr(m, "add_tiles"):  # a MapPage: the cell maps of a night
        m.add_tiles(url, name=name, attribution=mbtiles.attribution or mbtiles.name, min_zoom=0, max_native_zoom=native, max_zoom=19)
        return
    folium.TileLayer(
        tiles=url,
        attr=mbtiles.attribution or mbtiles.name,
        name=name,
        min_zoom=0,
        max_native_zoom=native,
        max_zoom=19,
        overlay=False,
        control=True,
    ).add_to(m)
