"""Which grid cells the satellites saw on a night: clear, under cloud, or not at all.

A fire product lists fires; its mask also says where the satellite looked and
found none. From every fire mask of the run's day (``[fires] rasters``) this
module counts, per grid cell, the *looks*: one look is one scan or granule
whose pixels (centres in the cell) were looked at. A look is **clear** when
at least half of those pixels were seen clear (land, water or fire) and
**cloudy** otherwise; pixels a product did not process (off the disc, glint,
bad input, desert, space) do not count. A cell small enough to hold no pixel
centre takes the pixel under its representative point (gridded products).

``observed`` is then ``clear`` (at least one clear look: "no fire seen"
means something), ``cloud`` (looked at, only through cloud: "not observed
(cloud)"), ``not_observed`` (no fire mask covered it), or ``unknown`` when
no fire mask was read for the day at all (point products such as FIRMS say
where fires were, not where the satellite looked).

A MOD14/VNP14IMG granule places its mask only with its geolocation granule
(MOD03/VNP03IMG, same platform and start time, among the raster inputs);
without one the granule's class counts are still in run.json, and a skip says
which cells it saw are unknown.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from xarray.backends.locks import HDF5_LOCK

from pipelines.core.schema import BEIJING_TZ
from pipelines.core.skips import Skip
from pipelines.fires.readers import firelist
from pipelines.fires.readers.geostationary import FixedGrid, to_angles, to_lonlat
from pipelines.fires.readers.products import GEOLOCATION_PRODUCTS, RasterProduct
from pipelines.fires.readers.rasters import (
    RasterError,
    _grid_of,
    _open_netcdf,
    _scan_time,
    detect_raster,
    mask_classes,
    open_scene,
    satellite_of,
)
from pipelines.grid.attribution import PointIndex

COVERAGE_COLUMNS = ["observed", "clear_looks", "cloud_looks"]
OBSERVED_LABELS = {
    "clear": "晴空观测 seen clear",
    "cloud": "云遮未观测 not observed (cloud)",
    "not_observed": "未观测 not observed",
    "unknown": "观测情况不明 coverage unknown",
}


@dataclass(frozen=True)
class _Footprint:
    """Which pixels of a mask fall in which cells: flat pixel indices and cell positions (grid order)."""

    pixels: np.ndarray
    cells: np.ndarray


def _footprint(lon: np.ndarray, lat: np.ndarray, grid: gpd.GeoDataFrame, index: PointIndex,
               pixel_of: object = None) -> _Footprint:
    """Pixel centres (2-D lon/lat, degrees) to cells; cells left without a pixel take the one under their point."""
    west, south, east, north = grid.total_bounds
    flat_lon, flat_lat = lon.ravel(), lat.ravel()
    near = np.flatnonzero((flat_lon >= west) & (flat_lon <= east) & (flat_lat >= south) & (flat_lat <= north))
    cell = index.locate(flat_lon[near], flat_lat[near])
    pixels, cells = near[cell >= 0], cell[cell >= 0]
    if pixel_of is not None:
        empty = np.setdiff1d(np.arange(len(grid)), cells)
        if len(empty):
            points = shapely.point_on_surface(grid.geometry.values[empty])
            flat = pixel_of(shapely.get_x(points), shapely.get_y(points))
            ok = flat >= 0
            pixels, cells = np.concatenate([pixels, flat[ok]]), np.concatenate([cells, empty[ok]])
    return _Footprint(pixels.astype(np.int64), cells.astype(np.int64))


def _looks(mask: np.ndarray, foot: _Footprint, product: RasterProduct, ncells: int) -> tuple[np.ndarray, np.ndarray]:
    """(clear look, cloudy look) per cell, booleans, for one mask."""
    state = product.classes.states()[mask.ravel()[foot.pixels]]
    clear = np.bincount(foot.cells[state == 1], minlength=ncells)
    cloud = np.bincount(foot.cells[state == 2], minlength=ncells)
    return (clear > 0) & (clear >= cloud), cloud > clear


def _on_day(when: np.datetime64, day: dt.date | None) -> bool:
    return day is None or pd.Timestamp(when).tz_localize("UTC").tz_convert(BEIJING_TZ).date() == day


def _axis_pixel(axis: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the pixel of an evenly spaced axis (pixel centres) that holds each value; -1 outside."""
    step = (axis[-1] - axis[0]) / (len(axis) - 1) if len(axis) > 1 else 1.0
    i = np.rint((values - axis[0]) / step)
    ok = np.isfinite(i) & (i >= 0) & (i < len(axis))
    return np.where(ok, i, -1).astype(np.int64)


def _stack_footprint(path: Path, product: RasterProduct, grid: gpd.GeoDataFrame, index: PointIndex) -> tuple[_Footprint, tuple[int, int]]:
    """The footprint of a geostationary stack's grid (AHI test scans: 1-D lat/lon; GOES/FY-4: scan angles)."""
    g, _ = _grid_of(path, product)
    rows, cols = g.shape
    if g.fixed is not None:
        fixed: FixedGrid = g.fixed
        y, x = g.coords["y"][1], g.coords["x"][1]
        lon, lat = to_lonlat(fixed, x[None, :], y[:, None])

        def pixel_of(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            ax, ay = to_angles(fixed, px, py)
            r, c = _axis_pixel(y, ay), _axis_pixel(x, ax)
            return np.where((r >= 0) & (c >= 0), r * cols + c, -1)
    else:
        lat_axis, lon_axis = g.coords["lat"][1], g.coords["lon"][1]
        lon, lat = np.broadcast_to(lon_axis[None, :], (rows, cols)), np.broadcast_to(lat_axis[:, None], (rows, cols))

        def pixel_of(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            r, c = _axis_pixel(lat_axis, py), _axis_pixel(lon_axis, px)
            return np.where((r >= 0) & (c >= 0), r * cols + c, -1)
    with np.errstate(invalid="ignore"):
        return _footprint(np.nan_to_num(lon, nan=1e9), np.nan_to_num(lat, nan=1e9), grid, index, pixel_of), (rows, cols)


def _read_scan_mask(path: Path, product: RasterProduct) -> np.ndarray:
    with HDF5_LOCK:
        nc = _open_netcdf(path)
        try:
            var = nc.variables[product.mask]
            return mask_classes(var, var[:])
        finally:
            nc.close()


def grid_coverage(paths: Sequence[Path], grid: gpd.GeoDataFrame, index: PointIndex | None = None,
                  day: dt.date | None = None) -> tuple[pd.DataFrame, list[Skip], dict[str, dict]]:
    """Per grid cell (grid order): ``cell_id``, ``observed``, ``clear_looks``, ``cloud_looks`` from the fire masks of ``day``.

    ``paths``: the run's raster inputs (fire masks and geolocation granules);
    ``day``: Beijing date (None: every scan). ``grid`` in EPSG:4326. Returns
    the table, skips (masks whose cells cannot be known), and per-file counts
    (``looks_in_grid``: cells the file looked at). Never raises for bad input.
    """
    index = index or PointIndex.build(grid.geometry)
    n = len(grid)
    clear_looks, cloud_looks = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    skips: list[Skip] = []
    per_file: dict[str, dict] = {}
    masks_read = 0
    stacks: dict[tuple[str, str], list[tuple[np.datetime64, Path]]] = defaultdict(list)
    products: dict[str, RasterProduct] = {}
    geolocation = [p for p in paths if any(g.pattern.matches(p.name) for g in GEOLOCATION_PRODUCTS)]

    def add(path: Path, mask: np.ndarray, foot: _Footprint, product: RasterProduct) -> None:
        nonlocal masks_read
        clear, cloud = _looks(mask, foot, product, n)
        clear_looks[:] += clear
        cloud_looks[:] += cloud
        masks_read += 1
        per_file[path.name] = {"cells_seen_clear": int(clear.sum()), "cells_seen_cloud": int(cloud.sum())}

    for path in paths:
        product = detect_raster(path)
        if product is None:
            continue
        try:
            if product.layout in ("geostationary", "fixed_grid"):
                when = _scan_time(path, product, lambda: {})
                if _on_day(when, day):
                    stacks[(product.name, satellite_of(path, product))].append((when, path))
                    products[product.name] = product
            elif product.layout == "fire_list":
                when = np.datetime64((product.fields(path) or {}).get("start_time"), "ns")
                if not _on_day(when, day):
                    continue
                geo = firelist.geolocation_for(path, product, geolocation)
                if geo is None:
                    skips.append(Skip(path.name, f"no matching {product.geolocation} granule among the rasters: which grid cells it saw "
                                                 "(clear or cloud) is unknown; its mask counts are in run.json", field="geolocation"))
                    continue
                mask = firelist.read_mask(path, product)
                lat, lon = firelist.read_geolocation(geo, mask.shape)
                add(path, mask, _footprint(np.nan_to_num(lon, nan=1e9), np.nan_to_num(lat, nan=1e9), grid, index), product)
            else:  # gridwatch test formats on an affine grid or with 2-D lat/lon
                ds = open_scene(path, product)
                if not _on_day(ds["time"].values[0], day):
                    continue
                mask = ds["fire_mask"].values[0]
                if "lat" in ds.data_vars:
                    lat, lon = ds["lat"].values, ds["lon"].values
                elif "lat" in ds.coords:
                    lon, lat = np.meshgrid(ds["lon"].values, ds["lat"].values)
                else:
                    continue  # projected GeoTIFF test format: no coverage
                add(path, mask, _footprint(np.nan_to_num(lon, nan=1e9), np.nan_to_num(lat, nan=1e9), grid, index), product)
        except (RasterError, OSError, ValueError, KeyError) as exc:
            skips.append(Skip(path.name, f"coverage: {str(exc).removeprefix(f'{path.name}: ')}"))
    for (name, _), scans in stacks.items():
        product = products[name]
        scans.sort()
        foot, shape = None, None
        for _, path in scans:
            try:
                if foot is None:
                    foot, shape = _stack_footprint(path, product, grid, index)
                mask = _read_scan_mask(path, product)
                if mask.shape != shape:
                    raise RasterError(f"{path.name}: fire mask is {mask.shape}, expected {shape} like the other scans")
                add(path, mask, foot, product)
            except (RasterError, OSError, ValueError, KeyError) as exc:
                skips.append(Skip(path.name, f"coverage: {str(exc).removeprefix(f'{path.name}: ')}"))
    table = pd.DataFrame({"cell_id": grid["cell_id"].to_numpy()})
    if masks_read:
        table["observed"] = np.select([clear_looks > 0, cloud_looks > 0], ["clear", "cloud"], "not_observed")
        table["clear_looks"] = pd.array(clear_looks, dtype="Int64")
        table["cloud_looks"] = pd.array(cloud_looks, dtype="Int64")
    else:
        table["observed"] = "unknown"
        table["clear_looks"] = pd.array([pd.NA] * n, dtype="Int64")
        table["cloud_looks"] = pd.array([pd.NA] * n, dtype="Int64")
    table["observed"] = table["observed"].astype("string")
    return table, skips, per_file


def coverage_line(table: pd.DataFrame) -> str:
    """'晴空观测 seen clear 120 · 云遮未观测 not observed (cloud) 30 · ...' cells, for pages' title lines."""
    counts = table["observed"].value_counts()
    return " · ".join(f"{OBSERVED_LABELS[k]} {int(counts[k])}" for k in OBSERVED_LABELS if k in counts) + " 网格 cells"
