"""The daily bulletin (通报): one printable page in Chinese for a county official to forward.

``OUT/D/bulletin.html``: the day's counts (``daycounts.DayCounts``), suspected
straw burning by county against the previous day and the same day last year
(from ``report.csv``'s county rows, so the numbers are the report's), the cells
with most suspected straw burning, and the electricity sites. Chinese only,
whatever ``[maps] language``: it is the document that goes up the line. It
prints on A4 (``@media print`` in ``gridwatch-page.css``): the navigation bar
is left out and rows are not split across pages.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.outputs import write_atomic
from pipelines.core.wording import pick, round_sig
from pipelines.publish.daycounts import DayCounts
from pipelines.publish.pages import check_self_contained, html_template, static_text

TOP_COUNTIES = 20
TOP_CELLS = 10
MAX_SITES = 30
BEIJING = dt.timezone(dt.timedelta(hours=8))


def _n(value: object) -> str:
    return "—" if value is None or pd.isna(value) else f"{int(value):,}"


def _change(value: object) -> dict[str, str]:
    if value is None or pd.isna(value):
        return {"text": "—", "cls": "n"}
    v = int(value)
    return {"text": f"{v:+,d}" if v else "持平", "cls": "n up" if v > 0 else "n down" if v < 0 else "n"}


def _cell(text: object, cls: str = "") -> dict[str, str]:
    return {"text": "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text), "cls": cls}


def bulletin_page(report: pd.DataFrame, sites: pd.DataFrame | None, counts: DayCounts, *, day: dt.date,
                  issued: dt.datetime | None = None) -> str:
    """The bulletin as HTML text; ``report``: ``report.report_table`` (all levels)."""
    counties = report[report["level"] == "county"]
    cities = {str(c): str(n) for c, n in zip(report.loc[report["level"] == "city", "code"], report.loc[report["level"] == "city", "name"])}
    active = counties[(counties["straw_suspect"] > 0) | (counties["previous_day"].fillna(0) > 0) | (counties["last_year"].fillna(0) > 0)]
    active = active.sort_values(["straw_suspect", "straw_points", "code"], ascending=[False, False, True])
    rows = []
    for rec in active.head(TOP_COUNTIES).to_dict("records"):
        city = cities.get(str(rec.get("parent_code")), "")
        rows.append([
            _cell(f"{rec['name']}（{city}）" if city else rec["name"]),
            _cell(_n(rec["straw_suspect"]), "n"), _cell(_n(rec["straw_points"]), "n"),
            _cell(_n(rec["previous_day"]), "n"), _change(rec["change_previous_day"]),
            _cell(_n(rec["last_year"]), "n"), _change(rec["change_last_year"]),
        ])
    more = f"另有 {len(active) - TOP_COUNTIES} 个县（区）有火情，见 report.html" if len(active) > TOP_COUNTIES else ""
    tables: list[dict[str, Any]] = [{
        "title": "各县（区）疑似秸秆焚烧",
        "head": ["县（区）", "今日（起）", "火点（个）", "前一日（起）", "较前一日", "去年同日（起）", "较去年同日"],
        "rows": rows, "more": more,
    }]
    cells = report[(report["level"] == "cell") & (report["straw_suspect"] > 0)]
    cells = cells.sort_values(["straw_suspect", "straw_points", "code"], ascending=[False, False, True])
    county_names = {str(c): str(n) for c, n in zip(counties["code"], counties["name"])}
    tables.append({
        "title": f"疑似秸秆焚烧最多的网格（前 {TOP_CELLS} 个）",
        "head": ["排名", "网格", "所属县（区）", "疑似秸秆焚烧（起）", "火点（个）", "耕地（亩）"],
        "rows": [[_cell(i, "n"), _cell(rec["name"] or rec["code"]), _cell(county_names.get(str(rec["parent_code"]), "")),
                  _cell(_n(rec["straw_suspect"]), "n"), _cell(_n(rec["straw_points"]), "n"),
                  _cell("—" if pd.isna(rec["cropland_ha"]) else f"{round_sig(float(rec['cropland_ha']) * 15, 2):,}", "n")]
                 for i, rec in enumerate(cells.head(TOP_CELLS).to_dict("records"), start=1)],
        "more": f"共 {len(cells)} 个网格有疑似秸秆焚烧" if len(cells) > TOP_CELLS else "",
    })
    site_rows = []
    if sites is not None and len(sites):
        for rec in sites.head(MAX_SITES).to_dict("records"):
            site_rows.append([_cell(rec.get("rule_zh")), _cell(rec.get("name") or rec.get("transformer_id")),
                              _cell(rec.get("cell_name")), _cell(pick(rec, "evidence", "zh"))])
    tables.append({
        "title": "用电异常企业与变压器",
        "head": ["类型", "企业（变压器）", "网格", "情况"],
        "rows": site_rows,
        "more": f"共 {len(sites)} 处，此处列出前 {MAX_SITES} 处" if sites is not None and len(sites) > MAX_SITES else "",
    })
    issued = issued or dt.datetime.now(BEIJING)
    page = html_template("pages/bulletin.html.j2").render(
        lang="zh-CN",
        title=f"秸秆焚烧与散乱污监测通报 {day.isoformat()}",
        css=static_text("gridwatch-page.css", inline=True),
        home="index.html",
        home_label="← 返回首页",
        heading=f"秸秆焚烧与散乱污监测通报（{day.year}年{day.month}月{day.day}日）",
        issued=f"数据日期：{day.isoformat()}（北京时间） · 生成时间：{issued.astimezone(BEIJING):%Y-%m-%d %H:%M}",
        headline=counts.headline("zh") + "。",
        lines=[counts.detail("zh") + "。"],
        tables=tables,
        none_label="无",
        note="说明：一“起”为同一处火情（多颗卫星、多次观测合并）；“火点”为卫星火点像元。"
             "疑似秸秆焚烧已排除工厂、固定热源和非耕地火点。前一日、去年同日为同一网格范围内的起数。",
    )
    check_self_contained(page, "bulletin")
    return page


def write_bulletin(folder: Path, report: pd.DataFrame, sites: pd.DataFrame | None, counts: DayCounts, *, day: dt.date) -> Path:
    """Write ``folder/bulletin.html`` atomically; returns its path."""
    return write_atomic(Path(folder) / "bulletin.html", bulletin_page(report, sites, counts, day=day))
