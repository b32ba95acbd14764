"""Persistent heat sources, learnt from where fires recur on many distinct days.

Steel plants, coke ovens, power plants, cement kilns, gas flares and landfills
burn every day and show up as satellite fire pixels; China's straw-burning
reports remove these "persistent heat sources" before counting field fires.
Lists of plants are never complete, so we also learn them from history.

Method
------
1. Every fire pixel centre (``lon``/``lat``, WGS84 degrees) is projected to
   China Albers equal-area (``cells.CHINA_ALBERS``, metres) and falls into one
   *history cell*: a square of ``cell_m`` metres (default 500 m) on a fixed
   lattice with its origin at Albers (0, 0). Cell ``(ix, iy)`` covers
   ``ix * cell_m <= x < (ix + 1) * cell_m`` (same for y); its id is
   ``"P{ix}_{iy}"``. The lattice never moves, so ids are stable across runs
   and histories can be merged.
2. The history keeps, per cell, the distinct **Beijing dates** (Asia/Shanghai,
   UTC+8) on which a pixel centre fell in it, and how many pixels fell there
   on each of those dates.
3. On run date D, a place is *persistent* when the cell and its
   ``neighbourhood`` ring of cells (1 = the 3 x 3 block, 1.5 km x 1.5 km for
   500 m cells) together had fire on at least ``min_days`` distinct dates in
   ``[D - window_days, D)``. The neighbourhood absorbs the wobble of pixel
   centres around one source: MODIS pixels are ~1 km and VIIRS ~375 m at
   nadir, and geolocation differs between overpasses, so one chimney's fires
   scatter over neighbouring 500 m cells.

Why strictly before D: the nightly run of D may add D's own fires to the
history afterwards (``merge``); counting only earlier days means running D
again gives the same answer whether or not D was merged already, and no fire
ever counts towards its own flag (a field burning on D is judged only by
earlier days).

Pixel counts are bookkeeping only (the rule uses dates). ``merge`` keeps, per
cell and date, the *larger* of the stored and the new pixel count (new fires
deduplicated by ``fire_id`` first), which makes merging idempotent: merging the
same fires (or an overlapping 24 h / 7 d export of them) twice changes nothing.
Its price: a day's fires split over two merges count only the larger part, so
merge a day's fires in one call (``build_history`` reads everything at once).

Storage (``write``/``read``): GeoParquet 1.1, one row per cell with
``cell_id``, ``ix``, ``iy`` (int64), ``dates`` (list<date32>, sorted),
``date_fires`` (list<int64>, pixels on each of those dates), ``fires`` (int64,
their sum) and ``geometry`` (the cell square, EPSG:4326). The schema metadata
key ``gridwatch`` holds ``{"kind": "fire_history", "cell_m": ..., "crs": ...}``
so that ``read`` can tell a history from any other parquet and refuse another
lattice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from pyproj import CRS, Transformer

from pipelines.core.exceptions import PersistentError
from pipelines.core.outputs import atomic_path, shared_lock
from pipelines.core.schema import BEIJING_TZ, WGS84
from pipelines.core.skips import Skip
from pipelines.fires.readers import read_points
from pipelines.grid.cells import CHINA_ALBERS

__all__ = ["FireHistory", "PersistenceRule", "PersistentError", "build_history", "cell_index"]

METADATA_KEY = b"gridwatch"
HISTORY_KIND = "fire_history"
FORMAT_VERSION = 1
_EPOCH = dt.date(1970, 1, 1).toordinal()  # dates are kept as int64 days since 1970-01-01
_INT32 = 2**31  # cell indices must fit int32 so a cell packs into one int64 key
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class PersistenceRule:
    """When a place counts as a persistent heat source on run date D.

    ``min_days``: distinct Beijing dates with fire in the cell's neighbourhood;
    ``window_days``: days counted, ``[D - window_days, D)``, strictly before D;
    ``neighbourhood``: rings of cells counted with a cell (0 = the cell alone,
    1 = 3 x 3 cells, n = (2n + 1)^2 cells).
    """

    min_days: int = 4
    window_days: int = 365
    neighbourhood: int = 1

    def __post_init__(self) -> None:
        # Config files give numbers as floats (4.0); accept whole values, refuse 4.5.
        for name, least in (("min_days", 1), ("window_days", 1), ("neighbourhood", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"PersistenceRule.{name} = {value!r}: expected a whole number >= {least}")
            if not float(value).is_integer():
                raise ValueError(f"PersistenceRule.{name} = {value!r}: expected a whole number >= {least}")
            if value < least:
                unit = "cells" if name == "neighbourhood" else "days"
                raise ValueError(f"PersistenceRule.{name} = {value!r}: expected a whole number of {unit} >= {least}")
            object.__setattr__(self, name, int(value))


class FireHistory:
    """Per history cell (a square of ``cell_m`` metres on a fixed China Albers
    lattice), the distinct Beijing dates on which a fire pixel centre fell in
    it, and how many pixels.

    Immutable: ``merge`` returns a new history. Internally one row per
    (cell, date): arrays ``ix``, ``iy`` (cell indices), ``day`` (days since
    1970-01-01, Beijing date) and ``pixels``, sorted by (ix, iy, day).
    """

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays inside; compare with ==

    def __init__(self, cell_m: float, ix: np.ndarray, iy: np.ndarray, day: np.ndarray, pixels: np.ndarray) -> None:
        """Low level: prefer ``from_fires``, ``read`` or ``build_history``.

        The arrays (one entry per cell and date) must be unique on (ix, iy, day).
        """
        self.cell_m = _check_cell_m(cell_m)
        order = np.lexsort((day, iy, ix))
        self._ix = np.asarray(ix, dtype=np.int64)[order]
        self._iy = np.asarray(iy, dtype=np.int64)[order]
        self._day = np.asarray(day, dtype=np.int64)[order]
        self._pixels = np.asarray(pixels, dtype=np.int64)[order]
        for a in (self._ix, self._iy, self._day, self._pixels):
            a.flags.writeable = False

    # -- building -----------------------------------------------------------------

    @classmethod
    def from_fires(cls, fires: pd.DataFrame, cell_m: float = 500.0) -> FireHistory:
        """A history of ``fires`` (``lon``/``lat`` in WGS84 degrees; ``time_bjt`` or
        ``time_utc``; ``fire_id`` optional), on cells of ``cell_m`` metres.

        Rows without a position or time are left out; repeated ``fire_id`` count once.
        """
        return cls._empty(cell_m).merge(fires)

    def merge(self, fires: pd.DataFrame) -> FireHistory:
        """A new history with ``fires`` added (same columns as ``from_fires``).

        Per cell and date the pixel count becomes the larger of the stored and
        the new count (``fires`` deduplicated by ``fire_id``), so merging the
        same fires twice changes nothing; dates are a set union.
        """
        ix, iy, day, pixels = _cell_days(fires, self.cell_m)
        ix = np.concatenate([self._ix, ix])
        iy = np.concatenate([self._iy, iy])
        day = np.concatenate([self._day, day])
        pixels = np.concatenate([self._pixels, pixels])
        if not len(ix):
            return FireHistory(self.cell_m, ix, iy, day, pixels)
        # Sort so that equal (cell, day) rows are adjacent, then keep the max pixels of each run.
        order = np.lexsort((day, iy, ix))
        ix, iy, day, pixels = ix[order], iy[order], day[order], pixels[order]
        start = np.r_[True, (ix[1:] != ix[:-1]) | (iy[1:] != iy[:-1]) | (day[1:] != day[:-1])]
        starts = np.flatnonzero(start)
        return FireHistory(self.cell_m, ix[starts], iy[starts], day[starts], np.maximum.reduceat(pixels, starts))

    @classmethod
    def _empty(cls, cell_m: float) -> FireHistory:
        none = np.zeros(0, dtype=np.int64)
        return cls(cell_m, none, none, none, none)

    # -- reading and writing -------------------------------------------------------

    @classmethod
    def read(cls, path: Path, cell_m: float | None = None) -> FireHistory:
        """Read a history written by ``write``.

        Raises ``PersistentError`` naming ``path`` when the file is missing,
        unreadable, not a fire history, damaged, or (when ``cell_m``, metres, is
        given) built on cells of another size.
        """
        path = Path(path)
        if not path.exists():
            raise PersistentError(f"{path}: fire history not found (build it with `gridwatch persistent` / build_history)")
        if path.is_dir():
            raise PersistentError(f"{path}: is a directory, not a fire history file")
        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...: all mean "not a parquet file"
            raise PersistentError(f"{path}: not a fire history (cannot read it as Parquet: {exc})") from exc
        meta = _history_metadata(path, schema)
        stored_m = meta["cell_m"]
        if cell_m is not None and not np.isclose(float(cell_m), stored_m, rtol=0, atol=1e-9):
            raise PersistentError(
                f"{path}: fire history has cells of {stored_m:g} m, but {float(cell_m):g} m were asked for; "
                "rebuild the history with the new cell size"
            )
        missing = [c for c in ("ix", "iy", "dates", "date_fires") if c not in schema.names]
        if missing:
            raise PersistentError(f"{path}: fire history lacks column(s) {', '.join(missing)}")
        try:
            table = pq.read_table(path, columns=["ix", "iy", "dates", "date_fires"])
            dates = table["dates"].combine_chunks()
            counts = table["date_fires"].combine_chunks()
            lengths = pc.list_value_length(dates).to_numpy(zero_copy_only=False)
            if not np.array_equal(lengths, pc.list_value_length(counts).to_numpy(zero_copy_only=False)):
                raise ValueError("dates and date_fires differ in length")
            day = dates.flatten().cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
            pixels = counts.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            ix = np.repeat(table["ix"].to_numpy().astype(np.int64), lengths)
            iy = np.repeat(table["iy"].to_numpy().astype(np.int64), lengths)
        except Exception as exc:  # wrong types, nulls, truncated file
            raise PersistentError(f"{path}: damaged fire history: {exc}") from exc
        history = cls(stored_m, ix, iy, day, pixels)
        h_ix, h_iy, h_day = history._ix, history._iy, history._day
        if np.any((h_ix[1:] == h_ix[:-1]) & (h_iy[1:] == h_iy[:-1]) & (h_day[1:] == h_day[:-1])):
            raise PersistentError(f"{path}: damaged fire history: a cell is stored twice or lists a date twice")
        return history

    def write(self, path: Path) -> None:
        """Write the history as GeoParquet (see the module docstring), atomically.

        The file appears complete or not at all (``outputs.atomic_path``, flushed to disk).
        """
        table = self._to_arrow()
        with atomic_path(path, fsync=True) as partial:
            pq.write_table(table, partial, compression="zstd")

    @classmethod
    def add_to_file(cls, path: Path, fires: pd.DataFrame, cell_m: float = 500.0) -> FireHistory:
        """Add ``fires`` to the history stored at ``path`` (made if missing) and return what was written.

        Read, merged and written under the file's cross-process lock
        (``outputs.shared_lock``): two nights finishing at once both land,
        whatever each read when it started. An unreadable file raises
        ``PersistentError`` and is left as it is for a person to look at.
        """
        with shared_lock(path):
            current = cls.read(path) if Path(path).exists() else None
            updated = current.merge(fires) if current is not None else cls.from_fires(fires, cell_m)
            updated.write(path)
        return updated

    def to_frame(self) -> gpd.GeoDataFrame:
        """The history as stored: one row per cell (EPSG:4326 squares), ``dates`` as lists of ``datetime.date``."""
        table = self._to_arrow()
        frame = table.drop_columns(["geometry"]).to_pandas()
        frame["cell_id"] = frame["cell_id"].astype("string")
        geometry = shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=WGS84), crs=WGS84)

    # -- using ---------------------------------------------------------------------

    def flag(self, fires: pd.DataFrame, day: dt.date, rule: PersistenceRule = PersistenceRule()) -> pd.DataFrame:
        """Which ``fires`` (``lon``/``lat``, WGS84) lie at a persistent heat source on run date ``day``.

        Returns a frame with the index of ``fires`` and columns ``persistent``
        (bool), ``persistent_days`` (int64: distinct Beijing dates with fire in
        the fire's cell and its neighbourhood within ``[day - window_days, day)``)
        and ``persistent_cell`` (string: the fire's history cell id; <NA> without
        a position). The fires' own dates play no part.
        """
        for column in ("lon", "lat"):
            if column not in fires.columns:
                raise PersistentError(f"fires to flag lack column '{column}' (WGS84 degrees)")
        ix, iy, ok = _cells(fires["lon"].to_numpy(dtype=float, na_value=np.nan),
                            fires["lat"].to_numpy(dtype=float, na_value=np.nan), self.cell_m)
        days = np.zeros(len(fires), dtype=np.int64)
        ids = pd.array([pd.NA] * len(fires), dtype="string")
        if ok.any():
            keys = _key(ix[ok], iy[ok])
            unique, inverse = np.unique(keys, return_inverse=True)
            uix, uiy = _unkey(unique)
            found = self._neighbourhood(day, rule, targets=unique)
            per_cell = np.zeros(len(unique), dtype=np.int64)  # no history nearby: 0 days
            if len(found.key):
                at = np.minimum(np.searchsorted(found.key, unique), len(found.key) - 1)
                per_cell = np.where(found.key[at] == unique, found.days[at], 0)
            days[ok] = per_cell[inverse]
            ids[ok] = _cell_ids(uix, uiy)[inverse]
        return pd.DataFrame(
            {"persistent": days >= rule.min_days, "persistent_days": days, "persistent_cell": ids},
            index=fires.index,
        )

    def mask(self, day: dt.date, rule: PersistenceRule = PersistenceRule()) -> gpd.GeoDataFrame:
        """The cells where ``flag`` would call a fire persistent on run date ``day``.

        This includes cells with no fire of their own next to a persistent
        source (their neighbourhood has enough days), so the mask covers every
        flagged fire. Columns: ``cell_id``, ``days`` (int64, as
        ``persistent_days``), ``first_date``/``last_date`` (``datetime.date``, the
        first and last of those dates), ``fires`` (int64, pixels in the
        neighbourhood on those dates), ``geometry`` (the cell square, EPSG:4326).
        """
        found = self._neighbourhood(day, rule, targets=None)
        keep = found.days >= rule.min_days
        key = found.key[keep]
        ix, iy = _unkey(key)
        frame = pd.DataFrame({
            "cell_id": pd.array(_cell_ids(ix, iy), dtype="string"),
            "days": found.days[keep],
            "first_date": _dates(found.first[keep]),
            "last_date": _dates(found.last[keep]),
            "fires": found.fires[keep],
        })
        return gpd.GeoDataFrame(frame, geometry=_squares(ix, iy, self.cell_m), crs=WGS84)

    def __len__(self) -> int:
        """Number of cells with at least one fire."""
        if not len(self._ix):
            return 0
        return int(np.count_nonzero(np.r_[True, (self._ix[1:] != self._ix[:-1]) | (self._iy[1:] != self._iy[:-1])]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FireHistory):
            return NotImplemented
        return self.cell_m == other.cell_m and all(
            np.array_equal(a, b) for a, b in zip(self._arrays, other._arrays)
        )

    def __repr__(self) -> str:
        span = ""
        if len(self._day):
            first, last = _dates(np.array([self._day.min(), self._day.max()]))
            span = f", dates {first}..{last}"
        return f"FireHistory({len(self)} cells of {self.cell_m:g} m, {len(self._day)} cell-dates{span})"

    @property
    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self._ix, self._iy, self._day, self._pixels

    # -- internals -----------------------------------------------------------------

    def _neighbourhood(self, day: dt.date, rule: PersistenceRule, targets: np.ndarray | None) -> _Counts:
        """Per cell, distinct dates (and first/last date, pixels) in its neighbourhood within the window.

        ``targets`` (sorted cell keys) limits the work to the history around
        those cells; ``None`` counts around every cell of the history.
        """
        end = _day_number(day)  # exclusive: the run date itself never counts
        inside = (self._day >= end - rule.window_days) & (self._day < end)
        ix, iy, d, px = self._ix[inside], self._iy[inside], self._day[inside], self._pixels[inside]
        n = rule.neighbourhood
        offsets = np.arange(-n, n + 1, dtype=np.int64)
        dx, dy = (a.ravel() for a in np.meshgrid(offsets, offsets))
        # Each (cell, date) counts for every cell within n of it ("dilation"),
        # then distinct dates per receiving cell: (2n + 1)^2 rows per cell-date.
        k = _key((ix[None, :] + dx[:, None]).ravel(), (iy[None, :] + dy[:, None]).ravel())
        d, px = np.tile(d, len(dx)), np.tile(px, len(dx))
        if targets is not None and len(targets) and len(k):
            # Keep only the receivers asked about (sorted search: no hashing of all receivers).
            at = np.minimum(np.searchsorted(targets, k), len(targets) - 1)
            wanted = targets[at] == k
            k, d, px = k[wanted], d[wanted], px[wanted]
        return _summarise(k, d, px)

    def _to_arrow(self) -> pa.Table:
        """The stored form (module docstring) with GeoParquet and gridwatch metadata."""
        n_rows = len(self._ix)
        new_cell = np.r_[True, (self._ix[1:] != self._ix[:-1]) | (self._iy[1:] != self._iy[:-1])] if n_rows else np.zeros(0, bool)
        starts = np.flatnonzero(new_cell)
        offsets = pa.array(np.r_[starts, n_rows].astype(np.int32), pa.int32())
        ix, iy = self._ix[starts], self._iy[starts]
        fires = np.add.reduceat(self._pixels, starts) if n_rows else np.zeros(0, np.int64)
        squares = _squares(ix, iy, self.cell_m)
        table = pa.table({
            "cell_id": pa.array(_cell_ids(ix, iy), pa.string()),
            "ix": pa.array(ix, pa.int64()),
            "iy": pa.array(iy, pa.int64()),
            "dates": pa.ListArray.from_arrays(offsets, pa.array(self._day.astype(np.int32), pa.int32()).cast(pa.date32())),
            "date_fires": pa.ListArray.from_arrays(offsets, pa.array(self._pixels, pa.int64())),
            "fires": pa.array(fires, pa.int64()),
            "geometry": pa.array(shapely.to_wkb(squares), pa.binary()) if len(squares) else pa.array([], pa.binary()),
        })
        geo_column: dict[str, object] = {
            "encoding": "WKB",
            "geometry_types": ["Polygon"],
            "crs": CRS.from_user_input(WGS84).to_json_dict(),
        }
        if len(squares):
            geo_column["bbox"] = [float(v) for v in shapely.total_bounds(squares)]
        geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": geo_column}}
        ours = {"kind": HISTORY_KIND, "version": FORMAT_VERSION, "cell_m": self.cell_m, "crs": CHINA_ALBERS}
        return table.replace_schema_metadata({b"geo": json.dumps(geo).encode(), METADATA_KEY: json.dumps(ours).encode()})


@dataclass(frozen=True)
class _Counts:
    """Per receiving cell (sorted ``key``): distinct dates, first/last date (days since 1970), pixels."""

    key: np.ndarray
    days: np.ndarray
    first: np.ndarray
    last: np.ndarray
    fires: np.ndarray


def build_history(paths: Sequence[Path], cell_m: float = 500.0) -> tuple[FireHistory, list[Skip]]:
    """A fire history from fire files: FIRMS / Himawari point files (``readers.read_points``)
    and nightly ``fires.parquet`` tables (any Parquet with ``lon``, ``lat`` and
    ``time_bjt`` or ``time_utc``; told apart by content, not by name).

    Detections repeated across files (same ``fire_id``: a 24 h and a 7 d export)
    count once. Returns the history and the skips of all files: a file that
    cannot be used at all is one ``Skip`` naming it and why.
    """
    frames: list[pd.DataFrame] = []
    skips: list[Skip] = []
    for path in map(Path, paths):
        if path.is_dir():
            skips.append(Skip(path.name, "is a directory, not a fire file"))
            continue
        if _is_parquet(path):
            frame, skip = _read_parquet_fires(path)
            skips.extend(skip)
        else:
            frame, skip = read_points(path)
            skips.extend(skip)
        if len(frame):
            frames.append(_positions_and_times(frame))
    if not frames:
        return FireHistory._empty(cell_m), skips
    fires = pd.concat(frames, ignore_index=True)
    return FireHistory.from_fires(fires, cell_m), skips


def cell_index(lon: np.ndarray, lat: np.ndarray, cell_m: float = 500.0) -> tuple[np.ndarray, np.ndarray]:
    """History cell indices ``(ix, iy)`` (int64) of WGS84 points; -1 where a point has no position.

    ``ix = floor(x / cell_m)``, ``iy = floor(y / cell_m)`` with x, y in China Albers metres.
    """
    ix, iy, ok = _cells(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), _check_cell_m(cell_m))
    return np.where(ok, ix, -1), np.where(ok, iy, -1)


# -- helpers -----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _to_albers() -> Transformer:
    return Transformer.from_crs(WGS84, CHINA_ALBERS, always_xy=True)


@lru_cache(maxsize=1)
def _from_albers() -> Transformer:
    return Transformer.from_crs(CHINA_ALBERS, WGS84, always_xy=True)


def _check_cell_m(cell_m: float) -> float:
    try:
        value = float(cell_m)
    except (TypeError, ValueError):
        raise ValueError(f"cell_m = {cell_m!r}: expected a cell size in metres > 0") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"cell_m = {cell_m!r}: expected a cell size in metres > 0")
    return value


def _cells(lon: np.ndarray, lat: np.ndarray, cell_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell indices of points, and which points have one (finite, projectable, within int32 cells)."""
    with np.errstate(invalid="ignore"):
        x, y = _to_albers().transform(lon, lat, errcheck=False)
        fx, fy = np.floor(np.asarray(x, dtype=float) / cell_m), np.floor(np.asarray(y, dtype=float) / cell_m)
    ok = np.isfinite(fx) & np.isfinite(fy) & (np.abs(fx) < _INT32 - 1) & (np.abs(fy) < _INT32 - 1)
    ix = np.where(ok, fx, 0).astype(np.int64)
    iy = np.where(ok, fy, 0).astype(np.int64)
    return ix, iy, ok


def _day_number(day: dt.date) -> int:
    """A run date as days since 1970-01-01; a datetime counts as its own calendar date."""
    if isinstance(day, dt.datetime):
        day = day.date()
    if not isinstance(day, dt.date):
        raise TypeError(f"run date {day!r}: expected a datetime.date (the Beijing date of the run)")
    return day.toordinal() - _EPOCH


def _key(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """One sortable int64 per cell: ix in the high 32 bits, iy (shifted to unsigned) in the low ones."""
    return (np.asarray(ix, dtype=np.int64) << 32) | (np.asarray(iy, dtype=np.int64) + _INT32)


def _unkey(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    key = np.asarray(key, dtype=np.int64)
    return key >> 32, (key & 0xFFFFFFFF) - _INT32


def _cell_ids(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    if not len(ix):
        return np.zeros(0, dtype=object)
    return ("P" + pd.Series(ix).astype(str) + "_" + pd.Series(iy).astype(str)).to_numpy(dtype=object)


def _dates(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 as an object array of ``datetime.date``."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype(object)


def _squares(ix: np.ndarray, iy: np.ndarray, cell_m: float) -> np.ndarray:
    """The cell squares in EPSG:4326 (corners projected back; at 500 m the edges'
    curvature in degrees is far below a millimetre)."""
    if not len(ix):
        return np.zeros(0, dtype=object)
    x0, y0 = ix * cell_m, iy * cell_m
    # Corners counter-clockwise from the south-west; the ring is closed after projecting.
    xs = np.stack([x0, x0 + cell_m, x0 + cell_m, x0], axis=1).astype(float)
    ys = np.stack([y0, y0, y0 + cell_m, y0 + cell_m], axis=1).astype(float)
    lon, lat = _from_albers().transform(xs.ravel(), ys.ravel())
    corners = np.stack([np.asarray(lon), np.asarray(lat)], axis=1).reshape(len(ix), 4, 2)
    return shapely.polygons(np.concatenate([corners, corners[:, :1]], axis=1))


def _summarise(key: np.ndarray, day: np.ndarray, pixels: np.ndarray) -> _Counts:
    """Group (cell key, day, pixels) rows by cell: distinct days, first/last day, pixel sum."""
    if not len(key):
        none = np.zeros(0, dtype=np.int64)
        return _Counts(none, none, none, none, none)
    order = np.lexsort((day, key))
    key, day, pixels = key[order], day[order], pixels[order]
    new_cell = np.r_[True, key[1:] != key[:-1]]
    new_day = new_cell | np.r_[True, day[1:] != day[:-1]]
    starts = np.flatnonzero(new_cell)
    ends = np.r_[starts[1:], len(key)] - 1
    return _Counts(
        key=key[starts],
        days=np.add.reduceat(new_day.astype(np.int64), starts),
        first=day[starts],
        last=day[ends],
        fires=np.add.reduceat(pixels, starts),
    )


def _beijing_times(fires: pd.DataFrame) -> pd.Series:
    """Times of ``fires`` in Beijing time (tz-aware Asia/Shanghai; NaT where unknown).

    ``time_bjt`` is preferred; ``time_utc`` is converted to Asia/Shanghai. A
    tz-naive column is taken to be in the time zone its name says.
    """
    if "time_bjt" in fires.columns:
        times = pd.to_datetime(fires["time_bjt"])
        times = times.dt.tz_localize(BEIJING_TZ) if times.dt.tz is None else times.dt.tz_convert(BEIJING_TZ)
    elif "time_utc" in fires.columns:
        times = pd.to_datetime(fires["time_utc"])
        times = times.dt.tz_localize("UTC") if times.dt.tz is None else times
        times = times.dt.tz_convert(BEIJING_TZ)
    else:
        raise PersistentError("fires lack a time: expected a 'time_bjt' or 'time_utc' column")
    return times


def _beijing_days(fires: pd.DataFrame) -> np.ndarray:
    """Beijing dates of ``fires`` as days since 1970-01-01 (float, NaN where unknown)."""
    local = _beijing_times(fires).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    days = local.astype("datetime64[D]").astype(np.int64).astype(float)
    days[np.isnat(local)] = np.nan
    return days


def _cell_days(fires: pd.DataFrame, cell_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``fires`` as unique (ix, iy, day) with pixel counts; one pixel per ``fire_id``."""
    missing = [c for c in ("lon", "lat") if c not in fires.columns]
    if missing:
        raise PersistentError(f"fires lack column(s) {', '.join(missing)} (WGS84 degrees)")
    if "fire_id" in fires.columns:
        ids = fires["fire_id"]
        # Rows without an id cannot be repeats of each other by id; keep them all.
        fires = fires[ids.isna() | ~ids.duplicated()]
    days = _beijing_days(fires)
    ix, iy, ok = _cells(fires["lon"].to_numpy(dtype=float, na_value=np.nan),
                        fires["lat"].to_numpy(dtype=float, na_value=np.nan), cell_m)
    ok &= np.isfinite(days)
    if not ok.any():
        none = np.zeros(0, dtype=np.int64)
        return none, none, none, none
    key, day = _key(ix[ok], iy[ok]), days[ok].astype(np.int64)
    counts = _summarise_pairs(key, day)
    cx, cy = _unkey(counts[0])
    return cx, cy, counts[1], counts[2]


def _summarise_pairs(key: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (key, day) pairs and how many rows each had."""
    order = np.lexsort((day, key))
    key, day = key[order], day[order]
    start = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (day[1:] != day[:-1])])
    return key[start], day[start], np.diff(np.r_[start, len(key)]).astype(np.int64)


def _history_metadata(path: Path, schema: pa.Schema) -> dict[str, float]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        have = ", ".join(schema.names[:12])
        raise PersistentError(
            f"{path}: not a fire history (no '{METADATA_KEY.decode()}' metadata; columns: {have}); "
            "write histories with FireHistory.write"
        )
    try:
        meta = json.loads(raw)
        kind, cell_m, crs = meta["kind"], float(meta["cell_m"]), meta["crs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PersistentError(f"{path}: damaged fire history metadata: {exc}") from exc
    if kind != HISTORY_KIND:
        raise PersistentError(f"{path}: not a fire history (gridwatch file of kind {kind!r})")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise PersistentError(f"{path}: fire history format {meta['version']} is newer than this gridwatch reads ({FORMAT_VERSION})")
    if crs != CHINA_ALBERS:
        raise PersistentError(f"{path}: fire history cells lie on another projection ({crs}); rebuild it")
    return {"cell_m": cell_m}


def _is_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == _PARQUET_MAGIC
    except OSError:
        return False  # read_points reports the file as a skip


def _read_parquet_fires(path: Path) -> tuple[pd.DataFrame, list[Skip]]:
    """The columns a history needs from a fire table in Parquet, or one skip saying why not."""
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; all mean a damaged file, one skip
        return pd.DataFrame(), [Skip(path.name, f"cannot read Parquet: {exc}")]
    missing = [c for c in ("lon", "lat") if c not in names]
    if "time_bjt" not in names and "time_utc" not in names:
        missing.append("time_bjt or time_utc")
    if missing:
        return pd.DataFrame(), [Skip(path.name, f"not a fire table: lacks column(s) {', '.join(missing)}", field=missing[0])]
    # Read only what is needed: nightly tables also carry geometry and footprints.
    wanted = [c for c in ("fire_id", "time_utc", "time_bjt", "lon", "lat") if c in names]
    try:
        frame = pq.read_table(path, columns=wanted).to_pandas()
    except Exception as exc:  # noqa: BLE001 - as above: the file is skipped, the run goes on
        return pd.DataFrame(), [Skip(path.name, f"cannot read Parquet: {exc}")]
    return frame, []


def _positions_and_times(frame: pd.DataFrame) -> pd.DataFrame:
    """``fire_id``, ``lon``, ``lat`` and ``time_bjt`` (Beijing) only, for concatenating sources."""
    out = pd.DataFrame(index=frame.index)
    out["fire_id"] = frame["fire_id"].astype("string") if "fire_id" in frame.columns else pd.array([pd.NA] * len(frame), dtype="string")
    out["lon"] = pd.to_numeric(frame["lon"], errors="coerce").astype(float)
    out["lat"] = pd.to_numeric(frame["lat"], errors="coerce").astype(float)
    out["time_bjt"] = _beijing_times(frame)
    return out
