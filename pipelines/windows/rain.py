"""下雨前 "before rain": did rain begin at a fire's place soon after it?

Straw-burning plans name the window before rain as high-risk: farmers burn
straw before it gets wet. A fire is *before rain* when rain begins at its place
within ``RainRule.horizon_h`` hours after the fire (default 24 h).

Units, coordinates and time
---------------------------
* Precipitation is in **mm per step**: the amount that fell in the step that
  *ends* at the step's time stamp (``step_h`` hours long, 1 h for hourly
  gauges and NWP output, 24 h for daily totals).
* Positions are WGS84 longitude/latitude in degrees (EPSG:4326), for fires,
  stations and grids alike. Distances are great-circle (haversine, mean Earth
  radius 6371.0088 km).
* Instants are handled in UTC. Station files may be written in local time:
  naive times are UTC unless the reader is told ``tz="Asia/Shanghai"``
  (Beijing time = UTC+8, no DST); times with an explicit offset are always
  honoured. NetCDF times are taken as UTC (the CF default) and mark the end of
  each step.

Semantics
---------
For a fire at ``t`` the rule looks at the steps ending in ``(t, t + horizon]``.
The onset is the first of them with at least the threshold
(``threshold_mm`` for sub-daily steps, ``daily_threshold_mm`` for daily ones):
then the fire is before rain (True) and ``rain_onset_utc`` is the *end* of
that step. No onset and every step present: False. No onset and any step
missing (NaN, sentinel, a gap in the series, beyond the data, fire too far
from every station, no forecast issued yet): <NA>, unknown, with the reason in
``rain_note`` -- never a silent False, because a missing hour may be the one
in which it rained.

With daily steps the rule is coarse: with the default 24 h horizon only the
one daily total ending within 24 h after the fire is looked at, which for an
evening fire is mostly the fire's own day. Use a longer ``horizon_h`` (e.g.
48) with daily data if the next day's rain must count.

Inputs
------
* :func:`read_stations` reads the canonical station CSV
  (``station, lon, lat, time, mm``) into a :class:`StationPrecip`.
* :func:`open_precip_grid` opens NetCDF grids (time x lat x lon) lazily with
  xarray + dask, one chunk per time step; accumulated fields are differenced
  per step; several forecast files are stacked along
  ``forecast_reference_time``, so :func:`before_rain` with ``forecast=True``
  can use, for each fire, only the latest forecast issued at or before it
  (what a supervisor could have known then).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.core.skips import Skip
from pipelines.windows.sun import fire_times_utc

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088
NS_PER_HOUR = 3_600 * 10**9
# Accumulated float32 fields differenced per step carry round-off of ~1e-5 mm;
# readings this close below the threshold still count (gauges resolve 0.1 mm).
THRESHOLD_TOLERANCE_MM = 1e-3
# Negative increments of accumulated fields down to this are round-off (set to
# 0); larger ones mean the accumulation was reset, so the step is unknown.
ACCUMULATION_NOISE_MM = 0.01
GRID_VARIABLE = "precip_mm"
FORECAST_DIM = "forecast_reference_time"

_MISSING_TEXT = {"", "na", "nan", "null", "none", "n/a", "-"}
# An offset only counts after a clock time, so a bare date's "-10" is not one.
_HAS_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


@dataclass(frozen=True)
class RainRule:
    """When a fire counts as before rain.

    ``threshold_mm`` applies to sub-daily steps (per step, e.g. per hour; 0.1 mm
    is the gauge resolution, so any measured rain), ``daily_threshold_mm`` to
    steps of 24 h or more (1 mm/day is the usual wet-day threshold, which keeps
    dew and trace amounts out). ``horizon_h``: how long after the fire rain may
    begin. Fires farther than ``max_station_km`` from every station are
    unknown. Values ``>= sentinel_mm`` are no-data codes (e.g. 999990).
    """

    threshold_mm: float = 0.1
    daily_threshold_mm: float = 1.0
    horizon_h: float = 24.0
    max_station_km: float = 50.0
    sentinel_mm: float = 9999.0

    def threshold_for(self, step_h: float) -> float:
        return self.daily_threshold_mm if step_h >= 24.0 else self.threshold_mm


# --------------------------------------------------------------------------
# Stations
# --------------------------------------------------------------------------


@dataclass
class StationPrecip:
    """Precipitation at point stations on one regular time axis.

    ``values[i, k]`` is the amount (mm) at station ``names[i]`` in the step
    ending at ``start_utc + k * step_h`` hours; NaN where the value is missing
    (absent rows, NA, sentinels, bad rows) -- never 0, so a gap cannot pass
    for a dry hour.
    """

    names: np.ndarray  # (S,) str
    lon: np.ndarray  # (S,) degrees east, WGS84
    lat: np.ndarray  # (S,) degrees north, WGS84
    start_utc: pd.Timestamp  # end of the first step, tz-aware UTC
    step_h: float
    values: np.ndarray  # (S, T) mm per step, NaN = missing
    source: str = ""
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {str(n): i for i, n in enumerate(self.names)}

    @property
    def times(self) -> pd.DatetimeIndex:
        """End of each step (tz-aware UTC)."""
        return pd.date_range(
            self.start_utc,
            periods=self.values.shape[1],
            freq=pd.Timedelta(hours=self.step_h),
        )

    def series(self, name: str) -> pd.Series:
        """One station's series (mm per step, NaN = missing), indexed by step end (UTC)."""
        return pd.Series(self.values[self._index[name]], index=self.times, name=name)

    def nearest(self, lon: object, lat: object) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest station (-1 if none or position NaN) and its distance (km)."""
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        idx = np.full(lon.shape, -1, dtype=np.int64)
        km = np.full(lon.shape, np.nan)
        if len(self.names) == 0:
            return idx, km
        # Blocks keep the (fires x stations) matrix small for national networks.
        block = max(1, 2_000_000 // len(self.names))
        for s in range(0, len(lon), block):
            d = _haversine_km(
                lon[s : s + block, None],
                lat[s : s + block, None],
                self.lon[None, :],
                self.lat[None, :],
            )
            ok = ~np.isnan(d).all(axis=1)
            i = np.where(ok, np.nanargmin(np.where(np.isnan(d), np.inf, d), axis=1), -1)
            idx[s : s + block] = i
            km[s : s + block] = np.where(ok, d[np.arange(len(d)), np.maximum(i, 0)], np.nan)
        return idx, km

    def at(self, lon: object, lat: object, rule: RainRule = RainRule()) -> np.ndarray:
        """Nearest station index within ``rule.max_station_km`` of each point (-1 = none)."""
        idx, km = self.nearest(lon, lat)
        return np.where(km <= rule.max_station_km, idx, -1)


def _haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lon1, lat1, lon2, lat2 = (np.radians(a) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _parse_times(text: pd.Series, tz: str) -> pd.Series:
    """ISO 8601 strings to UTC; naive ones are local time in ``tz``; NaT if unparsable."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    aware = text.str.contains(_HAS_OFFSET, na=False)
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce")
    naive = ~aware & (text != "")
    if naive.any():
        local = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        # ambiguous/nonexistent only matter for DST zones; NaT keeps them out.
        out[naive] = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return out


def read_stations(
    path: str | PathLike[str],
    *,
    step_h: float = 1.0,
    tz: str = "UTC",
    sentinel_mm: float = RainRule.sentinel_mm,
) -> tuple[StationPrecip, list[Skip]]:
    """Read a station precipitation CSV (``station, lon, lat, time, mm``).

    ``time``: ISO 8601, the end of the step; naive values are in ``tz``
    (default UTC; ``"Asia/Shanghai"`` for Beijing local time). ``mm``: amount
    in the ``step_h``-hour step ending at ``time``.

    Rows with an empty station or unparsable/out-of-range time, lon, lat or mm,
    or a negative mm, are skipped (one :class:`Skip` each, with the 1-based
    line number and the field); the step stays missing. NA-like and sentinel
    (``>= sentinel_mm``) values are kept as missing and reported as one
    :class:`Skip` per station and kind (count, first line). Also skipped: rows
    off the ``step_h`` time grid, duplicates of a station's time, and rows
    whose coordinates differ from the station's first row.
    """
    path = Path(path)
    name = path.name
    step_ns = round(step_h * NS_PER_HOUR)
    if step_ns <= 0:
        raise ValueError(f"read_stations: step_h must be positive, got {step_h}")
    try:
        # Everything as text: we decide what is missing, not pandas.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (OSError, ValueError) as exc:
        return _empty_stations(step_h, name), [Skip(name, f"unreadable: {exc}")]
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing_cols = [c for c in ("station", "lon", "lat", "time", "mm") if c not in raw.columns]
    if missing_cols:
        return _empty_stations(step_h, name), [Skip(name, f"missing column(s) {missing_cols}")]
    raw = raw[["station", "lon", "lat", "time", "mm"]].fillna("").apply(lambda s: s.str.strip())
    # Line numbers before dropping blank lines: header is line 1.
    raw["line"] = np.arange(2, len(raw) + 2)
    raw = raw[(raw[["station", "lon", "lat", "time", "mm"]] != "").any(axis=1)]

    skips: list[Skip] = []
    lon = pd.to_numeric(raw["lon"], errors="coerce")
    lat = pd.to_numeric(raw["lat"], errors="coerce")
    time = _parse_times(raw["time"], tz)
    mm_text = raw["mm"]
    na_mm = mm_text.str.lower().isin(_MISSING_TEXT)
    mm = pd.to_numeric(mm_text.where(~na_mm), errors="coerce")

    # First failing field names the row's Skip.
    checks = [
        ("station", raw["station"] == "", "station name empty"),
        ("time", time.isna(), "time missing or unparsable"),
        (
            "lon",
            lon.isna() | (lon.abs() > 180),
            "lon missing, unparsable or out of range",
        ),
        (
            "lat",
            lat.isna() | (lat.abs() > 90),
            "lat missing, unparsable or out of range",
        ),
        ("mm", ~na_mm & mm.isna(), "precipitation unparsable"),
        ("mm", mm < 0, "negative precipitation"),
    ]
    bad = pd.Series(False, index=raw.index)
    for fld, mask, reason in checks:
        new = mask & ~bad
        skips += [Skip(name, reason, row=int(r), field=fld) for r in raw.loc[new, "line"]]
        bad |= mask
    ok = ~bad
    df = pd.DataFrame(
        {
            "station": raw["station"],
            "lon": lon,
            "lat": lat,
            "time": time,
            "mm": mm,
            "line": raw["line"],
        }
    )[ok]
    sentinel = df["mm"] >= sentinel_mm
    na_rows = na_mm[ok]

    # Grouped reports of values kept as missing: they must reach run.json.
    for st, grp in df[na_rows].groupby("station", sort=False):
        skips.append(
            Skip(
                name,
                f"{len(grp)} row(s) of station {st} have no precipitation value (NA); kept as missing",
                row=int(grp["line"].iloc[0]),
                field="mm",
            )
        )
    for st, grp in df[sentinel].groupby("station", sort=False):
        vals = ", ".join(f"{v:g}" for v in sorted(grp["mm"].unique()))
        skips.append(
            Skip(
                name,
                f"{len(grp)} row(s) of station {st} hold the sentinel {vals} (>= {sentinel_mm:g} mm); kept as missing",
                row=int(grp["line"].iloc[0]),
                field="mm",
            )
        )
    df.loc[sentinel, "mm"] = np.nan

    if df.empty:
        _log_skips(name, skips)
        return _empty_stations(step_h, name), skips

    # A station's position is its first row's; later rows elsewhere are suspect.
    first = df.groupby("station", sort=False)[["lon", "lat"]].transform("first")
    moved = ((df["lon"] - first["lon"]).abs() > 1e-4) | ((df["lat"] - first["lat"]).abs() > 1e-4)
    skips += [
        Skip(
            name,
            "coordinates differ from the station's first row",
            row=int(r),
            field="lon",
        )
        for r in df.loc[moved, "line"]
    ]
    df = df[~moved]

    # Regular axis anchored on the earliest time: daily steps ending at local
    # midnight are not multiples of 24 h since the epoch.
    t_ns = df["time"].dt.as_unit("ns").astype("int64").to_numpy()
    origin = int(t_ns.min())
    off_grid = (t_ns - origin) % step_ns != 0
    skips += [
        Skip(name, f"time not on the {step_h:g} h step grid", row=int(r), field="time")
        for r in df.loc[off_grid, "line"]
    ]
    df, t_ns = df[~off_grid], t_ns[~off_grid]
    k = (t_ns - origin) // step_ns
    dup = pd.DataFrame({"s": df["station"].to_numpy(), "k": k}).duplicated().to_numpy()
    skips += [
        Skip(name, "duplicate station and time (first kept)", row=int(r), field="time") for r in df.loc[dup, "line"]
    ]
    df, k = df[~dup], k[~dup]

    stations = df.groupby("station", sort=False)[["lon", "lat"]].first()
    s_index = pd.Index(stations.index).get_indexer(df["station"])
    values = np.full((len(stations), int(k.max()) + 1), np.nan)
    values[s_index, k] = df["mm"].to_numpy(dtype=np.float64)
    _log_skips(name, skips)
    precip = StationPrecip(
        names=stations.index.to_numpy(dtype=object),
        lon=stations["lon"].to_numpy(dtype=np.float64),
        lat=stations["lat"].to_numpy(dtype=np.float64),
        start_utc=pd.Timestamp(origin, tz="UTC"),
        step_h=float(step_h),
        values=values,
        source=name,
    )
    return precip, skips


def _empty_stations(step_h: float, source: str) -> StationPrecip:
    return StationPrecip(
        names=np.array([], dtype=object),
        lon=np.array([]),
        lat=np.array([]),
        start_utc=pd.Timestamp(0, tz="UTC"),
        step_h=float(step_h),
        values=np.empty((0, 0)),
        source=source,
    )


def _log_skips(name: str, skips: list[Skip]) -> None:
    if skips:
        log.warning(
            "%s: %d precipitation record(s)/group(s) skipped or kept as missing",
            name,
            len(skips),
        )
        for s in skips[:5]:
            log.warning("  %s", s)


# --------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------


_LAT_NAMES = ("lat", "latitude", "y")
_LON_NAMES = ("lon", "longitude", "x")


def _reference_time(ds: xr.Dataset) -> np.datetime64 | None:
    """The forecast issue time (UTC, naive datetime64[ns]) if the file has one."""
    if FORECAST_DIM in ds.variables:
        v = np.asarray(ds[FORECAST_DIM].values).ravel()
        if v.size != 1:
            raise ValueError(f"{FORECAST_DIM} must be a scalar per file, got {v.size} values")
        return _as_utc64(v[0])
    if FORECAST_DIM in ds.attrs:
        return _as_utc64(ds.attrs[FORECAST_DIM])
    return None


def _as_utc64(value: object) -> np.datetime64:
    ts = pd.Timestamp(value)
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.as_unit("ns").to_datetime64(), "ns")


def _step_ns(times: np.ndarray, attrs: dict) -> int:
    if len(times) >= 2:
        return int(np.median(np.diff(times.astype("datetime64[ns]").astype(np.int64))))
    if "step_h" in attrs:
        return round(float(attrs["step_h"]) * NS_PER_HOUR)
    raise ValueError("cannot tell the step length of a grid with one time step (set attribute step_h)")


def _open_one(path: Path, variable: str, accumulated: bool) -> tuple[xr.DataArray, np.datetime64 | None, int]:
    # One chunk per time step: a fire window touches a few dozen steps, and a
    # step's full field is how NetCDF stores it on disk.
    ds = xr.open_dataset(path, chunks={"time": 1})
    if variable not in ds.data_vars:
        raise ValueError(f"{path.name}: no variable {variable!r} (has {list(ds.data_vars)})")
    ref = _reference_time(ds)
    da = ds[variable]
    renames = {}
    for names, std in ((_LAT_NAMES, "lat"), (_LON_NAMES, "lon")):
        found = [d for d in da.dims if str(d).lower() in names]
        if not found:
            raise ValueError(f"{path.name}: {variable} has no latitude/longitude dimension (dims {da.dims})")
        renames[found[0]] = std
    da = da.rename(renames)
    extra = [d for d in da.dims if d not in ("time", "lat", "lon")]
    if "time" not in da.dims or extra:
        raise ValueError(f"{path.name}: {variable} must be (time, lat, lon), got {da.dims}")
    da = da.transpose("time", "lat", "lon").sortby("time")
    da = da.drop_vars([c for c in da.coords if c not in ("time", "lat", "lon")])
    times = da["time"].values
    step = _step_ns(times, {**ds.attrs, **da.attrs})
    if accumulated:
        da = _deaccumulate(da, ref, step)
    return da.astype(np.float64), ref, step


def _deaccumulate(acc: xr.DataArray, ref: np.datetime64 | None, step: int) -> xr.DataArray:
    """Per-step amounts from amounts accumulated since ``ref``."""
    t = acc["time"].values.astype("datetime64[ns]").astype(np.int64)
    inc = acc.diff("time", label="upper")
    # A difference across a gap spans several steps: not a per-step amount.
    regular = xr.DataArray(np.diff(t) == step, dims="time", coords={"time": acc["time"].values[1:]})
    inc = inc.where(regular)
    # The first step is the accumulation itself, but only if it starts at the
    # issue time; without an issue time we cannot know what it covers.
    first = acc.isel(time=[0])
    if ref is None or t[0] - ref.astype(np.int64) != step:
        first = first * np.nan
    out = xr.concat([first, inc], dim="time")
    # Tiny negatives are float32 round-off; big ones are resets (unknown).
    return out.where(out >= -ACCUMULATION_NOISE_MM).clip(min=0.0)


def open_precip_grid(
    paths: str | PathLike[str] | Iterable[str | PathLike[str]],
    *,
    variable: str = "precipitation",
    accumulated: bool = False,
) -> xr.Dataset:
    """Open gridded precipitation (NetCDF, time x lat x lon) lazily.

    ``variable`` is mm per step (time = end of the step, UTC), or with
    ``accumulated=True`` mm accumulated since the forecast start, differenced
    here into per-step amounts. Returns a dask-backed dataset with
    ``precip_mm`` (mm per step, NaN = missing) on a regular time axis (gaps
    filled with NaN) and attrs ``step_h``, ``resolution_deg``, ``source``.

    Files with a ``forecast_reference_time`` (scalar variable/coordinate or
    global attribute) are forecasts: several are stacked along a
    ``forecast_reference_time`` dimension (sorted by issue time; valid times
    outside a forecast are NaN). Files without one are analyses: several are
    joined along time. Mixing the two is an error.
    """
    if isinstance(paths, (str, PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("open_precip_grid: no files")
    opened = [_open_one(p, variable, accumulated) for p in paths]
    refs = [r for _, r, _ in opened]
    steps = {s for _, _, s in opened}
    if len(steps) != 1:
        raise ValueError(
            f"open_precip_grid: files have different step lengths {sorted(s / NS_PER_HOUR for s in steps)} h"
        )
    step = steps.pop()
    arrays = [a for a, _, _ in opened]
    if all(r is None for r in refs):
        da = xr.concat(arrays, dim="time", join="outer") if len(arrays) > 1 else arrays[0]
        da = da.sortby("time")
        da = da.isel(time=~pd.Index(da["time"].values).duplicated())
        forecast = False
    elif all(r is not None for r in refs):
        order = np.argsort(np.array(refs, dtype="datetime64[ns]"), kind="stable")
        # Each forecast's own valid span: after the outer join, times past a
        # forecast's end must read as "beyond the forecast", not as a gap.
        arrays = [
            arrays[i]
            .expand_dims({FORECAST_DIM: [refs[i]]})
            .assign_coords(
                forecast_first_time=(FORECAST_DIM, [arrays[i]["time"].values.min()]),
                forecast_last_time=(FORECAST_DIM, [arrays[i]["time"].values.max()]),
            )
            for i in order
        ]
        da = xr.concat(arrays, dim=FORECAST_DIM, join="outer") if len(arrays) > 1 else arrays[0]
        forecast = True
    else:
        raise ValueError("open_precip_grid: some files are forecasts (forecast_reference_time), some are not")
    # Regular axis: a missing time step must read as missing, not be skipped.
    tv = da["time"].values.astype("datetime64[ns]")
    full = pd.date_range(tv.min(), tv.max(), freq=pd.Timedelta(step, unit="ns"))
    if len(full) != len(tv) or not (full.values == tv).all():
        da = da.reindex(time=full.values)
    lat = da["lat"].values
    res = float(np.round(np.median(np.abs(np.diff(lat))), 6)) if len(lat) > 1 else float("nan")
    da.attrs = {"units": "mm", "long_name": "precipitation in the step ending at time"}
    return xr.Dataset(
        {GRID_VARIABLE: da},
        attrs={
            "step_h": step / NS_PER_HOUR,
            "resolution_deg": res,
            "forecast": int(forecast),
            "source": ", ".join(p.name for p in paths),
            "accumulated_source": int(accumulated),
        },
    )


def _nearest_cell(coord: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest coordinate value; -1 if more than half a cell outside."""
    order = np.argsort(coord)
    c = coord[order]
    pos = np.clip(np.searchsorted(c, x), 1, max(len(c) - 1, 1))
    if len(c) == 1:
        idx = np.zeros(len(x), dtype=np.int64)
        half = 0.5
    else:
        left, right = c[pos - 1], c[pos]
        idx = np.where(np.abs(x - left) <= np.abs(right - x), pos - 1, pos)
        half = 0.5 * float(np.median(np.diff(c)))
    outside = np.isnan(x) | (x < c[0] - half) | (x > c[-1] + half)
    return np.where(outside, -1, order[np.clip(idx, 0, len(c) - 1)])


# --------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Steps:
    """The steps ending in ``(t, t + horizon]`` of each fire, on an axis of steps ``t0 + k * step`` (ns)."""

    k: np.ndarray  # (n, W) step indices; may fall outside the data
    inwin: np.ndarray  # (n, W) which of the W columns belong to the fire's window
    n_steps: np.ndarray  # (n,) steps per fire
    t0: int  # end of step 0, ns since the epoch (UTC)
    step: int  # ns
    step_h: float  # hours


def _windows(t_ns: np.ndarray, t0: int, step_h: float, horizon_h: float) -> _Steps:
    """The steps of each fire's window on the axis starting at ``t0`` (``_Steps``)."""
    step = round(step_h * NS_PER_HOUR)
    k_first = (t_ns - t0) // step + 1  # floor: a step ending exactly at t is excluded
    k_last = (t_ns + round(horizon_h * NS_PER_HOUR) - t0) // step
    n = np.maximum(k_last - k_first + 1, 0)
    width = int(n.max()) if len(n) else 0
    k = k_first[:, None] + np.arange(width)[None, :]
    return _Steps(k, np.arange(width)[None, :] < n[:, None], n, t0, step, step_h)


@dataclass
class _Outcome:
    """Per-fire results; filled group by group."""

    n: int
    state: np.ndarray = field(init=False)  # 1 True, 0 False, -1 unknown
    onset_ns: np.ndarray = field(init=False)
    mm: np.ndarray = field(init=False)
    source: np.ndarray = field(init=False)
    note: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.state = np.full(self.n, -1, dtype=np.int8)
        self.onset_ns = np.full(self.n, np.iinfo(np.int64).min, dtype=np.int64)
        self.mm = np.full(self.n, np.nan)
        self.source = np.full(self.n, None, dtype=object)
        self.note = np.full(self.n, None, dtype=object)


def _decide(
    out: _Outcome,
    rows: np.ndarray,
    vals: np.ndarray,
    steps: _Steps,
    rule: RainRule,
    where: np.ndarray,
    beyond: np.ndarray,
    forecast: bool = False,
) -> None:
    """Apply the rule to window values ``vals`` (len(rows), W); NaN = missing."""
    k, inwin, n_steps, step_h = steps.k, steps.inwin, steps.n_steps, steps.step_h
    threshold = rule.threshold_for(step_h)
    vals = np.where(vals >= rule.sentinel_mm, np.nan, vals)
    wet = inwin & (vals >= threshold - THRESHOLD_TOLERANCE_MM)
    miss = inwin & np.isnan(vals)
    has = wet.any(axis=1)
    first = np.argmax(wet, axis=1)
    n_miss = miss.sum(axis=1)
    r = np.arange(len(rows))
    miss_before = (miss & (np.arange(vals.shape[1])[None, :] < first[:, None])).sum(axis=1)
    state = np.where(has, 1, np.where(n_miss == 0, 0, -1)).astype(np.int8)
    out.state[rows] = state
    if has.any():
        ko = k[r, first]
        out.onset_ns[rows[has]] = (steps.t0 + ko * steps.step)[has]
        out.mm[rows[has]] = vals[r, first][has]
    unit = "hours" if step_h == 1 else f"steps of {step_h:g} h"
    for j in np.flatnonzero(state == -1):
        extra = f" (beyond the {'forecast' if forecast else 'data'})" if beyond[j] else ""
        out.note[rows[j]] = f"{n_miss[j]} of {n_steps[j]} {unit} missing at {where[j]}{extra}"
    for j in np.flatnonzero(has & (miss_before > 0)):
        out.note[rows[j]] = (
            f"onset may be earlier: {miss_before[j]} of {n_steps[j]} {unit} missing before it at {where[j]}"
        )
    for j in np.flatnonzero(n_steps == 0):
        out.state[rows[j]] = -1
        out.note[rows[j]] = f"horizon shorter than one {step_h:g} h step"


def _fire_arrays(
    fires: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    time = fire_times_utc(fires, "before_rain")
    lon = fires["lon"].to_numpy(dtype=np.float64)
    lat = fires["lat"].to_numpy(dtype=np.float64)
    ok = ~time.isna() & ~np.isnan(lon) & ~np.isnan(lat)
    return time.asi8, lon, lat, np.asarray(ok)


def _stations_rule(out: _Outcome, t_ns, lon, lat, ok, st: StationPrecip, rule: RainRule) -> None:
    idx, km = st.nearest(lon, lat)
    near = ok & (km <= rule.max_station_km)
    for j in np.flatnonzero(ok & ~near):
        nearest = f" (nearest: {st.names[idx[j]]} {km[j]:.1f} km)" if idx[j] >= 0 else ""
        out.note[j] = f"no station within {rule.max_station_km:g} km{nearest}"
    rows = np.flatnonzero(near)
    if len(rows) == 0:
        return
    steps = _windows(t_ns[rows], int(st.start_utc.value), st.step_h, rule.horizon_h)
    k = steps.k
    T = st.values.shape[1]
    inside = (k >= 0) & (k < T)
    s = idx[rows]
    vals = np.where(inside, st.values[s[:, None], np.clip(k, 0, max(T - 1, 0))], np.nan)
    beyond = (steps.inwin & ~inside).any(axis=1)
    names = st.names[s]
    out.source[rows] = [f"station {n} {d:.1f} km" for n, d in zip(names, km[rows])]
    _decide(out, rows, vals, steps, rule, names, beyond)


def _grid_rule(
    out: _Outcome,
    rows: np.ndarray,
    t_ns: np.ndarray,
    ilat: np.ndarray,
    ilon: np.ndarray,
    da: xr.DataArray,
    step_h: float,
    rule: RainRule,
    label: str,
    forecast: bool = False,
) -> None:
    """The rule for fires ``rows`` (already inside the grid) on one (time, lat, lon) field."""
    if len(rows) == 0:
        return
    times = da["time"].values.astype("datetime64[ns]").astype(np.int64)
    T = len(times)
    steps = _windows(t_ns[rows], int(times[0]), step_h, rule.horizon_h)
    k, inwin = steps.k, steps.inwin
    inside = (k >= 0) & (k < T) & inwin
    vals = np.full(k.shape, np.nan)
    if inside.any():
        kmin, kmax = int(k[inside].min()), int(k[inside].max())
        # Only the fires' cells over the fires' time span is computed: a
        # pointwise (vectorized) selection of the dask array.
        cells, cell = np.unique(np.stack([ilat[rows], ilon[rows]], axis=1), axis=0, return_inverse=True)
        cell = cell.ravel()
        sub = (
            da.isel(time=slice(kmin, kmax + 1))
            .isel(
                lat=xr.DataArray(cells[:, 0], dims="cell"),
                lon=xr.DataArray(cells[:, 1], dims="cell"),
            )
            .transpose("time", "cell")
            .values
        )
        kk = np.clip(k - kmin, 0, kmax - kmin)
        vals = np.where(inside, sub[kk, cell[:, None]], np.nan)
    beyond = (inwin & ~((k >= 0) & (k < T))).any(axis=1)
    la, lo = da["lat"].values[ilat[rows]], da["lon"].values[ilon[rows]]
    where = np.array([f"grid cell {y:.2f}N {x:.2f}E" for y, x in zip(la, lo)], dtype=object)
    out.source[rows] = label
    _decide(out, rows, vals, steps, rule, where, beyond, forecast)


def _grid(out: _Outcome, t_ns, lon, lat, ok, ds: xr.Dataset, rule: RainRule, forecast: bool) -> None:
    if GRID_VARIABLE in ds.data_vars:
        da = ds[GRID_VARIABLE]
    elif len(ds.data_vars) == 1:
        da = next(iter(ds.data_vars.values()))
    else:
        raise ValueError(f"before_rain: grid needs a {GRID_VARIABLE!r} variable (use open_precip_grid)")
    step_h = float(ds.attrs.get("step_h") or _step_ns(da["time"].values, da.attrs) / NS_PER_HOUR)
    res = ds.attrs.get("resolution_deg")
    if res is None:
        res = float(np.round(np.median(np.abs(np.diff(da["lat"].values))), 6))
    grid_lon = da["lon"].values
    # 0-360 grids (GFS, ERA5): bring fire longitudes into the same range.
    qlon = np.mod(lon, 360.0) if np.nanmax(grid_lon) > 180 else lon
    ilat = _nearest_cell(da["lat"].values, lat)
    ilon = _nearest_cell(grid_lon, qlon)
    inside = ok & (ilat >= 0) & (ilon >= 0)
    out.note[ok & ~inside] = "outside the precipitation grid"
    has_fc = FORECAST_DIM in da.dims
    if forecast and not has_fc:
        raise ValueError("before_rain: forecast=True needs forecasts (files with forecast_reference_time)")
    if not has_fc:
        _grid_rule(
            out,
            np.flatnonzero(inside),
            t_ns,
            ilat,
            ilon,
            da,
            step_h,
            rule,
            f"grid {res:g}° (analysis)",
        )
        return
    refs = da[FORECAST_DIM].values.astype("datetime64[ns]")
    if not forecast:
        if len(refs) > 1:
            raise ValueError("before_rain: several forecasts given; pass forecast=True to pick one per fire")
        which = np.zeros(len(t_ns), dtype=np.int64)
    else:
        # Latest forecast issued at or before the fire: what was knowable then.
        which = np.searchsorted(refs.astype(np.int64), t_ns, side="right") - 1
        early = inside & (which < 0)
        first = pd.Timestamp(refs[0]).strftime("%Y-%m-%dT%HZ")
        out.note[early] = f"no forecast issued at or before the fire (first issued {first})"
        out.source[early] = f"grid {res:g}° (no forecast yet)"
    for f in range(len(refs)):
        rows = np.flatnonzero(inside & (which == f))
        issued = pd.Timestamp(refs[f]).strftime("%Y-%m-%dT%HZ")
        fc = da.isel({FORECAST_DIM: f})
        if "forecast_last_time" in fc.coords:
            fc = fc.sel(time=slice(fc["forecast_first_time"].values, fc["forecast_last_time"].values))
        _grid_rule(
            out,
            rows,
            t_ns,
            ilat,
            ilon,
            fc,
            step_h,
            rule,
            f"grid {res:g}° (forecast issued {issued})",
            True,
        )


def before_rain(
    fires: pd.DataFrame,
    precip: StationPrecip | xr.Dataset,
    rule: RainRule = RainRule(),
    *,
    forecast: bool = False,
) -> pd.DataFrame:
    """Was each fire followed by rain at its place within ``rule.horizon_h``?

    ``fires`` needs ``lon``, ``lat`` (degrees, WGS84) and ``time_utc``
    (tz-aware). ``precip``: station data (nearest station within
    ``rule.max_station_km``) or a grid from :func:`open_precip_grid` (cell
    containing the fire). With ``forecast=True`` (grids of forecasts only),
    each fire uses the latest forecast issued at or before its time.

    Returns a frame with the index of ``fires`` and columns
    ``win_before_rain`` ("boolean": True / False / <NA> unknown),
    ``rain_onset_utc`` (end of the first step reaching the threshold, UTC;
    NaT if none), ``rain_mm`` (amount in that step), ``rain_source``
    (station and distance, or grid and forecast issue time) and ``rain_note``
    (why unknown, or a caveat; <NA> if none).
    """
    t_ns, lon, lat, ok = _fire_arrays(fires)
    out = _Outcome(len(fires))
    out.note[~ok] = "fire time or position missing"
    if isinstance(precip, StationPrecip):
        if forecast:
            raise ValueError("before_rain: forecast=True needs gridded forecasts, not station observations")
        _stations_rule(out, t_ns, lon, lat, ok, precip, rule)
    elif isinstance(precip, xr.Dataset):
        _grid(out, t_ns, lon, lat, ok, precip, rule, forecast)
    else:
        raise TypeError(f"before_rain: precip must be StationPrecip or xarray.Dataset, got {type(precip).__name__}")

    state = pd.array(np.where(out.state == 1, True, False), dtype="boolean")
    state[out.state == -1] = pd.NA
    onset = pd.DatetimeIndex(out.onset_ns.view("datetime64[ns]")).tz_localize("UTC")
    result = pd.DataFrame(
        {
            "win_before_rain": state,
            "rain_onset_utc": onset,
            "rain_mm": out.mm,
            "rain_source": pd.array(out.source, dtype=pd.StringDtype()),
            "rain_note": pd.array(out.note, dtype=pd.StringDtype()),
        },
        index=fires.index,
    )
    n_unknown = int((out.state == -1).sum())
    if n_unknown:
        log.info(
            "before_rain: %d of %d fire(s) unknown (missing precipitation); see rain_note",
            n_unknown,
            len(fires),
        )
    return result
