"""Telling suspected straw burning from industrial, persistent and other fires, on real data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from pipelines.fires.classify import Classifier, classify, classify_events
from pipelines.fires.events import assign_events, events_table
from pipelines.fires.landcover import LandCover, LandCoverError, cover_fractions, cropland_hectares
from pipelines.fires.load import dedupe
from pipelines.fires.readers import read_points
from pipelines.fires.readers.plants import PlantList, read_plant_lists, read_plants
from pipelines.grid.attribution import PointIndex

ROOT = Path(__file__).resolve().parent.parent
GEM = ROOT / "geodata/industrial/gem_steel_plants_china.csv"
WRI = ROOT / "geodata/industrial/wri_power_plants_china.csv"
LANDCOVER = LandCover(ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif")
HIMAWARI = ROOT / "geodata/fires/H09_20251209_1900_L2WLF010_FLDK.06001_06001.csv"
NCP_7D = ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv"


@pytest.fixture(scope="module")
def plants() -> gpd.GeoDataFrame:
    frame, skips, _ = read_plant_lists([PlantList(GEM, "gem_steel", 3.0), PlantList(WRI, "wri_power", 2.0, fuels=("Coal", "Gas"))])
    assert not skips
    return frame


@pytest.fixture(scope="module")
def china() -> gpd.GeoDataFrame:
    return gpd.read_parquet(ROOT / "geodata/china_counties.parquet", columns=["geometry"])


def km(lon1, lat1, lon2, lat2) -> np.ndarray:  # noqa: ANN001
    dx = (np.asarray(lon1)[:, None] - np.asarray(lon2)[None]) * 111.32 * np.cos(np.radians(np.asarray(lat1)[:, None]))
    return np.hypot(dx, (np.asarray(lat1)[:, None] - np.asarray(lat2)[None]) * 110.574)


# ------------------------------------------------------------------ plant lists


def test_plant_lists_are_read_with_names_and_kinds(plants: gpd.GeoDataFrame) -> None:
    assert (plants["kind"] == "steel plant").sum() == 289  # every GEM plant (all operating)
    assert set(plants["kind"]) == {"steel plant", "coal power plant", "gas power plant"}  # no hydro, wind, solar
    anshan = plants[plants["plant_id"] == "P100000120219"].iloc[0]
    assert anshan["name"] == "鞍钢股份有限公司" and (anshan["lat"], anshan["lon"]) == pytest.approx((41.148267, 122.983054))
    assert plants.crs.to_epsg() == 4326


def test_unparsable_plant_coordinates_are_skipped_by_row(tmp_path: Path) -> None:
    lines = GEM.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace('"41.1482670, 122.9830540"', '"N41.15, E122.98"')
    broken = tmp_path / "steel.csv"
    broken.write_text("\n".join(lines[:10]) + "\n" + lines[10][:40] + "\n", encoding="utf-8")
    frame, skips = read_plants(PlantList(broken, "gem_steel", 3.0))
    assert {(s.row, s.field) for s in skips} >= {(4, "Coordinates")}
    assert any(s.row == 11 for s in skips)  # the truncated last line
    assert len(frame) == 10 - 1 - 1  # 9 data rows, one bad coordinate; the cut line is not a row
    missing = tmp_path / "no_coordinates.csv"
    missing.write_text("Plant ID,Name\nX,Y\n", encoding="utf-8")
    frame, skips = read_plants(PlantList(missing, "gem_steel", 3.0))
    assert frame.empty and "missing column(s) Coordinates" in skips[0].reason


def test_user_point_layer_in_another_crs(tmp_path: Path, plants: gpd.GeoDataFrame) -> None:
    steel = plants[plants["kind"] == "steel plant"].head(5)
    layer = gpd.GeoDataFrame({"name": steel["name"].to_numpy()}, geometry=steel.geometry.to_numpy(), crs=4326).to_crs(3857)
    layer.to_file(tmp_path / "kilns.gpkg", engine="pyogrio")
    frame, skips = read_plants(PlantList(tmp_path / "kilns.gpkg", "points", 1.5, kind="cement kiln"))
    assert not skips and list(frame["kind"].unique()) == ["cement kiln"]
    np.testing.assert_allclose(frame["lon"], steel["lon"], atol=1e-7)


# ------------------------------------------------------------------ land cover


def test_cropland_fraction_comes_from_the_whole_footprint() -> None:
    # A 1 km pixel wholly inside one 0.05° cropland cell, and a 20 km one across a lake edge.
    lake = (117.3, 31.55)  # Chaohu lake, Anhui: water (class 0) beside cropland
    frac = cover_fractions(np.array([115.0, lake[0]]), np.array([34.75, lake[1]]), np.array([1.0, 20.0]), np.array([1.0, 20.0]), LANDCOVER)
    assert frac["cropland_fraction"].iloc[0] == 1.0 and frac["landcover_class"].iloc[0] == 12
    assert 0.05 < frac["cropland_fraction"].iloc[1] < 0.95  # a mixed footprint, not its centre's class


def test_land_cover_outside_the_raster_is_unknown() -> None:
    # The China-wide raster ends at 136°E: a pixel in the Pacific has no land cover.
    frac = cover_fractions(np.array([150.4]), np.array([31.2]), np.array([2.0]), np.array([2.0]), LANDCOVER)
    assert np.isnan(frac["cropland_fraction"].iloc[0]) and frac["landcover_class"].iloc[0] == -1


def test_missing_land_cover_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(LandCoverError, match="nowhere.tif"):
        LandCover(tmp_path / "nowhere.tif").check()


def test_cropland_hectares_per_cell_match_the_raster() -> None:
    grid = gpd.read_parquet(ROOT / "geodata/grid_ncp_5km.parquet")
    henan = grid[grid["province_code"] == "410000"].reset_index(drop=True)
    hectares = cropland_hectares(henan, LANDCOVER, PointIndex.build(henan.geometry))
    assert hectares.index.equals(pd.Index(henan["cell_id"]))
    area_ha = henan.to_crs("+proj=aea +lat_1=25 +lat_2=47 +lon_0=105").area.to_numpy() / 1e4
    # Never more cropland than land, give or take the ~0.5 km sub-pixels cut by a cell's edge
    # (about 2 % of a 5 km cell, one standard deviation).
    whole = area_ha > 2000
    assert (hectares.to_numpy()[whole] <= area_ha[whole] * 1.1).all()
    assert hectares.sum() <= area_ha.sum()
    # Henan is mostly cropland in MCD12C1: 75-90 % of its area.
    assert 0.75 < hectares.sum() / area_ha.sum() < 0.9


# ------------------------------------------------------------------ classification


def test_himawari_pixels_at_steel_plants_are_industrial(plants: gpd.GeoDataFrame, china: gpd.GeoDataFrame) -> None:
    """The real Himawari-9 scan of 2025-12-09 19:00 UTC: most China pixels of that night are steel works."""
    fires, _ = read_points(HIMAWARI)
    in_china = gpd.GeoSeries(gpd.points_from_xy(fires["lon"], fires["lat"]), crs=4326).within(china.union_all()).to_numpy()
    fires = fires[in_china].reset_index(drop=True)
    steel = plants[plants["kind"] == "steel plant"]
    result = classify(fires, Classifier(plants=steel, landcover=LANDCOVER), dt.date(2025, 12, 10))
    reach = 3.0 + 0.5 * np.hypot(fires["scan_km"], fires["track_km"]).to_numpy()
    near = (km(fires["lon"], fires["lat"], steel["lon"], steel["lat"]) <= reach[:, None]).any(axis=1)
    assert in_china.sum() == 46 and near.sum() == 25
    industrial = result[near]
    assert (industrial["category"] == "industrial").all()
    for _, fire in industrial.iterrows():
        assert fire["plant_name"] in fire["reason"] and "steel plant" in fire["reason"]
    assert (result.loc[~near, "category"] != "industrial").all()
    assert {"唐山港陆钢铁有限公司", "内蒙古包钢钢联股份有限公司", "鞍钢股份有限公司"} <= set(industrial["plant_name"])


def test_ncp_cropland_fires_far_from_plants_are_never_industrial(plants: gpd.GeoDataFrame) -> None:
    """June 2022, wheat harvest: MODIS over Henan, Shandong, Hebei, Anhui."""
    fires, _ = read_points(NCP_7D)
    fires, _ = dedupe(fires)
    result = classify(fires, Classifier(plants=plants, landcover=LANDCOVER), dt.date(2022, 6, 5))
    nearest = km(result["lon"], result["lat"], plants["lon"], plants["lat"]).min(axis=1)
    far_on_cropland = (nearest > 8.0) & (result["cropland_fraction"] >= 0.5).to_numpy()
    assert far_on_cropland.sum() > 400
    assert (result.loc[far_on_cropland, "category"] == "straw_suspect").all()
    share = (result["category"] == "straw_suspect").mean()
    assert 0.6 < share < 0.95  # the README reports it: most harvest fires are on cropland
    assert result["reason"].notna().all()


def test_events_take_the_strongest_category(plants: gpd.GeoDataFrame) -> None:
    fires, _ = read_points(NCP_7D)
    fires, _ = dedupe(fires)
    fires = classify(fires, Classifier(plants=plants, landcover=LANDCOVER), dt.date(2022, 6, 5))
    fires["event_id"] = assign_events(fires)
    # Make one observation of a multi-observation event industrial: the event follows.
    multi = fires["event_id"].value_counts()
    event = multi[multi > 1].index[0]
    first = fires.index[fires["event_id"] == event][0]
    fires.loc[first, ["category", "reason"]] = ["industrial", "test plant"]
    events = classify_events(events_table(fires), fires)
    row = events.set_index("event_id").loc[event]
    assert row["category"] == "industrial" and row["reason"] == "test plant"
    assert events["category"].notna().all() and len(events) == fires["event_id"].nunique()
