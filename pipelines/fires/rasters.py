"""Fire pixels of fire-mask rasters, extracted lazily, block by block.

``extract_fires`` turns a Dataset opened by ``readers.rasters`` into fire
points of the common schema (``schema.FIRE_DTYPES``): one dask task per block
of one scan finds the fire pixels of the mask, takes their
FRP, their pixel-centre position in WGS84 and their pixel size, and the cloud
fraction of the ``cloud_window`` × ``cloud_window`` pixels around them. The
blocks overlap by half a window so that the fraction is the same however the
rows are split. Nothing is read before the result is computed.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed
from pyproj import CRS, Transformer

from pipelines.core.schema import empty_fires
from pipelines.core.skips import Skip
from pipelines.fires.load import LazyFires, filter_fires
from pipelines.fires.readers import firelist
from pipelines.fires.readers.geostationary import FixedGrid, to_lonlat
from pipelines.fires.readers.points import LEVEL_SCORE, assemble, bad_frp
from pipelines.fires.readers.products import GEOLOCATION_PRODUCTS
from pipelines.fires.readers.rasters import (
    RasterError,
    RasterProduct,
    _Grid,
    detect_raster,
    open_scans,
    open_scene,
    satellite_of,
    stack_dataset,
    usable_scans,
)
from pipelines.grid.attribution import KM_PER_DEG_LAT, KM_PER_DEG_LON_AT_EQUATOR

LEVELS = ("low", "nominal", "high")


@dataclass(frozen=True)
class _Classes:
    """Lookup tables over the 256 mask values, from the mask's CF flag attributes."""

    level: np.ndarray  # 0 = not fire, 1..3 = index into LEVELS + 1
    cloud: np.ndarray  # bool
    observed: np.ndarray  # bool: fire, cloud, water or land (the pixel was looked at)

    def fire_range(self, mask: np.ndarray) -> np.ndarray:
        """Which pixels are fire: a range test when the fire values are contiguous (a few times faster than a lookup)."""
        values = np.flatnonzero(self.level)
        if len(values) and values[-1] - values[0] + 1 == len(values):
            return (mask >= values[0]) & (mask <= values[-1])
        return self.level[mask] > 0

    @classmethod
    def from_attrs(cls, attrs: dict[str, object]) -> _Classes:
        level = np.zeros(256, dtype=np.int8)
        cloud = np.zeros(256, dtype=bool)
        observed = np.zeros(256, dtype=bool)
        for value, meaning in zip(np.asarray(attrs["flag_values"]).tolist(), str(attrs["flag_meanings"]).split()):
            if meaning.startswith("fire_"):
                level[value] = LEVELS.index(meaning.removeprefix("fire_")) + 1
            cloud[value] = meaning == "cloud"
            observed[value] = meaning in ("cloud", "water", "land") or meaning.startswith("fire_")
        return cls(level, cloud, observed)

    @property
    def has_cloud(self) -> bool:
        return bool(self.cloud.any())


@dataclass(frozen=True)
class _Block:
    """Where a block sits and what is known about it without reading it."""

    file: str
    time_utc: np.datetime64
    satellite: str
    first_row: int
    halo_top: int  # rows of the neighbouring block above, in the mask (and swath lat/lon) given
    halo_bottom: int


# Blocks are assembled into one dataframe partition per this many pixels:
# pandas costs milliseconds per frame, numpy microseconds per block.
PIXELS_PER_PARTITION = 8_000_000


def extract_fires(
    ds: xr.Dataset,
    *,
    cloud_window: int = 5,
    bbox: tuple[float, float, float, float] | None = None,
    day: dt.date | None = None,
    min_confidence: float = 0.0,
) -> LazyFires:
    """Fire pixels of a fire-mask Dataset (``readers.rasters``) as lazy fire points.

    ``cloud_window`` is the side, in pixels (odd), of the square around a fire
    pixel whose cloud share is its ``cloud_fraction`` (cloud pixels over the
    pixels looked at: cloud, water, land, fire). ``bbox`` (WGS84 degrees),
    ``day`` (Beijing date) and ``min_confidence`` (percent) filter as in
    ``load.read_fires``; scans whose time is on another Beijing day are not
    read at all.

    Example::

        scans = sorted(Path("geodata/fires/ahi").glob("*.nc"))
        ds, skipped = open_scans(scans, detect_raster(scans[0]))
        pixels, skips, per_file = extract_fires(ds, cloud_window=5).compute()
    """
    if cloud_window < 1 or cloud_window % 2 == 0:
        raise ValueError(f"cloud_window = {cloud_window}: expected an odd number of pixels >= 1")
    classes = _Classes.from_attrs(ds["fire_mask"].attrs)
    reach = cloud_window // 2 if classes.has_cloud else 0
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    keep = np.ones(len(times), dtype=bool) if day is None else np.asarray(times.tz_convert("Asia/Shanghai").date == day)
    parts = [dask.delayed((empty_fires(), [], [{"file": f, "rows_read": 0, "scans_other_dates": 1}])) for f in ds["source_file"].values[~keep]]
    ds = ds.isel(time=np.flatnonzero(keep))
    if ds.sizes["time"] == 0:
        return LazyFires(parts)

    row_chunks = ds["fire_mask"].chunks[1]
    nblocks = len(row_chunks)
    swath = "lat" in ds.data_vars
    # Neighbouring rows travel with a block only where the scan is split: the
    # cloud window needs `reach` rows, the swath pixel size one.
    halo = max(reach, 1 if swath else 0) if nblocks > 1 else 0
    mask, geo_arrays = ds["fire_mask"].data, None
    if halo:
        mask = da.overlap.overlap(mask, depth={0: 0, 1: halo, 2: 0}, boundary="none")
    masks = mask.to_delayed(optimize_graph=False)
    frps = ds["frp"].data.to_delayed(optimize_graph=False) if "frp" in ds else None
    errors = ds["read_error"].data.to_delayed(optimize_graph=False)
    if swath:
        lat, lon = ds["lat"].data, ds["lon"].data
        if halo:
            lat = da.overlap.overlap(lat, depth={0: halo, 1: 0}, boundary="none")
            lon = da.overlap.overlap(lon, depth={0: halo, 1: 0}, boundary="none")
        geo_arrays = (lat.to_delayed(optimize_graph=False), lon.to_delayed(optimize_graph=False))
    geo = None if swath else _geolocator(ds)
    starts = np.cumsum((0,) + row_chunks)
    labels = (str(ds.attrs["product"]), str(ds.attrs["sensor"]))

    group: list[Delayed] = []
    pixels = 0
    for t in range(ds.sizes["time"]):
        for b in range(nblocks):
            block = _Block(
                file=str(ds["source_file"].values[t]),
                time_utc=ds["time"].values[t],
                satellite=str(ds["satellite"].values[t]),
                first_row=int(starts[b]),
                halo_top=halo if b > 0 else 0,
                halo_bottom=halo if b < nblocks - 1 else 0,
            )
            where = ("swath", geo_arrays[0][b, 0], geo_arrays[1][b, 0], None) if geo_arrays else geo
            frp = None if frps is None else frps[t, b, 0]
            group.append(dask.delayed(_block_pixels)(masks[t, b, 0], frp, errors[t, b], where, block, classes, reach))
            pixels += row_chunks[b] * ds.sizes["x"]
            if pixels >= PIXELS_PER_PARTITION:
                parts.append(dask.delayed(_assemble)(group, labels, (bbox, day, min_confidence)))
                group, pixels = [], 0
    if group:
        parts.append(dask.delayed(_assemble)(group, labels, (bbox, day, min_confidence)))
    return LazyFires(parts)


def _geolocator(ds: xr.Dataset) -> tuple[str, np.ndarray, np.ndarray, object]:
    """How pixel (row, col) maps to a place, for grids: ('latlon', lat, lon, None), ('crs', y, x, wkt)
    or ('fixed', y, x, FixedGrid) for scan angles of a geostationary fixed grid."""
    if "lat" in ds.coords and ds["lat"].ndim == 1:
        return ("latlon", ds["lat"].values, ds["lon"].values, None)
    if "geos_lon0" in ds.attrs:
        a = ds.attrs
        fixed = FixedGrid(float(a["geos_lon0"]), float(a["geos_height"]), float(a["geos_r_eq"]), float(a["geos_r_pol"]), str(a["geos_sweep"]))
        return ("fixed", ds["y"].values, ds["x"].values, fixed)
    if "crs_wkt" in ds.attrs:
        return ("crs", ds["y"].values, ds["x"].values, str(ds.attrs["crs_wkt"]))
    raise RasterError(f"{ds['source_file'].values[0]}: has neither a CRS nor latitude/longitude; cannot place its pixels")


def _block_pixels(
    mask: np.ndarray, frp: np.ndarray | None, read_error: np.ndarray, geo: tuple, block: _Block, classes: _Classes, reach: int,
) -> dict[str, object]:
    """The fire pixels of one block of one scan, as numpy columns (cheap; ``_assemble`` makes frames)."""
    error = str(np.asarray(read_error).ravel()[0])
    if error:
        skip = Skip(block.file, error.removeprefix(f"{block.file}: "))
        return {"block": block, "skips": [skip], "counts": {"file": block.file, "rows_read": 0, "blocks_unreadable": 1}}
    m = mask[0]
    core = m[block.halo_top : m.shape[0] - block.halo_bottom]
    # Fires are sparse: flat indices of a boolean mask are much cheaper than np.nonzero in 2-D.
    flat = np.flatnonzero(classes.fire_range(core))
    rows, cols = np.divmod(flat, core.shape[1])
    out: dict[str, object] = {"block": block, "skips": [], "counts": {"file": block.file}, "rows": rows, "cols": cols}
    if not len(rows):
        return out
    out["value"] = core.ravel()[flat]
    out["level"] = classes.level[out["value"]]
    out["frp"] = np.full(len(rows), np.nan) if frp is None else frp[0][rows, cols].astype("float64")
    out["cloud"] = _cloud_fraction(m, rows + block.halo_top, cols, classes, reach)
    out["lon"], out["lat"], out["scan"], out["track"] = _place(geo, block, rows, cols)
    return out


def _cloud_fraction(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, classes: _Classes, reach: int) -> np.ndarray:
    """Cloud share of the pixels looked at in the (2·reach+1)² window around each pixel; NaN without a cloud class."""
    if not reach:
        return np.full(len(rows), np.nan)
    offsets = np.arange(-reach, reach + 1)
    rr = rows[:, None, None] + offsets[None, :, None]
    cc = cols[:, None, None] + offsets[None, None, :]
    inside = (rr >= 0) & (rr < mask.shape[0]) & (cc >= 0) & (cc < mask.shape[1])
    window = mask[np.clip(rr, 0, mask.shape[0] - 1), np.clip(cc, 0, mask.shape[1] - 1)]
    observed = (classes.observed[window] & inside).sum(axis=(1, 2))
    return (classes.cloud[window] & inside).sum(axis=(1, 2)) / np.maximum(observed, 1)


def _assemble(blocks: list[dict[str, object]], labels: tuple[str, str], filters: tuple) -> tuple[pd.DataFrame, list[Skip], list[dict]]:
    """One dataframe partition from the fire pixels of several blocks."""
    skips = [s for b in blocks for s in b["skips"]]
    found = [b for b in blocks if "level" in b]
    counts = [{"file": b["counts"]["file"], "rows_read": 0, **b["counts"]} for b in blocks if "level" not in b]
    if not found:
        return empty_fires(), skips, counts
    n = [len(b["rows"]) for b in found]

    def cat(key: str) -> np.ndarray:
        return np.concatenate([b[key] for b in found])

    def each(value) -> np.ndarray:  # noqa: ANN001 - a per-block attribute
        return np.repeat(np.array([value(b["block"]) for b in found], dtype=object), n)

    product, sensor = labels
    levels = np.asarray(LEVELS, dtype=object)[cat("level") - 1]
    columns = {
        "time_utc": pd.DatetimeIndex(np.repeat(np.array([b["block"].time_utc for b in found]), n)).tz_localize("UTC"),
        "lon": cat("lon"),
        "lat": cat("lat"),
        "sensor": sensor,
        "satellite": each(lambda b: b.satellite),
        "product": product,
        "confidence": pd.Series(levels).map(LEVEL_SCORE).to_numpy(dtype="float64"),
        "confidence_level": levels,
        "confidence_raw": cat("value").astype(str),
        "frp_mw": cat("frp"),
        "daynight": pd.NA,
        "cloud_fraction": cat("cloud"),
        "scan_km": cat("scan"),
        "track_km": cat("track"),
        "source_file": each(lambda b: b.file),
        "source_row": np.concatenate([b["rows"] + b["block"].first_row + 1 for b in found]),
        "source_col": cat("cols") + 1,
    }
    frame = assemble(columns, pd.RangeIndex(sum(n)))
    unplaced = frame["lon"].isna() | frame["lat"].isna()
    implausible = bad_frp(frame["frp_mw"]) & ~unplaced
    for bad, field, reason in ((unplaced, "latitude", "fire pixel without latitude/longitude"),
                               (implausible, "frp", "FRP is negative or not finite; expected >= 0 MW")):
        lost = frame[bad]
        skips += [Skip(f, reason, row=int(r), field=field) for f, r in zip(lost["source_file"], lost["source_row"])]
    frame = frame[~(unplaced | implausible)].reset_index(drop=True)
    # Filtered file by file, so that run.json says per file what each filter dropped, as for point files.
    read = pd.Series(np.concatenate([np.full(k, b["block"].file, dtype=object) for k, b in zip(n, found)])).value_counts()
    kept_frames = []
    for file, rows_read in read.items():
        kept, dropped = filter_fires(frame[frame["source_file"] == file], *filters)
        kept_frames.append(kept)
        counts.append({**dropped, "file": file, "rows_read": int(rows_read)})
    frame = pd.concat(kept_frames, ignore_index=True) if kept_frames else frame.iloc[:0]
    return frame, skips, counts


def _place(geo: tuple, block: _Block, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """WGS84 lon/lat of the pixel centres and the pixel sizes (km across and along track)."""
    if geo[0] == "latlon":
        _, lat_axis, lon_axis, _ = geo
        lat = lat_axis[rows + block.first_row]
        lon = lon_axis[cols]
        dlat = abs(lat_axis[1] - lat_axis[0]) if lat_axis.size > 1 else np.nan
        dlon = abs(lon_axis[1] - lon_axis[0]) if lon_axis.size > 1 else np.nan
        return lon, lat, dlon * KM_PER_DEG_LON_AT_EQUATOR * np.cos(np.radians(lat)), np.full(len(rows), dlat * KM_PER_DEG_LAT)
    if geo[0] == "fixed":
        _, y_axis, x_axis, fixed = geo
        y, x = y_axis[rows + block.first_row], x_axis[cols]
        lon, lat = to_lonlat(fixed, x, y)
        # Pixel sizes on the ground: the distance between the pixel's opposite edges.
        dx = abs(x_axis[1] - x_axis[0]) if x_axis.size > 1 else np.nan
        dy = abs(y_axis[1] - y_axis[0]) if y_axis.size > 1 else np.nan
        across = _ground_km(*to_lonlat(fixed, x - dx / 2, y), *to_lonlat(fixed, x + dx / 2, y))
        along = _ground_km(*to_lonlat(fixed, x, y - dy / 2), *to_lonlat(fixed, x, y + dy / 2))
        unseen = ~(np.isfinite(lon) & np.isfinite(lat))
        lon, lat = np.where(unseen, np.nan, lon), np.where(unseen, np.nan, lat)
        return lon, lat, across, along
    if geo[0] == "crs":
        _, y_axis, x_axis, wkt = geo
        crs = CRS.from_wkt(wkt)
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x_axis[cols], y_axis[rows + block.first_row])
        to_km = crs.axis_info[0].unit_conversion_factor / 1000
        dx = abs(x_axis[1] - x_axis[0]) * to_km if x_axis.size > 1 else np.nan
        dy = abs(y_axis[1] - y_axis[0]) * to_km if y_axis.size > 1 else np.nan
        return np.asarray(lon), np.asarray(lat), np.full(len(rows), dx), np.full(len(rows), dy)
    _, lat2, lon2, _ = geo
    r = rows + block.halo_top
    lat, lon = lat2[r, cols], lon2[r, cols]
    return lon, lat, _spacing(lat2, lon2, r, cols, axis=1), _spacing(lat2, lon2, r, cols, axis=0)


def _ground_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Distance between nearby points (km), locally flat."""
    mid = np.radians((lat1 + lat2) / 2)
    dlon = (np.asarray(lon2) - lon1 + 180.0) % 360.0 - 180.0
    return np.hypot(dlon * KM_PER_DEG_LON_AT_EQUATOR * np.cos(mid), (lat2 - lat1) * KM_PER_DEG_LAT)


def _spacing(lat: np.ndarray, lon: np.ndarray, r: np.ndarray, c: np.ndarray, axis: int) -> np.ndarray:
    """Distance between neighbouring pixel centres along ``axis`` (km), central where possible."""
    n = lat.shape[axis]
    pos = r if axis == 0 else c
    lo, hi = np.clip(pos - 1, 0, n - 1), np.clip(pos + 1, 0, n - 1)
    steps = np.maximum(hi - lo, 1)
    a = (lo, c) if axis == 0 else (r, lo)
    b = (hi, c) if axis == 0 else (r, hi)
    dy = (lat[b] - lat[a]) * KM_PER_DEG_LAT
    dx = (lon[b] - lon[a]) * KM_PER_DEG_LON_AT_EQUATOR * np.cos(np.radians(lat[r, c]))
    return np.hypot(dx, dy) / steps


def read_raster_fires(
    paths: Sequence[Path],
    *,
    cloud_window: int = 5,
    bbox: tuple[float, float, float, float] | None = None,
    day: dt.date | None = None,
    min_confidence: float = 0.0,
) -> LazyFires:
    """Lazily extract the fire pixels of fire-mask raster files of any declared product.

    Geostationary scans of one product are stacked along time; other files
    are one scene each. Files that cannot be opened, or that no product
    claims, are skipped with the reason; nothing is read until computed.
    Filters as in ``load.read_fires`` (``bbox`` WGS84 degrees, ``day`` a
    Beijing date, ``min_confidence`` percent); pixel centres come out in
    WGS84 whatever the raster's CRS.

    Example::

        rasters = expand_patterns(config.fires.rasters, config.base_dir, day)
        lazy = read_fires(points_files, day=day) + read_raster_fires(rasters, day=day)
        fires, skips, per_file = lazy.compute()   # points and rasters in one dask pass
    """
    skips: list[Skip] = []
    scans: dict[tuple[str, str], list[Path]] = defaultdict(list)
    datasets: list[xr.Dataset] = []
    products = {}
    lists: list[Path] = []
    for path in paths:
        product = detect_raster(path)
        if product is None:
            if any(g.pattern.matches(path.name) for g in GEOLOCATION_PRODUCTS):
                continue  # geolocation (MOD03, VNP03IMG): read for the coverage of its fire granule
            skips.append(Skip(path.name, "not a known fire-mask raster (expected MOD14/MYD14 HDF4, VNP14IMG/VJ114IMG NetCDF, "
                                         "GOES ABI L2 FDC, FY-4 AGRI FHS, or one of gridwatch's test formats)"))
        elif product.layout == "fire_list":
            lists.append(path)
        elif product.layout in ("geostationary", "fixed_grid"):
            # One stack per product and satellite: each satellite scans its own fixed grid.
            try:
                key = (product.name, satellite_of(path, product))
            except RasterError as exc:
                skips.append(Skip(path.name, str(exc).removeprefix(f"{path.name}: ")))
                continue
            scans[key].append(path)
            products[key] = product
        else:
            try:
                datasets.append(open_scene(path, product))
            except RasterError as exc:
                skips.append(Skip(path.name, str(exc).removeprefix(f"{path.name}: ")))
    options = {"cloud_window": cloud_window, "bbox": bbox, "day": day, "min_confidence": min_confidence}
    lazy = LazyFires([firelist.delayed_fires(p, bbox=bbox, day=day, min_confidence=min_confidence) for p in lists], skips=skips)
    for key, files in scans.items():
        usable, grid, stack_skips = usable_scans(files, products[key])
        skips.extend(stack_skips)
        if grid is not None:
            lazy = lazy + _scan_groups(usable, products[key], grid, options)
    for ds in datasets:
        lazy = lazy + extract_fires(ds, **options)
    return lazy


def _scan_groups(files: list[tuple[Path, np.datetime64, str]], product: RasterProduct, grid: _Grid, options: dict) -> LazyFires:
    """A stack of scans as one task per group of whole scans (``PIXELS_PER_PARTITION`` pixels or more).

    Each task opens its scans and extracts their fires itself (``extract_fires``
    run on the synchronous scheduler, inside the task): a day of 144 scans is
    a handful of tasks, not one read, three takes and an extraction per block
    of every scan (over 1,100), and no block leaves the process that read it.
    On a dask.distributed cluster that is what makes it pay (see README,
    Benchmarks); on threads it costs nothing, netCDF decoding holds the GIL.
    The answers are the same rows (``load.dedupe`` orders them).
    """
    pixels = grid.shape[0] * grid.shape[1]
    per_group = max(1, -(-PIXELS_PER_PARTITION // pixels))
    token = dask.base.tokenize([(str(p), t, s) for p, t, s in files], product, grid.shape, options)
    # The grid (coordinates included) goes into the graph once, not into every task.
    shared = dask.delayed(grid, name=f"raster-grid-{token}")
    parts = [
        dask.delayed(_extract_scans, pure=True)(files[i : i + per_group], product, shared, options,
                                                dask_key_name=f"raster-scans-{token}-{i // per_group}")
        for i in range(0, len(files), per_group)
    ]
    return LazyFires(parts)


def _extract_scans(files: list[tuple[Path, np.datetime64, str]], product: RasterProduct, grid: _Grid, options: dict) -> tuple[pd.DataFrame, list[Skip], list[dict]]:
    """Fire pixels of some scans of a stack, read and extracted here, in this process (a task of ``_scan_groups``)."""
    lazy = extract_fires(stack_dataset(files, product, grid), **options)
    (results,) = dask.compute(lazy.parts, scheduler="sync")
    frames = [r[0] for r in results if len(r[0])]
    points = pd.concat(frames, ignore_index=True) if frames else empty_fires()
    return points, lazy.skips + [s for r in results for s in r[1]], [c for r in results for c in r[2]]
