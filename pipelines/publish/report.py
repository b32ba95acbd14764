"""The day's report: suspected straw burning by province, city, county and cell.

China's national straw-burning reports count *suspected straw-burning points*
and rank regions by count and by points per 1,000 ha of cropland. This module
builds that table for one Beijing-time day from the run's fire events, and
writes it as ``report.csv`` (for Excel) and a self-contained ``report.html``.

Everything is counted per grid cell first and then summed upwards (cells into
counties, counties into cities, cities into provinces), so every level adds up
to the one below it by construction.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.outputs import atomic_path, write_atomic
from pipelines.core.schema import CATEGORIES, CATEGORY_LABELS
from pipelines.core.wording import t
from pipelines.publish.htmltext import text
from pipelines.publish.pages import check_self_contained, html_template, static_text

LEVELS = ("province", "city", "county", "cell")
HISTORY_KEYS = ("previous_day", "last_year")

# City of a county code missing from the county layer.
log = logging.getLogger(__name__)

UNKNOWN_CITY_CODE = ""
UNKNOWN_CITY_NAME = "unknown"

# The previous day's suspected straw-burning events checked on the spot (pipelines.field): results in the store.
VERIFICATION_COUNTS = ["verified", "confirmed", "false_alarm"]
VERIFICATION_COLUMNS = [*VERIFICATION_COUNTS, "verification_rate"]
EVENT_COUNT_COLUMNS = ["straw_suspect", "industrial", "persistent", "other_vegetation", "unknown", "other"]
COUNT_COLUMNS = ["straw_suspect", "straw_points", "industrial", "persistent", "other_vegetation", "unknown", "other", "events"]
REPORT_COLUMNS = [
    "level",
    "code",
    "name",
    "parent_code",
    *COUNT_COLUMNS,
    "cropland_ha",
    "landcover_coverage",
    "straw_per_1000ha",
    "rank_count",
    "rank_density",
    "previous_day",
    "change_previous_day",
    "last_year",
    "change_last_year",
    *VERIFICATION_COLUMNS,
]

# Bilingual headings, in the style of schema.CATEGORY_LABELS.
COLUMN_LABELS = {
    "level": "级别 level",
    "code": "代码 code",
    "name": "名称 name",
    "parent_code": "上级 parent",
    "straw_suspect": "疑似秸秆焚烧 suspected straw burning",
    "straw_points": "疑似秸秆焚烧火点 straw-burning fire pixels",
    "industrial": CATEGORY_LABELS["industrial"],
    "persistent": CATEGORY_LABELS["persistent"],
    "other_vegetation": CATEGORY_LABELS["other_vegetation"],
    "unknown": CATEGORY_LABELS["unknown"],
    "other": CATEGORY_LABELS["other"],
    "events": "火点事件合计 all fire events",
    "cropland_ha": "耕地面积（公顷） cropland (ha)",
    "landcover_coverage": "土地覆盖数据覆盖率 share of the area with land cover",
    "straw_per_1000ha": "每千公顷耕地疑似秸秆焚烧 straw burning per 1,000 ha cropland",
    "rank_count": "数量排名 rank by count",
    "rank_density": "密度排名 rank by density",
    "previous_day": "前一日 previous day",
    "change_previous_day": "较前一日 change vs previous day",
    "last_year": "去年同日 same day last year",
    "change_last_year": "较去年同日 change vs last year",
    "verified": "前一日已核查 verified (previous day)",
    "confirmed": "核查确认 confirmed",
    "false_alarm": "核查误报 false alarms",
    "verification_rate": "核查率 verification rate",
}
LEVEL_LABELS = {
    "province": "省级 provinces",
    "city": "地市级 cities",
    "county": "县级 counties",
    "cell": "网格 grid cells",
}
TOP_COUNTIES = 15
COVERAGE_WARNING = 0.99  # counties whose land-cover coverage is below this are named on the page
TOP_CELLS = 100

_SUM_COLUMNS = [*COUNT_COLUMNS, "cropland_ha", "area_ha", "landcover_ha", "previous_day", "last_year", *VERIFICATION_COUNTS]
_INT_COLUMNS = list(COUNT_COLUMNS)
_TEXT_COLUMNS = ["level", "code", "name", "parent_code"]


# --------------------------------------------------------------------------- table


def report_table(
    events: pd.DataFrame,
    fires: pd.DataFrame,
    grid: pd.DataFrame,
    counties: pd.DataFrame,
    cropland_ha: pd.Series,
    history: Mapping[str, pd.DataFrame | None],
    land: pd.DataFrame | None = None,
    verification: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per unit at each level, provinces first; then cities, counties, cells.

    Within a level, rows are in ``rank_count`` order (then by code).

    Example::

        sources = load_sources(config)
        cropland = sources.cropland(grid)          # ha per cell
        table = report_table(events, fires, grid, sources.counties, cropland,
                             {"previous_day": None, "last_year": None})
        table[table["level"] == "county"].head(10)

    * Event counts (``straw_suspect``, ``industrial``, ``persistent``,
      ``other_vegetation``, ``other``, ``events``) count the events whose
      ``cell_id`` lies in the unit; ``straw_points`` counts the fire pixels whose
      own ``cell_id`` lies in the unit and whose own category is
      ``straw_suspect``. An event whose category is missing or not one of
      ``CATEGORIES`` is counted as ``other`` (their number is in
      ``attrs["uncategorized_events"]``).
    * ``cropland_ha``: sum over all grid cells of the unit (cells missing from
      ``cropland_ha`` count 0); ``straw_per_1000ha`` = straw_suspect per 1,000 ha,
      NaN where the unit has no cropland.
    * ``landcover_coverage``: share (0-1) of the unit's area that the land-cover
      raster classifies, from ``land`` (``landcover.land_hectares``: ``area_ha``
      and ``landcover_ha`` per cell); where it is below 1, cropland and density
      are too low and fires there may be ``unknown``. NaN without ``land``.
    * ``rank_count`` (by straw_suspect) and ``rank_density`` (by
      straw_per_1000ha): 1 = most, ties share the lowest rank, among the rows of
      the same level (for cells this equals the rank among all grid cells);
      ``rank_density`` is <NA> where the density is NaN.
    * ``previous_day``/``last_year``: straw_suspect events of that history frame
      in the unit, and ``change_*`` = today minus that; all <NA> when the
      history frame is None.
    * ``verified``, ``confirmed``, ``false_alarm``: the previous day's suspected straw-burning
      events of the unit checked on the spot (``verification``: one row per such event, its
      ``cell_id`` and latest ``result``, see ``pipelines.field``): with a result on the spot
      (confirmed straw burning, another heat source, no fire found; "could not reach" is not
      one), confirmed, and found to be no straw burning; ``verification_rate`` = verified /
      ``previous_day`` (NaN where that is 0). All <NA> when ``verification`` is None.
    * Provinces, cities and counties: every one of the grid (zeros included).
      Cells: only those with an event today or in either history frame.
    * City of a county: from ``counties`` (``district_adcode`` -> ``city_adcode``,
      ``city_name``); a county missing there belongs to city ``""`` named
      ``"unknown"`` (one per province). Cities are keyed by province and city
      code, so ``parent_code`` of a county is its city code.

    Events in no cell (``cell_id`` <NA>, or a cell_id not in ``grid``) are in
    no unit: ``attrs["outside_grid"]`` is their number,
    ``attrs["outside_grid_by_category"]`` the same per category,
    ``attrs["outside_grid_points"]`` the number of fire pixels in no cell, and
    ``attrs["unknown_cell_ids"]`` lists cell ids not found in the grid.
    """
    cells, county_table = _units(grid, counties)
    cell_index = pd.Index(cells["cell_id"])
    n = len(cells)

    attrs: dict[str, object] = {}
    base = pd.DataFrame(
        {
            "code": cells["cell_id"].to_numpy(),
            "name": cells["cell_name"].to_numpy(),
            "parent_code": cells["county_code"].to_numpy(),
        }
    )

    # Today's events, per cell and category.
    ev_pos, ev_outside, ev_unknown = _positions(_column(events, "cell_id"), cell_index)
    ev_cat, uncategorized = _category_codes(_column(events, "category"))
    counts = _bincount2(ev_pos, ev_cat, n)
    for j, category in enumerate(CATEGORIES):
        base[category] = counts[:, j]
    base["events"] = counts.sum(axis=1)
    attrs["outside_grid"] = int(ev_outside.sum())
    attrs["outside_grid_by_category"] = {
        c: int(((ev_cat == j) & ev_outside).sum()) for j, c in enumerate(CATEGORIES)
    }
    attrs["uncategorized_events"] = int(uncategorized)

    # Fire pixels of suspected straw burning, per cell (the pixel's own cell and category).
    fire_pos, fire_outside, fire_unknown = _positions(_column(fires, "cell_id"), cell_index)
    fire_cat, _ = _category_codes(_column(fires, "category"))
    straw = CATEGORIES.index("straw_suspect")
    base["straw_points"] = _bincount1(fire_pos[fire_cat == straw], n)
    attrs["outside_grid_points"] = int(fire_outside.sum())
    attrs["unknown_cell_ids"] = sorted(set(ev_unknown) | set(fire_unknown))

    base["cropland_ha"] = _cropland(cropland_ha, cell_index)
    for column in ("area_ha", "landcover_ha"):
        base[column] = _cropland(land[column], cell_index) if land is not None else np.zeros(n)

    # History: straw_suspect events per cell (0 placeholders where absent; set to <NA> at the end).
    keep = base["events"].to_numpy() > 0
    present: dict[str, bool] = {}
    for key in HISTORY_KEYS:
        frame = history.get(key) if history is not None else None
        present[key] = frame is not None
        if frame is None:
            base[key] = np.zeros(n, dtype="int64")
            continue
        pos, _, _ = _positions(_column(frame, "cell_id"), cell_index)
        cat, _ = _category_codes(_column(frame, "category"))
        base[key] = _bincount1(pos[cat == straw], n)
        keep |= _bincount1(pos, n) > 0
    present["verification"] = verification is not None
    results = _column(verification, "result") if verification is not None else pd.Series([], dtype="string")
    pos, _, _ = _positions(_column(verification, "cell_id"), cell_index)
    for column, wanted in (("verified", ("confirmed", "other_heat", "no_fire")), ("confirmed", ("confirmed",)),
                           ("false_alarm", ("other_heat", "no_fire"))):
        base[column] = _bincount1(pos[results.isin(wanted).fillna(False).to_numpy(bool)], n)

    # Bottom-up sums: cells -> counties -> cities -> provinces.
    by_county = base.groupby("parent_code", sort=False)[_SUM_COLUMNS].sum()
    county_rows = county_table.join(by_county.reindex(county_table.index, fill_value=0))
    county_rows[_SUM_COLUMNS] = county_rows[_SUM_COLUMNS].fillna(0)
    by_city = county_rows.groupby(["province_code", "city_code"], sort=False)
    city_rows = by_city[_SUM_COLUMNS].sum()
    city_rows["city_name"] = by_city["city_name"].first()
    city_rows = city_rows.reset_index()
    by_province = city_rows.groupby("province_code", sort=False)
    province_rows = by_province[_SUM_COLUMNS].sum()
    province_names = county_table.groupby("province_code", sort=False)["province_name"].first()
    province_rows = province_rows.reset_index()

    levels = {
        "province": pd.DataFrame(
            {
                "code": province_rows["province_code"],
                "name": province_rows["province_code"].map(province_names),
                "parent_code": "",
                **{c: province_rows[c] for c in _SUM_COLUMNS},
            }
        ),
        "city": pd.DataFrame(
            {
                "code": city_rows["city_code"],
                "name": city_rows["city_name"],
                "parent_code": city_rows["province_code"],
                **{c: city_rows[c] for c in _SUM_COLUMNS},
            }
        ),
        "county": pd.DataFrame(
            {
                "code": county_rows.index.to_numpy(),
                "name": county_rows["county_name"].to_numpy(),
                "parent_code": county_rows["city_code"].to_numpy(),
                **{c: county_rows[c].to_numpy() for c in _SUM_COLUMNS},
            }
        ),
        "cell": base[keep].reset_index(drop=True),
    }

    parts = []
    for level in LEVELS:
        part = levels[level].reset_index(drop=True)
        part.insert(0, "level", level)
        parts.append(_finish_level(part, present))
    table = pd.concat(parts, ignore_index=True)[REPORT_COLUMNS]
    table.attrs = attrs
    return table


def _units(grid: pd.DataFrame, counties: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grid cells (text columns) and one row per county of the grid with its city and province."""
    columns = ["cell_id", "cell_name", "county_code", "county_name", "province_code", "province_name"]
    missing = [c for c in columns if c not in grid.columns]
    if missing:
        raise ValueError(f"grid lacks columns {missing}")
    cells = pd.DataFrame({c: grid[c].astype("string").to_numpy() for c in columns})
    if cells["cell_id"].isna().any():
        raise ValueError("grid has cells without cell_id")
    if not cells["cell_id"].is_unique:
        raise ValueError("grid cell_id values are not unique")
    for code in ("county_code", "province_code"):
        cells[code] = cells[code].fillna("")
    for name in ("cell_name", "county_name", "province_name"):
        cells[name] = cells[name].fillna("")

    # A county's province is taken from its first cell, so every cell of a county
    # lands in the same province (sums stay consistent even if the grid disagrees).
    county_table = cells.drop_duplicates("county_code").set_index("county_code")[
        ["county_name", "province_code", "province_name"]
    ]
    layer = pd.DataFrame(
        {c: counties[c].astype("string").to_numpy() for c in ("district_adcode", "city_adcode", "city_name")}
    )
    layer = layer[layer["district_adcode"].notna()].drop_duplicates("district_adcode").set_index("district_adcode")
    city_code = layer["city_adcode"].reindex(county_table.index)
    city_name = layer["city_name"].reindex(county_table.index)
    unknown = city_code.isna() | (city_code == "")
    if unknown.any():  # unknown is a state, not a silent default: say how many and which
        examples = ", ".join(f"{code} {name}" for code, name in county_table.loc[unknown.to_numpy(), "county_name"].head(5).items())
        log.warning("%d of %d counties of the grid have no city in the county layer (report: city \"unknown\"): %s",
                    int(unknown.sum()), len(county_table), examples)
    county_table["city_code"] = city_code.where(~unknown, UNKNOWN_CITY_CODE).astype("string")
    county_table["city_name"] = (
        city_name.where(~unknown, UNKNOWN_CITY_NAME).fillna(UNKNOWN_CITY_NAME).astype("string")
    )
    return cells, county_table


def _column(frame: pd.DataFrame | None, name: str) -> pd.Series:
    if frame is None or len(frame) == 0:
        return pd.Series([], dtype="string")
    if name not in frame.columns:
        raise ValueError(f"frame lacks column {name!r}")
    return frame[name].astype("string")


def _positions(cell_ids: pd.Series, index: pd.Index) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Position of each row's cell in the grid (-1: none), the 'in no cell' mask, and unknown ids."""
    na = cell_ids.isna().to_numpy()
    pos = np.full(len(cell_ids), -1, dtype="int64")
    if len(cell_ids):
        pos[~na] = index.get_indexer(cell_ids[~na].to_numpy())
    outside = pos < 0
    unknown = sorted(set(cell_ids[outside & ~na].tolist()))
    return pos, outside, unknown


def _category_codes(categories: pd.Series) -> tuple[np.ndarray, int]:
    """Index into CATEGORIES; missing or unknown categories count as 'other'."""
    codes = pd.Categorical(categories.to_numpy(dtype=object, na_value=None), categories=list(CATEGORIES)).codes
    codes = np.asarray(codes, dtype="int64")
    bad = codes < 0
    codes[bad] = CATEGORIES.index("other")
    return codes, int(bad.sum())


def _bincount1(pos: np.ndarray, n: int) -> np.ndarray:
    pos = pos[pos >= 0]
    return np.bincount(pos, minlength=n).astype("int64")


def _bincount2(pos: np.ndarray, cat: np.ndarray, n: int) -> np.ndarray:
    ok = pos >= 0
    k = len(CATEGORIES)
    flat = np.bincount(pos[ok] * k + cat[ok], minlength=n * k)
    return flat.reshape(n, k).astype("int64")


def _cropland(cropland_ha: pd.Series | None, index: pd.Index) -> np.ndarray:
    if cropland_ha is None or len(cropland_ha) == 0:
        return np.zeros(len(index))
    values = pd.Series(
        pd.to_numeric(pd.Series(cropland_ha).to_numpy(), errors="raise").astype("float64"),
        index=pd.Index(cropland_ha.index).astype("string"),
    )
    if not values.index.is_unique:
        values = values.groupby(level=0).sum()
    out = values.reindex(index).fillna(0.0).to_numpy(dtype="float64")
    if (out < 0).any():
        raise ValueError("cropland_ha has negative values")
    return out


def _finish_level(part: pd.DataFrame, present: dict[str, bool]) -> pd.DataFrame:
    for column in _TEXT_COLUMNS:
        part[column] = part[column].astype("string")
    for column in _INT_COLUMNS:
        part[column] = part[column].astype("int64")
    crop = part["cropland_ha"].astype("float64")
    part["cropland_ha"] = crop
    straw = part["straw_suspect"].astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(crop > 0, straw / crop.where(crop > 0, 1.0) * 1000.0, np.nan)
    part["straw_per_1000ha"] = density.astype("float64")
    area = part["area_ha"].astype("float64")
    part["landcover_coverage"] = np.where(area > 0, part["landcover_ha"] / area.where(area > 0, 1.0), np.nan)
    part["rank_count"] = part["straw_suspect"].rank(method="min", ascending=False).astype("Int64")
    part["rank_density"] = part["straw_per_1000ha"].rank(method="min", ascending=False, na_option="keep").astype("Int64")
    if present.get("verification"):
        for column in VERIFICATION_COUNTS:
            part[column] = part[column].astype("Int64")
        checked = part["verified"].astype("float64")
        previous = part["previous_day"].astype("float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            part["verification_rate"] = np.where(previous > 0, checked / previous.where(previous > 0, 1.0), np.nan)
    else:
        for column in VERIFICATION_COUNTS:
            part[column] = pd.array([pd.NA] * len(part), dtype="Int64")
        part["verification_rate"] = np.full(len(part), np.nan)
    for key in HISTORY_KEYS:
        if present[key]:
            part[key] = part[key].astype("Int64")
            part[f"change_{key}"] = (part["straw_suspect"].astype("Int64") - part[key]).astype("Int64")
        else:
            part[key] = pd.array([pd.NA] * len(part), dtype="Int64")
            part[f"change_{key}"] = pd.array([pd.NA] * len(part), dtype="Int64")
    return part.sort_values(["rank_count", "parent_code", "code"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- files


def write_report(table: pd.DataFrame, folder: Path, *, day: datetime.date, title: str, language: str = "both",
                 home: str | None = None) -> list[Path]:
    """Write report.csv (UTF-8 with BOM so Excel opens Chinese correctly, one row per unit) and report.html.

    Both are written to ``<name>.partial`` beside the target and then renamed
    over it. In the CSV, a name starting with ``= + - @`` (which Excel would
    run as a formula) gets a leading ``'``. Returns ``[csv, html]``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "report.csv"
    html_path = folder / "report.html"

    csv_table = rounded(table)
    if "name" in csv_table.columns:
        csv_table["name"] = csv_table["name"].astype("string").map(_excel_safe, na_action="ignore")
    with atomic_path(csv_path) as partial:
        csv_table.to_csv(partial, index=False, encoding="utf-8-sig")

    page = report_html(table, day=day, title=title, language=language, home=home)
    write_atomic(html_path, page)
    return [csv_path, html_path]


def rounded(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its measurements rounded to what they can tell (report.csv): cropland to 0.1 ha,
    densities to 3 significant digits, coverage to 0.1 %."""
    out = table.copy()
    if "cropland_ha" in out:
        out["cropland_ha"] = out["cropland_ha"].astype(float).round(1)
    if "landcover_coverage" in out:
        out["landcover_coverage"] = out["landcover_coverage"].astype(float).round(3)
    if "verification_rate" in out:
        out["verification_rate"] = out["verification_rate"].astype(float).round(3)
    if "straw_per_1000ha" in out:
        values = out["straw_per_1000ha"].astype(float)
        digits = (2 - np.floor(np.log10(values.abs().where(values != 0)))).fillna(0).clip(lower=0).astype(int)
        out["straw_per_1000ha"] = [round(v, d) if np.isfinite(v) else v for v, d in zip(values, digits)]
    return out


def _excel_safe(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --------------------------------------------------------------------------- HTML
#
# The page is laid out by pipelines/templates/pages/report.html.j2 (escaped by the template) and styled by
# pipelines/static/gridwatch-report.css (inlined); the functions below only turn the table into text and numbers.

REPORT_TEMPLATE = "pages/report.html.j2"
REPORT_CSS = "gridwatch-report.css"

# Bar charts (SVG user units = px): label column, longest bar, value column; bar height and gap.
_BAR, _GAP, _LABEL_W, _BAR_W, _VALUE_W = 18, 6, 200, 300, 70

Cell = tuple[str, str]  # (text, CSS class of the <td>; "" for none)


def report_html(table: pd.DataFrame, *, day: datetime.date, title: str, language: str = "both", home: str | None = None) -> str:
    """The report page as one self-contained HTML string (inline CSS and SVG, no scripts).

    ``language``: "zh" (Chinese only), "en" or "both"; ``home``: relative link to the run's ``index.html``.
    The summary's first line is the day's count as every page gives it (``daycounts``): events of
    suspected straw burning, with their fire pixels beside them.
    """
    page = html_template(REPORT_TEMPLATE).render(**report_page(table, day=day, title=title, language=language, home=home))
    check_self_contained(page, "report.html")
    return page


def report_page(table: pd.DataFrame, *, day: datetime.date, title: str, language: str = "both",
                home: str | None = None) -> dict[str, Any]:
    """What ``report.html.j2`` shows, as plain text and numbers (nothing escaped: the template does that)."""
    L = _labeller(language)
    levels = {level: table[table["level"] == level] for level in LEVELS}
    provinces = levels["province"]
    attrs = table.attrs or {}

    totals = {c: int(provinces[c].sum()) for c in COUNT_COLUMNS}
    outside = attrs.get("outside_grid")
    outside_text = "—" if outside is None else f"{int(outside):,}"
    by_cat = attrs.get("outside_grid_by_category") or {}
    if outside and by_cat.get("straw_suspect"):
        outside_text += t(f"（其中疑似秸秆焚烧 {int(by_cat['straw_suspect']):,}）",
                          f" (of which suspected straw burning: {int(by_cat['straw_suspect']):,})", language)
    cells_with = int((levels["cell"]["straw_suspect"] > 0).sum())
    headline = t(f"疑似秸秆焚烧 {totals['straw_suspect']:,} 起（{totals['straw_points']:,} 个火点），涉及 {cells_with:,} 个网格",
                 f"{totals['straw_suspect']:,} suspected straw-burning events ({totals['straw_points']:,} fire pixels) in {cells_with:,} cells",
                 language)
    categories = ("; ".join(f"{L(CATEGORY_LABELS[c])}: {totals[c]:,}" for c in CATEGORIES)
                  + t(f"；网格内火情合计 {totals['events']:,} 起", f"; total: {totals['events']:,} events in grid cells", language))

    counties = levels["county"]
    city_names = _names(levels["city"])
    labels = {
        code: f"{name}（{city_names.get(parent, '')}）" if city_names.get(parent) else name
        for code, name, parent in zip(counties["code"], counties["name"], counties["parent_code"])
    }
    top = counties[counties["straw_suspect"] > 0].sort_values(["straw_suspect", "code"], ascending=[False, True])
    top = top.head(TOP_COUNTIES)
    dens = counties[counties["straw_per_1000ha"].notna() & (counties["straw_per_1000ha"] > 0)]
    dens = dens.sort_values(["straw_per_1000ha", "code"], ascending=[False, True]).head(TOP_COUNTIES)
    sections: list[dict[str, Any]] = [
        {"heading": t(f"疑似秸秆焚烧最多的县（前 {TOP_COUNTIES} 个）", f"Top {TOP_COUNTIES} counties by suspected straw burning", language),
         "chart": bar_chart([labels[c] for c in top["code"]], top["straw_suspect"].tolist(), lambda v: f"{int(v):,}"),
         "table": None},
        {"heading": t(f"每千公顷耕地疑似秸秆焚烧最多的县（前 {TOP_COUNTIES} 个）",
                      f"Top {TOP_COUNTIES} counties by suspected straw burning per 1,000 ha cropland", language),
         "chart": bar_chart([labels[c] for c in dens["code"]], dens["straw_per_1000ha"].tolist(), lambda v: f"{v:.3g}"),
         "table": None},
    ]

    parents = {"city": _names(provinces), "county": city_names, "cell": _names(counties)}
    head = [L(COLUMN_LABELS[c]) for c in _SHOWN_COLUMNS]
    for level in LEVELS:
        rows = levels[level]
        heading = L(LEVEL_LABELS[level])
        if level == "cell":
            rows = rows.sort_values(["straw_suspect", "events", "code"], ascending=[False, False, True]).head(TOP_CELLS)
            heading += t(f"（前{TOP_CELLS}名）", f" (top {TOP_CELLS} by suspected straw burning)", language)
        else:
            rows = rows.sort_values(["rank_count", "parent_code", "code"], kind="stable")
        sections.append({"heading": heading, "chart": None, "table": {"head": head, "rows": table_rows(rows, parents.get(level, {}))}})

    return {
        "lang": "en" if language == "en" else "zh-CN",
        "title": title,
        "css": static_text(REPORT_CSS, inline=True),
        "home": home,
        "home_label": t("← 返回首页", "← back to index", language) if language != "both" else "← 返回首页 index",
        "day_label": t("日期（北京时间）", "Day (Beijing time, UTC+8)", language),
        "day": day.isoformat(),
        "summary_heading": t("概况", "Summary", language),
        "headline": headline,
        "categories": categories,
        "outside_label": t("网格外火情", "events outside the grid", language),
        "outside": outside_text,
        "verification": _verification_line(provinces, language),
        "coverage": _coverage_warning(counties, language),
        "sections": sections,
        "none_label": t("无", "none", language),
        "note": t("一“起”为同一处火情（多颗卫星、多次观测合并）；“火点”为卫星火点像元。排名：1 为最多，并列取同一名次。",
                  "An event is one fire, fused over sensors and looks; fire pixels are satellite detections. "
                  "Ranks: 1 = most, ties share the lowest rank.", language),
    }


def _labeller(language: str) -> Callable[[str], str]:
    """A function giving a ``"中文 English"`` label in ``language``."""
    def label(bilingual: str) -> str:
        match = re.fullmatch(r"(\S*[^\x00-\x7f]\S*) (.+)", bilingual)
        if match is None or language == "both":
            return bilingual
        return match.group(1) if language == "zh" else match.group(2)
    return label


def partly_covered(table: pd.DataFrame) -> pd.DataFrame:
    """The counties of a report table (or of its county rows) that the land-cover raster covers less than
    ``COVERAGE_WARNING`` of, least covered first: their cropland and densities are too low."""
    counties = table[table["level"] == "county"] if "level" in table else table
    return counties[counties["landcover_coverage"] < COVERAGE_WARNING].sort_values(["landcover_coverage", "code"])


def _verification_line(provinces: pd.DataFrame, language: str) -> str | None:
    """The summary line on the previous day's events checked on the spot; None when that is unknown."""
    if provinces.empty or provinces["verified"].isna().all():
        return None
    verified, confirmed, false_alarm = (int(provinces[c].sum()) for c in VERIFICATION_COUNTS)
    previous = int(provinces["previous_day"].fillna(0).sum())
    rate = f"{verified / previous:.0%}" if previous else "—"
    zh = f"前一日疑似秸秆焚烧 {previous:,} 起，已核查 {verified:,} 起（确认 {confirmed:,}，误报 {false_alarm:,}），核查率 {rate}"
    en = (f"previous day: {previous:,} suspected straw-burning events, {verified:,} verified on the spot "
          f"({confirmed:,} confirmed, {false_alarm:,} false alarms), verification rate {rate}")
    return t(zh, en, language)


def _coverage_warning(counties: pd.DataFrame, language: str = "both") -> dict[str, Any] | None:
    """The summary line naming the counties the land-cover raster does not fully cover; None if there are none.

    ``zh``: the Chinese sentence in three parts (the lead is shown in bold, ``worst`` lists up to five
    counties with the share covered), ``en``: the English one; either is None when ``language`` leaves it out.
    """
    partial = partly_covered(counties)
    if partial.empty:
        return None
    zh = {
        "lead": f"土地覆盖数据未完全覆盖 {len(partial):,} 个县",
        "worst": [f"{text(n)} {c:.0%}" for n, c in zip(partial["name"].head(5), partial["landcover_coverage"].head(5))],
        "rest": "：这些县的耕地面积和密度偏低，部分火点地类不明。",
    }
    en = (f"Land cover does not fully cover {len(partial):,} counties: their cropland and densities are "
          "too low and some fires there are of unknown land cover.")
    return {"zh": zh if language != "en" else None, "en": en if language != "zh" else None}


def _names(rows: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(n) for c, n in zip(rows["code"].fillna(""), rows["name"].fillna(""))}


def bar_chart(labels: list[str], values: list[float], fmt: Callable[[float], str]) -> dict[str, Any] | None:
    """A horizontal bar chart's geometry for the template's inline SVG (px), longest bar = largest value;
    None without bars. Coordinates are formatted text, so the page does not depend on float printing."""
    if not labels:
        return None
    width = _LABEL_W + _BAR_W + _VALUE_W
    height = len(labels) * (_BAR + _GAP) + _GAP
    top = max(float(v) for v in values) or 1.0
    bars = []
    for i, (label, value) in enumerate(zip(labels, values)):
        y = _GAP + i * (_BAR + _GAP)
        w = max(1.0, _BAR_W * float(value) / top)
        bars.append({"label": label, "value": fmt(value), "y": y, "text_y": f"{y + _BAR * 0.75:.1f}",
                     "width": f"{w:.1f}", "value_x": f"{_LABEL_W + w + 4:.1f}"})
    return {"width": width, "height": height, "label_x": _LABEL_W - 6, "bar_x": _LABEL_W, "bar_height": _BAR, "bars": bars}


_SHOWN_COLUMNS = [c for c in REPORT_COLUMNS if c != "level"]


def table_rows(rows: pd.DataFrame, parent_names: dict[str, str]) -> list[list[Cell]]:
    """The cells of ``rows`` as the report shows them: ``(text, class)`` per shown column, in column order.

    Codes and names as they are, the parent as "code name", numbers right-aligned (``num``), changes
    signed and coloured (``num up`` / ``num down``), missing values "—".
    """
    out = []
    for record in rows[_SHOWN_COLUMNS].itertuples(index=False):
        cells: list[Cell] = []
        for column, value in zip(_SHOWN_COLUMNS, record):
            if column in ("code", "name"):
                cells.append((text(value), ""))
            elif column == "parent_code":
                parent = text(value)
                cells.append((f"{parent} {parent_names.get(parent, '')}".strip(), ""))
            elif column.startswith("change_"):
                cls = "num"
                if not pd.isna(value) and value > 0:
                    cls += " up"
                elif not pd.isna(value) and value < 0:
                    cls += " down"
                cells.append((_fmt_change(value), cls))
            else:
                cells.append((_fmt_number(column, value), "num"))
        out.append(cells)
    return out


def _fmt_number(column: str, value: object) -> str:
    if value is None or pd.isna(value):
        return "—"
    if column == "cropland_ha":
        return f"{float(value):,.1f}"
    if column == "straw_per_1000ha":
        return f"{float(value):.3g}"  # densities are small: keep three significant digits
    if column == "landcover_coverage":
        return f"{float(value):.0%}" if value < 0.995 else "100%"
    if column == "verification_rate":
        return f"{float(value):.0%}"
    return f"{int(value):,}"


def _fmt_change(value: object) -> str:
    if value is None or pd.isna(value):
        return "—"
    v = int(value)
    return f"{v:+,d}" if v else "0"
