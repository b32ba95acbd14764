"""JAXA Himawari-8/9 AHI level-2 wildfire (WLF) CSV, one file per 10-minute scan.

File ``Hnn_YYYYMMDD_hhmm_L2WLFVER_FLDK.xxxxx_yyyyy.csv``: two ``#`` header
lines (scan times; column names), then one row per 0.02° fire grid cell with
``Time(UTC)`` as ``HHMM``, ``Area(km^2)``, ``Reliability`` (1 low, 3 normal,
5 high) and ``FRP`` in W m⁻² of the cell, so the cell's FRP in MW is
``Area × FRP`` (JAXA's README_Himawari_L2WLF, note 3).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.csvtext import UnreadableFile, bad_float, read_table, to_float
from pipelines.core.skips import Skip
from pipelines.fires.readers.points import LEVEL_SCORE, assemble, bad_frp, row_skips

FILENAME = "{platform:3s}_{start_time:%Y%m%d_%H%M}_L2WLF{version:s}_{sector:s}.csv"
GRID_DEG = 0.02
KM_PER_DEG_LON = 111.320  # at the equator
RELIABILITY = {"1": "low", "3": "nominal", "5": "high"}


def sniff(text: str) -> bool:
    return text.lstrip("\ufeff").startswith("#") and "# ID,Year" in text[:400]


def read(path: Path, text: str) -> tuple[pd.DataFrame, list[Skip]]:
    """Parse one WLF scan (``text``, decoded) into the common fire-point frame (``daynight`` left empty)."""
    head = text.splitlines()[:5]
    names_line = next((i for i, line in enumerate(head, start=1) if line.startswith("#") and "ID," in line), None)
    if names_line is None:
        raise UnreadableFile("no '# ID,Year,...' column header; not a Himawari L2 WLF file")
    header = [h.strip().lower() for h in head[names_line - 1].lstrip("#").split(",")]
    missing = [c for c in ("year", "month", "day", "time(utc)", "lat", "lon", "area(km^2)") if c not in header]
    if missing:
        raise UnreadableFile(f"missing WLF column(s) {', '.join(missing)}")
    table = read_table(path, text, names_line, header)
    t = table.frame
    lat, lon, area = to_float(t["lat"]), to_float(t["lon"]), to_float(t["area(km^2)"])
    frp_density = to_float(t.get("frp(wm^-2)", pd.Series("", index=t.index)))
    hhmm = t["time(utc)"].where(t["time(utc)"].str.fullmatch(r"\d{1,4}")).str.zfill(4)
    # pandas would roll 2500 over into the next day: a clock must read 0000-2359.
    hhmm = hhmm.where(pd.to_numeric(hhmm.str[:2], errors="coerce").lt(24) & pd.to_numeric(hhmm.str[2:], errors="coerce").lt(60))
    stamp = pd.to_datetime(
        pd.DataFrame(
            {
                "year": pd.to_numeric(t["year"], errors="coerce"),
                "month": pd.to_numeric(t["month"], errors="coerce"),
                "day": pd.to_numeric(t["day"], errors="coerce"),
                "hour": pd.to_numeric(hhmm.str[:2], errors="coerce"),
                "minute": pd.to_numeric(hhmm.str[2:], errors="coerce"),
            }
        ),
        errors="coerce",
    ).dt.tz_localize("UTC")
    reliability = t.get("reliability", pd.Series("", index=t.index))
    level = reliability.map(RELIABILITY).astype("string")
    good, skips = row_skips(
        path.name,
        table.lines,
        [
            ("Lat", lat.isna() | ~lat.between(-90, 90), "latitude missing or outside -90..90"),
            ("Lon", lon.isna() | ~lon.between(-180, 180), "longitude missing or outside -180..180"),
            ("Time(UTC)", stamp.isna(), "unparsable date or Time(UTC); expected Year, Month, Day and HHMM"),
            ("Area(km^2)", area.isna() | ~((area > 0) & (area <= 100)), "pixel area missing or outside 0-100 km²"),
            ("Reliability", (reliability != "") & level.isna(), "reliability is not 1, 3 or 5"),
            ("FRP(Wm^-2)", bad_float(t.get("frp(wm^-2)", pd.Series("", index=t.index))), "FRP is not a number"),
            ("FRP(Wm^-2)", bad_frp(frp_density), "FRP is negative or not finite; expected W/m² >= 0"),
        ],
    )
    # Cells are 0.02° squares: 0.02° of longitude across scan, the rest of the area along track.
    scan_km = GRID_DEG * KM_PER_DEG_LON * np.cos(np.radians(lat))
    track_km = area / scan_km
    number = re.match(r"H(\d{2})_", path.name)
    satellite = f"Himawari-{int(number.group(1))}" if number else "Himawari"
    version = re.search(r"L2WLF(\w+?)_", path.name)
    columns = {
        "time_utc": stamp,
        "lon": lon,
        "lat": lat,
        "sensor": "AHI",
        "satellite": satellite,
        "product": "JAXA L2WLF" + (f" {version.group(1)}" if version else ""),
        "confidence": level.map(LEVEL_SCORE).astype("float64"),
        "confidence_level": level,
        "confidence_raw": reliability,
        "frp_mw": frp_density * area,
        "daynight": pd.NA,
        "scan_km": scan_km,
        "track_km": track_km,
        "source_file": path.name,
        "source_row": table.lines,
    }
    return assemble(columns, t.index, good), table.skips + skips
