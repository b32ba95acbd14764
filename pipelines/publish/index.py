"""``index.html`` of a nightly run: the page a supervisor opens first.

One self-contained HTML file (inline CSS and a little inline JavaScript; nothing
fetched, so it works offline from a copied folder or a phone's storage) that
lists every grid cell with a map, with its county, supervisor and counts, and
links to the cell maps and to the run's overview map, report and plan. Without
JavaScript the table is complete; with it, columns sort on a tap and the rows
can be filtered by county, supervisor or text.

Every string from data (cell names and ids, counties, supervisors, titles) is
escaped with ``html.escape``; the script reads them back with ``dataset`` and
``textContent`` and never writes markup. Links are relative paths only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pandas as pd

from pipelines.core.outputs import write_atomic
from pipelines.core.schema import WINDOW_COLUMNS
from pipelines.publish.htmltext import esc as _esc
from pipelines.publish.htmltext import text as _text
from pipelines.publish.pages import check_self_contained, static_text
from pipelines.publish.tasklist import WINDOW_NAMES, Language, _check_language, _t

__all__ = ["DEFAULT_EXTRA", "index_counts", "index_page", "write_index"]

log = logging.getLogger(__name__)

# Top links of a run folder: label (Chinese, English) -> relative path.
DEFAULT_EXTRA: dict[tuple[str, str], str] = {
    ("总览地图", "overview map"): "map.html",
    ("今日通报", "bulletin"): "bulletin.html",
    ("统计报表", "report"): "report.html",
    ("明日巡查计划", "tomorrow's patrol plan"): "plan.html",
}
WINDOW_COUNT_COLUMNS = [c.removeprefix("win_") for c in WINDOW_COLUMNS]  # as in grid_summary.csv


def _relative_link(link: str) -> str:
    """``link`` as a safe ``href``: a relative path (percent-encoded), never a scheme or an absolute path."""
    link = str(link)
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("/", "\\")):
        raise ValueError(f"index links must be relative paths, not {link!r}")
    return quote(link, safe="/#.-_~")


def index_counts(
    summary: pd.DataFrame,
    fires: pd.DataFrame | None = None,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``summary`` (``grid_summary.csv`` rows) with ``straw_suspect`` and ``straw_events`` added.

    ``straw_suspect``: fire pixels centred in the cell classified as suspected
    straw burning (``fires.category``), comparable with ``fires``;
    ``straw_events``: events of that category whose cell (``events.cell_id``, the
    cell of its first observation in a cell, as ``report.csv`` counts) is this one.
    Columns already present are kept; without the frames they are <NA>.
    """
    out = summary.copy()
    ids = out["cell_id"].astype(str)
    if "straw_suspect" not in out:
        counts = None
        if fires is not None and "category" in fires:
            straw = fires[(fires["category"] == "straw_suspect").fillna(False).to_numpy(bool) & fires["cell_id"].notna().to_numpy(bool)]
            counts = straw["cell_id"].astype(str).value_counts()
        out["straw_suspect"] = ids.map(counts).fillna(0).astype("Int64") if counts is not None else pd.array([pd.NA] * len(out), dtype="Int64")
    if "straw_events" not in out:
        counts = None
        if events is not None and "category" in events:
            straw = events[(events["category"] == "straw_suspect").fillna(False).to_numpy(bool) & events["cell_id"].notna().to_numpy(bool)]
            counts = straw["cell_id"].astype(str).value_counts()
        out["straw_events"] = ids.map(counts).fillna(0).astype("Int64") if counts is not None else pd.array([pd.NA] * len(out), dtype="Int64")
    return out


OPT_CLASS = ' class="opt"'


def _int(value: object) -> int | None:
    text = _text(value)
    if text == "":
        return None
    return int(float(text))


def _count_cell(value: object, language: Language) -> str:
    """A count as a table cell; ``data-v`` is what sorting uses (-1 = unknown, sorts last)."""
    n = _int(value)
    if n is None:
        return f'<td class="n" data-v="-1">{_esc(_t("未知", "unknown", language))}</td>'
    return f'<td class="n{" zero" if n == 0 else ""}" data-v="{n}">{n}</td>'


def _total(frame: pd.DataFrame, column: str) -> int | None:
    if column not in frame:
        return None
    values = pd.to_numeric(frame[column], errors="coerce")
    return None if values.isna().all() and len(values) else int(values.fillna(0).sum())


# Styles and script of the page: pipelines/static/gridwatch-index.css and .js, inlined (index.html opens on its own).
INDEX_CSS = static_text("gridwatch-index.css", inline=True)

# Sorting and filtering. Reads values with dataset/textContent only and builds
# options with new Option(), so no data ever reaches an HTML parser.
INDEX_JS = static_text("gridwatch-index.js", inline=True)

# Tags that would fetch something. Only tags: data is escaped (no "<" of its own
# survives), while an "@import" or "url(" in a cell name is harmless text.


def index_page(
    summary: pd.DataFrame,
    links: Mapping[str, str] | None = None,
    *,
    day: object,
    title: str,
    language: Language = "both",
    extra: Mapping[str, str] | None = None,
    fires: pd.DataFrame | None = None,
    events: pd.DataFrame | None = None,
    lines: list[str] | None = None,
    notices: list[tuple[str, str]] | None = None,
    counts: Any = None,
    supervisor_links: Mapping[str, str] | None = None,
) -> str:
    """The run's ``index.html`` as one self-contained page (UTF-8 text).

    ``summary``: ``grid_summary`` rows (``summary.SUMMARY_COLUMNS``); only the cells
    in ``links`` are listed. ``links``: cell id -> path of its map relative to the
    page (e.g. ``maps/<cell_map_filename(id)>``); None = the summary's ``map``
    column where set. ``fires``/``events``: the run's tables, for the suspected
    straw burning counts (:func:`index_counts`; a ``straw_suspect`` column in
    ``summary`` is used as is). ``day``: the run's Beijing date (shown as given,
    ``YYYY-MM-DD`` for a date). ``extra``: top links, label -> relative path;
    None = overview map, report and plan (``DEFAULT_EXTRA``). ``lines``: more
    summary lines under the title (plain text). ``notices``: ``(level, text)``
    boxes under the title, ``level`` "warn" (missing data, skipped input) or
    "info" (e.g. no fires observed). ``counts``: the day's ``daycounts.DayCounts``,
    whose sentences open the page (the numbers every page of the run shows).
    ``supervisor_links``: supervisor -> relative path of their page, linked from
    the table and listed under the top links. Fixed labels in Chinese, English
    or both. Cells are listed most suspected straw burning first, then most fires,
    most electricity sites, then by id. Raises ``ValueError`` for a link that is
    not a relative path.
    """
    _check_language(language)
    if links is None:
        maps = summary["map"] if "map" in summary else pd.Series(pd.NA, index=summary.index)
        links = {str(c): str(p) for c, p in zip(summary["cell_id"], maps, strict=True) if _text(p)}
    links = {str(c): _relative_link(p) for c, p in links.items()}
    if extra is None:
        extra = {_t(zh, en, language): path for (zh, en), path in DEFAULT_EXTRA.items()}
    top = {label: _relative_link(path) for label, path in extra.items()}

    listed = summary[summary["cell_id"].astype(str).isin(links)]
    missing = sorted(set(links) - set(listed["cell_id"].astype(str)))
    if missing:
        raise KeyError(f"links name cells not in the summary: {missing[:5]}")
    table = index_counts(listed, fires, events)
    order = pd.DataFrame({
        "straw_events": pd.to_numeric(table["straw_events"], errors="coerce").fillna(-1).to_numpy(),
        "straw": pd.to_numeric(table["straw_suspect"], errors="coerce").fillna(-1).to_numpy(),
        "fires": pd.to_numeric(table["fires"], errors="coerce").fillna(0).to_numpy(),
        "sites": pd.to_numeric(table.get("sites", 0), errors="coerce").fillna(0).to_numpy() if "sites" in table else 0,
        "id": table["cell_id"].astype(str).to_numpy(),
    })
    table = table.iloc[order.sort_values(["straw_events", "straw", "fires", "sites", "id"], ascending=[False, False, False, False, True],
                                         kind="stable").index]
    people = {str(k): _relative_link(v) for k, v in (supervisor_links or {}).items()}

    columns: list[tuple[str, str, str]] = [  # (key, label, type: s = text, n = number, "" = no sorting)
        ("cell", _t("网格", "cell", language), "s"),
        ("map", _t("地图", "map", language), ""),
        ("straw", _t("疑似秸秆焚烧 起（火点）", "suspected straw burning: events (fire pixels)", language), "n"),
        ("county", _t("区县", "county", language), "s"),
        ("supervisor", _t("网格员", "supervisor", language), "s"),
        ("fires", _t("全部火点", "all fire pixels", language), "n"),
        *((w, _t(*WINDOW_NAMES[f"win_{w}"], language), "n") for w in WINDOW_COUNT_COLUMNS),
        ("touching", _t("邻格触及", "touching", language), "n"),
        ("sites", _t("用电异常", "electricity sites", language), "n"),
        ("observed", _t("卫星观测", "observed", language), "s"),
    ]
    # Columns a phone held upright leaves out (they stay in the overview and the cell maps).
    optional = {"touching", "observed", *WINDOW_COUNT_COLUMNS}
    head = "".join(
        f'<th scope="col" data-type="{kind}"{OPT_CLASS if key in optional else ""}>'
        + (f"<button type=\"button\">{_esc(label)}</button>" if kind else _esc(label)) + "</th>"
        for key, label, kind in columns
    )
    open_label = _t("打开地图", "open map", language)
    body = []
    for rec in table.to_dict("records"):
        cell_id = str(rec["cell_id"])
        county = _text(rec.get("county_name")) or _text(rec.get("county_code"))
        supervisor = _text(rec.get("supervisor"))
        straw = _int(rec.get("straw_events"))
        pixels = _int(rec.get("straw_suspect"))
        person = f'<a href="{_esc(people[supervisor])}">{_esc(supervisor)}</a>' if supervisor in people else _esc(supervisor)
        cells = [
            (
                f'<td class="cell"><a href="{_esc(links[cell_id])}">{_esc(_text(rec.get("cell_name"), cell_id))}</a>'
                f"<small>{_esc(cell_id)}</small></td>"
            ),
            f'<td class="map"><a href="{_esc(links[cell_id])}">{_esc(open_label)}</a></td>',
            (f'<td class="n straw" data-v="{-1 if straw is None else straw}">{_esc("—" if straw is None else straw)}'
             f'{"" if pixels is None else f"<small>（{pixels}）</small>"}</td>'),
            f"<td>{_esc(county)}</td>",
            f"<td>{person}</td>",
            _count_cell(rec.get("fires"), language),
            *(_count_cell(rec.get(w), language).replace("<td ", '<td data-opt="1" ', 1) for w in WINDOW_COUNT_COLUMNS),
            _count_cell(rec.get("fires_touching"), language).replace("<td ", '<td data-opt="1" ', 1),
            _count_cell(rec.get("sites"), language),
            f'<td data-opt="1">{_esc(_observed(rec, language))}</td>',
        ]
        hot = ' class="hot"' if straw else ""
        body.append(f'<tr{hot} data-county="{_esc(county)}" data-supervisor="{_esc(supervisor)}">{"".join(cells)}</tr>')
    if not body:
        body.append(f'<tr><td colspan="{len(columns)}">{_esc(_t("今日无网格地图", "no cell maps today", language))}</td></tr>')

    day_text = day.isoformat() if hasattr(day, "isoformat") else _text(day)
    summary_line = _summary_line(table, language, counted=counts is not None)
    paragraphs = [
        _t("运行日期（北京时间）", "run date (Beijing)", language) + f" {day_text}",
        *((counts.headline(language), counts.detail(language)) if counts is not None else ()),
        summary_line,
        *(lines or []),
    ]
    nav = "".join(f'<a href="{_esc(path)}">{_esc(label)}</a>' for label, path in top.items())
    if people:
        listed_people = "".join(f'<a href="{_esc(path)}">{_esc(name)}</a>' for name, path in sorted(people.items()))
        nav += (f'<details class="people"><summary>{_esc(_t("网格员任务页", "supervisor pages", language))} ({len(people)})</summary>'
                f"<div>{listed_people}</div></details>")
    every = _t("全部", "all", language)
    filters = (
        '<div class="filters">'
        f'<label>{_esc(_t("区县", "county", language))}<select id="f-county"><option value="*">{_esc(every)}</option></select></label>'
        f'<label>{_esc(_t("网格员", "supervisor", language))}<select id="f-supervisor"><option value="*">{_esc(every)}</option></select></label>'
        f'<label>{_esc(_t("查找", "search", language))}<input id="f-text" type="search" autocomplete="off"></label>'
        f'<span class="shown">{_esc(_t("显示", "shown", language))} <span id="f-shown">{len(table)} / {len(table)}</span></span>'
        "</div>"
    )
    lang = "en" if language == "en" else "zh-CN"
    page = (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{INDEX_CSS}</style></head><body>"
        f"<header><h1>{_esc(title)}</h1>" + "".join(f"<p>{_esc(p)}</p>" for p in paragraphs if p) + "</header>"
        + _notice_list(notices or [])
        + (f'<nav class="top">{nav}</nav>' if nav else "")
        + filters
        + f'<div class="wrap"><table id="cells"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
        + f"<script>{INDEX_JS}</script></body></html>\n"
    )
    check_self_contained(page, "index page")
    return page


# grid_summary's ``observed`` as a supervisor reads it: "no fire seen" only where the ground was seen.
OBSERVED_TEXT = {
    "clear": ("晴空观测", "seen clear"),
    "cloud": ("云遮未观测", "not observed (cloud)"),
    "not_observed": ("未观测", "not observed"),
    "unknown": ("观测情况不明", "coverage unknown"),
}


def _observed(rec: Mapping[str, Any], language: Language) -> str:
    state = _text(rec.get("observed"), "unknown")
    zh, en = OBSERVED_TEXT.get(state, OBSERVED_TEXT["unknown"])
    looks = "" if _int(rec.get("clear_looks")) is None else f" ({_int(rec.get('clear_looks'))}/{_int(rec.get('cloud_looks'))})"
    return _t(zh, en, language) + looks


def _notice_list(notices: list[tuple[str, str]]) -> str:
    if not notices:
        return ""
    items = "".join(f'<li class="{"warn" if level == "warn" else "info"}">{_esc(text)}</li>' for level, text in notices)
    return f'<ul class="notices" role="status">{items}</ul>'


def _summary_line(table: pd.DataFrame, language: Language, counted: bool = False) -> str:
    """Cells with a map, window counts and sites; the fire counts too unless the page opens with ``DayCounts`` (``counted``)."""
    parts = [f"{len(table)} " + _t("个网格有地图", "cells with a map", language)]
    for column, zh, en in () if counted else (("fires", "火点", "fires"), ("straw_suspect", "疑似秸秆焚烧火点", "suspected straw-burning fire pixels")):
        total = _total(table, column)
        if total is not None:
            parts.append(f"{total} {_t(zh, en, language)}")
    windows = []
    for w in WINDOW_COUNT_COLUMNS:
        total = _total(table, w)
        label = _t(*WINDOW_NAMES[f"win_{w}"], language)
        # A cell whose every fire is unknown in a window has an empty count: say how many, not "0".
        unknown = int(pd.to_numeric(table[w], errors="coerce").isna().sum()) if w in table else len(table)
        text = f"{label} {0 if total is None else total}"
        if unknown:
            text += f" ({_t('未知', 'unknown', language)}: {unknown} {_t('个网格', 'cells', language)})"
        windows.append(text)
    parts.append(" / ".join(windows))
    sites = _total(table, "sites")
    if sites is not None:
        parts.append(f"{sites} " + _t("用电异常", "electricity sites", language))
    return " · ".join(parts)


def write_index(
    path: Path | str,
    summary: pd.DataFrame,
    links: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Path:
    """Write :func:`index_page` to ``path`` (UTF-8), atomically; returns the path.

    Written atomically (``outputs.write_atomic``), so a supervisor opening the
    page meanwhile never gets half of it. Top links (``extra``, default overview, report and plan) whose file does
    not exist next to ``path`` are left out, with a log message: a run without a
    plan still gets a working page. ``kwargs`` as for :func:`index_page`.
    """
    path = Path(path)
    language = kwargs.get("language", "both")
    _check_language(language)
    extra = kwargs.pop("extra", None)
    if extra is None:
        extra = {_t(zh, en, language): target for (zh, en), target in DEFAULT_EXTRA.items()}
    kept = {}
    for label, target in extra.items():
        if (path.parent / target).exists():
            kept[label] = target
        else:
            log.info("index: no %s next to %s, not linked", target, path.name)
    page = index_page(summary, links, extra=kept, **kwargs)
    return write_atomic(path, page)
