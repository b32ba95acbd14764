"""Build the fire-mask raster fixtures in this folder, and the sample day in
``geodata/fires/ahi/``, from real detections.

Run from the project root: ``python tests/data/rasters/make_fixtures.py``.
Inputs are project files (real FIRMS / JAXA points and MCD12C1 land cover);
how pixels are made is documented in ``pipelines.testing.products``. Each fixture:

- ``H08_20220603_0430..0520_FIRE_MASK_R02.nc``: 6 AHI-style 10-minute scans,
  0.02°, 116-120°E 32-36°N, from the real MODIS detections of 2022-06-03
  (Beijing date) in ``geodata/fires/``'s 7-day FIRMS file;
- ``H09_20251209_1850..1910_FIRE_MASK_R02.nc``: 3 scans, 0.02°, 115-123°E
  36-42°N, from the real Himawari-9 WLF scan of 2025-12-09 19:00 UTC;
- ``MOD14.A2022154.0315.061.nc``: a MOD14-style Terra swath (300 × 300
  pixels, 1 km at nadir growing to 1.5 km at the edges, heading 192°) centred
  on 114.2°E 36.0°N, from the Terra detections of 03:17-03:19 UTC that day;
- ``MYD14.A2022154.0455.061.tif``: an Aqua fire-mask GeoTIFF, EPSG:4326,
  0.01°, 117-120°E 32-35°N, from the Aqua detections of 04:57-04:59 UTC;
- ``VNP14IMG.A2019097.0600.002.tif``: a Suomi NPP VIIRS fire-mask GeoTIFF
  in UTM 49N (EPSG:32649), 375 m, 150 × 150 km around 113°E 36°N, from the
  real VIIRS detections of 2019-04-07 06:00 UTC in
  ``tests/data/fires/VIIRS_I_Global_VNP14IMGTDL_NRT_2019097_ncp-subset.txt``;
- ``geodata/fires/ahi/H08_*_FIRE_MASK_R02.nc``: the 144 scans of Beijing date
  2022-06-03 (16:00 UTC the day before to 15:50 UTC), 0.02°, 113-121°E
  32-40°N (the core of the North China Plain), from the same MODIS detections.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipelines.fires.load import dedupe
from pipelines.fires.readers import read_points
from pipelines.testing import products as testing

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LANDCOVER = ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif"
UTC = dt.timezone.utc


def main() -> None:
    sample = ROOT / "geodata/fires/ahi"
    for old in list(HERE.glob("*.nc")) + list(HERE.glob("*.tif")) + list(sample.glob("*.nc")):
        old.unlink()
    modis, _ = read_points(ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv")
    modis, _ = dedupe(modis)
    day = modis[modis["time_bjt"].dt.date == dt.date(2022, 6, 3)]
    testing.write_geostationary_scans(
        HERE, day, start_utc=dt.datetime(2022, 6, 3, 4, 30, tzinfo=UTC), scans=6,
        lon_range=(116.0, 120.0), lat_range=(32.0, 36.0), landcover=LANDCOVER, platform="H08", seed=1,
    )
    testing.write_geostationary_scans(
        sample, day, start_utc=dt.datetime(2022, 6, 2, 16, 0, tzinfo=UTC), scans=144,
        lon_range=(113.0, 121.0), lat_range=(32.0, 40.0), landcover=LANDCOVER, platform="H08", seed=6,
    )
    himawari, _ = read_points(ROOT / "geodata/fires/H09_20251209_1900_L2WLF010_FLDK.06001_06001.csv")
    testing.write_geostationary_scans(
        HERE, himawari, start_utc=dt.datetime(2025, 12, 9, 18, 50, tzinfo=UTC), scans=3,
        lon_range=(115.0, 123.0), lat_range=(36.0, 42.0), landcover=LANDCOVER, platform="H09", seed=2,
    )
    terra = day[(day["satellite"] == "Terra") & day["time_utc"].dt.strftime("%H%M").between("0317", "0319")]
    testing.write_swath_netcdf(
        HERE / "MOD14.A2022154.0315.061.nc", terra, centre=(114.2, 36.0), lines=300, samples=300, nadir_km=1.0,
        edge_factor=1.5, heading_deg=192.0, landcover=LANDCOVER, time_utc=dt.datetime(2022, 6, 3, 3, 15, tzinfo=UTC), seed=3,
    )
    aqua = day[(day["satellite"] == "Aqua") & day["time_utc"].dt.strftime("%H%M").between("0457", "0459")]
    testing.write_fire_mask_geotiff(
        HERE / "MYD14.A2022154.0455.061.tif", aqua, bounds=(117.0, 32.0, 120.0, 35.0), resolution=0.01, crs="EPSG:4326",
        landcover=LANDCOVER, time_utc=dt.datetime(2022, 6, 3, 4, 55, tzinfo=UTC), seed=4,
    )
    viirs, _ = read_points(ROOT / "tests/data/fires/VIIRS_I_Global_VNP14IMGTDL_NRT_2019097_ncp-subset.txt")
    viirs = viirs[viirs["time_utc"].dt.strftime("%H%M") == "0600"]
    x0, y0 = 680_000.0, 3_986_000.0  # 113°E 36°N in UTM 49N, rounded
    testing.write_fire_mask_geotiff(
        HERE / "VNP14IMG.A2019097.0600.002.tif", viirs, bounds=(x0 - 75_000, y0 - 75_000, x0 + 75_000, y0 + 75_000),
        resolution=375.0, crs="EPSG:32649", landcover=LANDCOVER, time_utc=dt.datetime(2019, 4, 7, 6, 0, tzinfo=UTC), seed=5,
    )


if __name__ == "__main__":
    main()
