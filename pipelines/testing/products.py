"""Writers of test files: fire-mask rasters and product files built from real detections.

No real fire-mask rasters could be had for this project, so the test fixtures,
the sample day in ``geodata/`` and the benchmark's scans are made here from
real fire points (FIRMS MODIS/VIIRS CSVs, JAXA Himawari WLF) and the real
MODIS MCD12C1 land cover:

- every pixel is ``water`` (3) where MCD12C1 says water (IGBP class 0) and
  ``land`` (5) elsewhere, ``not processed`` (0) outside the land-cover map;
- ``cloud`` (4) where a smooth field of drifting blobs passes a threshold
  (deterministic from ``seed``): plausible, synoptic-scale cloud, never on a
  detected fire pixel (a fire is only seen through clear sky);
- every real detection falls in the pixel that contains it, with the class of
  its confidence (7 low, 8 nominal, 9 high) and its FRP (MW, summed when
  several fall in one pixel).

Geostationary scans also need a fire's life: each real detection burns from
``lead`` before to ``lead + duration`` after its real time (both drawn per fire
from its ``fire_id``, 0-60 and 60-180 minutes), its FRP rising and falling as
a triangle; the geostationary sensor, less sensitive than MODIS, sees it only
above 5 MW.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import rasterio
from pyproj import CRS, Transformer
from rasterio.transform import from_origin

WATER, CLOUD, LAND, NOT_PROCESSED = 3, 4, 5, 0
FIRE_CLASS = {"low": 7, "nominal": 8, "high": 9}
AHI_MIN_FRP_MW = 5.0


# ---------------------------------------------------------------- surfaces


def surface_classes(landcover: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Water/land mask classes at pixel centres (WGS84 degrees, any shape) from MCD12C1 (nearest cell)."""
    with rasterio.open(landcover) as src:
        igbp = src.read(1)
        rows, cols = rasterio.transform.rowcol(src.transform, lon.ravel(), lat.ravel())
        nodata = src.nodata
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < igbp.shape[0]) & (cols >= 0) & (cols < igbp.shape[1])
    values = np.full(rows.shape, 255 if nodata is None else int(nodata), dtype=np.uint8)
    values[inside] = igbp[rows[inside], cols[inside]]
    classes = np.where(values == 0, WATER, LAND).astype(np.uint8)
    classes[(values == nodata) | ~inside] = NOT_PROCESSED
    return classes.reshape(np.shape(lon))


def cloud_mask(lon: np.ndarray, lat: np.ndarray, when: dt.datetime, seed: int, cover: float = 0.25) -> np.ndarray:
    """A smooth cloud field drifting east at ~40 km/h: blobs 50-250 km across; True = cloud."""
    rng = np.random.default_rng(seed)
    n = 40
    x0 = rng.uniform(lon.min() - 5, lon.max() + 5, n)
    y0 = rng.uniform(lat.min() - 2, lat.max() + 2, n)
    size = rng.uniform(0.25, 1.2, n)
    hours = (when - dt.datetime(when.year, when.month, when.day, tzinfo=when.tzinfo)).total_seconds() / 3600
    x0 = x0 + 0.4 * hours
    field = np.zeros(np.shape(lon), dtype=np.float32)
    for x, y, s in zip(x0, y0, size):
        field += np.exp(-(((lon - x) ** 2 + (lat - y) ** 2) / (2 * s * s))).astype(np.float32)
    return field > np.quantile(field, 1 - cover)


def _fire_cells(fires: pd.DataFrame, to_pixel) -> pd.DataFrame:  # noqa: ANN001 - a (lon, lat) -> (row, col) function
    rows, cols = to_pixel(fires["lon"].to_numpy(), fires["lat"].to_numpy())
    cells = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "frp": fires["frp_mw"].fillna(0).to_numpy(),
            "cls": fires["confidence_level"].map(FIRE_CLASS).fillna(FIRE_CLASS["nominal"]).astype(int).to_numpy(),
        }
    )
    return cells.groupby(["row", "col"], as_index=False).agg(frp=("frp", "sum"), cls=("cls", "max"))


def _burn(mask: np.ndarray, frp: np.ndarray, cells: pd.DataFrame) -> None:
    inside = (cells["row"] >= 0) & (cells["row"] < mask.shape[0]) & (cells["col"] >= 0) & (cells["col"] < mask.shape[1])
    c = cells[inside]
    mask[c["row"], c["col"]] = c["cls"]
    frp[c["row"], c["col"]] = c["frp"]


# ---------------------------------------------------------------- GeoTIFF


def write_fire_mask_geotiff(
    path: Path, fires: pd.DataFrame, *, bounds: tuple[float, float, float, float], resolution: float, crs: str,
    landcover: Path, time_utc: dt.datetime, seed: int = 0,
) -> Path:
    """A MODIS/VIIRS-style fire-mask GeoTIFF of one overpass: band 1 mask classes, band 2 FRP (MW, scaled).

    ``bounds`` (left, bottom, right, top) and ``resolution`` are in the units of
    ``crs``; the scan time is written in ``TIFFTAG_DATETIME`` (UTC) and the name.
    """
    left, bottom, right, top = bounds
    cols, rows = round((right - left) / resolution), round((top - bottom) / resolution)
    transform = from_origin(left, top, resolution, resolution)
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs = left + resolution * (np.arange(cols) + 0.5)
    ys = top - resolution * (np.arange(rows) + 0.5)
    lon, lat = to_wgs84.transform(*np.meshgrid(xs, ys))
    mask = surface_classes(landcover, lon, lat)
    mask[cloud_mask(lon, lat, time_utc, seed) & (mask != NOT_PROCESSED)] = CLOUD
    frp = np.zeros(mask.shape, dtype=np.float32)
    from_wgs84 = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def to_pixel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px, py = from_wgs84.transform(x, y)
        return np.floor((top - np.asarray(py)) / resolution).astype(int), np.floor((np.asarray(px) - left) / resolution).astype(int)

    _burn(mask, frp, _fire_cells(fires, to_pixel))
    # One dtype per GeoTIFF: FRP is stored as uint16 tenths of a MW, with GDAL's band scale saying so.
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": 2, "dtype": "uint16", "crs": CRS.from_user_input(crs),
        "transform": transform, "compress": "deflate", "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(mask.astype(np.uint16), 1)
        dst.write(np.round(frp * 10).astype(np.uint16), 2)
        dst.scales = (1.0, 0.1)
        dst.update_tags(TIFFTAG_DATETIME=time_utc.strftime("%Y:%m:%d %H:%M:%S"))
        dst.set_band_description(1, "fire mask")
        dst.set_band_description(2, "FRP (MW)")
    return path


# ---------------------------------------------------------------- swath


def swath_geolocation(
    centre: tuple[float, float], lines: int, samples: int, *, nadir_km: float, edge_factor: float, heading_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D lat/lon of a swath piece: lines along the ground track (``heading_deg`` from north),
    samples across it, pixels ``nadir_km`` at nadir (the middle sample) growing to
    ``edge_factor`` times that at the edges, like a whisk-broom scanner."""
    u = (np.arange(samples) - (samples - 1) / 2) / ((samples - 1) / 2)  # -1 .. 1 across the swath
    growth = 1 + (edge_factor - 1) * u**2
    across = np.concatenate([[0], np.cumsum((growth[1:] + growth[:-1]) / 2)]) * nadir_km
    across -= across[(samples - 1) // 2]
    along = (np.arange(lines) - (lines - 1) / 2) * nadir_km
    a, c = np.meshgrid(along, across, indexing="ij")
    h = np.radians(heading_deg)
    north = a * np.cos(h) - c * np.sin(h)
    east = a * np.sin(h) + c * np.cos(h)
    lat = centre[1] + north / 110.574
    lon = centre[0] + east / (111.320 * np.cos(np.radians(lat)))
    return lat, lon


def write_swath_netcdf(
    path: Path, fires: pd.DataFrame, *, centre: tuple[float, float], lines: int, samples: int, nadir_km: float,
    edge_factor: float, heading_deg: float, landcover: Path, time_utc: dt.datetime, seed: int = 0,
) -> Path:
    """A MOD14/VNP14IMG-style level-2 swath NetCDF: ``fire mask`` (lines × samples), 2-D
    ``latitude``/``longitude``, and the fire-pixel list ``FP_line``/``FP_sample``/``FP_power`` (MW).
    Each real detection falls in the swath pixel whose centre is nearest."""
    lat, lon = swath_geolocation(centre, lines, samples, nadir_km=nadir_km, edge_factor=edge_factor, heading_deg=heading_deg)
    mask = surface_classes(landcover, lon, lat)
    mask[cloud_mask(lon, lat, time_utc, seed) & (mask != NOT_PROCESSED)] = CLOUD
    frp = np.zeros(mask.shape, dtype=np.float32)
    flat_lat, flat_lon = lat.ravel(), lon.ravel()

    def to_pixel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = [], []
        for xi, yi in zip(x, y):
            d = (flat_lat - yi) ** 2 + ((flat_lon - xi) * np.cos(np.radians(yi))) ** 2
            k = int(np.argmin(d))
            far = d[k] > (0.75 * nadir_km * edge_factor / 110.574) ** 2  # beyond the swath edge
            rows.append(-1 if far else k // samples)
            cols.append(-1 if far else k % samples)
        return np.array(rows), np.array(cols)

    _burn(mask, frp, _fire_cells(fires, to_pixel))
    fire_rows, fire_cols = np.nonzero(mask >= FIRE_CLASS["low"])
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("number_of_lines", lines)
        nc.createDimension("number_of_pixels", samples)
        nc.createDimension("fire_pixels", len(fire_rows))
        dims = ("number_of_lines", "number_of_pixels")
        v = nc.createVariable("fire mask", "u1", dims, zlib=True, complevel=4)
        v[:] = mask
        v.long_name = "fire mask pixel classes: 0-2 not processed, 3 water, 4 cloud, 5 land, 6 unknown, 7-9 fire (low, nominal, high)"
        for name, values in (("latitude", lat), ("longitude", lon)):
            # Quantized to 1e-4° (11 m), far below a pixel, so the fixture stays small.
            v = nc.createVariable(name, "f4", dims, zlib=True, complevel=4, least_significant_digit=4)
            v[:] = values
            v.units = "degrees_north" if name == "latitude" else "degrees_east"
        for name, values, kind in (("FP_line", fire_rows, "i4"), ("FP_sample", fire_cols, "i4"), ("FP_power", frp[fire_rows, fire_cols], "f4")):
            v = nc.createVariable(name, kind, ("fire_pixels",))
            v[:] = values
        nc["FP_power"].units = "MW"
        nc.setncattr("StartTime", time_utc.strftime("%Y-%m-%d %H:%M:%S"))
        nc.setncattr("history", "gridwatch test fixture built from real FIRMS detections (pipelines.testing)")
    return path


# ---------------------------------------------------------------- geostationary


def _fire_life(fire_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per fire, minutes it starts before its real detection and minutes it burns (from its id)."""
    h = np.array([int(hashlib.sha1(str(f).encode()).hexdigest()[:8], 16) for f in fire_ids], dtype=np.int64)
    return (h % 61).astype(float), (60 + (h // 61) % 121).astype(float)


def write_geostationary_scans(
    folder: Path, fires: pd.DataFrame, *, start_utc: dt.datetime, scans: int, lon_range: tuple[float, float],
    lat_range: tuple[float, float], landcover: Path, resolution: float = 0.02, platform: str = "H08",
    minutes: int = 10, seed: int = 0, chunks: tuple[int, int] = (200, 250),
) -> list[Path]:
    """``scans`` AHI-style scans, one NetCDF each, every ``minutes`` from ``start_utc``, on a fixed
    ``resolution``° grid (``fire_mask`` uint8 and ``frp`` float32 MW, zlib-compressed in
    ``chunks`` like real products; 1-D ``latitude`` north to south and ``longitude``).

    ``fires`` are real detections (``lon``, ``lat``, ``frp_mw``, ``time_utc``,
    ``fire_id``); each burns around its real time as the module docstring says.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lat = lat_range[1] - resolution * (np.arange(round((lat_range[1] - lat_range[0]) / resolution)) + 0.5)
    lon = lon_range[0] + resolution * (np.arange(round((lon_range[1] - lon_range[0]) / resolution)) + 0.5)
    glon, glat = np.meshgrid(lon, lat)
    surface = surface_classes(landcover, glon, glat)
    lead, duration = _fire_life(fires["fire_id"])
    real = fires["time_utc"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    begin = real - (lead * 60e9).astype("timedelta64[ns]")
    end = begin + (duration * 60e9).astype("timedelta64[ns]")
    peak_frp = fires["frp_mw"].fillna(10.0).to_numpy()
    rows = np.floor((lat_range[1] - fires["lat"].to_numpy()) / resolution).astype(int)
    cols = np.floor((fires["lon"].to_numpy() - lon_range[0]) / resolution).astype(int)
    paths = []
    for i in range(scans):
        when = start_utc + dt.timedelta(minutes=minutes * i)
        t = np.datetime64(when.replace(tzinfo=None), "ns")
        burning = (begin <= t) & (t < end)
        phase = (t - begin[burning]) / (end[burning] - begin[burning])
        frp_now = peak_frp[burning] * (1 - np.abs(2 * phase - 1))
        seen = frp_now >= AHI_MIN_FRP_MW
        mask = surface.copy()
        mask[cloud_mask(glon, glat, when, seed) & (mask != NOT_PROCESSED)] = CLOUD
        frp = np.zeros(mask.shape, dtype=np.float32)
        cells = pd.DataFrame({"row": rows[burning][seen], "col": cols[burning][seen], "frp": frp_now[seen]})
        cells = cells.groupby(["row", "col"], as_index=False)["frp"].sum()
        cells["cls"] = np.select([cells["frp"] >= 50, cells["frp"] >= 15], [9, 8], 7)
        _burn(mask, frp, cells)
        path = folder / f"{platform}_{when:%Y%m%d_%H%M}_FIRE_MASK_R{round(resolution * 100):02d}.nc"
        _write_scan(path, mask, frp, lat, lon, when, platform, chunks)
        paths.append(path)
    return paths


def _write_scan(path: Path, mask: np.ndarray, frp: np.ndarray, lat: np.ndarray, lon: np.ndarray, when: dt.datetime,
                platform: str, chunks: tuple[int, int]) -> None:
    chunks = (min(chunks[0], len(lat)), min(chunks[1], len(lon)))
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("latitude", len(lat))
        nc.createDimension("longitude", len(lon))
        for name, values, units in (("latitude", lat, "degrees_north"), ("longitude", lon, "degrees_east")):
            v = nc.createVariable(name, "f4", (name,))
            v[:] = values
            v.units = units
        v = nc.createVariable("fire_mask", "u1", ("latitude", "longitude"), zlib=True, complevel=4, shuffle=True, chunksizes=chunks)
        v[:] = mask
        v.flag_values = np.array([0, 3, 4, 5, 7, 8, 9], dtype=np.uint8)
        v.flag_meanings = "not_processed water cloud land fire_low fire_nominal fire_high"
        v = nc.createVariable("frp", "f4", ("latitude", "longitude"), zlib=True, complevel=4, shuffle=True, chunksizes=chunks)
        v[:] = frp
        v.units = "MW"
        nc.platform = {"H08": "Himawari-8", "H09": "Himawari-9"}.get(platform, platform)
        nc.instrument = "AHI"
        nc.time_coverage_start = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        nc.history = "gridwatch fixture: real detections gridded on a fixed grid (pipelines.testing)"


# ---------------------------------------------------------------- agencies' layouts, for readers without a real file
#
# No real VNP14IMG, VNP03IMG, MOD03 or FY-4 FHS file could be had (see
# ../shared/data/fires/real_products/README.md). These writers build files to
# the published layouts (variable names, types, dimensions, attributes, class
# values), with fire pixels at real detections; the README says which readers
# were only tested on such files.


def write_vnp14img(path: Path, fires: pd.DataFrame, lat: np.ndarray, lon: np.ndarray, cloud_rows: slice = slice(0, 0)) -> pd.DataFrame:
    """A VNP14IMG/VJ114IMG granule (NetCDF4, VIIRS active fire user guide layout) holding ``fires`` (real detections).

    ``lat``/``lon`` (2-D, degrees) are the granule's geolocation (what its
    VNP03IMG holds): each fire goes to the nearest pixel; the mask is non-fire
    land (5), cloud (4) on ``cloud_rows``, and 7/8/9 at the fires. Returns the
    fires with the ``line``/``sample`` they were written to.
    """
    rows, cols = lat.shape
    flat = np.array([np.argmin((lat - y) ** 2 + (lon - x) ** 2) for x, y in zip(fires["lon"], fires["lat"])], dtype=np.int64)
    line, sample = np.divmod(flat, cols)
    mask = np.full((rows, cols), LAND, dtype=np.uint8)
    mask[cloud_rows] = CLOUD
    conf = fires["confidence_level"].map(FIRE_CLASS).fillna(FIRE_CLASS["nominal"]).astype(np.uint8).to_numpy()
    mask[line, sample] = conf
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("phony_dim_0", rows)
        nc.createDimension("phony_dim_1", cols)
        nc.createDimension("phony_dim_2", len(fires))
        m = nc.createVariable("fire mask", "u1", ("phony_dim_0", "phony_dim_1"), zlib=True)
        m.legend = ("Classes:\n0 not-processed (non-zero QF)\n1 bowtie\n2 glint\n3 water\n4 clouds\n5 clear land\n"
                    "6 unclassified fire pixel\n7 low confidence fire pixel\n8 nominal confidence fire pixel\n9 high confidence fire pixel")
        m[:] = mask
        qa = nc.createVariable("algorithm QA", "u4", ("phony_dim_0", "phony_dim_1"), zlib=True)
        qa[:] = 0
        for name, kind, values, units in (
            ("FP_latitude", "f4", fires["lat"].to_numpy(), "degrees"),
            ("FP_longitude", "f4", fires["lon"].to_numpy(), "degrees"),
            ("FP_line", "i2", line, ""),
            ("FP_sample", "i2", sample, ""),
            ("FP_power", "f4", fires["frp_mw"].fillna(0).to_numpy(), "MW"),
            ("FP_confidence", "u1", conf, ""),
            ("FP_T4", "f4", np.full(len(fires), 340.0), "kelvins"),
            ("FP_day", "u1", (fires["daynight"] == "D").astype(np.uint8).to_numpy(), ""),
        ):
            var = nc.createVariable(name, kind, ("phony_dim_2",))
            var[:] = values
            if units:
                var.units = units
        nc.FirePix = np.int32(len(fires))
        nc.CloudPix = np.int32((mask == CLOUD).sum())
        nc.LandPix = np.int32(mask.size)
        nc.PlatformShortName = "SUOMI-NPP"
    return fires.assign(line=line, sample=sample)


def write_vnp03img(path: Path, lat: np.ndarray, lon: np.ndarray) -> None:
    """A VNP03IMG geolocation granule (NetCDF4): ``geolocation_data/latitude`` and ``longitude`` (degrees, float32)."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("number_of_lines", lat.shape[0])
        nc.createDimension("number_of_pixels", lat.shape[1])
        group = nc.createGroup("geolocation_data")
        for name, values, bound in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
            var = group.createVariable(name, "f4", ("number_of_lines", "number_of_pixels"), zlib=True, fill_value=-999.9)
            var.units = "degrees_north" if name == "latitude" else "degrees_east"
            var.valid_min, var.valid_max = np.float32(-bound), np.float32(bound)
            var[:] = values


def write_mod03(path: Path, lat: np.ndarray, lon: np.ndarray) -> None:
    """A MOD03/MYD03 geolocation granule (HDF4 SDS ``Latitude``/``Longitude``, float32 degrees, fill -999)."""
    from pyhdf.SD import SD, SDC  # noqa: PLC0415

    sd = SD(str(path), SDC.WRITE | SDC.CREATE | SDC.TRUNC)
    try:
        for name, values, units in (("Latitude", lat, "degrees"), ("Longitude", lon, "degrees")):
            sds = sd.create(name, SDC.FLOAT32, lat.shape)
            sds.dim(0).setname("nscans*10")
            sds.dim(1).setname("mframes")
            sds.units = units
            sds._FillValue = np.float32(-999.0)
            sds[:] = values.astype(np.float32)
            sds.endaccess()
    finally:
        sd.end()


def write_fy4_fhs(path: Path, fires: pd.DataFrame, lon0: float = 104.7, resolution: str = "4000M",
                  cloud: np.ndarray | None = None) -> pd.DataFrame:
    """An FY-4A/B AGRI L2 FHS full disc (NetCDF, NSMC's layout) with ``fires`` (real detections) as class 10.

    ``FHS`` is NC_SHORT on the nominal disc (fill 0, valid 0-250, space 65535
    stored as -1), ``x``/``y`` the column/line indices, ``DQF`` a byte, and
    the nominal sub-satellite point as variables. Land (100) where the disc
    sees the Earth, cloud (200) where ``cloud`` (a function of lon, lat) says.
    Returns the fires with the line/column they were written to.
    """
    from pipelines.fires.readers.geostationary import FY4_NOMINAL, fy4_angles, fy4_grid, to_angles, to_lonlat  # noqa: PLC0415

    offset, factor = FY4_NOMINAL[resolution]
    n = int(2 * offset + 1)
    grid = fy4_grid(lon0)
    lines, cols = np.arange(n), np.arange(n)
    x, y = fy4_angles(resolution, lines, cols)
    lon, lat = to_lonlat(grid, x[None, :], y[:, None])
    fhs = np.where(np.isfinite(lon), 100, -1).astype(np.int16)  # -1 = 65535 as NC_SHORT: space
    if cloud is not None:
        fhs[np.isfinite(lon) & cloud(np.nan_to_num(lon), np.nan_to_num(lat))] = 200
    ax, ay = to_angles(grid, fires["lon"].to_numpy(), fires["lat"].to_numpy())
    step = np.radians(2.0**16 / factor)
    col = np.rint(ax / step + offset).astype(int)
    line = np.rint(offset - ay / step).astype(int)
    fhs[line, col] = 10
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("y", n)
        nc.createDimension("x", n)
        for name, values, long_name in (("y", lines, "FY4A fixed grid projection Y-coordinate"), ("x", cols, "FY4A fixed grid projection X-coordinate")):
            var = nc.createVariable(name, "f4", (name,))
            var.long_name = long_name
            var[:] = values
        var = nc.createVariable("FHS", "i2", ("y", "x"), zlib=True, fill_value=np.int16(0))
        var.long_name = "FY4A PGS L2 Fire/Hot Spot Characterization"
        var.valid_range = np.array([0, 250], dtype=np.int16)
        var.scale_factor, var.add_offset = np.float32(1.0), np.float32(0.0)
        var.units = "none"
        var.resolution = resolution
        var.coordinates = "x y"
        var.ancillary_variables = "DQF"
        var.description = ("150:desert,153:water,200:cloud01,205:cloud02,210:cloud03,215:cloud04,220:cloud05,65535:space,40:fillvalue,"
                           "100:land,10:fire point,50:satallite zenithangle>80,60:flare angle<30,126:BT3.9um<200K,127:BT10.8um<200K")
        nc.set_auto_maskandscale(False)
        var[:] = fhs
        dqf = nc.createVariable("DQF", "i1", ("y", "x"), zlib=True, fill_value=np.int8(127))
        dqf[:] = 0
        for name, value, units in (("nominal_satellite_subpoint_lat", 0.0, "degrees_north"),
                                   ("nominal_satellite_subpoint_lon", lon0, "degrees_east"),
                                   ("nominal_satellite_height", 35786.0, "km")):
            v = nc.createVariable(name, "f4")
            v.units = units
            v[...] = value
        nc.dataset_name, nc.title, nc.platform_ID = "FHS", "FY4A AGRI L2 FHS", path.name[:4]
    return fires.assign(line=line, column=col)
