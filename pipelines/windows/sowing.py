"""播种前 "before sowing": crop-calendar windows for the straw-burning window.

China's straw-burning campaigns single out the days before sowing or
transplanting (播种前/栽种前): straw is burnt to clear a harvested field for the
next crop. On the North China Plain (NCP) winter wheat is sown in October after
the maize harvest and summer maize in June right after the wheat harvest; in
the Yangtze River Delta (YRD) rice is transplanted in June after the wheat
harvest and wheat or rapeseed is sown in October-November after the rice.

A fire is **before sowing** when its Beijing calendar date falls within
``days_before`` days (default 15) before the start of a local sowing window, or
inside the window. ``days_to_sowing = sowing_start - fire_date`` in whole days:
positive before the window, 0 on its first day, negative inside it.

Units and conventions
---------------------
* Dates are Beijing (UTC+8) calendar dates; a fire's date is the date of its
  ``time_bjt``. Output dates are naive ``datetime64[ns]`` at midnight, to be read
  as Beijing dates.
* Day of year (DOY) is 1-based: DOY 1 is 1 January of the fire's year, so DOY
  166 is 15 June in a common year and 14 June in a leap year (the rasters carry
  no year; the one-day leap-year shift is well inside their 0.5° smoothing).
* ``mm-dd`` strings are month-day in the year of the window; a window whose end
  is earlier than its start ends in the next year.
* Coordinates are WGS84 degrees (lon east, lat north).

Sources, by precedence of the evidence reported
-----------------------------------------------
1. **Sowing table** (winter wheat), ``geodata/crop_calendar/winter_wheat_sowing_windows_by_region.csv``:
   suitable winter-wheat sowing dates by sub-province (Henan, Hebei, Shandong,
   Anhui, Shanxi, Shaanxi) from provincial agricultural guidance as republished
   (source URL per row, medium confidence). A county is resolved through its
   city with ``subregion_cities.csv``, a mapping *we* authored from the usual
   geographic meaning of 豫北/豫中/冀南/鲁西... (see the README there).
   Within a province: the current sub-region row, then an older version of the
   guidance (e.g. "河南(2016 version)"), then a multi-province zone part
   (黄淮北片 "冀南", 黄淮南片 "皖北"), then a whole-province zone row
   (黄淮北片 "鲁全省", 黄淮南片 "豫").
2. **WorldCereal crop calendars** (Franch et al. 2022, research product,
   phase 2 smoothed), 0.5°, day of year, nodata 0: ``S1`` = winter cereals,
   ``S2`` = summer crops. Their SOS is the *start of season* (emergence /
   green-up), not sowing, so the sowing window is ``[SOS - lead_days, SOS]``.
   ``lead_days`` defaults to 10 (:data:`DEFAULT_LEAD_DAYS`): summer maize sown
   in June heat emerges in about 5-7 days and SOS as seen from space lags
   emergence by a few more, so 10 days puts the window start at the usual
   early-June sowing (Zhengzhou: S2 SOS 166 = 15 June, window 5-15 June).
   For winter wheat the S1 SOS is much later than sowing on the NCP (Zhengzhou
   S1 SOS 311 = 7 Nov against the table's 13-22 Oct; Jinan 316 = 12 Nov against
   1-10 Oct): it is the autumn green-up, 3-6 weeks after sowing, so the table
   is the better winter-wheat evidence where it applies; ``lead_days`` may be a
   mapping per season (``{"S1": 30, "S2": 10}``) to correct for it.
3. **Regional defaults** (:class:`RegionDefault`, :data:`DEFAULT_REGIONS`):
   fixed month-day windows for a bounding box, used for a season (winter:
   ``S1``, summer: ``S2``) only where neither the table nor a raster gives a
   window of that season for the fire.

Every applicable window counts: a fire is before sowing if it is within
``days_before`` before the start of *any* of them, or inside one. The evidence
reported is the first such window in the order above; when none qualifies, the
window whose start is nearest ahead (or that the fire is in). Where no source
covers the fire the answer is ``<NA>`` (unknown), never ``False``.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pipelines.core import refdata
from pipelines.core.schema import BEIJING_TZ
from pipelines.core.settings import RegionDefault, mmdd
from pipelines.core.skips import Skip

# The copies shipped in the package (pipelines/data/crop_calendar, see refdata).
SOWING_TABLE = refdata.shipped(refdata.SOWING_TABLE)
SUBREGION_CITIES = refdata.shipped(refdata.SUBREGION_CITIES)
# Season -> WorldCereal SOS raster (clip 105-135°E, 20-50°N of the global 0.5° grid).
RASTERS: dict[str, Path] = {
    "S1": refdata.shipped(refdata.WINTER_RASTER),
    "S2": refdata.shipped(refdata.SUMMER_RASTER),
}
SEASON_CROPS = {"S1": "winter cereals", "S2": "summer crops"}  # WorldCereal's own names

DEFAULT_LEAD_DAYS = 10  # emergence (SOS) - sowing, days; see the module docstring
DEFAULT_DAYS_BEFORE = (
    15  # a fire this many days before a sowing start is "before sowing"
)

OUTPUT_COLUMNS = [
    "win_before_sowing",
    "sowing_crop",
    "sowing_start",
    "sowing_end",
    "sowing_source",
    "days_to_sowing",
]

_TABLE_REQUIRED = (
    "province",
    "subregion",
    "sow_start_mmdd",
    "sow_end_mmdd",
    "source_url",
)
_MAP_REQUIRED = ("province", "subregion", "city_name")

# Single-character province abbreviations used in the zone rows (黄淮北片(鲁全省/冀南/晋南) ...).
_ABBREV = {
    "京": "北京",
    "津": "天津",
    "冀": "河北",
    "晋": "山西",
    "鲁": "山东",
    "豫": "河南",
    "皖": "安徽",
    "苏": "江苏",
    "浙": "浙江",
    "沪": "上海",
    "鄂": "湖北",
    "陕": "陕西",
    "秦": "陕西",
}
_PART_PROVINCE = {
    "关中": "陕西",
    "陕南": "陕西",
    "陕北": "陕西",
}  # zone parts not led by an abbreviation
_PROVINCE_SUFFIXES = (
    "壮族自治区",
    "回族自治区",
    "维吾尔自治区",
    "特别行政区",
    "自治区",
    "省",
    "市",
)

# Levels of table rows: lower wins.
LEVEL_SUBREGION, LEVEL_OLD_VERSION, LEVEL_ZONE_PART, LEVEL_ZONE_PROVINCE = 0, 1, 2, 3


@dataclass(frozen=True)
class SowingWindow:
    """A sowing window for one year: ``start``..``end`` inclusive, Beijing dates."""

    crop: str
    start: datetime.date
    end: datetime.date
    source: str





# --------------------------------------------------------------------------
# Names and dates
# --------------------------------------------------------------------------


def short_province(name: object) -> str:
    """Short province name: "河南省" -> "河南", "广西壮族自治区" -> "广西"; "" for missing values."""
    if name is None or (isinstance(name, float) and math.isnan(name)) or name is pd.NA:
        return ""
    text = str(name).strip()
    for suffix in _PROVINCE_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


def _city_key(name: object) -> str:
    """City names compared without the trailing 市 ("郑州市" == "郑州")."""
    if name is None or (isinstance(name, float) and math.isnan(name)) or name is pd.NA:
        return ""
    text = str(name).strip()
    return text[:-1] if text.endswith("市") and len(text) > 2 else text


def _date(year: int, text: str) -> datetime.date:
    month, day = mmdd(text)
    if (
        month == 2
        and day == 29
        and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0))
    ):
        day = 28
    return datetime.date(year, month, day)


def _window_dates(
    start_mmdd: str, end_mmdd: str, year: int
) -> tuple[datetime.date, datetime.date]:
    start, end = _date(year, start_mmdd), _date(year, end_mmdd)
    if end < start:
        end = _date(year + 1, end_mmdd)
    return start, end


def default_window(default: RegionDefault, year: int) -> SowingWindow:
    """The window of a configured regional default in ``year`` (an end before the start runs into the next year)."""
    start, end = _window_dates(default.start_mmdd, default.end_mmdd, year)
    return SowingWindow(default.crop, start, end, f"default {default.name} {default.crop}")


# --------------------------------------------------------------------------
# The sowing table
# --------------------------------------------------------------------------


def _zone_members(zone: str) -> list[tuple[str, str]]:
    """(province, part) pairs of a multi-province zone row; part "" = whole province.

    "黄淮北片(鲁全省/冀南/晋南)" -> [("山东", ""), ("河北", "冀南"), ("山西", "晋南")];
    "豫南冬麦区" -> [("河南", "豫南")].
    """
    match = re.match(r"^[^(（]*[(（](.+)[)）]\s*$", zone)
    parts = (
        re.split(r"[/、，,]", match.group(1))
        if match
        else [re.sub(r"(冬麦区|麦区)$", "", zone)]
    )
    members = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if part in _PART_PROVINCE:
            members.append((_PART_PROVINCE[part], part))
        elif part[0] in _ABBREV:
            rest = part[1:]
            whole = rest in ("", "全省", "省")
            members.append((_ABBREV[part[0]], "" if whole else part))
        else:
            raise ValueError(f"zone part {part!r} names no province")
    if not members:
        raise ValueError("zone names no province")
    return members


def read_sowing_table(
    path: str | Path = SOWING_TABLE,
    subregions_path: str | Path | None = SUBREGION_CITIES,
) -> tuple[pd.DataFrame, list[Skip]]:
    """Read the winter-wheat sowing table and resolve it to cities.

    Returns one row per (window row, city) with columns ``province`` (short
    name, "河南"), ``subregion`` (as written; for zone rows the zone part,
    "冀南", or "" for a whole province), ``city_name`` (<NA> where the row is
    for the whole province or no city is mapped to it), ``whole_province``,
    ``level`` (0 sub-region, 1 older version, 2 zone part, 3 whole-province zone;
    lower wins), ``crop`` ("winter wheat"), ``start_mmdd``, ``end_mmdd``,
    ``label`` (for ``sowing_source``), ``source_url``, ``source_line`` (1-based,
    header = 1), ``version`` and ``zone``.

    Rows without a usable start or end date, or whose province cell names no
    province, are skipped with a :class:`Skip` naming their line; so are
    mapping rows naming a sub-region the table does not have.
    """
    path = Path(path)
    skips: list[Skip] = []
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in _TABLE_REQUIRED if c not in raw.columns]
    if missing:
        return _empty_table(), [
            Skip(path.name, f"missing columns {', '.join(missing)}")
        ]

    records: list[dict[str, Any]] = []
    known_parts: set[tuple[str, str]] = set()
    for i, row in enumerate(raw.itertuples(index=False)):
        line = i + 2
        r = row._asdict()
        cell, sub = r["province"].strip(), r["subregion"].strip()
        url = r["source_url"].strip()
        try:
            members, version, zone = _row_scope(cell, sub)
        except ValueError as exc:
            skips.append(Skip(path.name, f"province {cell!r}: {exc}", line, "province"))
            continue
        known_parts.update((p, s) for p, s, _ in members)
        bad = None
        for field in ("sow_start_mmdd", "sow_end_mmdd"):
            value = r[field].strip()
            if not value:
                bad = Skip(
                    path.name, f"no sowing {field.split('_')[1]} date", line, field
                )
                break
            try:
                mmdd(value)
            except ValueError as exc:
                bad = Skip(path.name, f"{exc}", line, field)
                break
        if bad:
            skips.append(bad)
            continue
        where = zone or (f"{cell}/{sub}" if sub else cell)
        for province, part, level in members:
            records.append(
                {
                    "province": province,
                    "subregion": part,
                    "whole_province": part == "",
                    "level": level,
                    "crop": "winter wheat",
                    "start_mmdd": r["sow_start_mmdd"].strip(),
                    "end_mmdd": r["sow_end_mmdd"].strip(),
                    "label": f"table {where} ({url})" if url else f"table {where}",
                    "source_url": url,
                    "source_line": line,
                    "version": version,
                    "zone": zone,
                }
            )
    windows = pd.DataFrame.from_records(
        records, columns=[c for c in _TABLE_COLUMNS if c != "city_name"]
    )

    cities = pd.DataFrame(columns=["province", "subregion", "city_name"])
    if subregions_path is not None:
        cities, more = _read_subregion_cities(Path(subregions_path), known_parts)
        skips += more
    table = windows.merge(cities, on=["province", "subregion"], how="left")
    table.loc[table["whole_province"], "city_name"] = pd.NA
    table = table.drop_duplicates(
        subset=["province", "subregion", "city_name", "source_line"]
    )
    table["city_name"] = table["city_name"].astype("string")
    return table[_TABLE_COLUMNS].reset_index(drop=True), skips


_TABLE_COLUMNS = [
    "province", "subregion", "city_name", "whole_province", "level", "crop", "start_mmdd", "end_mmdd",
    "label", "source_url", "source_line", "version", "zone",
]  # fmt: skip


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=_TABLE_COLUMNS)


def _row_scope(cell: str, sub: str) -> tuple[list[tuple[str, str, int]], str, str]:
    """The (province, sub-region, level) rows a table row stands for, its version note and zone."""
    match = re.match(r"^([^(（]+)[(（](.+)[)）]\s*$", cell)
    base, note = (
        (match.group(1).strip(), match.group(2).strip()) if match else (cell, "")
    )
    province = short_province(base)
    is_province = province in _ABBREV.values()
    if is_province and sub:
        return (
            [(province, sub, LEVEL_OLD_VERSION if note else LEVEL_SUBREGION)],
            note,
            "",
        )
    if is_province:
        return [(province, "", LEVEL_ZONE_PROVINCE)], note, ""
    if sub:
        raise ValueError("names no province")
    members = _zone_members(cell)
    return (
        [
            (p, s, LEVEL_ZONE_PROVINCE if s == "" else LEVEL_ZONE_PART)
            for p, s in members
        ],
        "",
        cell,
    )


def _read_subregion_cities(
    path: Path, known: set[tuple[str, str]]
) -> tuple[pd.DataFrame, list[Skip]]:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in _MAP_REQUIRED if c not in raw.columns]
    if missing:
        return pd.DataFrame(columns=list(_MAP_REQUIRED)), [
            Skip(path.name, f"missing columns {', '.join(missing)}")
        ]
    skips: list[Skip] = []
    keep = []
    for i, row in enumerate(raw[list(_MAP_REQUIRED)].itertuples(index=False)):
        province, sub, city = (
            short_province(row.province),
            row.subregion.strip(),
            row.city_name.strip(),
        )
        if not (province and sub and city):
            skips.append(
                Skip(path.name, "empty province, subregion or city_name", i + 2)
            )
        elif (province, sub) not in known:
            skips.append(
                Skip(
                    path.name,
                    f"sub-region {province}/{sub} is not in the sowing table",
                    i + 2,
                    "subregion",
                )
            )
        else:
            keep.append((province, sub, city))
    return pd.DataFrame(keep, columns=list(_MAP_REQUIRED)), skips


def county_window(
    table: pd.DataFrame, *, province_name: str, city_name: str | None, year: int
) -> SowingWindow | None:
    """The winter-wheat sowing window of a county, found through its city.

    ``province_name`` may be full ("河南省") or short ("河南"); ``city_name``
    is the county's prefecture-level city ("郑州市", as in the county layer).
    The best level the province offers wins (sub-region, older version, zone
    part, whole-province zone); several rows at that level are merged into the
    span from the earliest start to the latest end. ``None`` when the place is
    not covered.
    """
    return _window_of_rows(_county_rows(table, province_name, city_name), year)


def _county_rows(table: pd.DataFrame, province_name: str, city_name: str | None) -> list[tuple[str, str, str, str]] | None:
    """The table rows that make a county's window (``county_window``), as (start_mmdd, end_mmdd, label, crop); None if none."""
    province, city = short_province(province_name), _city_key(city_name)
    if not province or table.empty:
        return None
    rows = table[table["province"] == province]
    keys = rows["city_name"].map(_city_key)
    rows = rows[rows["whole_province"].astype(bool) | ((keys == city) & (city != ""))]
    if rows.empty:
        return None
    rows = rows[rows["level"] == rows["level"].min()]
    return list(zip(rows["start_mmdd"], rows["end_mmdd"], rows["label"], rows["crop"], strict=True))


def _window_of_rows(rows: list[tuple[str, str, str, str]] | None, year: int) -> SowingWindow | None:
    if not rows:
        return None
    spans = [_window_dates(s, e, year) for s, e, _, _ in rows]
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    source = "; ".join(dict.fromkeys(label for _, _, label, _ in rows))
    return SowingWindow(str(rows[0][3]), start, end, source)


# --------------------------------------------------------------------------
# WorldCereal rasters
# --------------------------------------------------------------------------


def check_doy_raster(path: str | Path) -> str:
    """Why a day-of-year raster cannot be used ("" if it can): missing, unreadable, or not north-up.

    The crop-calendar rasters are small (0.5°): they are read whole, so a
    truncated file is found here, before the night depends on it.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.transform.b != 0 or src.transform.d != 0:
                return "rotated rasters are not supported"
            src.read(1)
    except rasterio.errors.RasterioError as exc:
        return f"cannot read the crop-calendar raster ({exc})"
    return ""


def sample_doy(path: str | Path, lon: npt.ArrayLike, lat: npt.ArrayLike) -> pd.Series:
    """Raster values (day of year) at points: nearest containing 0.5° cell; <NA> for nodata or outside."""
    import rasterio

    lon_a = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    with rasterio.open(path) as src:
        band = src.read(1)
        nodata = src.nodata
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise ValueError(f"{path}: rotated rasters are not supported")
        col_f, row_f = (lon_a - t.c) / t.a, (lat_a - t.f) / t.e
    ok = np.isfinite(col_f) & np.isfinite(row_f)
    col = np.floor(np.where(ok, col_f, -1)).astype(np.int64)
    row = np.floor(np.where(ok, row_f, -1)).astype(np.int64)
    ok &= (col >= 0) & (col < band.shape[1]) & (row >= 0) & (row < band.shape[0])
    values = np.zeros(lon_a.shape, dtype=np.int64)
    values[ok] = band[row[ok], col[ok]]
    valid = ok & (values >= 1) & (values <= 366)
    if nodata is not None:
        valid &= values != nodata
    return pd.Series(pd.array(np.where(valid, values, 0), dtype="Int64")).where(
        valid, pd.NA
    )


def _lead(lead_days: int | Mapping[str, int], season: str) -> int:
    if isinstance(lead_days, Mapping):
        return int(lead_days.get(season, DEFAULT_LEAD_DAYS))
    return int(lead_days)


def doy_windows(
    raster_paths: Mapping[str, str | Path],
    lon: npt.ArrayLike,
    lat: npt.ArrayLike,
    year: int | npt.ArrayLike,
    *,
    lead_days: int | Mapping[str, int] = DEFAULT_LEAD_DAYS,
) -> pd.DataFrame:
    """Sowing windows from WorldCereal SOS rasters, one row per point.

    ``raster_paths`` maps a season ("S1" winter cereals, "S2" summer crops) to
    its SOS raster (day of year, nodata 0). For each season ``s`` the frame has
    ``{s}_sos_doy`` (Int64), ``{s}_start`` = SOS - ``lead_days`` and ``{s}_end``
    = SOS (datetime64, Beijing dates in ``year``; NaT where the raster has no
    value). ``year`` is one year or one per point.
    """
    lon_a = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lat_a = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    years = np.broadcast_to(np.asarray(year, dtype=np.int64), lon_a.shape)
    jan1 = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    out: dict[str, object] = {}
    for season, path in raster_paths.items():
        doy = sample_doy(path, lon_a, lat_a)
        lead = _lead(lead_days, season)
        days = doy.to_numpy(dtype="float64", na_value=np.nan)
        end = np.where(
            np.isnan(days),
            np.datetime64("NaT"),
            jan1 + np.nan_to_num(days - 1).astype("timedelta64[D]"),
        )
        start = np.where(
            np.isnan(days), np.datetime64("NaT"), end - np.timedelta64(lead, "D")
        )
        out[f"{season}_sos_doy"] = doy.to_numpy()
        out[f"{season}_start"] = pd.to_datetime(start.astype("datetime64[ns]"))
        out[f"{season}_end"] = pd.to_datetime(end.astype("datetime64[ns]"))
    frame = pd.DataFrame(out)
    for season in raster_paths:
        frame[f"{season}_sos_doy"] = frame[f"{season}_sos_doy"].astype("Int64")
    return frame


# --------------------------------------------------------------------------
# Before sowing
# --------------------------------------------------------------------------


@dataclass
class _Candidate:
    """One source of windows for every fire: day numbers (days since 1970-01-01) per year offset."""

    season: str
    start: np.ndarray  # (n, 3) float, NaN = no window
    end: np.ndarray
    crop: np.ndarray  # (n,) object
    label: np.ndarray  # (n,) object


def _per_value(values: Any, fn: Callable[[object], str]) -> np.ndarray:
    """``fn`` of every value, computed once per distinct value (a plan asks for 44k cells of a few hundred counties)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    answers = np.array([fn(v) for v in uniques] + [fn(None)], dtype=object)
    return answers[codes]  # code -1 (missing) takes the last answer


def _fire_cities(fires: pd.DataFrame, counties: Any) -> tuple[np.ndarray, np.ndarray]:
    """Short province and city name of each fire ("" where unknown)."""
    n = len(fires)
    province = _per_value(fires.get("province_name", pd.Series([None] * n)).to_numpy(dtype=object), short_province)
    city = _per_value(fires.get("city_name", pd.Series([None] * n)).to_numpy(dtype=object), _city_key)
    if counties is None:
        return province, city
    if isinstance(counties, (str, Path)):
        import geopandas as gpd

        counties = gpd.read_parquet(counties)
    unique = counties.drop_duplicates("district_adcode")
    by_code = pd.DataFrame(
        {
            "city_name": unique["city_name"].to_numpy(),
            "province_name": unique["province_name"].to_numpy(),
        },
        index=unique["district_adcode"].astype(str).to_numpy(),
    )
    by_code = by_code[~by_code.index.duplicated()]
    need = city == ""
    if need.any() and "county_code" in fires.columns:
        rows = np.flatnonzero(need)
        codes = pd.Series(fires["county_code"].astype("string").to_numpy(dtype=object, na_value=None)[rows])
        known = codes.isin(by_code.index).to_numpy()
        rows, codes = rows[known], codes[known]
        city[rows] = _per_value(codes.map(by_code["city_name"]).to_numpy(dtype=object), _city_key)
        no_province = province[rows] == ""
        province[rows[no_province]] = _per_value(
            codes[no_province].map(by_code["province_name"]).to_numpy(dtype=object), short_province
        )
    need = city == ""
    if need.any() and "geometry" in getattr(counties, "columns", []):
        import geopandas as gpd

        sub = fires.iloc[np.flatnonzero(need)]
        points = gpd.GeoDataFrame(
            {"_i": np.flatnonzero(need)},
            geometry=gpd.points_from_xy(sub["lon"], sub["lat"]),
            crs="EPSG:4326",
        )
        layer = gpd.GeoDataFrame(
            counties[["province_name", "city_name", "geometry"]], geometry="geometry"
        )
        if layer.crs is None:
            layer = layer.set_crs("EPSG:4326")
        hit = gpd.sjoin(
            points, layer.to_crs("EPSG:4326"), how="inner", predicate="within"
        )
        hit = hit.drop_duplicates("_i")
        for i, prov, cty in zip(
            hit["_i"], hit["province_name"], hit["city_name"], strict=True
        ):
            city[i] = _city_key(cty)
            if not province[i]:
                province[i] = short_province(prov)
    return province, city


def _day(value: datetime.date) -> float:
    return float((value - datetime.date(1970, 1, 1)).days)


def _table_candidate(
    table: pd.DataFrame, province: np.ndarray, city: np.ndarray, years: np.ndarray
) -> _Candidate:
    n = len(years)
    start, end = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    crop, label = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
    asked = np.flatnonzero((years >= 0) & (province != ""))
    if not len(asked):
        return _Candidate("S1", start, end, crop, label)
    # One lookup per distinct place and year, then spread to every fire there.
    keys = pd.DataFrame({"province": province[asked], "city": city[asked], "year": years[asked].astype(np.int64)})
    codes, places = pd.MultiIndex.from_frame(keys).factorize()
    # The few columns county_window reads, as plain objects: filtering Arrow-backed strings costs ~10x more.
    table = table[["province", "city_name", "whole_province", "level", "start_mmdd", "end_mmdd", "label", "crop"]].astype(object)
    county_rows: dict[tuple[str, str], list | None] = {}
    for code, (prov, cty, year) in enumerate(places):
        rows = asked[codes == code]
        if (prov, cty) not in county_rows:
            county_rows[prov, cty] = _county_rows(table, prov, cty)
        for k, offset in enumerate((-1, 0, 1)):
            window = _window_of_rows(county_rows[prov, cty], int(year) + offset)  # = county_window(...)
            if window is not None:
                start[rows, k], end[rows, k] = _day(window.start), _day(window.end)
                crop[rows], label[rows] = window.crop, window.source
    return _Candidate("S1", start, end, crop, label)


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 as float (NaT gives garbage: mask it)."""
    return values.to_numpy(dtype="datetime64[D]").astype("float64")


def _default_covers(
    default: RegionDefault, lon: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    x0, y0, x1, y1 = default.bbox
    return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def _raster_candidates(
    rasters: Mapping[str, str | Path],
    lon: np.ndarray,
    lat: np.ndarray,
    years: np.ndarray,
    lead_days: int | Mapping[str, int],
    defaults: Sequence[RegionDefault],
) -> list[_Candidate]:
    n = len(years)
    out = []
    safe_years = np.where(years < 0, 2000, years)
    for season, path in rasters.items():
        lead = _lead(lead_days, season)
        cols = []
        for offset in (-1, 0, 1):
            w = doy_windows(
                {season: path}, lon, lat, safe_years + offset, lead_days=lead
            )
            cols.append(w)
        start = np.stack([_day_numbers(w[f"{season}_start"]) for w in cols], axis=1)
        end = np.stack([_day_numbers(w[f"{season}_end"]) for w in cols], axis=1)
        nat = np.isnat(
            np.stack([w[f"{season}_start"].to_numpy() for w in cols], axis=1)
        )
        start[nat], end[nat] = np.nan, np.nan
        doy = cols[1][f"{season}_sos_doy"]
        crop = np.full(n, SEASON_CROPS.get(season, season), dtype=object)
        for d in reversed(
            list(defaults)
        ):  # the first covering default of the season names the crop
            if d.season_key == season:
                crop[_default_covers(d, lon, lat)] = d.crop
        label = _per_value(
            doy.to_numpy(dtype=object),
            lambda v, season=season, lead=lead: None if v is None or pd.isna(v) else f"WorldCereal {season} SOS {int(v)} - {lead} d",
        )
        out.append(_Candidate(season, start, end, crop, label))
    return out


def _default_candidate(
    default: RegionDefault, lon: np.ndarray, lat: np.ndarray, years: np.ndarray
) -> _Candidate:
    n = len(years)
    start, end = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    covers = _default_covers(default, lon, lat) & (years >= 0)
    for year in np.unique(years[covers]):
        rows = covers & (years == year)
        for k, offset in enumerate((-1, 0, 1)):
            window = default_window(default, int(year) + offset)
            start[rows, k], end[rows, k] = _day(window.start), _day(window.end)
    label = np.where(covers, f"default {default.name} {default.crop}", None).astype(
        object
    )
    crop = np.where(covers, default.crop, None).astype(object)
    return _Candidate(default.season_key, start, end, crop, label)


def _pick(
    candidate: _Candidate, day: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per fire: the window (of the three years) the fire is in, else the next one ahead.

    Returns days_to_sowing, start and end day numbers (NaN where none).
    """
    days_to = candidate.start - day[:, None]
    length = candidate.end - candidate.start
    relevant = np.isfinite(days_to) & (days_to >= -length)
    score = np.where(relevant, days_to, np.inf)
    k = np.argmin(score, axis=1)
    rows = np.arange(len(day))
    found = np.isfinite(score[rows, k])

    def pick(a: np.ndarray) -> np.ndarray:
        return np.where(found, a[rows, k], np.nan)

    return pick(days_to), pick(candidate.start), pick(candidate.end)


def before_sowing(
    fires: pd.DataFrame,
    *,
    table: pd.DataFrame | None = None,
    counties: Any = None,
    rasters: Mapping[str, str | Path] | None = None,
    defaults: Iterable[RegionDefault] = (),
    lead_days: int | Mapping[str, int] = DEFAULT_LEAD_DAYS,
    days_before: int = DEFAULT_DAYS_BEFORE,
) -> pd.DataFrame:
    """The 播种前 window of each fire, with the evidence.

    ``fires`` needs ``lon``, ``lat`` and ``time_bjt``; the sowing ``table``
    (from :func:`read_sowing_table`) is applied through each fire's city,
    taken from a ``city_name`` column, else from ``counties`` (the county
    layer, a frame or a GeoParquet path) by ``county_code`` or, where that is
    missing, by the county polygon containing the point. ``rasters`` maps
    seasons to WorldCereal SOS rasters (e.g. :data:`RASTERS`); ``defaults``
    are fallbacks per season (e.g. :data:`DEFAULT_REGIONS`).

    Returns a frame on the same index with ``win_before_sowing`` ("boolean";
    <NA> where no window covers the fire or its time is missing),
    ``sowing_crop``, ``sowing_start``/``sowing_end`` (datetime64, Beijing
    dates), ``sowing_source`` and ``days_to_sowing`` (Int64; negative inside
    the window).
    """
    defaults = tuple(defaults)
    n = len(fires)
    lon = fires["lon"].to_numpy(dtype="float64")
    lat = fires["lat"].to_numpy(dtype="float64")
    time_bjt = pd.to_datetime(fires["time_bjt"])
    if time_bjt.dt.tz is None:
        time_bjt = time_bjt.dt.tz_localize(BEIJING_TZ)
    local = time_bjt.dt.tz_convert(BEIJING_TZ).dt.tz_localize(None).dt.normalize()
    has_time = local.notna().to_numpy()
    day = np.where(
        has_time, local.to_numpy(dtype="datetime64[D]").astype("float64"), np.nan
    )
    years = np.where(has_time, local.dt.year.fillna(-1).to_numpy(dtype="int64"), -1)

    candidates: list[_Candidate] = []
    if table is not None and n:
        province, city = _fire_cities(fires, counties)
        candidates.append(_table_candidate(table, province, city, years))
    if rasters and n:
        candidates += _raster_candidates(rasters, lon, lat, years, lead_days, defaults)
    covered = {s: np.zeros(n, dtype=bool) for s in ("S1", "S2")}
    for c in candidates:
        covered.setdefault(c.season, np.zeros(n, dtype=bool))
        covered[c.season] |= np.isfinite(c.start).any(axis=1)
    for d in defaults if n else ():
        c = _default_candidate(d, lon, lat, years)
        already = covered.get(d.season_key, np.zeros(n, dtype=bool))
        c.start[already], c.end[already] = np.nan, np.nan
        candidates.append(c)

    m = len(candidates)
    days_to, starts, ends = (
        np.full((n, m), np.nan),
        np.full((n, m), np.nan),
        np.full((n, m), np.nan),
    )
    for j, c in enumerate(candidates):
        days_to[:, j], starts[:, j], ends[:, j] = _pick(c, day)
    known = np.isfinite(days_to)
    qualifies = known & (days_to <= days_before)
    any_known = known.any(axis=1) if m else np.zeros(n, dtype=bool)
    any_qual = qualifies.any(axis=1) if m else np.zeros(n, dtype=bool)

    # Evidence: the first qualifying source in precedence order, else the nearest start ahead.
    first_qual = np.argmax(qualifies, axis=1) if m else np.zeros(n, dtype=np.int64)
    nearest = (
        np.argmin(np.where(known, days_to, np.inf), axis=1)
        if m
        else np.zeros(n, dtype=np.int64)
    )
    j = np.where(any_qual, first_qual, nearest)
    flag = pd.array(np.where(any_known, any_qual, False), dtype="boolean")
    flag[~any_known] = pd.NA
    crop = pd.array([None] * n, dtype="string")
    source = pd.array([None] * n, dtype="string")
    to = pd.array([None] * n, dtype="Int64")
    start = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    end = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    idx = np.flatnonzero(any_known)
    if len(idx):
        jj = j[idx]
        crop[idx] = [candidates[b].crop[a] for a, b in zip(idx, jj, strict=True)]
        source[idx] = [candidates[b].label[a] for a, b in zip(idx, jj, strict=True)]
        to[idx] = days_to[idx, jj].astype("int64")
        start[idx] = (
            starts[idx, jj]
            .astype("int64")
            .astype("datetime64[D]")
            .astype("datetime64[ns]")
        )
        end[idx] = (
            ends[idx, jj]
            .astype("int64")
            .astype("datetime64[D]")
            .astype("datetime64[ns]")
        )
    return pd.DataFrame(
        {
            "win_before_sowing": flag,
            "sowing_crop": crop,
            "sowing_start": start,
            "sowing_end": end,
            "sowing_source": source,
            "days_to_sowing": to,
        },
        index=fires.index,
    )
