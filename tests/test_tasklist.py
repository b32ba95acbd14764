"""The per-cell task list and the run's index page, on a real nightly run of the sample data."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from test_nightly import DAY, ROOT, write_config

from pipelines.core.schema import WINDOW_COLUMNS
from pipelines.grid.chinacrs import gcj02_to_wgs84
from pipelines.publish.daycounts import day_counts
from pipelines.publish.index import index_page, write_index
from pipelines.publish.maps import cell_map, cell_map_filename, save_map
from pipelines.publish.tasklist import (
    PRIORITY,
    TASK_COLUMNS,
    TASK_CSS,
    add_task_list,
    task_list_html,
    task_rows,
)
from pipelines.run.cli import main

PAYLOAD = "<img src=x onerror=alert(1)>"
HOSTILE = f"{PAYLOAD} & \"q\" 'a' </td>"
EARTH_M = 6_371_008.8


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tasklist")
    assert main(["nightly", "--date", DAY, "--config", str(write_config(tmp)), "--quiet"]) == 0
    return tmp / "out" / DAY


@pytest.fixture(scope="module")
def tables(run: Path) -> dict[str, pd.DataFrame]:
    summary = pd.read_csv(run / "grid_summary.csv", dtype={"cell_id": str, "county_code": str, "province_code": str})
    return {
        "fires": gpd.read_parquet(run / "fires.parquet"),
        "events": gpd.read_parquet(run / "events.parquet"),
        "sites": gpd.read_parquet(run / "sites.parquet"),
        "summary": summary,
    }


@pytest.fixture(scope="module")
def all_rows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The task rows of every cell that has a map."""
    cells = tables["summary"].loc[tables["summary"]["map"].notna(), "cell_id"]
    frames = [task_rows(tables["fires"], tables["events"], tables["sites"], c) for c in cells]
    return pd.concat(frames, ignore_index=True)


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


class _Elements(HTMLParser):
    """Every element with its attributes and its whole text (what ``textContent`` gives), in document order."""

    VOID = frozenset({"meta", "br", "input", "img", "link"})  # elements without an end tag

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.open: list[tuple[str, dict[str, str | None], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = (tag, dict(attrs), [])
        self.elements.append(element)
        if tag not in self.VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, _, text in self.open:
            text.append(data)


def elements(markup: str) -> list[tuple[str, dict[str, str | None], str]]:
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return [(tag, attrs, "".join(text)) for tag, attrs, text in parser.elements]


def parse(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser


def metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * np.arcsin(np.sqrt(a))


# ------------------------------------------------------------------ rows


def test_every_cell_has_its_fires_events_and_sites(tables: dict[str, pd.DataFrame], all_rows: pd.DataFrame) -> None:
    fires, sites, summary = tables["fires"], tables["sites"], tables["summary"]
    assert list(all_rows.columns) == TASK_COLUMNS
    assert set(all_rows["cell_id"]) == set(summary.loc[summary["map"].notna(), "cell_id"])  # no cell map without a task
    for cell, rows in all_rows.groupby("cell_id"):
        centred = fires[fires["cell_id"] == cell]
        touching = fires[fires["cells_touched"].map(lambda v, c=cell: c in list(v)) & (fires["cell_id"] != cell).fillna(True)]
        events = rows[rows["kind"] == "event"]
        assert set(events.loc[events["where"] == "in_cell", "item_id"]) == set(centred["event_id"])
        assert set(events.loc[events["where"] == "touching", "item_id"]) == set(touching["event_id"]) - set(centred["event_id"])
        # Every fire on the cell map's list is referred to exactly once, by its number there.
        numbers = sorted(n for ns in events["fire_numbers"] for n in ns)
        assert numbers == list(range(1, len(centred) + len(touching) + 1))
        assert set(rows.loc[rows["kind"] == "site", "item_id"]) == set(sites.loc[sites["cell_id"] == cell, "site_id"])
        assert list(rows["no"]) == list(range(1, len(rows) + 1))
    fire_rows = all_rows[all_rows["kind"] != "site"]
    assert fire_rows["time_bjt"].str.fullmatch(r"2022-06-0[23] \d\d:\d\d").all()
    assert (fire_rows["where"] == "touching").any() and (fire_rows["where"] == "in_cell").any()
    site_rows = all_rows[all_rows["kind"] == "site"].set_index("item_id")
    firsts = sites.set_index("site_id")["first_day"].map(lambda d: pd.Timestamp(d).strftime("%Y-%m-%d"))
    assert (site_rows["time_bjt"] == firsts.reindex(site_rows.index)).all()
    assert site_rows[WINDOW_COLUMNS].isna().all().all()


def test_event_time_windows_and_place_come_from_its_pixels_in_the_cell(tables: dict[str, pd.DataFrame], all_rows: pd.DataFrame) -> None:
    fires = tables["fires"]
    checked = 0
    for rec in all_rows[(all_rows["kind"] == "event") & (all_rows["where"] == "in_cell")].to_dict("records"):
        pixels = fires[(fires["event_id"] == rec["item_id"]) & (fires["cell_id"] == rec["cell_id"])]
        first = pixels["time_utc"].min().tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M")
        assert rec["time_bjt"] == first
        assert rec["lon"] == pytest.approx(pixels["lon"].mean(), abs=1e-6)
        assert rec["lat"] == pytest.approx(pixels["lat"].mean(), abs=1e-6)
        for column in WINDOW_COLUMNS:
            flags = pixels[column].astype("boolean")
            expected = True if flags.fillna(False).any() else (None if flags.isna().all() else False)
            assert (None if pd.isna(rec[column]) else bool(rec[column])) == expected
        checked += 1
    assert checked > 50


def test_gcj02_is_the_real_offset_and_round_trips(all_rows: pd.DataFrame) -> None:
    located = all_rows.dropna(subset=["lon", "lat"])
    assert len(located) == len(all_rows) > 100
    lon, lat = located["lon"].to_numpy(float), located["lat"].to_numpy(float)
    glon, glat = located["gcj_lon"].to_numpy(float), located["gcj_lat"].to_numpy(float)
    shift = metres(lon, lat, glon, glat)
    # GCJ-02 moves points in eastern China by a few hundred metres (never zero: all are inside China).
    assert shift.min() > 100 and shift.max() < 1000, (shift.min(), shift.max())
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    # Both are rounded to 6 decimals (0.5e-6 degree each, ~5 cm); the inverse itself is exact.
    assert np.abs(back_lon - lon).max() < 1.5e-6 and np.abs(back_lat - lat).max() < 1.5e-6
    for column in ("lon", "lat", "gcj_lon", "gcj_lat"):
        assert np.allclose(located[column], located[column].round(6), rtol=0, atol=1e-12)


def test_navigation_links_are_well_formed(all_rows: pd.DataFrame) -> None:
    for rec in all_rows.to_dict("records"):
        amap = urlsplit(rec["amap_url"])
        assert (amap.scheme, amap.netloc, amap.path) == ("https", "uri.amap.com", "/marker")
        query = parse_qs(amap.query, strict_parsing=True)
        assert {k: v[0] for k, v in query.items()} == {
            "position": f"{rec['gcj_lon']:.6f},{rec['gcj_lat']:.6f}",
            "name": rec["name"],
            "src": "gridwatch",
            "coordinate": "gaode",
            "callnative": "1",
        }
        assert re.fullmatch(r"[A-Za-z0-9%._~-]+", re.search(r"name=([^&]*)", rec["amap_url"]).group(1))
        assert rec["name"].startswith(f"任务{rec['no']} ")
        point = f"{rec['lat']:.6f},{rec['lon']:.6f}"
        assert rec["geo_url"] == f"geo:{point}?q={point}"


def test_priority_order(tables: dict[str, pd.DataFrame]) -> None:
    """Real events of every category and real sites of every rule, put into one cell."""
    fires, events, sites = tables["fires"].copy(), tables["events"], tables["sites"].copy()
    target = str(events["cell_id"].dropna().iloc[0])
    by_event = fires.groupby("event_id")
    window_any = by_event[WINDOW_COLUMNS].agg(lambda s: bool(s.astype("boolean").fillna(False).any())).any(axis=1)
    straw = events.set_index("event_id")["category"] == "straw_suspect"
    picks = {
        "straw_window": window_any[straw & window_any].index[:2],
        "straw_suspect": window_any[straw & ~window_any].index[:2],
        **{c: events.loc[events["category"] == c, "event_id"].iloc[:2] for c in ("industrial", "other_vegetation", "other")},
    }
    assert all(len(p) for p in picks.values()), {k: len(v) for k, v in picks.items()}
    chosen = [e for p in picks.values() for e in p]
    moved = fires["event_id"].isin(chosen)
    fires.loc[moved, "cell_id"] = target
    fires = fires[moved | (fires["cell_id"] != target)]
    sites["cell_id"] = target
    assert set(sites["rule"]) == {"resurgence", "noncompliance", "unregistered_load", "stopped"}

    rows = task_rows(fires, events, sites, target)
    assert list(rows["priority"]) == sorted(rows["priority"])
    groups = [k for k in PRIORITY if k in set(picks) | {f"site:{r}" for r in sites["rule"]}]
    seen = [next(k for k, v in PRIORITY.items() if v == p) for p in rows["priority"]]
    assert list(dict.fromkeys(seen)) == groups
    straw_rows = rows[rows["category"] == "straw_suspect"]
    assert (straw_rows["priority"] == 1).tolist() == [
        any(r[c] is True for c in WINDOW_COLUMNS) for r in straw_rows.astype(object).to_dict("records")
    ]
    assert rows.loc[rows["kind"] == "site", "rule"].iloc[0] == "resurgence"
    assert rows["category"].iloc[-1] == "industrial"  # heat sources last (no persistent fire in the sample)


def test_a_real_site_cell_lists_resurgence_before_stopped(tables: dict[str, pd.DataFrame]) -> None:
    sites = tables["sites"]
    cell = sites.groupby("cell_id")["rule"].apply(lambda r: {"resurgence", "stopped"} <= set(r)).idxmax()
    rows = task_rows(tables["fires"], tables["events"], sites, cell)
    rules = list(rows.loc[rows["kind"] == "site", "rule"])
    assert rules.index("resurgence") < rules.index("stopped")
    assert rows.loc[rows["rule"] == "resurgence", "label_en"].iloc[0] == "electricity rule: closed site running again"


def test_a_cell_with_nothing_has_an_empty_list(tables: dict[str, pd.DataFrame]) -> None:
    summary = tables["summary"]
    quiet = summary.loc[summary["map"].isna(), "cell_id"].iloc[0]
    rows = task_rows(tables["fires"], tables["events"], tables["sites"], quiet)
    assert rows.empty and list(rows.columns) == TASK_COLUMNS
    assert "nothing to check today" in task_list_html(rows)
    assert task_rows(None, None, None, quiet).empty


# ------------------------------------------------------------------ HTML


def _payload_frames(tables: dict[str, pd.DataFrame]) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    fires, sites = tables["fires"].copy(), tables["sites"].copy()
    cell = str(sites.loc[sites["rule"] == "resurgence", "cell_id"].iloc[0])  # its link names the rule
    for column in ("name", "address", "evidence", "industry"):
        sites[column] = PAYLOAD
    # A fire centred in a neighbour, touching the cell: its neighbour's name is shown.
    donor = fires.index[fires["cell_id"].notna()][0]
    fires.loc[donor, "cells_touched"] = [*fires.loc[donor, "cells_touched"], cell]
    fires.loc[donor, "cell_name"] = PAYLOAD
    fires.loc[donor, "reason"] = PAYLOAD
    return cell, fires, sites


def test_task_list_escapes_data(tables: dict[str, pd.DataFrame]) -> None:
    cell, fires, sites = _payload_frames(tables)
    events = tables["events"].copy()
    events["reason"] = PAYLOAD
    rows = task_rows(fires, events, sites, cell)
    assert (rows["where"] == "touching").any() and (rows["kind"] == "site").any()
    markup = task_list_html(rows, heading=PAYLOAD)
    parsed = parse(markup)
    assert not [t for t, _ in parsed.tags if t in ("img", "script")]
    assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert sum(PAYLOAD in t for t in parsed.text) >= 5  # heading, neighbour, name, address, evidence... as text
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert hrefs and all(urlsplit(h).scheme in ("https", "geo") for h in hrefs)
    assert any(unquote(parse_qs(urlsplit(h).query)["name"][0]).endswith(f"{PAYLOAD}（死灰复燃）") for h in hrefs if h.startswith("https:"))
    # A link that is not https: or geo: is never written.
    evil = rows.copy()
    evil["amap_url"] = "javascript:alert(1)"
    evil["geo_url"] = "data:text/html,<script>alert(1)</script>"
    markup = task_list_html(evil)
    assert "javascript:" not in markup and "data:" not in markup


def test_a_hostile_site_and_neighbour_name_is_text_where_it_belongs(tables: dict[str, pd.DataFrame]) -> None:
    """The template escapes <, &, " and ' : each value is the exact text of its element, nothing else is made of it."""
    cell, fires, sites = _payload_frames(tables)
    sites["name"] = HOSTILE
    fires.loc[fires["cell_name"] == PAYLOAD, "cell_name"] = HOSTILE
    rows = task_rows(fires, tables["events"], sites, cell)
    markup = task_list_html(rows, heading=HOSTILE)
    found = elements(markup)
    assert {tag for tag, _, _ in found} == {"section", "h2", "p", "div", "table", "thead", "tbody", "tr", "th", "td", "br", "span", "a"}
    assert next(text for tag, _, text in found if tag == "h2") == f"今日核查任务 Tasks to check today · {HOSTILE} · {len(rows)} 项 item(s)"
    touching = [text for tag, a, text in found if tag == "span" and a.get("class") == "gw-touching"]
    assert touching == [f"邻格像元触及 touching, centred in {HOSTILE}"]
    details = [text for tag, a, text in found if tag == "td" and a.get("class") == "gw-detail"]
    assert sum(text.startswith(HOSTILE + PAYLOAD) for text in details) == int((rows["kind"] == "site").sum())  # name, address...
    # Each row keeps its seven cells, each labelled for the phone layout.
    cells = [a for tag, a, _ in found if tag == "td"]
    assert len(cells) == 7 * len(rows) and all(a["data-label"] for a in cells)


def test_task_list_on_the_cell_map_and_in_print(run: Path, tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    fires, events, sites = tables["fires"], tables["events"], tables["sites"]
    cell = str(fires["cell_id"].value_counts().index[0])
    m = cell_map(cell, fires, grid, title="gridwatch", tiles=None, events=events, sites=sites)
    rows = add_task_list(m, fires, events, sites, cell, heading=PAYLOAD)
    add_task_list(m, fires, events, sites, cell, heading=PAYLOAD)  # again: replaces, not duplicates
    save_map(m, tmp_path / "cell.html", inline=True)  # refuses pages that fetch anything
    page = (tmp_path / "cell.html").read_text(encoding="utf-8")
    assert page.count('<section class="gw-tasks"') == 1 and page.count(TASK_CSS) == 1
    # Shared: the list's styles are one file beside the maps, loaded once.
    save_map(m, tmp_path / "maps" / "cell.html", static=tmp_path / "static")
    shared = (tmp_path / "maps" / "cell.html").read_text(encoding="utf-8")
    assert shared.count('<link rel="stylesheet" href="../static/gridwatch-tasks.css">') == 1 and TASK_CSS not in shared
    assert (tmp_path / "static" / "gridwatch-tasks.css").read_text(encoding="utf-8") == TASK_CSS
    assert re.search(r'<div class="(?:folium-map|gw-map)"', page).start() < page.index('<section class="gw-tasks"')  # under the map
    assert len(rows) and f"{len(rows)} 项 item(s)" in page
    print_css = TASK_CSS[TASK_CSS.index("@media print"):]
    assert ".leaflet-control-container" in print_css and "size: A4" in print_css
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_languages(tables: dict[str, pd.DataFrame], all_rows: pd.DataFrame) -> None:
    rows = all_rows[all_rows["cell_id"] == all_rows["cell_id"].iloc[0]]
    zh, en, both = (task_list_html(rows, language=lang) for lang in ("zh", "en", "both"))
    assert "今日核查任务" in zh and "Tasks to check today" not in zh and "suspected straw burning" not in zh
    assert "Tasks to check today" in en and "今日核查任务" not in en and "疑似秸秆焚烧" not in en and 'lang="en"' in en
    assert "今日核查任务 Tasks to check today" in both
    summary = tables["summary"][tables["summary"]["map"].notna()]
    page_zh = index_page(summary, day=DAY, title="t", language="zh", fires=tables["fires"])
    page_en = index_page(summary, day=DAY, title="t", language="en", fires=tables["fires"])
    assert "个网格有地图" in page_zh and "cells with a map" not in page_zh
    assert "cells with a map" in page_en and "个网格有地图" not in page_en and "打开地图" not in page_en
    with pytest.raises(ValueError):
        task_list_html(rows, language="fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        index_page(summary, day=DAY, title="t", language="de")  # type: ignore[arg-type]


# ------------------------------------------------------------------ index page


def test_index_lists_every_cell_map_and_its_links_exist(run: Path, tables: dict[str, pd.DataFrame]) -> None:
    summary, fires = tables["summary"], tables["fires"]
    path = write_index(run / "index.html", summary, day=DAY, title=f"gridwatch {DAY}", fires=fires, events=tables["events"])
    assert path == run / "index.html" and not list(run.glob(".index.html*"))
    page = path.read_text(encoding="utf-8")
    parsed = parse(page)
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    map_links = {h for h in hrefs if h.startswith("maps/")}
    on_disk = {f"maps/{p.name}" for p in (run / "maps").glob("*.html")}
    assert map_links == on_disk and len(on_disk) > 100
    assert map_links == {f"maps/{cell_map_filename(c)}" for c in summary.loc[summary["map"].notna(), "cell_id"]}
    assert {"map.html", "report.html", "plan.html"} <= set(hrefs)
    assert all((run / unquote(h)).is_file() for h in hrefs)
    # Offline: nothing fetched.
    assert not [a for t, a in parsed.tags if "src" in a or (t == "link" and "href" in a)]
    rows = [a for t, a in parsed.tags if t == "tr" and "data-county" in a]
    assert len(rows) == len(on_disk)
    # The counts shown add up to the tables'.
    listed = set(summary.loc[summary["map"].notna(), "cell_id"])
    straw = int(((fires["category"] == "straw_suspect") & fires["cell_id"].isin(listed)).sum())
    assert f"{straw} 疑似秸秆焚烧火点 suspected straw-burning fire pixels" in page
    assert f"{int(summary['fires'].sum())} 火点 fires" in page
    # With the day's counts, the page opens with them (and does not repeat its own fire totals).
    counts = day_counts(fires, tables["events"])
    page = index_page(summary, day=DAY, title="t", fires=fires, events=tables["events"], counts=counts)
    assert counts.headline("both") in page and f"{int(summary['fires'].sum())} 火点 fires" not in page
    assert DAY in page


def test_index_escapes_data_and_refuses_absolute_links(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    summary = tables["summary"][tables["summary"]["map"].notna()].copy()
    first = summary.index[0]
    for column in ("cell_name", "county_name", "supervisor"):
        summary.loc[first, column] = PAYLOAD
    page = index_page(summary, day=DAY, title=PAYLOAD, extra={PAYLOAD: "map.html"})
    parsed = parse(page)
    assert not [t for t, _ in parsed.tags if t == "img"] and "<img" not in page
    assert sum(PAYLOAD in t for t in parsed.text) >= 5  # title, heading, top link, cell, county, supervisor
    row = next(a for t, a in parsed.tags if t == "tr" and a.get("data-county") == PAYLOAD)
    assert row["data-supervisor"] == PAYLOAD  # the attribute holds the text, escaped in the file
    for bad in ("javascript:alert(1)", "https://example.com/x.html", "/etc/passwd"):
        with pytest.raises(ValueError):
            index_page(summary, {summary.loc[first, "cell_id"]: bad}, day=DAY, title="t")
        with pytest.raises(ValueError):
            index_page(summary, day=DAY, title="t", extra={"x": bad})


def test_a_hostile_cell_name_is_text_where_it_belongs(tables: dict[str, pd.DataFrame]) -> None:
    """A cell, county, supervisor, title, link label and notice of <, &, " and ' are each the exact text of their element."""
    summary = tables["summary"][tables["summary"]["map"].notna()].copy()
    first = summary.index[0]
    for column in ("cell_name", "county_name", "supervisor"):
        summary[column] = summary[column].astype(object)
        summary.loc[first, column] = HOSTILE
    page = index_page(summary, day=DAY, title=HOSTILE, extra={HOSTILE: "map.html"}, notices=[("warn", HOSTILE)],
                      supervisor_links={HOSTILE: "supervisors/x.html"})
    found = elements(page)
    assert [t for t, _, _ in found if t in ("img", "script")] == ["script"]  # the page's own script, nothing from the data
    texts = {tag: [text for t, _, text in found if t == tag] for tag in ("title", "h1", "li")}
    assert texts == {"title": [HOSTILE], "h1": [HOSTILE], "li": [HOSTILE]}
    nav = [(a["href"], text) for t, a, text in found if t == "a" and a["href"] in ("map.html", "supervisors/x.html")]
    assert ("map.html", HOSTILE) in nav and nav.count(("supervisors/x.html", HOSTILE)) == 2  # listed at the top, and in its row
    index = next(i for i, (t, a, _) in enumerate(found) if t == "tr" and a.get("data-county") == HOSTILE)
    row = found[index]
    assert row[1]["data-supervisor"] == HOSTILE
    cells = [text for t, _, text in found[index + 1:] if t == "td"][:5]
    cell_id = str(summary.loc[first, "cell_id"])
    assert cells[0] == HOSTILE + cell_id and cells[3] == HOSTILE and cells[4] == HOSTILE
    assert HOSTILE + cell_id in row[2]  # what the page's search looks in


def test_write_index_leaves_out_missing_top_links(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    (tmp_path / "map.html").write_text("x", encoding="utf-8")
    summary = tables["summary"]
    path = write_index(tmp_path / "index.html", summary, day=DAY, title="t")
    hrefs = [a["href"] for t, a in parse(path.read_text(encoding="utf-8")).tags if t == "a"]
    assert "map.html" in hrefs and "report.html" not in hrefs and "plan.html" not in hrefs
    # Without fires the straw counts are unknown, not zero.
    straw = [a for t, a in parse(path.read_text(encoding="utf-8")).tags if t == "td" and "straw" in (a.get("class") or "")]
    assert straw and all(a["data-v"] == "-1" for a in straw)
