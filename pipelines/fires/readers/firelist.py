"""Level-2 swath granules that list their fire pixels: MODIS MOD14/MYD14 (HDF4), VIIRS VNP14IMG/VJ114IMG (NetCDF4).

NASA's fire granules carry the fire mask of every pixel but geolocation only
for the fire pixels, in the ``FP_*`` arrays (one entry per fire pixel):
``FP_line``/``FP_sample`` (0-based position in the mask), ``FP_latitude``/
``FP_longitude`` (degrees), ``FP_power`` (FRP, MW) and ``FP_confidence``
(MOD14: percent 0-100; VNP14IMG: the mask class 7/8/9). Fires are read from
those arrays; the mask's class counts (cloud, land, water, not processed)
say what the granule saw, and, placed on the ground by the matching
geolocation granule (MOD03 / VNP03IMG, same platform and start time), which
grid cells it saw (``pipelines.fires.coverage``).

MOD14 was tested on a real granule; VNP14IMG only on a file built to the
VIIRS active-fire user guide's layout (tests/data/real_products/SOURCES.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd
from dask.delayed import Delayed

from pipelines.core.schema import empty_fires
from pipelines.core.skips import Skip
from pipelines.fires.load import filter_fires
from pipelines.fires.readers.points import LEVEL_SCORE, assemble, bad_frp, level_from_score
from pipelines.fires.readers.products import GEOLOCATION_PRODUCTS, GeolocationProduct, RasterProduct, product_named
from pipelines.fires.readers.rasters import UNREADABLE, RasterError, detect_raster

EARTH_RADIUS_KM = 6371.0
VIIRS_CLASSES = {7: "low", 8: "nominal", 9: "high"}


class Granule:
    """Read access to one HDF4 or NetCDF4 file: variables by name (``group/name`` in NetCDF), global attributes."""

    def __init__(self, path: Path, file_format: str) -> None:
        self.path, self.format = path, file_format
        try:
            if file_format == "hdf4":
                from pyhdf.error import HDF4Error  # noqa: PLC0415
                from pyhdf.SD import SD, SDC  # noqa: PLC0415 - only HDF4 products need it

                try:
                    self._sd = SD(str(path), SDC.READ)
                except HDF4Error as exc:
                    raise RasterError(f"{path.name}: cannot open as HDF4 ({exc})") from None
            else:
                import netCDF4  # noqa: PLC0415

                try:
                    self._nc = netCDF4.Dataset(path)
                except OSError as exc:
                    raise RasterError(f"{path.name}: cannot open as NetCDF ({exc.strerror or exc})") from None
                self._nc.set_auto_maskandscale(False)
        except ImportError as exc:
            raise RasterError(f"{path.name}: no reader for {file_format} installed ({exc})") from None

    def __enter__(self) -> Granule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.format == "hdf4":
            self._sd.end()
        else:
            self._nc.close()

    def names(self) -> list[str]:
        if self.format == "hdf4":
            return list(self._sd.datasets())
        return list(self._nc.variables)

    def _nc_var(self, name: str):  # noqa: ANN202 - netCDF4.Variable
        node = self._nc
        *groups, leaf = name.split("/")
        for g in groups:
            if g not in node.groups:
                return None
            node = node.groups[g]
        return node.variables.get(leaf)

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of a variable; raises ``RasterError`` naming the file when it is not there."""
        if self.format == "hdf4":
            if name not in self._sd.datasets():
                raise RasterError(f"{self.path.name}: no dataset {name!r}")
            info = self._sd.select(name).info()
            dims = info[2] if isinstance(info[2], list) else [info[2]]
            return tuple(int(d) for d in dims)
        var = self._nc_var(name)
        if var is None:
            raise RasterError(f"{self.path.name}: no variable {name!r}")
        return tuple(var.shape)

    def read(self, name: str, rows: slice | None = None) -> np.ndarray:
        """A variable's raw values (no scaling); ``rows`` slices the first dimension."""
        shape = self.shape(name)
        if 0 in shape:  # HDF4 cannot read an empty dataset
            return np.empty(shape)
        rows = rows or slice(None)
        if self.format == "hdf4":
            return np.asarray(self._sd.select(name)[rows])
        return np.asarray(self._nc_var(name)[rows])

    def attrs(self) -> dict[str, object]:
        if self.format == "hdf4":
            return dict(self._sd.attributes())
        return {k: self._nc.getncattr(k) for k in self._nc.ncattrs()}


@dataclass(frozen=True)
class MaskCounts:
    """What a granule's mask saw: pixel counts per state (``products.MaskClasses.states``)."""

    pixels: int
    clear: int  # land, water or fire: seen, no cloud
    cloud: int
    fire: int

    def as_counts(self) -> dict[str, object]:
        """For run.json's per-file entry; ``cloud_share`` is cloud over the pixels looked at."""
        looked = self.clear + self.cloud
        counts: dict[str, object] = {"mask_pixels": self.pixels, "mask_clear": self.clear, "mask_cloud": self.cloud,
                                     "mask_fire": self.fire, "mask_not_observed": self.pixels - looked}
        if looked:  # no share of nothing: left out rather than a made-up 0
            counts["cloud_share"] = round(self.cloud / looked, 4)
        return counts


def mask_counts(mask: np.ndarray, product: RasterProduct) -> MaskCounts:
    state = product.classes.states()[mask]
    fire = int(product.classes.is_fire(mask).sum())
    return MaskCounts(int(mask.size), int((state == 1).sum()), int((state == 2).sum()), fire)


def read_mask(path: Path, product: RasterProduct) -> np.ndarray:
    """The whole fire mask of a granule as uint8 classes (values outside 0-254 read as 0)."""
    with Granule(path, product.file_format) as g:
        if len(g.shape(product.mask)) != 2:
            raise RasterError(f"{path.name}: {product.mask!r} is not 2-D")
        raw = g.read(product.mask)
    if raw.dtype == np.uint8:
        return np.where(raw == UNREADABLE, 0, raw).astype(np.uint8)
    return np.where((raw >= 0) & (raw < UNREADABLE), raw, 0).astype(np.uint8)


def geolocation_for(path: Path, product: RasterProduct, candidates: list[Path]) -> Path | None:
    """The geolocation granule among ``candidates`` with the same platform and start time as ``path``."""
    if product.geolocation is None:
        return None
    geo: GeolocationProduct = product_named(product.geolocation)  # type: ignore[assignment]
    mine = product.fields(path) or {}
    for c in candidates:
        theirs = geo.fields(c)
        if theirs and theirs.get("platform") == mine.get("platform") and theirs.get("start_time") == mine.get("start_time"):
            return c
    return None


def read_geolocation(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees, float64; NaN where filled) of every pixel, from a geolocation granule."""
    geo = next((g for g in GEOLOCATION_PRODUCTS if g.pattern.matches(path.name)), None)
    if geo is None:
        raise RasterError(f"{path.name}: not a known geolocation product (MOD03/MYD03, VNP03IMG/VJ103IMG)")
    with Granule(path, geo.file_format) as g:
        lat, lon = (g.read(v).astype("float64") for v in (geo.latitude, geo.longitude))
    if lat.shape != tuple(shape) or lon.shape != tuple(shape):
        raise RasterError(f"{path.name}: latitude/longitude are {lat.shape}, the fire mask {tuple(shape)}; expected the same")
    bad = ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    lat[bad], lon[bad] = np.nan, np.nan
    return lat, lon


def pixel_km(sample: np.ndarray, product: RasterProduct) -> tuple[np.ndarray, np.ndarray]:
    """Pixel size across and along track (km) at a scan position.

    MODIS samples the scan at a constant angle (nadir size / altitude): the
    footprint grows with the slant range along track and with the slant
    range and the Earth's curvature across. VIIRS aggregates detector samples
    differently across the scan to hold its pixels near their nadir size, and
    its granules give no per-pixel size: its nadir size is used.
    """
    sample = np.asarray(sample, dtype="float64")
    nadir = float(product.nadir_km or np.nan)
    if product.sensor != "MODIS" or not (product.orbit_km and product.samples):
        return np.full(sample.shape, nadir), np.full(sample.shape, nadir)
    step = nadir / product.orbit_km
    theta = (sample - (product.samples - 1) / 2) * step
    r = EARTH_RADIUS_KM + product.orbit_km
    root = np.sqrt(EARTH_RADIUS_KM**2 - (r * np.sin(theta)) ** 2)
    slant = r * np.cos(theta) - root
    across = EARTH_RADIUS_KM * step * (r * np.cos(theta) / root - 1)
    return across, slant * step


def read_fires(path: Path, product: RasterProduct) -> tuple[pd.DataFrame, list[Skip], dict[str, object]]:
    """The listed fire pixels of one granule (``schema.FIRE_DTYPES``), skips, and the mask's counts.

    Every pixel gets the granule start time from the file name (UTC; a MODIS
    granule lasts 5 minutes). Raises ``RasterError`` when the granule cannot
    be used at all.
    """
    fields = product.fields(path) or {}
    satellite = product.satellite(fields)
    when = fields.get("start_time")
    if satellite is None or not isinstance(when, dt.datetime):
        raise RasterError(f"{path.name}: cannot tell the satellite and start time from the file name ({product.pattern.text})")
    line_var, sample_var, power_var = product.frp_list or ("", "", "")
    names = [line_var, sample_var, product.latitude, product.longitude, power_var, product.confidence]
    with Granule(path, product.file_format) as g:
        missing = [n for n in names if n and n not in g.names() and "/" not in n]
        if missing:
            raise RasterError(f"{path.name}: no {', '.join(missing)}; expected the fire-pixel list of {product.name}")
        lists = {n: g.read(n).ravel() for n in names if n}
        mask_shape = g.shape(product.mask)
    sizes = {len(v) for v in lists.values()}
    if len(sizes) > 1:
        raise RasterError(f"{path.name}: the FP_* arrays differ in length ({sorted(sizes)}); expected one entry per fire pixel")
    counts = mask_counts(read_mask(path, product), product).as_counts()
    n = sizes.pop() if sizes else 0
    if n == 0:
        return empty_fires(), [], counts
    lat, lon = lists[product.latitude].astype("float64"), lists[product.longitude].astype("float64")
    frp = lists[power_var].astype("float64")
    raw_conf = lists[product.confidence].astype("int64")
    if product.sensor == "VIIRS":
        level = pd.Series(pd.Series(raw_conf).map(VIIRS_CLASSES), dtype="string")
        score = level.map(LEVEL_SCORE).astype("float64")
    else:
        score = pd.Series(raw_conf.astype("float64")).where((raw_conf >= 0) & (raw_conf <= 100))
        level = level_from_score(score)
    line, sample = lists[line_var].astype("int64"), lists[sample_var].astype("int64")
    across, along = pixel_km(sample, product)
    index = pd.RangeIndex(n)
    columns = {
        "time_utc": pd.Series(pd.Timestamp(when, tz="UTC"), index=index, dtype="datetime64[ns, UTC]"),
        "lon": lon, "lat": lat, "sensor": product.sensor, "satellite": satellite, "product": product.name,
        "confidence": score.to_numpy(), "confidence_level": level.to_numpy(), "confidence_raw": raw_conf.astype(str),
        "frp_mw": frp, "daynight": pd.NA, "scan_km": across, "track_km": along, "source_file": path.name,
        "source_row": line + 1, "source_col": sample + 1,
    }
    checks = [
        ("FP_latitude", ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180)), "fire pixel without a valid latitude/longitude"),
        ("FP_line", ~((line >= 0) & (line < mask_shape[0]) & (sample >= 0) & (sample < mask_shape[1])), "fire pixel outside the fire mask"),
        ("FP_confidence", level.isna().to_numpy(), "confidence is not a percentage (MODIS) or 7/8/9 (VIIRS)"),
        ("FP_power", bad_frp(pd.Series(frp)).to_numpy(), "FRP is negative or not finite; expected >= 0 MW"),
    ]
    bad = np.zeros(n, dtype=bool)
    skips = []
    for field, wrong, reason in checks:
        new = np.asarray(wrong, dtype=bool) & ~bad
        skips += [Skip(path.name, reason, row=int(i) + 1, field=field) for i in np.flatnonzero(new)]
        bad |= new
    return assemble(columns, index, ~bad), skips, counts


def _read_filtered(path: str, bbox: tuple | None, day: dt.date | None, min_confidence: float) -> tuple[pd.DataFrame, list[Skip], list[dict]]:
    file = Path(path)
    product = detect_raster(file)
    when = (product.fields(file) or {}).get("start_time")
    if day is not None and isinstance(when, dt.datetime) and pd.Timestamp(when, tz="UTC").tz_convert("Asia/Shanghai").date() != day:
        return empty_fires(), [], [{"file": file.name, "rows_read": 0, "scans_other_dates": 1}]
    try:
        frame, skips, mask = read_fires(file, product)
    except (RasterError, OSError, ValueError) as exc:
        return empty_fires(), [Skip(file.name, str(exc).removeprefix(f"{file.name}: "))], [{"file": file.name, "rows_read": 0}]
    frame, counts = filter_fires(frame, bbox, day, min_confidence)
    return frame, skips, [{"file": file.name, **counts, **mask}]


def delayed_fires(path: Path, *, bbox: tuple | None = None, day: dt.date | None = None, min_confidence: float = 0.0) -> Delayed:
    """``(fires, skips, [counts])`` of one granule, read when computed (a ``load.LazyFires`` part)."""
    return dask.delayed(_read_filtered)(str(path), bbox, day, min_confidence, dask_key_name=f"read-firelist-{Path(path).name}")
