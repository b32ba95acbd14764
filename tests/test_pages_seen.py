"""Every page type of a nightly run, as a person sees it: a phone (390 x 844) and a desktop (1280 x 800).

One small nightly run (the sample day, ``[maps] language = "zh"``, point files
only) is shared by the module. Each page is opened offline in one headless
Chromium, driven over its DevTools pipe (``--remote-debugging-pipe``: no
network port, no extra package), with the viewport set exactly (a headless
window cannot be narrower than 500 px, so the phone is emulated) and:

* nothing overflows horizontally: ``document.documentElement.scrollWidth <= innerWidth``;
* the link back to ``index.html`` (except on index.html itself) and the page's
  key controls are visible (inside the viewport, not hidden);
* no English sentence shows: the visible text (``innerText``) has no run of
  three or more English words (``language = "zh"``);
* a screenshot is kept in ``test-artifacts/pages/`` (or ``$GRIDWATCH_ARTIFACTS/pages``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_nightly as nightly

from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL
from pipelines.testing import CHROMIUM
from pipelines.testing import OFFLINE_CHROMIUM_FLAGS as OFFLINE_FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)"),
]

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"phone": (390, 844, True), "desktop": (1280, 800, False)}
SETTLE_MS = 700  # after the load event: Leaflet has drawn, fitBounds has run




# ------------------------------------------------------------------ Chromium over its DevTools pipe


class Browser:
    """One headless Chromium, driven with DevTools protocol messages over fds 3 (to it) and 4 (from it)."""

    def __init__(self, workdir: Path) -> None:
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
        # Chromium reads commands on fd 3 and writes replies on fd 4: set up in the child (dup2'd
        # descriptors are inheritable; close_fds=False keeps them, since pass_fds could not name them).
        def wire() -> None:
            read_end, write_end = os.dup(to_r), os.dup(from_w)  # out of the way of 3 and 4 first
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self._proc = subprocess.Popen(
            [str(CHROMIUM), *OFFLINE_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}", "--hide-scrollbars", "about:blank"],
            close_fds=False, preexec_fn=wire, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        self._buffer = b""
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, event: str) -> None:
        while self._read().get("method") != event:
            pass

    def open(self, page: Path, width: int, height: int, mobile: bool) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session=True)
        self.call("Page.navigate", {"url": page.resolve().as_uri()}, session=True)
        self.wait_for("Page.loadEventFired")
        self.evaluate(f"new Promise(r => setTimeout(r, {SETTLE_MS}))")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        os.close(self._to_w)
        os.close(self._from_r)


# ------------------------------------------------------------------ the run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample day in Chinese, from the MODIS point files only (no AHI scans: a small, quick run)."""
    tmp = tmp_path_factory.mktemp("pages-seen")
    config = nightly.write_config(tmp, rasters=[])
    text = re.sub(r'^language = "both"', 'language = "zh"', config.read_text(encoding="utf-8"), flags=re.MULTILINE)
    config.write_text(text, encoding="utf-8")
    assert main(["nightly", "--date", nightly.DAY, "--config", str(config), "--quiet"]) in (EXIT_OK, EXIT_PARTIAL)
    return tmp / "out" / nightly.DAY


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chrome = Browser(tmp_path_factory.mktemp("chromium"))
    yield chrome
    chrome.close()


def artifacts() -> Path:
    folder = Path(os.environ.get("GRIDWATCH_ARTIFACTS") or ROOT / "test-artifacts") / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def page_of(run: Path, kind: str) -> Path:
    if kind == "index":
        return run / "index.html"
    if kind == "overview":
        return run / "map.html"
    if kind in ("report", "plan", "bulletin"):
        return run / f"{kind}.html"
    if kind == "cell":
        # The cell with most suspected straw burning: the busiest page a supervisor opens.
        summary = {r.split(",")[0]: r for r in (run / "grid_summary.csv").read_text(encoding="utf-8").splitlines()}
        assert summary
        pages = sorted((run / "maps").glob("*.html"), key=lambda p: -p.stat().st_size)
        return pages[0]
    if kind == "supervisor":
        return max((run / "supervisors").glob("*.html"), key=lambda p: p.stat().st_size)
    raise KeyError(kind)


# Controls that must be visible on each page type (CSS selectors).
CONTROLS = {
    "index": ["#f-county", "#f-supervisor", "#cells a"],
    "overview": [".leaflet-container", ".leaflet-control-zoom", ".gw-title h1"],
    "cell": [".leaflet-container", ".leaflet-control-zoom", ".gw-title h1"],
    "report": ["h1", "ul.summary"],
    "plan": [".leaflet-container", ".leaflet-control-zoom", ".gw-side"],
    "bulletin": ["h1", "table.gw-table"],
    "supervisor": ["h1", "ol.gw-cards li"],
}

PROBE = """
(() => {
  const visible = el => {
    if (!el) return false;
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0 &&
           r.left < innerWidth && r.right > 0 && r.top < innerHeight && r.bottom > 0;
  };
  const home = [...document.querySelectorAll('a[href]')].filter(a => /(^|\\/)index\\.html$/.test(a.getAttribute('href')));
  return {
    scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth,
    home: home.some(visible),
    controls: Object.fromEntries(CONTROLS.map(c => [c, visible(document.querySelector(c))])),
    text: document.body.innerText,
  };
})()
"""

# Three or more words of Latin letters with lower case in them, in a row: an English sentence or phrase.
# Names of sensors and satellites are upper case or short (MODIS, VIIRS, N20); Leaflet's attribution is allowed.
ENGLISH = re.compile(r"\b[A-Za-z]*[a-z][A-Za-z]*(?:[ ,.;:'’()/-]+[A-Za-z]*[a-z][A-Za-z]*\b){2,}")
ALLOWED = ("Leaflet",)


def english_phrases(text: str) -> list[str]:
    return [m.group(0) for m in ENGLISH.finditer(text) if not any(a in m.group(0) for a in ALLOWED)]


def test_english_detector_finds_sentences() -> None:
    assert english_phrases("疑似秸秆焚烧 3 起 · fires centred here · MODIS, VIIRS") == ["fires centred here"]
    assert english_phrases("火点强度：中等 · MODIS (Aqua) · Leaflet") == []


@pytest.mark.parametrize("kind", list(CONTROLS))
def test_page_as_seen_on_phone_and_desktop(run: Path, browser: Browser, kind: str) -> None:
    page = page_of(run, kind)
    for size, (width, height, mobile) in SIZES.items():
        browser.open(page, width, height, mobile)
        seen = browser.evaluate(PROBE.replace("CONTROLS", json.dumps(CONTROLS[kind])))
        shot = artifacts() / f"{kind}-{size}.png"
        browser.screenshot(shot)
        what = f"{kind} ({page.name}) at {width}x{height}"
        assert shot.stat().st_size > 5_000, f"{what}: blank screenshot"
        assert seen["scrollWidth"] <= seen["innerWidth"], f"{what}: overflows horizontally ({seen['scrollWidth']} > {seen['innerWidth']} px)"
        if kind != "index":
            assert seen["home"], f"{what}: no visible link back to index.html"
        hidden = [c for c, ok in seen["controls"].items() if not ok]
        assert not hidden, f"{what}: not visible: {hidden}"
        english = english_phrases(seen["text"])
        assert not english, f"{what}: English shows in zh mode: {english[:8]}"


# ------------------------------------------------------------------ one set of counts, links, assignments


def test_one_set_of_counts_on_every_page(run: Path) -> None:
    import pandas as pd

    day = json.loads((run / "run.json").read_text(encoding="utf-8"))["counts"]["day"]
    report = pd.read_csv(run / "report.csv", dtype={"code": str})
    provinces = report[report["level"] == "province"]
    # report.csv sums to the day's counts (events of suspected straw burning, their fire pixels).
    assert int(provinces["straw_suspect"].sum()) == day["straw_events"] and int(provinces["straw_points"].sum()) == day["straw_fires"]
    assert day["straw_events"] > 0 and day["straw_fires"] >= day["straw_events"]
    sentence = f"疑似秸秆焚烧 {day['straw_events']} 起（{day['straw_fires']} 个火点），涉及 {day['cells_with_straw']} 个网格"
    for name in ("index.html", "map.html", "report.html", "bulletin.html"):
        assert sentence in (run / name).read_text(encoding="utf-8"), name
    supervisor = next((run / "supervisors").glob("*.html")).read_text(encoding="utf-8")
    assert sentence in supervisor and 'href="../index.html"' in supervisor


def test_every_page_links_to_index(run: Path) -> None:
    pages = [run / n for n in ("map.html", "report.html", "plan.html", "bulletin.html")]
    pages += list((run / "maps").glob("*.html")) + list((run / "supervisors").glob("*.html"))
    for page in pages:
        href = "../index.html" if page.parent != run else "index.html"
        assert f'href="{href}"' in page.read_text(encoding="utf-8"), page.relative_to(run)
        assert (page.parent / href).resolve() == (run / "index.html").resolve()
    index = (run / "index.html").read_text(encoding="utf-8")
    assert 'href="bulletin.html"' in index and 'href="supervisors/' in index


def test_sample_grid_has_supervisors_the_script_gives() -> None:
    import geopandas as gpd

    spec = importlib.util.spec_from_file_location("_assign", ROOT / "geodata" / "tools" / "assign_supervisors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    assert (grid["supervisor"] != "unassigned").all()
    assert (module.assign(grid).to_numpy() == grid["supervisor"].astype(str).to_numpy()).all()
    per = grid["supervisor"].value_counts()
    assert per.max() <= 9 and per.median() >= 2  # township-sized: a few 5 km cells each


def test_cli_version_and_yesterday_in_beijing_time(capsys: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    from pipelines import __version__
    from pipelines.run.cli import _date

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"gridwatch {__version__}"
    # 16:30 UTC on June 3 is 00:30 on June 4 in Beijing: "yesterday" is June 3 there, June 2 in UTC.
    assert _date("yesterday", dt.datetime(2022, 6, 3, 16, 30, tzinfo=dt.UTC)) == dt.date(2022, 6, 3)
    assert _date("yesterday", dt.datetime(2022, 6, 3, 15, 30, tzinfo=dt.UTC)) == dt.date(2022, 6, 2)
    assert _date("2022-06-03") == dt.date(2022, 6, 3)
