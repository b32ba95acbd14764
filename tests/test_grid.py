"""Loading supervision grids from real township layers, and generating one from real counties."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from pipelines.core.schema import GRID_COLUMNS
from pipelines.core.settings import CountiesConfig, GridConfig
from pipelines.grid.cells import CHINA_ALBERS, GridError, load_counties, load_grid, make_grid, outline_misfit, warn_if_shifted
from pipelines.grid.chinacrs import gcj02_to_wgs84, wgs84_to_gcj02

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


def test_make_grid_writes_only_valid_polygons_over_heilongjiang(counties: gpd.GeoDataFrame) -> None:
    """Reprojecting a valid Albers cell to degrees folded 230206_E1410_N5235 (Fularji, Qiqihar); every cell is now valid."""
    grid = make_grid(counties, 5.0, ("230000",))
    geometry = grid.geometry.values
    assert shapely.is_valid(geometry).all()
    assert set(shapely.get_type_id(geometry)) <= {3, 6}  # Polygon, MultiPolygon: no lines or points left by the repair
    assert not shapely.is_empty(geometry).any()
    assert "230206_E1410_N5235" in set(grid["cell_id"])
    heilongjiang = counties[counties["province_code"] == "230000"]
    assert grid.to_crs(CHINA_ALBERS).area.sum() == pytest.approx(heilongjiang.to_crs(CHINA_ALBERS).area.sum(), rel=1e-6)


def test_make_grid_names_unknown_codes(counties: gpd.GeoDataFrame) -> None:
    with pytest.raises(GridError, match="230100.*adcodes of provinces"):
        make_grid(counties, 5.0, county_codes=("230102", "230100"))


HENAN_GCJ02 = GridConfig(DATA / "henan_counties_gcj02.geojson", id_column="adcode", name_column="district",
                         county_column="adcode", supervisor_column="")
TONGXU = GridConfig(DATA / "tongxu_townships_wgs84.geojson", id_column="name", name_column="name",
                    county_column="county_code", supervisor_column="")


def datum_warnings(caplog: pytest.LogCaptureFixture, cfg: GridConfig, counties: gpd.GeoDataFrame) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipelines"):
        load_grid(cfg, counties)
    return [r.getMessage() for r in caplog.records if "may be in" in r.getMessage()]


def test_a_gcj02_layer_read_as_wgs84_is_suspected(counties: gpd.GeoDataFrame, caplog: pytest.LogCaptureFixture) -> None:
    """The real Amap (GCJ-02) Henan counties, declared WGS84, against the Tianditu (WGS84) county layer."""
    warned = datum_warnings(caplog, HENAN_GCJ02, counties)
    assert len(warned) == 1 and 'set [grid] crs = "GCJ-02"' in warned[0] and "henan_counties_gcj02.geojson" in warned[0]
    assert datum_warnings(caplog, dataclasses.replace(HENAN_GCJ02, crs="GCJ-02"), counties) == []


@pytest.mark.parametrize("cfg", [LANKAO, TONGXU], ids=["lankao", "tongxu"])
def test_wgs84_township_layers_are_not_suspected(counties: gpd.GeoDataFrame, caplog: pytest.LogCaptureFixture, cfg: GridConfig) -> None:
    assert datum_warnings(caplog, cfg, counties) == []


def test_the_misfit_measures_the_shift(counties: gpd.GeoDataFrame) -> None:
    """Lankao's townships fit Lankao county within ~150 m (two boundary sources); shifted to GCJ-02 they do not, and reading them back fixes it."""
    grid = load_grid(LANKAO, counties)
    as_is = outline_misfit(grid, counties)
    shifted = grid.copy()
    shifted["geometry"] = shapely.transform(grid.geometry.values, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    off = outline_misfit(shifted, counties)
    back = outline_misfit(shifted, counties, gcj02_to_wgs84)
    assert as_is < 200 and off > 1.5 * as_is and back == pytest.approx(as_is, rel=1e-3)
    assert warn_if_shifted(shifted, counties, LANKAO.path) is not None
