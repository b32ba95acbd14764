"""The sun-defined high-risk clock windows of the straw-burning action plans.

Provincial straw-burning plans single out four high-risk windows. Two are clock
windows that follow the sun, because farmers burn when field work stops at dusk:

* 收工时 (after work): ``[sunset + after_work_start_h, sunset + after_work_end_h)``,
  by default sunset - 1.5 h to sunset + 0.5 h;
* 上半夜 (first half of the night): ``[sunset + after_work_end_h, first_half_night_end)``,
  by default up to 24:00, the midnight that ends the fire's Beijing-local day.

Everything is in Beijing time (UTC+8, no DST). Sunset is computed for each
fire's own position and its Beijing-local date with the NOAA solar-position
equations (the ones behind NOAA's solar calculator spreadsheet, after Meeus),
vectorized over numpy arrays; they agree with ``astral`` to well under a
minute across China. The other two windows (下雨前 before rain, 播种前 before
sowing) need weather and crop-calendar inputs and are left ``<NA>`` here.

A fixed-hours variant (``mode="fixed"``: 17:00-19:00 and 19:00-24:00 Beijing
time) is provided for plans that define the windows by the clock instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.core.schema import BEIJING_TZ

# Zenith of the sun's centre at sunrise/sunset: 90 deg plus 34' standard
# refraction at the horizon plus 16' semi-diameter (the -0.833 deg convention).
SUNSET_ZENITH_DEG = 90.833

_NS_PER_DAY = 86_400 * 10**9
_JD_UNIX_EPOCH = 2440587.5  # Julian day of 1970-01-01T00:00Z
_JD_J2000 = 2451545.0
_BEIJING_OFFSET_MIN = 8 * 60
_MINUTES_PER_DAY = 1440.0

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


# --------------------------------------------------------------------------
# Solar position (NOAA)
# --------------------------------------------------------------------------


def _utc_ns(time_utc: Any) -> np.ndarray:
    """Instants as float nanoseconds since the Unix epoch (NaN for NaT), 1-D.

    Naive values are taken to be UTC already, as the parameter name promises.
    """
    values = time_utc if np.ndim(time_utc) else [time_utc]
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns")
    ns = idx.asi8.astype(np.float64)
    ns[idx.isna()] = np.nan
    return ns


def _bjt_day_number(date_bjt: Any) -> np.ndarray:
    """Beijing calendar dates as float days since 1970-01-01 (NaN for NaT), 1-D.

    Naive values are calendar dates (any time of day is dropped); tz-aware
    values are first converted to Beijing time, so a UTC instant lands on its
    Beijing date.
    """
    values = date_bjt if np.ndim(date_bjt) else [date_bjt]
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    if idx.tz is not None:
        idx = idx.tz_convert(BEIJING_TZ).tz_localize(None)
    idx = idx.normalize().as_unit("ns")
    days = (idx.asi8 // _NS_PER_DAY).astype(np.float64)
    days[idx.isna()] = np.nan
    return days


def _sun_declination_eqtime(jd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solar declination (radians) and equation of time (minutes) at Julian day ``jd`` (UT)."""
    jc = (jd - _JD_J2000) / 36525.0
    l0 = np.radians(np.mod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0))
    m = np.radians(357.52911 + jc * (35999.05029 - 0.0001537 * jc))
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    centre = (
        np.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * m) * 0.000289
    )
    true_long = np.degrees(l0) + centre
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = np.radians(true_long - 0.00569 - 0.00478 * np.sin(omega))
    mean_obliq = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliq = np.radians(mean_obliq + 0.00256 * np.cos(omega))
    decl = np.arcsin(np.sin(obliq) * np.sin(app_long))
    y = np.tan(obliq / 2.0) ** 2
    eqtime = 4.0 * np.degrees(
        y * np.sin(2 * l0)
        - 2 * e * np.sin(m)
        + 4 * e * y * np.sin(m) * np.cos(2 * l0)
        - 0.5 * y * y * np.sin(4 * l0)
        - 1.25 * e * e * np.sin(2 * m)
    )
    return decl, eqtime


def solar_elevation(lon: npt.ArrayLike, lat: npt.ArrayLike, time_utc: Any) -> np.ndarray:
    """Geometric elevation of the sun's centre, degrees above the horizon.

    ``lon``/``lat`` in degrees (WGS84, east/north positive); ``time_utc`` any
    datetime-like scalar or array (naive = UTC). Inputs broadcast; the result
    is a 1-D float64 array, NaN where the time is NaT. No refraction is
    applied: this is the sun's true position, not where it appears.
    """
    ns = _utc_ns(time_utc)
    lon_a, lat_a, ns = np.broadcast_arrays(
        np.atleast_1d(np.asarray(lon, dtype=np.float64)), np.atleast_1d(np.asarray(lat, dtype=np.float64)), ns
    )
    jd = ns / _NS_PER_DAY + _JD_UNIX_EPOCH
    decl, eqtime = _sun_declination_eqtime(jd)
    minutes_of_day = np.mod(ns / 6e10, _MINUTES_PER_DAY)
    true_solar_min = minutes_of_day + eqtime + 4.0 * lon_a
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    phi = np.radians(lat_a)
    cos_zen = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    return 90.0 - np.degrees(np.arccos(np.clip(cos_zen, -1.0, 1.0)))


def daynight(
    lon: npt.ArrayLike, lat: npt.ArrayLike, time_utc: Any, horizon_deg: float = 0.0
) -> pd.api.extensions.ExtensionArray:
    """"D" where the sun's centre is above ``horizon_deg``, else "N"; <NA> where unknown.

    For fire products that do not carry a day/night flag. The default 0 deg
    uses the sun's true centre on the geometric horizon, which is simple to
    state and to check. It is not the same instant as :func:`sunset_utc`
    (-0.833 deg, the apparent upper limb): in China rows from 0 to about 5
    minutes before the "official" sunset are already "N". Pass
    ``horizon_deg=-0.833`` to make the two agree. (The satellite products'
    own flags use other thresholds, e.g. MODIS calls solar zenith < 85 deg
    day, so a product's own flag should win where it has one.)
    """
    elevation = solar_elevation(lon, lat, time_utc)
    lon_a, lat_a, _ = np.broadcast_arrays(
        np.atleast_1d(np.asarray(lon, dtype=np.float64)), np.atleast_1d(np.asarray(lat, dtype=np.float64)), elevation
    )
    out = pd.array(np.where(elevation > horizon_deg, "D", "N"), dtype="string")
    out[np.isnan(elevation) | np.isnan(lon_a) | np.isnan(lat_a)] = pd.NA
    return out


def sunset_utc(lon: npt.ArrayLike, lat: npt.ArrayLike, date_bjt: Any) -> pd.DatetimeIndex:
    """Sunset (sun's upper limb on the horizon, -0.833 deg) on a Beijing calendar date, as UTC instants.

    ``lon``/``lat`` in degrees (WGS84); ``date_bjt`` Beijing-local calendar
    dates (``datetime.date``, "2022-06-03", naive datetime64: time of day
    ignored; tz-aware: converted to Beijing first). Inputs broadcast; the
    result is a 1-D ``DatetimeIndex`` (tz UTC, ns, rounded to the second),
    NaT where the sun does not set that day (polar day/night, never in
    China) or an input is missing.

    Sunset is found on the Beijing date, not the UTC date: for any place in
    China the two agree, but far west of China they would not.
    """
    day = _bjt_day_number(date_bjt)
    lon_a, lat_a, day = np.broadcast_arrays(
        np.atleast_1d(np.asarray(lon, dtype=np.float64)), np.atleast_1d(np.asarray(lat, dtype=np.float64)), day
    )
    phi = np.radians(lat_a)
    cos_z = math.cos(math.radians(SUNSET_ZENITH_DEG))

    def solve(day_shift: np.ndarray) -> np.ndarray:
        # Minutes after 00:00 UTC of ``day``; the sun's position is re-evaluated
        # at the previous estimate because declination and the equation of time
        # drift enough over a day to move sunset by up to a minute.
        t = day_shift * _MINUTES_PER_DAY + 720.0 - 4.0 * lon_a
        for _ in range(3):
            decl, eqtime = _sun_declination_eqtime(_JD_UNIX_EPOCH + day + t / _MINUTES_PER_DAY)
            with np.errstate(invalid="ignore", divide="ignore"):
                cos_h = (cos_z - np.sin(phi) * np.sin(decl)) / (np.cos(phi) * np.cos(decl))
            # |cos_h| > 1: the sun never reaches the sunset zenith (polar day or night).
            hour_angle = np.degrees(np.arccos(np.where(np.abs(cos_h) <= 1.0, cos_h, np.nan)))
            t = day_shift * _MINUTES_PER_DAY + 720.0 - 4.0 * lon_a - eqtime + 4.0 * hour_angle
        return t

    shift = np.zeros_like(lon_a)
    t = solve(shift)
    # Far from 120E the sunset nearest the UTC day can fall on the neighbouring
    # Beijing date; step to the solar day whose sunset is on the wanted date.
    with np.errstate(invalid="ignore"):
        wrong_day = np.floor((t + _BEIJING_OFFSET_MIN) / _MINUTES_PER_DAY)
    needs_fix = np.nan_to_num(wrong_day) != 0
    if needs_fix.any():
        shift = np.where(needs_fix, -np.nan_to_num(wrong_day), 0.0)
        t = np.where(needs_fix, solve(shift), t)

    seconds = np.round(day * 86_400.0 + t * 60.0)
    return pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True)).as_unit("ns")


# --------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------


def parse_hhmm(value: str, field: str = "time") -> pd.Timedelta:
    """Parse a Beijing clock time "HH:MM" (00:00-24:00; 24:00 is the end of the day)."""
    match = _HHMM.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{field}: expected a clock time 'HH:MM', got {value!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise ValueError(f"{field}: {value!r} is not a time between 00:00 and 24:00")
    return pd.Timedelta(hours=hours, minutes=minutes)


@dataclass(frozen=True)
class ClockWindows:
    """Definition of the 收工时 and 上半夜 windows (Beijing time).

    mode: "sun" (relative to local sunset) or "fixed" (fixed clock hours).
    after_work_start_h, after_work_end_h: 收工时 is
        [sunset + start, sunset + end), hours (sun mode).
    first_half_night_end: 上半夜 is [sunset + after_work_end_h, this clock
        time) on the fire's Beijing date, "HH:MM" between 12:00 and 24:00
        (sun mode). Windows running past midnight are not supported: a fire
        after midnight belongs to the next Beijing day and its sunset.
    fixed_after_work, fixed_first_half_night: ("HH:MM", "HH:MM") half-open
        clock ranges (fixed mode).

    Example::

        windows = ClockWindows(mode="fixed", fixed_after_work=("17:00", "19:00"))
        fires = flag_clock_windows(fires, windows)
    """

    mode: Literal["sun", "fixed"] = "sun"
    after_work_start_h: float = -1.5
    after_work_end_h: float = 0.5
    first_half_night_end: str = "24:00"
    fixed_after_work: tuple[str, str] = ("17:00", "19:00")
    fixed_first_half_night: tuple[str, str] = ("19:00", "24:00")

    def __post_init__(self) -> None:
        if self.mode not in ("sun", "fixed"):
            raise ValueError(f"mode: must be 'sun' or 'fixed', got {self.mode!r}")
        for name in ("after_work_start_h", "after_work_end_h"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: must be a finite number of hours, got {value!r}")
            if not -12.0 <= value <= 12.0:
                raise ValueError(f"{name}: must be within 12 hours of sunset, got {value!r}")
        if not self.after_work_start_h < self.after_work_end_h:
            raise ValueError(
                "after_work_start_h must be less than after_work_end_h, got "
                f"{self.after_work_start_h!r} >= {self.after_work_end_h!r}"
            )
        end = parse_hhmm(self.first_half_night_end, "first_half_night_end")
        if end < pd.Timedelta(hours=12):
            raise ValueError(
                f"first_half_night_end: must be between 12:00 and 24:00 on the fire's Beijing date, "
                f"got {self.first_half_night_end!r}"
            )
        for name in ("fixed_after_work", "fixed_first_half_night"):
            pair = getattr(self, name)
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"{name}: expected two clock times ('HH:MM', 'HH:MM'), got {pair!r}")
            start, stop = (parse_hhmm(v, name) for v in pair)
            if not start < stop:
                raise ValueError(f"{name}: start {pair[0]!r} must be before end {pair[1]!r}")
            # Config files give lists; store tuples so the instance stays hashable.
            object.__setattr__(self, name, tuple(pair))
        object.__setattr__(self, "after_work_start_h", float(self.after_work_start_h))
        object.__setattr__(self, "after_work_end_h", float(self.after_work_end_h))


def fire_times_utc(fires: pd.DataFrame, who: str) -> pd.DatetimeIndex:
    """The fires' ``time_utc`` (ns, UTC), after checking ``lon``, ``lat`` and a tz-aware ``time_utc`` are there.

    Raises ``ValueError`` naming ``who`` (the caller) otherwise.
    """
    missing = [c for c in ("lon", "lat", "time_utc") if c not in fires.columns]
    if missing:
        raise ValueError(f"{who}: missing column(s) {missing}")
    time = pd.DatetimeIndex(fires["time_utc"])
    if time.tz is None:
        raise ValueError(f"{who}: time_utc must be tz-aware (UTC); got naive datetimes")
    return time.tz_convert("UTC").as_unit("ns")


def flag_clock_windows(fires: pd.DataFrame, windows: ClockWindows | None = None) -> pd.DataFrame:
    """Return a copy of ``fires`` with the clock-window columns added.

    ``fires`` needs ``lon``, ``lat`` (degrees, WGS84) and ``time_utc``
    (tz-aware). Added:

    * ``sunset_bjt``: sunset at the fire's position on its Beijing date
      (tz Asia/Shanghai), in both modes;
    * ``win_after_work``, ``win_first_half_night``: bool, per ``windows``
      (default :class:`ClockWindows`); False where time or sunset is missing;
    * ``win_before_rain``, ``win_before_sowing``: nullable boolean <NA>, only
      if absent (later stages fill them; existing values are kept).

    Example::

        fires = flag_clock_windows(attribute(points, grid))   # default: relative to sunset
        fires.loc[fires["win_first_half_night"], ["time_bjt", "sunset_bjt"]]
    """
    windows = ClockWindows() if windows is None else windows
    time = fire_times_utc(fires, "flag_clock_windows")
    time_bjt = time.tz_convert(BEIJING_TZ)
    # Beijing has no DST, so normalize() is exactly local midnight.
    day_start = time_bjt.normalize()

    sunset = sunset_utc(fires["lon"].to_numpy(dtype=np.float64), fires["lat"].to_numpy(dtype=np.float64), day_start)

    if windows.mode == "sun":
        after_work_start = sunset + pd.Timedelta(hours=windows.after_work_start_h)
        after_work_end = sunset + pd.Timedelta(hours=windows.after_work_end_h)
        night_end = day_start + parse_hhmm(windows.first_half_night_end)
        after_work = (time >= after_work_start) & (time < after_work_end)
        first_half_night = (time >= after_work_end) & (time < night_end)
    else:
        clock = time_bjt - day_start
        aw = [parse_hhmm(v) for v in windows.fixed_after_work]
        fh = [parse_hhmm(v) for v in windows.fixed_first_half_night]
        after_work = (clock >= aw[0]) & (clock < aw[1])
        first_half_night = (clock >= fh[0]) & (clock < fh[1])

    out = fires.copy()
    out["sunset_bjt"] = pd.Series(sunset.tz_convert(BEIJING_TZ), index=out.index)
    out["win_after_work"] = pd.Series(np.asarray(after_work, dtype=bool), index=out.index)
    out["win_first_half_night"] = pd.Series(np.asarray(first_half_night, dtype=bool), index=out.index)
    for name in ("win_before_rain", "win_before_sowing"):
        if name not in out.columns:
            out[name] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    return out
