"""Fire-mask rasters of the products declared in ``products.PRODUCTS``, opened lazily as xarray Datasets.

A ``RasterProduct`` says which files it claims (a file-name pattern whose
``platform`` and ``start_time`` fields give the satellite and scan time), where
the fire mask, the FRP and the geolocation live, and what the mask's classes
mean. Four layouts are read here (``fire_list`` granules are ``readers.firelist``):

- ``fixed_grid``: a geostationary fixed grid (GOES ABI L2 FDC, FY-4 AGRI FHS):
  ``y``/``x`` are scan angles in radians (GOES: CF-packed in the file; FY-4:
  from NSMC's line/column indices), placed by ``readers.geostationary``;
- ``geostationary``: gridwatch's AHI test scans on a fixed latitude/longitude grid;
- ``affine``: gridwatch's test GeoTIFFs on an affine grid in any CRS (band
  ``mask`` the fire mask, band ``frp`` the FRP in MW);
- ``swath``: gridwatch's test NetCDF with 2-D latitude/longitude beside the
  mask (not NASA's layout), FRP as a list of fire pixels (line, sample, power).

Scans of a fixed or geostationary grid stack into one Dataset along ``time``.
Every layout opens as a Dataset with dims ``(time, y, x)`` whose variables are
dask arrays in blocks of one scan by ``rows`` rows: nothing is read until it is
computed, and a day is never in memory at once. ``fire_mask`` is uint8 (fill
values and values outside 0-254 read as 0, not looked at) with CF flag
attributes naming its classes. A block that cannot be read holds
``UNREADABLE`` (and NaN in ``frp``), so one bad file never stops a day; the
extraction reports it (see ``pipelines.fires.rasters``).

Geolocation: grids in EPSG:4326 carry 1-D ``lat(y)``/``lon(x)`` pixel-centre
coordinates; other CRSs carry ``y``/``x`` in CRS units and the CRS as WKT in
``attrs["crs_wkt"]``; fixed grids carry ``y``/``x`` scan angles and the
satellite's position in ``attrs["geos_*"]`` (and ``attrs["crs_proj4"]``, in
metres = angle × height); swaths carry 2-D ``lat``/``lon`` data variables.
Times are UTC (``time`` is naive datetime64, UTC by convention).
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dask
import dask.array as da
import netCDF4
import numpy as np
import rasterio
import xarray as xr
from dask.highlevelgraph import HighLevelGraph
from rasterio.crs import CRS
from rasterio.windows import Window
from xarray.backends.locks import HDF5_LOCK

from pipelines.core.exceptions import RasterError
from pipelines.core.skips import Skip
from pipelines.fires.readers.geostationary import FixedGrid, fy4_angles, fy4_grid
from pipelines.fires.readers.products import MODIS_CLASSES, RASTER_PRODUCTS, MaskClasses, RasterProduct

UNREADABLE = 255  # fire_mask value of pixels whose block could not be read
ROWS = 2048  # rows per dask block
LAYOUTS = ("affine", "swath", "geostationary", "fixed_grid")  # read here; "fire_list" is readers.firelist


def detect_raster(path: str | Path) -> RasterProduct | None:
    """The raster product (``products.PRODUCTS``) that claims a file by its name, or None.

    Example::

        product = detect_raster("OR_ABI-L2-FDCC-M6_G17_s20193002001196_e20193002003569_c20193002004132.nc")
        product.name, product.layout        # "GOES ABI L2 FDC", "fixed_grid"
    """
    name = Path(path).name
    return next((p for p in RASTER_PRODUCTS if p.pattern.matches(name)), None)


# ---------------------------------------------------------------- metadata


@dataclass(frozen=True)
class _Grid:
    """What every block read of one file (or stack of scans) must agree on."""

    shape: tuple[int, int]  # rows, columns
    coords: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    crs_wkt: str | None = None  # None: EPSG:4326 (lat/lon coords) or swath (lat/lon arrays)
    fixed: FixedGrid | None = None  # fixed_grid layout: y/x coords are scan angles (radians) of this grid


def satellite_of(path: Path, product: RasterProduct) -> str:
    """The satellite of a file, from the ``platform`` field of its name; raises ``RasterError``."""
    fields = product.fields(path) or {}
    satellite = product.satellite(fields)
    if satellite is None:
        known = ", ".join(p for p, _ in product.platforms)
        raise RasterError(f"{path.name}: cannot tell the satellite from the file name; expected its platform to be one of {known}")
    return satellite


def _scan_time(path: Path, product: RasterProduct, attrs: Callable[[], dict[str, object]]) -> np.datetime64:
    """The scan start (UTC) from the name's ``start_time`` or the attribute ``product.time_attr`` (read when needed)."""
    when = (product.fields(path) or {}).get("start_time")
    if isinstance(when, dt.datetime):
        return np.datetime64(when, "ns")
    if product.time_attr is not None:
        key, fmt = product.time_attr
        raw = attrs().get(key)
        if raw is not None:
            try:
                return np.datetime64(dt.datetime.strptime(str(raw).strip(), fmt), "ns")
            except ValueError:
                raise RasterError(f"{path.name}: scan time {raw!r} does not match the format {fmt!r}") from None
    where = f"the file name ({product.pattern.text})" + (f" or attribute {product.time_attr[0]}" if product.time_attr else "")
    raise RasterError(f"{path.name}: no scan time found; expected it in {where}")


def _netcdf_attrs(path: Path) -> dict[str, object]:
    with HDF5_LOCK:
        nc = _open_netcdf(path)
        try:
            return {k: nc.getncattr(k) for k in nc.ncattrs()}
        finally:
            nc.close()


def _open_netcdf(path: Path) -> netCDF4.Dataset:
    try:
        nc = netCDF4.Dataset(path)
    except OSError as exc:
        raise RasterError(f"{path.name}: cannot open as NetCDF ({exc.strerror or exc})") from None
    nc.set_auto_maskandscale(False)
    return nc


def _variable(nc: netCDF4.Dataset, name: str, path: Path, ndim: int) -> netCDF4.Variable:
    if name not in nc.variables:
        raise RasterError(f"{path.name}: no variable {name!r}; it has {', '.join(sorted(nc.variables)) or 'none'}")
    var = nc.variables[name]
    if var.ndim != ndim:
        raise RasterError(f"{path.name}: variable {name!r} has {var.ndim} dimension(s), expected {ndim}")
    return var


def decoded(var: netCDF4.Variable, values: np.ndarray) -> np.ndarray:
    """CF decoding of raw values (auto mask-and-scale is off): ``_Unsigned``, ``_FillValue`` → NaN, scale and offset; float64."""
    raw = np.asarray(values)
    attrs = {k: var.getncattr(k) for k in var.ncattrs()}
    if str(attrs.get("_Unsigned", "")).lower() == "true" and raw.dtype.kind == "i":
        raw = raw.view(raw.dtype.str.replace("i", "u"))
    out = raw.astype("float64")
    if "_FillValue" in attrs:
        fill = np.asarray(attrs["_FillValue"])
        if fill.dtype.kind == "i" and raw.dtype.kind == "u":
            fill = fill.astype(raw.dtype.str.replace("u", "i")).view(raw.dtype)
        out[raw == fill] = np.nan
    return out * float(attrs.get("scale_factor", 1.0)) + float(attrs.get("add_offset", 0.0))


def mask_classes(var: netCDF4.Variable, values: np.ndarray) -> np.ndarray:
    """A mask read raw as ``uint8`` classes: the fill value and values outside 0-254 become 0 (not looked at)."""
    raw = np.asarray(values)
    if raw.dtype == np.uint8:
        return raw
    valid = (raw >= 0) & (raw < UNREADABLE)
    if "_FillValue" in var.ncattrs():
        valid &= raw != np.asarray(var.getncattr("_FillValue")).astype(raw.dtype)
    return np.where(valid, raw, 0).astype(np.uint8)


# What a CF geostationary grid mapping must say, and the FixedGrid field each fills.
_GRID_MAPPING = {"longitude_of_projection_origin": "lon0", "perspective_point_height": "height",
                 "semi_major_axis": "r_eq", "semi_minor_axis": "r_pol"}


def _fixed_axes(nc: netCDF4.Dataset, path: Path, product: RasterProduct) -> tuple[np.ndarray, np.ndarray, FixedGrid]:
    """Scan angles (radians, y north, x east) of a fixed grid's rows and columns, and the grid.

    With ``product.projection`` the axes are CF projection coordinates in
    radians (GOES ABI) and the grid mapping says where the satellite is;
    without, they are NSMC's line/column indices of the FY-4 nominal disc, at
    the resolution and sub-satellite longitude the file name gives (or the
    file's ``nominal_satellite_subpoint_lon``).
    """
    y_var, x_var = _variable(nc, product.y, path, 1), _variable(nc, product.x, path, 1)
    if product.projection is not None:
        if product.projection not in nc.variables:
            raise RasterError(f"{path.name}: no grid mapping {product.projection!r}; cannot place its pixels")
        mapping = nc.variables[product.projection]
        missing = [k for k in (*_GRID_MAPPING, "sweep_angle_axis") if k not in mapping.ncattrs()]
        if missing:
            raise RasterError(f"{path.name}: {product.projection!r} lacks {', '.join(missing)}; expected a CF geostationary grid mapping")
        fixed = FixedGrid(**{f: float(mapping.getncattr(k)) for k, f in _GRID_MAPPING.items()}, sweep=str(mapping.getncattr("sweep_angle_axis")))
        y, x = decoded(y_var, y_var[:]), decoded(x_var, x_var[:])
        if np.isnan(y).any() or np.isnan(x).any():
            raise RasterError(f"{path.name}: {product.y!r}/{product.x!r} hold fill values; expected scan angles for every row and column")
        return y, x, fixed
    fields = product.fields(path) or {}
    lon0 = None
    if "nominal_satellite_subpoint_lon" in nc.variables:
        value = float(decoded(nc.variables["nominal_satellite_subpoint_lon"], nc.variables["nominal_satellite_subpoint_lon"][...]))
        lon0 = value if -180 <= value <= 180 else None
    if lon0 is None and "subpoint" in fields:
        lon0 = int(fields["subpoint"]) / 10 * (-1 if fields.get("hemisphere") == "W" else 1)
    if lon0 is None:
        raise RasterError(f"{path.name}: no sub-satellite longitude (file name or nominal_satellite_subpoint_lon)")
    try:
        x, y = fy4_angles(str(fields.get("resolution")), np.asarray(y_var[:], dtype="float64"), np.asarray(x_var[:], dtype="float64"))
    except ValueError as exc:
        raise RasterError(f"{path.name}: {exc}") from None
    return y, x, fy4_grid(lon0)


def _no_geolocation(path: Path, product: RasterProduct) -> RasterError:
    what = f"{product.latitude!r}/{product.longitude!r} arrays" if product.latitude else "arrays"
    return RasterError(f"{path.name}: has neither a CRS nor latitude/longitude {what}; cannot place its pixels")


def _grid_of(path: Path, product: RasterProduct) -> tuple[_Grid, dict[str, object]]:
    """The grid of one file and its attributes (tags); raises ``RasterError``."""
    if product.layout == "affine":
        try:
            # A GeoTIFF without georeferencing is reported below, as an error naming the file.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(path) as src:
                    attrs: dict[str, object] = dict(src.tags())
                    crs, transform, shape, count = src.crs, src.transform, src.shape, src.count
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(f"{path.name}: cannot open as GeoTIFF ({exc})") from None
        if crs is None or transform.is_identity:
            raise _no_geolocation(path, product)
        for band in (product.mask, product.frp):
            if band is not None and not 1 <= int(band) <= count:
                raise RasterError(f"{path.name}: no band {band}; the file has {count}")
        rows, cols = shape
        # Pixel centres in the CRS.
        x = transform.c + transform.a * (np.arange(cols) + 0.5)
        y = transform.f + transform.e * (np.arange(rows) + 0.5)
        if CRS.from_user_input(crs).to_epsg() == 4326:
            return _Grid(shape, {"lat": (("y",), y), "lon": (("x",), x)}), attrs
        return _Grid(shape, {"y": (("y",), y), "x": (("x",), x)}, crs.to_wkt()), attrs

    with HDF5_LOCK:
        nc = _open_netcdf(path)
        try:
            attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
            if product.layout == "fixed_grid":
                shape = _variable(nc, product.mask, path, 2).shape
                y, x, fixed = _fixed_axes(nc, path, product)
                if shape != (y.size, x.size):
                    raise RasterError(f"{path.name}: fire mask is {shape}, {product.y}×{product.x} {y.size}×{x.size}")
                return _Grid(shape, {"y": (("y",), y), "x": (("x",), x)}, fixed=fixed), attrs
            if product.layout == "swath":
                mask = _variable(nc, product.mask, path, 2)
                if not (product.latitude in nc.variables and product.longitude in nc.variables):
                    raise _no_geolocation(path, product)
                for name in (product.latitude, product.longitude):
                    if nc.variables[name].shape != mask.shape:
                        raise RasterError(f"{path.name}: {name!r} is {nc.variables[name].shape}, the fire mask {mask.shape}; expected the same 2-D shape")
                return _Grid(mask.shape), attrs
            shape = _variable(nc, product.mask, path, 2).shape
            if not (product.latitude in nc.variables and product.longitude in nc.variables):
                raise _no_geolocation(path, product)
            lat = _variable(nc, product.latitude, path, 1)[:].astype("float64")
            lon = _variable(nc, product.longitude, path, 1)[:].astype("float64")
        finally:
            nc.close()
    if shape != (lat.size, lon.size):
        raise RasterError(f"{path.name}: fire mask is {shape}, latitude×longitude {lat.size}×{lon.size}")
    return _Grid(shape, {"lat": (("y",), _regular(lat, product.latitude, path)), "lon": (("x",), _regular(lon, product.longitude, path))}), attrs


def _regular(axis: np.ndarray, name: str, path: Path) -> np.ndarray:
    """Pixel centres of an evenly spaced axis, rebuilt in float64 (files often store float32)."""
    if axis.size < 2:
        return axis
    step = (axis[-1] - axis[0]) / (axis.size - 1)
    # A thousandth of a pixel: float32 rounding passes, a real irregular axis does not.
    if step == 0 or np.abs(np.diff(axis) - step).max() > 1e-3 * abs(step):
        raise RasterError(f"{path.name}: {name!r} is not evenly spaced; expected a fixed latitude/longitude grid")
    return axis[0] + step * np.arange(axis.size)


# ---------------------------------------------------------------- block reads


def read_block(path: str, product: RasterProduct, grid: _Grid, rows: tuple[int, int]) -> dict[str, np.ndarray]:
    """Rows ``[r0, r1)`` of one file: ``fire_mask``, ``frp`` and, for swaths, ``lat``/``lon``.

    Raises ``RasterError`` naming the file when they cannot be read or the file's
    grid is not ``grid``.
    """
    file = Path(path)
    r0, r1 = rows
    try:
        if product.layout == "affine":
            return _read_geotiff(file, product, grid, r0, r1)
        return _read_netcdf(file, product, grid, r0, r1)
    except RasterError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the decoders means this block is unusable
        raise RasterError(f"{file.name}: cannot read rows {r0}-{r1 - 1}: {type(exc).__name__}: {exc}") from None


def _read_geotiff(file: Path, product: RasterProduct, grid: _Grid, r0: int, r1: int) -> dict[str, np.ndarray]:
    window = Window(0, r0, grid.shape[1], r1 - r0)
    with rasterio.open(file) as src:
        if src.shape != grid.shape:
            raise RasterError(f"{file.name}: grid is {src.shape}, expected {grid.shape}")
        out = {"fire_mask": src.read(int(product.mask), window=window)}
        if product.frp is not None:
            band = int(product.frp)
            frp = src.read(band, window=window).astype("float32")
            if src.nodatavals[band - 1] is not None:
                frp[frp == src.nodatavals[band - 1]] = np.nan
            out["frp"] = frp * np.float32(src.scales[band - 1]) + np.float32(src.offsets[band - 1])
    return out


def _read_netcdf(file: Path, product: RasterProduct, grid: _Grid, r0: int, r1: int) -> dict[str, np.ndarray]:
    # The netCDF C library is not thread-safe: share xarray's lock so our reads
    # and an analyst's xarray reads in the same process never overlap.
    with HDF5_LOCK:
        nc = _open_netcdf(file)
        try:
            mask = _variable(nc, product.mask, file, 2)
            if mask.shape != grid.shape:
                raise RasterError(f"{file.name}: fire mask is {mask.shape}, expected {grid.shape} like the other scans")
            if product.layout == "fixed_grid":
                y, x, fixed = _fixed_axes(nc, file, product)
                same = np.allclose(y[[0, -1]], grid.coords["y"][1][[0, -1]], atol=1e-7) and np.allclose(x[[0, -1]], grid.coords["x"][1][[0, -1]], atol=1e-7)
                if not same or fixed != grid.fixed:
                    raise RasterError(f"{file.name}: fixed grid differs from the first scan's")
            if product.layout == "geostationary":
                expected = (grid.coords["lat"][1][[0, -1]], grid.coords["lon"][1][[0, -1]])
                found = (nc.variables[product.latitude][:][[0, -1]], nc.variables[product.longitude][:][[0, -1]])
                if not all(np.allclose(e, f, atol=1e-4) for e, f in zip(expected, found)):
                    raise RasterError(f"{file.name}: latitude/longitude differ from the first scan's grid")
            out = {"fire_mask": mask_classes(mask, mask[r0:r1, :])}
            if product.frp is not None:
                out["frp"] = _read_at_fires(_variable(nc, product.frp, file, 2), product.classes.is_fire(out["fire_mask"]), r0)
            elif product.frp_list is not None:
                line, sample, power = (np.asarray(_variable(nc, v, file, 1)[:]) for v in product.frp_list)
                frp = np.full((r1 - r0, grid.shape[1]), np.nan, dtype="float32")
                inside = (line >= r0) & (line < r1)
                frp[line[inside] - r0, sample[inside]] = power[inside]
                out["frp"] = frp
            if product.layout == "swath":
                out["lat"] = np.asarray(nc.variables[product.latitude][r0:r1, :], dtype="float64")
                out["lon"] = np.asarray(nc.variables[product.longitude][r0:r1, :], dtype="float64")
        finally:
            nc.close()
    return out


def _read_at_fires(var: netCDF4.Variable, fire: np.ndarray, r0: int) -> np.ndarray:
    """A variable's values at the fire pixels of rows ``r0..`` (NaN elsewhere), float32.

    Only the compressed chunks that hold a fire pixel are decoded: fires are
    sparse, and FRP is most of a scan's bytes.
    """
    out = np.full(fire.shape, np.nan, dtype=np.float32)
    flat = np.flatnonzero(fire)
    if not len(flat):
        return out
    rows, cols = np.divmod(flat, fire.shape[1])
    chunking = var.chunking()
    if chunking == "contiguous":
        chunk_rows, chunk_cols = fire.shape
    else:
        chunk_rows, chunk_cols = chunking
    cells = np.unique(((rows + r0) // chunk_rows) * (1 << 32) + cols // chunk_cols)
    for cell in cells:
        cy, cx = divmod(int(cell), 1 << 32)
        y0, y1 = max(cy * chunk_rows - r0, 0), min((cy + 1) * chunk_rows - r0, fire.shape[0])
        x0, x1 = cx * chunk_cols, min((cx + 1) * chunk_cols, fire.shape[1])
        piece = decoded(var, var[r0 + y0 : r0 + y1, x0:x1]).astype(np.float32)
        inside = fire[y0:y1, x0:x1]
        out[y0:y1, x0:x1][inside] = piece[inside]
    return out


def _read_block_or_fill(path: str, product: RasterProduct, grid: _Grid, rows: tuple[int, int]) -> dict[str, np.ndarray]:
    """``read_block``, or a block marked ``UNREADABLE`` when it fails; ``read_error`` says why ("" when read)."""
    try:
        out = read_block(path, product, grid, rows)
    except RasterError as exc:
        shape = (rows[1] - rows[0], grid.shape[1])
        out = {"fire_mask": np.full(shape, UNREADABLE, dtype="uint8"), "frp": np.full(shape, np.nan, dtype="float32")}
        if product.layout == "swath":
            out["lat"] = out["lon"] = np.full(shape, np.nan)
        out["read_error"] = np.array([[str(exc)]], dtype=object)
        return out
    out["read_error"] = np.array([[""]], dtype=object)
    mask = out["fire_mask"]
    if mask.dtype != np.uint8:
        mask = mask.astype("uint8")
    # The sentinel must only ever mean "unreadable".
    np.putmask(mask, mask == UNREADABLE, 0)
    out["fire_mask"] = mask
    return out


# ---------------------------------------------------------------- Datasets


def _row_windows(n: int, rows: int) -> list[tuple[int, int]]:
    return [(r, min(r + rows, n)) for r in range(0, n, rows)]


_DTYPES = {"fire_mask": np.uint8, "frp": np.float32, "lat": np.float64, "lon": np.float64, "read_error": object}


def _take(block: dict[str, np.ndarray], name: str, scan_axis: bool) -> np.ndarray:
    return block[name][None] if scan_axis else block[name]


def _lazy_arrays(files: Sequence[tuple[Path, np.datetime64, str]], product: RasterProduct, grid: _Grid, rows: int) -> dict[str, da.Array]:
    """The variables of a stack of files as dask arrays: one read task per file and block of rows.

    The graph is built as one layer of reads and one layer per variable taking
    its piece of each read, so that it stays small for a day of scans.
    """
    windows = _row_windows(grid.shape[0], rows)
    token = dask.base.tokenize([(str(p), p.stat().st_mtime_ns) for p, _, _ in files], product, grid.shape, grid.crs_wkt, rows)
    read = f"read-raster-{token}"
    reads = {(read, t, b): (_read_block_or_fill, str(p), product, grid, w) for t, (p, _, _) in enumerate(files) for b, w in enumerate(windows)}
    names = ["fire_mask", "read_error"] + (["frp"] if product.frp or product.frp_list else []) + (["lat", "lon"] if product.layout == "swath" else [])
    row_chunks = tuple(r1 - r0 for r0, r1 in windows)
    specs = {
        # name: (block key suffix, chunks); a swath's lat/lon come from its one file, without the scan axis
        "lat": (lambda t, b: (b, 0), (row_chunks, (grid.shape[1],))),
        "lon": (lambda t, b: (b, 0), (row_chunks, (grid.shape[1],))),
        "read_error": (lambda t, b: (t, b), ((1,) * len(files), (1,) * len(windows))),
    }
    arrays = {}
    for name in names:
        suffix, chunks = specs.get(name, (lambda t, b: (t, b, 0), ((1,) * len(files), row_chunks, (grid.shape[1],))))
        key = f"{name}-{token}"
        scans = range(1) if name in ("lat", "lon") else range(len(files))
        layer = {(key, *suffix(t, b)): (_take, (read, t, b), name, len(chunks) == 3) for t in scans for b in range(len(windows))}
        graph = HighLevelGraph({read: reads, key: layer}, {read: set(), key: {read}})
        arrays[name] = da.Array(graph, key, chunks, meta=np.empty((0,) * len(chunks), dtype=_DTYPES[name]))
    return arrays


def _dataset(files: Sequence[tuple[Path, np.datetime64, str]], product: RasterProduct, grid: _Grid, rows: int) -> xr.Dataset:
    lazy = _lazy_arrays(files, product, grid, rows)
    variables: dict[str, object] = {}
    for name, array in lazy.items():
        if name in ("lat", "lon"):
            variables[name] = (("y", "x"), array)  # a swath is one file: its geolocation has no time
        elif name == "read_error":
            variables[name] = (("time", "row_block"), array, {"long_name": "why a block of rows could not be read; empty when it was"})
        else:
            variables[name] = (("time", "y", "x"), array)
    coords = {
        "time": ("time", np.array([t for _, t, _ in files], dtype="datetime64[ns]"), {"standard_name": "time", "comment": "scan start, UTC"}),
        "source_file": ("time", np.array([p.name for p, _, _ in files], dtype=object)),
        "satellite": ("time", np.array([s for _, _, s in files], dtype=object)),
        "row_block": ("row_block", np.array([r0 for r0, _ in _row_windows(grid.shape[0], rows)]), {"long_name": "first row of each block"}),
        **grid.coords,
    }
    ds = xr.Dataset(variables, coords=coords)
    ds["fire_mask"].attrs.update(product.classes.flags(), long_name="fire mask")
    if "frp" in ds:
        ds["frp"].attrs.update(units="MW", long_name="fire radiative power")
    ds.attrs.update(product=product.name, sensor=product.sensor, layout=product.layout)
    if grid.crs_wkt:
        ds.attrs["crs_wkt"] = grid.crs_wkt
    if grid.fixed:
        # y/x are scan angles (radians); this is where they are seen from (readers.geostationary).
        ds.attrs.update(geos_lon0=grid.fixed.lon0, geos_height=grid.fixed.height, geos_r_eq=grid.fixed.r_eq,
                        geos_r_pol=grid.fixed.r_pol, geos_sweep=grid.fixed.sweep, crs_proj4=grid.fixed.proj4())
    return ds


def open_scene(path: str | Path, product: RasterProduct | None = None, *, rows: int = ROWS) -> xr.Dataset:
    """One GeoTIFF or swath file as a lazy Dataset with a ``time`` dimension of length 1.

    Raises ``RasterError`` naming the file when it is not a usable raster of
    ``product`` (detected from the name when None).
    """
    path = Path(path)
    product = product or detect_raster(path)
    if product is None:
        raise RasterError(f"{path.name}: not a known fire-mask raster product")
    grid, attrs = _grid_of(path, product)
    files = [(path, _scan_time(path, product, lambda: attrs), satellite_of(path, product))]
    return _dataset(files, product, grid, rows)


def open_scans(paths: Sequence[str | Path], product: RasterProduct, *, rows: int = ROWS) -> tuple[xr.Dataset | None, list[Skip]]:
    """Geostationary scans, one file each, as one lazy Dataset along ``time`` (sorted).

    Only the first usable file is opened here, for the grid; the others are
    read when computed and must share that grid (a file that does not, or
    cannot be read, shows as ``UNREADABLE``). Files whose time or satellite
    cannot be told from the name, and repeated scan times, are skipped.
    Returns None for the Dataset when no file is usable.

    Dims ``(time, y, x)``; ``time`` is the scan time in UTC (naive
    datetime64); the grid's coordinates are WGS84 degrees for the AHI
    0.02-degree grid.

    Example::

        scans = sorted(Path("geodata/fires/ahi").glob("*.nc"))
        ds, skipped = open_scans(scans, detect_raster(scans[0]))
        (ds["fire_mask"] >= 7).sum(["y", "x"]).compute()   # fire pixels per scan
    """
    files, grid, skips = usable_scans(paths, product)
    if grid is None:
        return None, skips
    return stack_dataset(files, product, grid, rows), skips


def usable_scans(paths: Sequence[str | Path], product: RasterProduct) -> tuple[list[tuple[Path, np.datetime64, str]], _Grid | None, list[Skip]]:
    """What ``open_scans`` opens: the usable scans as (path, UTC time, satellite), sorted by time,
    their common grid (None when no file is usable) and the files skipped, with why.

    With ``stack_dataset`` this opens any subset of the scans without looking at the files again
    (a dask worker can open its share of a day from these few small objects).
    """
    skips: list[Skip] = []
    scans: dict[np.datetime64, tuple[Path, np.datetime64, str]] = {}
    for path in sorted(Path(p) for p in paths):
        try:
            when, satellite = _scan_time(path, product, lambda p=path: _netcdf_attrs(p)), satellite_of(path, product)
        except (RasterError, OSError) as exc:
            skips.append(Skip(path.name, str(exc).removeprefix(f"{path.name}: ")))
            continue
        if when in scans:
            skips.append(Skip(path.name, f"same scan time as {scans[when][0].name}; kept that one"))
            continue
        scans[when] = (path, when, satellite)
    grid = None
    for when in sorted(scans):
        try:
            grid, _ = _grid_of(scans[when][0], product)
            break
        except RasterError as exc:
            path = scans.pop(when)[0]
            skips.append(Skip(path.name, str(exc).removeprefix(f"{path.name}: ")))
    if grid is None:
        return [], None, skips
    return [scans[t] for t in sorted(scans)], grid, skips


def stack_dataset(files: Sequence[tuple[Path, np.datetime64, str]], product: RasterProduct, grid: _Grid, rows: int = ROWS) -> xr.Dataset:
    """The lazy Dataset of scans found usable by ``usable_scans`` (any subset of them, in time order)."""
    return _dataset(files, product, grid, rows)
