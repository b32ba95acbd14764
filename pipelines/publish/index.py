"""``index.html`` of a nightly run: the page a supervisor opens first.

One self-contained HTML file (inline CSS and a little inline JavaScript; nothing
fetched, so it works offline from a copied folder or a phone's storage) that
lists every grid cell with a map, with its county, supervisor and counts, and
links to the cell maps and to the run's overview map, report and plan. Without
JavaScript the table is complete; with it, columns sort on a tap and the rows
can be filtered by county, supervisor or text.

The page is ``pipelines/templates/pages/index.html.j2``; this module prepares
its data as plain text and numbers, and the template (autoescaped) escapes every
string from data (cell names and ids, counties, supervisors, titles). The script
reads them back with ``dataset`` and ``textContent`` and never writes markup.
Links are relative paths only.
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
from pipelines.core.wording import check_language, t
from pipelines.publish.htmltext import text as _text
from pipelines.publish.pages import check_self_contained, html_template, static_text
from pipelines.publish.tasklist import WINDOW_NAMES, Language

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


def _int(value: object) -> int | None:
    text = _text(value)
    if text == "":
        return None
    return int(float(text))


def _count_cell(value: object, language: Language, optional: bool = False) -> dict[str, Any]:
    """A count as the template's table cell: ``v`` is what sorting uses (-1 = unknown, sorts last).

    ``optional``: a column a phone held upright leaves out (``data-opt``).
    """
    n = _int(value)
    if n is None:
        return {"v": -1, "text": t("未知", "unknown", language), "zero": False, "opt": optional}
    return {"v": n, "text": n, "zero": n == 0, "opt": optional}


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
    check_language(language)
    if links is None:
        maps = summary["map"] if "map" in summary else pd.Series(pd.NA, index=summary.index)
        links = {str(c): str(p) for c, p in zip(summary["cell_id"], maps, strict=True) if _text(p)}
    links = {str(c): _relative_link(p) for c, p in links.items()}
    if extra is None:
        extra = {t(zh, en, language): path for (zh, en), path in DEFAULT_EXTRA.items()}
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
        ("cell", t("网格", "cell", language), "s"),
        ("map", t("地图", "map", language), ""),
        ("straw", t("疑似秸秆焚烧 起（火点）", "suspected straw burning: events (fire pixels)", language), "n"),
        ("county", t("区县", "county", language), "s"),
        ("supervisor", t("网格员", "supervisor", language), "s"),
        ("fires", t("全部火点", "all fire pixels", language), "n"),
        *((w, t(*WINDOW_NAMES[f"win_{w}"], language), "n") for w in WINDOW_COUNT_COLUMNS),
        ("touching", t("邻格触及", "touching", language), "n"),
        ("sites", t("用电异常", "electricity sites", language), "n"),
        ("observed", t("卫星观测", "observed", language), "s"),
    ]
    # Columns a phone held upright leaves out (they stay in the overview and the cell maps).
    optional = {"touching", "observed", *WINDOW_COUNT_COLUMNS}
    open_label = t("打开地图", "open map", language)
    rows = []
    for rec in table.to_dict("records"):
        cell_id = str(rec["cell_id"])
        supervisor = _text(rec.get("supervisor"))
        straw = _int(rec.get("straw_events"))
        rows.append({
            "cell_id": cell_id,
            "name": _text(rec.get("cell_name"), cell_id),
            "href": links[cell_id],
            "county": _text(rec.get("county_name")) or _text(rec.get("county_code")),
            "supervisor": supervisor,
            "supervisor_href": people.get(supervisor),
            "hot": bool(straw),
            "straw": {"v": -1 if straw is None else straw, "text": "—" if straw is None else straw, "pixels": _int(rec.get("straw_suspect"))},
            "counts": [
                _count_cell(rec.get("fires"), language),
                *(_count_cell(rec.get(w), language, optional=True) for w in WINDOW_COUNT_COLUMNS),
                _count_cell(rec.get("fires_touching"), language, optional=True),
                _count_cell(rec.get("sites"), language),
            ],
            "observed": _observed(rec, language),
        })

    day_text = day.isoformat() if hasattr(day, "isoformat") else _text(day)
    summary_line = _summary_line(table, language, counted=counts is not None)
    paragraphs = [
        t("运行日期（北京时间）", "run date (Beijing)", language) + f" {day_text}",
        *((counts.headline(language), counts.detail(language)) if counts is not None else ()),
        summary_line,
        *(lines or []),
    ]
    page = html_template("pages/index.html.j2").render(
        lang="en" if language == "en" else "zh-CN",
        title=_text(title),
        css=INDEX_CSS,
        js=INDEX_JS,
        paragraphs=[_text(p) for p in paragraphs if p],
        notices=[{"level": "warn" if level == "warn" else "info", "text": _text(text)} for level, text in notices or []],
        nav=[{"href": path, "label": _text(label)} for label, path in top.items()],
        people=[{"href": path, "name": name} for name, path in sorted(people.items())],
        people_label=t("网格员任务页", "supervisor pages", language),
        labels={
            "county": t("区县", "county", language),
            "supervisor": t("网格员", "supervisor", language),
            "search": t("查找", "search", language),
            "shown": t("显示", "shown", language),
            "every": t("全部", "all", language),
        },
        columns=[{"label": label, "type": kind, "opt": key in optional} for key, label, kind in columns],
        rows=rows,
        open_label=open_label,
        empty_label=t("今日无网格地图", "no cell maps today", language),
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
    return t(zh, en, language) + looks


def _summary_line(table: pd.DataFrame, language: Language, counted: bool = False) -> str:
    """Cells with a map, window counts and sites; the fire counts too unless the page opens with ``DayCounts`` (``counted``)."""
    parts = [f"{len(table)} " + t("个网格有地图", "cells with a map", language)]
    for column, zh, en in () if counted else (("fires", "火点", "fires"), ("straw_suspect", "疑似秸秆焚烧火点", "suspected straw-burning fire pixels")):
        total = _total(table, column)
        if total is not None:
            parts.append(f"{total} {t(zh, en, language)}")
    windows = []
    for w in WINDOW_COUNT_COLUMNS:
        total = _total(table, w)
        label = t(*WINDOW_NAMES[f"win_{w}"], language)
        # A cell whose every fire is unknown in a window has an empty count: say how many, not "0".
        unknown = int(pd.to_numeric(table[w], errors="coerce").isna().sum()) if w in table else len(table)
        text = f"{label} {0 if total is None else total}"
        if unknown:
            text += f" ({t('未知', 'unknown', language)}: {unknown} {t('个网格', 'cells', language)})"
        windows.append(text)
    parts.append(" / ".join(windows))
    sites = _total(table, "sites")
    if sites is not None:
        parts.append(f"{sites} " + t("用电异常", "electricity sites", language))
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
    check_language(language)
    extra = kwargs.pop("extra", None)
    if extra is None:
        extra = {t(zh, en, language): target for (zh, en), target in DEFAULT_EXTRA.items()}
    kept = {}
    for label, target in extra.items():
        if (path.parent / target).exists():
            kept[label] = target
        else:
            log.info("index: no %s next to %s, not linked", target, path.name)
    page = index_page(summary, links, extra=kept, **kwargs)
    return write_atomic(path, page)
