"""Tests for pipelines.grid.attribution against geopandas.sjoin and brute-force shapely.

The polygons are real (2,891 Chinese counties, EPSG:4326); the points are
generated. Most tests use Beijing, Tianjin and Hebei (199 counties, with holes
and enclaves) to stay fast.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from pipelines.core.schema import ATTRIBUTION_DTYPES, GRID_COLUMNS
from pipelines.grid import attribution
from pipelines.grid.attribution import UNCERTAIN, PointIndex, attribute, footprints

COUNTIES = Path(__file__).resolve().parents[1] / "geodata" / "china_counties.parquet"
SUBSET_PROVINCES = ["北京市", "天津市", "河北省"]


def sjoin_lowest(x: np.ndarray, y: np.ndarray, polygons: gpd.GeoSeries) -> np.ndarray:
    """Lowest positional polygon index each point is within per sjoin, else -1."""
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=polygons.crs)
    right = gpd.GeoDataFrame(geometry=polygons.reset_index(drop=True))
    joined = gpd.sjoin(points.reset_index(drop=True), right, predicate="within")
    lowest = joined.groupby(level=0)["index_right"].min()
    result = np.full(len(x), -1, dtype=np.int64)
    result[lowest.index.to_numpy()] = lowest.to_numpy()
    return result


def as_grid(counties: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Counties as a supervision grid with GRID_COLUMNS (one cell per county)."""
    grid = gpd.GeoDataFrame(
        {
            "cell_id": counties["district_adcode"].to_numpy(),
            "cell_name": counties["district_name"].to_numpy(),
            "county_code": counties["district_adcode"].to_numpy(),
            "county_name": counties["district_name"].to_numpy(),
            "province_code": counties["province_adcode"].to_numpy(),
            "province_name": counties["province_name"].to_numpy(),
            "supervisor": ("inspector-" + counties["district_adcode"]).to_numpy(),
        },
        geometry=counties.geometry.to_numpy(),
        crs=counties.crs,
    )
    return grid[GRID_COLUMNS]


@pytest.fixture(scope="module")
def counties() -> gpd.GeoDataFrame:
    return gpd.read_parquet(COUNTIES)


@pytest.fixture(scope="module")
def subset(counties: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    chosen = counties[counties["province_name"].isin(SUBSET_PROVINCES)]
    return chosen.reset_index(drop=True)


@pytest.fixture(scope="module")
def grid(subset: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return as_grid(subset)


@pytest.fixture(scope="module")
def grid_index(grid: gpd.GeoDataFrame) -> PointIndex:
    return PointIndex.build(grid.geometry)


def uniform_points(bounds: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(bounds[0], bounds[2], n), rng.uniform(bounds[1], bounds[3], n)


def vertices_and_edge_points(polygons: gpd.GeoSeries) -> np.ndarray:
    """Every vertex, and the point halfway along every edge, as (n, 2)."""
    rings = shapely.get_rings(shapely.get_parts(polygons.to_numpy()))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same_ring = ring[1:] == ring[:-1]
    midpoints = ((coords[1:] + coords[:-1]) / 2)[same_ring]
    return np.vstack([coords, midpoints])


def hole_points(polygons: gpd.GeoSeries) -> np.ndarray:
    """A point inside every hole, as (n, 2)."""
    parts = shapely.get_parts(polygons.to_numpy())
    holes = [shapely.Polygon(ring) for part in parts for ring in part.interiors]
    return shapely.get_coordinates(shapely.point_on_surface(holes))


def lattice_points(index: PointIndex, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Corners of every ``step``-th lookup cell: points exactly on cell edges."""
    rows, cols = index.codes.shape
    x = index.west + np.arange(0, cols, step) * index.resolution
    y = index.north - np.arange(0, rows, step) * index.resolution
    xx, yy = np.meshgrid(x, y)
    return xx.ravel(), yy.ravel()


def cell_boxes(index: PointIndex) -> np.ndarray:
    """Every lookup cell as a polygon, in row-major order."""
    rows, cols = index.codes.shape
    row, col = np.divmod(np.arange(rows * cols), cols)
    west = index.west + col * index.resolution
    north = index.north - row * index.resolution
    return shapely.box(west, north - index.resolution, west + index.resolution, north)


@pytest.mark.parametrize("case", ["counties", "squares on cell edges"])
def test_lookup_table_matches_brute_force(subset: gpd.GeoDataFrame, case: str) -> None:
    if case == "counties":
        polygons, resolution = subset.geometry, 0.05
    else:
        squares = [shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)]
        polygons, resolution = gpd.GeoSeries(squares, crs="EPSG:4326"), 0.125
    index = PointIndex.build(polygons, resolution)
    codes = index.codes.ravel()
    boxes = cell_boxes(index)

    boundaries = shapely.STRtree(shapely.boundary(polygons.to_numpy()))
    touched = np.zeros(len(boxes), dtype=bool)
    touched[boundaries.query(boxes, predicate="intersects")[0]] = True
    np.testing.assert_array_equal(codes == UNCERTAIN, touched)

    certain = ~touched
    centres = shapely.get_coordinates(shapely.centroid(boxes[certain]))
    expected = sjoin_lowest(centres[:, 0], centres[:, 1], polygons)
    np.testing.assert_array_equal(codes[certain], expected)
    assert (expected >= 0).any() and (expected == -1).any()


@pytest.mark.parametrize("resolution", [None, 0.05])
def test_locate_matches_sjoin_on_random_vertex_edge_and_hole_points(
    subset: gpd.GeoDataFrame, resolution: float | None
) -> None:
    index = PointIndex.build(subset.geometry, resolution)
    x, y = uniform_points(subset.total_bounds, 20_000, seed=1)
    special = np.vstack([vertices_and_edge_points(subset.geometry), hole_points(subset.geometry)])
    lattice_x, lattice_y = lattice_points(index, step=7)
    x = np.concatenate([x, special[:, 0], lattice_x])
    y = np.concatenate([y, special[:, 1], lattice_y])

    expected = sjoin_lowest(x, y, subset.geometry)
    np.testing.assert_array_equal(index.locate(x, y), expected)

    # The points must exercise both the lookup table and the exact path,
    # and include boundary points that are within no polygon.
    codes = index._lookup(x, y)
    assert (codes >= 0).sum() > 1_000
    assert (codes == UNCERTAIN).sum() > 1_000
    assert (expected[20_000:] == -1).sum() > 1_000


@pytest.mark.parametrize("path", ["exact", "table"])
def test_locate_matches_sjoin_on_all_counties(counties: gpd.GeoDataFrame, path: str) -> None:
    index = PointIndex.build(counties.geometry)
    if path == "table":
        index.codes  # built now: locate then answers from the table, exact only near boundaries
    x, y = uniform_points(counties.total_bounds, 50_000, seed=2)
    assert ("table" in index._built) == (path == "table")
    np.testing.assert_array_equal(index.locate(x, y), sjoin_lowest(x, y, counties.geometry))


def test_the_table_is_built_only_for_many_points(grid: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    index = PointIndex.build(grid.geometry)
    x, y = uniform_points(grid.total_bounds, 1_000, seed=4)
    few = index.locate(x, y)
    assert "table" not in index._built
    monkeypatch.setattr(attribution, "TABLE_FROM_POINTS", 1_000)
    np.testing.assert_array_equal(index.locate(x, y), few)
    assert "table" in index._built


def test_points_in_holes_are_not_in_the_holed_polygon(subset: gpd.GeoDataFrame) -> None:
    owners, points = [], []
    for position, geometry in enumerate(subset.geometry):
        for part in shapely.get_parts(geometry):
            for ring in part.interiors:
                owners.append(position)
                points.append(shapely.point_on_surface(shapely.Polygon(ring)))
    assert owners
    xy = shapely.get_coordinates(points)
    found = PointIndex.build(subset.geometry).locate(xy[:, 0], xy[:, 1])
    assert (found != np.array(owners)).all()


@pytest.mark.parametrize("reverse", [False, True])
def test_overlapping_polygons_lowest_index_wins(reverse: bool) -> None:
    squares = [shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3), shapely.box(1.5, 1.5, 2.5, 2.5)]
    polygons = gpd.GeoSeries(squares[::-1] if reverse else squares, crs="EPSG:4326")
    index = PointIndex.build(polygons)
    index.codes  # the lookup table, whose cell edges the lattice below lies on
    # A 0.125-degree lattice puts many points exactly on edges and corners,
    # which are also lookup-cell edges at the default resolution.
    xx, yy = np.meshgrid(np.arange(-0.5, 3.5, 0.125), np.arange(-0.5, 3.5, 0.125))
    x, y = xx.ravel(), yy.ravel()
    found = index.locate(x, y)
    np.testing.assert_array_equal(found, sjoin_lowest(x, y, polygons))

    matches = [set(np.flatnonzero(shapely.contains_xy(polygons.to_numpy(), px, py)))
               for px, py in zip(x, y)]
    assert any(len(m) == 3 for m in matches)
    for m, f in zip(matches, found):
        assert f == (min(m) if m else -1)


def test_point_outside_every_polygon(grid: gpd.GeoDataFrame, grid_index: PointIndex) -> None:
    x = np.array([0.0, 116.40, np.nan, 180.0, 116.40])
    y = np.array([0.0, 39.91, 39.91, 90.0, np.inf])
    assert grid_index.locate(x, y).tolist() == [-1, 0, -1, -1, -1]

    fires = pd.DataFrame({"lon": x, "lat": y})
    out = attribute(fires, grid, grid_index)
    assert len(out) == len(fires)
    assert out["cell_id"].isna().tolist() == [True, False, True, True, True]
    assert out.loc[0, "cells_touched"] == []
    assert out.loc[1, "cell_id"] == grid["cell_id"].iloc[0]


def test_footprint_straddling_a_border(grid: gpd.GeoDataFrame, grid_index: PointIndex) -> None:
    assert grid["cell_name"].iloc[:2].tolist() == ["东城区", "西城区"]
    first, second = grid.geometry.iloc[0], grid.geometry.iloc[1]
    border = shapely.intersection(first.boundary, second.boundary)
    midway = shapely.line_interpolate_point(border, 0.5, normalized=True)
    on_border = shapely.get_coordinates(midway)
    # ~50 m to either side of the border: find the side inside the first cell.
    candidates = on_border + np.array([[5e-4, 0], [-5e-4, 0], [0, 5e-4], [0, -5e-4]])
    inside_first = shapely.contains_xy(first, candidates[:, 0], candidates[:, 1])
    lon, lat = candidates[inside_first][0]
    fires = pd.DataFrame({"lon": [lon], "lat": [lat], "scan_km": [1.0], "track_km": [1.0]})

    out = attribute(fires, grid, grid_index)

    assert out.loc[0, "cell_id"] == grid["cell_id"].iloc[0]
    touched = out.loc[0, "cells_touched"]
    assert {grid["cell_id"].iloc[0], grid["cell_id"].iloc[1]} <= set(touched)
    assert touched == sorted(touched)


def test_attribute_matches_brute_force(grid: gpd.GeoDataFrame, grid_index: PointIndex) -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    lon, lat = uniform_points(grid.total_bounds, n, seed=3)
    scan = rng.uniform(0.3, 5.0, n)
    scan[::10] = np.nan  # point footprints
    fires = pd.DataFrame(
        {"lon": lon, "lat": lat, "scan_km": scan, "track_km": rng.uniform(0.3, 3.0, n)},
        index=rng.integers(0, 50, n),  # duplicated labels must not matter
    )
    before = fires.copy()

    out = attribute(fires, grid, grid_index)

    pd.testing.assert_frame_equal(fires, before)
    pd.testing.assert_frame_equal(out[fires.columns], fires)
    for column, dtype in ATTRIBUTION_DTYPES.items():
        assert out[column].dtype == dtype, column
    position = sjoin_lowest(lon, lat, grid.geometry)
    for column in GRID_COLUMNS[:-1]:
        expected = np.where(position >= 0, grid[column].to_numpy()[position], None)
        assert out[column].tolist() == [pd.NA if v is None else v for v in expected]

    shapes = footprints(lon, lat, fires["scan_km"], fires["track_km"])
    cell_ids = grid["cell_id"].to_numpy()
    for shape, centre, touched in zip(shapes, out["cell_id"], out["cells_touched"]):
        assert touched == sorted(cell_ids[shapely.intersects(grid.geometry.to_numpy(), shape)])
        assert pd.isna(centre) or centre in touched
    assert (out["cells_touched"].map(len) >= 2).any()


def test_footprints_sizes_in_degrees() -> None:
    shapes = footprints(
        np.array([100.0, 100.0, 100.0]),
        np.array([60.0, 0.0, 30.0]),
        np.array([2.0, 2.0, np.nan]),
        np.array([1.0, 1.0, 1.0]),
    )
    minx, miny, maxx, maxy = shapely.bounds(shapes).T
    np.testing.assert_allclose(maxx[:2] - minx[:2], [2 / (111.320 * 0.5), 2 / 111.320])
    np.testing.assert_allclose(maxy[:2] - miny[:2], [1 / 110.574, 1 / 110.574])
    np.testing.assert_allclose(shapely.get_coordinates(shapely.centroid(shapes[:2])),
                               [[100, 60], [100, 0]])
    assert shapely.get_type_id(shapes[2]) == shapely.GeometryType.POINT


def test_build_rejects_bad_input(subset: gpd.GeoDataFrame) -> None:
    with pytest.raises(ValueError, match="EPSG:4326"):
        PointIndex.build(subset.geometry.to_crs("EPSG:3857"))
    with pytest.raises(ValueError, match="MAX_CELLS"):
        PointIndex.build(subset.geometry, resolution=1e-4)
    with pytest.raises(ValueError, match="Polygon"):
        PointIndex.build(subset.geometry.boundary)
