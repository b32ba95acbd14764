"""Fire-point tables from other agencies: CSV or Excel sheets with Chinese headers.

China's National Satellite Meteorological Centre (NSMC) and the Ministry of
Ecology and Environment's satellite centre publish their straw-burning fire
points (FY-3D MERSI, FY-4A/B AGRI, ...) as tables: an Excel sheet headed
``时间, 中心经度, 中心纬度, 省, 市, 县``; provincial bulletins add ``乡镇`` and
``卫星过境日期`` (a date without a time of day) and write coordinates in
degrees-minutes-seconds (``116°14'37.289"E``, ``126°38′24.5″``, ``126 38 24.5``).

Each configured ``[[fires.tables]]`` entry (``TableFormat``) says which
columns hold what (default: the centre's headers), the satellite and sensor,
the pixel size, the table's time zone (Beijing time unless configured) and,
for tables that give only a date, the overpass time to use per satellite. A
row that gets its time that way says so in its ``product`` text: a time is
never made up silently. The agency's own place names are kept in the
``agency_*`` columns beside gridwatch's attribution.

Row numbers are the file's line numbers (CSV) or the sheet's row numbers
(Excel); the header is on ``header_row``. Coordinates are taken as WGS84
degrees; times are stored in UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.csvtext import UnreadableFile, read_table, read_text, to_float
from pipelines.core.schema import empty_fires
from pipelines.core.settings import OVERPASS_CLOCK, TableFormat
from pipelines.core.skips import Skip
from pipelines.fires.readers.points import LEVEL_SCORE, assemble, level_from_score

# Our field -> the headers that name it by default, in order of preference. Headers are
# compared without spaces, case-insensitively, with full-width brackets made half-width.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("时间", "卫星过境时间", "过境时间", "监测时间", "观测时间", "卫星过境日期", "过境日期", "日期", "time", "date"),
    "clock": ("时刻", "过境时刻"),  # a time of day in its own column, used when `time` holds only a date
    "lon": ("中心经度", "经度", "lon", "longitude"),
    "lat": ("中心纬度", "纬度", "lat", "latitude"),
    "province": ("省", "省份", "省(区、市)", "省(自治区、直辖市)", "省名"),
    "city": ("市", "地市", "设区市", "市(州)", "地市州", "市名"),
    "county": ("县", "区县", "县(市、区)", "县(区)", "县(市)", "县名"),
    "township": ("乡镇", "乡(镇)", "乡镇(街道)", "乡镇街道"),
    "satellite": ("卫星", "卫星名称", "卫星名", "satellite"),
    "frp": ("FRP", "FRP(MW)", "火点强度", "强度", "frp"),
    "confidence": ("可信度", "置信度", "confidence"),
}
FIELDS = tuple(DEFAULT_COLUMNS)
REQUIRED = ("time", "lon", "lat")

# Satellites gridwatch knows, and the sensor whose fire product an agency table comes from.
SATELLITE_SENSORS: dict[str, str] = {
    "FY-3B": "VIRR",
    "FY-3C": "VIRR",
    "FY-3D": "MERSI",
    "FY-3E": "MERSI",
    "FY-3F": "MERSI",
    "FY-4A": "AGRI",
    "FY-4B": "AGRI",
    "FY-4C": "AGRI",
    "Terra": "MODIS",
    "Aqua": "MODIS",
    "Suomi NPP": "VIIRS",
    "NOAA-20": "VIIRS",
    "NOAA-21": "VIIRS",
    "Himawari-8": "AHI",
    "Himawari-9": "AHI",
}
# Pixel size at nadir (km) of each sensor's fire channels, where [[fires.tables]] pixel_km is 0.
# MERSI-II and VIRR: 1 km (VIRR 1.1 km); AGRI's 3.7 µm fire channel: 2 km at the sub-satellite
# point, growing away from it (about 3 km over north-east China).
PIXEL_KM: dict[str, float] = {"MERSI": 1.0, "VIRR": 1.1, "AGRI": 2.0, "MODIS": 1.0, "VIIRS": 0.375, "AHI": 2.0}

_OTHER_NAMES = {
    "terra": "Terra",
    "aqua": "Aqua",
    "npp": "Suomi NPP",
    "snpp": "Suomi NPP",
    "suominpp": "Suomi NPP",
    "noaa20": "NOAA-20",
    "n20": "NOAA-20",
    "noaa21": "NOAA-21",
    "n21": "NOAA-21",
    "himawari8": "Himawari-8",
    "h08": "Himawari-8",
    "himawari9": "Himawari-9",
    "h09": "Himawari-9",
}
_FENGYUN = re.compile(r"^(?:FY|风云)(?P<series>3|4|三号|四号)(?P<letter>[A-Z])星?$")

CONFIDENCE_WORDS = {
    "高": "high",
    "high": "high",
    "h": "high",
    "中": "nominal",
    "中等": "nominal",
    "nominal": "nominal",
    "n": "nominal",
    "低": "low",
    "low": "low",
    "l": "low",
}

# In the product text of rows whose time is a configured overpass (the table gave a date only).
OVERPASS_NOTE = "date only: time is the configured overpass"


# Decimal degrees or degrees-minutes(-seconds), with an optional hemisphere before or after.
_ANGLE = re.compile(
    r"""^(?P<pre>[NSEW]|东经|西经|北纬|南纬)?\s*(?P<sign>[-+])?\s*
    (?P<deg>\d+(?:\.\d+)?)
    (?:
        \s*(?:[°º˚度:]|\s)\s*(?P<min>\d+(?:\.\d+)?)
        (?:
            \s*(?:['′’分:]|\s)\s*(?P<sec>\d+(?:\.\d+)?)\s*(?:["″”秒]|''|′′)?
          | \s*['′’分]
        )?
      | \s*[°º˚度]
    )?
    \s*(?P<post>[NSEW])?$""",
    re.VERBOSE | re.IGNORECASE,
)
# Dates as 2025-11-18, 2025/11/18, 2025.11.18 or 2025年11月18日, optionally with a clock
# (13:59, 13:59:30, 13时59分); or compact 20251118 / 202511181359 / 20251118135930.
_STAMP = re.compile(
    r"^(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:[\sT]*(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{1,2})\s*分?(?:\s*[:：]?\s*(?P<S>\d{1,2})(?:\.\d+)?\s*秒?)?)?$"
)
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?:[\sT]?(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})?)?$")
_CLOCK = re.compile(r"^(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{1,2})\s*分?(?:\s*[:：]?\s*(?P<S>\d{1,2})(?:\.\d+)?\s*秒?)?$|^(?P<H2>\d{2})(?P<M2>\d{2})$")


def check_format(fmt: TableFormat) -> None:
    """ValueError naming the ``[[fires.tables]]`` key this reader cannot use (satellite, pixel size, columns, confidence)."""
    fmt.check()
    satellite = satellite_name(fmt.satellite) if fmt.satellite else None
    if fmt.satellite and satellite is None and not fmt.sensor:
        raise ValueError(f"satellite = {fmt.satellite!r} is not one gridwatch knows ({', '.join(SATELLITE_SENSORS)}): also set sensor")
    sensor = fmt.sensor or (SATELLITE_SENSORS.get(satellite) if satellite else None)
    if fmt.pixel_km < 0 or (fmt.pixel_km == 0 and sensor is not None and sensor not in PIXEL_KM):
        raise ValueError(f"pixel_km = {fmt.pixel_km}: expected km > 0 (sensor {sensor} has no default; those with one: "
                         f"{', '.join(f'{k} {v} km' for k, v in PIXEL_KM.items())})")
    for ours, theirs in fmt.columns.items():
        if ours not in FIELDS:
            raise ValueError(f"columns.{ours}: unknown field; expected one of {', '.join(FIELDS)}")
        if not theirs.strip():
            raise ValueError(f"columns.{ours} = {theirs!r}: expected a column header")
    if fmt.confidence and _confidence_value(fmt.confidence)[0] is None:
        raise ValueError(f'confidence = {fmt.confidence!r}: expected "", a percentage 0-100, or low/nominal/high (低/中/高)')


def overpass(fmt: TableFormat, satellite: str) -> tuple[int, int, bool] | None:
    """(hour, minute, is UTC) of the configured overpass of ``satellite``, or None."""
    for name, clock in fmt.overpass_times.items():
        if (satellite_name(name) or name.strip()) == satellite:
            m = OVERPASS_CLOCK.match(clock.strip())
            return int(m["H"]), int(m["M"]), bool(m["utc"])
    return None


def satellite_name(text: str) -> str | None:
    """The canonical name of a satellite as agencies write it (FY3D, FY-3D, 风云三号D星, Aqua), or None."""
    key = re.sub(r"[\s_\-]", "", text.split("/")[0]).upper()
    m = _FENGYUN.match(key)
    if m:
        series = {"三号": "3", "四号": "4"}.get(m["series"], m["series"])
        return f"FY-{series}{m['letter']}"
    return _OTHER_NAMES.get(key.lower())


def parse_angle(text: pd.Series, axis: str) -> tuple[pd.Series, pd.Series]:
    """Degrees from decimal or degrees-minutes-seconds text; and per row "" or why not.

    ``axis`` is "lon" or "lat": a hemisphere letter of the other axis (N on a
    longitude) is an error; S and W make the value negative. Reasons: "missing",
    "unparsable", "minutes or seconds of 60 or more", "hemisphere". The range
    is not checked here.
    """
    parts = text.str.extract(_ANGLE)
    deg = pd.to_numeric(parts["deg"], errors="coerce")
    minutes = pd.to_numeric(parts["min"], errors="coerce")
    seconds = pd.to_numeric(parts["sec"], errors="coerce")
    value = deg + minutes.fillna(0) / 60 + seconds.fillna(0) / 3600
    letters = (parts["pre"].fillna("") + parts["post"].fillna("")).str.upper()
    letters = letters.replace({"东经": "E", "西经": "W", "北纬": "N", "南纬": "S"})
    negative = letters.isin(["S", "W"]) | (parts["sign"] == "-")
    value = value.where(~negative, -value)
    # Minutes need whole degrees, seconds whole minutes.
    mixed = (minutes.notna() & (deg % 1 != 0)) | (seconds.notna() & (minutes % 1 != 0))
    own = {"lon": {"", "E", "W"}, "lat": {"", "N", "S"}}[axis]
    reason = np.select(
        [text == "", deg.isna() | mixed | (letters.str.len() > 1), (minutes >= 60) | (seconds >= 60), ~letters.isin(own)],
        ["missing", "unparsable", "minutes or seconds of 60 or more", "hemisphere"],
        "",
    )
    reason = pd.Series(reason, index=text.index, dtype=object)
    return value.where(reason == ""), reason


def parse_stamp(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Naive local date-times from date (and clock) text; and a mask of rows that had a clock.

    NaT where the text is no date (or no valid one, such as 2025年13月1日).
    """
    parts = text.str.extract(_STAMP)
    compact = text.str.extract(_COMPACT)
    parts = parts.fillna(compact)
    has_clock = parts["H"].notna()
    numbers = parts.apply(pd.to_numeric, errors="coerce")
    hour, minute, second = numbers["H"].fillna(0), numbers["M"].fillna(0), numbers["S"].fillna(0)
    stamp = pd.to_datetime(
        pd.DataFrame({"year": numbers["y"], "month": numbers["m"], "day": numbers["d"], "hour": hour, "minute": minute, "second": second}),
        errors="coerce",
    )
    # pandas carries 25:61 over into the next day; a clock out of range is no time.
    valid = hour.between(0, 23) & minute.between(0, 59) & second.between(0, 59)
    return stamp.where(valid), has_clock


def parse_clock(text: pd.Series) -> pd.Series:
    """Time of day (a Timedelta) from ``13:59``, ``13:59:30``, ``13时59分`` or ``1359``; NaT where unparsable."""
    parts = text.str.extract(_CLOCK)
    hours = pd.to_numeric(parts["H"].fillna(parts["H2"]), errors="coerce")
    minutes = pd.to_numeric(parts["M"].fillna(parts["M2"]), errors="coerce")
    seconds = pd.to_numeric(parts["S"], errors="coerce").fillna(0)
    ok = hours.between(0, 23) & minutes.between(0, 59) & seconds.between(0, 59)
    return pd.to_timedelta((hours * 3600 + minutes * 60 + seconds).where(ok), unit="s")


def read_table_file(path: str | Path, fmt: TableFormat) -> tuple[pd.DataFrame, list[Skip]]:
    """Read one agency fire-point table (CSV or .xlsx) into the common fire-point frame.

    Never raises for bad input: a file that cannot be used is one skip; each
    bad row is one skip naming the file, the row (line or sheet row), the
    agency's column header and why.

    Example::

        fmt = TableFormat(path=("nsmc/*.xlsx",), satellite="FY-3D")
        frame, skips = read_table_file("nsmc/火点_20251119.xlsx", fmt)
        frame[["time_utc", "lon", "lat", "agency_county"]]
    """
    path = Path(path)
    try:
        header, cells, rows, skips = _cells(path, fmt)
        return _parse(path.name, header, cells, rows, fmt, skips)
    except UnreadableFile as exc:
        return empty_fires(), [Skip(path.name, str(exc))]


def _cells(path: Path, fmt: TableFormat) -> tuple[list[str], pd.DataFrame, np.ndarray, list[Skip]]:
    """Header, string cells (columns by position) and the row number of each row."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _excel_cells(path, fmt)
    if suffix == ".xls":
        raise UnreadableFile("Excel 97-2003 (.xls) workbook: save it as .xlsx or CSV")
    text = read_text(path)
    header = None
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            if reader.line_num >= fmt.header_row:
                header = row if reader.line_num == fmt.header_row else None
                break
    except csv.Error as exc:
        raise UnreadableFile(f"unparsable CSV before the header: {exc}") from None
    if not header:
        raise UnreadableFile(f"no column header on line {fmt.header_row} (header_row)")
    table = read_table(path, text, fmt.header_row, header)
    cells = table.frame.set_axis(range(len(header)), axis=1)
    return [h.strip() for h in header], cells, table.lines, table.skips


def _excel_cells(path: Path, fmt: TableFormat) -> tuple[list[str], pd.DataFrame, np.ndarray, list[Skip]]:
    import openpyxl  # only where a workbook is read
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise UnreadableFile(f"cannot open as an Excel workbook: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises zipfile.BadZipFile and others
        raise UnreadableFile(f"cannot open as an Excel workbook: {type(exc).__name__}: {exc}") from None
    try:
        if fmt.sheet and fmt.sheet not in book.sheetnames:
            raise UnreadableFile(f"no sheet {fmt.sheet!r} (sheet); the workbook has {', '.join(book.sheetnames)}")
        sheet = book[fmt.sheet] if fmt.sheet else book.worksheets[0]
        header: list[str] | None = None
        rows: list[list[str]] = []
        numbers: list[int] = []
        for number, row in enumerate(sheet.iter_rows(min_row=fmt.header_row), start=fmt.header_row):
            texts = [_cell_text(c) for c in row]
            if header is None:
                header = texts
                continue
            if not any(texts):
                continue
            rows.append((texts + [""] * len(header))[: len(header)])
            numbers.append(number)
    finally:
        book.close()
    if not header or not any(header):
        raise UnreadableFile(f"no column header on sheet row {fmt.header_row} (header_row)")
    cells = pd.DataFrame(rows, columns=range(len(header)), dtype=object) if rows else pd.DataFrame(columns=range(len(header)), dtype=object)
    return header, cells.astype(str), np.asarray(numbers, dtype="int64"), []


def _cell_text(cell: object) -> str:
    """A cell as text; a date-time cell keeps its clock only when it has one (or is formatted with hours)."""
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        has_clock = value.time() != dt.time(0) or "h" in str(getattr(cell, "number_format", "")).lower()
        return value.strftime("%Y-%m-%d %H:%M:%S") if has_clock else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def _normal(header: str) -> str:
    return re.sub(r"\s+", "", header).lower().replace("（", "(").replace("）", ")").replace("，", "、")


def _columns(header: list[str], fmt: TableFormat) -> dict[str, int]:
    """Our field -> position of its column; raises ``UnreadableFile`` for a missing required or configured column."""
    position = {}
    for i, h in enumerate(header):
        position.setdefault(_normal(h), i)
    found: dict[str, int] = {}
    for name in FIELDS:
        if name in fmt.columns:
            wanted = _normal(fmt.columns[name])
            if wanted not in position:
                raise UnreadableFile(f"no column {fmt.columns[name]!r} (columns.{name}); header is {', '.join(header)}")
            found[name] = position[wanted]
            continue
        hit = next((position[_normal(a)] for a in DEFAULT_COLUMNS[name] if _normal(a) in position), None)
        if hit is not None:
            found[name] = hit
    missing = [n for n in REQUIRED if n not in found]
    if missing:
        expected = "; ".join(f"{n}: {' / '.join(DEFAULT_COLUMNS[n][:4])}" for n in missing)
        raise UnreadableFile(f"no column for {', '.join(missing)} (expected {expected}, or set columns); header (row {fmt.header_row}, header_row) is {', '.join(header)}")
    if len(set(found.values())) < len(found):
        raise UnreadableFile(f"one column serves two fields: {found}; set columns")
    return found


def _confidence_value(text: str) -> tuple[float | None, str | None]:
    """(0-100 score or NaN, level or None) of a confidence text; (None, None) when unusable."""
    text = text.strip()
    word = CONFIDENCE_WORDS.get(text.lower())
    if word:
        return LEVEL_SCORE[word], word
    try:
        score = float(text)
    except ValueError:
        return None, None
    if not 0 <= score <= 100:
        return None, None
    return score, None


def _parse(file: str, header: list[str], cells: pd.DataFrame, lines: np.ndarray, fmt: TableFormat, skips: list[Skip]) -> tuple[pd.DataFrame, list[Skip]]:
    cols = _columns(header, fmt)
    if cells.empty:
        return empty_fires(), skips
    cells = cells.reset_index(drop=True)
    index = cells.index

    def text(name: str) -> pd.Series:
        return cells[cols[name]].astype(str).str.strip() if name in cols else pd.Series("", index=index, dtype=object)

    def label(name: str) -> str:
        return header[cols[name]] if name in cols else name

    lon, lon_why = parse_angle(text("lon"), "lon")
    lat, lat_why = parse_angle(text("lat"), "lat")

    # Satellite and sensor, row by row.
    named = text("satellite")
    satellite = named.map(lambda s: satellite_name(s) or s if s else None)
    configured = (satellite_name(fmt.satellite) or fmt.satellite.strip()) if fmt.satellite else None
    satellite = satellite.where(satellite.notna(), configured)
    sensor = satellite.map(lambda s: fmt.sensor or SATELLITE_SENSORS.get(s) if isinstance(s, str) else None)
    pixel = sensor.map(lambda s: fmt.pixel_km or PIXEL_KM.get(s, np.nan) if isinstance(s, str) else np.nan).astype("float64")

    # Time: the cell's own clock, else the clock column, else the configured overpass of the satellite.
    raw_time = text("time")
    stamp, has_clock = parse_stamp(raw_time)
    date_bad = stamp.isna()
    clock_text = text("clock")
    clock = parse_clock(clock_text)
    use_clock = ~has_clock & (clock_text != "")
    stamp = stamp.where(~use_clock, stamp.dt.normalize() + clock)
    from_overpass = ~has_clock & ~use_clock & stamp.notna()
    tz = fmt.timezone
    local = stamp.where(~from_overpass)
    time_utc = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    notes = pd.Series("", index=index, dtype=object)
    no_overpass = pd.Series(False, index=index)
    for sat in satellite[from_overpass].dropna().unique():
        rows = from_overpass & (satellite == sat)
        passing = overpass(fmt, sat)
        if passing is None:
            no_overpass |= rows
            continue
        hour, minute, utc = passing
        when = stamp[rows].dt.normalize() + pd.Timedelta(hours=hour, minutes=minute)
        zone = "UTC" if utc else tz
        time_utc.loc[rows] = when.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        notes[rows] = f"仅有日期, 时间取配置的过境时间 {hour:02d}:{minute:02d} {zone} / {OVERPASS_NOTE}"
    time_utc = time_utc.astype("datetime64[ns, UTC]")

    conf_raw = text("confidence")
    parsed = conf_raw.map(lambda t: _confidence_value(t) if t else (np.nan, None))
    conf_bad = parsed.map(lambda p: p[0] is None)
    default_score, default_level = _confidence_value(fmt.confidence) if fmt.confidence else (np.nan, None)
    score = parsed.map(lambda p: p[0]).where(conf_raw != "", default_score).astype("float64")
    level = parsed.map(lambda p: p[1]).where(conf_raw != "", default_level)
    level = level.astype("string").fillna(level_from_score(score))
    if fmt.confidence:
        notes = notes.where(conf_raw != "", notes.map(lambda n: (n + "; " if n else "") + f"可信度取配置值 confidence configured: {fmt.confidence}"))

    frp_text = text("frp")
    frp = to_float(frp_text)

    checks: list[tuple[str, pd.Series, pd.Series]] = [
        (label("lat"), lat_why != "", "latitude " + lat_why.map(_ANGLE_REASONS) + " '" + text("lat") + "'"),
        (label("lon"), lon_why != "", "longitude " + lon_why.map(_ANGLE_REASONS) + " '" + text("lon") + "'"),
        (label("lat"), ~lat.between(-90, 90), "latitude outside -90..90: '" + text("lat") + "'"),
        (label("lon"), ~lon.between(-180, 180), "longitude outside -180..180: '" + text("lon") + "'"),
        (label("time"), raw_time == "", pd.Series("date missing", index=index)),
        (label("time"), date_bad, "unparsable date '" + raw_time + "'; expected 2025-11-18, 2025/11/18, 2025年11月18日 or 20251118, with or without a clock (13:59)"),
        (label("clock"), use_clock & clock.isna(), "unparsable time of day '" + clock_text + "'; expected HH:MM, HH:MM:SS, HH时MM分 or HHMM"),
        (label("satellite"), satellite.isna(), pd.Series("no satellite: the row names none and [[fires.tables]] satellite is not set", index=index)),
        (label("satellite"), satellite.notna() & sensor.isna(),
         "unknown satellite '" + satellite.fillna("") + f"': expected one of {', '.join(SATELLITE_SENSORS)}, or set [[fires.tables]] sensor"),
        (label("satellite"), sensor.notna() & pixel.isna(), "no pixel size for sensor " + sensor.fillna("") + ": set [[fires.tables]] pixel_km"),
        (label("time"), no_overpass,
         "date without a time of day, and no [[fires.tables]] overpass_times entry for satellite " + satellite.fillna("")),
        (label("time"), stamp.notna() & time_utc.isna() & ~no_overpass, f"the local time does not exist or is ambiguous in {tz}"),
        (label("confidence"), conf_bad, "confidence '" + conf_raw + "' is neither 0-100 nor 高/中/低 (high/nominal/low)"),
        (label("frp"), (frp_text != "") & frp.isna(), "FRP '" + frp_text + "' is not a number (MW)"),
    ]
    good = np.ones(len(index), dtype=bool)
    bad_rows: list[Skip] = []
    for field_name, bad, reason in checks:
        new = np.asarray(bad, dtype=bool) & good
        for i in np.flatnonzero(new):
            bad_rows.append(Skip(file, str(reason.iloc[i]), row=int(lines[i]), field=field_name))
        good &= ~new
    skips = skips + sorted(bad_rows, key=lambda skip: skip.row)

    product = satellite.fillna("") + " " + sensor.fillna("") + " 火点表 fire-point table"
    product = product.where(notes == "", product + "; " + notes)
    columns = {
        "time_utc": time_utc,
        "lon": lon,
        "lat": lat,
        "sensor": sensor,
        "satellite": satellite,
        "product": product,
        "confidence": score,
        "confidence_level": level,
        "confidence_raw": conf_raw.replace("", pd.NA),
        "frp_mw": frp,
        "daynight": pd.NA,
        "scan_km": pixel,
        "track_km": pixel,
        "source_file": file,
        "source_row": lines,
        **{f"agency_{n}": text(n).replace("", pd.NA) for n in ("province", "city", "county", "township")},
    }
    if not good.any():
        return empty_fires(), skips
    # Only good rows reach the frame: a bad row has no time or place to hash into a fire_id.
    kept = {k: v.loc[good] if isinstance(v, pd.Series) else v[good] if isinstance(v, np.ndarray) else v for k, v in columns.items()}
    return assemble(kept, index[good]), skips


_ANGLE_REASONS = {
    "missing": "missing",
    "unparsable": "unparsable; expected decimal degrees or degrees-minutes-seconds (126°38'24.5\"E, 126 38 24.5)",
    "minutes or seconds of 60 or more": "has minutes or seconds of 60 or more",
    "hemisphere": "has the other axis' hemisphere letter",
    "": "",
}
