"""Offline HTML maps for grid supervisors (网格员).

Every morning a supervisor opens one overview map and one map per grid cell that
has something to check, often on a phone in the field with no network. So each
map is a single self-contained HTML file: Leaflet's JavaScript and CSS are inlined
from ``pipelines/static`` instead of the CDN links folium writes by default, and
everything that matters is a vector layer. The OpenStreetMap basemap is only
decoration: offline its tiles fail and the vectors still show.

All inputs are WGS84 (EPSG:4326, degrees); instants are stored in UTC and shown
in Beijing time. User-supplied text (cell names and ids, county and supervisor
names, titles) never reaches an HTML parser unescaped: popups and tooltips carry
it as data that the page sets with ``textContent``, and the HTML written here
(title bar, legend, fire list) escapes it in Python.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import folium
import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.map import Layer

from pipelines.schema import (
    BEIJING_TZ,
    CATEGORY_LABELS,
    WGS84,
    WINDOW_COLUMNS,
    WINDOW_LABELS,
)
from pipelines.sites import RULE_LABELS, RULES

__all__ = ["cell_map", "cell_map_filename", "overview_map", "save_map"]

TIME_FORMAT = "%Y-%m-%d %H:%M 北京时间"
OUTSIDE_GRID = "不在任何网格内 outside any grid cell"

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
COORD_DECIMALS = 5

_DEFAULT_CENTRE = (35.0, 105.0)  # lat, lon: China, used only when nothing is drawn
_FIT_MAX_ZOOM = 14  # a single fire should not zoom in past street level


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

_BASE_CSS = """
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column;
  font-family: system-ui, -apple-system, "PingFang SC", "Noto Sans CJK SC",
    "Microsoft YaHei", sans-serif; }
.gw-title { flex: 0 0 auto; padding: 6px 12px; background: #263238; color: #fff;
  line-height: 1.35; }
.gw-title h1 { font-size: 1.05rem; margin: 0; font-weight: 600; }
.gw-title p { font-size: 0.85rem; margin: 2px 0 0; color: #cfd8dc; }
/* folium sizes the map div to 100% by id; let it fill what the title bar leaves. */
.folium-map { flex: 1 1 auto; height: auto !important; min-height: 0; }
.gw-box { background: rgba(255, 255, 255, 0.94); padding: 6px 8px; border-radius: 4px;
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.35); font-size: 12px; line-height: 1.45; }
.gw-legend { max-width: 260px; }
.gw-legend b { display: block; margin-top: 4px; }
.gw-sw { display: inline-block; width: 12px; height: 12px; margin-right: 6px;
  vertical-align: -2px; border: 1px solid #333; box-sizing: border-box; }
.gw-dot { border-radius: 50%; }
.gw-dashed { border: 2px dashed #333; background: transparent; }
.gw-panel { max-height: 45vh; overflow: auto; max-width: min(420px, 75vw); }
.gw-box summary { cursor: pointer; font-weight: 600; }
.gw-panel table { border-collapse: collapse; margin-top: 4px; }
.gw-panel th, .gw-panel td { padding: 2px 6px; border-bottom: 1px solid #e0e0e0;
  text-align: left; white-space: nowrap; }
.gw-panel td:last-child { white-space: normal; overflow-wrap: anywhere; min-width: 7em; }
.gw-panel tr[data-lat] { cursor: pointer; }
.gw-panel tr[data-lat]:hover { background: #fff3e0; }
/* Sized to fit a 360 px wide phone next to the popup's own margins. */
.gw-popup { font-size: 13px; line-height: 1.35; }
.gw-popup table { border-collapse: collapse; }
.gw-popup th { text-align: left; font-weight: normal; color: #555; padding: 1px 8px 1px 0;
  vertical-align: top; max-width: 8em; }
.gw-popup td { padding: 1px 0; min-width: 10em; vertical-align: top; }
"""


# --------------------------------------------------------------------------- HTML


class _Html(str):
    """Markup that is already safe; every other string gets escaped."""


def _esc(value: object) -> _Html:
    """Escape anything for HTML text or a quoted attribute, unless already markup."""
    if isinstance(value, _Html):
        return value
    return _Html(html.escape(_text(value), quote=True))


def _text(value: object, missing: str = "—") -> str:
    """A display string for a possibly missing value (None, NaN, <NA>)."""
    if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
        return missing
    return str(value)


class _RawHtml(Element):
    """Text put into the page verbatim.

    branca compiles an ``Element``'s text as a Jinja template, which would mangle
    minified JavaScript containing ``{{``; this one is never templated.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def render(self, **kwargs: Any) -> str:
        return self._text


class _HtmlControl(MacroElement):
    """A Leaflet control holding fixed HTML (legend, fire list).

    A control rather than a fixed-position div so Leaflet stacks it with the zoom
    and layer controls instead of overlapping them on a phone screen. Rows with
    ``data-lat``/``data-lon`` zoom the map to that point when clicked.
    """

    _template = jinja2.Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var control = L.control({position: {{ this.position|tojson }}});
            control.onAdd = function () {
                var div = L.DomUtil.create("div", {{ this.css_class|tojson }});
                div.innerHTML = {{ this.markup_json }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                // On a phone, start folded so the map is visible; a tap opens it.
                if (window.innerWidth < 700) {
                    div.querySelectorAll("details").forEach(function (d) { d.open = false; });
                }
                div.addEventListener("click", function (e) {
                    var row = e.target.closest("[data-lat]");
                    if (row) {
                        // A plain jump: cheap on old phones, and deterministic.
                        map.setView([+row.dataset.lat, +row.dataset.lon], Math.max(map.getZoom(), 14),
                                    {animate: false});
                    }
                });
                return div;
            };
            control.addTo(map);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, markup: _Html, *, position: str, css_class: str) -> None:
        super().__init__()
        self._name = "HtmlControl"
        self.markup_json = _script_json(str(markup))
        self.position = position
        self.css_class = css_class


# --------------------------------------------------------------- offline assets


def _static_bytes(name: str) -> bytes:
    """One vendored file from ``pipelines/static`` (see its README for provenance)."""
    return (resources.files("pipelines") / "static" / name).read_bytes()


def _leaflet_js() -> str:
    js = _static_bytes("leaflet.js").decode("utf-8")
    # The map file is not shipped; a dangling source-map URL would only make
    # developer tools try to fetch it.
    js = re.sub(r"^//# sourceMappingURL=.*$", "", js, flags=re.MULTILINE)
    if "</script" in js.lower():
        raise ValueError("leaflet.js contains '</script' and cannot be inlined")
    return js


def _leaflet_css() -> str:
    """Leaflet's CSS with its icon images as data URIs, so nothing is fetched."""

    def inline(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in ("layers.png", "layers-2x.png"):
            return "none"  # marker icons: not vendored, fires are circle markers
        data = base64.b64encode(_static_bytes(name)).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\(images/([\w.-]+)\)", inline, _static_bytes("leaflet.css").decode("utf-8"))


_OFFLINE_HEADER = "gridwatch_leaflet"


def _make_offline(m: folium.Map) -> None:
    """Replace folium's CDN links with inlined Leaflet; idempotent.

    Setting the lists on the instance shadows ``folium.Map.default_js``/``css``;
    mutating those (e.g. with ``add_js_link``) would change every map in the
    process. jQuery, Bootstrap and awesome-markers are dropped: nothing drawn
    here uses them (folium's ``Popup`` would need jQuery; see ``_FeatureLayer``).
    """
    m.default_js = []
    m.default_css = []
    header = m.get_root().header
    if _OFFLINE_HEADER in header._children:
        return
    markup = f"<style>{_leaflet_css()}</style>\n<script>{_leaflet_js()}</script>\n<style>{_BASE_CSS}</style>"
    header.add_child(_RawHtml(markup), name=_OFFLINE_HEADER)


_EXTERNAL_REFERENCE = re.compile(
    r"<(?:script|img|iframe|embed|source)\b[^>]*\bsrc\s*=|<link\b[^>]*\bhref\s*=|@import\b",
    re.IGNORECASE,
)


def _check_self_contained(page: str) -> None:
    """Refuse to write a page that would fetch scripts or styles (it would break offline)."""
    found = _EXTERNAL_REFERENCE.findall(page)
    if found:
        raise ValueError(f"map HTML references external resources: {sorted(set(found))}")


def _new_map(page_title: str, tiles: str | None) -> folium.Map:
    """An empty offline map whose page has ``page_title`` as its ``<title>``."""
    m = folium.Map(location=None, tiles=tiles, control_scale=True)
    _make_offline(m)
    m.get_root().title = _esc(page_title)  # branca writes the title unescaped
    return m


def _add_title_bar(m: folium.Map, heading: str, lines: Sequence[str]) -> None:
    """A bar above the map with the title and one line per summary."""
    paragraphs = "".join(f"<p>{_esc(line)}</p>" for line in lines)
    bar = f'<header class="gw-title"><h1>{_esc(heading)}</h1>{paragraphs}</header>'
    m.get_root().html.add_child(_RawHtml(bar), name="gridwatch_title")


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
    return {"D": "白天 day (D)", "N": "夜间 night (N)"}.get(_text(value), _text(value, "未知 unknown"))


def _touched(value: object) -> list[str]:
    """``cells_touched`` as a list whatever it was stored as (list, array, None, NaN)."""
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _cell_label(cell_id: object, names: Mapping[str, str]) -> str:
    if pd.isna(cell_id):
        return OUTSIDE_GRID
    name = names.get(str(cell_id))
    return f"{name} ({cell_id})" if name else str(cell_id)


# ------------------------------------------------------------------ geometry


def _geometry_json(geom: shapely.Geometry, tolerance: float) -> dict[str, Any]:
    """GeoJSON of ``geom`` (degrees), simplified and rounded to keep the page small."""
    if tolerance > 0 and not isinstance(geom, shapely.Point):
        geom = shapely.simplify(geom, tolerance, preserve_topology=True)
    geom = shapely.transform(geom, lambda xy: np.round(xy, COORD_DECIMALS))
    return shapely.geometry.mapping(geom)


class _Styles:
    """The distinct Leaflet styles of one layer; features refer to them by index,
    so thousands of fires do not each repeat the same style object."""

    def __init__(self) -> None:
        self.table: list[dict[str, Any]] = []

    def index(self, style: dict[str, Any]) -> int:
        if style not in self.table:
            self.table.append(style)
        return self.table.index(style)


PopupValue = str | dict[str, str] | None  # text, {"href", "text"} for a link, None = no row


def _feature(
    geom_json: dict[str, Any], style: int, tooltip: str, values: Sequence[PopupValue] | None = None
) -> dict[str, Any]:
    """A GeoJSON feature: style index, plain-text tooltip and popup values.

    The values line up with the layer's popup labels. All of them are plain
    text, which the page sets with ``textContent``: cell names never reach an
    HTML parser, and the page carries no per-fire markup.
    """
    props: dict[str, Any] = {"k": style, "t": tooltip}
    if values is not None:
        props["v"] = list(values)
    return {"type": "Feature", "geometry": geom_json, "properties": props}


# Builds a popup from labels and values on first open; values are user data
# (cell and supervisor names), so they are only ever set as text.
_POPUP_JS = """
function gridwatchPopup(labels, values) {
    var box = document.createElement("div");
    box.className = "gw-popup";
    var table = box.appendChild(document.createElement("table"));
    labels.forEach(function (label, i) {
        var value = values[i];
        if (value === null || value === undefined) { return; }
        var row = table.insertRow();
        row.appendChild(document.createElement("th")).textContent = label;
        var cell = row.insertCell();
        if (typeof value === "object" && value.kwh) {
            cell.appendChild(gridwatchChart(value));
        } else if (typeof value === "object") {
            var link = cell.appendChild(document.createElement("a"));
            link.href = value.href;
            link.textContent = value.text;
        } else {
            cell.textContent = value;
        }
    });
    return box;
}

// A daily-use chart built as SVG nodes from numbers (never parsed from markup):
// kwh (null = unknown), the reference line (floor or baseline) and the flagged run.
function gridwatchChart(spec) {
    var ns = "http://www.w3.org/2000/svg", w = 260, h = 90, top = 12, bottom = 16;
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", w); svg.setAttribute("height", h);
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    var known = spec.kwh.filter(function (v) { return v !== null; });
    var max = Math.max.apply(null, known.concat([spec.ref || 0, 1]));
    var n = spec.kwh.length, step = w / Math.max(n, 1);
    function y(v) { return top + (h - top - bottom) * (1 - v / max); }
    function add(tag, attrs, text) {
        var el = svg.appendChild(document.createElementNS(ns, tag));
        Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
        if (text !== undefined) { el.textContent = text; }
        return el;
    }
    add("rect", {x: 0, y: 0, width: w, height: h, fill: "#fafafa"});
    if (spec.since !== null && spec.since < n) {
        add("rect", {x: spec.since * step, y: top, width: (n - spec.since) * step, height: h - top - bottom, fill: "#ffcdd2"});
    }
    spec.kwh.forEach(function (v, i) {
        if (v === null) { return; }
        add("rect", {x: i * step + 0.5, y: y(v), width: Math.max(step - 1, 1), height: Math.max(h - bottom - y(v), 0.5),
                     fill: spec.rest && spec.rest[i] ? "#90a4ae" : "#37474f"});
    });
    if (spec.ref !== null) {
        add("line", {x1: 0, x2: w, y1: y(spec.ref), y2: y(spec.ref), stroke: "#d50000", "stroke-dasharray": "4 3"});
        add("text", {x: 2, y: y(spec.ref) - 2, "font-size": 9, fill: "#d50000"}, spec.ref_label);
    }
    add("text", {x: w - 2, y: 9, "font-size": 9, "text-anchor": "end", fill: "#555"}, "max " + Math.round(max) + " kWh/d");
    add("text", {x: 0, y: h - 4, "font-size": 9, fill: "#555"}, spec.start);
    add("text", {x: w, y: h - 4, "font-size": 9, "text-anchor": "end", fill: "#555"}, spec.end);
    return svg;
}
"""


class _FeatureLayer(Layer):
    """A toggleable GeoJSON layer of :func:`_feature` features; points become
    circle markers.

    Not ``folium.GeoJson``: its data goes through Jinja's ``tojson``, which
    writes every Chinese character as a 6-byte ``\\uXXXX`` escape, and its
    popups come from ``folium.Popup`` (needs jQuery, and puts text in a JS
    template literal where ``${`` in a cell name would run) or from
    ``GeoJsonPopup`` (``innerHTML`` of each raw property). Here each feature
    carries values only; labels and styles are stored once per layer.
    """

    _template = jinja2.Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }}_styles = {{ this.styles_json }};
        var {{ this.get_name() }}_labels = {{ this.labels_json }};
        var {{ this.get_name() }} = L.geoJson({{ this.data_json }}, {
            style: function (feature) { return {{ this.get_name() }}_styles[feature.properties.k]; },
            pointToLayer: function (feature, latlng) {
                var style = {{ this.get_name() }}_styles[feature.properties.k];
                return L.circleMarker(latlng, Object.assign({radius: {{ this.radius }}}, style));
            },
            onEachFeature: function (feature, layer) {
                var p = feature.properties;
                layer.bindTooltip(function () { return document.createTextNode(p.t); }, {sticky: true});
                if (p.v) {
                    layer.bindPopup(function () {
                        return gridwatchPopup({{ this.get_name() }}_labels, p.v);
                    }, {maxWidth: 300});
                }
            }
        });
        {% endmacro %}
        """
    )

    def __init__(
        self,
        features: list[dict[str, Any]],
        name: str,
        *,
        styles: list[dict[str, Any]],
        labels: Sequence[str] = (),
        radius: float = 7,
        show: bool = True,
    ) -> None:
        # Layer names must be constant text: Leaflet's layer control inserts them as HTML.
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "FeatureLayer"
        self.data_json = _script_json({"type": "FeatureCollection", "features": features})
        self.styles_json = _script_json(styles)
        self.labels_json = _script_json(list(labels))
        self.radius = float(radius)

    def render(self, **kwargs: Any) -> None:
        # Named, so the helper is written once however many layers use it.
        self.get_root().header.add_child(_RawHtml(f"<script>{_POPUP_JS}</script>"), name="gridwatch_popup_js")
        super().render(**kwargs)


def _script_json(value: object) -> str:
    """JSON to embed in ``<script>``, with Chinese text kept as UTF-8.

    Every ``<`` becomes ``\\u003c`` (JavaScript reads it back as ``<``), so no
    data can end the script element or look like a tag to the HTML parser or to
    :func:`_check_self_contained`. Popup data is plain text, so this is rare.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def _bounds(geoms: Sequence[shapely.Geometry]) -> list[list[float]] | None:
    """[[south, west], [north, east]] of non-empty geometries, or None."""
    present = [g for g in geoms if g is not None and not shapely.is_empty(g)]
    if not present:
        return None
    west, south, east, north = shapely.total_bounds(np.asarray(present, dtype=object))
    return [[float(south), float(west)], [float(north), float(east)]]


def _fit(m: folium.Map, bounds: list[list[float]] | None) -> None:
    if bounds is None:
        m.location = list(_DEFAULT_CENTRE)
        m.options["zoom"] = 4
        return
    m.fit_bounds(bounds, padding=(24, 24), max_zoom=_FIT_MAX_ZOOM)


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


def _names(grid: pd.DataFrame, fires: pd.DataFrame, *extra: str) -> dict[str, str]:
    """Names of the cells these fires are in or touch (not of the whole grid: it may hold 10^5 cells)."""
    ids = {str(c) for c in fires["cell_id"].dropna()} | {c for v in fires["cells_touched"] for c in _touched(v)} | set(extra)
    cells = grid[grid["cell_id"].astype(str).isin(ids)]
    return dict(zip(cells["cell_id"].astype(str), cells["cell_name"].map(_text), strict=True))


def _site_cell_names(grid: pd.DataFrame, sites: pd.DataFrame) -> dict[str, str]:
    cells = grid[grid["cell_id"].astype(str).isin(set(sites["cell_id"].dropna().astype(str)))]
    return dict(zip(cells["cell_id"].astype(str), cells["cell_name"].map(_text), strict=True))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


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
    others = [c for c in _touched(rec.get("cells_touched")) if c != _text(rec.get("cell_id"), "")]
    sensor = " · ".join(_text(rec.get(c), "") for c in ("sensor", "satellite") if not pd.isna(rec.get(c)))
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
        _text(rec.get("county_name")),
        _text(rec.get("supervisor")),
        ", ".join(_cell_label(c, names) for c in others) or "无 none",
        _bjt(rec.get("sunset_bjt"), "%H:%M 北京时间"),
        f"{point.y:.5f}°N {point.x:.5f}°E",
        _text(rec.get("fire_id")),
        None if pd.isna(rec.get("event_id", pd.NA)) else _text(rec.get("event_id")),
        *_category_values(rec),
        *_window_evidence(rec),
    ]


def _window_evidence(rec: Mapping[str, Any]) -> list[PopupValue]:
    """What the before-rain and before-sowing flags rest on (None where those inputs are not configured)."""
    rain = None
    if "rain_source" in rec or "rain_note" in rec:
        onset = rec.get("rain_onset_utc")
        if onset is not None and not pd.isna(onset):
            rain = f"{_bjt(onset)} · {_number(rec.get('rain_mm'), '.1f', ' mm')} · {_text(rec.get('rain_source'))}"
        else:
            rain = _text(rec.get("rain_note"), _text(rec.get("rain_source")))
    sowing = None
    if "sowing_source" in rec:
        start, end = rec.get("sowing_start"), rec.get("sowing_end")
        if start is not None and not pd.isna(start):
            sowing = f"{_text(rec.get('sowing_crop'))} {pd.Timestamp(start):%m-%d} – {pd.Timestamp(end):%m-%d} · {_text(rec.get('sowing_source'))}"
        else:
            sowing = "无播种期 no sowing window known here"
    return [rain, sowing]


# Heat sources are not what a supervisor patrols for: their layers start hidden.
HEAT_SOURCES = ("industrial", "persistent")
HEAT_SOURCE_COLOURS = {"industrial": "#6d4c41", "persistent": "#8d6e63"}


def _category_values(rec: Mapping[str, Any]) -> list[PopupValue]:
    """The category (bilingual) and its reason, for popups; None where not classified."""
    category, reason = rec.get("category", pd.NA), rec.get("reason", pd.NA)
    return [
        None if pd.isna(category) else CATEGORY_LABELS.get(str(category), _text(category)),
        None if pd.isna(reason) else _text(reason),
    ]


def _heat_sources(frame: pd.DataFrame) -> np.ndarray:
    """Which rows are industrial or persistent heat sources (none when not classified)."""
    if "category" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["category"].isin(HEAT_SOURCES).fillna(False).to_numpy(bool)


def _event_layers(m: folium.Map, events: pd.DataFrame, names: Mapping[str, str]) -> None:
    """Events to check (shown) and heat-source events (hidden), as outlines."""
    sources = _heat_sources(events)
    for chosen, name, show in ((events[~sources], "火情事件 fire events", True), (events[sources], "热源事件 heat-source events", False)):
        layer = _event_layer(chosen, names, name, show=show)
        if layer is not None:
            layer.add_to(m)


def _event_layer(events: pd.DataFrame, names: Mapping[str, str], name: str, *, show: bool = True) -> _FeatureLayer | None:
    """Fire events as the union of their observations' footprints, coloured by window."""
    styles, features = _Styles(), []
    for rec in _records(events):
        geometry = rec["geometry"]
        if not isinstance(geometry, shapely.Geometry) or geometry.is_empty:
            continue
        cls = _fire_class(rec.get("win_after_work"), rec.get("win_first_half_night"))
        style = {"color": cls.colour, "weight": 2, "fillColor": cls.colour, "fillOpacity": 0.25}
        seen = rec["observations"]
        tooltip = f"事件 event · {_bjt(rec['first_seen_utc'], '%H:%M')}–{_bjt(rec['last_seen_utc'], '%H:%M')} · {seen} 次观测 observations · {_text(rec.get('sensors'))}"
        values = [
            _text(rec["event_id"]),
            _bjt(rec["first_seen_utc"]),
            _bjt(rec["last_seen_utc"]),
            str(seen),
            f"{_text(rec.get('sensors'))} ({_text(rec.get('satellites'))})",
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
)
SITE_COLOURS = {"resurgence": "#d50000", "noncompliance": "#6a1b9a", "unregistered_load": "#00838f", "stopped": "#757575"}
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
    enterprise = _text(rec.get("name"), "") + (f" ({rec['enterprise_id']})" if rec.get("enterprise_id") else "")
    return [
        f"{rec['rule_zh']} {rec['rule_en']}",
        _text(rec.get("evidence")),
        _site_chart(rec),
        enterprise or "未登记 not registered",
        _text(rec.get("address")) if rec.get("enterprise_id") else None,
        _text(rec.get("industry")) if rec.get("enterprise_id") else None,
        STATUS_LABELS.get(str(rec.get("status")), _text(rec.get("status"))) if rec.get("enterprise_id") else None,
        _text(rec.get("grade")) if rec.get("grade") else None,
        _text(rec.get("transformers")),
        _text(rec.get("first_day")),
        _number(rec.get("value_kwh"), ".0f", " kWh"),
        f"{rec['lat']:.5f}, {rec['lon']:.5f}",
        _cell_label(rec.get("cell_id"), names),
    ]


def _site_layers(m: folium.Map, sites: pd.DataFrame, names: Mapping[str, str]) -> None:
    """One layer per rule, large markers with a white ring so they stand out from fires."""
    for rule in RULES:
        chosen = sites[sites["rule"] == rule]
        if chosen.empty:
            continue
        zh, en = RULE_LABELS[rule]
        features = [
            _feature(_geometry_json(rec["geometry"], 0), 0, f"{zh} {en} · {_text(rec.get('name'), _text(rec.get('transformer_id')))}",
                     _site_popup_values(rec, names))
            for rec in _records(chosen)
        ]
        style = {"color": "#ffffff", "weight": 3, "fillColor": SITE_COLOURS[rule], "fillOpacity": 0.95}
        _FeatureLayer(features, f"用电 sites: {zh} {en} ({len(features)})", styles=[style], labels=SITE_POPUP_LABELS,
                      radius=9).add_to(m)


def _site_legend(sites: pd.DataFrame | None) -> str:
    if sites is None or sites.empty:
        return ""
    rows = "".join(
        f"<div>{_swatch(SITE_COLOURS[rule], dot=True, border='#fff')}{_esc(zh)} {_esc(en)} ({int((sites['rule'] == rule).sum())})</div>"
        for rule, (zh, en) in RULE_LABELS.items() if (sites["rule"] == rule).any()
    )
    return "<b>用电异常 electricity sites</b>" + rows


def _fire_point_style(cls: FireClass, *, touching: bool) -> dict[str, Any]:
    """Solid marker for a fire centred in the cell; hollow dashed for a neighbour's."""
    if touching:
        return {
            "color": cls.colour,
            "weight": 2.5,
            "dashArray": "4 3",
            "fillColor": cls.colour,
            "fillOpacity": 0.2,
        }
    return {"color": "#212121", "weight": 1.2, "fillColor": cls.colour, "fillOpacity": 0.9}


def _fire_layers(
    m: folium.Map,
    fires: pd.DataFrame,
    names: Mapping[str, str],
    *,
    label: str,
    touching: bool = False,
    numbers: Mapping[str, int] | None = None,
) -> None:
    """Add one circle-marker layer per window class (so each can be switched off).

    Fires classified as industrial or persistent heat sources go to their own
    layers, off by default: a supervisor sees first what must be checked.
    """
    sources = _heat_sources(fires)
    for category in HEAT_SOURCES:
        chosen = fires[sources & (fires["category"] == category).fillna(False).to_numpy(bool)] if sources.any() else fires.iloc[:0]
        features = [
            _feature(_geometry_json(rec["geometry"], 0), 0, f"{_bjt(rec['time_utc'], '%H:%M')} · {CATEGORY_LABELS[category]}", _fire_popup_values(rec, names))
            for rec in _records(chosen)
        ]
        if features:
            style = {"color": "#212121", "weight": 1, "fillColor": HEAT_SOURCE_COLOURS[category], "fillOpacity": 0.8}
            _FeatureLayer(features, f"{label}: {CATEGORY_LABELS[category]} ({len(features)})", styles=[style],
                          labels=FIRE_POPUP_LABELS, radius=5, show=False).add_to(m)
    fires = fires[~sources]
    by_class: dict[str, list[dict]] = {c.key: [] for c in FIRE_CLASSES}
    for rec in _records(fires):
        cls = _fire_class(rec["win_after_work"], rec["win_first_half_night"])
        number = f"#{numbers[rec['fire_id']]} · " if numbers else ""
        where = OUTSIDE_GRID if pd.isna(rec.get("cell_id")) else _text(rec.get("cell_name"))
        tooltip = f"{number}{_bjt(rec['time_utc'], '%H:%M')} · {cls.label} · {where}"
        values = _fire_popup_values(rec, names)
        by_class[cls.key].append(_feature(_geometry_json(rec["geometry"], 0), 0, tooltip, values))
    for cls in FIRE_CLASSES:
        if by_class[cls.key]:
            _FeatureLayer(
                by_class[cls.key],
                f"{label}: {cls.label} ({len(by_class[cls.key])})",
                styles=[_fire_point_style(cls, touching=touching)],
                labels=FIRE_POPUP_LABELS,
            ).add_to(m)


def _class_counts(fires: pd.DataFrame) -> dict[str, int]:
    counts = {c.key: 0 for c in FIRE_CLASSES}
    for after_work, night in zip(fires["win_after_work"], fires["win_first_half_night"], strict=True):
        counts[_fire_class(after_work, night).key] += 1
    return counts


def _time_span(fires: pd.DataFrame) -> str:
    """'observed 2022-06-03 01:30 – 19:30 北京时间' for the title bar ('' if no time)."""
    times = fires["time_utc"].dropna()
    if times.empty:
        return ""
    first, last = _bjt(times.min(), "%Y-%m-%d %H:%M"), _bjt(times.max(), "%Y-%m-%d %H:%M")
    if first == last:  # a single overpass
        return f"观测 observed {first} 北京时间"
    if first[:10] == last[:10]:
        last = last[11:]
    return f"观测 observed {first} – {last} 北京时间"


def _window_summary(counts: Mapping[str, int]) -> str:
    """'收工时 after work 1 · 上半夜 first half of night 2', high-risk first, no zeros."""
    return " · ".join(f"{c.label} {counts[c.key]}" for c in reversed(FIRE_CLASSES) if counts[c.key])


def _data_window_summary(fires: pd.DataFrame) -> str:
    """'下雨前 before rain 3 (unknown 12) · 播种前 before sowing 415', for the windows that need data."""
    parts = []
    for column in ("win_before_rain", "win_before_sowing"):
        if column in fires:
            flags = fires[column].astype("boolean")
            unknown = int(flags.isna().sum())
            parts.append(f"{WINDOW_LABELS[column]} {int(flags.fillna(False).sum())}" + (f" (未知 unknown {unknown})" if unknown else ""))
    return " · ".join(parts)


# ------------------------------------------------------------------ legends


def _swatch(colour: str, *, dot: bool = False, dashed: bool = False, border: str = "#333") -> str:
    classes = "gw-sw" + (" gw-dot" if dot else "") + (" gw-dashed" if dashed else "")
    fill = "transparent" if dashed else colour
    return f'<span class="{classes}" style="background:{fill};border-color:{border}"></span>'


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


def _fire_legend_rows(counts: Mapping[str, int]) -> str:
    return "".join(
        f"<div>{_swatch(c.colour, dot=True)}{_esc(c.label)} ({counts[c.key]})</div>"
        for c in reversed(FIRE_CLASSES)
        if c.key != "both" or counts[c.key]
    )


_EVENT_LEGEND = f"<div>{_swatch('#9e9e9e', border='#616161')}火情事件 fire event: the pixels of one fire, all sensors</div>"


def _overview_legend(counts: Mapping[str, int], has_touched_only: bool, has_events: bool = False) -> _Html:
    cells = "".join(
        f"<div>{_swatch(colour)}{label}</div>"
        for colour, label in zip(COUNT_COLOURS, _count_labels(), strict=True)
    )
    touched = (
        f"<div>{_swatch('#37474f', dashed=True)}仅被邻格像元触及 only touched by a pixel</div>"
        if has_touched_only
        else ""
    )
    return _Html(
        "<b>火点 fires by time window</b>"
        + _fire_legend_rows(counts)
        + "<b>网格火点数 fires centred per cell</b>"
        + cells
        + touched
        + (_EVENT_LEGEND if has_events else "")
    )


def _cell_legend(counts: Mapping[str, int], has_events: bool = False) -> _Html:
    return _Html(
        "<b>火点 fires by time window</b>"
        + _fire_legend_rows(counts)
        + "<b>线与符号 lines and markers</b>"
        + f"<div>{_swatch('#0d47a1', border='#0d47a1')}本网格 this cell (thick outline)</div>"
        + f"<div>{_swatch('transparent', border='#78909c')}相邻网格 neighbouring cells</div>"
        + f"<div>{_swatch('#9e9e9e', dot=True, border='#212121')}火点在本网格 fire centred here</div>"
        + f"<div>{_swatch('#9e9e9e', dot=True, dashed=True)}"
        + "邻格火点，像元触及本网格 neighbour's fire whose pixel touches</div>"
        + f"<div>{_swatch('transparent')}像元范围 pixel footprint (dashed: neighbour's)</div>"
        + (_EVENT_LEGEND if has_events else "")
    )


def _add_legend(m: folium.Map, markup: _Html) -> None:
    folding = f"<details open><summary>图例 legend</summary>{markup}</details>"
    m.add_child(_HtmlControl(_Html(folding), position="bottomleft", css_class="gw-box gw-legend"))


# ------------------------------------------------------------------ overview


def _window_counts(fires: pd.DataFrame) -> pd.DataFrame:
    """Per cell id: fires centred there, and per window how many are in it / unknown."""
    attributed = fires[fires["cell_id"].notna()]
    keys = attributed["cell_id"].astype(str)
    columns: dict[str, pd.Series] = {"n": attributed.groupby(keys).size()}
    for col in WINDOW_COLUMNS:
        flags = attributed[col].astype("boolean")
        columns[col] = flags.fillna(False).astype(bool).groupby(keys).sum()
        columns[f"{col}_unknown"] = flags.isna().groupby(keys).sum()
    return pd.DataFrame(columns)


def _touching_counts(fires: pd.DataFrame) -> pd.Series:
    """Per cell id: fires centred elsewhere (or nowhere) whose footprint touches it."""
    touching: dict[str, int] = {}
    for own, touched in zip(fires["cell_id"], fires["cells_touched"], strict=True):
        for cell in set(_touched(touched)) - {_text(own, "")}:
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
        f"{_text(cell['cell_name'])} ({cell['cell_id']})",
        _text(cell.get("county_name")),
        _text(cell.get("supervisor")),
        str(int(counts.get("n", 0))),
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
    """Cells shaded by fire count (or dashed outlines for touched-only cells)."""
    styles, features = _Styles(), []
    for cell in _records(cells):
        cell_id = str(cell["cell_id"])
        row = counts.loc[cell_id].to_dict() if cell_id in counts.index else {}
        n = int(row.get("n", 0))
        if shaded:
            style = {"color": "#37474f", "weight": 1, "fillColor": _count_colour(n), "fillOpacity": 0.6}
        else:
            style = {"color": "#37474f", "weight": 1.5, "dashArray": "5 4", "fill": True, "fillOpacity": 0}
        tooltip = f"{_text(cell['cell_name'])} · {n} 火点 fires · 网格员 {_text(cell.get('supervisor'))}"
        values = _cell_popup_values(cell, row, int(touching.get(cell_id, 0)), cell_links.get(cell_id))
        geometry = _geometry_json(cell["geometry"], OVERVIEW_TOLERANCE_DEG)
        features.append(_feature(geometry, styles.index(style), tooltip, values))
    if not features:
        return None
    return _FeatureLayer(features, name, styles=styles.table, labels=CELL_POPUP_LABELS)


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
) -> folium.Map:
    """The morning overview: cells with fires shaded by count, every fire as a marker.

    ``sites``: electricity sites (``sites.find_sites``, EPSG:4326), one layer per
    rule, each popup with the last 60 days of use and the rule that fired.

    ``events``: fire events (``events.events_table``), drawn as the outline of
    their observations' footprints under the markers.

    ``context``: outlines drawn under everything (e.g. provinces, with a
    ``name`` column; EPSG:4326), so the map reads without a basemap offline.

    ``fires``: attributed fire points (FIRE_DTYPES + ATTRIBUTION_DTYPES +
    ``sunset_bjt`` + WINDOW_COLUMNS), geometry = pixel centre, EPSG:4326.
    ``grid``: GRID_COLUMNS, (Multi)Polygons in EPSG:4326. Only cells with a fire
    centred in them (shaded) or touched by a fire's footprint (dashed) are drawn,
    so a grid of tens of thousands of cells still gives a small page.
    ``cell_links``: cell id -> relative path of that cell's map, linked from the
    cell's popup. ``tiles``: a folium basemap name, or None for no basemap.
    Fires outside every cell are drawn too. The map fits the fires' bounds, or the
    grid's when there are none.
    """
    fires = _prepare_fires(fires)
    grid = _prepare_grid(grid)
    links = dict(cell_links or {})
    names = _names(grid, fires)
    counts = _window_counts(fires)
    touching = _touching_counts(fires)

    m = _new_map(title, tiles)
    if context is not None and not context.empty:
        _context_layer(context.to_crs(WGS84)).add_to(m)
    ids = grid["cell_id"].astype(str)
    with_fires = grid[ids.isin(counts.index)]
    touched_only = grid[ids.isin(touching.index) & ~ids.isin(counts.index)]
    for cells, name, shaded in (
        (with_fires, f"网格 cells with fires ({len(with_fires)})", True),
        (touched_only, f"网格 cells only touched by a pixel ({len(touched_only)})", False),
    ):
        layer = _cell_layer(cells, counts, touching, links, name=name, shaded=shaded)
        if layer is not None:
            layer.add_to(m)
    if events is not None:
        _event_layers(m, events, names)
    _fire_layers(m, fires, names, label="火点 fires")
    if sites is not None and not sites.empty:
        _site_layers(m, sites, names | _site_cell_names(grid, sites))
    folium.LayerControl(collapsed=True).add_to(m)

    class_counts = _class_counts(fires)
    _add_legend(m, _Html(_overview_legend(class_counts, not touched_only.empty, events is not None and not events.empty) + _site_legend(sites)))
    outside = int(fires["cell_id"].isna().sum())
    in_events = ""
    if events is not None:
        straw = f" ({int((events['category'] == 'straw_suspect').sum())} 疑似秸秆焚烧 suspected straw burning)" if "category" in events else ""
        in_events = f"{len(events)} 火情事件 events{straw} · "
    summary = (
        f"{len(fires)} 火点 fires · {in_events}{len(with_fires)} 网格 cells with fires · "
        f"{outside} 不在网格内 outside any grid cell"
        + (f" · {len(sites)} 用电异常 electricity sites" if sites is not None and len(sites) else "")
    )
    _add_title_bar(
        m, title, [line for line in (_time_span(fires), summary, _window_summary(class_counts), _data_window_summary(fires)) if line]
    )
    site_points = list(sites.geometry) if sites is not None else []
    _fit(m, _bounds([*fires.geometry, *site_points]) or _bounds(list(grid.geometry)))
    return m


# ------------------------------------------------------------------ per cell


def _neighbours(
    grid: gpd.GeoDataFrame, cell_geom: shapely.Geometry, cell_id: str, extra: Iterable[str]
) -> gpd.GeoDataFrame:
    """Cells sharing a boundary with the cell, plus the cells of touching fires."""
    nearby = grid.iloc[grid.sindex.query(cell_geom, predicate="intersects")]
    wanted = set(nearby["cell_id"].astype(str)) | set(extra)
    wanted.discard(cell_id)
    return grid[grid["cell_id"].astype(str).isin(wanted)]


def _context_layer(outlines: gpd.GeoDataFrame) -> _FeatureLayer:
    features = [
        _feature(_geometry_json(geometry, CELL_TOLERANCE_DEG), 0, _text(name))
        for geometry, name in zip(outlines.geometry, outlines["name"], strict=True)
    ]
    style = {"color": "#546e7a", "weight": 1.5, "fill": False, "interactive": False}
    return _FeatureLayer(features, "行政区 boundaries", styles=[style])


def _outline_layer(cells: pd.DataFrame, name: str, style: dict[str, Any]) -> _FeatureLayer | None:
    features = [
        _feature(
            _geometry_json(cell["geometry"], CELL_TOLERANCE_DEG),
            0,
            f"{_text(cell['cell_name'])} ({cell['cell_id']}) · 网格员 {_text(cell.get('supervisor'))}",
        )
        for cell in _records(cells)
    ]
    return _FeatureLayer(features, name, styles=[style]) if features else None


def _footprint_layer(
    fires: pd.DataFrame, in_cell: pd.Series, numbers: Mapping[str, int]
) -> _FeatureLayer | None:
    """Pixel footprints: solid for fires centred in the cell, dashed for neighbours'."""
    if "footprint" not in fires.columns:
        return None
    styles, features, drawn = _Styles(), [], set()
    for rec, inside in zip(_records(fires), in_cell, strict=True):
        footprint = rec["footprint"]
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
    return _FeatureLayer(features, f"像元范围 pixel footprints ({len(features)})", styles=styles.table)


def _fire_list(
    fires: pd.DataFrame, in_cell: pd.Series, numbers: Mapping[str, int], names: Mapping[str, str]
) -> _Html:
    """The side panel: one row per fire, click a row to zoom to it."""
    columns = ("#", "时间 time", "时段 window", "置信度 conf.", "FRP MW", "位置 where")
    head = "<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr>"
    rows = []
    for rec, inside in zip(_records(fires), in_cell, strict=True):
        cls = _fire_class(rec["win_after_work"], rec["win_first_half_night"])
        where = "本网格 this cell" if inside else f"邻格 {_cell_label(rec.get('cell_id'), names)}"
        cells = [
            str(numbers[rec["fire_id"]]),
            _bjt(rec["time_utc"], "%m-%d %H:%M"),
            cls.short,
            _number(rec.get("confidence"), ".0f"),
            _number(rec.get("frp_mw"), ".1f"),
            where,
        ]
        point = rec["geometry"]
        rows.append(
            f'<tr data-lat="{point.y:.5f}" data-lon="{point.x:.5f}">'
            + "".join(f"<td>{_esc(c)}</td>" for c in cells)
            + "</tr>"
        )
    body = "".join(rows) or '<tr><td colspan="6">无火点 no fires</td></tr>'
    summary = f"火点列表 fire list ({len(rows)}) · 点击定位 tap a row to zoom"
    return _Html(f"<details open><summary>{_esc(summary)}</summary><table>{head}{body}</table></details>")


def cell_map(
    cell_id: str,
    fires: gpd.GeoDataFrame,
    grid: gpd.GeoDataFrame,
    *,
    title: str,
    tiles: str | None = "OpenStreetMap",
    events: gpd.GeoDataFrame | None = None,
    sites: gpd.GeoDataFrame | None = None,
) -> folium.Map:
    """The map of one grid cell for its supervisor.

    ``sites``: electricity sites; those in this cell are drawn.

    Shows the cell's outline (thick), its neighbours' outlines (thin), the fires
    whose pixel centre is in the cell (solid markers) and the fires centred
    elsewhere whose footprint touches it (``cells_touched`` contains the cell;
    hollow dashed markers), pixel footprints when ``fires`` has a ``footprint``
    column of Polygons, the ``events`` those fires belong to, and a clickable
    list of the fires. Inputs as for :func:`overview_map` (EPSG:4326). Raises ``KeyError`` if the grid has no
    such cell.
    """
    fires = _prepare_fires(fires)
    grid = _prepare_grid(grid)
    matches = grid[grid["cell_id"].astype(str) == str(cell_id)]
    if matches.empty:
        raise KeyError(f"grid has no cell {cell_id!r}")
    cell = _records(matches)[0]

    in_cell_all = (fires["cell_id"] == str(cell_id)).fillna(False).astype(bool)
    touches = fires["cells_touched"].map(lambda v: str(cell_id) in _touched(v)).astype(bool)
    shown = fires[in_cell_all | touches].reset_index(drop=True)
    in_cell = in_cell_all[in_cell_all | touches].reset_index(drop=True)
    numbers = {fid: i for i, fid in enumerate(shown["fire_id"], start=1)}
    names = _names(grid, shown, str(cell_id))

    supervisor = _text(cell.get("supervisor"))
    cell_label = f"{_text(cell['cell_name'])} ({cell['cell_id']})"
    m = _new_map(f"{title} · {cell_label} · 网格员 {supervisor}", tiles)

    neighbours = _neighbours(grid, cell["geometry"], str(cell_id), shown["cell_id"].dropna().astype(str))
    for layer in (
        _outline_layer(
            neighbours,
            f"相邻网格 neighbouring cells ({len(neighbours)})",
            {"color": "#78909c", "weight": 1, "fill": True, "fillOpacity": 0},
        ),
        _outline_layer(
            matches,
            "本网格 this cell",
            {"color": "#0d47a1", "weight": 4, "fillColor": "#0d47a1", "fillOpacity": 0.06},
        ),
        _footprint_layer(shown, in_cell, numbers),
    ):
        if layer is not None:
            layer.add_to(m)
    if events is not None and "event_id" in shown:
        _event_layers(m, events[events["event_id"].isin(shown["event_id"])], names)
    _fire_layers(m, shown[in_cell.to_numpy()], names, label="本网格火点 fires here", numbers=numbers)
    _fire_layers(
        m, shown[~in_cell.to_numpy()], names, label="邻格火点 touching", touching=True, numbers=numbers
    )
    here = sites[(sites["cell_id"] == str(cell_id)).fillna(False).to_numpy(bool)] if sites is not None and len(sites) else None
    if here is not None and len(here):
        _site_layers(m, here, names)
    folium.LayerControl(collapsed=True).add_to(m)

    class_counts = _class_counts(shown)
    _add_legend(m, _Html(_cell_legend(class_counts, events is not None and not events.empty) + _site_legend(here)))
    m.add_child(
        _HtmlControl(
            _fire_list(shown, in_cell, numbers, names), position="topright", css_class="gw-box gw-panel"
        )
    )
    summary = (
        f"{int(in_cell.sum())} 火点在本网格 fires centred here · "
        f"{int((~in_cell).sum())} 邻格像元触及 touching from neighbours · {_window_summary(class_counts)}"
        + (f" · {len(here)} 用电异常 electricity sites" if here is not None and len(here) else "")
    )
    lines = [f"网格 cell {cell_label} · {_text(cell.get('county_name'))}", _time_span(shown), summary]
    _add_title_bar(m, f"{title} — 网格员 supervisor {supervisor}", [line for line in lines if line])
    footprints = list(shown["footprint"]) if "footprint" in shown.columns else []
    _fit(
        m,
        _bounds(
            [cell["geometry"], *shown.geometry, *[f for f in footprints if isinstance(f, shapely.Geometry)],
             *(here.geometry if here is not None else [])]
        ),
    )
    return m


# ------------------------------------------------------------------ patrol plan

PLAN_POPUP_LABELS = (
    "排名 rank", "网格 cell", "区县 county", "网格员 supervisor", "时段 window",
    "预计降雨 rain expected", "降雨数据 rain data", "播种 sowing", "播种依据 sowing data",
    "耕地 cropland", "近期火点 recent fires",
)
PLAN_COLOURS = (("#b71c1c", 10, "前10 top 10"), ("#ef6c00", 50, "11–50"), ("#fbc02d", None, "其余 the rest"))


def plan_map(plan: pd.DataFrame, grid: gpd.GeoDataFrame, *, title: str, tiles: str | None = "OpenStreetMap") -> folium.Map:
    """Tomorrow's patrol plan (``plan.patrol_plan``): the open cells shaded by rank, with popups (EPSG:4326)."""
    grid = _prepare_grid(grid)
    geometry = grid.set_index(grid["cell_id"].astype(str)).geometry
    m = _new_map(title, tiles)
    styles, features = _Styles(), []
    for rec in _records(plan):
        colour = next(c for c, upto, _ in PLAN_COLOURS if upto is None or rec["rank"] <= upto)
        style = {"color": "#424242", "weight": 1, "fillColor": colour, "fillOpacity": 0.7}
        sowing = "" if pd.isna(rec.get("sowing_start")) else f"{_text(rec.get('sowing_crop'))} {_text(rec['sowing_start'])} – {_text(rec.get('sowing_end'))}"
        values = [
            str(rec["rank"]), f"{_text(rec['cell_name'])} ({rec['cell_id']})", _text(rec.get("county_name")),
            _text(rec.get("supervisor")), _text(rec["windows"]), _bjt(rec.get("rain_onset_bjt")), _text(rec.get("rain_source")),
            sowing or "—", _text(rec.get("sowing_source")), _number(rec["cropland_ha"], ",.0f", " ha"), str(rec["recent_fires"]),
        ]
        tooltip = f"#{rec['rank']} {_text(rec['cell_name'])} · {_text(rec['windows'])}"
        features.append(_feature(_geometry_json(geometry[str(rec["cell_id"])], OVERVIEW_TOLERANCE_DEG), styles.index(style), tooltip, values))
    if features:
        _FeatureLayer(features, f"巡查网格 cells to patrol ({len(features)})", styles=styles.table, labels=PLAN_POPUP_LABELS).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    legend = "<b>巡查优先 patrol priority</b>" + "".join(f"<div>{_swatch(c)}{_esc(label)}</div>" for c, _, label in PLAN_COLOURS)
    _add_legend(m, _Html(legend))
    _add_title_bar(m, title, [f"{len(plan)} 网格需巡查 cells to patrol · 按耕地与近期火点排序 ranked by cropland and recent fires"])
    _fit(m, _bounds([geometry[str(c)] for c in plan["cell_id"]]) or _bounds(list(grid.geometry)))
    return m


# ------------------------------------------------------------------ output


def save_map(m: folium.Map, path: Path) -> None:
    """Write ``m`` as one self-contained HTML file (UTF-8) at ``path``.

    Leaflet is inlined even for a map not built here; folium elements that need
    other libraries (jQuery, Bootstrap, plugins) are not supported and any
    ``<script src>``/``<link href>`` left in the page raises ``ValueError``. The
    file is replaced atomically, so a supervisor opening it meanwhile never gets
    half a page.
    """
    _make_offline(m)
    page = m.get_root().render()
    _check_self_contained(page)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, path)


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
