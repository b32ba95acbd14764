"""The printable task list of one grid cell: what its supervisor (网格员) must check today.

One row per thing to go and look at: each fire event centred in the cell, each
fire event centred elsewhere whose pixel footprint reaches into the cell (marked
as touching), and each electricity site of the cell. A supervisor works down the
list in priority order, so rows are ranked: suspected straw burning in a
high-risk window first, then other suspected straw burning, then the
electricity sites (resurgence, noncompliance, unregistered load, stopped), then
other fires, and the known heat sources (industrial, persistent) last.

Coordinates come in two datums because the field uses both: WGS84 (EPSG:4326,
what GPS units and the data use) and GCJ-02 (what Amap/Gaode, Tencent and most
Chinese phone maps expect; a WGS84 position typed into them lands a few hundred
metres off). Each row has two navigation links: an Amap URI (GCJ-02) and a
generic ``geo:`` URI (WGS84, RFC 5870), which Android hands to whichever map app
is installed.

:func:`task_rows` returns plain data (tested); :func:`task_list_html` renders it
with the template ``pages/task_list.html.j2`` as an escaped HTML fragment styled
by :data:`TASK_CSS`, whose ``@media print`` rules turn a cell map page into a
legible A4 sheet; :func:`add_task_list` puts both into a folium map in one call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import numpy as np
import pandas as pd
from branca.element import MacroElement
from markupsafe import Markup

from pipelines.core.schema import BEIJING_TZ, CATEGORIES, WINDOW_COLUMNS
from pipelines.core.wording import check_language, frp_words, pick, t
from pipelines.grid.chinacrs import wgs84_to_gcj02
from pipelines.power.sites import RULE_LABELS
from pipelines.publish.htmltext import text as _text
from pipelines.publish.pages import RawHtml, html_template, require_assets, static_text

__all__ = [
    "TASK_COLUMNS",
    "TASK_CSS",
    "Language",
    "add_task_list",
    "amap_url",
    "geo_url",
    "task_list_html",
    "task_records",
    "task_rows",
]

Language = Literal["both", "zh", "en"]

COORD_DECIMALS = 6  # ~0.1 m: far below the GCJ-02 offset, enough to find a field edge
FIRE_TIME_FORMAT = "%Y-%m-%d %H:%M"  # Beijing time
SITE_DATE_FORMAT = "%Y-%m-%d"  # Beijing date

# What each category is called on the list (Chinese, English).
CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    "straw_suspect": ("疑似秸秆焚烧", "suspected straw burning"),
    "industrial": ("工业热源", "industrial heat source"),
    "persistent": ("固定热源", "persistent heat source"),
    "other_vegetation": ("其他植被火点", "other vegetation fire"),
    "unknown": ("地类不明火点", "fire on unknown land cover"),
    "other": ("其他火点", "other fire"),
}
WINDOW_NAMES: dict[str, tuple[str, str]] = {
    "win_after_work": ("收工时", "after work"),
    "win_first_half_night": ("上半夜", "first half of night"),
    "win_before_rain": ("下雨前", "before rain"),
    "win_before_sowing": ("播种前", "before sowing"),
}
SITE_RULES = ("resurgence", "noncompliance", "unregistered_load", "stopped")

# Priority groups, 1 = check first. Straw burning is what the campaign is about;
# the electricity rules point at a specific enterprise that may be polluting now;
# other fires are rarely actionable and the heat sources are known and listed.
PRIORITY: dict[str, int] = {
    "straw_window": 1,  # straw_suspect with at least one high-risk window true
    "straw_suspect": 2,
    **{f"site:{rule}": 3 + i for i, rule in enumerate(SITE_RULES)},
    "unknown": 7,  # may be cropland: ahead of the fires known not to be on farmland
    "other_vegetation": 8,
    "other": 9,
    "industrial": 10,
    "persistent": 11,
}

# One row of the list; see task_rows for what each column means.
TASK_COLUMNS = [
    "no", "priority", "kind", "item_id", "category", "rule", "label_zh", "label_en", "where",
    "centre_cell_id", "centre_cell_name", "time_bjt", *WINDOW_COLUMNS,
    "lon", "lat", "gcj_lon", "gcj_lat", "name", "amap_url", "geo_url",
    "fire_numbers", "observations", "sensors", "max_frp_mw", "reason", "reason_zh", "reason_en",
    "site_name", "address", "industry", "evidence", "evidence_zh", "evidence_en", "days", "cell_id",
]

_FIRE_REQUIRED = ["fire_id", "time_utc", "lon", "lat", "cell_id", "cells_touched", *WINDOW_COLUMNS]


# ------------------------------------------------------------------ links


def amap_url(gcj_lon: float, gcj_lat: float, name: str) -> str:
    """Amap (Gaode) marker URI for a GCJ-02 position (degrees); opens the app on a phone.

    ``coordinate=gaode`` tells Amap the position already is GCJ-02 (it would
    otherwise shift it again); ``callnative=1`` opens the installed app instead
    of the web page when there is one.
    """
    position = f"{gcj_lon:.{COORD_DECIMALS}f},{gcj_lat:.{COORD_DECIMALS}f}"
    return (
        f"https://uri.amap.com/marker?position={position}&name={quote(str(name), safe='')}"
        "&src=gridwatch&coordinate=gaode&callnative=1"
    )


def geo_url(lon: float, lat: float) -> str:
    """RFC 5870 ``geo:`` URI for a WGS84 position (degrees); ``q=`` drops a pin in Android map apps."""
    point = f"{lat:.{COORD_DECIMALS}f},{lon:.{COORD_DECIMALS}f}"
    return f"geo:{point}?q={point}"


def _safe_url(url: object) -> str | None:
    """``url`` if it is an ``https:`` or ``geo:`` link, else None (never ``javascript:`` & co)."""
    if not isinstance(url, str) or not url:
        return None
    return url if urlsplit(url).scheme.lower() in ("https", "geo") else None


# ------------------------------------------------------------------ rows


def _missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def touched_cells(value: object) -> list[str]:
    """``cells_touched`` as a list whatever it was stored as (list, array, None, NaN)."""
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _is_true(value: object) -> bool:
    """A window flag that is known and true (bool, numpy bool or pandas boolean)."""
    return not _missing(value) and bool(value)


def _union_flag(values: pd.Series) -> object:
    """Union of window flags, as events.parquet does: True if any is, unknown (<NA>) only if all are."""
    flags = values.astype("boolean")
    if bool(flags.fillna(False).any()):
        return True
    if bool(flags.isna().all()):
        return pd.NA
    return False


def _bjt(ts: object, fmt: str = FIRE_TIME_FORMAT) -> str:
    """A UTC (or any tz-aware) instant as Beijing time; naive values are taken as UTC (the schema's)."""
    if _missing(ts):
        return ""
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(BEIJING_TZ).strftime(fmt)


def _date(value: object) -> str:
    return "" if _missing(value) else pd.Timestamp(value).strftime(SITE_DATE_FORMAT)


RECORD_COLUMN = "_gridwatch_record"  # a frame's rows as dicts, made once (see maps.MapDay): to_dict costs ms per call


def frame_records(frame: pd.DataFrame | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts (from its :data:`RECORD_COLUMN` when it has one; a list of records as it is)."""
    if isinstance(frame, list):
        return frame
    if RECORD_COLUMN in frame.columns:
        return list(frame[RECORD_COLUMN])
    return frame.to_dict("records")


def _time_key(rec: Mapping[str, Any]) -> tuple[bool, int, str]:
    """Order of fires on ``maps.cell_map``'s list: by time (unknown last), then fire id."""
    time = rec.get("time_utc")
    return (_missing(time), 0 if _missing(time) else pd.Timestamp(time).value, str(rec["fire_id"]))


def _union_of(values: list[object]) -> object:
    """Union of window flags, as events.parquet does: True if any is, unknown (<NA>) only if all are."""
    if any(_is_true(v) for v in values):
        return True
    if all(_missing(v) for v in values):
        return pd.NA
    return False


def _fire_rows(fires: pd.DataFrame | list[dict[str, Any]], events: pd.DataFrame | list[dict[str, Any]] | None, cell_id: str) -> list[dict[str, Any]]:
    """One row per fire event (or per fire without an event) centred in or touching the cell.

    Plain Python over the fires' records: a cell has a handful of fires, and
    per-group pandas operations would cost more than the night's maps.
    """
    records = frame_records(fires)
    columns = set(records[0]) if records else set()  # the record may hold more than the frame (maps.MapDay)
    missing = [c for c in _FIRE_REQUIRED if c not in (columns if isinstance(fires, list) else fires.columns)]
    if missing:
        raise KeyError(f"fires lacks columns {missing}")
    shown: list[tuple[dict[str, Any], bool]] = []
    for rec in records:
        if _missing(rec["lon"]) or _missing(rec["lat"]):
            continue
        centred = not _missing(rec["cell_id"]) and str(rec["cell_id"]) == cell_id
        if centred or cell_id in touched_cells(rec["cells_touched"]):
            shown.append((rec, centred))
    if not shown:
        return []
    numbers = {str(rec["fire_id"]): i for i, rec in enumerate(sorted((r for r, _ in shown), key=_time_key), start=1)}
    groups: dict[str, list[tuple[dict[str, Any], bool]]] = {}
    for rec, centred in shown:
        event = rec.get("event_id") if "event_id" in columns else None
        # A fire without an event is its own group (keyed by its fire id).
        groups.setdefault(f"fire:{rec['fire_id']}" if _missing(event) else str(event), []).append((rec, centred))
    event_table = {}
    if events is not None and len(events) and (isinstance(events, list) or "event_id" in events):
        event_table = {str(r["event_id"]): r for r in frame_records(events)}

    rows = []
    for key, group in groups.items():
        inside = [r for r, centred in group if centred]
        # The part of the fire that is this cell's business: its pixels centred here,
        # else (touching only) the pixels whose footprint reaches in.
        used = inside or [r for r, _ in group]
        event = event_table.get(key)
        category = _text(event.get("category")) if event is not None else ""
        if category not in CATEGORIES:
            present = {str(r["category"]) for r in used if not _missing(r.get("category"))} if "category" in columns else set()
            category = next((c for c in CATEGORIES if c in present), "other")
        flags = {c: _union_of([r[c] for r in used]) for c in WINDOW_COLUMNS}
        first = min(used, key=_time_key)
        sensors = sorted({str(r["sensor"]) for r in used if not _missing(r.get("sensor"))}) if "sensor" in columns else []
        frp = [float(r["frp_mw"]) for r in used if not _missing(r.get("frp_mw"))] if "frp_mw" in columns else []
        is_event = not key.startswith("fire:")
        rows.append({
            "kind": "event" if is_event else "fire",
            "item_id": key if is_event else str(first["fire_id"]),
            "category": category,
            "rule": "",
            "where": "in_cell" if inside else "touching",
            "centre_cell_id": _text(first.get("cell_id")),
            "centre_cell_name": _text(first.get("cell_name")) if "cell_name" in columns else "",
            "time_bjt": _bjt(first["time_utc"]),
            **flags,
            # Mean of the pixel centres, as events.parquet's lon/lat (WGS84 degrees).
            "lon": float(np.mean([float(r["lon"]) for r in used])),
            "lat": float(np.mean([float(r["lat"]) for r in used])),
            "fire_numbers": sorted(numbers[str(r["fire_id"])] for r, _ in group),
            "observations": len(used),
            "sensors": ", ".join(sensors),
            "max_frp_mw": max(frp) if frp else float("nan"),
            **{c: _text(event.get(c)) if event is not None else _text(first.get(c)) for c in ("reason", "reason_zh", "reason_en")},
            "_sort": (0 if inside else 1, -sum(_is_true(f) for f in flags.values()), pd.Timestamp(first["time_utc"]).value),
        })
    return rows


def _site_rows(sites: pd.DataFrame | list[dict[str, Any]] | None, cell_id: str) -> list[dict[str, Any]]:
    """One row per electricity site whose transformer is in the cell."""
    if sites is None or not len(sites):
        return []
    if isinstance(sites, list):
        here = [rec for rec in sites if _text(rec.get("cell_id")) == cell_id]
    elif "cell_id" in sites:
        here = frame_records(pd.DataFrame(sites[(sites["cell_id"].astype("string") == cell_id).fillna(False).to_numpy(bool)]))
    else:
        return []
    rows = []
    for rec in here:
        lon, lat = rec.get("lon"), rec.get("lat")
        rule = _text(rec.get("rule"))
        first_day, day = _date(rec.get("first_day")), _date(rec.get("day"))
        rows.append({
            "kind": "site",
            "item_id": _text(rec.get("site_id")),
            "category": "electricity",
            "rule": rule,
            "where": "in_cell",
            "centre_cell_id": cell_id,
            "centre_cell_name": _text(rec.get("cell_name")),
            # A run of days that fired: from its first day (the run's day if not known).
            "time_bjt": first_day or day,
            **{c: pd.NA for c in WINDOW_COLUMNS},
            "lon": float("nan") if _missing(lon) else float(lon),
            "lat": float("nan") if _missing(lat) else float(lat),
            "fire_numbers": [],
            "observations": 0,
            "sensors": "",
            "max_frp_mw": float("nan"),
            "reason": "", "reason_zh": "", "reason_en": "",
            "site_name": _text(rec.get("name")),
            "address": _text(rec.get("address")),
            "industry": _text(rec.get("industry")),
            **{c: _text(rec.get(c)) for c in ("evidence", "evidence_zh", "evidence_en")},
            "days": None if _missing(rec.get("days")) else int(rec["days"]),
            "transformer_id": _text(rec.get("transformer_id")),
            "_sort": (0, -(int(rec["days"]) if not _missing(rec.get("days")) else 0), 0),
        })
    return rows


def _priority(row: Mapping[str, Any]) -> int:
    if row["kind"] == "site":
        return PRIORITY.get(f"site:{row['rule']}", max(PRIORITY.values()))
    if row["category"] == "straw_suspect":
        window = any(_is_true(row[c]) for c in WINDOW_COLUMNS)
        return PRIORITY["straw_window" if window else "straw_suspect"]
    return PRIORITY.get(row["category"], PRIORITY["other"])


def _labels(row: Mapping[str, Any]) -> tuple[str, str]:
    if row["kind"] == "site":
        zh, en = RULE_LABELS.get(row["rule"], (row["rule"], row["rule"]))
        return f"用电异常：{zh}", f"electricity rule: {en}"
    return CATEGORY_NAMES.get(row["category"], (row["category"], row["category"]))


def task_rows(
    fires: pd.DataFrame | None,
    events: pd.DataFrame | None,
    sites: pd.DataFrame | None,
    cell_id: str,
) -> pd.DataFrame:
    """What the supervisor of ``cell_id`` must check today, one row per item, in priority order.

    ``fires``: ``fires.parquet`` rows (any cells; those centred in the cell or whose
    ``cells_touched`` contains it are used). Observations are grouped by ``event_id``
    (fires without one are their own row); ``events`` (``events.parquet``, may be
    None) supplies each event's ``category`` and ``reason``, which take the whole
    event into account (a plant nearby makes all of it industrial). ``sites``:
    ``sites.parquet`` rows (may be None); those with ``cell_id`` are listed.

    For a fire row, the observations used are the event's pixels centred in the
    cell (``where = "in_cell"``), or, when none is, those whose footprint reaches
    into it (``where = "touching"``, ``centre_cell_*`` = the cell it is centred
    in). Its ``time_bjt`` is their first acquisition (Beijing time,
    ``YYYY-MM-DD HH:MM``), window flags their union (True if any, <NA> only if
    all are unknown), position the mean of their pixel centres. ``fire_numbers``
    are the numbers of all the event's shown pixels on ``maps.cell_map``'s fire
    list (1.. by time, then fire id). For a site, ``time_bjt`` is the first day
    of its run of days (``YYYY-MM-DD``, Beijing date) and window flags are <NA>.

    Columns (``TASK_COLUMNS``): ``no`` (1..n, the order to check in), ``priority``
    (group, 1 = first; ``PRIORITY``), ``kind`` (event, fire, site), ``item_id``
    (event, fire or site id), ``category`` (a fire category or ``electricity``),
    ``rule`` (site rule), ``label_zh``/``label_en``, ``where``, ``centre_cell_id``,
    ``centre_cell_name``, ``time_bjt``, the four ``win_*`` flags, ``lon``/``lat``
    (WGS84, degrees, 6 decimals; NaN for a site without a location),
    ``gcj_lon``/``gcj_lat`` (GCJ-02, degrees, 6 decimals), ``name`` (the marker
    name sent to the navigation app), ``amap_url`` and ``geo_url`` (None without a
    location), then details: ``fire_numbers``, ``observations``, ``sensors``,
    ``max_frp_mw`` (MW), ``reason``; ``site_name``, ``address``, ``industry``,
    ``evidence``, ``days``; and ``cell_id``. Within a priority group: centred before
    touching, more windows first, then earlier; sites with longer runs first.
    """
    records = task_records(fires, events, sites, cell_id)
    if not records:
        return _empty_rows()
    out = pd.DataFrame(records, columns=TASK_COLUMNS)
    for column in WINDOW_COLUMNS:
        out[column] = out[column].astype("boolean")
    out["days"] = out["days"].astype("Int64")
    out["observations"] = out["observations"].astype("int64")
    return out


_TEXT_COLUMNS = ("site_name", "address", "industry", "evidence", "evidence_zh", "evidence_en", "reason", "reason_zh", "reason_en",
                 "sensors", "rule", "centre_cell_name")


def task_records(
    fires: pd.DataFrame | list[dict[str, Any]] | None,
    events: pd.DataFrame | list[dict[str, Any]] | None,
    sites: pd.DataFrame | list[dict[str, Any]] | None,
    cell_id: str,
) -> list[dict[str, Any]]:
    """:func:`task_rows` as a list of dicts (``TASK_COLUMNS`` keys): what a cell map writes, without a DataFrame."""
    cell_id = str(cell_id)
    rows = (_fire_rows(fires, events, cell_id) if fires is not None and len(fires) else []) + _site_rows(sites, cell_id)
    for row in rows:
        row["priority"] = _priority(row)
        row["label_zh"], row["label_en"] = _labels(row)
    rows.sort(key=lambda r: (r["priority"], r.pop("_sort"), r["item_id"]))
    if not rows:
        return []
    lon = np.array([r["lon"] for r in rows], dtype=float)
    lat = np.array([r["lat"] for r in rows], dtype=float)
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    lon, lat = np.round(lon, COORD_DECIMALS), np.round(lat, COORD_DECIMALS)
    gcj_lon, gcj_lat = np.round(gcj_lon, COORD_DECIMALS), np.round(gcj_lat, COORD_DECIMALS)
    records = []
    for i, row in enumerate(rows):
        rec = {column: row.get(column) for column in TASK_COLUMNS}
        rec |= {"no": i + 1, "lon": float(lon[i]), "lat": float(lat[i]), "gcj_lon": float(gcj_lon[i]), "gcj_lat": float(gcj_lat[i]),
                "cell_id": cell_id, "days": pd.NA if _missing(rec["days"]) else int(rec["days"])}
        for column in _TEXT_COLUMNS:
            rec[column] = _text(rec[column])
        # The navigation app shows this on its marker: Chinese, as the apps are.
        thing = (rec["site_name"] or row.get("transformer_id", "")) if rec["kind"] == "site" else ""
        rec["name"] = f"任务{rec['no']} {thing or rec['label_zh']}" + (f"（{RULE_LABELS[rec['rule']][0]}）" if thing and rec["rule"] in RULE_LABELS else "")
        located = not (math.isnan(rec["lon"]) or math.isnan(rec["lat"]))
        rec["amap_url"] = amap_url(rec["gcj_lon"], rec["gcj_lat"], rec["name"]) if located else None
        rec["geo_url"] = geo_url(rec["lon"], rec["lat"]) if located else None
        records.append(rec)
    return records


def _empty_rows() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in TASK_COLUMNS})
    for column in WINDOW_COLUMNS:
        out[column] = out[column].astype("boolean")
    for column in ("lon", "lat", "gcj_lon", "gcj_lat", "max_frp_mw"):
        out[column] = out[column].astype("float64")
    for column in ("no", "priority", "observations"):
        out[column] = out[column].astype("int64")
    out["days"] = out["days"].astype("Int64")
    return out


# ------------------------------------------------------------------ texts of a task row


def _window_text(rec: Mapping[str, Any], language: Language) -> str:
    if rec["kind"] == "site":
        return t("不适用", "n/a", language)
    on = [t(*WINDOW_NAMES[c], language) for c in WINDOW_COLUMNS if _is_true(rec[c])]
    unknown = [t(*WINDOW_NAMES[c], language) for c in WINDOW_COLUMNS if _missing(rec[c])]
    parts = on or [t("无", "none", language)]
    if unknown:
        parts.append(t("未知", "unknown", language) + ": " + ", ".join(unknown))
    return " · ".join(parts)


def _where_text(rec: Mapping[str, Any], language: Language) -> str:
    if rec["where"] == "in_cell":
        return ""
    centre = rec["centre_cell_name"] or rec["centre_cell_id"]
    label = t("邻格像元触及", "touching, centred in", language)
    return f"{label} {centre}" if centre else t("网格外像元触及", "touching, centred outside the grid", language)


def _detail_parts(rec: Mapping[str, Any], language: Language) -> list[str]:
    """Plain-text pieces of the details column (escaped by the caller)."""
    if rec["kind"] == "site":
        parts = [rec["site_name"], rec["address"], rec["industry"]]
        if not _missing(rec["days"]):
            parts.append(f"{rec['days']} " + t("天", "day(s)", language))
        parts.append(pick(rec, "evidence", language))
        return [p for p in parts if p]
    parts = []
    if rec["fire_numbers"]:
        parts.append(t("地图火点", "map fires", language) + " " + ", ".join(f"#{n}" for n in rec["fire_numbers"]))
    seen = f"{rec['observations']} " + t("次观测", "observation(s)", language)
    if rec["sensors"]:
        seen += f" ({rec['sensors']})"
    parts.append(seen)
    if not _missing(rec["max_frp_mw"]):
        parts.append(frp_words(rec["max_frp_mw"], language))
    reason = pick(rec, "reason", language)
    if reason:
        parts.append(reason)
    return parts


def _coordinates(rec: Mapping[str, Any]) -> dict[str, str] | None:
    """The row's WGS84 and GCJ-02 positions as text (degrees, ``COORD_DECIMALS``), or None without a location."""
    if _missing(rec["lon"]) or _missing(rec["lat"]) or math.isnan(rec["lon"]):
        return None
    d = COORD_DECIMALS
    return {key: f"{rec[key]:.{d}f}" for key in ("lon", "lat", "gcj_lon", "gcj_lat")}


def _coords(rec: Mapping[str, Any], language: Language) -> str:
    """The row's positions as one line of plain text (a supervisor's page), "location unknown" without one."""
    xy = _coordinates(rec)
    if xy is None:
        return t("位置未知", "location unknown", language)
    # E/N prefixes: "lon, lat" vs "lat, lon" is the classic field mix-up.
    return f"WGS84 E{xy['lon']} N{xy['lat']} · GCJ-02 E{xy['gcj_lon']} N{xy['gcj_lat']}"


def _nav_links(rec: Mapping[str, Any], language: Language) -> list[dict[str, str]]:
    """The row's navigation links (``href``, ``label``): Amap, then the phone's map app; only ``https:``/``geo:``."""
    links = []
    for url, label in ((rec["amap_url"], t("高德导航", "Amap", language)), (rec["geo_url"], t("地图应用", "map app", language))):
        safe = _safe_url(url)
        if safe is not None:
            links.append({"href": safe, "label": label})
    return links


def _row(rec: Mapping[str, Any], language: Language) -> dict[str, Any]:
    """One task as the template's row: plain text and numbers, escaped by the template."""
    time = rec["time_bjt"] or t("时间未知", "unknown time", language)
    if rec["kind"] == "site" and rec["time_bjt"]:
        time = t("起始", "since", language) + f" {rec['time_bjt']}"
    return {
        "no": _text(rec["no"]),
        "priority": int(rec["priority"]),
        "where": _text(rec["where"]),
        "what": t(rec["label_zh"], rec["label_en"], language),
        "touching": _where_text(rec, language),
        "time": time,
        "window": _window_text(rec, language),
        "coords": _coordinates(rec),
        "nav": _nav_links(rec, language),
        "details": _detail_parts(rec, language),
    }


def task_list_html(
    rows: pd.DataFrame | list[dict[str, Any]],
    *,
    language: Language = "both",
    heading: str | None = None,
) -> str:
    """The task list as an HTML fragment: ``<section class="gw-tasks">`` with a heading and one table.

    ``rows``: :func:`task_rows`. ``heading``: shown after the fixed title (e.g. the
    cell's name, id and supervisor); escaped like every string from data (the
    template ``pages/task_list.html.j2`` escapes everything). Fixed labels are in
    Chinese, English or both (``language``). Style it with :data:`TASK_CSS`.
    Navigation links are only ever ``https:`` or ``geo:``.
    """
    check_language(language)
    title = t("今日核查任务", "Tasks to check today", language)
    count = f"{len(rows)} " + t("项", "item(s)", language)
    columns = [
        ("gw-no", t("序号", "No.", language)),
        ("gw-what", t("核查内容", "What to check", language)),
        ("gw-time", t("北京时间", "Beijing time", language)),
        ("gw-win", t("时段", "Window", language)),
        ("gw-xy", t("坐标", "Coordinates", language)),
        ("gw-nav", t("导航", "Navigate", language)),
        ("gw-detail", t("说明", "Details", language)),
    ]
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    return html_template("pages/task_list.html.j2").render(
        lang="en" if language == "en" else "zh-CN",
        heading=" · ".join(p for p in (title, _text(heading), count) if p),
        note=t(
            "按优先级排序：高风险时段的疑似秸秆焚烧最先，固定与工业热源最后。坐标：WGS84 用于 GPS，GCJ-02 用于高德等国内地图。",
            "In priority order: suspected straw burning in a high-risk window first, known heat sources last. "
            "Coordinates: WGS84 for GPS, GCJ-02 for Amap and other Chinese maps.",
            language,
        ),
        columns=[{"cls": cls, "label": label} for cls, label in columns],
        labels=dict(columns),
        rows=[_row(rec, language) for rec in records],
        location_unknown=t("位置未知", "location unknown", language),
        empty_label=t("今日无核查任务", "nothing to check today", language),
    )


# The list's styles (screen, phone, print): pipelines/static/gridwatch-tasks.css, shared or inlined as the map is.
TASK_CSS = static_text("gridwatch-tasks.css")


class _AfterMap(MacroElement):
    """Puts markup into the page body after the map's div, and ``TASK_CSS`` into the head.

    A child of the map rather than of the page's body: folium adds the map div to
    the body only when the map renders, so anything added to the body before
    would end up above the map.
    """

    def __init__(self, markup: str) -> None:
        super().__init__()
        self._name = "GridwatchTasks"
        self._markup = markup

    def render(self, **kwargs: Any) -> None:
        require_assets(self, "tasks")
        self.get_root().html.add_child(RawHtml(self._markup), name="gridwatch_tasks")


def add_task_list(
    m: Any,
    fires: pd.DataFrame | None,
    events: pd.DataFrame | None,
    sites: pd.DataFrame | None,
    cell_id: str,
    *,
    language: Language = "both",
    heading: str | None = None,
) -> list[dict[str, Any]]:
    """Add the cell's task list below the map of ``m`` (a ``mappage.MapPage`` or a folium map), styled by ``TASK_CSS``.

    On screen the section sits under the map (at most 40 % of the page height,
    scrollable); printed, it follows the map (reduced to 95 mm) in full. Calling
    it again on the same map replaces the list. Returns the rows (:func:`task_records`).
    """
    rows = task_records(fires, events, sites, cell_id)
    markup = task_list_html(rows, language=language, heading=heading)
    if hasattr(m, "add_child"):  # a folium map
        m.add_child(_AfterMap(markup), name="gridwatch_tasks")
    else:  # a maps.MapPage (what cell_map returns): its page has the list under the map
        m.below = Markup(markup)
    return rows
