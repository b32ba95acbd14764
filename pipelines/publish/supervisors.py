"""One page per grid supervisor (网格员): every task of their cells, in priority order, new first.

``OUT/D/supervisors/<name>.html`` is one self-contained file (styles and its one
small script inside it, no image): it can be sent in a chat and opened offline on a
phone. The script (``static/gridwatch-marks.js``) lets the supervisor mark each task
(verification, see ``pipelines.field.marks``), keeps the marks in the browser and
exports them as a small file; the page carries the supervisor's token for that.
``supervisors/tasks.json`` lists every supervisor's cells and tasks: what an imported
file's marks are checked against, and what the alerts say.
From the run's folder its links lead back to ``index.html`` and to each cell's
map; sent alone, the navigation links (Amap, ``geo:``) still work.

What "new since yesterday" means: fire events are always new (a run covers one
Beijing day, so every fire on it was seen that day); an electricity site is new
when it was not among the previous day's sites (``OUT/D-1/sites.parquet``), or,
when that run is not there, when its run of days began on the run's day. New
items come first, then the rest; within each, the task list's priority order
(``tasklist.PRIORITY``), then cell.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.outputs import write_atomic
from pipelines.core.wording import check_language, t
from pipelines.field.marks import MAX_NOTE, MAX_PHOTO, RESULTS, TASK_INDEX
from pipelines.publish.pages import check_self_contained, html_template, static_text
from pipelines.publish.tasklist import _coords, _detail_parts, _safe_url, _where_text, _window_text

log = logging.getLogger(__name__)

FOLDER = "supervisors"
UNASSIGNED = "unassigned"


def supervisor_filename(name: str) -> str:
    """A safe file name for a supervisor's page (``cell_map_filename``'s rules: ASCII slug + hash for Chinese names)."""
    from pipelines.publish.maps import cell_map_filename  # maps imports a lot; only needed here

    return cell_map_filename(name)


def _is_new(rec: Mapping[str, Any], day: dt.date, previous_sites: set[str] | None) -> bool:
    if rec["kind"] != "site":
        return True
    if previous_sites is not None:
        return str(rec["item_id"]) not in previous_sites
    return rec["time_bjt"] == day.isoformat()


def _card(rec: Mapping[str, Any], cell_label: str, map_link: str | None, language: str, new: bool,
          cell_id: str = "", done: str = "") -> dict[str, Any]:
    what = t(rec["label_zh"], rec["label_en"], language)
    where = _where_text(rec, language)
    time = rec["time_bjt"] or t("时间未知", "unknown time", language)
    if rec["kind"] == "site" and rec["time_bjt"]:
        time = t("起始", "since", language) + f" {rec['time_bjt']}"
    links = []
    for url, label in ((rec["amap_url"], t("高德导航", "Amap", language)), (rec["geo_url"], t("地图应用", "map app", language))):
        safe = _safe_url(url)
        if safe is not None:
            links.append({"href": safe, "label": label})
    if map_link:
        links.append({"href": map_link, "label": t("网格地图", "cell map", language)})
    window = "" if rec["kind"] == "site" else t("时段", "window", language) + "：" + _window_text(rec, language)
    coords = _coords(rec, language)
    return {
        "priority": int(rec["priority"]), "new": new, "what": what + (f"（{where}）" if where else ""), "cell": cell_label,
        "time": time, "window": window, "details": _detail_parts(rec, language), "coords": coords, "links": links, "no": 0,
        "cell_id": cell_id, "item_id": str(rec["item_id"]), "done": done,
        # For supervisors/tasks.json (checks of imported marks, the alerts): the task as the run saw it.
        "task": {"cell_id": cell_id, "item_id": str(rec["item_id"]), "kind": rec["kind"], "category": rec["category"],
                 "rule": rec["rule"], "label_zh": rec["label_zh"], "label_en": rec["label_en"], "time_bjt": rec["time_bjt"],
                 "where": rec["where"], "lon": _number(rec["lon"]), "lat": _number(rec["lat"]), "new": new,
                 "priority": int(rec["priority"])},
    }


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _marking(name: str, day: dt.date, token: str, language: str) -> dict[str, Any]:
    """What the page's marking controls need: labels, limits (the importer's own), the token and the script."""
    labels = {key: t(zh, en, language) for key, (zh, en) in RESULTS.items()}
    return {
        "results": list(labels.items()), "max_note": MAX_NOTE, "max_photo": MAX_PHOTO,
        "note_label": t("核查说明", "note", language), "photo_label": t("照片编号（可选）", "photo reference (optional)", language),
        "export_label": t("导出核查结果", "export marks", language),
        "script": static_text("gridwatch-marks.js", inline=True),
        "config": {"day": day.isoformat(), "supervisor": name, "token": token, "labels": labels, "max_note": MAX_NOTE,
                   "max_photo": MAX_PHOTO, "file_name": f"marks-{day.isoformat()}-{supervisor_filename(name)[:-5]}.json",
                   "count_label": t("已核查 {n}/{total} 项", "{n} of {total} marked", language),
                   "offline_label": t("未能发送，请发送导出的文件", "not sent: send the exported file", language)},
    }


def _result(result: str) -> tuple[str, str]:
    """A verification result in Chinese and English."""
    return RESULTS.get(result, (result, result))


def supervisor_page(
    name: str,
    cells: Iterable[Mapping[str, Any]],
    tasks: Callable[[str], list[dict[str, Any]]],
    *,
    day: dt.date,
    language: str = "both",
    map_links: Mapping[str, str] | None = None,
    previous_sites: set[str] | None = None,
    headline: str = "",
    token: str | None = None,
    verified: Mapping[str, tuple[str, str]] | None = None,
    tasks_out: list[dict[str, Any]] | None = None,
) -> str:
    """The page of supervisor ``name`` (HTML text).

    ``cells``: their grid cells (``cell_id``, ``cell_name``, ``county_name``);
    ``tasks(cell_id)``: the cell's task records (``tasklist.task_records``, e.g.
    ``maps.MapDay.tasks``); ``map_links``: cell id -> the cell map's path
    relative to the page; ``previous_sites``: site ids of the previous day
    (None = not known); ``headline``: the day's counts (``DayCounts.headline``);
    ``token``: the supervisor's verification token (None: no marking controls);
    ``verified``: item id -> (result, day) already verified in the store (shown as done);
    ``tasks_out``: the page's tasks are appended to it (``supervisors/tasks.json``).
    """
    check_language(language)
    links = dict(map_links or {})
    new, rest = [], []
    n_cells = 0
    for cell in cells:
        cell_id = str(cell["cell_id"])
        n_cells += 1
        label = f"{cell.get('cell_name') or cell_id}"
        for rec in tasks(cell_id):
            is_new = _is_new(rec, day, previous_sites)
            done = (verified or {}).get(str(rec["item_id"]))
            done_label = t(f"已核查：{_result(done[0])[0]}", f"verified: {_result(done[0])[1]}", language) if done else ""
            card = _card(rec, label, links.get(cell_id), language, is_new, cell_id, done_label)
            (new if is_new else rest).append((card["priority"], cell_id, rec["no"], card))
    sections = []
    for title, items in ((t("今日新增", "new today", language), new), (t("持续关注", "still open", language), rest)):
        ordered = [card for *_, card in sorted(items, key=lambda x: x[:3])]
        sections.append({"title": title, "cards": ordered})
    for no, card in enumerate((c for s in sections for c in s["cards"]), start=1):
        card["no"] = no
        if tasks_out is not None:
            tasks_out.append({**card["task"], "no": no})
    total = sum(len(s["cards"]) for s in sections)
    heading = t(f"{name} 今日核查任务", f"{name}: tasks for today", language)
    lead = t(f"{day.isoformat()}（北京时间）· {n_cells} 个网格 · {total} 项任务，新增 {len(new)} 项",
             f"{day.isoformat()} (Beijing) · {n_cells} cells · {total} tasks, {len(new)} new", language)
    page = html_template("pages/supervisor.html.j2").render(
        lang="en" if language == "en" else "zh-CN",
        title=f"{name} {day.isoformat()}",
        css=static_text("gridwatch-page.css", inline=True),
        home="../index.html",
        home_label=t("← 返回首页", "← back to index", language) if language != "both" else "← 返回首页 index",
        heading=heading,
        lead=lead,
        lines=[headline] if headline else [],
        sections=sections,
        new_label=t("新", "new", language),
        marking=_marking(name, day, token, language) if token else None,
        none_label=t("无", "none", language),
        note=t("按优先级排序：新增在前；高风险时段的疑似秸秆焚烧最先，固定与工业热源最后。坐标：WGS84 用于 GPS，GCJ-02 用于高德等国内地图。",
               "New first, then by priority: suspected straw burning in a high-risk window first, known heat sources last. "
               "Coordinates: WGS84 for GPS, GCJ-02 for Amap and other Chinese maps.", language),
    )
    check_self_contained(page, "supervisor page")
    return page


def write_supervisor_pages(
    folder: Path,
    grid: pd.DataFrame,
    cell_ids: Iterable[str],
    tasks: Callable[[str], list[dict[str, Any]]],
    *,
    day: dt.date,
    language: str = "both",
    map_links: Mapping[str, str] | None = None,
    previous_sites: set[str] | None = None,
    headline: str = "",
    tokens: Callable[[str], str] | None = None,
    verified: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, str]:
    """Write a page per supervisor with at least one cell in ``cell_ids`` (cells with a map) into ``folder/supervisors``.

    ``map_links``: cell id -> path of its map relative to ``folder``. Cells
    whose supervisor is empty or "unassigned" get no page. Returns supervisor ->
    path of the page relative to ``folder``. ``tokens``: supervisor -> verification token (the pages get
    marking controls); ``verified``: item id -> (result, day) verified before. Also writes
    ``supervisors/tasks.json`` (day; per supervisor: page, cells, tasks in the page's order).
    """
    wanted = set(map(str, cell_ids))
    cells = grid[grid["cell_id"].astype(str).isin(wanted)]
    out: dict[str, str] = {}
    links = {c: f"../{p}" for c, p in (map_links or {}).items()}
    target = Path(folder) / FOLDER
    index: dict[str, dict[str, Any]] = {}
    for name, group in cells.groupby(cells["supervisor"].astype(str), sort=True):
        if not name.strip() or name == UNASSIGNED:
            continue
        listed: list[dict[str, Any]] = []
        page = supervisor_page(name, group.sort_values("cell_id").to_dict("records"), tasks, day=day, language=language,
                               map_links=links, previous_sites=previous_sites, headline=headline,
                               token=tokens(name) if tokens else None, verified=verified, tasks_out=listed)
        path = write_atomic(target / supervisor_filename(name), page)
        out[name] = f"{FOLDER}/{path.name}"
        index[name] = {"page": out[name], "tasks": listed,
                       "cells": [{c: str(cell.get(c) or "") for c in ("cell_id", "cell_name", "county_code", "county_name")}
                                 for cell in group.sort_values("cell_id").to_dict("records")]}
    if out:
        write_atomic(Path(folder) / TASK_INDEX, json.dumps({"day": day.isoformat(), "supervisors": index}, ensure_ascii=False, indent=1))
    log.info("%d supervisor pages", len(out))
    return out
