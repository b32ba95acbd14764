"""The product registry and the readers of the agencies' layouts, on real files where they could be had.

Real files (tests/data/real_products/, see SOURCES.md): a NASA MOD14 HDF4
granule, two NOAA GOES ABI L2 FDC files, a NOAA CSPP AFIMG text file. VNP14IMG,
VNP03IMG, MOD03 and FY-4 AGRI FHS files are built here to the published
layouts (``pipelines.testing``), with fire pixels at real detections.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import netCDF4
import numpy as np
import pandas as pd
import pytest
import shapely
from pyhdf.SD import SD, SDC
from pyproj import Transformer

from pipelines.fires.coverage import grid_coverage
from pipelines.fires.load import dedupe
from pipelines.fires.rasters import read_raster_fires
from pipelines.fires.readers import read_points
from pipelines.fires.readers.patterns import FilePattern
from pipelines.fires.readers.products import PRODUCTS, claim
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL
from pipelines.testing.products import write_fy4_fhs, write_mod03, write_vnp03img, write_vnp14img

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(__file__).resolve().parent / "data" / "real_products"
G17 = REAL / "OR_ABI-L2-FDCC-M6_G17_s20193002001196_e20193002003569_c20193002004132.nc"
G16 = REAL / "OR_ABI-L2-FDCC-M6_G16_s20200040316182_e20200040318554_c20200040319252.nc"
MOD14 = REAL / "MOD14.A2017001.1655.006.2017004111822.hdf"
CSPP = REAL / "AFIMG_j01_d20210414_t1126439_e1128084_b17637_c20210414114130392094_cspp_dev.txt"
KM_PER_DEG = 111.32


def square_grid(west: float, south: float, east: float, north: float, step: float) -> gpd.GeoDataFrame:
    """Square cells of ``step`` degrees with the grid columns (ids only; no Chinese county applies)."""
    xs, ys = np.arange(west, east, step), np.arange(south, north, step)
    boxes = [shapely.box(x, y, x + step, y + step) for y in ys for x in xs]
    ids = [f"C{i:05d}" for i in range(len(boxes))]
    return gpd.GeoDataFrame({"cell_id": ids, "cell_name": ids, "county_code": "000000", "county_name": "", "province_code": "000000",
                             "province_name": "", "supervisor": ""}, geometry=boxes, crs="EPSG:4326")


@pytest.fixture(scope="module")
def goes17() -> pd.DataFrame:
    fires, skips, counts = read_raster_fires([G17]).compute(scheduler="sync")
    assert not skips and counts[G17.name]["rows_read"] == 43
    return fires


# ------------------------------------------------------------------ registry


def test_every_product_is_one_declaration_with_named_fields() -> None:
    names = [p.name for p in PRODUCTS]
    assert len(names) == len(set(names))
    for product in PRODUCTS:
        if product.name != "NASA FIRMS":  # FIRMS exports are named by whoever saves them: the header decides
            assert "platform" in product.pattern.kinds, product.name
    assert sum(p.test_format for p in PRODUCTS) == 5 and all("test format" in p.name for p in PRODUCTS if p.test_format)
    for path in (G17, G16, MOD14, CSPP):
        assert claim(path) is not None and not claim(path)[0].test_format


def test_file_name_fields() -> None:
    product, fields = claim(G17)
    assert product.name == "GOES ABI L2 FDC" and product.satellite(fields) == "GOES-17"
    assert fields["start_time"] == dt.datetime(2019, 10, 27, 20, 1, 19, 600000) and fields["sector"] == "C"
    assert FilePattern("{platform:3s}14.A{start_time:%Y%j.%H%M}.hdf").parse("MOD14.A2017399.1655.hdf") is None  # day 399


# ------------------------------------------------------------------ GOES ABI FDC (real)


def test_goes17_gives_its_43_fire_pixels_with_their_classes(goes17: pd.DataFrame) -> None:
    assert len(goes17) == 43
    assert goes17["confidence_raw"].value_counts().to_dict() == {"32": 15, "30": 14, "33": 8, "15": 2, "10": 1, "14": 1, "34": 1, "35": 1}
    assert set(goes17["satellite"]) == {"GOES-17"} and set(goes17["sensor"]) == {"ABI"}
    assert (goes17["time_utc"] == pd.Timestamp("2019-10-27 20:01:19.6", tz="UTC")).all()
    levels = goes17.groupby("confidence_raw")["confidence_level"].first().to_dict()
    assert levels == {"10": "high", "14": "low", "15": "low", "30": "high", "32": "nominal", "33": "nominal", "34": "low", "35": "low"}


def test_goes17_fire_pixels_are_where_the_fixed_grid_puts_them(goes17: pd.DataFrame) -> None:
    """Positions checked against PROJ's geostationary projection, from the file's own CF decoding."""
    with netCDF4.Dataset(G17) as nc:  # netCDF4 applies scale_factor/add_offset itself here
        x, y = nc["x"][:].data, nc["y"][:].data
        p = nc["goes_imager_projection"]
        h, lon0 = p.perspective_point_height, p.longitude_of_projection_origin
        mask = nc["Mask"][:].data
        power = nc["Power"][:]
        proj = f"+proj=geos +h={h} +lon_0={lon0} +a={p.semi_major_axis} +b={p.semi_minor_axis} +sweep={p.sweep_angle_axis}"
    rows, cols = goes17["source_row"].to_numpy() - 1, goes17["source_col"].to_numpy() - 1
    fire_values = [10, 11, 12, 13, 14, 15, 30, 31, 32, 33, 34, 35]
    assert np.isin(mask[rows, cols], fire_values).all() and np.isin(mask, fire_values).sum() == 43
    lon, lat = Transformer.from_crs(proj, "EPSG:4326", always_xy=True).transform(x[cols] * h, y[rows] * h)
    # netCDF4 decodes the angles in float32 (its scale_factor's type): ~0.3 m, 1e-5° is 1 m of a 2 km pixel.
    assert np.abs(goes17["lon"].to_numpy() - lon).max() < 1e-5 and np.abs(goes17["lat"].to_numpy() - lat).max() < 1e-5
    assert goes17["lat"].between(25.2, 50.9).all() and goes17["lon"].between(-122.9, -109.5).all()
    # FRP as the file gives it, and empty where it has none (every pixel of classes 15, 32 and 35).
    expected = power[rows, cols].filled(np.nan).astype("float64")
    np.testing.assert_allclose(goes17["frp_mw"].to_numpy(), expected, rtol=1e-6)
    no_frp = goes17[goes17["frp_mw"].isna()]
    assert set(no_frp["confidence_raw"]) == {"15", "32", "35"} and len(goes17) - len(no_frp) == 25
    # 2 km at nadir, larger at 25-51°N seen from 137°W.
    assert goes17["scan_km"].between(2.0, 3.0).all() and goes17["track_km"].between(2.2, 4.5).all()


def test_goes16_night_file() -> None:
    fires, skips, _ = read_raster_fires([G16]).compute(scheduler="sync")
    assert not skips and len(fires) == 4 and set(fires["satellite"]) == {"GOES-16"}
    assert sorted(fires["confidence_raw"]) == ["13", "30", "30", "34"]
    assert fires["frp_mw"].between(18.7, 34.6).all()


def test_goes17_coverage_sees_the_fire_cells_clear(goes17: pd.DataFrame) -> None:
    grid = square_grid(-124.0, 24.0, -108.0, 52.0, 1.0)
    table, skips, per_file = grid_coverage([G17], grid, day=None)
    assert not skips and per_file[G17.name]["cells_seen_clear"] > 0
    with_fire = grid.sjoin(gpd.GeoDataFrame(geometry=gpd.points_from_xy(goes17["lon"], goes17["lat"]), crs=4326))["cell_id"]
    states = table.set_index("cell_id")["observed"]
    # A fire is only seen through clear sky: most fire cells were seen clear in this one look.
    assert (states[with_fire.unique()] == "clear").mean() > 0.8
    assert set(states) <= {"clear", "cloud", "not_observed"} and (table["clear_looks"] + table["cloud_looks"]).max() == 1


# ------------------------------------------------------------------ MODIS MOD14 (real) and MOD03 (built)


def test_mod14_granule_gives_no_fire_and_its_cloud_share() -> None:
    fires, skips, counts = read_raster_fires([MOD14]).compute(scheduler="sync")
    assert fires.empty and not skips
    sd = SD(str(MOD14), SDC.READ)
    mask = sd.select("fire mask")[:]
    sd.end()
    looked = np.isin(mask, [3, 4, 5, 7, 8, 9]).sum()
    record = counts[MOD14.name]
    assert record["mask_cloud"] == (mask == 4).sum() == 2066969
    assert record["cloud_share"] == pytest.approx((mask == 4).sum() / looked, abs=1e-4) and 0.75 < record["cloud_share"] < 0.76


def test_mod14_mask_is_placed_by_its_mod03(tmp_path: Path) -> None:
    """MOD03 built to the layout (a plain grid over the granule's bounding box, 35.0-56.7°N, 104.3-67.7°W)."""
    lat = np.linspace(56.7, 35.0, 2030)[:, None] * np.ones((1, 1354))
    lon = np.ones((2030, 1)) * np.linspace(-104.3, -67.7, 1354)[None, :]
    mod03 = tmp_path / "MOD03.A2017001.1655.006.2017003202340.hdf"
    write_mod03(mod03, lat, lon)
    grid = square_grid(-104.0, 35.0, -68.0, 56.5, 2.0)
    table, skips, _ = grid_coverage([MOD14, mod03], grid, day=None)
    assert not skips and set(table["observed"]) <= {"clear", "cloud"}
    # Independently: the majority class of the pixels in each cell.
    sd = SD(str(MOD14), SDC.READ)
    mask = sd.select("fire mask")[:]
    sd.end()
    for cell in table.sample(20, random_state=1).itertuples():
        x0, y0, x1, y1 = grid.set_index("cell_id").loc[cell.cell_id, "geometry"].bounds
        inside = (lon > x0) & (lon < x1) & (lat > y0) & (lat < y1)
        clear, cloud = np.isin(mask[inside], [3, 5, 7, 8, 9]).sum(), (mask[inside] == 4).sum()
        assert cell.observed == ("clear" if clear >= cloud else "cloud")
    # Without its MOD03 the granule's cells are unknown, and the run says so.
    table, skips, _ = grid_coverage([MOD14], grid, day=None)
    assert set(table["observed"]) == {"unknown"} and skips[0].field == "geolocation"


# ------------------------------------------------------------------ CSPP AFIMG (real)


def test_cspp_file_gives_its_18_fires() -> None:
    fires, skips = read_points(CSPP)
    assert not skips and len(fires) == 18
    rows = np.loadtxt(CSPP, delimiter=",", comments="#")
    np.testing.assert_allclose(fires["lat"], rows[:, 0]) and np.testing.assert_allclose(fires["lon"], rows[:, 1])
    np.testing.assert_allclose(fires["frp_mw"], rows[:, 6])
    assert set(fires["satellite"]) == {"NOAA-20"} and set(fires["confidence_level"]) == {"nominal"}
    assert (fires["time_utc"] == pd.Timestamp("2021-04-14 11:26:43.9", tz="UTC")).all()


# ------------------------------------------------------------------ VNP14IMG + VNP03IMG (built to the layout)


def test_vnp14img_built_to_the_user_guide_layout(tmp_path: Path) -> None:
    viirs, _ = read_points(ROOT / "tests/data/fires/VIIRS_I_Global_VNP14IMGTDL_NRT_2019097_ncp-subset.txt")
    viirs = viirs[viirs["time_utc"].dt.strftime("%H%M") == "0600"]
    band = viirs["lat"].median()
    viirs = viirs[(viirs["lat"] - band).abs() < 0.15].reset_index(drop=True)  # the fires of a 64-line strip
    # A strip of a granule (64 lines of 6400 samples) over the fires, as its VNP03IMG would place it.
    lat = np.linspace(viirs["lat"].max() + 0.05, viirs["lat"].min() - 0.05, 64)[:, None] * np.ones((1, 6400))
    lon = np.ones((64, 1)) * np.linspace(viirs["lon"].min() - 0.5, viirs["lon"].max() + 0.5, 6400)[None, :]
    path = tmp_path / "VNP14IMG.A2019097.0600.001.2019097123456.nc"
    written = write_vnp14img(path, viirs, lat, lon, cloud_rows=slice(0, 8))
    write_vnp03img(tmp_path / "VNP03IMG.A2019097.0600.001.2019097120000.nc", lat, lon)
    fires, skips, counts = read_raster_fires([path]).compute(scheduler="sync")
    assert not skips and len(fires) == len(viirs) >= 3
    np.testing.assert_allclose(fires["lat"], viirs["lat"], atol=1e-5)
    np.testing.assert_allclose(fires["frp_mw"], viirs["frp_mw"].fillna(0), rtol=1e-5)
    assert list(fires["confidence_level"]) == list(viirs["confidence_level"]) and set(fires["satellite"]) == {"Suomi NPP"}
    assert list(fires["source_row"]) == list(written["line"] + 1)
    assert counts[path.name]["mask_cloud"] == 8 * 6400
    grid = square_grid(lon.min(), lat.min(), lon.max(), lat.max(), 0.05)
    table, skips, _ = grid_coverage(sorted(tmp_path.iterdir()), grid, day=None)
    assert not skips
    top = grid.geometry.bounds["miny"] > lat[8, 0]  # cells wholly in the 8 cloudy lines
    assert (table.loc[top.to_numpy(), "observed"] == "cloud").all() and (table["observed"] == "clear").sum() > 0


# ------------------------------------------------------------------ FY-4 AGRI FHS (built to NSMC's layout)


@pytest.fixture(scope="module")
def modis_day() -> pd.DataFrame:
    fires, _ = read_points(ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv")
    fires, _ = dedupe(fires)
    return fires[fires["time_bjt"].dt.date == dt.date(2022, 6, 3)].reset_index(drop=True)


def test_fy4_fhs_built_to_nsmc_layout(tmp_path: Path, modis_day: pd.DataFrame) -> None:
    path = tmp_path / "FY4A-_AGRI--_N_DISK_1047E_L2-_FHS-_MULT_NOM_20220603050000_20220603051459_4000M_V0001.NC"
    written = write_fy4_fhs(path, modis_day, cloud=lambda lon, lat: lat > 38.0)
    fires, skips, _ = read_raster_fires([path]).compute(scheduler="sync")
    assert not skips and set(fires["satellite"]) == {"FY-4A"} and fires["frp_mw"].isna().all()
    assert len(fires) == len(written.drop_duplicates(["line", "column"]))  # fires are seen through the cloud test's gaps
    # Every fire pixel holds a real detection: in PROJ's geostationary angles (sweep y, NSMC's
    # 42,164 km orbit radius) the detection lies within half a 4 km step of the pixel centre.
    h = 42164000.0 - 6378137.0
    to_geos = Transformer.from_crs("EPSG:4326", f"+proj=geos +h={h} +lon_0=104.7 +a=6378137 +b=6356752.3 +sweep=y", always_xy=True)
    gx, gy = to_geos.transform(modis_day["lon"].to_numpy(), modis_day["lat"].to_numpy())
    step = np.radians(2.0**16 / 10233137)
    col, line = gx / h / step + 1373.5, 1373.5 - gy / h / step
    rows, cols = fires["source_row"].to_numpy() - 1, fires["source_col"].to_numpy() - 1
    near = (np.abs(line[None] - rows[:, None]) <= 0.5) & (np.abs(col[None] - cols[:, None]) <= 0.5)
    assert near.any(axis=1).all()
    assert fires["scan_km"].between(4.0, 5.5).all() and fires["track_km"].between(4.0, 7.5).all()
    grid = square_grid(114.0, 34.0, 120.0, 42.0, 0.5)
    table, skips, _ = grid_coverage([path], grid, day=dt.date(2022, 6, 3))
    north = (grid.geometry.bounds["miny"] >= 38.0).to_numpy()
    assert not skips and (table.loc[north, "observed"] == "cloud").all() and (table.loc[~north & (grid.geometry.bounds["maxy"] <= 38.0).to_numpy(), "observed"] == "clear").all()


# ------------------------------------------------------------------ nightly runs on real files only


def _config(tmp: Path, rasters: list[Path], bbox: list[float]) -> Path:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('"geodata/', f'"{ROOT}/geodata/').replace('dir = "out"', f'dir = "{tmp}/out"')
    text = text.replace(f'points = ["{ROOT}/geodata/fires/*.csv"]', "points = []")
    text = text.replace(f'rasters = ["{ROOT}/geodata/fires/ahi/*.nc"]', "rasters = " + json.dumps([str(p) for p in rasters]))
    text = text.replace("bbox = [110.0, 28.0, 123.0, 43.0]", f"bbox = {json.dumps(bbox)}")
    text = text.replace('tiles = "OpenStreetMap"', 'tiles = ""')
    (tmp / "config.toml").write_text(text, encoding="utf-8")
    return tmp / "config.toml"


def test_nightly_with_only_the_goes17_file(tmp_path: Path) -> None:
    """GOES-17 sees the Americas: the region takes them in, the China grid has no cell for them."""
    config = _config(tmp_path, [G17], [-130.0, 20.0, -100.0, 55.0])
    code = main(["nightly", "--date", "2019-10-28", "--config", str(config), "--quiet"])  # 20:01 UTC = 04:01 Beijing, 28 Oct
    out = tmp_path / "out" / "2019-10-28"
    assert code in (EXIT_OK, EXIT_PARTIAL)
    fires = gpd.read_parquet(out / "fires.parquet")
    assert len(fires) == 43 and fires["cell_id"].isna().all()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["counts"]["fires"] == 43 and manifest["inputs"]["rasters"][0]["rows_read"] == 43
    summary = pd.read_csv(out / "grid_summary.csv", dtype={"cell_id": str})
    assert set(summary["observed"]) == {"not_observed"} and (summary["clear_looks"] == 0).all()  # GOES-West cannot see China


def test_nightly_with_only_the_mod14_granule(tmp_path: Path) -> None:
    config = _config(tmp_path, [MOD14], [-105.0, 35.0, -67.0, 57.0])
    code = main(["nightly", "--date", "2017-01-02", "--config", str(config), "--quiet"])  # 16:55 UTC = 00:55 Beijing, 2 Jan
    out = tmp_path / "out" / "2017-01-02"
    assert code in (EXIT_OK, EXIT_PARTIAL)
    assert {"fires.parquet", "events.parquet", "grid_summary.csv", "report.csv", "map.html", "index.html", "run.json"} <= {p.name for p in out.iterdir()}
    assert gpd.read_parquet(out / "fires.parquet").empty
    manifest = json.loads((out / "run.json").read_text())
    record = manifest["inputs"]["rasters"][0]
    assert manifest["counts"]["fires"] == 0 and 0.75 < record["cloud_share"] < 0.76
    summary = pd.read_csv(out / "grid_summary.csv", dtype={"cell_id": str})
    assert set(summary["observed"]) == {"unknown"}  # no MOD03: which cells it saw is not known
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "未观测到火点" in index and "观测情况不明 coverage unknown" in index
