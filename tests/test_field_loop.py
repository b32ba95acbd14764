"""The field loop end to end: a night's alerts, marks made in the page, imported, and the next night.

Two real nights (FIRMS MODIS, 2022-05-30 and 05-31) over four counties of the sample grid
(滦南县, 历城区, 东昌府区, 任城区: seconds each). Night 1 sends its messages to a local
HTTP server standing in for the WeCom and DingTalk robots and to a local SMTP server
(aiosmtpd); supervisors mark tasks on their pages in headless Chromium (offline, from
the files) and export; the files are imported (and broken, replayed or foreign ones
refused); night 2 shows the report's verification columns and masks the fire that
returned 0.8 km from the place marked "another heat source". ``gridwatch serve`` is
tested with a real HTTP client and with the page's own post from Chromium.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pytest
import test_nightly as nightly

from pipelines.field.marks import supervisor_token
from pipelines.field.store import VerificationStore
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from pipelines.testing import CHROMIUM

ROOT = Path(__file__).resolve().parent.parent
NIGHT1, NIGHT2 = "2022-05-30", "2022-05-31"
COUNTIES = ["130224", "370112", "371502", "370811"]
SECRET = "test-secret-of-the-unit"
# Tasks of night 1 (events, cells, supervisors as the sample grid assigns them).
HEAT = SimpleNamespace(supervisor="滦南县网格员13", cell="130224_E1135_N4310", item="E2aab6e4e89070bac")  # fires again on 05-31, 0.76 km away
STRAW = SimpleNamespace(supervisor="历城区网格员4", cell="370112_E1065_N4000", item="E2ea672dbcdccd8e7")
NOTE = '<img src=x onerror="document.title=1">砖窑 kiln & 烟囱'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Robots(BaseHTTPRequestHandler):
    """Stands in for the WeCom and DingTalk robots: records each post; the first WeCom post fails (a retry must follow)."""

    posts: list[dict] = []
    failed_once = False

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8"))
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/wecom" and not Robots.failed_once:
            Robots.failed_once = True
            self.send_response(502)
            self.end_headers()
            return
        Robots.posts.append({"path": url.path, "query": dict(urllib.parse.parse_qsl(url.query)), "body": body})
        reply = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    from aiosmtpd.controller import Controller

    tmp = tmp_path_factory.mktemp("field")
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    grid[grid["county_code"].isin(COUNTIES)].to_parquet(tmp / "grid.parquet")
    (tmp / "contacts.csv").write_text(
        "name,role,county_code,email,mobile\n"
        f"{HEAT.supervisor},supervisor,130224,luannan13@example.cn,13800000013\n"
        "滦南县农业农村局,county,130224,luannan@example.cn,\n"
        "值班员,operator,,duty@example.cn,\n", encoding="utf-8")
    config = nightly.write_config(tmp, rasters=[], grid=str(tmp / "grid.parquet"), without="electricity")
    robots = ThreadingHTTPServer(("127.0.0.1", 0), Robots)
    threading.Thread(target=robots.serve_forever, daemon=True).start()
    mails: list = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's hook
            mails.append(envelope)
            return "250 OK"

    smtp = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    text = config.read_text(encoding="utf-8")
    alerts = (f'[alerts]\nenabled = true\ncontacts = "{tmp}/contacts.csv"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\n'
              'smtp_security = "none"\nmail_from = "gridwatch@example.cn"\nretries = 2\nbackoff_s = 0.05\ntimeout_s = 5.0\n'
              'per_minute = 100\n')
    start, end = text.index("[alerts]"), text.index("[verification]")
    config.write_text(text[:start] + alerts + "\n" + text[end:], encoding="utf-8")
    port = robots.server_address[1]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRIDWATCH_WECOM_WEBHOOK", f"http://127.0.0.1:{port}/wecom?key=test-key")
        env.setenv("GRIDWATCH_DINGTALK_WEBHOOK", f"http://127.0.0.1:{port}/dingtalk?access_token=test-token")
        env.setenv("GRIDWATCH_DINGTALK_SECRET", "SECtest")
        env.setenv("GRIDWATCH_VERIFY_SECRET", SECRET)
        env.delenv("GRIDWATCH_SMTP_USER", raising=False)
        assert main(["nightly", "--date", NIGHT1, "--config", str(config), "--quiet"]) == EXIT_OK
        yield SimpleNamespace(tmp=tmp, config=config, out=tmp / "out", night1=tmp / "out" / NIGHT1, mails=mails,
                              store=VerificationStore(tmp / "out" / "state" / "verification.sqlite"), port=port)
    smtp.stop()
    robots.shutdown()


def test_night_alerts_reach_robots_and_mail(site: SimpleNamespace) -> None:
    index = json.loads((site.night1 / "supervisors" / "tasks.json").read_text(encoding="utf-8"))["supervisors"]
    with_new = [n for n, p in index.items() if any(t["new"] for t in p["tasks"])]
    report = pd.read_csv(site.night1 / "report.csv", dtype={"code": str})
    counties = report[(report["level"] == "county") & (report["straw_suspect"] > 0)]
    wecom = [p for p in Robots.posts if p["path"] == "/wecom"]
    ding = [p for p in Robots.posts if p["path"] == "/dingtalk"]
    assert len(wecom) == len(ding) == len(with_new) + len(counties) > 0  # fire data was there: no operator message
    # WeCom: a text message, Chinese first, Beijing time, the place, the page; the contact's mobile @-mentioned.
    heat = next(p["body"] for p in wecom if p["body"]["text"]["content"].startswith(f"【秸秆焚烧核查任务】{HEAT.supervisor}"))
    assert heat["msgtype"] == "text" and heat["text"]["mentioned_mobile_list"] == ["13800000013"]
    content = heat["text"]["content"]
    assert "2022-05-30 02:19" in content and "滦南县" in content and "39.4371" in content and "supervisors/" in content
    assert len(content.encode("utf-8")) <= 2048
    # DingTalk: signed as the robot checks it (HMAC-SHA256 of "<ms>\n<secret>", Base64).
    for post in ding:
        stamp, sign = post["query"]["timestamp"], post["query"]["sign"]
        expected = base64.b64encode(hmac.new(b"SECtest", f"{stamp}\nSECtest".encode(), hashlib.sha256).digest()).decode()
        assert sign == expected and post["body"]["msgtype"] == "text" and post["body"]["at"]["isAtAll"] is False
    # Mail only to contacts with an address: the supervisor and the county official (the operator had nothing to hear).
    assert sorted(m.rcpt_tos[0] for m in site.mails) == ["luannan13@example.cn", "luannan@example.cn"]
    assert "滦南县" in site.mails[0].content.decode("utf-8", "replace") or "=?utf-8?" in site.mails[0].content.decode()
    # Every send in run.json; the robot that failed once was retried.
    sends = json.loads((site.night1 / "run.json").read_text(encoding="utf-8"))["alerts"]
    assert {s["status"] for s in sends} == {"sent"} and len(sends) == len(wecom) + len(ding) + 2
    assert max(s["attempts"] for s in sends if s["channel"] == "wecom") == 2


def test_alerts_are_sent_once(site: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    before = len(Robots.posts), len(site.mails)
    assert main(["alerts", "--date", NIGHT1, "--config", str(site.config), "--quiet"]) == EXIT_OK
    assert (len(Robots.posts), len(site.mails)) == before
    sends = json.loads((site.night1 / "run.json").read_text(encoding="utf-8"))["alerts"]
    assert sends[-1]["status"] == "already_sent"
    # The dry run prints what would go out, Chinese first, and sends nothing.
    assert main(["alerts", "--date", NIGHT1, "--config", str(site.config), "--dry-run", "--quiet"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "试运行 dry run" in printed and f"【秸秆焚烧核查任务】{HEAT.supervisor}" in printed and "北京时间" in printed
    assert (len(Robots.posts), len(site.mails)) == before


def test_missing_fire_data_alerts_the_operator(site: SimpleNamespace) -> None:
    text = site.config.read_text(encoding="utf-8").replace(f'points = ["{ROOT}/geodata/fires/*.csv"]',
                                                           f'points = ["{site.tmp}/none/FIRMS_{{date:%Y%m%d}}.csv"]')
    config = site.tmp / "missing.toml"
    config.write_text(text.replace(f'dir = "{site.tmp}/out"', f'dir = "{site.tmp}/out-missing"'), encoding="utf-8")
    before = len(site.mails)
    assert main(["nightly", "--date", NIGHT1, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    new = site.mails[before:]
    assert [m.rcpt_tos for m in new] == [["duty@example.cn"]]
    assert any("火点数据缺失" in p["body"]["text"]["content"] for p in Robots.posts if p["path"] == "/wecom")


# ------------------------------------------------------------------ marking in the page, importing


def _browser(tmp: Path, loopback: bool = False):
    """test_pages_seen's offline Chromium; ``loopback``: 127.0.0.1 reachable (for `gridwatch serve`), every name still not."""
    import test_pages_seen

    if not loopback:
        return test_pages_seen.Browser(tmp)
    flags = tuple(f + ", EXCLUDE 127.0.0.1" if f.startswith("--host-resolver-rules=") else f for f in test_pages_seen.OFFLINE_FLAGS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_pages_seen, "OFFLINE_FLAGS", flags)
        return test_pages_seen.Browser(tmp)


MARK = """
(() => {
  const li = [...document.querySelectorAll('li[data-item]')].find(l => l.dataset.item === ITEM && l.dataset.cell === CELL);
  li.querySelector('input.gw-note').value = NOTE;
  li.querySelector('input[type=radio][value="RESULT"]').click();
  const shown = li.querySelector('.gw-marked');
  return {html: shown.innerHTML, text: shown.textContent, img: document.querySelectorAll('.gw-marked img').length,
          done: li.classList.contains('gw-done'), title: document.title};
})()
"""


def mark_and_export(browser, page: Path, marks: list[tuple[SimpleNamespace, str, str]], downloads: Path) -> Path:
    browser.call("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.open(page, 1280, 800, False)
    for task, result, note in marks:
        script = (MARK.replace("ITEM", json.dumps(task.item)).replace("CELL", json.dumps(task.cell))
                  .replace("NOTE", json.dumps(note)).replace("RESULT", result))
        seen = browser.evaluate(script)
        assert seen["done"] and seen["img"] == 0 and seen["title"] != "1"
        assert note in seen["text"]
        if "<" in note:
            assert "&lt;img" in seen["html"]  # the note is text, never markup
    # Offline and reopened: the marks are still there (localStorage). Chromium's renderer hands
    # localStorage writes on asynchronously; a page replaced within milliseconds of its last write can
    # lose it on a busy machine (a person takes longer than that), so the page stays open a moment.
    browser.evaluate("new Promise(r => setTimeout(r, 1500))")
    for _ in range(10):
        browser.open(page, 1280, 800, False)
        kept = browser.evaluate("document.querySelectorAll('li.gw-done input[type=radio]:checked').length")
        if kept == len(marks):
            break
        time.sleep(0.5)
    assert kept == len(marks)
    before = set(downloads.glob("*.json"))
    browser.evaluate("document.getElementById('gw-export').click()")
    for _ in range(100):
        new = set(downloads.glob("*.json")) - before
        if new:
            return new.pop()
        time.sleep(0.1)
    raise AssertionError("no file exported")


@pytest.fixture(scope="module")
def exported(site: SimpleNamespace) -> dict[str, Path]:
    if not CHROMIUM.exists():
        pytest.skip("needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)")
    index = json.loads((site.night1 / "supervisors" / "tasks.json").read_text(encoding="utf-8"))["supervisors"]
    downloads = site.tmp / "downloads"
    downloads.mkdir()
    browser = _browser(site.tmp)
    try:
        heat = mark_and_export(browser, site.night1 / index[HEAT.supervisor]["page"], [(HEAT, "other_heat", NOTE)], downloads)
        straw = mark_and_export(browser, site.night1 / index[STRAW.supervisor]["page"], [(STRAW, "confirmed", "已制止，农户承认")],
                                downloads)
    finally:
        browser.close()
    return {"heat": heat, "straw": straw}


def test_marks_exported_from_the_page(exported: dict[str, Path]) -> None:
    payload = json.loads(exported["heat"].read_text(encoding="utf-8"))
    assert payload["gridwatch_marks"] == 1 and payload["day"] == NIGHT1 and payload["supervisor"] == HEAT.supervisor
    assert payload["token"] == supervisor_token(SECRET.encode(), HEAT.supervisor)
    (mark,) = payload["marks"]
    assert (mark["cell_id"], mark["item_id"], mark["result"], mark["note"]) == (HEAT.cell, HEAT.item, "other_heat", NOTE)
    assert dt.datetime.fromisoformat(mark["marked_utc"].replace("Z", "+00:00")) <= dt.datetime.now(dt.UTC)


def _forged(site: SimpleNamespace, path: Path, name: str, edit) -> Path:  # noqa: ANN001
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["export_id"] = hashlib.sha256(name.encode()).hexdigest()[:32]
    edit(payload)
    out = site.tmp / name
    out.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def imported(site: SimpleNamespace, exported: dict[str, Path]) -> SimpleNamespace:
    args = ["--config", str(site.config), "--quiet"]
    assert main(["verify", "import", str(exported["heat"]), str(exported["straw"]), *args]) == EXIT_OK
    stored = site.store.marks()
    # Refused whole, with the reason, and nothing changes: a replay, a wrong token, another supervisor's task,
    # a malformed file, too large a file.
    bad = {
        "replay": exported["heat"],
        "token": _forged(site, exported["heat"], "token.json", lambda p: p.update(token="0" * 32)),
        "foreign": _forged(site, exported["heat"], "foreign.json", lambda p: p["marks"][0].update(cell_id=STRAW.cell, item_id=STRAW.item)),
        "result": _forged(site, exported["heat"], "result.json", lambda p: p["marks"][0].update(result="burnt")),
        "extra": _forged(site, exported["heat"], "extra.json", lambda p: p["marks"][0].update(html="<b>")),
        "future": _forged(site, exported["heat"], "future.json", lambda p: p["marks"][0].update(marked_utc="2099-01-01T00:00:00Z")),
    }
    (site.tmp / "broken.json").write_bytes(exported["heat"].read_bytes()[:-20])
    (site.tmp / "large.json").write_bytes(b" " * (300 * 1024) + exported["straw"].read_bytes())
    bad |= {"broken": site.tmp / "broken.json", "large": site.tmp / "large.json"}
    messages = {}
    for name, path in bad.items():
        assert main(["verify", "import", str(path), *args]) == EXIT_FAILED, name
    pd.testing.assert_frame_equal(site.store.marks(), stored)
    return SimpleNamespace(stored=stored, messages=messages)


def test_import_stores_the_marks_and_refuses_the_rest(site: SimpleNamespace, imported: SimpleNamespace,
                                                      exported: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    stored = imported.stored.set_index("item_id")
    assert set(stored.index) == {HEAT.item, STRAW.item}
    assert stored.loc[HEAT.item, "result"] == "other_heat" and stored.loc[HEAT.item, "note"] == NOTE
    assert stored.loc[HEAT.item, "category"] == "straw_suspect" and abs(stored.loc[HEAT.item, "lat"] - 39.4371) < 0.01
    assert len(site.store.imports()) == 2
    main(["verify", "import", str(exported["heat"]), "--config", str(site.config)])
    assert "already imported" in capsys.readouterr().err


def test_next_night_reports_verification_and_masks(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    assert main(["nightly", "--date", NIGHT2, "--config", str(site.config), "--quiet"]) == EXIT_OK
    night2 = site.out / NIGHT2
    report = pd.read_csv(night2 / "report.csv", dtype={"code": str})
    assert {"verified", "confirmed", "false_alarm", "verification_rate"} <= set(report.columns)
    provinces = report[report["level"] == "province"]
    assert (provinces["verified"].sum(), provinces["confirmed"].sum(), provinces["false_alarm"].sum()) == (2, 1, 1)
    county = report[(report["level"] == "county") & (report["code"] == "130224")].iloc[0]
    assert (county["previous_day"], county["verified"], county["false_alarm"], county["verification_rate"]) == (1, 1, 1, 1.0)
    # The fire back 0.76 km from the verified heat source is masked, naming the verification; the confirmed place is not.
    events = gpd.read_parquet(night2 / "events.parquet").set_index("event_id")
    masked = events.loc["Eb47dd60c4cc7efaf"]
    assert masked["category"] == "persistent" and HEAT.supervisor in masked["reason"] and "网格员核查" in masked["reason"]
    assert events.loc["E78b8b0b34eb38252", "category"] == "straw_suspect"
    assert county["straw_suspect"] == 0 and county["persistent"] == 1
    manifest = json.loads((night2 / "run.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["verification"] == {"marks_in_store": 2, "verified_places": 1, "fires_masked": 1}
    assert "核查率" in (night2 / "report.html").read_text(encoding="utf-8")


def test_pages_show_verified_tasks_as_done(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    assert main(["nightly", "--date", NIGHT1, "--config", str(site.config), "--quiet"]) == EXIT_OK  # a rerun, e.g. after late data
    index = json.loads((site.night1 / "supervisors" / "tasks.json").read_text(encoding="utf-8"))["supervisors"]
    page = (site.night1 / index[HEAT.supervisor]["page"]).read_text(encoding="utf-8")
    assert "已核查：其他热源" in page and "gw-done" in page


# ------------------------------------------------------------------ gridwatch serve


@pytest.fixture(scope="module")
def server(site: SimpleNamespace, imported: SimpleNamespace) -> Iterator[str]:
    from pipelines.core.settings import load_config
    from pipelines.field.server import make_server

    httpd = make_server(load_config(site.config), site.out, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _post(url: str, data: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_serve_pages_and_posts(site: SimpleNamespace, server: str, exported: dict[str, Path]) -> None:
    with urllib.request.urlopen(f"{server}/{NIGHT1}/index.html", timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read()
    for hidden in ("/state/verification.sqlite", "/state/verification.key", "/state/", "/", f"/{NIGHT1}/supervisors/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server + hidden, timeout=10)
        assert refused.value.code in (403, 404), hidden
    assert _post(f"{server}/verify", exported["straw"].read_bytes())[0] == 409  # replayed
    assert _post(f"{server}/verify", b"{}", "text/plain")[0] == 415
    assert _post(f"{server}/verify", b"x" * (300 * 1024))[0] == 413
    code, answer = _post(f"{server}/verify", b'{"gridwatch_marks": 1}')
    assert code == 400 and "nothing stored" in answer["message"]


def test_serve_takes_the_page_post(site: SimpleNamespace, server: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs headless Chromium")
    index = json.loads((site.night1 / "supervisors" / "tasks.json").read_text(encoding="utf-8"))["supervisors"]
    name, person = next((n, p) for n, p in index.items() if n not in (HEAT.supervisor, STRAW.supervisor) and p["tasks"])
    task = person["tasks"][0]
    browser = _browser(site.tmp, loopback=True)
    try:
        browser.call("Page.navigate", {"url": f"{server}/{NIGHT1}/{person['page']}"}, session=True)
        browser.wait_for("Page.loadEventFired")
        browser.evaluate(MARK.replace("ITEM", json.dumps(task["item_id"])).replace("CELL", json.dumps(task["cell_id"]))
                         .replace("NOTE", json.dumps("")).replace("RESULT", "no_fire"))
        browser.call("Browser.setDownloadBehavior", {"behavior": "deny"})
        browser.evaluate("document.getElementById('gw-export').click()")
        status = ""
        for _ in range(50):
            status = browser.evaluate("document.getElementById('gw-count').textContent")
            if "已保存" in status:
                break
            time.sleep(0.1)
    finally:
        browser.close()
    assert "已保存 1" in status
    stored = site.store.marks()
    assert stored.set_index("item_id").loc[task["item_id"], "result"] == "no_fire"
    assert stored.set_index("item_id").loc[task["item_id"], "supervisor"] == name
