"""Something to find the way by offline: county boundaries and names under the fires, and a user's MBTiles basemap.

No real MBTiles basemap of China can be had here, so the test builds one
strictly to the MBTiles 1.3 layout (SQLite ``metadata`` and ``tiles`` tables,
TMS rows, PNG tiles in Web Mercator) from real data: the shipped MCD12C1 land
cover, rendered as a map (cropland yellow, forest green, water blue, towns red).
"""

from __future__ import annotations

import json
import math
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject
from test_bad_input import FIRMS, FIRMS_DAY, _config, _run

from pipelines.publish.offlinetiles import MBTiles, OfflineTilesError, tile_range
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL

ROOT = Path(__file__).resolve().parent.parent
LANDCOVER = ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif"
ZOOMS = range(5, 10)
HALF_WORLD_M = 20037508.342789244
COLOURS = np.zeros((256, 3), dtype=np.uint8) + 200  # other classes: grey
COLOURS[0] = (120, 170, 230)  # water
COLOURS[1:6] = (60, 140, 60)  # forests
COLOURS[12] = COLOURS[14] = (240, 220, 120)  # cropland
COLOURS[13] = (220, 80, 80)  # urban


def _tile_png(src: rasterio.io.DatasetReader, z: int, x: int, y: int) -> bytes:
    size = 2 * HALF_WORLD_M / 2**z
    west, north = -HALF_WORLD_M + x * size, HALF_WORLD_M - y * size
    classes = np.full((256, 256), 255, dtype=np.uint8)
    reproject(rasterio.band(src, 1), classes, dst_transform=from_bounds(west, north - size, west + size, north, 256, 256),
              dst_crs="EPSG:3857", dst_nodata=255, resampling=Resampling.nearest)
    rgb = np.moveaxis(COLOURS[classes], -1, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with MemoryFile() as memory:
            with memory.open(driver="PNG", width=256, height=256, count=3, dtype="uint8") as png:
                png.write(rgb)
            return memory.read()


@pytest.fixture(scope="module")
def mbtiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("basemap") / "landcover.mbtiles"
    with sqlite3.connect(path) as db, rasterio.open(LANDCOVER) as src:
        db.execute("CREATE TABLE metadata (name text, value text)")
        db.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)", [("name", "MCD12C1 2019"), ("format", "png"), ("type", "baselayer"),
                                                               ("bounds", "110.9,33.7,115.1,35.1"), ("attribution", "NASA MCD12C1")])
        for z in ZOOMS:
            xs, ys = tile_range(110.9, 33.7, 115.1, 35.1, z)
            db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                           [(z, x, 2**z - 1 - y, _tile_png(src, z, x, y)) for x in xs for y in ys])
    return path


def test_tile_range_is_the_slippy_map_formula() -> None:
    # Beijing's Tiananmen (116.3975 E, 39.9087 N) at zoom 10 is tile 843 / 388 in the OSM scheme.
    xs, ys = tile_range(116.3975, 39.9087, 116.3975, 39.9087, 10)
    assert (xs.start, ys.start) == (843, 388)
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * 388 / 2**10))))
    assert lat > 39.9087 > math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * 389 / 2**10))))


def test_a_night_with_a_basemap_file_and_county_names(mbtiles: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, str(FIRMS))
    config.write_text(config.read_text().replace('tiles = ""', f'tiles = ""\noffline_tiles = "{mbtiles}"'))
    code, manifest = _run(config, FIRMS_DAY)
    assert code == EXIT_OK, manifest.get("skipped")
    out = tmp_path / "out" / FIRMS_DAY
    tiles = sorted((out / "static" / "tiles").rglob("*.png"))
    assert tiles and {int(p.parts[-3]) for p in tiles} == set(ZOOMS)
    cell_page = sorted((out / "maps").glob("*.html"))[0]
    page = cell_page.read_text(encoding="utf-8")
    assert "../static/tiles/{z}/{x}/{y}.png" in page and "NASA MCD12C1" in page  # the tile layer and its attribution
    assert "区县界" in page and "区县名" in page and "permanent" in page
    # Every tile a cell map at zoom 9 needs is in the folder: the page draws its basemap offline.
    fires = json.loads((out / "run.json").read_text())["counts"]["fires"]
    assert fires > 0
    import geopandas as gpd

    cells = gpd.read_parquet(out / "fires.parquet")["cell_id"].dropna().unique()
    grid = gpd.read_parquet(tmp_path / "grid.parquet").set_index("cell_id")
    west, south, east, north = grid.loc[cells[0]].geometry.bounds
    xs, ys = tile_range(west, south, east, north, 9)
    assert all((out / "static" / "tiles" / "9" / str(x) / f"{y}.png").is_file() for x in xs for y in ys)
    assert "../static/tiles" not in (out / "map.html").read_text(encoding="utf-8")
    assert "static/tiles/{z}/{x}/{y}.png" in (out / "map.html").read_text(encoding="utf-8")


def test_a_broken_basemap_file_loses_only_the_basemap(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mbtiles"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(OfflineTilesError, match="broken.mbtiles"):
        MBTiles.open(broken)
    config = _config(tmp_path, str(FIRMS))
    config.write_text(config.read_text().replace('tiles = ""', f'tiles = ""\noffline_tiles = "{broken}"'))
    code, manifest = _run(config, FIRMS_DAY)
    assert code == EXIT_PARTIAL
    assert [(s["file"], s["field"]) for s in manifest["skipped"]] == [("broken.mbtiles", "offline_tiles")]
    assert (tmp_path / "out" / FIRMS_DAY / "map.html").exists()
