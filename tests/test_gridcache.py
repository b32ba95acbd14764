"""The per-grid cache (pipelines.grid.cache) on the real 5 km grid's cells and the real land cover:
a hit gives the same answers as a fresh build, a changed grid or setting misses,
and a corrupt or foreign file is ignored and rebuilt."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from pipelines.fires.landcover import LandCover, land_hectares
from pipelines.grid import cache as gridcache
from pipelines.grid.attribution import PointIndex

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "geodata" / "grid_ncp_5km.parquet"
LANDCOVER = ROOT / "geodata" / "landcover" / "MCD12C1_2019_IGBP_china_0.05deg.tif"


@pytest.fixture(scope="module")
def cells() -> gpd.GeoDataFrame:
    """The real grid's cells of one county corner: ~400 cells around Kaifeng (Henan)."""
    grid = gpd.read_parquet(GRID)
    near = grid.cx[114.0:115.0, 34.5:35.2].reset_index(drop=True)
    assert 200 < len(near) < 1_000
    return near


def points(cells: gpd.GeoDataFrame, n: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    w, s, e, nn = cells.total_bounds
    return rng.uniform(w, e, n), rng.uniform(s, nn, n)


def table_answers(cells: gpd.GeoDataFrame, cache: Path) -> tuple[PointIndex, np.ndarray]:
    index = PointIndex.build(cells.geometry, cache=cache)
    index.codes  # force the table: built, or read from the cache
    return index, index.locate(*points(cells))


def test_table_cache_hit_gives_the_same_answers(cells: gpd.GeoDataFrame, tmp_path: Path) -> None:
    fresh, expected = table_answers(cells, tmp_path)
    stored = list(tmp_path.glob("pointindex-*.npz"))
    assert len(stored) == 1
    mtime = stored[0].stat().st_mtime_ns
    cached, got = table_answers(cells, tmp_path)
    assert stored[0].stat().st_mtime_ns == mtime  # read, not rewritten
    np.testing.assert_array_equal(cached.codes, fresh.codes)
    np.testing.assert_array_equal(got, expected)
    x, y = points(cells)
    np.testing.assert_array_equal(got, PointIndex.build(cells.geometry)._locate_exactly(x, y))
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_table_cache_misses_on_changed_cells_or_resolution(cells: gpd.GeoDataFrame, tmp_path: Path) -> None:
    table_answers(cells, tmp_path)
    first = {p.name for p in tmp_path.glob("pointindex-*.npz")}
    moved = cells.copy()
    moved.loc[0, "geometry"] = shapely.affinity.translate(moved.geometry.iloc[0], 0.001, 0.0)
    index, got = table_answers(moved, tmp_path)
    second = {p.name for p in tmp_path.glob("pointindex-*.npz")}
    assert second and second != first  # another key; the old file is replaced
    np.testing.assert_array_equal(got, PointIndex.build(moved.geometry)._locate_exactly(*points(cells)))
    coarse = PointIndex.build(moved.geometry, resolution=0.01, cache=tmp_path)
    assert coarse.codes.shape != index.codes.shape
    assert {p.name for p in tmp_path.glob("pointindex-*.npz")} != second


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped byte", "foreign key"])
def test_corrupt_table_cache_is_ignored_and_rebuilt(cells: gpd.GeoDataFrame, tmp_path: Path, damage: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    _, expected = table_answers(cells, tmp_path)
    (path,) = tmp_path.glob("pointindex-*.npz")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a cache file")
    elif damage == "flipped byte":  # a flipped bit inside the table: caught by its checksum
        codes = np.load(path)["codes"]
        at = data.rfind(codes.tobytes()[-64:])
        assert at > 0
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
    else:  # a file of another grid copied under this name
        other = tmp_path / "other"
        gridcache.store(other, "pointindex", "f" * 64, {"codes": np.zeros((2, 2), np.int16)})
        path.write_bytes(next(other.glob("*.npz")).read_bytes())
    with caplog.at_level(logging.WARNING, logger="pipelines.grid.cache"):
        _, got = table_answers(cells, tmp_path)
    assert "ignored" in caplog.text
    np.testing.assert_array_equal(got, expected)
    with caplog.at_level(logging.WARNING, logger="pipelines.grid.cache"):
        caplog.clear()
        table_answers(cells, tmp_path)  # rebuilt and stored again: a clean hit now
    assert "ignored" not in caplog.text


def test_land_hectares_cache(cells: gpd.GeoDataFrame, tmp_path: Path) -> None:
    cover = LandCover(LANDCOVER, (12, 14), tuple(range(1, 12)))
    expected = land_hectares(cells, cover, PointIndex.build(cells.geometry))
    assert expected["cropland_ha"].sum() > 0
    first = land_hectares(cells, cover, PointIndex.build(cells.geometry), cache=tmp_path)
    (stored,) = tmp_path.glob("land-*.npz")
    hit = land_hectares(cells, cover, PointIndex.build(cells.geometry), cache=tmp_path)
    pd.testing.assert_frame_equal(first, expected)
    pd.testing.assert_frame_equal(hit, expected)
    # Other cropland classes: another key, other answers.
    other = land_hectares(cells, LandCover(LANDCOVER, (14,), tuple(range(1, 12))), None, cache=tmp_path)
    assert other["cropland_ha"].sum() < expected["cropland_ha"].sum()
    assert not stored.exists() and len(list(tmp_path.glob("land-*.npz"))) == 1
    # Fewer cells (another grid): another key.
    fewer = land_hectares(cells.iloc[:50], cover, None, cache=tmp_path)
    pd.testing.assert_frame_equal(fewer, expected.iloc[:50])
    # A damaged file: ignored, recomputed.
    (path,) = tmp_path.glob("land-*.npz")
    path.write_bytes(b"\0" * 100)
    pd.testing.assert_frame_equal(land_hectares(cells.iloc[:50], cover, None, cache=tmp_path), expected.iloc[:50])


def test_unwritable_cache_folder_only_warns(cells: gpd.GeoDataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="pipelines.grid.cache"):
        _, got = table_answers(cells, blocker / "cache")
    assert "not written" in caplog.text
    np.testing.assert_array_equal(got, PointIndex.build(cells.geometry)._locate_exactly(*points(cells)))
