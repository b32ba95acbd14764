"""Benchmark the overview map on a big fire day: build time, file size, time to first render.

    /work/venv/bin/python benchmarks/maps.py [--points N] [--quick] [--runs R] [--fires PATH] [--keep DIR]

The fires are generated from real ones: the 568 attributed fires of the sample
nightly run for 2022-06-03 (MODIS and Himawari AHI, North China Plain), which
this script makes once with the real nightly job on geodata/ and caches in
benchmarks/.data/ (or any ``fires.parquet`` given with ``--fires``). N rows
(default 20,000; 2,000 with ``--quick``) are drawn from them with replacement
under a fixed seed, and each is moved by a Gaussian jitter of 0.05 degree
(about 5 km) so markers do not stack; every other column (time, sensor, FRP,
time windows, category...) is the real fire's. The moved fires are attributed
to the real 5 km grid again (``geopandas.sjoin``), so the page draws as many
cells as such a day would; ``cells_touched`` is just the fire's own cell
(footprints are not moved). Fire events and electricity sites are left out:
they do not scale with this resampling. The province outlines and cell links
are drawn as in the nightly job. No basemap (``tiles=None``): offline, tiles
only fail, and the vectors are what is measured.

Measured for each page:

* build: ``overview_map`` (or the baseline's folium calls) plus ``save_map``,
  wall-clock seconds, one run;
* size: the HTML file in MB (10^6 bytes), and gzipped for reference;
* time to first render: headless Chromium, network blocked, fresh profile per
  run. A script first in ``<head>`` traps JavaScript errors; a script at the
  end of the page waits (``requestAnimationFrame``) until every layer listed in
  ``window.gridwatchLayers`` holds its features (a marker-cluster plugin may
  add them in chunks), then one more frame and a ``setTimeout(0)``, i.e. after
  that frame was painted, and writes ``performance.now()`` (ms since navigation
  start) into the DOM, read back over the DevTools protocol (see ``Chromium``;
  no virtual time, so the page runs in real time). Mean (and min) of R runs.

Baselines, built in the same run from the same fires, clustered as gridwatch
clusters (radius 40 px, every fire on its own from zoom 13, chunked loading),
with the same circle markers, colours and tooltips, and made offline the same
way (every page is written with ``save_map(..., inline=True)``: one file each,
Leaflet and Leaflet.markercluster 1.5.3 inside it, so sizes compare):

* ``folium MarkerCluster``: ``folium.plugins.MarkerCluster`` holding one
  ``folium.CircleMarker`` per fire with its tooltip;
* ``folium FastMarkerCluster``: ``folium.plugins.FastMarkerCluster``, the
  markers made in the page from an array of ``[lat, lon, colour, tooltip]``
  (folium's fast path for many points). Neither has popups (``folium.Popup``
  needs jQuery, not available offline); gridwatch's markers have them.

From ``LIGHT_OVERVIEW_FIRES`` (20,000) fires on, the overview is light (canvas
markers, short popups, no event outlines): 20,000 fires is that page.

``--nights 10`` instead runs the sample day and 10x its fires (the real fires
resampled with 5 km of jitter, seeded, as one FIRMS MODIS file) end to end
through ``gridwatch nightly`` in one run, and prints wall time, map-writing
time, cell maps and the output folder's size.

Aims (for the gridwatch page): first render under 2 s and a file under 5 MB (at 20,000 fires).
Exits with status 1 if a page does not render or logs a JavaScript error.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from folium.plugins import FastMarkerCluster, MarkerCluster

from pipelines.core.schema import BEIJING_TZ
from pipelines.publish import mappage, maps
from pipelines.publish.pages import RawHtml, require_assets
from pipelines.run.cli import main as cli_main
from pipelines.run.nightly import EXIT_OK, province_outlines
from pipelines.testing import CHROMIUM
from pipelines.testing import OFFLINE_CHROMIUM_FLAGS as OFFLINE_FLAGS

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".data" / "maps"  # git-ignored
GRID = ROOT / "geodata" / "grid_ncp_5km.parquet"
DAY = "2022-06-03"
SEED = 20221103
JITTER_DEG = 0.05
WINDOW = "1280,800"
AIM_RENDER_S = 2.0
AIM_SIZE_MB = 5.0

# ------------------------------------------------------------------ fires


def sample_fires() -> Path:
    """fires.parquet of the real nightly run on the sample data, made once and cached."""
    fires = CACHE / "out" / DAY / "fires.parquet"
    if fires.exists():
        return fires
    CACHE.mkdir(parents=True, exist_ok=True)
    # The project's config with absolute paths and the output in the cache (as tests/test_nightly.py does).
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('"geodata/', f'"{ROOT}/geodata/').replace('dir = "out"', f'dir = "{CACHE}/out"')
    config = CACHE / "config.toml"
    config.write_text(text, encoding="utf-8")
    print(f"making the sample run once ({DAY}, cached in {CACHE.relative_to(ROOT)}) ...", flush=True)
    if cli_main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) != EXIT_OK:
        raise SystemExit("the sample nightly run failed")
    return fires


def resample(real: gpd.GeoDataFrame, grid: gpd.GeoDataFrame, n: int) -> gpd.GeoDataFrame:
    """n fires drawn from ``real`` with replacement, jittered and attributed to ``grid`` again."""
    rng = np.random.default_rng(SEED)
    fires = real.iloc[rng.integers(0, len(real), n)].reset_index(drop=True)
    fires = fires.drop(columns=[c for c in ("footprint",) if c in fires])
    lon = fires.geometry.x.to_numpy() + rng.normal(0, JITTER_DEG, n)
    lat = fires.geometry.y.to_numpy() + rng.normal(0, JITTER_DEG, n)
    fires = fires.set_geometry(gpd.points_from_xy(lon, lat, crs=real.crs))
    fires["lon"], fires["lat"] = lon, lat
    fires["fire_id"] = [f"bench-{i:06d}" for i in range(n)]
    cell_columns = ["cell_id", "cell_name", "county_code", "county_name", "province_code", "province_name", "supervisor"]
    joined = gpd.sjoin(fires[["geometry"]], grid[[*cell_columns, "geometry"]], predicate="within", how="left")
    joined = joined[~joined.index.duplicated()]  # a point on a shared edge: its first cell
    for column in cell_columns:
        fires[column] = joined[column].reindex(fires.index).to_numpy()
    fires["cells_touched"] = [[c] if isinstance(c, str) else [] for c in fires["cell_id"]]
    return fires


# ------------------------------------------------------------------ whole nights


def night_points(real: gpd.GeoDataFrame, factor: int, path: Path) -> int:
    """A FIRMS MODIS CSV of ``factor`` x the sample day's fires, resampled from the real ones with 5 km of jitter (seeded).

    Each row keeps its real fire's UTC time, pixel size (scan, track), FRP,
    confidence and day/night; ``satellite`` is the real one's for MODIS fires
    and Terra for the rest (Himawari pixels written as MODIS rows, so one
    point file carries the whole day). ``brightness`` and ``bright_t31`` are
    not kept in fires.parquet and are written as 330 K and 300 K (gridwatch
    does not use them). Returns the number of rows.
    """
    rng = np.random.default_rng(SEED + factor)
    n = len(real) * factor
    fires = real.iloc[rng.integers(0, len(real), n)].reset_index(drop=True)
    lon = fires["lon"].to_numpy() + rng.normal(0, JITTER_DEG, n)
    lat = fires["lat"].to_numpy() + rng.normal(0, JITTER_DEG, n)
    when = pd.to_datetime(fires["time_utc"], utc=True)
    satellite = np.where(fires["satellite"].astype(str) == "Aqua", "A", "T")
    table = pd.DataFrame({
        "latitude": lat.round(5), "longitude": lon.round(5), "brightness": 330.0,
        "scan": fires["scan_km"].clip(1.0, 4.8).round(2), "track": fires["track_km"].clip(1.0, 2.0).round(2),
        "acq_date": [f"{t.month}/{t.day}/{t.year}" for t in when], "acq_time": [t.hour * 100 + t.minute for t in when],
        "satellite": satellite, "confidence": fires["confidence"].fillna(50).round().astype(int), "version": "6.1NRT",
        "bright_t31": 300.0, "frp": fires["frp_mw"].fillna(10.0).round(2), "daynight": fires["daynight"].fillna("N"),
    })
    table.to_csv(path, index=False)
    return n


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run_nights(factors: list[int], scratch: Path) -> int:
    """The sample day and each ``factor`` x day end to end through the CLI (``gridwatch nightly``), in this run."""
    real = gpd.read_parquet(sample_fires())
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace('"geodata/', f'"{ROOT}/geodata/')
    rows = []
    for factor in [1, *factors]:
        site = scratch / f"x{factor}"
        site.mkdir(parents=True, exist_ok=True)
        config = text
        if factor > 1:  # the sample day itself (real files, rasters included) is the baseline
            n = night_points(real, factor, site / "fires.csv")
            config = config.replace('points = ["' + f"{ROOT}/geodata/fires/*.csv" + '"]', f'points = ["{site}/fires.csv"]')
            config = config.replace('rasters = ["' + f"{ROOT}/geodata/fires/ahi/*.nc" + '"]', "rasters = []")
        (site / "config.toml").write_text(config, encoding="utf-8")
        start = time.perf_counter()
        code = cli_main(["nightly", "--date", DAY, "--config", str(site / "config.toml"), "--out", str(site / "out"), "--quiet"])
        wall = time.perf_counter() - start
        folder = site / "out" / DAY
        manifest = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        rows.append((factor, manifest["counts"]["fires"], manifest["counts"]["cell_maps"], wall, manifest["timings_s"].get("write_maps", 0.0),
                     _folder_mb(folder), (folder / "map.html").stat().st_size / 1e6, code))
    base = rows[0][3]
    print(f"{'day':>6} {'fires':>7} {'cell maps':>9} {'wall s':>7} {'x day':>6} {'maps s':>7} {'folder MB':>9} {'map.html MB':>11} exit")
    for factor, fires, cells, wall, maps_s, mb, overview_mb, code in rows:
        print(f"{factor:>5}x {fires:>7,} {cells:>9,} {wall:>7.1f} {wall / base:>6.2f} {maps_s:>7.1f} {mb:>9.1f} {overview_mb:>11.2f} {code}")
    return 0 if all(r[-1] in (0, 3) for r in rows) else 1


# ------------------------------------------------------------------ pages


def gridwatch_page(fires: gpd.GeoDataFrame, grid: gpd.GeoDataFrame, context: gpd.GeoDataFrame, path: Path) -> None:
    """The overview as the nightly job draws it (minus events and sites)."""
    links = {c: f"maps/{maps.cell_map_filename(c)}" for c in sorted(set(fires["cell_id"].dropna()))}
    m = maps.overview_map(fires, grid, title=f"benchmark {len(fires):,} fires", tiles=None, cell_links=links, context=context)
    maps.save_map(m, path, inline=True)  # one file, as the baselines: sizes compare


def _tooltips_and_colours(fires: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The tooltip text and marker colour gridwatch gives each fire, for the baselines."""
    tips, colours = [], []
    for t, after, night, cell in zip(fires["time_utc"], fires["win_after_work"], fires["win_first_half_night"],
                                     fires["cell_name"], strict=True):
        cls = maps._fire_class(after, night)  # the same classes, so the pages look alike
        tips.append(f"{pd.Timestamp(t).tz_convert(BEIJING_TZ):%H:%M} · {cls.label} · {cell if isinstance(cell, str) else maps.OUTSIDE_GRID}")
        colours.append(cls.colour)
    return tips, colours


def _offline_map(fires: gpd.GeoDataFrame) -> folium.Map:
    m = folium.Map(location=None, tiles=None, control_scale=True)
    mappage._make_offline(m)  # our Leaflet first in <head>, before the plugin that needs it
    m.options["maxZoom"] = 19  # marker clustering needs the map's own maxZoom (there is no tile layer)
    b = fires.total_bounds
    m.fit_bounds([[b[1], b[0]], [b[3], b[2]]])
    return m


def _cluster_options() -> dict:
    """The clustering gridwatch uses, for the baselines: same radius, same zoom where clusters stop."""
    return {"disableClusteringAtZoom": maps.CLUSTER_OFF_ZOOM, "maxClusterRadius": mappage.CLUSTER_RADIUS_PX,
            "showCoverageOnHover": False, "chunkedLoading": True}


def _vendored_cluster(plugin: folium.MacroElement, n: int) -> None:
    """Load the plugin from our vendored Leaflet.markercluster 1.5.3 instead of folium's CDN links (offline),
    and register its group as gridwatch registers its layers, so the render is timed when all ``n`` markers
    are in it (chunked loading adds them over several frames), exactly as for the gridwatch page."""
    plugin.default_js, plugin.default_css = [], []
    require_assets(plugin, "markercluster")
    register = f"window.gridwatchLayers = [{{name: 'fires', features: {n}, layer: {plugin.get_name()}, kind: 'cluster'}}];"
    plugin.get_root().script.add_child(RawHtml(register), name="baseline_registry")


def marker_cluster_page(fires: gpd.GeoDataFrame, path: Path) -> None:
    """Baseline: folium.plugins.MarkerCluster of one folium.CircleMarker per fire, coloured by window, with its tooltip."""
    m = _offline_map(fires)
    cluster = MarkerCluster(name="fires", options=_cluster_options()).add_to(m)
    tips, colours = _tooltips_and_colours(fires)
    for point, tip, colour in zip(fires.geometry, tips, colours, strict=True):
        folium.CircleMarker([point.y, point.x], radius=7, color="#212121", weight=1.2, fill=True,
                            fill_color=colour, fill_opacity=0.9, tooltip=tip).add_to(cluster)
    _vendored_cluster(cluster, len(fires))
    folium.LayerControl().add_to(m)
    maps.save_map(m, path, inline=True)


# Each row [lat, lon, colour, tooltip] becomes a circle marker with its tooltip, as gridwatch draws it.
_FAST_CALLBACK = """function (row) {
    var marker = L.circleMarker(new L.LatLng(row[0], row[1]), {radius: 7, color: "#212121", weight: 1.2, fillColor: row[2], fillOpacity: 0.9});
    marker.bindTooltip(row[3]);
    return marker;
}"""


def fast_marker_cluster_page(fires: gpd.GeoDataFrame, path: Path) -> None:
    """Baseline: folium.plugins.FastMarkerCluster (markers made in the page from an array), same markers and tooltips."""
    m = _offline_map(fires)
    tips, colours = _tooltips_and_colours(fires)
    data = [[round(p.y, 5), round(p.x, 5), c, t] for p, c, t in zip(fires.geometry, colours, tips, strict=True)]
    cluster = FastMarkerCluster(data, callback=_FAST_CALLBACK, name="fires", options=_cluster_options()).add_to(m)
    _vendored_cluster(cluster, len(fires))
    folium.LayerControl().add_to(m)
    maps.save_map(m, path, inline=True)


# ------------------------------------------------------------------ Chromium

# First in <head>: any JavaScript error is counted into an attribute of <html>.
_TRAP = """<script>(function () {
  var n = 0, first = "";
  function keep(msg) { n += 1; first = first || String(msg).slice(0, 300);
    document.documentElement.setAttribute("data-gw-errors", n + " " + first); }
  window.onerror = function (msg) { keep(msg); };
  window.addEventListener("unhandledrejection", function (e) { keep(e.reason); });
  var ce = console.error; console.error = function () { keep(Array.prototype.join.call(arguments, " ")); return ce.apply(console, arguments); };
  document.documentElement.setAttribute("data-gw-errors", "0");
})();</script>"""

# Last in the page: after the map script ran, wait until every registered layer
# holds its features, then for the next frame to be painted, then note the time.
_MARK = """<script>(function () {
  var started = performance.now();
  function complete() {
    return (window.gridwatchLayers || []).every(function (e) {
      return !(e.layer && e.layer.getLayers) || e.layer.getLayers().length >= e.features;
    });
  }
  function done() {
    document.documentElement.setAttribute("data-gw-render-ms", performance.now().toFixed(1));
    document.documentElement.setAttribute("data-gw-script-ms", started.toFixed(1));
    document.documentElement.setAttribute("data-gw-registered", String((window.gridwatchLayers || []).length));
  }
  (function wait() {
    if (!complete()) { requestAnimationFrame(wait); return; }
    requestAnimationFrame(function () { setTimeout(done, 0); });
  })();
})();</script>"""


def chromium_version() -> str:
    out = subprocess.run([str(CHROMIUM), "--version"], check=False, capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def instrumented(page: Path) -> Path:
    text = page.read_text(encoding="utf-8")
    head = re.search(r"<head\b[^>]*>", text)
    assert head is not None, page
    end = text.rindex("</html>")
    probe = page.with_name(page.stem + ".timed.html")
    probe.write_text(text[: head.end()] + _TRAP + text[head.end() : end] + _MARK + "</html>\n", encoding="utf-8")
    return probe


@dataclass
class Render:
    render_ms: float
    script_ms: float
    errors: str
    registered: int


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    ``--dump-dom`` serializes the page right after its load event, which can come
    before the frame we wait for; and ``--virtual-time-budget`` would make the
    page's timers fast-forward. Over the protocol the page runs in real time and
    we ask for the mark until it is there. Chromium reads commands on fd 3 and
    writes replies on fd 4, each a JSON object ended by a NUL byte.
    """

    def __init__(self, args: list[str]) -> None:
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()

        def wire_fds() -> None:  # in the child: put the pipe ends on fds 3 and 4
            high_in = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 100)  # out of the way of 3 and 4 first
            high_out = fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 100)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        # preexec_fn is unsafe only with threads, and this script has none.
        self.process = subprocess.Popen([str(CHROMIUM), *args, "--remote-debugging-pipe"],
                                        preexec_fn=wire_fds, pass_fds=(3, 4),  # noqa: PLW1509
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id = b"", 0

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 120) -> dict:
        """Send one command and return its result (events in between are skipped)."""
        self._id += 1
        message: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} in {timeout} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._write)
        os.close(self._read)


_READ_MARK = ("(function (d) { return d.getAttribute('data-gw-render-ms') === null ? null : "
              "[d.getAttribute('data-gw-render-ms'), d.getAttribute('data-gw-script-ms'), "
              "d.getAttribute('data-gw-errors'), d.getAttribute('data-gw-registered')]; })(document.documentElement)")


def render_once(page: Path, workdir: Path, timeout: float = 120) -> Render | None:
    """One offline load of ``page`` in a fresh profile and browser; None if the mark never appeared.

    The browser starts on about:blank and is then sent to the page, so its
    start-up is not counted: ``performance.now()`` counts from that navigation.
    The mark is polled every 50 ms (each poll is a tiny task queued behind the
    page's own scripts, so it cannot delay them by more than that).
    """
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    browser = Chromium([*OFFLINE_FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW}", "about:blank"])
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = browser.call("Runtime.evaluate", {"expression": _READ_MARK, "returnByValue": True}, session,
                                 timeout=timeout)["result"].get("value")
            if found:
                render, script, errors, registered = found
                return Render(float(render), float(script), errors or "?", int(registered or 0))
            time.sleep(0.05)
        return None
    finally:
        browser.close()


# ------------------------------------------------------------------ report


@dataclass
class Result:
    name: str
    build_s: float
    size_mb: float
    gzip_mb: float
    renders: list[Render]
    missed: int

    @property
    def render_s(self) -> float:
        return statistics.mean(r.render_ms for r in self.renders) / 1000 if self.renders else float("nan")

    @property
    def errors(self) -> str:
        bad = sorted({r.errors for r in self.renders if not r.errors.startswith("0")})
        return "; ".join(bad) or ("none" if self.renders else "did not render")


def measure(name: str, build: Callable[[Path], None], path: Path, runs: int) -> Result:
    start = time.perf_counter()
    build(path)
    build_s = time.perf_counter() - start
    data = path.read_bytes()
    timed = instrumented(path)
    renders, missed = [], 0
    for _ in range(runs):
        found = render_once(timed, path.parent)
        if found is None:
            missed += 1
        else:
            renders.append(found)
    return Result(name, build_s, len(data) / 1e6, len(gzip.compress(data, 6)) / 1e6, renders, missed)


def biggest_parts(path: Path, top: int = 3) -> list[tuple[int, str]]:
    """The largest <script>/<style> blocks of a page: bytes and how they start."""
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"<(script|style)\b[^>]*>(.*?)</\1>", text, re.DOTALL)
    parts = [(len(body.encode("utf-8")), f"<{kind}> " + re.sub(r"\s+", " ", body.strip())[:70]) for kind, body in blocks]
    return sorted(parts, reverse=True)[:top]


def _size(value: object) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (as the page writes it)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def feature_bytes(path: Path) -> dict[str, int]:
    """Bytes of the GeoJSON FeatureCollections embedded in a page, split into
    point and shape layers, and each into geometry and each property key (the
    rest is ``type`` keys and brackets).

    Found by decoding JSON wherever ``{"type":"FeatureCollection"`` starts, so
    it works whatever JavaScript surrounds the data.
    """
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    totals: dict[str, int] = {}
    for found in re.finditer(r'\{\s*"type"\s*:\s*"FeatureCollection"', text):
        collection, end = decoder.raw_decode(text, found.start())
        totals["all collections"] = totals.get("all collections", 0) + len(text[found.start():end].encode("utf-8"))
        totals["features"] = totals.get("features", 0) + len(collection["features"])
        # Point layers (fires, sites) apart from shapes (cells, outlines, events): they scale differently.
        points = all((f.get("geometry") or {}).get("type") == "Point" for f in collection["features"])
        kind = "points" if points else "shapes"
        for feature in collection["features"]:
            totals[f"{kind}: geometry"] = totals.get(f"{kind}: geometry", 0) + _size(feature["geometry"])
            for key, value in (feature.get("properties") or {}).items():
                name = f"{kind}: properties.{key}"
                totals[name] = totals.get(name, 0) + _size(value) + len(key) + 3
    return totals


def report(results: list[Result], n: int, runs: int, gridwatch_page_path: Path) -> None:
    print(f"\nChromium: {chromium_version()}, headless, window {WINDOW}, network blocked; {runs} runs per page")
    print(f"fires: {n:,} (resampled from the sample run's real fires, jitter {JITTER_DEG} deg, seed {SEED})\n")
    print(f"{'page':<22}{'build s':>9}{'MB':>8}{'gz MB':>8}{'render s':>10}{'min s':>8}{'script s':>10}  JS errors")
    for r in results:
        fastest = min((x.render_ms for x in r.renders), default=float("nan")) / 1000
        script = statistics.mean(x.script_ms for x in r.renders) / 1000 if r.renders else float("nan")
        missed = f" ({r.missed} runs without a mark)" if r.missed else ""
        print(f"{r.name:<22}{r.build_s:>9.2f}{r.size_mb:>8.2f}{r.gzip_mb:>8.2f}{r.render_s:>10.2f}{fastest:>8.2f}"
              f"{script:>10.2f}  {r.errors}{missed}")
    ours = results[0]
    print("\n'render s': navigation start to the first frame painted with every layer drawn (mean; 'min s' the fastest);")
    print("'script s': navigation start to the end of the page's scripts (parsing + building the layers).")
    per_fire = ours.size_mb * 1e6 / n
    print(f"\ngridwatch: {per_fire:,.0f} bytes per fire; registered layers: {ours.renders[0].registered if ours.renders else '?'}")
    print("largest blocks of the gridwatch page:")
    for size, start in biggest_parts(gridwatch_page_path):
        print(f"  {size / 1e6:7.2f} MB  {start}")
    parts = feature_bytes(gridwatch_page_path)
    if parts:
        whole = parts.pop("all collections")
        count = parts.pop("features")
        print(f"its GeoJSON: {whole / 1e6:.2f} MB in {count:,} features ({whole / max(count, 1):,.0f} bytes each), of which:")
        for key, size in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {size / 1e6:7.2f} MB  {size / whole:5.1%}  {key}")
    render_ok = ours.render_s < AIM_RENDER_S
    size_ok = ours.size_mb < AIM_SIZE_MB
    print(f"\naim: first render < {AIM_RENDER_S:.0f} s: {'met' if render_ok else 'NOT met'} ({ours.render_s:.2f} s)")
    print(f"aim: file < {AIM_SIZE_MB:.0f} MB:        {'met' if size_ok else 'NOT met'} ({ours.size_mb:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=None, help="fires on the day (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 fires and 2 runs: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="Chromium loads per page (default 5, 2 with --quick)")
    parser.add_argument("--fires", type=Path, default=None, help="an attributed fires.parquet to resample")
    parser.add_argument("--keep", type=Path, default=None, help="keep the pages in this folder")
    parser.add_argument("--nights", type=int, nargs="*", default=None, metavar="K",
                        help="instead: run the sample day and K x its fires end to end through the CLI (e.g. --nights 10)")
    args = parser.parse_args(argv)
    if args.nights is not None:
        with tempfile.TemporaryDirectory(prefix="gridwatch-nights-") as scratch:
            return run_nights(args.nights or [10], args.keep or Path(scratch))
    n = args.points or (2_000 if args.quick else 20_000)
    runs = args.runs or (2 if args.quick else 5)
    if not CHROMIUM.exists():
        print(f"needs headless Chromium at {CHROMIUM}")
        return 1

    grid = gpd.read_parquet(GRID)
    fires = resample(gpd.read_parquet(args.fires or sample_fires()), grid, n)
    context = province_outlines(grid)

    with tempfile.TemporaryDirectory(prefix="gridwatch-maps-bench-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        ours = folder / "gridwatch.html"
        results = [
            measure("gridwatch overview", lambda p: gridwatch_page(fires, grid, context, p), ours, runs),
            measure("folium MarkerCluster", lambda p: marker_cluster_page(fires, p), folder / "markercluster.html", runs),
            measure("folium FastMarkerCluster", lambda p: fast_marker_cluster_page(fires, p), folder / "fastmarkercluster.html", runs),
        ]
        report(results, n, runs, ours)
    if args.keep:
        print(f"\npages kept in {args.keep}")
    broken = [r.name for r in results if not r.renders or r.errors != "none"]
    if broken:
        print(f"FAILED to render cleanly: {', '.join(broken)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
