"""The real nightly maps, opened in headless Chromium with the network cut off.

A supervisor opens ``map.html`` on a phone in the field, often with no network.
``test_maps_browser.py`` checks hand-built maps; this module runs the real
nightly job once on the sample data (2022-06-03, with the project's own basemap
setting, so the page does try to fetch tiles, and once with no basemap) and
checks what the browser makes of its output:

* the page loads: Leaflet created the map;
* it shows what the run's own tables say: every vector layer registers itself in
  ``window.gridwatchLayers`` (the contract with ``pipelines.publish.maps``) and the
  features per kind of layer equal the counts derived from ``fires.parquet``,
  ``events.parquet``, ``sites.parquet`` and the grid, fires once each;
* no JavaScript error: ``window.onerror``, ``unhandledrejection`` and
  ``console.error`` are caught from the very first script of the page on;
* nothing left the machine (see :func:`assert_nothing_fetched` for exactly what
  is asserted);
* a cell map with an electricity site loads the same way;
* a screenshot of the overview is kept for a person to look at, in
  ``test-artifacts/overview.png`` under the repository root, or in the folder
  named by ``GRIDWATCH_ARTIFACTS``.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest

from pipelines.publish.maps import HEAT_SOURCES
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_OK
from pipelines.testing import CHROMIUM
from pipelines.testing import OFFLINE_CHROMIUM_FLAGS as OFFLINE_FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent

WINDOW = (1280, 800)
# Virtual time: timers fast-forward, so failing tile requests, deferred (chunked)
# layer loading and late errors all happen before the DOM is dumped, yet the
# test does not wait for them in real time.
VIRTUAL_TIME_MS = 15_000
# When the probe reads the page (virtual ms after the map script ran): late
# enough for work a marker-cluster plugin defers with setTimeout.
SETTLE_MS = 5_000
# URL schemes that never leave the machine.
LOCAL_SCHEMES = ("data:", "blob:", "file:", "about:")


def _load_by_path(name: str) -> ModuleType:
    """A sibling test module loaded by path, so this works whatever pytest's import mode."""
    spec = importlib.util.spec_from_file_location(f"_gridwatch_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nightly = _load_by_path("test_nightly")


# ------------------------------------------------------------------ the run


# Both basemap settings a supervisor's config can have: none (``tiles = ""``,
# what ``write_config`` gives), and the project's (OpenStreetMap), whose tile
# requests must fail harmlessly offline. They differ in more than tiles: a
# tile layer gives Leaflet its maxZoom, which marker clustering needs.
BASEMAPS = ("no-basemap", "project-basemap")


@pytest.fixture(scope="module", params=BASEMAPS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The nightly job's output folder for the sample day, run once per basemap setting."""
    tmp = tmp_path_factory.mktemp(f"offline-maps-{request.param}")
    config = nightly.write_config(tmp)  # no basemap
    if request.param == "project-basemap":
        tiles = re.search(r"^tiles\s*=.*$", (ROOT / "config.toml").read_text(encoding="utf-8"), re.MULTILINE)
        assert tiles is not None, "config.toml has no [maps] tiles setting"
        text = re.sub(r"^tiles\s*=.*$", lambda _: tiles.group(0), config.read_text(encoding="utf-8"), flags=re.MULTILINE)
        config.write_text(text, encoding="utf-8")
    assert main(["nightly", "--date", nightly.DAY, "--config", str(config), "--quiet"]) == EXIT_OK
    return tmp / "out" / nightly.DAY


@pytest.fixture(scope="module")
def tables(run: Path) -> dict[str, Any]:
    """The run's own tables, from which every expected count is derived."""
    return {
        "fires": gpd.read_parquet(run / "fires.parquet"),
        "events": gpd.read_parquet(run / "events.parquet"),
        "sites": gpd.read_parquet(run / "sites.parquet"),
        "summary": pd.read_csv(run / "grid_summary.csv", dtype=str, keep_default_na=False, na_values=[""]),
        # The grid the config names: the overview's province outlines are dissolved from it.
        "grid": pd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet", columns=["cell_id", "province_name"]),
    }


# ------------------------------------------------------------------ Chromium


def chromium(workdir: Path, page: Path, *args: str) -> str:
    """Run Chromium offline on ``page`` (file://) with a fresh profile; its stdout."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    command = [
        str(CHROMIUM),
        *OFFLINE_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        *args,
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# Inserted as the first thing in <head>, before Leaflet and the map script, so an
# error anywhere in the page is caught. Each error is written at once into an
# attribute of <html> (which exists before <body> does), so errors thrown late,
# after the probe read the page, still reach the dumped DOM.
_ERROR_TRAP = """
(function () {
    var errors = [], failedLoads = [], remoteLoads = [];
    function keep() {
        document.documentElement.setAttribute("data-gw-errors", JSON.stringify(errors));
        document.documentElement.setAttribute("data-gw-failed-loads", JSON.stringify(failedLoads));
        document.documentElement.setAttribute("data-gw-remote-loads", JSON.stringify(remoteLoads));
    }
    function text(value) {
        if (value instanceof Error) { return value.name + ": " + value.message + "\\n" + (value.stack || ""); }
        try { return typeof value === "string" ? value : JSON.stringify(value); } catch (e) { return String(value); }
    }
    window.onerror = function (message, source, line, column, error) {
        errors.push({kind: "onerror", message: String(message), source: String(source), line: line, column: column,
                     detail: error ? text(error) : null});
        keep();
    };
    window.addEventListener("unhandledrejection", function (event) {
        errors.push({kind: "unhandledrejection", message: text(event.reason)});
        keep();
    });
    var consoleError = console.error;
    console.error = function () {
        errors.push({kind: "console.error", message: Array.prototype.map.call(arguments, text).join(" ")});
        keep();
        return consoleError.apply(console, arguments);
    };
    // Failed loads of elements (images, scripts) do not reach window.onerror;
    // they are caught here, in the capture phase, to say which ones failed.
    window.addEventListener("error", function (event) {
        var el = event.target;
        if (el && el !== window && (el.src || el.href)) {
            failedLoads.push({tag: el.tagName, url: String(el.src || el.href).slice(0, 300),
                              className: String(el.className || "")});
            keep();
        }
    }, true);
    // Any element that did load something from off the machine (should never happen).
    window.addEventListener("load", function (event) {
        var el = event.target, url = el && el !== window && el !== document ? String(el.src || el.href || "") : "";
        if (url && !/^(data|blob|file|about):/.test(url)) {
            remoteLoads.push({tag: el.tagName, url: url.slice(0, 300)});
            keep();
        }
    }, true);
    keep();
})();
"""

# Appended at the end of the page, after the map script. MAP is the Leaflet map.
_PROBE = """
setTimeout(function () {
    var registered = window.gridwatchLayers;
    var layers = (Array.isArray(registered) ? registered : []).map(function (entry) {
        var layer = entry.layer;
        return {
            name: String(entry.name),
            features: entry.features,
            // L.GeoJSON / L.FeatureGroup / L.MarkerClusterGroup all answer getLayers(): one layer per drawn feature.
            count: layer && typeof layer.getLayers === "function" ? layer.getLayers().length : null,
            kind: entry.kind === undefined ? null : String(entry.kind),
            onMap: !!(layer && MAP.hasLayer(layer)),
            cluster: !!(window.L && L.MarkerClusterGroup && layer instanceof L.MarkerClusterGroup)
        };
    });
    var resources = performance.getEntriesByType("resource").map(function (e) {
        return {name: e.name.slice(0, 300), initiator: e.initiatorType, transferSize: e.transferSize,
                responseStart: e.responseStart, responseStatus: e.responseStatus === undefined ? null : e.responseStatus};
    });
    var tiles = Array.prototype.map.call(document.querySelectorAll("img.leaflet-tile"), function (img) {
        return {src: img.src.slice(0, 300), loaded: img.complete && img.naturalWidth > 0};
    });
    // The basemaps' URL templates: tile requests are recognised by them, since
    // Leaflet drops the <img> of tiles it no longer needs (e.g. after fitBounds).
    var tileTemplates = [];
    MAP.eachLayer(function (layer) {
        if (layer instanceof L.TileLayer && layer._url) { tileTemplates.push(layer._url); }
    });
    document.documentElement.setAttribute("data-gw-probe", JSON.stringify({
        leaflet: !!(window.L && L.version),
        isMap: !!(window.L && MAP instanceof L.Map),
        container: !!document.querySelector(".leaflet-container"),
        registered: Array.isArray(registered),
        layers: layers,
        resources: resources,
        tiles: tiles,
        tileTemplates: tileTemplates
    }));
}, %(settle)d);
"""


def probed_copy(page: Path) -> Path:
    """A copy of ``page`` with the error trap first in ``<head>`` and the probe last.

    The copy sits next to the original so relative links behave the same.
    """
    text = page.read_text(encoding="utf-8")
    heads = list(re.finditer(r"<head\b[^>]*>", text, re.IGNORECASE))
    assert len(heads) == 1, f"{page.name}: expected one <head>, found {len(heads)}"
    found = re.search(r"var (map_[0-9a-f]+) = (?:L\.map|gridwatchPage)\(", text)
    assert found, f"{page.name}: no Leaflet map is created in the page"
    probe = _PROBE.replace("MAP", found.group(1)) % {"settle": SETTLE_MS}
    at, end = heads[0].end(), text.rindex("</html>")
    probed = text[:at] + f"\n<script>{_ERROR_TRAP}</script>\n" + text[at:end] + f"<script>{probe}</script>\n</html>\n"
    path = page.with_name(page.stem + ".offline-probe.html")
    path.write_text(probed, encoding="utf-8")
    return path


def _attribute(dom: str, name: str) -> Any:
    """A JSON value the page wrote into an attribute of <html>."""
    found = re.search(rf'<html\b[^>]*\b{name}="([^"]*)"', dom)
    assert found, f"the page never wrote {name}: the probe did not run (Chromium output starts {dom[:300]!r})"
    return json.loads(html.unescape(found.group(1)))


def open_offline(page: Path, workdir: Path) -> dict[str, Any]:
    """Open ``page`` offline and return what the error trap and the probe saw."""
    dom = chromium(workdir, probed_copy(page), "--dump-dom")
    result = _attribute(dom, "data-gw-probe")
    result["errors"] = _attribute(dom, "data-gw-errors")
    result["failed_loads"] = _attribute(dom, "data-gw-failed-loads")
    result["remote_loads"] = _attribute(dom, "data-gw-remote-loads")
    result["dom"] = dom
    return result


# ------------------------------------------------------------------ checks


def assert_loaded_without_errors(seen: Mapping[str, Any], what: str) -> None:
    assert seen["leaflet"] and seen["isMap"] and seen["container"], f"{what}: Leaflet did not create the map"
    assert seen["errors"] == [], f"{what}: JavaScript errors:\n" + json.dumps(seen["errors"], indent=1, ensure_ascii=False)
    assert seen["registered"], (
        f"{what}: window.gridwatchLayers is missing: pipelines.publish.maps does not yet register its layers "
        "(contract: window.gridwatchLayers.push({name, features, layer}) for every vector layer)"
    )
    # Drawn features are in the DOM: SVG paths of vectors or marker / cluster icons.
    assert re.search(r'class="[^"]*\bleaflet-interactive\b', seen["dom"]), f"{what}: nothing interactive was drawn"


def tile_pattern(templates: list[str]) -> re.Pattern[str]:
    """A regex matching the URLs of Leaflet tile templates such as
    ``https://tile.openstreetmap.org/{z}/{x}/{y}.png`` (nothing, when there is no basemap)."""
    if not templates:
        return re.compile(r"(?!)")
    alternatives = []
    for template in templates:
        parts = re.split(r"(\{[^}]*\})", template)
        alternatives.append("".join(r"[^/?#]*" if part.startswith("{") else re.escape(part) for part in parts))
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def assert_nothing_fetched(seen: Mapping[str, Any], what: str) -> None:
    """No request left the machine, and the ones that tried failed harmlessly.

    Exactly what is asserted, from inside the page:

    1. Every entry of ``performance.getEntriesByType("resource")`` whose URL is
       not ``data:``, ``blob:``, ``file:`` or ``about:`` is a basemap tile (its
       URL matches the URL template of one of the map's tile layers) and
       got no response: ``transferSize``, ``responseStart`` and
       ``responseStatus`` are all 0. (Chromium 156 does record failed fetches
       there; were it not to, this would hold vacuously, hence 2 to 4.)
    2. No element loaded anything whose URL is not local (a capturing ``load``
       listener installed before any other script).
    3. No basemap tile image on the page is ``complete`` with a natural width.
    4. Every element whose load failed is a tile image: nothing the map needs
       (scripts, styles, icons, fonts) was to be fetched.

    That no packet was sent at all is guaranteed by ``--host-resolver-rules``
    (every host name fails to resolve), not observed.
    """
    tiles, is_tile = seen["tiles"], tile_pattern(seen["tileTemplates"])
    remote = [r for r in seen["resources"] if not r["name"].startswith(LOCAL_SCHEMES)]
    not_tiles = [r for r in remote if not is_tile.fullmatch(r["name"])]
    assert not_tiles == [], f"{what}: requests for more than basemap tiles: {not_tiles}"
    answered = [r for r in remote if r["transferSize"] or r["responseStart"] or r["responseStatus"]]
    assert answered == [], f"{what}: requests that got a response: {answered}"
    assert seen["remote_loads"] == [], f"{what}: loaded from the network: {seen['remote_loads']}"
    assert not [t for t in tiles if t["loaded"]], f"{what}: basemap tiles loaded despite the network being cut"
    stray = [f for f in seen["failed_loads"] if not (f["tag"] == "IMG" and "leaflet-tile" in f["className"])]
    assert stray == [], f"{what}: the page tried to load more than basemap tiles: {stray}"


# Kinds of layer, told apart by the layer's name (what the layer control shows).
# The first matching pattern wins, and the order matters: "cells with fires"
# mentions fires, "heat-source events" mentions heat, and fire layers of heat
# sources mention both.
OVERVIEW_KINDS: tuple[tuple[str, str], ...] = (
    ("sites", r"用电|\bsites\b"),
    ("heat-source events", r"热源事件|heat-source events"),
    ("fire events", r"火情事件|fire events"),
    ("heat map", r"热力|heat ?map|heatmap"),
    ("cells only touched", r"仅被像元触及的网格|only touched"),
    ("cells with fires", r"有火点网格|cells with fires"),
    ("boundaries", r"行政区|boundaries"),
    ("fires", r"火点|\bfires\b"),
)
CELL_KINDS: tuple[tuple[str, str], ...] = (
    ("sites", r"用电|\bsites\b"),
    ("events", r"事件|events"),
    ("footprints", r"像元范围|footprints"),
    ("fires here", r"本网格火点|fires here"),
    ("fires touching", r"邻格火点|touching"),
    ("neighbouring cells", r"相邻网格|neighbouring cells"),
    ("this cell", r"本网格|this cell"),
)


def kind_of(layer: Mapping[str, Any], kinds: tuple[tuple[str, str], ...]) -> str:
    """The kind of a registered layer: by its ``kind`` for a heat map, else by its name."""
    if layer.get("kind") == "heat":
        return "heat map"
    return next((kind for kind, pattern in kinds if re.search(pattern, layer["name"], re.IGNORECASE)), "unknown")


def features_by_kind(layers: list[dict[str, Any]], kinds: tuple[tuple[str, str], ...]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for layer in layers:
        kind = kind_of(layer, kinds)
        totals[kind] = totals.get(kind, 0) + int(layer["features"])
    return totals


def assert_names_agree(layers: list[dict[str, Any]], what: str) -> None:
    """A count in a layer's name, e.g. "火点 fires: 上半夜 (12)", is its number of features."""
    for layer in layers:
        shown = re.search(r"\((\d+)\)\s*$", layer["name"])
        if shown:
            assert int(shown.group(1)) == layer["features"], f"{what}: layer {layer['name']!r} registered {layer['features']} features"


def assert_fires_drawn(layers: list[dict[str, Any]], kinds: tuple[tuple[str, str], ...], fire_kinds: set[str],
                       must_show: int, what: str) -> None:
    """The fire layers really hold their features, and at least ``must_show`` of them are on the map.

    Heat-source fires may start hidden (switched on from the layer control), so
    only the fires a supervisor must check are required on the map.
    """
    fire_layers = [layer for layer in layers if kind_of(layer, kinds) in fire_kinds]
    for layer in fire_layers:
        assert layer["count"] == layer["features"], (
            f"{what}: layer {layer['name']!r} registered {layer['features']} features but holds {layer['count']}"
        )
    on_map = sum(layer["count"] for layer in fire_layers if layer["onMap"])
    assert on_map >= must_show, f"{what}: only {on_map} fire markers on the map, expected at least {must_show}"


def expected_overview(tables: Mapping[str, Any]) -> dict[str, int]:
    """Features per kind of layer on the overview, from the run's tables (zero: no layer)."""
    fires, events, sites, grid = tables["fires"], tables["events"], tables["sites"], tables["grid"]
    centred = set(fires["cell_id"].dropna().astype(str))
    touched = {str(c) for cells in fires["cells_touched"] for c in (cells if cells is not None else [])}
    in_grid = set(grid["cell_id"].astype(str))
    heat_events = events["category"].isin(HEAT_SOURCES).fillna(False).astype(bool)
    return {
        "boundaries": int(grid["province_name"].nunique()),  # one outline per province of the grid
        "cells with fires": len(centred),
        "cells only touched": len((touched - centred) & in_grid),
        "fire events": int((~heat_events).sum()),
        "heat-source events": int(heat_events.sum()),
        "fires": len(fires),  # each fire drawn once, heat sources included (in their own, hidden layers)
        "sites": len(sites),
    }


def _drop_zero(counts: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def _describe(layers: list[dict[str, Any]]) -> str:
    return "\n".join(f"  {layer['name']!r} ({layer['kind']}): {layer['features']} features, holds {layer['count']}, "
                     f"on map {layer['onMap']}" for layer in layers)


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def overview(run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return open_offline(run / "map.html", tmp_path_factory.mktemp("chromium"))


def test_overview_loads_offline_without_errors(overview: Mapping[str, Any]) -> None:
    assert_loaded_without_errors(overview, "map.html")
    assert_nothing_fetched(overview, "map.html")


def test_overview_shows_every_feature_of_the_run(overview: Mapping[str, Any], tables: Mapping[str, Any]) -> None:
    assert overview["registered"], "window.gridwatchLayers is missing: pipelines.publish.maps does not register its layers yet"
    layers = overview["layers"]
    got = features_by_kind(layers, OVERVIEW_KINDS)
    assert "unknown" not in got, "layers this test cannot place (extend OVERVIEW_KINDS):\n" + _describe(
        [layer for layer in layers if kind_of(layer, OVERVIEW_KINDS) == "unknown"])
    expected = expected_overview(tables)
    fires = tables["fires"]
    to_check = int((~fires["category"].isin(HEAT_SOURCES).fillna(False).astype(bool)).sum())
    if "heat map" in got:  # a density layer, if there is one, of the fires to check (heat sources left out)
        expected["heat map"] = to_check
    assert _drop_zero(got) == _drop_zero(expected), "layers:\n" + _describe(layers)
    assert sum(got.values()) == sum(expected.values())
    assert_names_agree(layers, "map.html")
    assert_fires_drawn(layers, OVERVIEW_KINDS, {"fires"}, to_check, "map.html")


def test_cell_map_with_a_site_loads_offline(run: Path, tables: Mapping[str, Any], tmp_path: Path) -> None:
    sites, fires, summary = tables["sites"], tables["fires"], tables["summary"]
    site_cells = sorted(set(sites["cell_id"].dropna().astype(str)))
    assert site_cells, "the sample run found no electricity site in a grid cell"
    cell = site_cells[0]
    page = summary.loc[summary["cell_id"] == cell, "map"].iloc[0]
    assert isinstance(page, str) and page.startswith("maps/"), f"grid_summary.csv gives no map for cell {cell}"

    seen = open_offline(run / page, tmp_path)
    assert_loaded_without_errors(seen, page)
    assert_nothing_fetched(seen, page)

    here = (fires["cell_id"] == cell).fillna(False).astype(bool)
    touching = fires["cells_touched"].map(lambda cells: cells is not None and cell in list(cells)) & ~here
    got = features_by_kind(seen["layers"], CELL_KINDS)
    expected = {"this cell": 1, "sites": int((sites["cell_id"] == cell).sum()),
                "fires here": int(here.sum()), "fires touching": int(touching.sum())}
    assert {k: got.get(k, 0) for k in expected} == expected, "layers:\n" + _describe(seen["layers"])
    assert_names_agree(seen["layers"], page)
    assert_fires_drawn(seen["layers"], CELL_KINDS, {"fires here", "fires touching"}, 0, page)


# ------------------------------------------------------------------ screenshot


def artifacts_dir() -> Path:
    """Where screenshots are kept: $GRIDWATCH_ARTIFACTS, else test-artifacts/ in the repository (git-ignored)."""
    folder = Path(os.environ.get("GRIDWATCH_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (asserting it is a PNG)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, "PNG without IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_overview_screenshot_is_kept(run: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # overview.png is the map as the project configures it; the other setting gets a suffix.
    basemap = request.node.callspec.params["run"]
    shot = artifacts_dir() / ("overview.png" if basemap == "project-basemap" else f"overview-{basemap}.png")
    shot.unlink(missing_ok=True)  # never pass on an old run's picture
    chromium(tmp_path, run / "map.html", f"--screenshot={shot}")
    data = shot.read_bytes()
    # Chromium may scale by the device pixel ratio, so allow whole multiples.
    width, height = png_size(data)
    assert width % WINDOW[0] == 0 and height % WINDOW[1] == 0 and width // WINDOW[0] == height // WINDOW[1], (width, height)
    # A blank or single-colour page compresses to a few kB; the title bar,
    # legend, cells and ~500 coloured markers do not.
    assert 30_000 < len(data) < 20_000_000, len(data)

