"""NOAA CSPP VIIRS Active Fires, I-band EDR exported as text (``AFIMG_*.txt``).

CSPP (the Community Satellite Processing Package, NOAA's active-fire
algorithm, ``cspp-active-fire-noaa``) writes, beside its NetCDF, a text file of
the granule's fire pixels: ``#`` comment lines (the last says ``number of
fire pixels: N``), then one line per pixel with seven comma-separated columns
— latitude, longitude (degrees), I04 brightness temperature (K), along-scan
and along-track pixel size (km), detection confidence (7/8/9 = low, nominal,
high, as in the MODIS/VNP14 fire mask) and FRP (MW). Rows carry no time:
every pixel gets the granule start from the file name
(``AFIMG_<sat>_dYYYYMMDD_tHHMMSSs_e..._b<orbit>_c<created>_<site>.txt``,
UTC), which is at most the granule's ~85 s early. This is NOAA's product, not
NASA's VNP14IMG.

Tested on a real file (tests/data/real_products/).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.csvtext import UnreadableFile, bad_float, read_table, to_float
from pipelines.core.skips import Skip
from pipelines.fires.readers.patterns import FilePattern
from pipelines.fires.readers.points import LEVEL_SCORE, assemble, bad_frp, bad_size, row_skips

FILENAME = "AFIMG_{platform:s}_d{start_time:%Y%m%d_t%H%M%S%f}_e{end_clock:7d}_b{orbit:d}_c{created:d}_{site:s}.txt"
PLATFORMS = (("npp", "Suomi NPP"), ("j01", "NOAA-20"), ("j02", "NOAA-21"), ("n20", "NOAA-20"), ("n21", "NOAA-21"))
COLUMNS = ["latitude", "longitude", "bt_i04", "scan", "track", "confidence", "frp"]
CONFIDENCE = {"7": "low", "8": "nominal", "9": "high"}
_COUNT = re.compile(r"^#\s*number of fire pixels:\s*(\d+)", re.MULTILINE)


def sniff(text: str) -> bool:
    return text.lstrip("\ufeff").startswith("# Active Fires I-band EDR")


def read(path: Path, text: str) -> tuple[pd.DataFrame, list[Skip]]:
    """The fire pixels of one AFIMG text file as the common fire-point frame (``schema.FIRE_DTYPES``).

    Raises ``UnreadableFile`` when the name carries no satellite or start time.
    A file whose rows disagree with its ``number of fire pixels`` line is read,
    with one skip saying how many rows are missing.
    """
    fields = FilePattern(FILENAME).parse(path.name)
    if fields is None:
        raise UnreadableFile("file name does not follow AFIMG_<sat>_dYYYYMMDD_tHHMMSSs_e..._b..._c..._<site>.txt; "
                             "the rows carry no time, so the name must")
    satellite = dict(PLATFORMS).get(str(fields["platform"]).lower())
    if satellite is None:
        raise UnreadableFile(f"unknown satellite {fields['platform']!r} in the file name; expected one of "
                             + ", ".join(p for p, _ in PLATFORMS))
    header_line = sum(1 for line in text.splitlines() if line.startswith("#"))
    table = read_table(path, text, header_line, COLUMNS)
    t = table.frame
    lat, lon = to_float(t["latitude"]), to_float(t["longitude"])
    scan, track, frp = to_float(t["scan"]), to_float(t["track"]), to_float(t["frp"])
    level = t["confidence"].map(CONFIDENCE).astype("string")
    good, skips = row_skips(path.name, table.lines, [
        ("latitude", lat.isna() | ~lat.between(-90, 90), "latitude missing or outside -90..90"),
        ("longitude", lon.isna() | ~lon.between(-180, 180), "longitude missing or outside -180..180"),
        ("confidence", level.isna(), "detection confidence is not 7, 8 or 9"),
        *[(c, bad_float(t[c]), f"{c} is not a number") for c in ("scan", "track", "frp")],
        ("frp", bad_frp(frp), "FRP is negative or not finite; expected >= 0 MW"),
        *[(c, bad_size(v), f"{c} is not a pixel size; expected 0 < {c} <= 10 km") for c, v in (("scan", scan), ("track", track))],
    ])
    declared = _COUNT.search(text)
    if declared and int(declared.group(1)) != len(t) + len(table.skips):
        skips.append(Skip(path.name, f"header says {declared.group(1)} fire pixels, the file has {len(t) + len(table.skips)} rows", field="number of fire pixels"))
    start = pd.Timestamp(fields["start_time"], tz="UTC")
    columns = {
        "time_utc": pd.Series(start, index=t.index, dtype="datetime64[ns, UTC]"),
        "lon": lon,
        "lat": lat,
        "sensor": "VIIRS",
        "satellite": satellite,
        "product": "CSPP AFIMG",
        "confidence": level.map(LEVEL_SCORE).astype("float64"),
        "confidence_level": level,
        "confidence_raw": t["confidence"],
        "frp_mw": frp,
        "daynight": pd.NA,
        "scan_km": scan,
        "track_km": track,
        "source_file": path.name,
        "source_row": table.lines,
    }
    return assemble(columns, t.index, np.asarray(good)), table.skips + skips
