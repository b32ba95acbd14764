"""Loading supervision grids from real township layers, and generating one from real counties."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from pipelines.chinacrs import wgs84_to_gcj02
from pipelines.config import CountiesConfig, GridConfig
from pipelines.grid import CHINA_ALBERS, GridError, load_counties, load_grid, make_grid
from pipelines.schema import GRID_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
COUNTIES = CountiesConfig(ROOT / "geodata" / "china_counties.parquet", "district_adcode", "district_name", "province_adcode", "province_name")
LANKAO = GridConfig(DATA / "lankao_townships_wgs84.geojson", id_column="township_code", name_column="name",
                    county_column="county_code", supervisor_column="")


@pytest.fixture(scope="module")
def counties() -> gpd.GeoDataFrame:
    return load_counties(COUNTIES)


def test_township_layer_gets_the_standard_columns(counties: gpd.GeoDataFrame) -> None:
    grid = load_grid(LANKAO, counties)
    assert list(grid.columns) == GRID_COLUMNS
    assert len(grid) == 16 and grid.crs.to_epsg() == 4326
    assert set(grid["county_code"]) == {"410225"} and set(grid["county_name"]) == {"兰考县"}
    assert set(grid["province_code"]) == {"410000"} and set(grid["province_name"]) == {"河南省"}
    assert set(grid["supervisor"]) == {"unassigned"}


@pytest.mark.parametrize("suffix,driver", [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile"), (".parquet", None)])
def test_every_format_loads_the_same(tmp_path: Path, counties: gpd.GeoDataFrame, suffix: str, driver: str | None) -> None:
    # Shapefile field names stop at 10 characters: use short ones in every format.
    source = gpd.read_file(LANKAO.path)[["township_code", "name", "county_code", "geometry"]]
    source.columns = ["code", "name", "county", "geometry"]
    path = tmp_path / f"lankao{suffix}"
    source.to_parquet(path) if driver is None else source.to_file(path, driver=driver)
    grid = load_grid(dataclasses.replace(LANKAO, path=path, id_column="code", county_column="county"), counties)
    reference = load_grid(LANKAO, counties)
    assert list(grid["cell_id"]) == list(reference["cell_id"])
    assert shapely.equals(grid.geometry.values, reference.geometry.values).all()  # Shapefile may reorder rings


def test_projected_and_gcj02_layers_come_back_to_wgs84(tmp_path: Path, counties: gpd.GeoDataFrame) -> None:
    reference = load_grid(LANKAO, counties)
    source = gpd.read_file(LANKAO.path)
    projected = tmp_path / "lankao_utm.gpkg"
    source.to_crs("EPSG:32650").to_file(projected)
    back = load_grid(dataclasses.replace(LANKAO, path=projected), counties)
    assert shapely.equals_exact(back.geometry.values, reference.geometry.values, tolerance=1e-7).all()

    shifted = source.copy()
    shifted["geometry"] = shapely.transform(source.geometry.values, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    gcj = tmp_path / "lankao_gcj02.geojson"
    shifted.to_file(gcj)
    wrong = load_grid(dataclasses.replace(LANKAO, path=gcj), counties)  # GCJ-02 taken as WGS84: hundreds of metres off
    right = load_grid(dataclasses.replace(LANKAO, path=gcj, crs="GCJ-02"), counties)
    def offset_m(grid: gpd.GeoDataFrame) -> float:
        a, b = grid.to_crs(CHINA_ALBERS).centroid, reference.to_crs(CHINA_ALBERS).centroid
        return float(np.hypot(a.x - b.x, a.y - b.y).max())
    assert offset_m(wrong) > 300
    assert offset_m(right) < 0.01


def test_invalid_geometry_is_repaired_with_a_warning(counties: gpd.GeoDataFrame, caplog: pytest.LogCaptureFixture) -> None:
    cfg = GridConfig(DATA / "songbei_townships_wgs84.geojson", id_column="township", name_column="township",
                     county_column="county_code", supervisor_column="")
    raw = gpd.read_file(cfg.path)
    assert (~raw.is_valid).sum() == 1
    with caplog.at_level(logging.WARNING, logger="pipelines"):
        grid = load_grid(cfg, counties)
    assert grid.is_valid.all() and len(grid) == 16
    assert any("repaired 1 invalid polygon" in r.getMessage() for r in caplog.records)
    assert set(grid["county_name"]) == {"松北区"}


def test_missing_column_and_file_name_the_culprit(counties: gpd.GeoDataFrame) -> None:
    with pytest.raises(GridError, match="'supervisor_name'.*it has:.*township_code"):
        load_grid(dataclasses.replace(LANKAO, supervisor_column="supervisor_name"), counties)
    with pytest.raises(GridError, match="nowhere.gpkg: file not found"):
        load_grid(dataclasses.replace(LANKAO, path=DATA / "nowhere.gpkg"), counties)


def test_duplicate_ids_are_refused(counties: gpd.GeoDataFrame) -> None:
    with pytest.raises(GridError, match="not unique"):
        load_grid(dataclasses.replace(LANKAO, id_column="county_code"), counties)


def test_generated_grid_tiles_the_counties(counties: gpd.GeoDataFrame) -> None:
    """Lankao and Tongxu counties (Kaifeng, Henan) cut into 5 km cells: same area, no overlap, stable ids."""
    two = counties[counties["county_code"].isin(["410225", "410222"])]
    grid = make_grid(two, cell_km=5.0)
    assert list(grid.columns) == GRID_COLUMNS and grid["cell_id"].is_unique
    area = grid.to_crs(CHINA_ALBERS).area
    assert area.sum() == pytest.approx(two.to_crs(CHINA_ALBERS).area.sum(), rel=1e-9)
    assert area.max() <= 25e6 * (1 + 1e-9)
    assert area.min() >= 0.01 * 25e6  # slivers joined a neighbour
    overlap = gpd.sjoin(grid, grid, predicate="overlaps")
    assert overlap.empty
    assert set(grid["county_code"]) == {"410225", "410222"} and set(grid["province_code"]) == {"410000"}
    # Ids are laid on a fixed lattice: gridding one county alone gives the same cells there.
    alone = make_grid(two[two["county_code"] == "410225"], cell_km=5.0)
    assert set(alone["cell_id"]) == set(grid.loc[grid["county_code"] == "410225", "cell_id"])


def test_default_grid_is_what_make_grid_writes(root: Path, counties: gpd.GeoDataFrame) -> None:
    shipped = gpd.read_parquet(root / "geodata" / "grid_ncp_5km.parquet")
    henan = make_grid(counties, 5.0, ("410000",))
    assert set(henan["cell_id"]) == set(shipped.loc[shipped["province_code"] == "410000", "cell_id"])
