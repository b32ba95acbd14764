"""NASA FIRMS active-fire CSV (MODIS MCD14DL/MCD14ML, VIIRS VNP14IMG/VJ114IMG).

FIRMS files come in many hands-on variants, all handled here:

* ``acq_date`` as ``2022-06-03`` or, re-saved by a spreadsheet, ``6/3/2022``
  (month first, as FIRMS' US-locale exports);
* ``acq_time`` (UTC) as ``0043``, ``00:15``, ``2:38`` or unpadded ``18`` (00:18);
* some republished files carry an ``acq_date`` rewritten to **Beijing time**
  with its clock (``2023/4/5 11:30``) while ``acq_time`` stays UTC (``3:30``):
  the two are checked against each other;
* MODIS confidence 0-100, VIIRS ``low``/``nominal``/``high`` or ``l``/``n``/``h``;
* satellite as ``T``/``A``/``N``/``1``/``2`` or spelled out, with an optional
  ``instrument`` column; ``frp`` sometimes written ``frpm``.

All coordinates are WGS84 degrees; ``scan``/``track`` are pixel sizes in km.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.csvtext import CsvTable, UnreadableFile, bad_float, first_line, header_fields, read_table, to_float
from pipelines.core.skips import Skip
from pipelines.fires.readers.points import LEVEL_SCORE, assemble, bad_frp, bad_size, level_from_score, row_skips

REQUIRED = ("latitude", "longitude", "acq_date", "acq_time")
ALIASES = {"frpm": "frp", "lat": "latitude", "lon": "longitude"}

SATELLITES = {
    "t": "Terra",
    "terra": "Terra",
    "a": "Aqua",
    "aqua": "Aqua",
    "n": "Suomi NPP",
    "npp": "Suomi NPP",
    "suomi npp": "Suomi NPP",
    "suomi-npp": "Suomi NPP",
    "1": "NOAA-20",
    "n20": "NOAA-20",
    "j1": "NOAA-20",
    "noaa-20": "NOAA-20",
    "2": "NOAA-21",
    "n21": "NOAA-21",
    "j2": "NOAA-21",
    "noaa-21": "NOAA-21",
}
MODIS_SATELLITES = {"Terra", "Aqua"}
VIIRS_WORDS = {"l": "low", "low": "low", "n": "nominal", "nominal": "nominal", "h": "high", "high": "high"}
# Nadir pixel sizes (km) where a file has no scan/track columns.
NADIR_KM = {"MODIS": 1.0, "VIIRS": 0.375}

_DATE = r"^(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})$"
_US_DATE = r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})$"
_BJT_STAMP = r"^(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})[ T](?P<H>\d{1,2}):(?P<M>\d{2})(?::\d{2})?$"


def sniff(text: str) -> bool:
    """Whether ``text`` starts with what looks like a FIRMS header (``read`` checks the rest)."""
    header = {h.strip().lower() for h in first_line(text).split(",")}
    header = {ALIASES.get(h, h) for h in header}
    return {"latitude", "longitude"} <= header and bool(header & {"acq_date", "acq_time", "confidence", "frp", "daynight"})


def read(path: Path, text: str) -> tuple[pd.DataFrame, list[Skip]]:
    """Parse one FIRMS file (``text``, decoded) into the common fire-point frame (``schema.FIRE_DTYPES``).

    Raises ``UnreadableFile`` when the file as a whole cannot be used (missing
    columns, not text); bad rows are left out and returned as skips.
    """
    header = [h.strip().lower() for h in header_fields(first_line(text))]
    header = [ALIASES.get(h, h) for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UnreadableFile(f"missing FIRMS column(s) {', '.join(missing)}; header is {','.join(header)}")
    table = read_table(path, text, 1, header)
    frame, skips = _parse(path.name, table)
    return frame, table.skips + skips


def _parse(file: str, table: CsvTable) -> tuple[pd.DataFrame, list[Skip]]:
    t = table.frame
    lat, lon = to_float(t["latitude"]), to_float(t["longitude"])
    stamp_utc, date_reason = _acq_datetime(t["acq_date"], t["acq_time"])
    satellite = t.get("satellite", pd.Series("", index=t.index)).str.lower().map(SATELLITES)
    sensor = _sensor(t, satellite)
    conf_raw = t.get("confidence", pd.Series("", index=t.index))
    conf, conf_level, conf_bad = _confidence(conf_raw, sensor)
    optional = {c: t.get(c, pd.Series("", index=t.index)) for c in ("frp", "scan", "track")}
    daynight = t.get("daynight", pd.Series("", index=t.index)).str.upper()

    good, skips = row_skips(
        file,
        table.lines,
        [
            ("latitude", lat.isna() | ~lat.between(-90, 90), "latitude missing or outside -90..90"),
            ("longitude", lon.isna() | ~lon.between(-180, 180), "longitude missing or outside -180..180"),
            ("acq_date", date_reason.str.startswith("acq_date"), "unparsable acq_date; expected YYYY-MM-DD, M/D/YYYY or a Beijing-time stamp"),
            ("acq_time", date_reason.str.startswith("acq_time"), "unparsable acq_time; expected HHMM, HH:MM or unpadded minutes (UTC)"),
            ("acq_date", date_reason.str.startswith("mismatch"), "acq_date's Beijing clock does not match acq_time (UTC) + 8 h"),
            ("satellite", satellite.isna(), "unknown satellite code"),
            ("confidence", conf_bad, "confidence is neither 0-100 nor low/nominal/high"),
            *[(c, bad_float(v), f"{c} is not a number") for c, v in optional.items()],
            ("frp", bad_frp(to_float(optional["frp"])), "frp is negative or not finite; expected fire radiative power >= 0 MW"),
            *[(c, bad_size(to_float(optional[c])), f"{c} is not a pixel size; expected 0 < {c} <= 10 km") for c in ("scan", "track")],
            ("daynight", ~daynight.isin(["D", "N", ""]), "daynight is not D or N"),
        ],
    )
    version = t.get("version", pd.Series("", index=t.index))
    scan, track = to_float(optional["scan"]), to_float(optional["track"])
    nadir = sensor.map(NADIR_KM).astype("float64")
    columns = {
        "time_utc": stamp_utc,
        "lon": lon,
        "lat": lat,
        "sensor": sensor,
        "satellite": satellite,
        "product": ("FIRMS " + sensor.fillna("") + " " + version).str.strip(),
        "confidence": conf,
        "confidence_level": conf_level,
        "confidence_raw": conf_raw,
        "frp_mw": to_float(optional["frp"]),
        "daynight": daynight.replace("", pd.NA),
        "scan_km": scan.fillna(nadir),
        "track_km": track.fillna(nadir),
        "source_file": file,
        "source_row": table.lines,
    }
    return assemble(columns, t.index, good), skips


def _sensor(t: pd.DataFrame, satellite: pd.Series) -> pd.Series:
    if "instrument" in t:
        named = t["instrument"].str.upper().str.extract(r"(MODIS|VIIRS)", expand=False)
    else:
        named = pd.Series(pd.NA, index=t.index, dtype="object")
    by_satellite = satellite.map(lambda s: "MODIS" if s in MODIS_SATELLITES else "VIIRS" if isinstance(s, str) else pd.NA)
    return named.fillna(by_satellite).astype("string")


def _confidence(raw: pd.Series, sensor: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """0-100 score, class, and the mask of invalid values."""
    word = raw.str.lower().map(VIIRS_WORDS)
    number = to_float(raw)
    score = number.where(number.notna(), word.map(LEVEL_SCORE)).astype("float64")
    level = word.astype("string").fillna(level_from_score(number))
    bad = (raw != "") & (score.isna() | ~score.between(0, 100))
    return score, level, bad


def _hhmm(acq_time: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Hours and minutes of ``acq_time`` (NaN where unparsable)."""
    colon = acq_time.str.extract(r"^(\d{1,2}):(\d{2})$").astype("float64")
    digits = acq_time.where(acq_time.str.fullmatch(r"\d{1,4}")).str.zfill(4)
    hours = colon[0].fillna(pd.to_numeric(digits.str[:2], errors="coerce"))
    minutes = colon[1].fillna(pd.to_numeric(digits.str[2:], errors="coerce"))
    ok = hours.between(0, 23) & minutes.between(0, 59)
    return hours.where(ok), minutes.where(ok)


def _acq_datetime(acq_date: pd.Series, acq_time: pd.Series) -> tuple[pd.Series, pd.Series]:
    """UTC acquisition instants, and per row "" or the reason it failed."""
    hours, minutes = _hhmm(acq_time)
    plain = acq_date.str.extract(_DATE).astype("float64")
    us = acq_date.str.extract(_US_DATE).astype("float64")
    bjt = acq_date.str.extract(_BJT_STAMP).astype("float64")
    ymd = plain.fillna(us[["y", "m", "d"]]).fillna(bjt[["y", "m", "d"]])
    day = pd.to_datetime(
        pd.DataFrame({"year": ymd["y"], "month": ymd["m"], "day": ymd["d"]}), errors="coerce"
    )
    is_bjt = bjt["y"].notna()
    offset = pd.to_timedelta(hours * 60 + minutes, unit="min")
    # A Beijing stamp carries its own clock: UTC is that minus 8 h, which must agree with acq_time.
    from_bjt = day + pd.to_timedelta(bjt["H"] * 60 + bjt["M"], unit="min") - pd.Timedelta(hours=8)
    utc = day + offset
    utc = utc.where(~is_bjt, from_bjt)
    mismatch = is_bjt & hours.notna() & (
        (from_bjt.dt.hour != hours) | (from_bjt.dt.minute != minutes)
    )
    reason = np.select(
        [day.isna(), hours.isna(), mismatch], ["acq_date", "acq_time", "mismatch"], ""
    )
    stamp = utc.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    return stamp, pd.Series(reason, index=acq_date.index, dtype=str)
