"""Land cover under fire pixels, and cropland area per supervision cell.

A fire's land cover is decided from its whole pixel footprint, not its centre:
the footprint (an axis-aligned rectangle ``scan_km`` × ``track_km`` around the
centre, as ``attribution.footprints``) is sampled on a regular ``samples`` ×
``samples`` grid of points, each looked up in the land-cover raster (any CRS);
the cropland fraction is the share of the valid samples on a cropland class.
With 7 × 7 samples the fraction is exact to about 2 %, for any raster
resolution, and costs a few lookups per fire.

Cropland area per cell: every cropland pixel of the raster is split into
sub-pixels of about 500 m, each attributed to the grid cell holding its centre
and counted with its share of the pixel's area (spherical for geographic
rasters). Areas are in hectares; a cell's figure is within a few per cent of
an exact overlay (sub-pixels cut by its edge), sums over many cells far better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from pyproj import Transformer
from rasterio.windows import Window, from_bounds

from pipelines.core.exceptions import LandCoverError
from pipelines.grid import cache as gridcache
from pipelines.grid.attribution import KM_PER_DEG_LAT, KM_PER_DEG_LON_AT_EQUATOR, PointIndex
from pipelines.grid.cells import CHINA_ALBERS

EARTH_RADIUS_KM = 6371.0088
CHECK_READ_PIXELS = 64_000_000  # rasters up to this size are decoded whole when checked at start
# MODIS MCD12C1 IGBP classes: 1-5 forests, 6-7 shrublands, 8-9 savannas, 10 grasslands, 11 wetlands.
IGBP_CROPLAND = (12, 14)
IGBP_VEGETATION = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


@dataclass(frozen=True)
class LandCover:
    path: Path  # a classified raster (GeoTIFF or anything rasterio opens), any CRS
    cropland: tuple[int, ...] = IGBP_CROPLAND  # classes that are cropland
    vegetation: tuple[int, ...] = IGBP_VEGETATION  # classes of natural vegetation (forest, shrub, grass...)

    def check(self) -> None:
        """Raise ``LandCoverError`` naming the file unless the raster opens, has a CRS and, when
        it is small enough to read whole (China at 0.05° is 1 M pixels), can be decoded."""
        with _open(self) as src:
            if src.width * src.height <= CHECK_READ_PIXELS:
                _read_window(src, np.array(src.bounds[0::2]), np.array(src.bounds[1::2]))


def _open(landcover: LandCover) -> rasterio.io.DatasetReader:
    try:
        src = rasterio.open(landcover.path)
    except rasterio.errors.RasterioIOError as exc:
        raise LandCoverError(f"{landcover.path}: cannot open the land-cover raster ({exc})") from None
    if src.crs is None:
        src.close()
        raise LandCoverError(f"{landcover.path}: the land-cover raster has no CRS")
    return src


def _read_window(src: rasterio.io.DatasetReader, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Window]:
    """The raster band around points (raster CRS), as an array and its window."""
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        return np.zeros((0, 0), dtype=np.int32), Window(0, 0, 0, 0)
    window = from_bounds(x[finite].min(), y[finite].min(), x[finite].max(), y[finite].max(), src.transform)
    window = window.round_offsets().round_lengths()
    window = Window(window.col_off - 1, window.row_off - 1, window.width + 3, window.height + 3)
    window = window.intersection(Window(0, 0, src.width, src.height)) if _overlaps(window, src) else Window(0, 0, 0, 0)
    if not (window.width and window.height):
        return np.zeros((0, 0), np.int32), window
    try:
        return src.read(1, window=window, boundless=False), window
    except rasterio.errors.RasterioError as exc:  # a truncated or corrupt file: blocks that cannot be decoded
        raise LandCoverError(f"{src.name}: cannot read the land-cover raster ({exc})") from None


def _overlaps(window: Window, src: rasterio.io.DatasetReader) -> bool:
    return window.col_off < src.width and window.row_off < src.height and window.col_off + window.width > 0 and window.row_off + window.height > 0


def _classes_at(src: rasterio.io.DatasetReader, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Land-cover class at WGS84 points; -1 outside the raster or on nodata."""
    if src.crs.to_epsg() != 4326:
        lon, lat = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(lon, lat)
        lon, lat = np.asarray(lon), np.asarray(lat)
    values, window = _read_window(src, lon, lat)
    out = np.full(lon.shape, -1, dtype=np.int32)
    if not values.size:
        return out
    inverse = ~src.window_transform(window)
    cols, rows = inverse @ (lon, lat)
    ok = np.isfinite(cols) & np.isfinite(rows)
    cols = np.where(ok, np.floor(cols), -1).astype(np.int64)
    rows = np.where(ok, np.floor(rows), -1).astype(np.int64)
    inside = (rows >= 0) & (rows < values.shape[0]) & (cols >= 0) & (cols < values.shape[1])
    out[inside] = values[rows[inside], cols[inside]]
    if src.nodata is not None:
        out[inside & (out == src.nodata)] = -1
    return out


def cover_fractions(
    lon: np.ndarray, lat: np.ndarray, scan_km: np.ndarray, track_km: np.ndarray, landcover: LandCover, *, samples: int = 7
) -> pd.DataFrame:
    """Per fire pixel: ``cropland_fraction``, ``vegetation_fraction`` (0-1, NaN where no sample
    falls on the raster) and ``landcover_class`` (at the centre; -1 unknown).

    Positions in WGS84 degrees, pixel sizes in km (a missing size counts as 1 km).
    """
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    scan = np.where(np.asarray(scan_km, dtype=float) > 0, scan_km, 1.0)
    track = np.where(np.asarray(track_km, dtype=float) > 0, track_km, 1.0)
    offsets = (np.arange(samples) + 0.5) / samples - 0.5  # pixel-relative, -0.5..0.5
    dx = (offsets[None, :, None] * scan[:, None, None]) / (KM_PER_DEG_LON_AT_EQUATOR * np.cos(np.radians(lat))[:, None, None])
    dy = (offsets[None, None, :] * track[:, None, None]) / KM_PER_DEG_LAT
    sx = np.broadcast_to(lon[:, None, None] + dx, (len(lon), samples, samples)).ravel()
    sy = np.broadcast_to(lat[:, None, None] + dy, (len(lon), samples, samples)).ravel()
    with _open(landcover) as src:
        classes = _classes_at(src, sx, sy).reshape(len(lon), samples * samples)
        centre = _classes_at(src, lon, lat)
    valid = (classes >= 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crop = np.isin(classes, landcover.cropland).sum(axis=1) / valid
        veg = np.isin(classes, landcover.vegetation).sum(axis=1) / valid
    return pd.DataFrame({"cropland_fraction": np.where(valid > 0, crop, np.nan),
                         "vegetation_fraction": np.where(valid > 0, veg, np.nan),
                         "landcover_class": centre})


def cropland_hectares(grid: gpd.GeoDataFrame, landcover: LandCover, index: PointIndex | None = None, *, sub_km: float = 0.5) -> pd.Series:
    """Hectares of cropland in each grid cell (Series indexed by ``cell_id``; every cell, 0 where none).

    ``grid`` in EPSG:4326 with ``cell_id``; ``index`` is ``PointIndex.build(grid.geometry)`` to reuse.
    """
    return land_hectares(grid, landcover, index, sub_km=sub_km)["cropland_ha"]


def land_hectares(grid: gpd.GeoDataFrame, landcover: LandCover, index: PointIndex | None = None, *, sub_km: float = 0.5,
                  cache: Path | None = None) -> pd.DataFrame:
    """Per grid cell (index ``cell_id``): ``cropland_ha``, ``area_ha`` and ``landcover_ha``, in hectares.

    ``area_ha`` is the cell's area (China Albers, equal-area); ``landcover_ha``
    the part of it the raster classifies (not outside its extent, not on its
    nodata), so ``landcover_ha / area_ha`` is the share of the cell where a
    fire's land cover can be known at all. ``grid`` in EPSG:4326.

    ``cache``: a folder (see ``gridcache``) where the answer is kept, keyed by
    the cells (ids and geometry), the raster's bytes, the cropland classes and
    ``sub_km``: computing it takes seconds over a 44k-cell grid, reading it back
    milliseconds.
    """
    key = None
    if cache is not None:
        key = gridcache.digest("land_hectares", LAND_FORMAT, gridcache.geometry_digest(grid.geometry.to_numpy()),
                               grid["cell_id"].astype(str).tolist(), gridcache.file_digest(landcover.path),
                               sorted(landcover.cropland), float(sub_km))
        stored = gridcache.load(cache, "land", key)
        if stored is not None and all(len(stored.get(c, ())) == len(grid) for c in _LAND_COLUMNS):
            return pd.DataFrame({c: stored[c] for c in _LAND_COLUMNS}, index=grid["cell_id"].to_numpy())
    out = _land_hectares(grid, landcover, index, sub_km)
    if key is not None:
        gridcache.store(cache, "land", key, {c: out[c].to_numpy(dtype=np.float64) for c in _LAND_COLUMNS})
    return out


_LAND_COLUMNS = ("cropland_ha", "area_ha", "landcover_ha")
LAND_FORMAT = 1  # version of land_hectares' method, part of its cache key


def _land_hectares(grid: gpd.GeoDataFrame, landcover: LandCover, index: PointIndex | None, sub_km: float) -> pd.DataFrame:
    index = index or PointIndex.build(grid.geometry)
    cells = grid["cell_id"].to_numpy()
    albers = grid.geometry.to_crs(CHINA_ALBERS)
    area_ha = albers.area.to_numpy() / 1e4
    out = pd.DataFrame({"cropland_ha": 0.0, "area_ha": area_ha, "landcover_ha": area_ha}, index=cells)
    if not len(grid):
        return out
    with _open(landcover) as src:
        west, south, east, north = grid.total_bounds
        extent = shapely.box(*src.bounds)
        if src.crs.to_epsg() != 4326:
            xs, ys = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform([west, east, west, east], [south, south, north, north])
            west, east, south, north = min(xs), max(xs), min(ys), max(ys)
        values, window = _read_window(src, np.array([west, east]), np.array([south, north]))
        raster = _Pixels(src.window_transform(window), src.crs.is_geographic,
                         None if src.crs.to_epsg() == 4326 else Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True))
        nodata = src.nodata
        raster_crs = src.crs
    out["cropland_ha"] = raster.hectares(np.isin(values, landcover.cropland), index, len(grid), sub_km)
    # Unclassified: outside the raster's extent, or on its nodata inside it.
    outside = gpd.GeoSeries([extent], crs=raster_crs).to_crs(CHINA_ALBERS).iloc[0]
    beyond = ~albers.within(outside).to_numpy()
    uncovered = np.zeros(len(grid))
    if beyond.any():
        uncovered[beyond] = shapely.area(shapely.difference(albers.to_numpy()[beyond], outside)) / 1e4
    if nodata is not None:
        uncovered += raster.hectares(values == nodata, index, len(grid), sub_km)
    out["landcover_ha"] = np.clip(area_ha - uncovered, 0.0, area_ha)
    return out


@dataclass(frozen=True)
class _Pixels:
    """Where a window of the land-cover raster lies, to turn pixel masks into hectares per cell."""

    transform: rasterio.Affine
    geographic: bool
    to_wgs84: Transformer | None

    def hectares(self, mask: np.ndarray, index: PointIndex, n_cells: int, sub_km: float) -> np.ndarray:
        """Hectares of the ``True`` pixels of ``mask`` in each of ``n_cells`` cells.

        Every pixel is split into k x k sub-pixels of about ``sub_km``, each
        attributed to the cell holding its centre with its share of the pixel's
        area (spherical for geographic rasters).
        """
        rows, cols = np.nonzero(mask)
        if not len(rows):
            return np.zeros(n_cells)
        transform = self.transform
        pixel_w, pixel_h = abs(transform.a), abs(transform.e)
        k = max(1, math.ceil((pixel_h * KM_PER_DEG_LAT if self.geographic else pixel_h / 1000) / sub_km))
        sub = (np.arange(k) + 0.5) / k
        cx = (cols[:, None, None] + sub[None, None, :]) * transform.a + transform.c
        cy = (rows[:, None, None] + sub[None, :, None]) * transform.e + transform.f
        cx, cy = np.broadcast_to(cx, (len(rows), k, k)).ravel(), np.broadcast_to(cy, (len(rows), k, k)).ravel()
        if self.geographic:
            # Spherical area of each sub-pixel: R^2 * dlon * (sin(lat_top) - sin(lat_bottom)).
            half = pixel_h / k / 2
            area_km2 = EARTH_RADIUS_KM**2 * np.radians(pixel_w / k) * np.abs(np.sin(np.radians(cy + half)) - np.sin(np.radians(cy - half)))
        else:
            area_km2 = np.full(cx.shape, pixel_w * pixel_h / k / k / 1e6)
        lon, lat = (cx, cy) if self.to_wgs84 is None else self.to_wgs84.transform(cx, cy)
        cell = index.locate(np.asarray(lon), np.asarray(lat))
        inside = cell >= 0
        return np.bincount(cell[inside], weights=area_km2[inside] * 100.0, minlength=n_cells)
