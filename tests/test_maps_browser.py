"""The saved maps in a real headless Chromium with the network cut off.

Every host name resolves to nothing (``--host-resolver-rules``), so the page has
only what is inlined in it: these tests prove Leaflet runs, the vectors render,
popups show escaped text and the fire list zooms the map, with no network.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path
from types import ModuleType

import pytest

from pipelines.publish import maps
from pipelines.testing import CHROMIUM
from pipelines.testing import OFFLINE_CHROMIUM_FLAGS as OFFLINE_FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)",
    ),
]


# Shown as text, it is harmless; parsed as HTML, it would retitle the page.
IMG_PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">封丘网格"


def _fixtures() -> ModuleType:
    """test_maps.py's real-geometry builders, loaded by path so this works
    whatever pytest's import mode."""
    spec = importlib.util.spec_from_file_location(
        "_gridwatch_map_fixtures", Path(__file__).with_name("test_maps.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fx = _fixtures()


@pytest.fixture(scope="module")
def grid():
    grid = fx.build_grid()
    grid.loc[grid["cell_id"] == fx.FENGQIU, "cell_name"] = IMG_PAYLOAD
    return grid


@pytest.fixture(scope="module")
def fires(grid):
    return fx.build_fires(grid)


def chromium(tmp_path: Path, page: Path, *args: str, size: str = "1280,800") -> str:
    """Run Chromium offline on ``page`` (file://) with a fresh profile; its stdout."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    command = [
        str(CHROMIUM),
        *OFFLINE_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        "--virtual-time-budget=5000",
        *args,
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def dump_dom(tmp_path: Path, page: Path) -> str:
    return chromium(tmp_path, page, "--dump-dom")


def with_probe(page: Path, script: str, css: str = "") -> Path:
    """A copy of ``page`` with test-only JavaScript run after the map is built.
    ``MAP`` in the script is replaced by the Leaflet map's variable."""
    text = page.read_text(encoding="utf-8")
    map_name = re.search(r"var (map_[0-9a-f]+) = (?:L\.map|gridwatchPage)\(", text).group(1)
    probe = f"<style>{css}</style><script>{script.replace('MAP', map_name)}</script>\n</html>"
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(text[: text.rindex("</html>")] + probe, encoding="utf-8")
    return probed


def interactive_paths(dom: str) -> list[str]:
    """The SVG paths Leaflet drew for vector layers (cells, footprints, markers)."""
    return re.findall(r"<path\b[^>]*\bclass=\"[^\"]*leaflet-interactive[^\"]*\"[^>]*>", dom)


def path_start(path_tag: str) -> tuple[float, float]:
    x, y = re.search(r'\bd="M(-?[\d.]+)[ ,](-?[\d.]+)', path_tag).groups()
    return float(x), float(y)


# ------------------------------------------------------------------ rendering


def test_overview_renders_offline(fires, grid, tmp_path) -> None:
    page = tmp_path / "overview.html"
    maps.save_map(maps.overview_map(fires, grid, title="2022-06-03 兰考周边"), page)
    dom = dump_dom(tmp_path, page)

    assert re.search(r'class="[^"]*\bleaflet-container\b', dom), "Leaflet did not create the map"
    paths = interactive_paths(dom)
    assert len(paths) == 3 + len(fires)  # three cells with fires + one marker per fire
    circles = [p for p in paths if re.search(r'd="M[^"]*a7,7 ', p)]
    assert len(circles) == len(fires)
    # fitBounds put every marker inside the 1280 px wide map
    assert all(0 <= path_start(c)[0] <= 1280 for c in circles)
    assert "fires by time window" in dom and "leaflet-control-layers" in dom
    assert "2022-06-03 兰考周边" in dom
    assert "<title>pwned</title>" not in dom


def test_cell_map_renders_offline_and_list_zooms(fires, grid, tmp_path) -> None:
    page = tmp_path / "cell.html"
    maps.save_map(maps.cell_map(fx.LANKAO, fires, grid, title="2022-06-03"), page)
    dom = dump_dom(tmp_path, page)
    assert re.search(r'class="[^"]*\bleaflet-container\b', dom)
    # neighbours (Fengqiu, Changyuan, Qixian) + the cell + 3 footprints + 3 markers
    assert len(interactive_paths(dom)) == 3 + 1 + 3 + 3
    dashed = [p for p in interactive_paths(dom) if 'stroke-dasharray="4 3"' in p]
    assert len(dashed) == 1  # the neighbour's fire whose pixel touches this cell
    assert len(re.findall(r"<tr data-lat=", dom)) == 3
    assert "网格员 supervisor 张伟" in dom

    probed = with_probe(
        page,
        """
        setTimeout(function () {
            document.querySelector(".gw-panel tr[data-lat] td").click();
            setTimeout(function () {
                var c = MAP.getCenter();
                document.body.setAttribute("data-after-click",
                    [c.lat.toFixed(4), c.lng.toFixed(4), MAP.getZoom()].join(","));
            }, 1500);
        }, 500);
        """,
    )
    after = re.search(r'data-after-click="([^"]+)"', dump_dom(tmp_path, probed)).group(1)
    lat, lon, zoom = after.split(",")
    # row 1 is the earliest fire: 19:30 Beijing time at 34.88 N 114.95 E
    assert (float(lat), float(lon)) == pytest.approx((34.88, 114.95), abs=1e-3)
    assert int(zoom) >= 14


def test_popups_and_tooltips_show_escaped_text(fires, grid, tmp_path) -> None:
    page = tmp_path / "overview.html"
    maps.save_map(maps.overview_map(fires, grid, title="t"), page)
    # Open every popup and tooltip the way a tap or hover does and keep a copy
    # of what Leaflet showed.
    probed = with_probe(
        page,
        """
        var out = document.createElement("div");
        out.id = "probe";
        var count = 0;
        function keep(kind, overlay) {
            var shown = overlay && overlay.getElement();
            var copy = document.createElement("section");
            copy.className = kind;
            copy.innerHTML = shown ? shown.innerHTML : "MISSING";
            out.appendChild(copy);
        }
        MAP.eachLayer(function (layer) {
            if (!(layer instanceof L.LayerGroup) && layer.getPopup && layer.getPopup()) {
                layer.openPopup();
                keep("popup", layer.getPopup());
                layer.openTooltip();
                keep("tooltip", layer.getTooltip());
                count += 1;
            }
        });
        MAP.closePopup();
        out.setAttribute("data-count", count);
        document.body.appendChild(out);
        """,
    )
    dom = dump_dom(tmp_path, probed)
    probe = dom[dom.index('<div id="probe"') :]
    assert 'data-count="8"' in probe  # 5 fires + 3 cells
    assert "MISSING" not in probe
    assert probe.count('<section class="tooltip">') == 8
    assert probe.count("<th>时间 time</th><td>2022-06-03 19:30 北京时间</td>") == 1
    assert "outside any grid cell" in probe
    assert '<a href="' not in probe  # no cell_links given
    # The payload is text: escaped in the serialized DOM, never an element, never run.
    assert probe.count("&lt;img src=x onerror=") >= 4  # Fengqiu's popup + tooltip, fire-3's
    assert "<img" not in probe
    assert "<title>pwned</title>" not in dom


def test_screenshot_shows_the_fires(fires, grid, tmp_path) -> None:
    page = tmp_path / "overview.html"
    maps.save_map(maps.overview_map(fires, grid, title="2022-06-03 兰考周边 火点"), page)
    screenshot = tmp_path / "overview.png"
    chromium(tmp_path, page, f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 10_000  # kept for a person to look at

    # Without the controls (whose legend has the same colours), orange and red
    # pixels can only come from the painted fire markers.
    bare = with_probe(page, "", css=".leaflet-control-container { display: none; }")
    small = tmp_path / "bare.png"
    chromium(tmp_path, bare, f"--screenshot={small}", size="640,480")
    pixels = decode_png(small.read_bytes())
    orange = sum(1 for r, g, b in pixels if r > 200 and 100 < g < 170 and b < 60)
    red = sum(1 for r, g, b in pixels if r > 180 and g < 70 and b < 70)
    assert orange > 30 and red > 30, (orange, red)


# ------------------------------------------------------------------ PNG


def decode_png(data: bytes) -> list[tuple[int, int, int]]:
    """RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes).

    Tiny on purpose: the project has no image library and this is all we need.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, bytearray()
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(bytes(idat))
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        pixels.extend(zip(line[0::channels], line[1::channels], line[2::channels], strict=True))
        previous = line
    return pixels


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    """Undo one PNG scanline filter in place (PNG spec section 9)."""
    if kind == 0:
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        up_left = previous[i - bpp] if i >= bpp else 0
        if kind == 1:
            predictor = left
        elif kind == 2:
            predictor = up
        elif kind == 3:
            predictor = (left + up) >> 1
        else:
            p = left + up - up_left
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
            predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
        line[i] = (line[i] + predictor) & 0xFF


def test_site_popup_draws_the_chart_and_escapes_names(tmp_path) -> None:
    """A resurgence site on the real series of enterprise 200 (closed at its real 2016 shutdown), named with the payload."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from pipelines.power.meters import DayUse
    from pipelines.power.sites import find_sites, locate_fleet
    from pipelines.power.state import PowerState

    root = Path(__file__).resolve().parent.parent
    series = pd.read_csv(Path(__file__).with_name("data") / "power" / "tianchi_subset_40users.csv", parse_dates=["record_date"])
    use = series[series["user_id"] == 200].set_index("record_date")["power_consumption"].astype("float32")
    grid = gpd.read_parquet(root / "geodata" / "grid_ncp_5km.parquet")
    cells = grid[grid["county_code"] == "321182"].reset_index(drop=True)
    spot = cells.representative_point().iloc[0]
    transformers = gpd.GeoDataFrame({"transformer_id": ["T200"], "enterprise_id": ["E200"], "lon": [spot.x], "lat": [spot.y]},
                                    geometry=[spot], crs="EPSG:4326")
    registry = pd.DataFrame({"enterprise_id": ["E200"], "name": [IMG_PAYLOAD], "address": ["x"], "industry": ["y"], "status": ["closed"],
                             "status_date": [pd.Timestamp("2016-04-18").date()], "deadline": [None], "grade": [""], "source_row": [2]})
    fleet = locate_fleet(transformers, registry, cells)
    state = PowerState.empty(["T200"], pd.Timestamp("2016-02-29").date(), 90)
    for day, value in use["2016-03-01":"2016-05-25"].items():
        v = np.array([value], "float32")
        state = state.advance(DayUse(day.date(), v, v * np.nan, np.ones(1, "float32"), np.full(1, np.nan)))
        sites, state = find_sites(state, fleet, pd.DataFrame(columns=["warning_id", "level", "start_utc", "end_utc", "region"]))
    assert list(sites["rule"]) == ["resurgence"]

    page = tmp_path / "cell.html"
    fires = fx.build_fires(fx.build_grid()).iloc[:0]
    maps.save_map(maps.cell_map(sites["cell_id"].iloc[0], fires, cells, title="t", tiles=None, sites=sites), page)
    probed = with_probe(page, """
        MAP.eachLayer(function (layer) {
            if (layer.feature && layer.getPopup && layer.getPopup()) { layer.openPopup(); }
        });
        var shown = document.querySelector(".leaflet-popup-content");
        var out = document.createElement("div");
        out.id = "probe";
        out.innerHTML = shown ? shown.innerHTML : "MISSING";
        document.body.appendChild(out);
        """)
    dom = dump_dom(tmp_path, probed)
    probe = dom[dom.index('<div id="probe"'):]
    assert "死灰复燃" in probe and "&lt;img src=x onerror=" in probe and "<img" not in probe
    chart = re.search(r"<svg[^>]*>(.*?)</svg>", probe, re.DOTALL).group(1)
    assert chart.count("<rect") >= 60  # background, the flagged run, and one bar per known day
    assert "floor 1" in chart and "05-25" in chart
    assert "<title>pwned</title>" not in dom
