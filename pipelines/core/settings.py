"""The one settings object, read from ``config.toml`` and validated at start.

Every key is documented in the README with its default and unit. A key that
is missing, misspelt or of the wrong type stops the run before anything is
read or written, with a message naming the file, the section and the key.
Relative paths are resolved against the directory of the config file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import re
import tomllib
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.core import refdata
from pipelines.core.exceptions import ConfigError
from pipelines.core.schema import BEIJING_TZ

RAIN_UNITS = {"threshold_mm": "mm", "daily_threshold_mm": "mm", "horizon_h": "hours", "max_station_km": "km",
              "station_step_h": "hours", "sentinel_mm": "mm"}


# The types of the sections each stage reads: plain data, so that reading the
# settings imports no stage; each stage imports its own from here.

BASEMAP_KEYS = ("openstreetmap", "tianditu", "amap")  # the basemaps publish.maps draws
LANGUAGES = ("zh", "en", "both")
_TIANDITU_KEY = re.compile(r"[0-9A-Za-z]{8,64}")


def basemap_key(tiles: str | None) -> str | None:
    """The :data:`BASEMAP_KEYS` key of a ``tiles`` value (any case), None for none; ValueError otherwise."""
    if tiles is None or tiles == "":
        return None
    key = str(tiles).strip().lower()
    if key not in BASEMAP_KEYS:
        raise ValueError(f"unknown basemap {tiles!r}: expected one of {', '.join(BASEMAP_KEYS)} or '' (none)")
    return key


def check_tianditu_key(key: str) -> None:
    """ValueError unless ``key`` looks like a Tianditu browser key (it ends up in tile URLs)."""
    if not key:
        raise ValueError(
            "the Tianditu basemap needs a key: set [maps] tianditu_key (free from console.tianditu.gov.cn), "
            "or choose tiles = \"openstreetmap\", \"amap\" or \"\""
        )
    if not _TIANDITU_KEY.fullmatch(key):
        raise ValueError("[maps] tianditu_key must be 8-64 letters and digits")


def mmdd(text: str) -> tuple[int, int]:
    """(month, day) of ``"MM-DD"``; ValueError otherwise (02-29 is allowed)."""
    match = re.fullmatch(r"\s*(\d{1,2})-(\d{1,2})\s*", text)
    if not match:
        raise ValueError(f"{text!r}: expected mm-dd")
    month, day = int(match.group(1)), int(match.group(2))
    dt.date(2000, month, day)
    return month, day


PLANT_FORMATS = ("gem_steel", "wri_power", "points")


@dataclass(frozen=True)
class PlantList:
    """One configured list of heat sources."""

    path: Path
    format: str  # one of PLANT_FORMATS
    buffer_km: float  # fires whose pixel reaches within this distance of the plant are the plant's
    kind: str = ""  # label on maps and in reasons; "" = from the format ("steel plant", "coal power plant", ...)
    fuels: tuple[str, ...] = ("Coal", "Gas")  # wri_power: primary fuels that burn
    name_column: str = "name"  # points: column of the plant name
    lon_column: str = "lon"  # points (CSV): longitude column, degrees WGS84
    lat_column: str = "lat"
    layer: str = ""  # points (GeoPackage): layer; "" = the first


GRADES = {"a": "A", "b": "B", "c": "C", "d": "D", "leading": "leading", "引领性": "leading", "": ""}
LEVELS = {"yellow": "yellow", "黄色": "yellow", "orange": "orange", "橙色": "orange", "red": "red", "红色": "red"}


@dataclass(frozen=True)
class ReadingFormat:
    """How a readings file is laid out.

    ``values``: "interval" = kWh consumed in each interval; "register" = the
    meter's cumulative active-energy reading (kWh) at the end of each
    interval, from which gridwatch takes differences. ``label``: whether an
    interval's time stamp marks its end (00:15 ... 24:00, the collection
    system's usual 96 points) or its start. Times without an offset are in
    ``timezone``. ``interval_minutes`` = 1440 means one daily total per row,
    stamped with its date.
    """

    transformer_column: str = "transformer_id"
    time_column: str = "time"
    value_column: str = "kwh"
    interval_minutes: int = 15
    timezone: str = BEIJING_TZ
    label: str = "end"
    values: str = "interval"

    @property
    def slots(self) -> int:
        """Intervals per Beijing day."""
        return 1440 // self.interval_minutes

    def check(self) -> None:
        if self.interval_minutes <= 0 or 1440 % self.interval_minutes:
            raise ValueError(f"interval_minutes = {self.interval_minutes}: expected a divisor of 1440 (15, 30, 60, 1440)")
        if self.label not in ("end", "start"):
            raise ValueError(f"label = {self.label!r}: expected \"end\" or \"start\"")
        if self.values not in ("interval", "register"):
            raise ValueError(f"values = {self.values!r}: expected \"interval\" or \"register\"")
        if self.values == "register" and self.label != "end" and self.slots > 1:
            raise ValueError("values = \"register\" needs label = \"end\": a register is read at the end of each interval")
        pd.Timestamp("2020-01-01").tz_localize(self.timezone)


@dataclass(frozen=True)
class ResurgenceRule:
    consecutive_days: int = 2  # k: production days that start an episode (rest days at the floor do not break the run)
    grace_days: int = 0  # days after the closure date that are not judged (winding down)
    floor_days: int = 14  # the floor is learnt from the days of the closure date .. + floor_days - 1, then kept
    min_floor_days: int = 1  # known days needed among them for a floor (fewer: the floor is unknown, the reference decides)
    floor_quantile: float = 0.1  # low quantile (0-1) of those days that is the floor: production in the window cannot raise it
    floor_cap: float = 0.1  # the floor is at most this share (0-1) of the reference use before closure, when known
    reference_days: int = 28  # the reference is the median working-day use of the days before the closure date
    ratio: float = 3.0  # a production day uses more than floor x ratio ...
    min_excess_kwh: float = 20.0  # ... and more than floor + this, kWh/day (lighting and guards stay under it)
    production_fraction: float = 0.2  # ... and at least this share (0-1) of the reference use before closure, when known
    min_work_share: float = 0.5  # 15-minute data: share (0-1) of the episode's use in working hours
    end_workdays: int = 5  # an episode ends after a working week in a row below production (hysteresis: a few days off are not a new restart)


@dataclass(frozen=True)
class ComplianceRule:
    levels: tuple[str, ...] = ("orange", "red")  # warning levels that are checked
    grades: tuple[str, ...] = ("B", "C", "D")  # performance grades that are checked
    baseline_weeks: int = 4  # weeks of same-weekday history the baseline is the median of
    min_baseline_days: int = 2  # fewer same-weekday days: all days of the same kind in those weeks
    tolerance: float = 0.05  # flagged when the cut falls short of the requirement by more than this (0-1)
    min_baseline_kwh: float = 10.0  # kWh/day; smaller baselines are noise


@dataclass(frozen=True)
class GradeCuts:
    """Fraction (0-1) of baseline use each grade must cut; 1 = stop production."""

    A: float = 0.0
    B: float = 0.0
    C: float = 0.0
    D: float = 0.0
    leading: float = 0.0

    def of(self, grade: str) -> float:
        return float(getattr(self, grade, 0.0) or 0.0)


@dataclass(frozen=True)
class ReductionTable:
    yellow: GradeCuts = GradeCuts(B=0.1, C=0.2, D=0.3)
    orange: GradeCuts = GradeCuts(B=0.2, C=0.3, D=0.5)
    red: GradeCuts = GradeCuts(B=0.3, C=0.5, D=1.0)

    def required(self, level: str, grade: str) -> float:
        return getattr(self, level).of(grade)


@dataclass(frozen=True)
class UnregisteredRule:
    days: int = 28  # days of history the profile is taken over
    min_days: int = 14  # known days needed among them
    min_kwh: float = 50.0  # kWh/day: median workday use of a small factory
    weekly_ratio: float = 1.5  # daily data: workday median / rest-day median
    min_work_share: float = 0.55  # 15-minute data: share (0-1) of workday use in working hours (flat load: ~0.42)


@dataclass(frozen=True)
class StoppedRule:
    workdays: int = 20  # working days in a row at low use (about a month: shorter stops are maintenance or holidays)
    fraction: float = 0.05  # low = at most this fraction (0-1) of the usual (90th percentile) workday use
    min_kwh: float = 20.0  # kWh/day: usual use below this is too small to judge
    resume_fraction: float = 0.5  # use is back at this share (0-1) of the usual workday use ...
    resume_days: int = 2  # ... on this many working days in a row: the episode ends as "resumed"


@dataclass(frozen=True)
class SilentRule:
    days: int = 3  # days in a row without a usable day total: the transformer is listed as a silent meter


@dataclass(frozen=True)
class SiteRules:
    resurgence: ResurgenceRule = ResurgenceRule()
    noncompliance: ComplianceRule = ComplianceRule()
    reduction: ReductionTable = ReductionTable()
    unregistered: UnregisteredRule = UnregisteredRule()
    stopped: StoppedRule = StoppedRule()
    festival_days: tuple[int, int] = (7, 15)  # the Spring Festival season: days before and after the official holiday
    silent: SilentRule = SilentRule()


@dataclass(frozen=True)
class RegionDefault:
    """A configured fallback window for a bounding box.

    ``bbox`` is (lon_min, lat_min, lon_max, lat_max), WGS84 degrees, edges
    included. ``season`` is "S1" (winter crop) or "S2" (summer crop); when
    left empty it is "S2" for windows starting March-August, else "S1".
    """

    name: str
    bbox: tuple[float, float, float, float]
    crop: str
    start_mmdd: str
    end_mmdd: str
    season: str = ""

    @property
    def season_key(self) -> str:
        if self.season:
            return self.season
        return "S2" if 3 <= mmdd(self.start_mmdd)[0] <= 8 else "S1"


# Coarse defaults. NCP: 112-121°E, 32.5-40.5°N (Henan east of the Funiu/Taihang
# hills, Hebei plain, Shandong, northern Anhui/Jiangsu); YRD: 117.5-122.5°E,
# 29.5-32.5°N (southern Jiangsu, Shanghai, northern Zhejiang, eastern Anhui).
# Windows: NCP summer maize is sown straight after the wheat harvest, early to
# mid June (WorldCereal S2 SOS 15-21 June at Zhengzhou/Jinan, less a 10-day
# lead; Sacks et al. 2010 NCP maize planting ends 11 June); NCP winter wheat
# 1-25 October spans the provincial sub-region windows of the sowing table
# (Hebei 9-26 Oct .. Henan south 28 Oct; Sacks et al. 2010: 30 Aug-29 Oct);
# YRD rice transplanting follows the wheat harvest through June (WorldCereal S2
# SOS 8-18 June at Yangzhou/Suqian); YRD wheat/rapeseed after the rice harvest,
# 20 Oct-20 Nov (WorldCereal S1 SOS 332-350 at Hefei/Suqian/Yangzhou is the
# emergence of these late-sown crops).
DEFAULT_REGIONS: tuple[RegionDefault, ...] = (
    RegionDefault(
        "NCP", (112.0, 32.5, 121.0, 40.5), "summer maize", "06-05", "06-20", "S2"
    ),
    RegionDefault(
        "NCP", (112.0, 32.5, 121.0, 40.5), "winter wheat", "10-01", "10-25", "S1"
    ),
    RegionDefault(
        "YRD", (117.5, 29.5, 122.5, 32.5), "rice transplanting", "06-01", "06-30", "S2"
    ),
    RegionDefault(
        "YRD", (117.5, 29.5, 122.5, 32.5), "wheat/rapeseed", "10-20", "11-20", "S1"
    ),
)


# Clocks of [[fires.tables]] overpass_times: "13:40" (the table's zone) or "05:40 UTC".
OVERPASS_CLOCK = re.compile(r"^(?P<H>[01]?\d|2[0-3]):(?P<M>[0-5]\d)(?P<utc>\s*UTC)?$", re.IGNORECASE)


@dataclass(frozen=True)
class TableFormat:
    """One ``[[fires.tables]]`` entry: which files are such tables, and how to read them.

    ``overpass_times`` maps a satellite to the ``"HH:MM"`` clock (in ``timezone``;
    ``"HH:MM UTC"`` for UTC) given to rows whose time is a date only; ``columns``
    maps our fields (``FIELDS``) to the table's headers, over ``DEFAULT_COLUMNS``.
    """

    path: tuple[str, ...]  # glob patterns; "{date:%Y%m%d}" is replaced by the run date
    sheet: str = ""  # Excel sheet name; "" = the first
    header_row: int = 1  # 1-based row (CSV: line) holding the column names
    timezone: str = "Asia/Shanghai"  # of the table's times
    sensor: str = ""  # "" = from the satellite (FY-3x MERSI, FY-4x AGRI, ...)
    satellite: str = ""  # "" = from the table's satellite column, row by row
    pixel_km: float = 0.0  # km, side of a (square) pixel; 0 = the sensor's nadir size (PIXEL_KM)
    overpass_times: dict[str, str] = field(default_factory=dict)  # satellite -> "HH:MM" or "HH:MM UTC"
    columns: dict[str, str] = field(default_factory=dict)  # our field -> their header
    confidence: str = ""  # where the table has none: "" unknown, "low"/"nominal"/"high" (低/中/高) or 0-100

    def check(self) -> None:
        """ValueError naming the key that cannot be used (what needs no knowledge of products; ``check_format`` the rest)."""
        if not self.path:
            raise ValueError("path is empty: expected at least one file pattern")
        if self.header_row < 1:
            raise ValueError(f"header_row = {self.header_row}: expected a row number >= 1")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'timezone = {self.timezone!r}: expected a time zone name such as "Asia/Shanghai" or "UTC"') from None
        for name, clock in self.overpass_times.items():
            if not name.strip():
                raise ValueError("overpass_times has an empty satellite name")
            if not isinstance(clock, str) or not OVERPASS_CLOCK.match(clock.strip()):
                raise ValueError(f'overpass_times.{name} = {clock!r}: expected "HH:MM" (in timezone) or "HH:MM UTC"')


@dataclass(frozen=True)
class OutputConfig:
    dir: Path  # root of the <date>/ output folders


@dataclass(frozen=True)
class RegionConfig:
    bbox: tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max; degrees WGS84


@dataclass(frozen=True)
class GridConfig:
    path: Path
    id_column: str
    name_column: str
    county_column: str
    supervisor_column: str  # "" when the layer has none: cells are "unassigned"
    layer: str = ""  # GeoPackage layer; "" = the first
    crs: str = ""  # "" = the file's own CRS; else "EPSG:nnnn", "GCJ-02" or "BD-09"
    county_name_column: str = ""  # "" = look the name up in [counties]
    province_column: str = ""  # "" = from the first two digits of the county code
    province_name_column: str = ""  # "" = look the name up in [counties]


@dataclass(frozen=True)
class CountiesConfig:
    path: Path
    # Column names default to those of the county layer shipped with gridwatch (refdata.COUNTY_COLUMNS).
    code_column: str = "district_adcode"  # 6-digit county adcode
    name_column: str = "district_name"
    province_code_column: str = "province_adcode"
    province_name_column: str = "province_name"
    city_code_column: str = "city_adcode"  # prefecture-level city of each county; "" = the layer has none (city "unknown")
    city_name_column: str = "city_name"


@dataclass(frozen=True)
class MakeGridConfig:
    cell_km: float  # side of a square cell, km (Albers equal-area)
    out: Path
    provinces: tuple[str, ...] = ()  # 6-digit province adcodes; with counties also empty: all counties
    counties: tuple[str, ...] = ()  # 6-digit county adcodes, added to the provinces' counties


@dataclass(frozen=True)
class FiresConfig:
    points: tuple[str, ...] = ()  # glob patterns of fire-point files; may hold {date:%Y%m%d}
    rasters: tuple[str, ...] = ()  # glob patterns of fire-mask rasters (GeoTIFF, swath or geostationary NetCDF)
    min_confidence: float = 0.0  # percent, 0-100: fires below are dropped
    cloud_window: int = 5  # pixels, odd: side of the square whose cloud share is a raster fire's cloud_fraction
    tables: tuple[TableFormat, ...] = ()  # [[fires.tables]] agency fire-point tables (NSMC, provincial bulletins)


@dataclass(frozen=True)
class ClassifyConfig:
    landcover: Path  # classified land-cover raster (MODIS MCD12C1 IGBP by default), any CRS
    cropland_classes: tuple[int, ...] = (12, 14)  # raster classes that are cropland
    vegetation_classes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)  # natural vegetation
    min_cropland: float = 0.5  # fraction of a pixel footprint (0-1) on cropland for straw_suspect
    industrial: tuple[PlantList, ...] = ()  # [[classify.industrial]] lists of heat sources


@dataclass(frozen=True)
class RainConfig:
    forecasts: tuple[str, ...] = ()  # NetCDF forecasts (preferred: what a supervisor could know before the fire)
    grids: tuple[str, ...] = ()  # NetCDF analyses / observations on a grid
    stations: tuple[str, ...] = ()  # station CSVs: station, lon, lat, time, mm
    variable: str = "precipitation"  # NetCDF variable, mm per step
    accumulated: bool = False  # NetCDF values accumulate since the forecast start
    station_step_h: float = 1.0  # hours per station step (24 = daily totals)
    station_tz: str = "UTC"  # time zone of station times written without an offset
    threshold_mm: float = 0.1  # mm per hourly step that starts rain
    daily_threshold_mm: float = 1.0  # mm per daily step that starts rain
    horizon_h: float = 24.0  # hours after a fire in which rain makes it "before rain"
    max_station_km: float = 50.0  # km: farther from every station is unknown
    sentinel_mm: float = 9999.0  # values at or above are missing-data sentinels (e.g. 999990)


@dataclass(frozen=True)
class PlanConfig:
    recent_days: int = 7  # days of earlier runs whose suspected straw burning ranks a cell


@dataclass(frozen=True)
class SowingConfig:
    table: Path  # sowing windows per province / sub-region (CSV)
    subregions: Path  # which cities make each sub-region (CSV)
    winter_raster: Path  # WorldCereal S1 (winter cereals) start-of-season day-of-year raster
    summer_raster: Path  # WorldCereal S2 (summer crops) start-of-season day-of-year raster
    winter_lead_days: int = 30  # days from sowing to the raster's start of season (emergence), winter crops
    summer_lead_days: int = 10  # the same for summer crops
    days_before: int = 15  # a fire this many days before the sowing start (or inside the window) is before sowing
    defaults: tuple[RegionDefault, ...] = ()  # [[sowing.defaults]] windows by bounding box where nothing else says


@dataclass(frozen=True)
class PersistentConfig:
    path: Path  # the fire history (GeoParquet) the nightly run reads; written by `gridwatch persistent`
    archive: tuple[str, ...] = ()  # glob patterns of fire files (FIRMS CSV, fires.parquet) `gridwatch persistent` builds it from
    min_days: int = 4  # distinct Beijing days with fire in the neighbourhood, within window_days, to be persistent
    window_days: int = 365  # days before the run date that count
    cell_m: float = 500.0  # side of a history cell, m (China Albers)
    neighbourhood: int = 1  # cells around a cell counted with it (1 = 3 x 3 cells)
    update: bool = False  # add each run's fires to the history file after the run


@dataclass(frozen=True)
class EventsConfig:
    distance_km: float = 0.0  # km; 0 = from the two pixels' sizes (half diagonals summed)
    max_gap_h: float = 5.0  # hours between consecutive observations of one event


@dataclass(frozen=True)
class WindowsConfig:
    mode: str = "sun"  # "sun" or "fixed"
    after_work_start_h: float = -1.5  # hours relative to sunset
    after_work_end_h: float = 0.5  # hours relative to sunset; also the start of the first half of the night
    first_half_night_end: str = "24:00"  # Beijing clock, "HH:MM", "24:00" = midnight
    fixed_after_work: tuple[str, str] = ("17:00", "19:00")  # Beijing clock, used when mode = "fixed"
    fixed_first_half_night: tuple[str, str] = ("19:00", "24:00")


@dataclass(frozen=True)
class MapsConfig:
    tiles: str = "OpenStreetMap"  # basemap: "openstreetmap" (any case), "tianditu", "amap" (GCJ-02; overlays shifted), "" = none
    tianditu_key: str = ""  # Tianditu browser key (tk), required when tiles = "tianditu"
    language: str = "both"  # fixed texts of legend, title bar and layer names: "zh", "en" or "both"
    cluster_min_fires: int = 100  # fire markers on a page from which they are clustered; 0 = always
    offline_tiles: str = ""  # an MBTiles file (raster tiles, Web Mercator, WGS84) drawn as the base layer offline; "" = none

    def check(self, path: Path) -> None:
        """ConfigError naming the [maps] key that cannot be used."""
        try:
            key = basemap_key(self.tiles)
        except ValueError:
            raise ConfigError(f'{path}: [maps] tiles = {self.tiles!r}: expected "openstreetmap", "tianditu", "amap" or "" (none)') from None
        if key == "tianditu":
            try:
                check_tianditu_key(self.tianditu_key)
            except ValueError as exc:
                raise ConfigError(f"{path}: [maps] tiles = \"tianditu\": {exc}") from None
        if self.language not in LANGUAGES:
            raise ConfigError(f'{path}: [maps] language = {self.language!r}: expected "zh", "en" or "both"')
        if self.cluster_min_fires < 0:
            raise ConfigError(f"{path}: [maps] cluster_min_fires = {self.cluster_min_fires}: expected a whole number of fires >= 0")


@dataclass(frozen=True)
class ElectricityConfig:
    readings: tuple[str, ...]  # files (or folders) of one Beijing day: "{date}" = YYYY-MM-DD; "{prev_date}", "{next_date}" too
    transformers: Path  # transformer_id, enterprise_id, lon, lat (CSV)
    registry: Path  # enterprise_id, name, address, industry, status, status_date, deadline, grade (CSV)
    warnings: Path | None = None  # warning_id, level, start, end, region (CSV); none = no warnings
    transformer_column: str = "transformer_id"
    time_column: str = "time"
    value_column: str = "kwh"
    interval_minutes: int = 15  # minutes per reading; 1440 = daily totals
    timezone: str = "Asia/Shanghai"  # of reading times written without an offset
    label: str = "end"  # an interval's time marks its "end" (00:15 ... 24:00) or "start"
    values: str = "interval"  # "interval" kWh, or "register" (cumulative kWh at each time)
    transformers_crs: str = ""  # "" = WGS84; "GCJ-02", "BD-09", "EPSG:4490", ...
    state_dir: Path | None = None  # where the per-day state files live; none = <output dir>/state/electricity
    history_days: int = 90  # days of daily use the state keeps per transformer
    keep_states: int = 7  # state files (days) kept for reruns
    min_coverage: float = 0.9  # fraction (0-1) of a day's intervals needed for its total
    max_kw: float = 200000.0  # kW: readings implying more average power are errors (transformers without a kva)
    kw_per_kva: float = 2.0  # kW per kVA: readings of a transformer with a kva implying more average power are errors
    rebuild_max_days: int = 730  # a state rebuilt from readings reads at most this many days back (closures older than that: unknown reference)
    work_hours: tuple[int, int] = (8, 18)  # Beijing clock hours [start, end) of a working shift
    festival_days: tuple[int, int] = (7, 15)  # Spring Festival season: days before and after the official holiday
    resurgence: ResurgenceRule = ResurgenceRule()
    noncompliance: ComplianceRule = ComplianceRule()
    reduction: ReductionTable = ReductionTable()
    unregistered: UnregisteredRule = UnregisteredRule()
    stopped: StoppedRule = StoppedRule()
    silent: SilentRule = SilentRule()


@dataclass(frozen=True)
class AlertsConfig:
    enabled: bool = False  # the nightly run sends the night's messages (`gridwatch alerts` sends them on demand)
    contacts: str = ""  # CSV name, role, county_code, email, mobile; "" = the grid's supervisors, group robots only
    base_url: str = ""  # where the output folder is served (e.g. http://10.0.0.5:8080/); "" = paths in the messages
    top_tasks: int = 5  # tasks listed in a supervisor's message
    wecom_webhook_env: str = "GRIDWATCH_WECOM_WEBHOOK"  # environment variable holding the WeCom group robot's URL
    dingtalk_webhook_env: str = "GRIDWATCH_DINGTALK_WEBHOOK"  # ... the DingTalk robot's URL
    dingtalk_secret_env: str = "GRIDWATCH_DINGTALK_SECRET"  # ... its signing secret (SEC...), if it signs
    smtp_host: str = ""  # "" = no mail
    smtp_port: int = 587
    smtp_security: str = "starttls"  # "starttls", "ssl" or "none"
    smtp_user_env: str = "GRIDWATCH_SMTP_USER"  # environment variables of the login; unset = no login
    smtp_password_env: str = "GRIDWATCH_SMTP_PASSWORD"
    mail_from: str = ""  # sender address; required with smtp_host
    retries: int = 3  # further attempts after a failed send
    backoff_s: float = 2.0  # seconds before the first retry, doubled after each
    timeout_s: float = 10.0  # seconds per attempt
    per_minute: int = 20  # messages per minute and robot (WeCom and DingTalk allow 20)


@dataclass(frozen=True)
class VerificationConfig:
    store: str = ""  # "" = <output dir>/state/verification.sqlite; a path, or a postgresql:// URL
    secret_env: str = "GRIDWATCH_VERIFY_SECRET"  # environment variable of the token secret; unset = <output dir>/state/verification.key
    max_file_kb: int = 256  # a verification file or post may not be larger
    mask_km: float = 1.0  # fires this close to a verified heat source are masked
    dismissed_times: int = 2  # distinct days a place dismissed (no fire found) before it is masked


@dataclass(frozen=True)
class Config:
    output: OutputConfig
    region: RegionConfig
    grid: GridConfig
    counties: CountiesConfig
    fires: FiresConfig
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    make_grid: MakeGridConfig | None = None  # None: `gridwatch make-grid` needs its command-line options
    maps: MapsConfig = field(default_factory=MapsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    classify: ClassifyConfig | None = None  # None: every fire is "other" (no land cover, plants or history)
    sowing: SowingConfig | None = None  # None: before-sowing stays unknown
    rain: RainConfig | None = None  # None: before-rain stays unknown
    plan: PlanConfig = field(default_factory=PlanConfig)
    persistent: PersistentConfig | None = None
    electricity: ElectricityConfig | None = None  # None: no electricity sites
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    source: Path | None = None  # the file this was read from
    notes: tuple[str, ...] = ()  # one warning per section left out and what was used instead (logged by each run)

    @property
    def base_dir(self) -> Path:
        """Where relative file patterns are resolved: the config file's folder."""
        return self.source.parent if self.source else Path.cwd()

    def to_dict(self) -> dict[str, object]:
        """Plain values for ``run.json``."""
        return _plain(dataclasses.asdict(self))


def load_config(path: str | Path) -> Config:
    """Read and validate a ``config.toml``; raises ``ConfigError`` naming the file, section and key.

    Relative paths in the file are resolved against its folder; coordinates
    are WGS84 degrees. Every missing required key is named in one error. A
    section that may be left out (see ``section_defaults``) gets its
    documented default, and ``Config.notes`` says so, once per section (each
    run logs them as warnings, so they reach ``run.json``).

    Example::

        config = load_config("config.toml")
        config.region.bbox          # (lon_min, lat_min, lon_max, lat_max), degrees WGS84
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    notes = []
    raw = dict(raw)
    for name, (table, note) in section_defaults().items():
        if name not in raw:
            notes.append(f"[{name}] not in {path.name}: {note}")
            if table is not None:
                raw[name] = table
    missing: list[str] = []
    config = _build(Config, raw, path, base=path.resolve().parent, where="", missing=missing)
    if missing:
        if len(missing) == 1:
            raise ConfigError(f"{path}: missing key {missing[0]}")
        raise ConfigError(f"{path}: {len(missing)} missing keys: {'; '.join(missing)}")
    config = dataclasses.replace(config, source=path.resolve(), notes=tuple(notes))
    _check(config, path)
    return config


def section_defaults() -> dict[str, tuple[dict | None, str]]:
    """Sections that may be left out: what is used instead (a TOML table, or None for the built-in default) and the warning.

    ``[make_grid]`` is not here: only ``gridwatch make-grid`` needs it, and says so.
    """
    steel, power = refdata.shipped(refdata.STEEL_PLANTS), refdata.shipped(refdata.POWER_PLANTS)
    return {
        "output": ({"dir": "out"}, "outputs go to out/ beside the config file"),
        "region": ({"bbox": list(CHINA_BBOX)}, f"fires are read within China's bounding box {list(CHINA_BBOX)}"),
        "counties": ({"path": str(refdata.shipped(refdata.COUNTIES))},
                     f"county, city and province names from the county layer shipped with gridwatch ({refdata.shipped(refdata.COUNTIES)})"),
        "windows": (None, "收工时/上半夜 relative to sunset (-1.5 h .. +0.5 h .. 24:00)"),
        "maps": (None, "OpenStreetMap basemap, Chinese and English"),
        "events": (None, "observations within their pixel sizes and 5 h of each other are one event"),
        "classify": ({"landcover": str(refdata.shipped(refdata.LANDCOVER)),
                      "industrial": [{"path": str(steel), "format": "gem_steel", "buffer_km": 3.0},
                                     {"path": str(power), "format": "wri_power", "buffer_km": 2.0}]},
                     f"fires classified with the land cover and plant lists shipped with gridwatch ({refdata.data_dir()})"),
        "sowing": ({"table": str(refdata.shipped(refdata.SOWING_TABLE)), "subregions": str(refdata.shipped(refdata.SUBREGION_CITIES)),
                    "winter_raster": str(refdata.shipped(refdata.WINTER_RASTER)), "summer_raster": str(refdata.shipped(refdata.SUMMER_RASTER)),
                    "defaults": [{**dataclasses.asdict(d), "bbox": list(d.bbox)} for d in DEFAULT_REGIONS]},
                   "before sowing (播种前) from the crop calendars shipped with gridwatch (North China Plain and Yangtze delta)"),
        "rain": (None, "no precipitation data: before rain (下雨前) is unknown"),
        "plan": (None, "the patrol plan ranks cells by the last 7 runs"),
        "persistent": (None, "no fire history: persistent heat sources are not masked"),
        "electricity": (None, "no electricity readings: no electricity sites"),
    }


CHINA_BBOX = (73.0, 18.0, 135.0, 54.0)  # lon_min, lat_min, lon_max, lat_max, degrees: mainland China and Hainan
_INTERNAL = ("source", "notes")  # Config fields that are not keys of the file


def _build(cls: type, raw: object, path: Path, base: Path, where: str, missing: list[str]):
    """``cls`` from the table ``raw``; missing required keys are added to ``missing`` (then None is returned)."""
    label = f"[{where}]" if where else "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {label} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _INTERNAL}
    for key in raw:
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"{path}: unknown key '{key}' in {label}{suggestion}")
    hints = typing.get_type_hints(cls)
    values = {}
    before = len(missing)
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if dataclasses.is_dataclass(hints[name]):
                    _build(hints[name], {}, path, base, key, missing)  # a whole required section: name its keys
                else:
                    missing.append(f"'{name}' in {label}")
            continue
        values[name] = _value(hints[name], raw[name], path, base, key, missing)
    return None if len(missing) > before else cls(**values)


def _value(hint: object, value: object, path: Path, base: Path, key: str, missing: list[str]) -> object:
    section, _, name = key.rpartition(".")
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, base, key, missing)
    wrong = f"{path}: [{section}] {name} = {value!r}: expected "
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(wrong + "a path (a non-empty string)")
        return (base / value).resolve()
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(wrong + "a string")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(wrong + "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(wrong + "a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(wrong + "a number")
        return float(value)
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(wrong + "a table (name = value, ...)")
        return {str(k): _value(value_type, v, path, base, f"{key}.{k}", missing) for k, v in value.items()}
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(wrong + "a list")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(wrong + f"a list of {len(args)} items")
        item_types = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        return tuple(_value(t, v, path, base, f"{key}[{i}]", missing) for i, (t, v) in enumerate(zip(item_types, value)))
    raise TypeError(f"unsupported config type {hint!r}")  # a bug in this module, not in the file


def _check(config: Config, path: Path) -> None:
    lon0, lat0, lon1, lat1 = config.region.bbox
    if not (-180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90):
        raise ConfigError(f"{path}: [region] bbox = {list(config.region.bbox)}: expected lon_min < lon_max within -180..180 and lat_min < lat_max within -90..90")
    if config.windows.mode not in ("sun", "fixed"):
        raise ConfigError(f"{path}: [windows] mode = {config.windows.mode!r}: expected \"sun\" or \"fixed\"")
    if not 0 <= config.fires.min_confidence <= 100:
        raise ConfigError(f"{path}: [fires] min_confidence = {config.fires.min_confidence}: expected a percentage 0-100")
    if config.make_grid is not None and config.make_grid.cell_km <= 0:
        raise ConfigError(f"{path}: [make_grid] cell_km = {config.make_grid.cell_km}: expected a positive number of km")
    if not (config.fires.points or config.fires.rasters or config.fires.tables or config.electricity):
        raise ConfigError(f"{path}: [fires] points, rasters and [[fires.tables]] are all empty and there is no [electricity]: "
                          "expected at least one fire file pattern")
    _check_field(config, path)
    for i, table in enumerate(config.fires.tables):
        try:
            table.check()
        except ValueError as exc:
            raise ConfigError(f"{path}: [[fires.tables]] #{i + 1} {exc}") from None
    if config.fires.cloud_window < 1 or config.fires.cloud_window % 2 == 0:
        raise ConfigError(f"{path}: [fires] cloud_window = {config.fires.cloud_window}: expected an odd number of pixels (1, 3, 5, ...)")
    if config.classify is not None:
        if not 0 <= config.classify.min_cropland <= 1:
            raise ConfigError(f"{path}: [classify] min_cropland = {config.classify.min_cropland}: expected a fraction 0-1")
        for i, plants in enumerate(config.classify.industrial):
            if plants.format not in PLANT_FORMATS:
                raise ConfigError(f"{path}: [[classify.industrial]] #{i + 1} format = {plants.format!r}: expected one of {', '.join(PLANT_FORMATS)}")
            if plants.buffer_km < 0:
                raise ConfigError(f"{path}: [[classify.industrial]] #{i + 1} buffer_km = {plants.buffer_km}: expected km >= 0")
    if config.sowing is not None:
        s = config.sowing
        if min(s.winter_lead_days, s.summer_lead_days, s.days_before) < 0:
            raise ConfigError(f"{path}: [sowing] winter_lead_days, summer_lead_days and days_before must be whole days >= 0")
        for i, d in enumerate(s.defaults):
            lon0, lat0, lon1, lat1 = d.bbox
            if not (lon0 < lon1 and lat0 < lat1) or d.season not in ("", "S1", "S2"):
                raise ConfigError(f"{path}: [[sowing.defaults]] #{i + 1} ({d.name}): expected bbox lon_min < lon_max, lat_min < lat_max and season \"S1\", \"S2\" or \"\"")
            try:
                mmdd(d.start_mmdd), mmdd(d.end_mmdd)
            except ValueError as exc:
                raise ConfigError(f"{path}: [[sowing.defaults]] #{i + 1} ({d.name}): {exc}") from None
    if config.rain is not None:
        r = config.rain
        positive = {"threshold_mm": r.threshold_mm, "daily_threshold_mm": r.daily_threshold_mm, "horizon_h": r.horizon_h,
                    "max_station_km": r.max_station_km, "station_step_h": r.station_step_h, "sentinel_mm": r.sentinel_mm}
        for key, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{path}: [rain] {key} = {value}: expected a number > 0 ({RAIN_UNITS[key]})")
    if config.plan.recent_days < 0:
        raise ConfigError(f"{path}: [plan] recent_days = {config.plan.recent_days}: expected whole days >= 0")
    if config.persistent is not None:
        rule = config.persistent
        if rule.min_days < 1 or rule.window_days < 1 or rule.cell_m <= 0 or rule.neighbourhood < 0:
            raise ConfigError(f"{path}: [persistent] min_days, window_days (whole days >= 1), cell_m (> 0 m) and neighbourhood (cells >= 0) are out of range")
    if config.electricity is not None:
        _check_electricity(config.electricity, path)
    config.maps.check(path)
    if config.events.distance_km < 0 or config.events.max_gap_h <= 0:
        raise ConfigError(f"{path}: [events] distance_km must be >= 0 and max_gap_h > 0 (got {config.events.distance_km}, {config.events.max_gap_h})")


def _check_field(config: Config, path: Path) -> None:
    a, v = config.alerts, config.verification
    if a.smtp_security not in ("starttls", "ssl", "none"):
        raise ConfigError(f'{path}: [alerts] smtp_security = {a.smtp_security!r}: expected "starttls", "ssl" or "none"')
    if a.smtp_host and "@" not in a.mail_from:
        raise ConfigError(f"{path}: [alerts] mail_from = {a.mail_from!r}: expected the sender's address when smtp_host is set")
    if a.retries < 0 or a.backoff_s < 0 or a.timeout_s <= 0 or a.per_minute < 1 or a.top_tasks < 1 or not 0 < a.smtp_port < 65536:
        raise ConfigError(f"{path}: [alerts] retries (>= 0), backoff_s (>= 0 s), timeout_s (> 0 s), per_minute (>= 1), "
                          "top_tasks (>= 1) and smtp_port (1-65535) are out of range")
    if v.max_file_kb < 1 or v.mask_km < 0 or v.dismissed_times < 1:
        raise ConfigError(f"{path}: [verification] max_file_kb (>= 1 KB), mask_km (>= 0 km) and dismissed_times (>= 1) are out of range")


def _check_electricity(e: ElectricityConfig, path: Path) -> None:
    def bad(message: str) -> ConfigError:
        return ConfigError(f"{path}: [electricity] {message}")

    try:
        ReadingFormat(e.transformer_column, e.time_column, e.value_column, e.interval_minutes, e.timezone, e.label, e.values).check()
    except ValueError as exc:
        raise bad(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - an unknown time zone raises pytz/zoneinfo errors
        raise bad(f"timezone = {e.timezone!r}: {exc}") from None
    if not e.readings:
        raise bad("readings is empty: expected at least one file pattern with {date}")
    if min(e.festival_days) < 0:
        raise bad(f"festival_days = {list(e.festival_days)}: expected whole days >= 0")
    if not 0 <= e.work_hours[0] < e.work_hours[1] <= 24:
        raise bad(f"work_hours = {list(e.work_hours)}: expected [start, end] hours with 0 <= start < end <= 24")
    needed = max(e.noncompliance.baseline_weeks * 7 + 1, e.unregistered.days, e.resurgence.consecutive_days + 1)
    if e.history_days < needed:
        raise bad(f"history_days = {e.history_days}: the rules need at least {needed} days")
    if e.keep_states < 1 or e.max_kw <= 0 or e.kw_per_kva <= 0 or not 0 < e.min_coverage <= 1 or e.rebuild_max_days < e.history_days:
        raise bad("keep_states (>= 1), max_kw (> 0 kW), kw_per_kva (> 0), min_coverage (0-1] or rebuild_max_days (>= history_days) out of range")
    r = e.resurgence
    if (r.consecutive_days < 1 or r.floor_days < 1 or not 1 <= r.min_floor_days <= r.floor_days or r.grace_days < 0
            or r.end_workdays < 1 or not 5 <= r.reference_days < e.history_days):
        raise bad("[electricity.resurgence] consecutive_days, floor_days, end_workdays (>= 1), min_floor_days (1..floor_days), grace_days (>= 0) "
                  "or reference_days (5 .. history_days - 1) out of range")
    if e.stopped.workdays < 1 or e.stopped.resume_days < 1 or e.silent.days < 1:
        raise bad("[electricity.stopped] workdays, resume_days or [electricity.silent] days: expected whole days >= 1")
    fractions = {"resurgence.floor_quantile": r.floor_quantile, "resurgence.production_fraction": r.production_fraction,
                 "resurgence.floor_cap": r.floor_cap, "stopped.resume_fraction": e.stopped.resume_fraction,
                 "resurgence.min_work_share": r.min_work_share, "noncompliance.tolerance": e.noncompliance.tolerance,
                 "unregistered.min_work_share": e.unregistered.min_work_share, "stopped.fraction": e.stopped.fraction}
    for level in ("yellow", "orange", "red"):
        cuts = getattr(e.reduction, level)
        fractions |= {f"reduction.{level}.{g}": getattr(cuts, g) for g in ("A", "B", "C", "D", "leading")}
    for key, value in fractions.items():
        if not 0 <= value <= 1:
            raise bad(f"{key} = {value}: expected a fraction 0-1")
    unknown = [v for v in e.noncompliance.levels if v not in set(LEVELS.values())]
    unknown += [g for g in e.noncompliance.grades if g not in set(GRADES.values()) - {""}]
    if unknown:
        raise bad(f"noncompliance levels/grades {unknown}: expected levels yellow, orange, red and grades A, B, C, D, leading")


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
