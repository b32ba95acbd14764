"""Fire-mask rasters: readers per product, lazy extraction, broken files.

The fixtures in tests/data/rasters/ were made from real detections by
tests/data/rasters/make_fixtures.py (see pipelines.testing); each test checks
the extracted pixels against the real detections they came from.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import rasterio

from pipelines.core.schema import FIRE_DTYPES
from pipelines.fires.load import dedupe
from pipelines.fires.rasters import extract_fires, read_raster_fires
from pipelines.fires.readers import read_points
from pipelines.fires.readers.rasters import (
    RASTER_PRODUCTS,
    UNREADABLE,
    RasterError,
    detect_raster,
    open_scans,
    open_scene,
)
from pipelines.testing import raise_if_dask_computes
from pipelines.testing.products import write_geostationary_scans

ROOT = Path(__file__).resolve().parent.parent
RASTERS = Path(__file__).resolve().parent / "data" / "rasters"
H08 = sorted(RASTERS.glob("H08_*.nc"))
KM_PER_DEG = 111.32


@pytest.fixture(scope="module")
def modis_day() -> pd.DataFrame:
    """The real MODIS detections of 2022-06-03 (Beijing date) the fixtures were made from."""
    fires, _ = read_points(ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv")
    fires, _ = dedupe(fires)
    return fires[fires["time_bjt"].dt.date == dt.date(2022, 6, 3)]


def km_between(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Pairwise distances (km), shape (len(1), len(2)), locally flat."""
    dx = (np.asarray(lon1)[:, None] - np.asarray(lon2)[None]) * KM_PER_DEG * np.cos(np.radians(np.asarray(lat1)[:, None]))
    dy = (np.asarray(lat1)[:, None] - np.asarray(lat2)[None]) * 110.574
    return np.hypot(dx, dy)


def extract(ds) -> tuple[pd.DataFrame, list, dict]:  # noqa: ANN001
    return extract_fires(ds).compute(scheduler="sync")


def assert_schema(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(FIRE_DTYPES)
    assert frame.dtypes.astype(str).to_dict() == {c: str(t) for c, t in FIRE_DTYPES.items()}


# ------------------------------------------------------------------ products


@pytest.mark.parametrize(
    ("name", "product"),
    [
        # gridwatch's own test formats, labelled as such
        ("MOD14.A2022154.0315.061.nc", "MODIS swath with latitude/longitude (gridwatch test format)"),
        ("VJ114IMG.A2024001.0600.002.nc", "VIIRS swath with latitude/longitude (gridwatch test format)"),
        ("MYD14.A2022154.0455.061.tif", "MODIS fire-mask GeoTIFF (gridwatch test format)"),
        ("VNP14IMG.A2019097.0600.002.tif", "VIIRS fire-mask GeoTIFF (gridwatch test format)"),
        ("H09_20251209_1900_FIRE_MASK_R02.nc", "AHI fire mask, 0.02° grid (gridwatch test format)"),
        # the agencies' layouts (tests/test_products.py reads them)
        ("MOD14.A2017001.1655.006.2017004111822.hdf", "MODIS MOD14/MYD14"),
        ("VJ114IMG.A2024001.0600.002.2024001123456.nc", "VIIRS VNP14IMG/VJ114IMG"),
        ("OR_ABI-L2-FDCC-M6_G17_s20193002001196_e20193002003569_c20193002004132.nc", "GOES ABI L2 FDC"),
        ("FY4A-_AGRI--_N_DISK_1047E_L2-_FHS-_MULT_NOM_20220603050000_20220603051459_2000M_V0001.NC", "FY-4 AGRI FHS"),
    ],
)
def test_products_are_claimed_by_file_name(name: str, product: str) -> None:
    assert detect_raster(name).name == product


def test_an_unclaimed_raster_is_skipped_with_the_reason(tmp_path: Path) -> None:
    stray = tmp_path / "landcover.tif"
    shutil.copy(ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif", stray)
    lazy = read_raster_fires([stray])
    assert [s.file for s in lazy.skips] == ["landcover.tif"] and "not a known fire-mask raster" in lazy.skips[0].reason


# ------------------------------------------------------------------ GeoTIFF


def test_geotiff_in_wgs84(modis_day: pd.DataFrame) -> None:
    path = RASTERS / "MYD14.A2022154.0455.061.tif"
    ds = open_scene(path)
    assert ds.sizes == {"time": 1, "y": 300, "x": 300, "row_block": 1}
    assert ds.attrs["sensor"] == "MODIS" and ds["satellite"].item() == "Aqua"
    fires, skips, counts = extract(ds)
    assert_schema(fires)
    assert not skips
    with rasterio.open(path) as src:
        mask = src.read(1)
    assert len(fires) == int((mask >= 7).sum()) == counts[path.name]["rows_read"]
    assert (fires["time_utc"] == pd.Timestamp("2022-06-03 04:55", tz="UTC")).all()
    assert (fires["time_bjt"].dt.strftime("%H:%M") == "12:55").all()
    # Every fire pixel holds real Aqua detections: FRP is their sum (stored in tenths of a MW).
    aqua = modis_day[(modis_day["satellite"] == "Aqua") & modis_day["time_utc"].dt.strftime("%H%M").between("0457", "0459")]
    half = 0.005
    for fire in fires.itertuples():
        inside = aqua[(aqua["lon"] - fire.lon).abs().le(half) & (aqua["lat"] - fire.lat).abs().le(half)]
        assert len(inside) >= 1
        assert fire.frp_mw == pytest.approx(inside["frp_mw"].sum(), abs=0.051)
        assert fire.confidence_raw == str(7 + ["low", "nominal", "high"].index(fire.confidence_level))
    assert fires["scan_km"].between(0.9, 0.95).all() and fires["track_km"].round(3).eq(1.106).all()  # 0.01° at 33-35°N


def test_geotiff_in_utm(tmp_path: Path) -> None:
    path = RASTERS / "VNP14IMG.A2019097.0600.002.tif"
    fires, skips, _ = extract(open_scene(path))
    assert not skips and len(fires) == 15
    viirs, _ = read_points(ROOT / "tests/data/fires/VIIRS_I_Global_VNP14IMGTDL_NRT_2019097_ncp-subset.txt")
    viirs = viirs[viirs["time_utc"].dt.strftime("%H%M") == "0600"]
    nearest = km_between(fires["lon"], fires["lat"], viirs["lon"], viirs["lat"]).min(axis=1)
    assert (nearest <= 0.375 / np.sqrt(2) + 0.01).all()  # within the 375 m pixel, whose centre came from UTM 49N
    assert (fires[["scan_km", "track_km"]] == 0.375).all().all()
    assert set(fires["satellite"]) == {"Suomi NPP"} and set(fires["sensor"]) == {"VIIRS"}
    assert fires["cloud_fraction"].between(0, 1).all()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # writing it
def test_geotiff_without_crs_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "MYD14.A2022154.0455.061.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
        dst.write(np.full((1, 4, 4), 5, dtype="uint8"))
    with pytest.raises(RasterError, match=r"MYD14\.A2022154\.0455\.061\.tif: has neither a CRS nor latitude/longitude"):
        open_scene(path)
    lazy = read_raster_fires([path])
    assert lazy.skips[0].file == path.name and "neither a CRS" in lazy.skips[0].reason


def test_truncated_geotiff_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "MYD14.A2022154.0455.061.tif"
    data = (RASTERS / path.name).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    good = tmp_path / "VNP14IMG.A2019097.0600.002.tif"
    shutil.copy(RASTERS / good.name, good)
    fires, skips, _ = read_raster_fires([path, good]).compute(scheduler="sync")
    assert set(fires["source_file"]) == {good.name}
    assert [s.file for s in skips] == [path.name]


# ------------------------------------------------------------------ swath


def test_swath_netcdf(modis_day: pd.DataFrame) -> None:
    path = RASTERS / "MOD14.A2022154.0315.061.nc"
    ds = open_scene(path)
    assert ds["lat"].dims == ("y", "x") and ds.sizes["y"] == 300
    fires, skips, _ = extract(ds)
    assert not skips and len(fires) == 10
    with netCDF4.Dataset(path) as nc:
        lines, samples, power = (nc[v][:] for v in ("FP_line", "FP_sample", "FP_power"))
        lat, lon = nc["latitude"][:], nc["longitude"][:]
    # Positions come from the 2-D geolocation, FRP from the fire-pixel list.
    listed = {(int(r), int(c)): float(p) for r, c, p in zip(lines, samples, power)}
    for fire in fires.itertuples():
        r, c = fire.source_row - 1, fire.source_col - 1
        assert (fire.lat, fire.lon) == pytest.approx((float(lat[r, c]), float(lon[r, c])))
        assert fire.frp_mw == pytest.approx(listed[(r, c)], rel=1e-6)
    terra = modis_day[(modis_day["satellite"] == "Terra") & modis_day["time_utc"].dt.strftime("%H%M").between("0317", "0319")]
    nearest = km_between(fires["lon"], fires["lat"], terra["lon"], terra["lat"]).min(axis=1)
    assert (nearest < 1.0).all()
    # Whisk-broom pixels grow away from nadir (the middle sample).
    off_nadir = (fires["source_col"] - 150.5).abs()
    assert fires["scan_km"].iloc[off_nadir.argmax()] > fires["scan_km"].iloc[off_nadir.argmin()]
    assert fires["scan_km"].between(0.95, 1.55).all() and fires["track_km"].between(0.95, 1.05).all()


def test_swath_without_geolocation_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "MOD14.A2022154.0315.061.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("number_of_lines", 3)
        nc.createDimension("number_of_pixels", 3)
        nc.createVariable("fire mask", "u1", ("number_of_lines", "number_of_pixels"))[:] = 5
    with pytest.raises(RasterError, match=r"MOD14\.A2022154\.0315\.061\.nc: has neither a CRS nor latitude/longitude"):
        open_scene(path)


@pytest.mark.parametrize("name", ["MOD14.A2022154.0315.061.nc", "MYD14.A2022154.0455.061.tif", "H09_20251209_1900_FIRE_MASK_R02.nc"])
def test_blocks_of_rows_give_the_same_fires_as_whole_scans(name: str) -> None:
    path = RASTERS / name
    product = detect_raster(path)

    def read(rows: int) -> pd.DataFrame:
        ds = open_scene(path, rows=rows) if product.layout != "geostationary" else open_scans([path], product, rows=rows)[0]
        return extract(ds)[0].sort_values("fire_id", ignore_index=True)

    whole, split = read(4096), read(7)
    assert len(whole) > 0
    pd.testing.assert_frame_equal(whole, split)  # cloud fractions and pixel sizes at block edges included


# ------------------------------------------------------------------ geostationary


def test_geostationary_scans_open_as_one_lazy_dataset() -> None:
    product = detect_raster(H08[0])
    with raise_if_dask_computes():
        ds, skips = open_scans(list(reversed(H08)), product)
    assert not skips
    assert ds.sizes["time"] == 6 and ds["fire_mask"].dims == ("time", "y", "x")
    assert ds["fire_mask"].chunks[0] == (1,) * 6  # one scan per block: a day is never in memory at once
    assert list(pd.DatetimeIndex(ds["time"].values).strftime("%H%M")) == ["0430", "0440", "0450", "0500", "0510", "0520"]
    assert ds["lat"].values[0] == pytest.approx(35.99) and ds["lon"].values[0] == pytest.approx(116.01)
    assert "fire_high" in ds["fire_mask"].attrs["flag_meanings"]
    assert (ds["read_error"].values == "").all()
    # The Dataset is an analyst's tool too: fire pixels per scan straight from xarray.
    per_scan = (ds["fire_mask"] >= 7).sum(["y", "x"]).values
    fires, _, counts = extract(ds)
    assert list(per_scan) == [counts[p.name]["rows_read"] for p in H08]
    assert fires["frp_mw"].ge(5.0).all()  # the fixture's AHI detection limit


def test_frp_is_read_only_where_there_are_fires(tmp_path: Path, modis_day: pd.DataFrame) -> None:
    """Chunk-wise FRP reads give exactly the values a full read gives at every fire pixel."""
    (path,) = write_geostationary_scans(
        tmp_path, modis_day, start_utc=dt.datetime(2022, 6, 3, 5, 0, tzinfo=dt.timezone.utc), scans=1,
        lon_range=(113.0, 121.0), lat_range=(32.0, 40.0), landcover=ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif",
        chunks=(37, 53),  # many chunks, not aligned with the blocks of rows below
    )
    ds, _ = open_scans([path], detect_raster(path), rows=90)
    frp = ds["frp"].values[0]
    with netCDF4.Dataset(path) as nc:
        mask, full = nc["fire_mask"][:], nc["frp"][:]
    fire = mask >= 7
    assert fire.sum() > 10 and len(np.unique(np.nonzero(fire)[1] // 53)) > 3
    np.testing.assert_array_equal(frp[fire], full[fire])
    assert np.isnan(frp[~fire]).all()


def test_cloud_fraction_counts_the_window_around_each_fire() -> None:
    ds, _ = open_scans(H08, detect_raster(H08[0]))
    fires, _, _ = extract_fires(ds, cloud_window=3).compute(scheduler="sync")
    mask = ds["fire_mask"].values
    times = list(pd.DatetimeIndex(ds["time"].values).tz_localize("UTC"))
    for fire in fires.itertuples():
        t, r, c = times.index(fire.time_utc), fire.source_row - 1, fire.source_col - 1
        window = mask[t, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]
        observed = np.isin(window, [3, 4, 5, 7, 8, 9]).sum()
        assert fire.cloud_fraction == pytest.approx((window == 4).sum() / observed)


def test_scans_of_two_satellites_make_two_stacks() -> None:
    paths = sorted(RASTERS.glob("H0*.nc"))
    fires, skips, _ = read_raster_fires(paths).compute(scheduler="sync")
    assert not skips
    assert set(fires["satellite"]) == {"Himawari-8", "Himawari-9"}


def test_scans_outside_the_day_are_not_read(tmp_path: Path) -> None:
    day = dt.date(2022, 6, 3)
    for p in H08[:2]:
        shutil.copy(p, tmp_path / p.name)
    other = tmp_path / "H08_20220603_1600_FIRE_MASK_R02.nc"  # 00:00 on 06-04, Beijing time
    other.write_bytes(b"not even NetCDF")  # would be skipped if it were opened
    fires, skips, counts = read_raster_fires(sorted(tmp_path.iterdir()), day=day).compute(scheduler="sync")
    assert not skips and counts[other.name] == {"rows_read": 0, "scans_other_dates": 1}
    assert (fires["time_bjt"].dt.date == day).all() and len(fires) > 0


def test_filters_are_counted_per_raster_file() -> None:
    """As for point files: what each filter dropped, per file, adding up to the pixels read."""
    everything, _, counts_all = read_raster_fires(H08).compute(scheduler="sync")
    threshold = float(everything["confidence"].median()) + 0.1  # some pixels are below, some above
    fires, _, counts = read_raster_fires(H08, min_confidence=threshold, bbox=(118.0, 28.0, 123.0, 43.0)).compute(scheduler="sync")
    assert sum(c.get("below_confidence", 0) for c in counts.values()) > 0
    assert sum(c.get("outside_region", 0) for c in counts.values()) > 0
    for name, c in counts.items():
        assert c["rows_read"] == counts_all[name]["rows_read"]
        assert c["rows_read"] == c["rows_kept"] + c.get("outside_region", 0) + c.get("other_dates", 0) + c.get("below_confidence", 0)
    assert sum(c["rows_kept"] for c in counts.values()) == len(fires)


def _broken_stack(tmp_path: Path) -> tuple[list[Path], Path, Path]:
    for p in H08:
        shutil.copy(p, tmp_path / p.name)
    truncated, corrupt = tmp_path / H08[0].name, tmp_path / H08[3].name
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    data = bytearray(corrupt.read_bytes())
    at = int(len(data) * 0.6)  # inside the compressed fire-mask chunks
    data[at : at + 64] = bytes(range(64))
    corrupt.write_bytes(bytes(data))
    return sorted(tmp_path.glob("*.nc")), truncated, corrupt


def test_truncated_and_corrupt_scans_are_skipped_with_their_reason(tmp_path: Path) -> None:
    paths, truncated, corrupt = _broken_stack(tmp_path)
    fires, skips, counts = read_raster_fires(paths).compute(scheduler="sync")
    reasons = {s.file: s.reason for s in skips}
    assert set(reasons) == {truncated.name, corrupt.name}
    assert "cannot open as NetCDF" in reasons[truncated.name]
    assert "cannot read rows" in reasons[corrupt.name] and "HDF error" in reasons[corrupt.name]
    assert set(fires["source_file"]) == {p.name for p in H08} - set(reasons)
    # The rest is intact: the good scans give exactly what they give alone.
    alone, _, _ = read_raster_fires([p for p in paths if p.name not in reasons]).compute(scheduler="sync")
    pd.testing.assert_frame_equal(fires.sort_values("fire_id", ignore_index=True), alone.sort_values("fire_id", ignore_index=True))


def test_an_unreadable_block_is_marked_in_the_dataset(tmp_path: Path) -> None:
    paths, _, corrupt = _broken_stack(tmp_path)
    ds, skips = open_scans(paths, detect_raster(paths[0]))
    assert len(skips) == 1  # the truncated first scan; the next one gave the grid
    t = list(ds["source_file"].values).index(corrupt.name)
    assert (ds["fire_mask"][t].values == UNREADABLE).all()
    assert "HDF error" in ds["read_error"].values[t, 0]


def test_a_scan_on_another_grid_is_skipped(tmp_path: Path) -> None:
    for p in H08[:3]:
        shutil.copy(p, tmp_path / p.name)
    odd = tmp_path / "H08_20220603_0530_FIRE_MASK_R02.nc"
    shutil.copy(RASTERS / "H09_20251209_1900_FIRE_MASK_R02.nc", odd)  # a larger grid, renamed
    _, skips, _ = read_raster_fires(sorted(tmp_path.iterdir())).compute(scheduler="sync")
    assert [s.file for s in skips] == [odd.name] and "expected (200, 200)" in skips[0].reason


# ------------------------------------------------------------------ laziness


def test_extraction_stays_lazy_until_computed() -> None:
    paths = sorted(RASTERS.glob("*.nc")) + sorted(RASTERS.glob("*.tif"))
    with raise_if_dask_computes():
        lazy = read_raster_fires(paths)
        points = lazy.points
    assert points.npartitions >= 3
    with raise_if_dask_computes(max_computes=1):
        computed = points.compute()
    assert len(computed) == sum(1 for _ in computed.itertuples()) > 50


def test_every_product_declares_what_it_needs() -> None:
    for product in RASTER_PRODUCTS:
        assert product.platforms and product.mask
        assert "platform" in product.pattern.kinds and ("start_time" in product.pattern.kinds or product.time_attr)
        if product.layout in ("swath", "geostationary", "fire_list"):
            assert product.latitude and product.longitude
        if product.layout == "fixed_grid":
            assert product.x and product.y
