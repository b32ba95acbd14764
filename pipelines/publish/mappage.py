"""Map pages for the field: what a map draws, written as one HTML page that opens offline.

A night writes an overview, a plan and hundreds to thousands of cell maps
(``pipelines.publish.maps`` decides what each shows). This module is how they become
pages: a :class:`MapPage` holds the page as data (basemap tiles, layers of
features in compact columns, legend and fire list, title bar, view, the markup
under the map) and is written from one Jinja template
(``templates/maps/page.html.j2``) as that data in JSON, which
``static/gridwatch-map.js`` draws; a cell page costs a template render and a
JSON dump, no folium element tree. ``MapPage.to_folium()`` gives the same map
as a ``folium.Map`` (the overview and the plan, which analysts extend with
folium), drawn by the same script functions, one call per layer.

Leaflet, its plugins and our scripts come from ``pipelines/static``, shared
by relative path or inlined (:func:`save_map`). The basemap (OpenStreetMap,
Tianditu or Amap) is only decoration: offline its tiles fail and the vectors
still show. Amap tiles are drawn in GCJ-02, so on an Amap basemap every
overlay coordinate (features, bounds, the fire list's zoom targets, the heat
map) is shifted WGS84 -> GCJ-02 when the page is written, and only then;
popups keep showing the WGS84 coordinates. Coordinates are WGS84 (EPSG:4326,
degrees). Text from data reaches the page as JSON the script sets with
``textContent``, or through templates that escape it.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import folium
import numpy as np
import shapely
import xyzservices
from branca.element import MacroElement
from folium.elements import ElementAddToElement
from folium.map import Layer
from markupsafe import Markup

from pipelines.core import wording
from pipelines.core.outputs import write_atomic
from pipelines.core.settings import basemap_key, check_tianditu_key
from pipelines.grid.chinacrs import wgs84_to_gcj02
from pipelines.publish.htmltext import esc as _esc
from pipelines.publish.pages import (
    ASSET_BUNDLES,
    STATIC_DIR,
    RawHtml,
    asset_markup,
    check_self_contained,
    html_template,
    js_template,
    require_assets,
    write_static,
)

__all__ = ["BASEMAPS", "MapPage", "add_home_link", "save_map"]

COORD_DECIMALS = 5  # coordinates are rounded to 1e-5 degree (~1 m) to keep pages small
_DEFAULT_CENTRE = (35.0, 105.0)  # lat, lon: China, used only when nothing is drawn
_FIT_MAX_ZOOM = 14  # a single fire should not zoom in past street level
_MAX_ZOOM = 19  # the map's own limit (building level); tiles stop at their own maximum
CLUSTER_OFF_ZOOM = 13
CLUSTER_RADIUS_PX = 40

# ------------------------------------------------------------------ basemaps


@dataclass(frozen=True)
class Basemap:
    """A web basemap: tile URL templates (base first, then labels), in ``crs``."""

    key: str
    name: tuple[str, str]  # (zh, en) for the layer control
    urls: tuple[str, ...]  # "{key}" is replaced by the Tianditu key
    subdomains: str
    attribution: str
    crs: str  # "wgs84" or "gcj02": what the tiles are drawn in
    max_zoom: int = 18


_TIANDITU = (
    "https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={{key}}"
)
BASEMAPS = {
    "openstreetmap": Basemap(
        "openstreetmap", ("OpenStreetMap", "OpenStreetMap"), ("https://tile.openstreetmap.org/{z}/{x}/{y}.png",),
        "abc", '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors', "wgs84", 19,
    ),
    # Web-Mercator tiles of the national platform: in CGCS2000, which matches WGS84 to well under a metre.
    "tianditu": Basemap(
        "tianditu", ("天地图", "Tianditu"), (_TIANDITU.format(layer="vec"), _TIANDITU.format(layer="cva")),
        "01234567", "&copy; 天地图 Tianditu, 国家地理信息公共服务平台", "wgs84",
    ),
    "amap": Basemap(
        "amap", ("高德地图", "Amap"),
        ("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",),
        "1234", "&copy; 高德地图 AutoNavi", "gcj02",
    ),
}
# Tianditu's English annotation layer, for language = "en".
_TIANDITU_EN_LABELS = _TIANDITU.format(layer="eva")


class _Lang:
    """Which language the fixed texts of a map are in: "zh", "en" or "both" (``中文 English``)."""

    def __init__(self, code: str = "both") -> None:
        wording.check_language(code)
        self.code = code

    def t(self, zh: str, en: str) -> str:
        """One text in the map's language."""
        return wording.t(zh, en, self.code)

    def label(self, bilingual: str) -> str:
        """A ``"中文 English"`` label (schema labels, fire classes) in the map's language."""
        match = re.fullmatch(r"(\S*[^\x00-\x7f]\S*) (.+)", bilingual)
        if match is None or self.code == "both":
            return bilingual
        return match.group(1) if self.code == "zh" else match.group(2)


_BOTH = _Lang("both")


# --------------------------------------------------------------------------- pages


def _render(name: str, **values: Any) -> Markup:
    """An HTML template of ``templates/maps`` rendered (values escaped by the template)."""
    return Markup(html_template(f"maps/{name}").render(**values))


def _tools_spec(lang: _Lang) -> dict[str, Any]:
    """Options of the full-screen button and the measure tool (``gridwatchTools``)."""
    labels = {
        "button": lang.t("测量距离和面积", "measure distance and area"),
        "hint": lang.t("点击地图添加点", "tap the map to add points"),
        "length": lang.t("距离", "distance"),
        "area": lang.t("面积", "area"),
        "finish": lang.t("完成", "finish"),
        "clear": lang.t("清除", "clear"),
    }
    return {
        "fullscreen": {"position": "topleft", "title": lang.t("全屏", "Full screen"), "titleCancel": lang.t("退出全屏", "Exit full screen")},
        "measure": {"position": "topleft", "labels": labels},
    }


@dataclass
class _Control:
    """Fixed HTML in a Leaflet control (legend, fire list): an element of the page that ``gridwatchControl`` moves into the map."""

    markup: Markup
    position: str
    css_class: str


class MapPage:
    """A map page as data: what to draw and the page around it, written by one template and drawn by ``gridwatch-map.js``.

    The cell maps of a night are MapPages: writing one is a template render and
    a JSON dump (a few ms), not a folium element tree. Every drawn thing is
    described here (basemap tiles, layers, legend and fire list, title bar,
    view), the page carries it as JSON, and ``gridwatchPage`` draws it with
    the same functions the overview's folium page calls for its layers.

    ``save(path, inline=...)`` (or :func:`save_map`) writes it, ``_repr_html_``
    shows it in a notebook, ``to_folium()`` gives the same map as a
    ``folium.Map`` to add folium elements to. Coordinates are WGS84 (degrees);
    on an Amap basemap (``gcj02``) overlays are shifted to GCJ-02 when written.
    """

    def __init__(self, title: str, tiles: str | None = "OpenStreetMap", *, tianditu_key: str = "", language: str = "both") -> None:
        self.lang = _Lang(language)
        key = basemap_key(tiles)
        self.title = title  # the page's <title>
        self.heading, self.lines = title, []  # the title bar
        self.home: tuple[str, str] | None = None  # (href, label) of the link to the run's start page
        self.gridwatch_gcj02 = key is not None and BASEMAPS[key].crs == "gcj02"
        self.options: dict[str, Any] = {"maxZoom": _MAX_ZOOM, "preferCanvas": False}  # L.map options
        self.tiles: list[dict[str, Any]] = []
        self.layers: list[_FeatureLayer | _HeatLayer] = []
        self.controls: list[_Control] = []
        self.bounds: list[list[float]] | None = None  # [[south, west], [north, east]] as drawn
        self.below: Markup | None = None  # markup under the map (task list, ranked table)
        self.tools = _tools_spec(self.lang)
        if key is not None:
            _add_basemap(self, BASEMAPS[key], tianditu_key, self.lang)

    @property
    def gcj02(self) -> bool:
        """Whether overlays are drawn in GCJ-02 (the basemap is Amap)."""
        return self.gridwatch_gcj02

    def add_tiles(self, url: str, *, name: str, attribution: str = "", subdomains: str = "abc", max_zoom: int = _MAX_ZOOM,
                  max_native_zoom: int | None = None, min_zoom: int = 0, overlay: bool = False, control: bool = True) -> None:
        """A Leaflet tile layer (a basemap when not ``overlay``; in the layer control when ``control``), always shown."""
        options = {"minZoom": min_zoom, "maxZoom": max_zoom, "maxNativeZoom": max_native_zoom if max_native_zoom is not None else max_zoom,
                   "attribution": attribution, "subdomains": subdomains}
        self.tiles.append({"url": url, "name": name, "options": options, "overlay": overlay, "control": control})

    def add_layer(self, layer: _FeatureLayer | _HeatLayer | None) -> None:
        """A layer, drawn in the order added (None: nothing to draw)."""
        if layer is not None:
            self.layers.append(layer)

    def add_control(self, markup: Markup, *, position: str, css_class: str) -> None:
        self.controls.append(_Control(Markup(markup), position, css_class))

    def add_legend(self, sections: Sequence[dict[str, Any]]) -> None:
        """The legend (bottom left, folded on a phone): :func:`_legend_section` dicts."""
        self.add_control(_render("legend.html.j2", title=self.lang.t("图例", "legend"), sections=sections),
                         position="bottomleft", css_class="gw-box gw-legend")

    def set_title(self, heading: str, lines: Sequence[str]) -> None:
        """The bar above the map: ``heading`` and one line per summary."""
        self.heading, self.lines = heading, [line for line in lines if line]

    def fit(self, bounds: list[list[float]] | None) -> None:
        """Show WGS84 ``bounds`` ([[south, west], [north, east]], degrees; None: China), shifted on Amap."""
        self.bounds = _display_bounds(self, bounds) if bounds is not None else None

    def clustered(self) -> bool:
        return any(isinstance(layer, _FeatureLayer) and layer.cluster for layer in self.layers)

    def bundles(self) -> list[str]:
        """The :data:`pages.ASSET_BUNDLES` this page loads, in order."""
        wanted = ["leaflet", "fullscreen", "measure"]
        if self.clustered():
            wanted.append("markercluster")
        if any(isinstance(layer, _HeatLayer) for layer in self.layers):
            wanted.append("heat")
        if self.below is not None:
            wanted.append("tasks")
        return wanted

    def spec(self) -> dict[str, Any]:
        """What ``gridwatchPage`` draws: map options, view, tiles, tools and layers."""
        if self.bounds is None:
            fit: dict[str, Any] = {"center": list(_DEFAULT_CENTRE), "zoom": 4}
        else:
            fit = {"bounds": self.bounds, "maxZoom": _FIT_MAX_ZOOM, "padding": [24, 24]}
        return {"options": self.options, "fit": fit, "tiles": self.tiles, "tools": self.tools,
                "layers": [layer.spec(self.gcj02) for layer in self.layers]}

    def render(self, static: str | None = None) -> str:
        """The page's HTML: assets loaded from the relative folder ``static``, or inlined when None."""
        map_id = "map_" + hashlib.sha1(self.title.encode("utf-8")).hexdigest()[:16]
        return html_template("maps/page.html.j2").render(
            lang="en" if self.lang.code == "en" else "zh-CN",
            title=self.title,
            assets=Markup(asset_markup([a for b in self.bundles() for a in ASSET_BUNDLES[b]], static)),
            title_bar=_render("title_bar.html.j2", heading=self.heading, lines=self.lines, home=self.home),
            map_id=map_id,
            controls=[_render("control.html.j2", css_class=c.css_class, id="", position=c.position, markup=c.markup) for c in self.controls],
            below=self.below or "",
            spec_json=Markup(_script_json(self.spec())),
        )

    def save(self, path: Path, *, inline: bool = False, static: Path | None = None) -> None:
        """:func:`save_map` of this page."""
        save_map(self, path, inline=inline, static=static)

    def _repr_html_(self) -> str:
        """The page in a notebook: inline (it has no folder beside it), in a sandboxed frame as folium shows its maps."""
        srcdoc = html.escape(self.render(None), quote=True)
        return f'<iframe srcdoc="{srcdoc}" style="width:100%;height:600px;border:none" sandbox="allow-scripts"></iframe>'

    def to_folium(self) -> folium.Map:
        """The same map as a ``folium.Map`` (to add folium elements, or for :func:`save_map` as before), drawn by the same scripts."""
        m = folium.Map(location=None, tiles=None, control_scale=True)
        m.options["maxZoom"] = self.options["maxZoom"]
        m.options["preferCanvas"] = self.options["preferCanvas"]
        _make_offline(m)
        m.get_root().title = _esc(self.title)  # branca writes the title unescaped
        m.gridwatch_gcj02 = self.gcj02
        for tiles in self.tiles:
            options = tiles["options"]
            folium.TileLayer(
                # As a provider, not a URL string: folium would first look the string up among the
                # 200+ providers of xyzservices.
                xyzservices.TileProvider(name=tiles["name"], url=tiles["url"], attribution=options["attribution"]),
                attr=options["attribution"], name=tiles["name"], overlay=tiles["overlay"], control=tiles["control"],
                subdomains=options["subdomains"], min_zoom=options["minZoom"], max_zoom=options["maxZoom"],
                max_native_zoom=options["maxNativeZoom"],
            ).add_to(m)
        m.add_child(_FoliumTools(self.tools), name="gridwatch_tools")
        for layer in self.layers:
            _FoliumLayer(layer).add_to(m)
        folium.LayerControl(collapsed=True).add_to(m)
        for control in self.controls:
            m.add_child(_FoliumControl(control))
        _set_folium_title(m, self.heading, self.lines, self.home)
        if self.below is not None:
            m.add_child(_Below(self.below), name="gridwatch_below")
        if self.bounds is None:
            m.location = list(_DEFAULT_CENTRE)
            m.options["zoom"] = 4
        else:
            m.fit_bounds(self.bounds, padding=(24, 24), max_zoom=_FIT_MAX_ZOOM)
        return m


class _FoliumLayer(Layer):
    """A :class:`_FeatureLayer` or :class:`_HeatLayer` on a folium page: one call of ``gridwatch-map.js`` with its spec."""

    _template = js_template("maps/layer.js.j2")

    def __init__(self, layer: _FeatureLayer | _HeatLayer) -> None:
        super().__init__(name=layer.name, overlay=True, control=True, show=layer.show)
        self._name = "FeatureLayer" if isinstance(layer, _FeatureLayer) else "HeatLayer"
        self.layer = layer
        self.function = "gridwatchFeatureLayer" if isinstance(layer, _FeatureLayer) else "gridwatchHeatLayer"

    @property
    def spec_json(self) -> str:
        return _script_json(self.layer.spec(_gcj02(self._parent)))

    def render(self, **kwargs: Any) -> None:
        if isinstance(self.layer, _HeatLayer):
            require_assets(self, "heat")
        elif self.layer.cluster:
            require_assets(self, "markercluster")
        if self.show:
            self.add_child(ElementAddToElement(element_name=self.get_name(), element_parent_name=self._parent.get_name()),
                           name=self.get_name() + "_add")
        _render_macros(self, kwargs)


class _FoliumControl(MacroElement):
    """A :class:`_Control` on a folium page: its element in the page, moved into a Leaflet control by ``gridwatchControl``."""

    _template = js_template("maps/control.js.j2")

    def __init__(self, control: _Control) -> None:
        super().__init__()
        self._name = "HtmlControl"
        self.control = control
        self.position = control.position
        self.element_id = f"gw-control-{self.get_name()}"

    def render(self, **kwargs: Any) -> None:
        self.get_root().html.add_child(RawHtml(str(_render("control.html.j2", css_class=self.control.css_class, id=self.element_id,
                                                                position=self.position, markup=self.control.markup))),
                                       name=self.element_id)
        _render_macros(self, kwargs)


class _FoliumTools(MacroElement):
    """The full-screen button and the measure tool on a folium page (``gridwatchTools``)."""

    _template = js_template("maps/map_tools.js.j2")

    def __init__(self, tools: dict[str, Any]) -> None:
        super().__init__()
        self._name = "MapTools"
        self.spec_json = _script_json(tools)

    def render(self, **kwargs: Any) -> None:
        require_assets(self, "fullscreen")
        require_assets(self, "measure")
        _render_macros(self, kwargs)


def _render_macros(element: MacroElement, kwargs: dict[str, Any]) -> None:
    """Render ``element``'s template macros into the page as text.

    ``MacroElement.render`` wraps what its template renders in a new branca
    ``Element``, which compiles it as a Jinja template again (and would mangle
    JSON holding ``{{``).
    """
    figure = element.get_root()
    module = element._template.module
    for part, target in (("header", figure.header), ("html", figure.html), ("script", figure.script)):
        macro = getattr(module, part, None)
        if macro is not None:
            target.add_child(RawHtml(str(macro(element, kwargs))), name=element.get_name())
    for child in element._children.values():
        child.render(**kwargs)


def _make_offline(m: folium.Map) -> None:
    """Replace folium's CDN links with our Leaflet (shared or inlined, see :func:`save_map`); idempotent.

    Setting the lists on the instance shadows ``folium.Map.default_js``/``css``;
    mutating those (e.g. with ``add_js_link``) would change every map in the
    process. jQuery, Bootstrap and awesome-markers are dropped: nothing drawn
    here uses them (folium's ``Popup`` would need jQuery; see ``_FeatureLayer``).
    """
    m.default_js = []
    m.default_css = []
    require_assets(m, "leaflet")


def _add_basemap(page: MapPage, basemap: Basemap, tianditu_key: str, lang: _Lang) -> None:
    """The basemap's tile layers: the first is the base layer, the rest (labels) always on top of it.

    Offline, or without a valid key, tiles fail to load and only the grey
    background shows; every vector layer still draws.
    """
    urls = list(basemap.urls)
    if basemap.key == "tianditu":
        check_tianditu_key(tianditu_key)
        if lang.code == "en":
            urls[1] = _TIANDITU_EN_LABELS
        urls = [url.replace("{key}", tianditu_key) for url in urls]
    for i, url in enumerate(urls):
        page.add_tiles(url, name=lang.t(*basemap.name) if i == 0 else f"{basemap.key}-labels", attribution=basemap.attribution,
                       subdomains=basemap.subdomains, max_zoom=basemap.max_zoom, overlay=i > 0, control=i == 0)


def _set_folium_title(m: folium.Map, heading: str, lines: Sequence[str], home: tuple[str, str] | None) -> None:
    """The title bar of a folium page (replaced when set again)."""
    m.gridwatch_title = (heading, list(lines))
    m.gridwatch_home = home
    m.get_root().html.add_child(RawHtml(str(_render("title_bar.html.j2", heading=heading, lines=lines, home=home))), name="gridwatch_title")


def add_home_link(m: MapPage | folium.Map, href: str = "index.html", language: str = "both") -> MapPage | folium.Map:
    """Put a link to the run's start page (``href``, relative to where the page is saved) in the title bar of ``m``.

    Every page of a run links back to ``index.html``: ``"index.html"`` from
    ``map.html`` and ``plan.html``, ``"../index.html"`` from ``maps/<cell>.html``.
    """
    lang = _Lang(language)
    home = (href, lang.t("← 首页", "← index") if lang.code != "both" else "← 首页 index")
    if isinstance(m, MapPage):
        m.home = home
    else:
        heading, lines = getattr(m, "gridwatch_title", (m.get_root().title, []))
        _set_folium_title(m, heading, lines, home)
    return m

# ------------------------------------------------------------------ layers


def _geometry_json(geom: shapely.Geometry, tolerance: float) -> dict[str, Any]:
    """GeoJSON of ``geom`` (degrees), simplified and rounded to keep the page small."""
    if type(geom) is shapely.Point:  # most features are fire points: no shapely round trip
        return {"type": "Point", "coordinates": [float(np.round(geom.x, COORD_DECIMALS)), float(np.round(geom.y, COORD_DECIMALS))]}
    if tolerance > 0:
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
    HTML parser, and the page carries no per-fire markup. This is the Python
    side only: :class:`_FeatureLayer` writes a layer's features to the page in
    columns (see :func:`_layer_data`).
    """
    props: dict[str, Any] = {"k": style, "t": tooltip}
    if values is not None:
        props["v"] = list(values)
    return {"type": "Feature", "geometry": geom_json, "properties": props}


def _column(values: Sequence[Any]) -> list[Any]:
    """One column of a layer's data: ``[table, indices]``, or ``[table]`` alone.

    Most popup and tooltip strings repeat from fire to fire (category, reason,
    sensor, cell, window flags...), so each distinct value is written once in
    ``table`` and every feature refers to it by index. ``[table]`` alone is one
    value for every feature (``table`` has one entry) or, when all values
    differ (fire ids), the values themselves in feature order: indices would
    only add bytes. Values are JSON (text, None, link or chart objects);
    objects are told apart by their JSON text. ``gridwatchValue`` in
    ``_POPUP_JS`` reads it back.
    """
    table: list[Any] = []
    indices: list[int] = []
    seen: dict[tuple[int, Any], int] = {}
    for value in values:
        # Strings keyed as themselves (fast), anything else by its JSON text;
        # the tag keeps the string "null" apart from None.
        key = (0, value) if type(value) is str else (1, json.dumps(value, sort_keys=True, allow_nan=False))
        index = seen.get(key)
        if index is None:
            index = seen[key] = len(table)
            table.append(value)
        indices.append(index)
    if len(table) <= 1 or len(table) == len(values):
        return [table]
    return [table, indices]


def _js_fixed5(value: float) -> str:
    """``value.toFixed(5)`` as JavaScript writes it (which prints -0 as "0.00000")."""
    return format(value + 0.0, ".5f")  # + 0.0 turns -0.0 into 0.0


def _layer_data(features: Sequence[dict[str, Any]], *, derive_position: bool = True) -> dict[str, Any]:
    """The page's data of one layer of :func:`_feature` features, in columns.

    ``{"n": count, "k": styles, "t": tooltips, "v": [one column per popup
    label] (only if the features have popups), and either "lat"/"lon" (every
    geometry is a Point: two arrays of numbers) or "g" (the GeoJSON
    geometries)}``; each column as :func:`_column` writes it. 20,000 fires
    then cost about 90 bytes each instead of about 700 as GeoJSON features.

    With ``derive_position``, a popup column whose every value is the point's
    ``"34.88000°N 114.95000°E"`` as the page would write it from the stored
    (rounded) coordinates is written as ``0``, and the page derives it
    (``gridwatchRow``): the one popup line that differs for every fire costs
    nothing. Any mismatch (a rounding edge case, shifted GCJ-02 coordinates)
    keeps the column as text, so the popup always shows what Python wrote.

    ValueError if some features have popup values and others none: the page
    binds popups per layer.
    """
    n = len(features)
    props = [f["properties"] for f in features]
    data: dict[str, Any] = {
        "n": n,
        "k": _column([p["k"] for p in props]),
        "t": _column([p["t"] for p in props]),
    }
    with_values = sum("v" in p for p in props)
    if with_values not in (0, n):
        raise ValueError("a layer's features must all have popup values or none")
    geometries = [f["geometry"] for f in features]
    points = all(g["type"] == "Point" for g in geometries)
    if points:
        data["lat"] = [float(g["coordinates"][1]) for g in geometries]
        data["lon"] = [float(g["coordinates"][0]) for g in geometries]
    else:
        data["g"] = geometries
    if with_values and n:
        width = max(len(p["v"]) for p in props)
        # A short row is padded with None, which the popup skips, as it skipped a missing value.
        rows = [list(p["v"]) + [None] * (width - len(p["v"])) for p in props]
        columns: list[Any] = []
        positions: list[str] | None = None
        for values in zip(*rows, strict=True):
            if points and derive_position and isinstance(values[0], str) and values[0].endswith("°E"):
                if positions is None:
                    positions = [f"{_js_fixed5(lat)}°N {_js_fixed5(lon)}°E" for lat, lon in zip(data["lat"], data["lon"], strict=True)]
                if list(values) == positions:
                    columns.append(0)
                    continue
            columns.append(_column(values))
        data["v"] = columns
    _combine(data)
    return data


COMBINE_MIN_FEATURES = 64  # below this a layer's columns are written as they are
COMBINE_MAX_TABLE = 255  # columns with more distinct values than this stay on their own


def _combine(data: dict[str, Any]) -> None:
    """Write the low-cardinality columns of a big layer as one row index per feature.

    A fire's style, window flags, sensor, day/night, category, reason... each
    take a few distinct values, and each costs an index per feature (2-4 bytes
    with its comma, 20 columns: most of a fire's bytes). Their combination
    takes far fewer distinct values than there are fires, so the distinct
    rows of indices are written once (``data["c"] = [rows, row of each
    feature]``) and each combined column becomes ``[table, slot]``. Columns
    join, fewest distinct values first, while the distinct rows stay under a
    quarter of the features. ``gridwatchValue`` reads it back; the values are
    the same as before.
    """
    n = data["n"]
    if n < COMBINE_MIN_FEATURES:
        return
    slots: list[tuple[str, int | None]] = [("k", None), ("t", None)] + [("v", i) for i in range(len(data.get("v", [])))]

    def column(slot: tuple[str, int | None]) -> Any:
        return data[slot[0]] if slot[1] is None else data["v"][slot[1]]

    candidates = [s for s in slots if isinstance(column(s), list) and len(column(s)) == 2 and len(column(s)[0]) <= COMBINE_MAX_TABLE]
    candidates.sort(key=lambda s: len(column(s)[0]))
    chosen: list[tuple[str, int | None]] = []
    rows: list[tuple[int, ...]] = [()] * n
    for slot in candidates:
        trial = [row + (index,) for row, index in zip(rows, column(slot)[1], strict=True)]
        if len(set(trial)) <= n // 4:
            chosen.append(slot)
            rows = trial
    if len(chosen) < 2:
        return
    distinct: dict[tuple[int, ...], int] = {}
    at = [distinct.setdefault(row, len(distinct)) for row in rows]
    for position, slot in enumerate(chosen):
        combined = [column(slot)[0], position]
        if slot[1] is None:
            data[slot[0]] = combined
        else:
            data["v"][slot[1]] = combined
    data["c"] = [[list(row) for row in distinct], at]


class _FeatureLayer:
    """A toggleable layer of :func:`_feature` features; points become circle markers.

    Not ``folium.GeoJson``: its data goes through Jinja's ``tojson``, which
    writes every Chinese character as a 6-byte ``\\uXXXX`` escape, and its
    popups come from ``folium.Popup`` (needs jQuery, and puts text in a JS
    template literal where ``${`` in a cell name would run) or from
    ``GeoJsonPopup`` (``innerHTML`` of each raw property). Here each feature
    carries values only; labels and styles are stored once per layer, and
    the features go to the page in columns of interned values
    (:func:`_layer_data`), from which ``gridwatchFeatureLayer`` builds the
    GeoJSON, and each tooltip and popup only when it is opened.

    Features are WGS84; on a GCJ-02 basemap (Amap) their coordinates are
    shifted when the page is written (see :func:`_display_features`).

    ``cluster``: the colour of this layer's clusters; the points then go into a
    Leaflet.markercluster group (loaded in chunks, so 20,000 fires do not
    freeze the page), which is what the layer control toggles. Each layer
    registers itself in ``window.gridwatchLayers`` as ``{name, features,
    layer, kind}`` for tests and benchmarks.
    """

    def __init__(
        self,
        features: list[dict[str, Any]],
        name: str,
        *,
        styles: list[dict[str, Any]],
        labels: Sequence[str] = (),
        radius: float = 7,
        show: bool = True,
        cluster: str | None = None,
        permanent_tooltips: bool = False,
    ) -> None:
        # Layer names must be constant text: Leaflet's layer control inserts them as HTML.
        self.name = name
        self.features = features
        self.styles = styles
        self.labels = list(labels)
        self.radius = float(radius)
        self.show = show
        self.cluster = cluster
        # Place names are read without hovering: a supervisor offline has nothing else to find the way by.
        self.tooltip = {"permanent": True, "direction": "center", "opacity": 0.75} if permanent_tooltips else {"sticky": True}

    def spec(self, gcj02: bool = False) -> dict[str, Any]:
        """What ``gridwatchFeatureLayer`` draws; coordinates shifted to GCJ-02 when ``gcj02``."""
        features = _display_features(gcj02, self.features)
        cluster = None if self.cluster is None else {"colour": self.cluster, "disableAt": CLUSTER_OFF_ZOOM, "radius": CLUSTER_RADIUS_PX}
        return {
            "kind": "vector" if cluster is None else "cluster", "name": self.name, "show": self.show,
            "styles": self.styles, "labels": self.labels, "radius": self.radius, "tooltip": self.tooltip, "cluster": cluster,
            # Positions are derived in the page only where the drawn coordinates are WGS84.
            "data": _layer_data(features, derive_position=not gcj02),
        }


class _HeatLayer:
    """A Leaflet.heat layer of points ``(lat, lon)`` in WGS84, each of weight 1
    (shifted to GCJ-02 on an Amap basemap when written)."""

    def __init__(self, latlons: list[tuple[float, float]], name: str, *, show: bool = False) -> None:
        self.latlons = latlons
        self.name = name
        self.show = show
        self.cluster = None

    def spec(self, gcj02: bool = False) -> dict[str, Any]:
        """What ``gridwatchHeatLayer`` draws."""
        return {
            "kind": "heat", "name": self.name, "show": self.show,
            "points": [[lat, lon] for lat, lon in _display_latlons(gcj02, self.latlons)],
            # Radius/blur in px; full intensity where ~5 fires overlap at zoom <= 10,
            # so one stray fire is a faint smudge and a burning township is red.
            "options": {"radius": 18, "blur": 15, "maxZoom": 10, "max": 5.0, "minOpacity": 0.3},
        }


# ------------------------------------------------------------------ GCJ-02 display


def _gcj02(m: object) -> bool:
    """Whether overlays of map ``m`` (a MapPage, folium map or a plain flag) are drawn in GCJ-02 (its basemap is Amap)."""
    return m if isinstance(m, bool) else bool(getattr(m, "gridwatch_gcj02", False))


def _display_features(m: object, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``features`` (WGS84 GeoJSON) as drawn on ``m``: shifted to GCJ-02 on an Amap basemap.

    All coordinates are converted in one vectorised call; popups are untouched,
    so they keep the WGS84 position.
    """
    if not features or not _gcj02(m):
        return features
    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in features], dtype=object)
    coords = shapely.get_coordinates(geoms)
    lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
    geoms = shapely.set_coordinates(geoms, np.round(np.column_stack([lon, lat]), COORD_DECIMALS))
    return [f | {"geometry": shapely.geometry.mapping(g)} for f, g in zip(features, geoms, strict=True)]


def _display_latlons(m: object, latlons: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """WGS84 ``(lat, lon)`` pairs as drawn on ``m`` (GCJ-02 on an Amap basemap), degrees."""
    if not latlons or not _gcj02(m):
        return [(float(lat), float(lon)) for lat, lon in latlons]
    lat, lon = np.asarray(latlons, dtype=float).T
    glon, glat = wgs84_to_gcj02(lon, lat)
    return [(round(float(a), COORD_DECIMALS), round(float(o), COORD_DECIMALS)) for a, o in zip(glat, glon, strict=True)]


def _script_json(value: object) -> str:
    """JSON to embed in ``<script>``, with Chinese text kept as UTF-8.

    Every ``<`` becomes ``\\u003c`` (JavaScript reads it back as ``<``), so no
    data can end the script element or look like a tag to the HTML parser or to
    :func:`pages.check_self_contained`. Popup data is plain text, so this is rare.
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


def _display_bounds(m: object, bounds: list[list[float]]) -> list[list[float]]:
    """WGS84 ``bounds`` ([[south, west], [north, east]], degrees) as drawn on ``m``: on Amap the hull of the shifted corners."""
    if not _gcj02(m):
        return bounds
    # The GCJ-02 offset varies across a box, so shift all four corners and take their hull.
    (south, west), (north, east) = bounds
    corners = _display_latlons(m, [(south, west), (south, east), (north, west), (north, east)])
    lats, lons = [c[0] for c in corners], [c[1] for c in corners]
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


# ------------------------------------------------------------------ output


class _Below(MacroElement):
    """Markup after the map's div (a child of the map, so it follows the div; see ``tasklist._AfterMap``), with the task styles."""

    def __init__(self, markup: Markup) -> None:
        super().__init__()
        self._name = "GridwatchBelow"
        self._markup = markup

    def render(self, **kwargs: Any) -> None:
        require_assets(self, "tasks")
        self.get_root().html.add_child(RawHtml(str(self._markup)), name="gridwatch_below")




# ------------------------------------------------------------------ output


def save_map(m: MapPage | folium.Map, path: Path, *, inline: bool = False, static: Path | None = None) -> None:
    """Write ``m`` as an HTML file (UTF-8) at ``path`` that opens offline.

    By default Leaflet, its plugins and our scripts and styles are shared files
    in ``static`` (default: ``static/`` beside the page; the nightly run uses
    ``OUT/D/static`` for every page) and the page loads them by relative path,
    so a folder of a thousand maps holds them once and still opens offline
    wherever it is copied. ``inline=True`` writes one self-contained page
    instead (everything inside it, images as data URIs): a page to send alone,
    e.g. a supervisor's map in a chat.

    ``m``: a :class:`MapPage` (cell maps) or a ``folium.Map`` (the overview,
    the plan, or any folium map). Leaflet is loaded even for a map not built here; folium elements that need
    other libraries (jQuery, Bootstrap, plugins) are not supported: a page that
    would load anything else (a CDN script or stylesheet, a file outside
    ``static``) raises ``ValueError``. The file is replaced atomically, so a
    supervisor opening it meanwhile never gets half a page.

    Example::

        save_map(overview_map(fires, grid, title="2022-06-03"), Path("out/map.html"))
        save_map(cell_map(cell, fires, grid, title="2022-06-03"), Path("chat/cell.html"), inline=True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shared = None
    if not inline:
        folder = write_static(Path(static) if static is not None else path.parent / STATIC_DIR)
        shared = Path(os.path.relpath(folder, path.parent)).as_posix()
    if isinstance(m, MapPage):
        page = m.render(shared)
    else:
        _make_offline(m)
        root = m.get_root()
        root.gridwatch_static = shared
        page = root.render()
    if shared is None:
        check_self_contained(page, "map HTML")
    else:
        check_self_contained(page, "map HTML", static=shared, folder=path.parent)
    write_atomic(path, page)
