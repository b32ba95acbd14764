"""Offline HTML maps for grid supervisors (网格员): what the overview, each cell's map and the plan show.

Every morning a supervisor opens one overview map and one map per grid cell that
has something to check, often on a phone in the field with no network. This
module decides what each map draws (cells shaded by count, fires coloured by
time window and faded by age, footprints, events, electricity sites, county
outlines, legends, the fire list and the task list) and
:mod:`pipelines.publish.mappage` writes it as a page that opens offline: a cell map is
a :class:`~pipelines.publish.mappage.MapPage` (one template and the page's JSON, drawn
by ``static/gridwatch-map.js``); the overview and the plan are the same pages as
``folium.Map`` objects, drawn by the same script functions.

All inputs are WGS84 (EPSG:4326, degrees); instants are stored in UTC and shown
in Beijing time. User-supplied text (cell names and ids, county and supervisor
names, titles) never reaches an HTML parser unescaped: popups and tooltips carry
it as data that the page sets with ``textContent``, and the HTML around the map
(title bar, legend, fire list) comes from templates that escape it.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from markupsafe import Markup

from pipelines.core.schema import (
    BEIJING_TZ,
    CATEGORY_LABELS,
    WGS84,
    WINDOW_COLUMNS,
    WINDOW_LABELS,
)
from pipelines.core.wording import area
from pipelines.power.sites import RULE_LABELS, RULES
from pipelines.publish.htmltext import text
from pipelines.publish.mappage import (  # the page machinery; BASEMAPS, MapPage, add_home_link and save_map stay importable from here
    _BOTH,
    BASEMAPS,
    CLUSTER_OFF_ZOOM,
    COORD_DECIMALS,
    MapPage,
    PopupValue,
    _bounds,
    _display_latlons,
    _feature,
    _FeatureLayer,
    _geometry_json,
    _HeatLayer,
    _Lang,
    _render,
    _Styles,
    add_home_link,
    save_map,
)
from pipelines.publish.pages import html_template
from pipelines.publish.tasklist import RECORD_COLUMN, frame_records, task_list_html, task_records, touched_cells

__all__ = [
    "BASEMAPS", "MapDay", "MapPage", "add_home_link", "cell_map", "cell_map_filename", "map_options", "overview_map", "plan_map",
    "save_map",
]

TIME_FORMAT = "%Y-%m-%d %H:%M 北京时间"
OUTSIDE_GRID = "不在任何网格内 outside any grid cell"
MISSING = "—"  # a missing value in popups, tooltips and titles

# Fixed rather than data-driven breaks, so a colour means the same number of
# fires on every morning's map. ColorBrewer YlGnBu: its blues keep the orange
# and red fire markers readable on top of shaded cells.
COUNT_BREAKS = (1, 2, 3, 5, 10)
COUNT_COLOURS = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")

# Simplification tolerances in degrees: ~50 m is invisible at the zooms where the
# overview shows whole cells; ~10 m stays far below a 375 m VIIRS pixel on the
# per-cell map. Coordinates are rounded to 1e-5 degree (~1 m) to keep files small.
OVERVIEW_TOLERANCE_DEG = 0.0005
CELL_TOLERANCE_DEG = 0.0001

# Clustering. Below CLUSTER_MIN_FIRES fire markers a page draws them all as SVG
# (cheap, and no fire hides behind a number); at or above, every fire layer is
# clustered. From CLUSTER_OFF_ZOOM on, i.e. at field zoom where 1 px is ~15 m
# and neighbouring 375 m VIIRS pixels are 20+ px apart, every fire is drawn on
# its own. The cluster radius (px) is half the plugin's default so clusters
# stay local on a province-wide overview.
CLUSTER_MIN_FIRES = 100

# Age fading: (hours before the newest fire of the map, factor on the marker's
# fill opacity). A fire at most 3 h older than the newest is drawn at full
# strength, then fainter by band; fires of unknown time stay at full strength.
AGE_BANDS = ((3.0, 1.0), (6.0, 0.7), (12.0, 0.45), (math.inf, 0.25))


def map_options(maps_config: Any) -> dict[str, Any]:
    """Keyword arguments for :func:`overview_map`, :func:`cell_map` and
    :func:`plan_map` from a ``settings.MapsConfig`` (or anything with the same
    attributes): ``tiles`` ("" becomes None), ``tianditu_key``, ``language``,
    ``cluster_min_fires``."""
    return {
        "tiles": getattr(maps_config, "tiles", "OpenStreetMap") or None,
        "tianditu_key": getattr(maps_config, "tianditu_key", ""),
        "language": getattr(maps_config, "language", "both"),
        "cluster_min_fires": getattr(maps_config, "cluster_min_fires", CLUSTER_MIN_FIRES),
    }




@dataclass(frozen=True)
class FireClass:
    """How a fire marker is coloured, from its two time-of-day windows."""

    key: str
    label: str
    colour: str
    short: str  # for the narrow fire list


# Drawn in this order, so the high-risk classes end up on top of "other".
FIRE_CLASSES = (
    FireClass("other", "其他时段 other times", "#9e9e9e", "其他 other"),
    FireClass("after_work", WINDOW_LABELS["win_after_work"], "#ff7f00", "收工时"),
    FireClass("first_half_night", WINDOW_LABELS["win_first_half_night"], "#e31a1c", "上半夜"),
    # Impossible by construction (the windows do not overlap); shown loudly if
    # an upstream bug ever produces it rather than silently picking one.
    FireClass("both", "收工时+上半夜 both (check data)", "#c51b8a", "收工时+上半夜"),
)
_CLASS_BY_KEY = {c.key: c for c in FIRE_CLASSES}

_FIRE_REQUIRED = ["fire_id", "time_utc", "cell_id", "cells_touched", *WINDOW_COLUMNS]
_GRID_REQUIRED = ["cell_id", "cell_name", "county_name", "supervisor"]



# ------------------------------------------------------------------ formatting


def _flag(value: object) -> bool | None:
    """A window flag as True/False, or None when unknown (<NA>)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def _flag_text(value: object) -> str:
    return {True: "是 yes", False: "否 no", None: "未知 unknown"}[_flag(value)]


def _fire_class(after_work: object, first_half_night: object) -> FireClass:
    """The marker class of a fire from its two time-of-day window flags."""
    key = {
        (True, True): "both",
        (True, False): "after_work",
        (False, True): "first_half_night",
        (False, False): "other",
    }[(_flag(after_work) is True, _flag(first_half_night) is True)]
    return _CLASS_BY_KEY[key]


def _bjt(ts: object, fmt: str = TIME_FORMAT) -> str:
    """A UTC (or any tz-aware) instant shown in Beijing time."""
    if ts is None or pd.isna(ts):
        return "时间未知 unknown time"
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:  # the schema stores UTC; a naive value can only be UTC
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(BEIJING_TZ).strftime(fmt)


def _number(value: object, fmt: str, unit: str = "") -> str:
    if value is None or pd.isna(value):
        return "未知 unknown"
    return f"{format(float(value), fmt)}{unit}"


def _confidence(rec: Mapping[str, Any]) -> str:
    """Normalized 0-100 confidence, its level and the raw value as the product wrote it."""
    parts = [_number(rec.get("confidence"), ".0f", " / 100")]
    if not pd.isna(rec.get("confidence_level", pd.NA)):
        parts.append(str(rec["confidence_level"]))
    if not pd.isna(rec.get("confidence_raw", pd.NA)):
        parts.append(f"raw {rec['confidence_raw']}")
    return " · ".join(parts)


def _daynight(value: object) -> str:
    return {"D": "白天 day (D)", "N": "夜间 night (N)"}.get(text(value, MISSING), text(value, "未知 unknown"))


def _cell_label(cell_id: object, names: Mapping[str, str]) -> str:
    if pd.isna(cell_id):
        return OUTSIDE_GRID
    name = names.get(str(cell_id))
    return f"{name} ({cell_id})" if name else str(cell_id)


# ------------------------------------------------------------------ geometry


# ------------------------------------------------------------------ inputs


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{what} lacks columns {missing}")


def _prepare_fires(fires: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fires in EPSG:4326 with a position, sorted by time (so numbering is stable)."""
    _require(fires, _FIRE_REQUIRED, "fires")
    if fires.crs is not None and not fires.crs.equals(WGS84):
        fires = fires.to_crs(WGS84)
    drawable = fires[fires.geometry.notna() & ~fires.geometry.is_empty]
    return drawable.sort_values(["time_utc", "fire_id"], kind="stable").reset_index(drop=True)


def _prepare_grid(grid: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The grid in EPSG:4326, checked for the columns and unique ids maps rely on."""
    _require(grid, _GRID_REQUIRED, "grid")
    if grid.crs is not None and not grid.crs.equals(WGS84):
        grid = grid.to_crs(WGS84)
    duplicated = grid["cell_id"][grid["cell_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"grid cell ids are not unique: {sorted(set(duplicated))[:5]}")
    # Returned as is (no copy): its cached spatial index then serves every cell_map call.
    return grid


def _name(value: object) -> str:
    return text(value, MISSING)


def _names(grid: pd.DataFrame, fires: pd.DataFrame, *extra: str) -> dict[str, str]:
    """Names of the cells these fires are in or touch (not of the whole grid: it may hold 10^5 cells)."""
    ids = {str(c) for c in fires["cell_id"].dropna()} | {c for v in fires["cells_touched"] for c in touched_cells(v)} | set(extra)
    cells = grid[grid["cell_id"].astype(str).isin(ids)]
    return dict(zip(cells["cell_id"].astype(str), cells["cell_name"].map(_name), strict=True))


def _site_cell_names(grid: pd.DataFrame, sites: pd.DataFrame) -> dict[str, str]:
    cells = grid[grid["cell_id"].astype(str).isin(set(sites["cell_id"].dropna().astype(str)))]
    return dict(zip(cells["cell_id"].astype(str), cells["cell_name"].map(_name), strict=True))


_RECORD = RECORD_COLUMN  # column of MapDay's fires: each row's record, made once for the night
_records = frame_records


# ------------------------------------------------------------------ fires


FIRE_POPUP_LABELS = (
    "时间 time",
    *(WINDOW_LABELS[c] for c in WINDOW_COLUMNS),
    "卫星 sensor",
    "置信度 confidence",
    "辐射功率 FRP",
    "昼夜 day/night",
    "网格 cell",
    "区县 county",
    "网格员 supervisor",
    "涉及其他网格 other cells touched",
    "日落 sunset",
    "位置 position",
    "编号 fire id",
    "事件 event",
    "类别 category",
    "依据 why",
    "降雨依据 rain evidence",
    "播种依据 sowing evidence",
)

EVENT_POPUP_LABELS = (
    "事件 event",
    "首次发现 first seen",
    "最后发现 last seen",
    "观测次数 observations",
    "卫星 sensors",
    "最大辐射功率 max FRP",
    *(WINDOW_LABELS[c] for c in WINDOW_COLUMNS),
    "网格 cell",
    "类别 category",
    "依据 why",
)


def _fire_popup_values(rec: Mapping[str, Any], names: Mapping[str, str]) -> list[PopupValue]:
    """Everything a supervisor needs about one fire, in Beijing time (FIRE_POPUP_LABELS order)."""
    others = [c for c in touched_cells(rec.get("cells_touched")) if c != text(rec.get("cell_id"), "")]
    sensor = " · ".join(text(rec.get(c), "") for c in ("sensor", "satellite") if not pd.isna(rec.get(c)))
    if not pd.isna(rec.get("product", pd.NA)):
        sensor += f" ({rec['product']})"
    point = rec["geometry"]
    return [
        _bjt(rec["time_utc"]),
        *(_flag_text(rec.get(c)) for c in WINDOW_COLUMNS),
        sensor or "未知 unknown",
        _confidence(rec),
        _number(rec.get("frp_mw"), ".1f", " MW"),
        _daynight(rec.get("daynight")),
        _cell_label(rec.get("cell_id"), names),
        text(rec.get("county_name"), MISSING),
        text(rec.get("supervisor"), MISSING),
        ", ".join(_cell_label(c, names) for c in others) or "无 none",
        _bjt(rec.get("sunset_bjt"), "%H:%M 北京时间"),
        f"{point.y:.5f}°N {point.x:.5f}°E",
        text(rec.get("fire_id"), MISSING),
        None if pd.isna(rec.get("event_id", pd.NA)) else text(rec.get("event_id"), MISSING),
        *_category_values(rec),
        *_window_evidence(rec),
    ]


def _popup_of(rec: dict[str, Any], names: Mapping[str, str]) -> list[PopupValue]:
    """:func:`_fire_popup_values`, kept in the record: a fire on several maps of one night (its own cell's,
    its neighbours', the overview) is described once. ``names`` must be the same for every map of the record."""
    if "_popup" not in rec:
        rec["_popup"] = _fire_popup_values(rec, names)
    return rec["_popup"]


# A heavy night's overview (LIGHT_OVERVIEW_FIRES fires or more): what tells a fire apart at a glance.
FIRE_LIGHT_LABELS = (
    "时间 time", *(WINDOW_LABELS[c] for c in WINDOW_COLUMNS), "卫星 sensor", "辐射功率 FRP", "网格 cell", "类别 category", "位置 position",
)


def _light_popup_values(rec: Mapping[str, Any], names: Mapping[str, str]) -> list[PopupValue]:
    """:data:`FIRE_LIGHT_LABELS` values of one fire (the cell's map shows all of :data:`FIRE_POPUP_LABELS`)."""
    point = rec["geometry"]
    return [
        _bjt(rec["time_utc"]),
        *(_flag_text(rec.get(c)) for c in WINDOW_COLUMNS),
        text(rec.get("sensor"), "未知 unknown"),
        _number(rec.get("frp_mw"), ".0f", " MW"),
        _cell_label(rec.get("cell_id"), names),
        _category_values(rec)[0],
        f"{point.y:.5f}°N {point.x:.5f}°E",
    ]


def _window_evidence(rec: Mapping[str, Any]) -> list[PopupValue]:
    """What the before-rain and before-sowing flags rest on (None where those inputs are not configured)."""
    rain = None
    if "rain_source" in rec or "rain_note" in rec:
        onset = rec.get("rain_onset_utc")
        if onset is not None and not pd.isna(onset):
            rain = f"{_bjt(onset)} · {_number(rec.get('rain_mm'), '.1f', ' mm')} · {text(rec.get('rain_source'), MISSING)}"
        else:
            rain = text(rec.get("rain_note"), text(rec.get("rain_source"), MISSING))
    sowing = None
    if "sowing_source" in rec:
        start, end = rec.get("sowing_start"), rec.get("sowing_end")
        if start is not None and not pd.isna(start):
            sowing = f"{text(rec.get('sowing_crop'), MISSING)} {pd.Timestamp(start):%m-%d} – {pd.Timestamp(end):%m-%d} · {text(rec.get('sowing_source'), MISSING)}"
        else:
            sowing = "无播种期 no sowing window known here"
    return [rain, sowing]


# Heat sources are not what a supervisor patrols for: their layers start hidden.
HEAT_SOURCES = ("industrial", "persistent")
UNKNOWN_LAND = "unknown_land"  # key of the fires of unknown land cover among the class counts
UNKNOWN_LAND_COLOUR = "#7b1fa2"
HEAT_SOURCE_COLOURS = {"industrial": "#6d4c41", "persistent": "#8d6e63"}


def _category_values(rec: Mapping[str, Any]) -> list[PopupValue]:
    """The category (bilingual) and its reason, for popups; None where not classified."""
    category, reason = rec.get("category", pd.NA), rec.get("reason", pd.NA)
    return [
        None if pd.isna(category) else CATEGORY_LABELS.get(str(category), text(category, MISSING)),
        None if pd.isna(reason) else text(reason, MISSING),
    ]


Rows = pd.DataFrame | list  # a frame, or its rows as records (a cell map's handful of fires: no pandas per map)


def _rows(frame: Rows) -> list[dict[str, Any]]:
    return frame if isinstance(frame, list) else _records(frame)


def _is_heat_source(rec: Mapping[str, Any]) -> bool:
    category = rec.get("category")
    return isinstance(category, str) and category in HEAT_SOURCES


def _heat_sources(frame: pd.DataFrame) -> np.ndarray:
    """Which rows are industrial or persistent heat sources (none when not classified)."""
    if "category" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["category"].isin(HEAT_SOURCES).fillna(False).to_numpy(bool)


def _event_layers(page: MapPage, events: Rows, names: Mapping[str, str], lang: _Lang = _BOTH) -> None:
    """Events to check (shown) and heat-source events (hidden), as outlines."""
    recs = _rows(events)
    for chosen, name, show in (([r for r in recs if not _is_heat_source(r)], lang.t("火情事件", "fire events"), True),
                               ([r for r in recs if _is_heat_source(r)], lang.t("热源事件", "heat-source events"), False)):
        page.add_layer(_event_layer(chosen, names, name, show=show))


def _event_layer(events: Rows, names: Mapping[str, str], name: str, *, show: bool = True) -> _FeatureLayer | None:
    """Fire events as the union of their observations' footprints, coloured by window."""
    styles, features = _Styles(), []
    for rec in _rows(events):
        geometry = rec["geometry"]
        if not isinstance(geometry, shapely.Geometry) or geometry.is_empty:
            continue
        cls = _fire_class(rec.get("win_after_work"), rec.get("win_first_half_night"))
        style = {"color": cls.colour, "weight": 2, "fillColor": cls.colour, "fillOpacity": 0.25}
        seen = rec["observations"]
        tooltip = f"事件 event · {_bjt(rec['first_seen_utc'], '%H:%M')}–{_bjt(rec['last_seen_utc'], '%H:%M')} · {seen} 次观测 observations · {text(rec.get('sensors'), MISSING)}"
        values = [
            text(rec["event_id"], MISSING),
            _bjt(rec["first_seen_utc"]),
            _bjt(rec["last_seen_utc"]),
            str(seen),
            f"{text(rec.get('sensors'), MISSING)} ({text(rec.get('satellites'), MISSING)})",
            _number(rec.get("max_frp_mw"), ".1f", " MW"),
            *(_flag_text(rec.get(c)) for c in WINDOW_COLUMNS),
            _cell_label(rec.get("cell_id"), names),
            *_category_values(rec),
        ]
        features.append(_feature(_geometry_json(geometry, 0), styles.index(style), tooltip, values))
    if not features:
        return None
    return _FeatureLayer(features, f"{name} ({len(features)})", styles=styles.table, labels=EVENT_POPUP_LABELS, show=show)


# ------------------------------------------------------------------ electricity sites

SITE_POPUP_LABELS = (
    "规则 rule", "依据 evidence", "近60天用电 last 60 days", "企业 enterprise", "地址 address", "行业 industry",
    "登记状态 registry status", "绩效等级 grade", "变压器 transformers", "自 since", "当日 day's use", "坐标 WGS84", "网格 cell",
    "状态 episode",
)
SITE_COLOURS = {"resurgence": "#d50000", "noncompliance": "#6a1b9a", "unregistered_load": "#00838f", "stopped": "#757575",
                "silent_meter": "#ef6c00"}
STATUS_LABELS = {"operating": "在产 operating", "closed": "关停取缔 closed", "rectifying": "整改 rectifying", "moved": "搬迁 moved"}


def _site_chart(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The popup chart's numbers: daily kWh, reference line and the flagged run."""
    values = rec.get("chart_kwh")
    if values is None or len(values) == 0:
        return None
    start = pd.Timestamp(rec["chart_start"])
    days = pd.date_range(start, periods=len(values), freq="D")
    first = rec.get("first_day")
    since = int((pd.Timestamp(first) - start).days) if first is not None and not pd.isna(first) else None
    floor, baseline = rec.get("floor_kwh"), rec.get("baseline_kwh")
    ref, label = (floor, "floor") if floor is not None and not pd.isna(floor) else (baseline, "baseline")
    ref_ok = ref is not None and not pd.isna(ref)
    return {
        "kwh": [None if v is None or not math.isfinite(v) else round(float(v), 1) for v in values],
        "rest": [d.weekday() >= 5 for d in days],
        "start": days[0].strftime("%m-%d"), "end": days[-1].strftime("%m-%d"),
        "ref": round(float(ref), 1) if ref_ok else None, "ref_label": f"{label} {float(ref):.0f}" if ref_ok else "",
        "since": max(since, 0) if since is not None and rec.get("rule") != "unregistered_load" else None,
    }


def _site_popup_values(rec: Mapping[str, Any], names: Mapping[str, str]) -> list[PopupValue]:
    enterprise = text(rec.get("name"), "") + (f" ({rec['enterprise_id']})" if rec.get("enterprise_id") else "")
    return [
        f"{rec['rule_zh']} {rec['rule_en']}",
        text(rec.get("evidence"), MISSING),
        _site_chart(rec),
        enterprise or "未登记 not registered",
        text(rec.get("address"), MISSING) if rec.get("enterprise_id") else None,
        text(rec.get("industry"), MISSING) if rec.get("enterprise_id") else None,
        STATUS_LABELS.get(str(rec.get("status")), text(rec.get("status"), MISSING)) if rec.get("enterprise_id") else None,
        text(rec.get("grade"), MISSING) if rec.get("grade") else None,
        text(rec.get("transformers"), MISSING),
        text(rec.get("first_day"), MISSING),
        _number(rec.get("value_kwh"), ".0f", " kWh"),
        f"{rec['lat']:.5f}, {rec['lon']:.5f}",
        _cell_label(rec.get("cell_id"), names),
        f"{text(rec.get('episode_zh'), '')} {text(rec.get('episode'), '')}".strip() or None,
    ]


def _site_layers(page: MapPage, sites: Rows, names: Mapping[str, str], lang: _Lang = _BOTH) -> None:
    """One layer per rule, large markers with a white ring so they stand out from fires."""
    recs = _rows(sites)
    for rule in RULES:
        chosen = [rec for rec in recs if rec["rule"] == rule]
        if not chosen:
            continue
        zh, en = RULE_LABELS[rule]
        features = [
            _feature(_geometry_json(rec["geometry"], 0), 0, f"{zh} {en} · {text(rec.get('name'), text(rec.get('transformer_id'), MISSING))}",
                     _site_popup_values(rec, names))
            for rec in chosen
        ]
        style = {"color": "#ffffff", "weight": 3, "fillColor": SITE_COLOURS[rule], "fillOpacity": 0.95}
        page.add_layer(_FeatureLayer(features, f"{lang.t('用电', 'sites')}: {lang.t(zh, en)} ({len(features)})", styles=[style],
                                     labels=SITE_POPUP_LABELS, radius=9))


def _fire_point_style(cls: FireClass, *, touching: bool, fade: float = 1.0, unknown_land: bool = False) -> dict[str, Any]:
    """Solid marker for a fire centred in the cell; hollow dashed for a neighbour's.

    ``fade`` (0-1, from :func:`_age_fade`) scales the fill opacity; the outline
    stays, so an old fire is still found, just quieter. A fire of unknown land
    cover (``unknown_land``) gets a thick purple outline: it may be straw burning.
    """
    if unknown_land and not touching:
        return {"color": UNKNOWN_LAND_COLOUR, "weight": 3, "fillColor": cls.colour, "fillOpacity": round(0.9 * fade, 3)}
    if touching:
        return {
            "color": cls.colour,
            "weight": 2.5,
            "dashArray": "4 3",
            "fillColor": cls.colour,
            "fillOpacity": round(0.2 * fade, 3),
        }
    return {"color": "#212121", "weight": 1.2, "fillColor": cls.colour, "fillOpacity": round(0.9 * fade, 3)}


def _age_fade(time_utc: object, newest: pd.Timestamp | None) -> float:
    """Fill-opacity factor (0-1) of a fire from its age relative to the newest fire of the map.

    ``time_utc`` and ``newest`` are instants (UTC). The age is ``newest -
    time_utc`` in hours, and the factor that of the first :data:`AGE_BANDS`
    band it falls in: up to 3 h -> 1 (full), up to 6 h -> 0.7, up to 12 h ->
    0.45, older -> 0.25. A fire of unknown time, or a map with no timed fire,
    gets 1: a fire is never hidden for lack of a time.
    """
    if newest is None or time_utc is None or pd.isna(time_utc) or pd.isna(newest):
        return 1.0
    hours = (pd.Timestamp(newest) - pd.Timestamp(time_utc)).total_seconds() / 3600
    return next(factor for limit, factor in AGE_BANDS if hours <= limit)


def _times(fires: Rows) -> list[pd.Timestamp]:
    """The known ``time_utc`` of ``fires`` (UTC instants)."""
    values = [r["time_utc"] for r in fires] if isinstance(fires, list) else fires["time_utc"].dropna()
    return [pd.Timestamp(t) for t in values if t is not None and not pd.isna(t)]


def _newest(fires: Rows) -> pd.Timestamp | None:
    """The latest ``time_utc`` of ``fires``, the reference of age fading (None if none is known)."""
    times = _times(fires)
    return max(times) if times else None


def _fire_layers(
    page: MapPage,
    fires: Rows,
    names: Mapping[str, str],
    *,
    label: str,
    touching: bool = False,
    numbers: Mapping[str, int] | None = None,
    lang: _Lang = _BOTH,
    newest: pd.Timestamp | None = None,
    cluster: bool = False,
    light: bool = False,
) -> None:
    """Add one circle-marker layer per window class (so each can be switched off).

    Fires classified as industrial or persistent heat sources go to their own
    layers, off by default: a supervisor sees first what must be checked.
    Markers fade with age relative to ``newest`` (:func:`_age_fade`). With
    ``cluster`` every layer is clustered in its own colour. ``light`` (a
    heavy night's overview): popups hold :data:`FIRE_LIGHT_LABELS` only and
    tooltips the time and class; the cell's map has the rest.
    """
    labels, popup = (FIRE_LIGHT_LABELS, _light_popup_values) if light else (FIRE_POPUP_LABELS, _popup_of)
    recs = _rows(fires)
    for category in HEAT_SOURCES:
        styles, features = _Styles(), []
        for rec in (r for r in recs if _is_heat_source(r) and r["category"] == category):
            fade = _age_fade(rec["time_utc"], newest)
            style = {"color": "#212121", "weight": 1, "fillColor": HEAT_SOURCE_COLOURS[category], "fillOpacity": round(0.8 * fade, 3)}
            tooltip = f"{_bjt(rec['time_utc'], '%H:%M')} · {CATEGORY_LABELS[category]}"
            features.append(_feature(_geometry_json(rec["geometry"], 0), styles.index(style), tooltip, popup(rec, names)))
        if features:
            page.add_layer(_FeatureLayer(features, f"{label}: {lang.label(CATEGORY_LABELS[category])} ({len(features)})", styles=styles.table,
                                         labels=labels, radius=5, show=False, cluster=HEAT_SOURCE_COLOURS[category] if cluster else None))
    by_class: dict[str, tuple[_Styles, list[dict]]] = {c.key: (_Styles(), []) for c in FIRE_CLASSES}
    for rec in (r for r in recs if not _is_heat_source(r)):
        cls = _fire_class(rec["win_after_work"], rec["win_first_half_night"])
        number = f"#{numbers[rec['fire_id']]} · " if numbers else ""
        where = OUTSIDE_GRID if pd.isna(rec.get("cell_id")) else text(rec.get("cell_name"), MISSING)
        tooltip = f"{number}{_bjt(rec['time_utc'], '%H:%M')} · {cls.label}" + ("" if light else f" · {where}")
        values = popup(rec, names)
        styles, features = by_class[cls.key]
        style = _fire_point_style(cls, touching=touching, fade=_age_fade(rec["time_utc"], newest),
                                  unknown_land=str(rec.get("category")) == "unknown")
        features.append(_feature(_geometry_json(rec["geometry"], 0), styles.index(style), tooltip, values))
    for cls in FIRE_CLASSES:
        styles, features = by_class[cls.key]
        if features:
            page.add_layer(_FeatureLayer(features, f"{label}: {lang.label(cls.label)} ({len(features)})", styles=styles.table,
                                         labels=labels, cluster=cls.colour if cluster else None))


def _heat_layer(page: MapPage, fires: pd.DataFrame, lang: _Lang, decimals: int = COORD_DECIMALS) -> None:
    """A heat map of the fires to check (heat sources left out), off by default.

    Each fire counts 1, not its FRP: FRP is missing for some products and not
    comparable between a 375 m VIIRS and a 2 km AHI pixel, and the question the
    layer answers is "where is there a lot of burning", at a glance, zoomed out.
    Off by default because it hides the markers and cells under it.
    """
    chosen = fires[~_heat_sources(fires)]
    if chosen.empty:
        return
    latlons = [(round(float(g.y), decimals), round(float(g.x), decimals)) for g in chosen.geometry]
    page.add_layer(_HeatLayer(latlons, f"{lang.t('火点热力图', 'fire heat map')} ({len(latlons)})"))


def _class_counts(fires: Rows) -> dict[str, int]:
    """Fires per window class (``FIRE_CLASSES`` keys), and ``UNKNOWN_LAND`` fires of unknown land cover."""
    counts = {c.key: 0 for c in FIRE_CLASSES}
    if isinstance(fires, list):
        for rec in fires:
            counts[_fire_class(rec["win_after_work"], rec["win_first_half_night"]).key] += 1
        counts[UNKNOWN_LAND] = sum(rec.get("category") == "unknown" for rec in fires if isinstance(rec.get("category"), str))
        return counts
    for after_work, night in zip(fires["win_after_work"], fires["win_first_half_night"], strict=True):
        counts[_fire_class(after_work, night).key] += 1
    counts[UNKNOWN_LAND] = int((fires["category"] == "unknown").sum()) if "category" in fires else 0
    return counts


def _time_span(fires: Rows, lang: _Lang = _BOTH) -> str:
    """'观测 observed 2022-06-03 01:30 – 19:30 北京时间' for the title bar ('' if no time)."""
    times = _times(fires)
    if not times:
        return ""
    first, last = _bjt(min(times), "%Y-%m-%d %H:%M"), _bjt(max(times), "%Y-%m-%d %H:%M")
    if first != last and first[:10] == last[:10]:
        last = last[11:]
    span = first if first == last else f"{first} – {last}"  # a single overpass, or a range
    observed, beijing = lang.t("观测", "observed"), {"zh": "北京时间", "en": "Beijing time"}.get(lang.code, "北京时间")
    return f"{observed} {span} {beijing}"


def _window_summary(counts: Mapping[str, int], lang: _Lang = _BOTH) -> str:
    """'收工时 after work 1 · 上半夜 first half of night 2', high-risk first, no zeros."""
    return " · ".join(f"{lang.label(c.label)} {counts[c.key]}" for c in reversed(FIRE_CLASSES) if counts[c.key])


def _data_window_summary(fires: pd.DataFrame, lang: _Lang = _BOTH) -> str:
    """'下雨前 before rain 3 (unknown 12) · 播种前 before sowing 415', for the windows that need data."""
    parts = []
    for column in ("win_before_rain", "win_before_sowing"):
        if column in fires:
            flags = fires[column].astype("boolean")
            unknown = int(flags.isna().sum())
            parts.append(f"{lang.label(WINDOW_LABELS[column])} {int(flags.fillna(False).sum())}"
                         + (f" ({lang.t('未知', 'unknown')} {unknown})" if unknown else ""))
    return " · ".join(parts)


# ------------------------------------------------------------------ legends
# A legend is data for templates/maps/legend.html.j2: sections of a heading and rows, each row a list of
# swatches with their text ({"classes", "style", "text"}); the template escapes every text.


def _swatch(colour: str, text: str = "", *, dot: bool = False, dashed: bool = False, border: str = "#333") -> dict[str, str]:
    classes = "gw-sw" + (" gw-dot" if dot else "") + (" gw-dashed" if dashed else "")
    fill = "transparent" if dashed else colour
    return {"classes": classes, "style": f"background:{fill};border-color:{border}", "text": text}


def _section(heading: str | None, rows: Sequence[Sequence[dict[str, str]]]) -> dict[str, Any]:
    return {"heading": heading, "rows": [list(row) for row in rows]}


def _count_labels() -> list[str]:
    """'1', '2', '3–4', '5–9', '≥10' from COUNT_BREAKS."""
    labels = []
    for low, high in zip(COUNT_BREAKS, [*COUNT_BREAKS[1:], None], strict=True):
        if high is None:
            labels.append(f"≥{low}")
        elif high - low == 1:
            labels.append(str(low))
        else:
            labels.append(f"{low}–{high - 1}")
    return labels


def _count_colour(n: int) -> str:
    index = int(np.searchsorted(COUNT_BREAKS, n, side="right")) - 1
    return COUNT_COLOURS[max(index, 0)]


def _fire_legend_rows(counts: Mapping[str, int], lang: _Lang = _BOTH) -> list[list[dict[str, str]]]:
    rows = [[_swatch(c.colour, f"{lang.label(c.label)} ({counts[c.key]})", dot=True)]
            for c in reversed(FIRE_CLASSES) if c.key != "both" or counts[c.key]]
    if counts.get(UNKNOWN_LAND):
        text = lang.t("紫色粗边＝地类不明（可能是耕地）", "thick purple outline = land cover unknown (may be cropland)")
        rows.append([_swatch("#9e9e9e", f"{text} ({counts[UNKNOWN_LAND]})", dot=True, border=UNKNOWN_LAND_COLOUR)])
    return rows


def _fires_section(counts: Mapping[str, int], lang: _Lang, clustered: bool) -> dict[str, Any]:
    # "both" keeps the historical "火点 fires by time window"; Chinese alone says the whole thing.
    heading = "火点（按时段）" if lang.code == "zh" else lang.t("火点", "fires by time window")
    rows = _fire_legend_rows(counts, lang)
    if clustered:
        text = lang.t(f"圆圈数字＝聚合火点数，放大到{CLUSTER_OFF_ZOOM}级显示单个火点",
                      f"numbered circle = fires grouped; zoom {CLUSTER_OFF_ZOOM}+ shows each fire")
        rows.append([_swatch("#e31a1c", text, dot=True, border="#fff")])
    return _section(heading, rows)


def _age_section(lang: _Lang) -> dict[str, Any]:
    """How markers fade with age (AGE_BANDS), as swatches of the first-half-of-night red."""
    items, low = [], 0.0
    for limit, factor in AGE_BANDS:
        span = f"≤{limit:g} h" if low == 0 else (f"{low:g}–{limit:g} h" if math.isfinite(limit) else f">{low:g} h")
        items.append({"classes": "gw-sw gw-dot", "style": f"background:rgba(227,26,28,{round(0.9 * factor, 2)})", "text": f"{span} "})
        low = limit
    return _section(f"{lang.t('越淡越早', 'fainter = older')} ({lang.t('距最新火点', 'before the newest fire')})", [items])


def _event_row(lang: _Lang) -> list[dict[str, str]]:
    text = "火情事件：同一火情各卫星像元范围" if lang.code == "zh" else lang.t("火情事件", "fire event: the pixels of one fire, all sensors")
    return [_swatch("#9e9e9e", text, border="#616161")]


def _overview_legend(
    counts: Mapping[str, int],
    has_touched_only: bool,
    has_events: bool = False,
    *,
    lang: _Lang = _BOTH,
    straw: bool = False,
    clustered: bool = False,
) -> list[dict[str, Any]]:
    """The overview's legend. ``straw``: cells are shaded by suspected straw
    burning (fires have a ``category``); otherwise by all fires centred there."""
    cells = [[_swatch(colour, label)] for colour, label in zip(COUNT_COLOURS, _count_labels(), strict=True)]
    if straw:
        cells.insert(0, [_swatch("transparent", f"0 ({lang.t('有火点但无疑似秸秆焚烧', 'fires, none suspected straw burning')})",
                                 border="#37474f")])
        heading = lang.t("网格疑似秸秆焚烧火点数", "suspected straw-burning fires per cell")
    else:
        heading = lang.t("网格火点数", "fires centred per cell")
    if has_touched_only:
        cells.append([_swatch("#37474f", lang.t("仅被邻格像元触及", "only touched by a pixel"), dashed=True)])
    if has_events:
        cells.append(_event_row(lang))
    return [_fires_section(counts, lang, clustered), _age_section(lang), _section(heading, cells)]


def _cell_legend(counts: Mapping[str, int], has_events: bool = False, *, lang: _Lang = _BOTH, clustered: bool = False,
                 places: bool = False) -> list[dict[str, Any]]:
    t = lang.t
    neighbours = "neighbour" + chr(39) + "s"
    rows = [
        [_swatch("#0d47a1", t("本网格", "this cell (thick outline)"), border="#0d47a1")],
        [_swatch("transparent", t("相邻网格", "neighbouring cells"), border="#78909c")],
        *([[_swatch("transparent", t("区县界与区县名", "county boundaries and names"), dashed=True, border="#5d4037")]] if places else []),
        [_swatch("#9e9e9e", t("火点在本网格", "fire centred here"), dot=True, border="#212121")],
        [_swatch("#9e9e9e", t("邻格火点，像元触及本网格", f"{neighbours} fire whose pixel touches"), dot=True, dashed=True)],
        [_swatch("transparent", t("像元范围", f"pixel footprint (dashed: {neighbours})"))],
        *([_event_row(lang)] if has_events else []),
    ]
    return [_fires_section(counts, lang, clustered), _age_section(lang), _section(t("线与符号", "lines and markers"), rows)]


def _site_legend(sites: Rows | None, lang: _Lang = _BOTH) -> list[dict[str, Any]]:
    if sites is None or not len(sites):
        return []
    rules = [rec["rule"] for rec in _rows(sites)]
    rows = [[_swatch(SITE_COLOURS[rule], f"{lang.t(zh, en)} ({rules.count(rule)})", dot=True, border="#fff")]
            for rule, (zh, en) in RULE_LABELS.items() if rule in rules]
    return [_section(lang.t("用电异常", "electricity sites"), rows)]


# ------------------------------------------------------------------ overview


STRAW = "straw_suspect"


def _window_counts(fires: pd.DataFrame) -> pd.DataFrame:
    """Per cell id: fires centred there (``n``), suspected straw burning among
    them (``straw``, only when fires have a ``category``), and per window how
    many are in it / unknown."""
    attributed = fires[fires["cell_id"].notna()]
    keys = attributed["cell_id"].astype(str)
    columns: dict[str, pd.Series] = {"n": attributed.groupby(keys).size()}
    if "category" in attributed:
        columns["straw"] = (attributed["category"] == STRAW).fillna(False).astype(bool).groupby(keys).sum()
    for col in WINDOW_COLUMNS:
        flags = attributed[col].astype("boolean")
        columns[col] = flags.fillna(False).astype(bool).groupby(keys).sum()
        columns[f"{col}_unknown"] = flags.isna().groupby(keys).sum()
    return pd.DataFrame(columns)


def _touching_counts(fires: pd.DataFrame) -> pd.Series:
    """Per cell id: fires centred elsewhere (or nowhere) whose footprint touches it."""
    touching: dict[str, int] = {}
    for own, touched in zip(fires["cell_id"], fires["cells_touched"], strict=True):
        for cell in set(touched_cells(touched)) - {text(own, "")}:
            touching[cell] = touching.get(cell, 0) + 1
    return pd.Series(touching, dtype="int64")


def _safe_link(link: str) -> str:
    """A link for an ``href``: relative paths and web/file URLs only (no ``javascript:``)."""
    if urlsplit(link).scheme.lower() not in ("", "http", "https", "file"):
        raise ValueError(f"refusing cell link with scheme {urlsplit(link).scheme!r}: {link!r}")
    return link


CELL_POPUP_LABELS = (
    "网格 cell",
    "区县 county",
    "网格员 supervisor",
    "火点 fires centred here",
    "疑似秸秆焚烧 suspected straw burning",
    *(WINDOW_LABELS[c] for c in WINDOW_COLUMNS),
    "邻格像元触及 neighbours' pixels touching",
    "地图 map",
)


def _cell_popup_values(
    cell: Mapping[str, Any], counts: Mapping[str, Any], touching: int, link: str | None
) -> list[PopupValue]:
    """A cell's counts per window, in CELL_POPUP_LABELS order."""
    windows = []
    for col in WINDOW_COLUMNS:
        unknown = int(counts.get(f"{col}_unknown", 0))
        windows.append(f"{int(counts.get(col, 0))}" + (f" (+{unknown} 未知 unknown)" if unknown else ""))
    anchor = None if link is None else {"href": _safe_link(link), "text": "打开网格地图 open cell map →"}
    return [
        f"{text(cell['cell_name'], MISSING)} ({cell['cell_id']})",
        text(cell.get("county_name"), MISSING),
        text(cell.get("supervisor"), MISSING),
        str(int(counts.get("n", 0))),
        None if "straw" not in counts else str(int(counts["straw"])),
        *windows,
        str(touching),
        anchor,
    ]


def _cell_layer(
    cells: pd.DataFrame,
    counts: pd.DataFrame,
    touching: pd.Series,
    cell_links: Mapping[str, str],
    *,
    name: str,
    shaded: bool,
) -> _FeatureLayer | None:
    """Cells shaded by the number of suspected straw-burning fires centred in
    them, or of all fires when the fires are not classified (no ``category``
    column); a cell with fires but no straw burning is a bare outline. Cells
    only touched by a pixel are dashed outlines."""
    styles, features = _Styles(), []
    straw = "straw" in counts.columns
    for cell in _records(cells):
        cell_id = str(cell["cell_id"])
        row = counts.loc[cell_id].to_dict() if cell_id in counts.index else {}
        n = int(row.get("n", 0))
        shade = int(row.get("straw", 0)) if straw else n
        if shaded and shade > 0:
            style = {"color": "#37474f", "weight": 1, "fillColor": _count_colour(shade), "fillOpacity": 0.6}
        elif shaded:
            style = {"color": "#37474f", "weight": 1, "fill": True, "fillOpacity": 0}
        else:
            style = {"color": "#37474f", "weight": 1.5, "dashArray": "5 4", "fill": True, "fillOpacity": 0}
        of_straw = f" · {shade} 疑似秸秆 straw" if straw else ""
        tooltip = f"{text(cell['cell_name'], MISSING)} · {n} 火点 fires{of_straw} · 网格员 {text(cell.get('supervisor'), MISSING)}"
        values = _cell_popup_values(cell, row, int(touching.get(cell_id, 0)), cell_links.get(cell_id))
        geometry = _geometry_json(cell["geometry"], OVERVIEW_TOLERANCE_DEG)
        features.append(_feature(geometry, styles.index(style), tooltip, values))
    if not features:
        return None
    return _FeatureLayer(features, name, styles=styles.table, labels=CELL_POPUP_LABELS)


_MAP_KEYWORDS_DOC = """
    Display options (all keyword-only; :func:`map_options` makes them from
    ``config.maps``): ``tiles``: "openstreetmap" (also "OpenStreetMap"),
    "tianditu", "amap" or None/"" for no basemap; on "amap" every overlay
    coordinate is shifted WGS84 -> GCJ-02 to sit on Amap's tiles (popups keep
    WGS84). ``tianditu_key``: the Tianditu browser key, required for
    "tianditu" (ValueError without). ``language``: "zh", "en" or "both" for
    legend, title bar and layer names (popups stay bilingual).
    ``cluster_min_fires``: fire markers on the page from which the fire layers
    are clustered (0 = always).
"""


# From this many fires on, the overview is light: canvas markers, short popups and tooltips, the
# heat map at ~100 m, and no event outlines (each cell's map has them); at 100x the sample day's
# fires the page stays under 10 MB (see benchmarks/maps.py).
LIGHT_OVERVIEW_FIRES = 20_000


def _cluster(n_markers: int, cluster_min_fires: int) -> bool:
    """Whether a page with ``n_markers`` fire markers clusters them."""
    return n_markers > 0 and n_markers >= cluster_min_fires


def overview_map(
    fires: gpd.GeoDataFrame,
    grid: gpd.GeoDataFrame,
    *,
    title: str,
    tiles: str | None = "OpenStreetMap",
    cell_links: dict[str, str] | None = None,
    context: gpd.GeoDataFrame | None = None,
    events: gpd.GeoDataFrame | None = None,
    sites: gpd.GeoDataFrame | None = None,
    tianditu_key: str = "",
    language: str = "both",
    cluster_min_fires: int = CLUSTER_MIN_FIRES,
    day_counts: Any = None,
) -> folium.Map:
    """The morning overview: cells shaded by suspected straw burning, every fire as a marker.

    ``day_counts``: the day's ``daycounts.DayCounts``; given, its sentences are the
    title bar's count lines (the numbers every page of the run shows).

    ``sites``: electricity sites (``sites.find_sites``, EPSG:4326), one layer per
    rule, each popup with the last 60 days of use and the rule that fired.

    ``events``: fire events (``events.events_table``), drawn as the outline of
    their observations' footprints under the markers.

    ``context``: outlines drawn under everything (e.g. provinces, with a
    ``name`` column; EPSG:4326), so the map reads without a basemap offline.

    ``fires``: attributed fire points (FIRE_DTYPES + ATTRIBUTION_DTYPES +
    ``sunset_bjt`` + WINDOW_COLUMNS), geometry = pixel centre, EPSG:4326.
    ``grid``: GRID_COLUMNS, (Multi)Polygons in EPSG:4326. Only cells with a fire
    centred in them (shaded by the fires of category ``straw_suspect``, or by
    all fires when there is no ``category`` column) or touched by a fire's
    footprint (dashed) are drawn, so a grid of tens of thousands of cells still
    gives a small page. Markers are coloured by window and fade with age
    (:func:`_age_fade`); a heat map of the fires is a layer, off by default.
    ``cell_links``: cell id -> relative path of that cell's map, linked from the
    cell's popup. Fires outside every cell are drawn too. The map fits the
    fires' bounds, or the grid's when there are none.

    Example::

        m = overview_map(fires, grid, title="gridwatch 2022-06-03", events=events, sites=sites)
        save_map(m, Path("map.html"))     # or display ``m`` in a notebook
    """
    lang = _Lang(language)
    fires = _prepare_fires(fires)
    grid = _prepare_grid(grid)
    links = dict(cell_links or {})
    names = _names(grid, fires)
    counts = _window_counts(fires)
    touching = _touching_counts(fires)
    straw = "straw" in counts.columns

    page = MapPage(title, tiles, tianditu_key=tianditu_key, language=language)
    light = len(fires) >= LIGHT_OVERVIEW_FIRES
    if light:
        # Tens of thousands of markers: drawn on one canvas, not as as many SVG elements.
        page.options["preferCanvas"] = True
    if context is not None and not context.empty:
        page.add_layer(_context_layer(context.to_crs(WGS84), lang))
    ids = grid["cell_id"].astype(str)
    with_fires = grid[ids.isin(counts.index)]
    touched_only = grid[ids.isin(touching.index) & ~ids.isin(counts.index)]
    for cells, name, shaded in (
        (with_fires, f"{lang.t('网格', 'cells with fires')} ({len(with_fires)})", True),
        (touched_only, f"{lang.t('网格', 'cells only touched by a pixel')} ({len(touched_only)})", False),
    ):
        if lang.code == "zh":
            name = f"{'有火点网格' if shaded else '仅被像元触及的网格'} ({len(cells)})"
        page.add_layer(_cell_layer(cells, counts, touching, links, name=name, shaded=shaded))
    if events is not None and not light:
        _event_layers(page, events, names, lang)
    clustered = _cluster(len(fires), cluster_min_fires)
    # The heat map blurs over ~20 px: 0.001 degree (~100 m) is plenty.
    _heat_layer(page, fires, lang, decimals=3 if light else COORD_DECIMALS)
    _fire_layers(page, fires, names, label=lang.t("火点", "fires"), lang=lang, newest=_newest(fires), cluster=clustered, light=light)
    if sites is not None and not sites.empty:
        _site_layers(page, sites, names | _site_cell_names(grid, sites), lang)

    class_counts = _class_counts(fires)
    has_events = events is not None and not events.empty and not light
    page.add_legend(_overview_legend(class_counts, not touched_only.empty, has_events, lang=lang, straw=straw, clustered=clustered)
                    + _site_legend(sites, lang))
    lines = _overview_lines(fires, events, sites, len(with_fires), class_counts, lang)
    if day_counts is not None:
        lines[1 if len(lines) > 1 else 0:2] = [day_counts.headline(lang.code), day_counts.detail(lang.code)]
    if light:
        lines.append(lang.t(f"火点多于{LIGHT_OVERVIEW_FIRES:,}：总览只显示要点，事件与详情见各网格地图",
                            f"over {LIGHT_OVERVIEW_FIRES:,} fires: the overview shows the essentials; events and details are on the cell maps"))
    page.set_title(title, lines)
    site_points = list(sites.geometry) if sites is not None else []
    page.fit(_bounds([*fires.geometry, *site_points]) or _bounds(list(grid.geometry)))
    return page.to_folium()


overview_map.__doc__ = (overview_map.__doc__ or "") + _MAP_KEYWORDS_DOC


def _overview_lines(
    fires: pd.DataFrame, events: pd.DataFrame | None, sites: pd.DataFrame | None, n_cells: int,
    class_counts: Mapping[str, int], lang: _Lang,
) -> list[str]:
    """The overview's title-bar lines: time span, counts, windows, data windows."""
    t = lang.t
    outside = int(fires["cell_id"].isna().sum())
    in_events = ""
    if events is not None:
        straw = ""
        if "category" in events:
            straw = f" ({int((events['category'] == STRAW).sum())} {t('疑似秸秆焚烧', 'suspected straw burning')})"
        in_events = f"{len(events)} {t('火情事件', 'events')}{straw} · "
    straw_fires = ""
    if "category" in fires:
        straw_fires = f" ({int((fires['category'] == STRAW).sum())} {t('疑似秸秆焚烧', 'suspected straw burning')})"
    with_fires = "个网格有火点" if lang.code == "zh" else t("网格", "cells with fires")
    summary = (
        f"{len(fires)} {t('火点', 'fires')}{straw_fires} · {in_events}{n_cells} {with_fires} · "
        f"{outside} {t('不在网格内', 'outside any grid cell')}"
        + (f" · {len(sites)} {t('用电异常', 'electricity sites')}" if sites is not None and len(sites) else "")
    )
    lines = (_time_span(fires, lang), summary, _window_summary(class_counts, lang), _data_window_summary(fires, lang))
    return [line for line in lines if line]


# ------------------------------------------------------------------ per cell


def _context_layer(outlines: gpd.GeoDataFrame, lang: _Lang = _BOTH) -> _FeatureLayer:
    features = [
        _feature(_geometry_json(geometry, CELL_TOLERANCE_DEG), 0, text(name, MISSING))
        for geometry, name in zip(outlines.geometry, outlines["name"], strict=True)
    ]
    style = {"color": "#546e7a", "weight": 1.5, "fill": False, "interactive": False}
    return _FeatureLayer(features, lang.t("行政区", "boundaries"), styles=[style])


def _footprint_layer(
    fires: Rows, in_cell: Sequence[bool], numbers: Mapping[str, int], lang: _Lang = _BOTH
) -> _FeatureLayer | None:
    """Pixel footprints (a ``footprint`` column of Polygons): solid for fires centred in the cell, dashed for neighbours'."""
    styles, features, drawn = _Styles(), [], set()
    for rec, inside in zip(_rows(fires), in_cell, strict=True):
        footprint = rec.get("footprint")
        if not isinstance(footprint, shapely.Geometry) or footprint.is_empty:
            continue
        # A geostationary pixel is seen every 10 minutes: draw it once, not stacked until opaque.
        if (footprint.wkb, inside) in drawn:
            continue
        drawn.add((footprint.wkb, inside))
        cls = _fire_class(rec["win_after_work"], rec["win_first_half_night"])
        style = {"color": cls.colour, "weight": 2, "fillColor": cls.colour, "fillOpacity": 0.12}
        if not inside:
            style |= {"dashArray": "6 4", "fillOpacity": 0.04}
        tooltip = f"#{numbers[rec['fire_id']]} 像元范围 pixel footprint"
        features.append(_feature(_geometry_json(footprint, 0), styles.index(style), tooltip))
    if not features:
        return None
    return _FeatureLayer(features, f"{lang.t('像元范围', 'pixel footprints')} ({len(features)})", styles=styles.table)


def _fire_list(
    fires: Rows, in_cell: Sequence[bool], numbers: Mapping[str, int], names: Mapping[str, str],
    *, m: object = None, lang: _Lang = _BOTH,
) -> Markup:
    """The side panel: one row per fire, click a row to zoom to it.

    A row's ``data-lat``/``data-lon`` are where the marker is drawn on ``m``
    (GCJ-02 on an Amap basemap), so the jump lands on the marker.
    """
    rows = []
    for rec, inside in zip(_rows(fires), in_cell, strict=True):
        cls = _fire_class(rec["win_after_work"], rec["win_first_half_night"])
        point = rec["geometry"]
        ((lat, lon),) = _display_latlons(m, [(point.y, point.x)])
        rows.append({"lat": f"{lat:.5f}", "lon": f"{lon:.5f}", "cells": [
            str(numbers[rec["fire_id"]]),
            _bjt(rec["time_utc"], "%m-%d %H:%M"),
            cls.short,
            _number(rec.get("confidence"), ".0f"),
            _number(rec.get("frp_mw"), ".1f"),
            "本网格 this cell" if inside else f"邻格 {_cell_label(rec.get('cell_id'), names)}",
        ]})
    return _render("fire_list.html.j2", rows=rows, empty=lang.t("无火点", "no fires"),
                   columns=("#", "时间 time", "时段 window", "置信度 conf.", "FRP MW", "位置 where"),
                   summary=f"{lang.t('火点列表', 'fire list')} ({len(rows)}) · {lang.t('点击定位', 'tap a row to zoom')}")


PLACE_TOLERANCE_DEG = 0.002  # ~200 m: county outlines under a cell map
PLACE_MARGIN_DEG = 0.1  # counties this close to the cell are drawn too


def _place_layers(places: gpd.GeoDataFrame, box: tuple[float, float, float, float], outlines: dict[int, tuple[dict, dict]],
                  lang: _Lang) -> list[_FeatureLayer]:
    """County boundaries around ``box`` (WGS84) and their names, to draw under the fires.

    ``outlines``: each county's (outline, name) features, made once per night and kept here.
    """
    west, south, east, north = box
    found = sorted(places.sindex.query(shapely.box(west - PLACE_MARGIN_DEG, south - PLACE_MARGIN_DEG,
                                                   east + PLACE_MARGIN_DEG, north + PLACE_MARGIN_DEG), predicate="intersects"))
    if not found:
        return []
    lines, labels = [], []
    for position in found:
        if position not in outlines:
            name = text(places["name"].iloc[position], MISSING)
            point = places["label_point"].iloc[position]
            outlines[position] = (
                _feature(_geometry_json(places.geometry.iloc[position].boundary, PLACE_TOLERANCE_DEG), 0, name),
                _feature({"type": "Point", "coordinates": [round(point.x, COORD_DECIMALS), round(point.y, COORD_DECIMALS)]}, 0, name),
            )
        lines.append(outlines[position][0])
        labels.append(outlines[position][1])
    title = lang.t("区县界", "county boundaries")
    return [
        _FeatureLayer(lines, f"{title} ({len(lines)})", styles=[{"color": "#5d4037", "weight": 2, "dashArray": "6 4", "opacity": 0.8}]),
        _FeatureLayer(labels, lang.t("区县名", "county names"), styles=[{"radius": 0, "opacity": 0, "fillOpacity": 0}],
                      radius=0, permanent_tooltips=True),
    ]


def place_outlines(counties: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The county layer (``cells.load_counties``, EPSG:4326) as the places cell maps draw: ``name``,
    ``geometry``, ``label_point`` (a point inside each county, where its name goes)."""
    places = gpd.GeoDataFrame({"name": counties["county_name"].to_numpy()}, geometry=counties.geometry.to_numpy(), crs=counties.crs)
    places["label_point"] = places.geometry.representative_point()
    return places


class MapDay:
    """One night's fires, events and sites grouped by grid cell once, for drawing many cell maps.

    A night draws a map for every cell with a fire centred in it, touching it or
    an electricity site: hundreds to thousands of maps. Each needs the fires of
    one cell (centred or touching, from ``cells_touched``), their events, the
    cell's sites, its neighbours and the outlines of all of these. Built once,
    this costs one pass over the fires and their ``cells_touched`` lists, and
    each cell map then costs what its own fires cost, not the day's fires or
    the grid's 10^4-10^5 cells: rows are looked up by cell id, neighbours come
    from the grid's spatial index (built once, kept on ``grid``), and each
    cell's simplified outline is computed once for every map that shows it.

    Inputs as for :func:`cell_map` (EPSG:4326). ``cell_ids()`` lists the cells
    that get a map (fires centred or touching, sites), sorted.

    Example::

        day = MapDay(fires, grid, events=events, sites=sites)
        for cell in day.cell_ids():
            save_map(day.cell_map(cell, title="gridwatch 2022-06-03"), Path("maps") / cell_map_filename(cell))
    """

    def __init__(
        self,
        fires: gpd.GeoDataFrame,
        grid: gpd.GeoDataFrame,
        *,
        events: gpd.GeoDataFrame | None = None,
        sites: gpd.GeoDataFrame | None = None,
        places: gpd.GeoDataFrame | None = None,
    ) -> None:
        fires = _prepare_fires(fires)
        self.places = places  # place_outlines(counties): boundaries and names under each cell map
        self._place_outlines: dict[int, tuple[dict, dict]] = {}
        # Each fire's record (popups, lists and task rows read it; popup values are cached in it on first
        # use), made once for every map the fire is on; the frame keeps only what is selected and counted
        # on: each selection of a cell's fires then copies a dozen columns, not fifty.
        slim = [c for c in (*_FIRE_REQUIRED, "category", "event_id", "lon", "lat", "footprint", fires.geometry.name) if c in fires.columns]
        self.fires = gpd.GeoDataFrame(fires[slim].assign(**{_RECORD: fires.to_dict("records")}), geometry=fires.geometry.name)
        self.grid = _prepare_grid(grid)
        if events is not None and len(events):
            events = events.assign(**{_RECORD: events.to_dict("records")})
        if sites is not None and len(sites):
            sites = sites.assign(**{_RECORD: sites.to_dict("records")})
        self.events = events
        self.sites = sites if sites is not None and len(sites) else None
        self._grid_ids = pd.Index(self.grid["cell_id"].astype(str))
        # One (cell, fire row) pair per fire centred in a cell and per cell its footprint touches.
        own = self.fires["cell_id"].astype("string")
        touched = [(cell, row) for row, value in enumerate(self.fires["cells_touched"]) for cell in touched_cells(value)]
        pairs = pd.DataFrame({
            "cell": np.concatenate([own.dropna().to_numpy(str), np.array([c for c, _ in touched], dtype=str)]),
            "row": np.concatenate([np.flatnonzero(own.notna().to_numpy()), np.array([r for _, r in touched], dtype=np.int64)]),
        }).drop_duplicates()
        # Rows in fire order (time, id), the order of the map's numbering.
        self._fire_rows = {cell: np.sort(rows) for cell, rows in pairs.groupby("cell")["row"].apply(np.asarray).items()}
        self._own = own.fillna("").to_numpy(str)
        self._fire_records = list(self.fires[_RECORD])
        self._site_records = list(self.sites[_RECORD]) if self.sites is not None else []
        self._event_records = list(events[_RECORD]) if events is not None and len(events) else []
        self._site_rows: dict[str, np.ndarray] = {}
        if self.sites is not None:
            site_cells = self.sites["cell_id"].astype("string")
            self._site_rows = {str(c): np.asarray(r) for c, r in pd.Series(np.arange(len(site_cells))).groupby(site_cells.to_numpy()).apply(np.asarray).items()}
        self._event_index = pd.Index(events["event_id"].astype(str)) if events is not None and "event_id" in events else None
        # Row lookups by id as dicts: a pandas lookup costs ~0.1 ms, several per map.
        self._positions = {cell: i for i, cell in enumerate(self._grid_ids)}
        self._event_positions = {e: i for i, e in enumerate(self._event_index)} if self._event_index is not None else {}
        wanted = set(pairs["cell"]) | set(self._site_rows)
        found = self._grid_ids.get_indexer(sorted(wanted))
        cells = self.grid.iloc[found[found >= 0]]
        self.names = dict(zip(cells["cell_id"].astype(str), cells["cell_name"].map(_name), strict=True))
        self._outlines: dict[int, dict[str, Any]] = {}
        self._grid_columns = {c: self.grid[c].to_numpy() for c in ("cell_id", "cell_name", "county_name", "supervisor")}
        self._grid_columns["geometry"] = self.grid.geometry.to_numpy()
        self._sindex = self.grid.sindex  # built once, kept on the grid

    def cell_ids(self) -> list[str]:
        """The cells that get a map: a fire centred in or touching them, or an electricity site; sorted."""
        return sorted(set(self._fire_rows) | set(self._site_rows))

    def _outline(self, position: int) -> dict[str, Any]:
        """The simplified GeoJSON outline of the grid's cell at ``position``, computed once."""
        if position not in self._outlines:
            self._outlines[position] = _geometry_json(self._grid_columns["geometry"][position], CELL_TOLERANCE_DEG)
        return self._outlines[position]

    def _cell(self, position: int) -> dict[str, Any]:
        """The grid's cell at ``position`` as a record (no DataFrame row lookups: the grid has 10^4-10^5 rows)."""
        return {column: values[position] for column, values in self._grid_columns.items()}

    def _outline_layer(self, positions: Sequence[int], name: str, style: dict[str, Any]) -> _FeatureLayer | None:
        features = []
        for position in positions:
            cell = self._cell(position)
            features.append(_feature(self._outline(position), 0,
                                     f"{text(cell['cell_name'], MISSING)} ({cell['cell_id']}) · 网格员 {text(cell['supervisor'], MISSING)}"))
        return _FeatureLayer(features, name, styles=[style]) if features else None

    def tasks(self, cell_id: str) -> list[dict[str, Any]]:
        """The task list of one cell (``tasklist.task_records``) from the night as grouped here: what its map lists."""
        cell_id = str(cell_id)
        rows = self._fire_rows.get(cell_id, np.empty(0, dtype=np.int64))
        shown = self.fires.iloc[rows].reset_index(drop=True)
        events = None
        if self._event_index is not None and "event_id" in shown:
            found = self._event_index.get_indexer(shown["event_id"].dropna().astype(str).unique())
            events = self.events.iloc[np.sort(found[found >= 0])]
        here = [self._site_records[i] for i in self._site_rows[cell_id]] if cell_id in self._site_rows else None
        return task_records(shown if len(shown) else None, events, here, cell_id)

    def cell_map(
        self,
        cell_id: str,
        *,
        title: str,
        tiles: str | None = "OpenStreetMap",
        tianditu_key: str = "",
        language: str = "both",
        cluster_min_fires: int = CLUSTER_MIN_FIRES,
    ) -> MapPage:
        """The map of one cell (see :func:`cell_map`) as a :class:`MapPage`; ``KeyError`` if the grid has no such cell."""
        lang = _Lang(language)
        t = lang.t
        cell_id = str(cell_id)
        position = self._positions.get(cell_id, -1)
        if position < 0:
            raise KeyError(f"grid has no cell {cell_id!r}")
        cell = self._cell(position)

        # The cell's fires as records, not a frame: a map draws a handful of fires, and pandas
        # selections would cost more than the whole page.
        rows = self._fire_rows.get(cell_id, np.empty(0, dtype=np.int64))
        shown = [self._fire_records[i] for i in rows]
        in_cell = (self._own[rows] == cell_id).tolist()
        numbers = {rec["fire_id"]: i for i, rec in enumerate(shown, start=1)}
        names = self.names

        supervisor = text(cell.get("supervisor"), MISSING)
        cell_label = f"{text(cell['cell_name'], MISSING)} ({cell['cell_id']})"
        page = MapPage(f"{title} · {cell_label} · {t('网格员', 'supervisor')} {supervisor}", tiles,
                       tianditu_key=tianditu_key, language=language)

        # Neighbours: cells sharing a boundary with this one, and the cells of the touching fires.
        nearby = set(self._sindex.query(cell["geometry"], predicate="intersects").tolist())
        centres = {text(rec["cell_id"]) for rec in shown} - {""}
        nearby |= {self._positions[c] for c in centres if c in self._positions}
        nearby.discard(position)
        neighbours = sorted(nearby)
        if self.places is not None:
            for layer in _place_layers(self.places, shapely.bounds(cell["geometry"]).tolist(), self._place_outlines, lang):
                page.add_layer(layer)
        page.add_layer(self._outline_layer(neighbours, f"{t('相邻网格', 'neighbouring cells')} ({len(neighbours)})",
                                           {"color": "#78909c", "weight": 1, "fill": True, "fillOpacity": 0}))
        page.add_layer(self._outline_layer([position], t("本网格", "this cell"),
                                           {"color": "#0d47a1", "weight": 4, "fillColor": "#0d47a1", "fillOpacity": 0.06}))
        page.add_layer(_footprint_layer(shown, in_cell, numbers, lang))
        events = found = None
        if self._event_index is not None:
            ids = sorted({text(rec.get("event_id")) for rec in shown} - {""})
            found = sorted(self._event_positions[e] for e in ids if e in self._event_positions)
            _event_layers(page, [self._event_records[i] for i in found], names, lang)
        newest, clustered = _newest(shown), _cluster(len(shown), cluster_min_fires)
        _fire_layers(page, [r for r, inside in zip(shown, in_cell) if inside], names, label=t("本网格火点", "fires here"), numbers=numbers,
                     lang=lang, newest=newest, cluster=clustered)
        _fire_layers(page, [r for r, inside in zip(shown, in_cell) if not inside], names, label=t("邻格火点", "touching"), touching=True,
                     numbers=numbers, lang=lang, newest=newest, cluster=clustered)
        here = [self._site_records[i] for i in self._site_rows[cell_id]] if cell_id in self._site_rows else None
        if here is not None:
            _site_layers(page, here, names, lang)

        class_counts = _class_counts(shown)
        has_events = self.events is not None and not self.events.empty
        page.add_legend(_cell_legend(class_counts, has_events, lang=lang, clustered=clustered, places=self.places is not None)
                        + _site_legend(here, lang))
        page.add_control(_fire_list(shown, in_cell, numbers, names, m=page, lang=lang), position="topright", css_class="gw-box gw-panel")
        summary = (
            f"{sum(in_cell)} {t('火点在本网格', 'fires centred here')} · "
            f"{len(in_cell) - sum(in_cell)} {t('邻格像元触及', 'touching from neighbours')} · {_window_summary(class_counts, lang)}"
            + (f" · {len(here)} {t('用电异常', 'electricity sites')}" if here is not None else "")
        )
        page.set_title(f"{title} — {t('网格员', 'supervisor')} {supervisor}",
                       [f"{t('网格', 'cell')} {cell_label} · {text(cell.get('county_name'), MISSING)}", _time_span(shown, lang), summary])
        footprints = [rec.get("footprint") for rec in shown]
        page.fit(_bounds([cell["geometry"], *(rec["geometry"] for rec in shown), *[f for f in footprints if isinstance(f, shapely.Geometry)],
                          *(rec["geometry"] for rec in here or [])]))
        # The printable list of what to check, under the map: fires of the cell (and touching it) and its sites.
        events = [self._event_records[i] for i in found] if found is not None and len(found) else None
        tasks = task_records(shown or None, events, here, cell_id)
        page.below = Markup(task_list_html(tasks, language=lang.code, heading=f"{cell_label} · {t('网格员', 'supervisor')} {supervisor}"))
        return page


def cell_map(
    cell_id: str,
    fires: gpd.GeoDataFrame,
    grid: gpd.GeoDataFrame,
    *,
    title: str,
    tiles: str | None = "OpenStreetMap",
    events: gpd.GeoDataFrame | None = None,
    sites: gpd.GeoDataFrame | None = None,
    tianditu_key: str = "",
    language: str = "both",
    cluster_min_fires: int = CLUSTER_MIN_FIRES,
) -> MapPage:
    """The map of one grid cell for its supervisor, as a :class:`MapPage` (``save``, notebook display, ``to_folium()``).

    ``sites``: electricity sites; those in this cell are drawn.

    Shows the cell's outline (thick), its neighbours' outlines (thin), the fires
    whose pixel centre is in the cell (solid markers) and the fires centred
    elsewhere whose footprint touches it (``cells_touched`` contains the cell;
    hollow dashed markers), pixel footprints when ``fires`` has a ``footprint``
    column of Polygons, the ``events`` those fires belong to, and a clickable
    list of the fires. Markers fade with age relative to the newest fire shown.
    Inputs as for :func:`overview_map` (EPSG:4326). Raises ``KeyError`` if the
    grid has no such cell. For many cells of one night use :class:`MapDay`,
    which groups the night by cell once.

    Example::

        m = cell_map("340323_E1120_N3620", fires, grid, title="gridwatch 2022-06-03", events=events, sites=sites)
        save_map(m, Path("maps") / cell_map_filename("340323_E1120_N3620"))
    """
    return MapDay(fires, grid, events=events, sites=sites).cell_map(
        cell_id, title=title, tiles=tiles, tianditu_key=tianditu_key, language=language, cluster_min_fires=cluster_min_fires
    )


cell_map.__doc__ = (cell_map.__doc__ or "") + _MAP_KEYWORDS_DOC


# ------------------------------------------------------------------ patrol plan

PLAN_POPUP_LABELS = (
    "排名 rank", "网格 cell", "区县 county", "网格员 supervisor", "时段 window",
    "预计降雨 rain expected", "降雨数据 rain data", "播种 sowing", "播种依据 sowing data",
    "耕地 cropland", "近期疑似秸秆焚烧 recent straw burning",
)
# Rank bands: hues that differ in lightness too (they stay apart for colour-blind readers and in grey print).
PLAN_COLOURS = (("#b2182b", 10, "前10 top 10"), ("#2166ac", 50, "11–50"), ("#fdb863", None, "其余 the rest"))
PLAN_TABLE_ROWS = 100  # rows of the ranked table beside the map; plan.csv has them all


def plan_map(
    plan: pd.DataFrame,
    grid: gpd.GeoDataFrame,
    *,
    title: str,
    tiles: str | None = "OpenStreetMap",
    tianditu_key: str = "",
    language: str = "both",
    cluster_min_fires: int = CLUSTER_MIN_FIRES,  # accepted so map_options() fits every map; the plan has no fires
    total: int | None = None,
) -> folium.Map:
    """Tomorrow's patrol plan (``plan.patrol_plan``): the open cells shaded by rank, with popups (EPSG:4326),
    and the ranked table (first :data:`PLAN_TABLE_ROWS`) beside the map on a wide screen, under it on a phone.

    ``total``: the number of open cells when ``plan`` is only the first of them (the rest are counted, not drawn).
    """
    lang = _Lang(language)
    grid = _prepare_grid(grid)
    geometry = grid.set_index(grid["cell_id"].astype(str)).geometry
    total = len(plan) if total is None else total
    page = MapPage(title, tiles, tianditu_key=tianditu_key, language=language)
    styles, features = _Styles(), []
    for rec in _records(plan):
        colour = next(c for c, upto, _ in PLAN_COLOURS if upto is None or rec["rank"] <= upto)
        # Outlined: neighbouring open cells stay apart, and the cell edge is where to patrol.
        style = {"color": "#212121", "weight": 1.5 if rec["rank"] <= 50 else 0.8, "fillColor": colour, "fillOpacity": 0.75}
        sowing = "" if pd.isna(rec.get("sowing_start")) else f"{text(rec.get('sowing_crop'), MISSING)} {text(rec['sowing_start'], MISSING)} – {text(rec.get('sowing_end'), MISSING)}"
        values = [
            str(rec["rank"]), f"{text(rec['cell_name'], MISSING)} ({rec['cell_id']})", text(rec.get("county_name"), MISSING),
            text(rec.get("supervisor"), MISSING), lang.label(text(rec["windows"], MISSING)), _bjt(rec.get("rain_onset_bjt")), text(rec.get("rain_source"), MISSING),
            sowing or "—", text(rec.get("sowing_source"), MISSING), area(rec["cropland_ha"], lang.code), str(rec["recent_fires"]),
        ]
        tooltip = f"#{rec['rank']} {text(rec['cell_name'], MISSING)} · {lang.label(text(rec['windows'], MISSING))}"
        features.append(_feature(_geometry_json(geometry[str(rec["cell_id"])], OVERVIEW_TOLERANCE_DEG), styles.index(style), tooltip, values))
    if features:
        page.add_layer(_FeatureLayer(features, f"{lang.t('巡查网格', 'cells to patrol')} ({len(features)})", styles=styles.table,
                                     labels=PLAN_POPUP_LABELS))
    page.add_legend([_section(lang.t("巡查优先", "patrol priority"), [[_swatch(c, lang.label(label))] for c, _, label in PLAN_COLOURS])])
    ranked = lang.t("按耕地面积与近期疑似秸秆焚烧排序", "ranked by cropland and recent suspected straw burning")
    shown = lang.t(f"地图显示前 {len(plan)} 个，其余 {total - len(plan)} 个见 plan.csv",
                   f"the map shows the first {len(plan)}, the other {total - len(plan)} are in plan.csv") if total > len(plan) else ""
    page.set_title(title, [f"{total} {lang.t('个网格明天需巡查', 'cells to patrol tomorrow')} · {ranked}", shown])
    page.below = Markup(html_template("pages/plan_table.html.j2").render(
        heading=lang.t(f"巡查排名（前 {min(PLAN_TABLE_ROWS, len(plan))} 个）", f"Patrol ranking (first {min(PLAN_TABLE_ROWS, len(plan))})"),
        head=[lang.t(*h) for h in (("排名", "rank"), ("网格", "cell"), ("区县", "county"), ("网格员", "supervisor"), ("时段", "window"),
                                   ("耕地", "cropland"), ("近期疑似秸秆焚烧", "recent straw burning"))],
        rows=[[str(r["rank"]), text(r["cell_name"], MISSING), text(r.get("county_name"), MISSING), text(r.get("supervisor"), MISSING), lang.label(text(r["windows"], MISSING)),
               area(r["cropland_ha"], lang.code), str(r["recent_fires"])] for r in plan.head(PLAN_TABLE_ROWS).to_dict("records")],
        colours=[next(c for c, upto, _ in PLAN_COLOURS if upto is None or r <= upto) for r in plan["rank"].head(PLAN_TABLE_ROWS)],
        more=lang.t(f"共 {total} 个网格，全部见 plan.csv", f"{total} cells in all: see plan.csv"),
    ))
    page.fit(_bounds([geometry[str(c)] for c in plan["cell_id"]]) or _bounds(list(grid.geometry)))
    return page.to_folium()


plan_map.__doc__ = (plan_map.__doc__ or "") + _MAP_KEYWORDS_DOC


_PLAIN_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAX_SLUG = 48
# Names Windows refuses whatever the extension; the maps may well be copied to a Windows PC.
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}


def cell_map_filename(cell_id: str) -> str:
    """A stable, filesystem-safe file name for a cell's map, e.g. ``410225-12-34.html``.

    An id of lower-case ASCII letters, digits and single inner hyphens is used
    as is. Any other id (``/``, Chinese, upper case, spaces...) becomes a readable
    ASCII slug plus ``_`` and 12 hex digits of the SHA-256 of the id: plain names
    never contain ``_``, so the two forms cannot collide, and lower case keeps
    ids differing only in case apart on case-insensitive filesystems.
    """
    cell_id = str(cell_id)
    if _PLAIN_ID.fullmatch(cell_id) and len(cell_id) <= _MAX_SLUG and cell_id not in _WINDOWS_RESERVED:
        return f"{cell_id}.html"
    # NFKC folds full-width digits and letters (common in Chinese input) to ASCII.
    folded = unicodedata.normalize("NFKC", cell_id).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:_MAX_SLUG].strip("-") or "cell"
    digest = hashlib.sha256(cell_id.encode("utf-8")).hexdigest()[:12]
    return f"{slug}_{digest}.html"
