"""The day's report table (province/city/county/cell) and its CSV and HTML files.

Runs on the real 44,279-cell grid and the real county layer; the events are
synthetic but placed in real cells.
"""

from __future__ import annotations

import datetime
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from pipelines.core.schema import BEIJING_TZ, CATEGORIES
from pipelines.publish.report import LEVELS, REPORT_COLUMNS, report_html, report_table, write_report

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "geodata" / "grid_ncp_5km.parquet"
COUNTIES = ROOT / "geodata" / "china_counties.parquet"
COUNT_COLUMNS = ["straw_suspect", "straw_points", "industrial", "persistent", "other_vegetation", "other", "events"]
EVENT_COLUMNS = ["straw_suspect", "industrial", "persistent", "other_vegetation", "other", "events"]
OUTSIDE = 25  # events in no grid cell
DAY = datetime.date(2022, 6, 3)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def grid() -> gpd.GeoDataFrame:
    return gpd.read_parquet(GRID)


@pytest.fixture(scope="module")
def counties() -> pd.DataFrame:
    return pd.read_parquet(
        COUNTIES, columns=["district_adcode", "district_name", "city_adcode", "city_name", "province_adcode", "province_name"]
    )


@pytest.fixture(scope="module")
def cropland(grid: gpd.GeoDataFrame) -> pd.Series:
    # Synthetic: a random positive cropland area for every grid cell. The real
    # figures come from the land-cover raster, in another module.
    rng = np.random.default_rng(7)
    return pd.Series(rng.uniform(50.0, 2500.0, len(grid)), index=pd.Index(grid["cell_id"].to_numpy(dtype=object)))


def make_events(cell_ids: list[object], categories: list[str], prefix: str = "e") -> pd.DataFrame:
    n = len(cell_ids)
    return pd.DataFrame(
        {
            "event_id": pd.array([f"{prefix}{i}" for i in range(n)], dtype="string"),
            "cell_id": pd.array(cell_ids, dtype="string"),
            "category": pd.array(categories, dtype="string"),
            "observations": pd.array(np.ones(n, dtype="int64")),
            "first_seen_bjt": pd.Series([pd.Timestamp("2022-06-03 13:30", tz=BEIJING_TZ)] * n, dtype=f"datetime64[ns, {BEIJING_TZ}]"),
        }
    )


def make_fires(events: pd.DataFrame, per_event: np.ndarray) -> pd.DataFrame:
    rows = events.loc[events.index.repeat(per_event), ["event_id", "cell_id", "category"]].reset_index(drop=True)
    rows.insert(0, "fire_id", pd.array([f"f{i}" for i in range(len(rows))], dtype="string"))
    rows["sensor"] = pd.array(["VIIRS"] * len(rows), dtype="string")
    return rows


def random_day(grid: gpd.GeoDataFrame, seed: int, cells: int = 300, events: int = 900) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events in ``cells`` random real cells (fixed seed), plus OUTSIDE events in no cell; 1-5 fire pixels each."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(grid["cell_id"].to_numpy(dtype=object), cells, replace=False)
    cell_ids = list(rng.choice(chosen, events)) + [pd.NA] * OUTSIDE
    categories = list(rng.choice(CATEGORIES, len(cell_ids)))
    ev = make_events(cell_ids, categories)
    return ev, make_fires(ev, rng.integers(1, 6, len(ev)))


@pytest.fixture(scope="module")
def day(grid: gpd.GeoDataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return random_day(grid, seed=20220603)


@pytest.fixture(scope="module")
def table(day, grid, counties, cropland) -> pd.DataFrame:
    events, fires = day
    return report_table(events, fires, grid, counties, cropland, {"previous_day": None, "last_year": None})


def rows(table: pd.DataFrame, level: str) -> pd.DataFrame:
    return table[table["level"] == level].reset_index(drop=True)


def by_code(table: pd.DataFrame, level: str) -> pd.DataFrame:
    part = rows(table, level)
    assert part["code"].is_unique, level
    return part.set_index("code")


def county_province(grid: gpd.GeoDataFrame) -> dict[str, str]:
    return dict(grid[["county_code", "province_code"]].drop_duplicates("county_code").itertuples(index=False))


# --------------------------------------------------------------------------- 1. adds up


def test_adds_up_at_every_level(table, day, grid, cropland):
    events, fires = day
    assert list(table.columns) == REPORT_COLUMNS
    assert list(dict.fromkeys(table["level"])) == list(LEVELS)  # provinces first, then cities, counties, cells

    provinces, cities, counties, cells = (rows(table, level) for level in LEVELS)
    assert len(provinces) == grid["province_code"].nunique() == 7
    assert sorted(counties["code"]) == sorted(grid["county_code"].unique())  # every county of the grid, zeros too
    inside = events[events["cell_id"].notna()]
    assert sorted(cells["code"]) == sorted(inside["cell_id"].unique())  # only cells with events, not 44,279
    assert (cells["events"] > 0).all()

    # Cells -> counties (counts; cropland over *all* grid cells of the county).
    cell_sums = cells.groupby("parent_code")[COUNT_COLUMNS].sum()
    expected = cell_sums.reindex(counties["code"], fill_value=0).reset_index(drop=True)
    pd.testing.assert_frame_equal(counties[COUNT_COLUMNS], expected, check_names=False)
    crop_by_county = pd.Series(cropland.to_numpy(), index=grid["county_code"].to_numpy()).groupby(level=0).sum()
    np.testing.assert_allclose(counties["cropland_ha"], crop_by_county.reindex(counties["code"]).to_numpy(), rtol=1e-12)
    cell_crop = cropland.reindex(cells["code"].to_numpy(dtype=object)).to_numpy()
    np.testing.assert_allclose(cells["cropland_ha"], cell_crop, rtol=0)

    # Counties -> cities, keyed by (province, city) so an "unknown" city "" stays per province.
    province_of = county_province(grid)
    counties["province"] = counties["code"].map(province_of)
    county_sums = counties.groupby(["province", "parent_code"])[[*COUNT_COLUMNS, "cropland_ha"]].sum()
    city_key = pd.MultiIndex.from_frame(cities[["parent_code", "code"]])
    assert city_key.is_unique
    assert set(county_sums.index) == set(city_key)
    got = cities.set_index(city_key)
    np.testing.assert_array_equal(got[COUNT_COLUMNS].to_numpy(), county_sums.loc[city_key, COUNT_COLUMNS].to_numpy())
    np.testing.assert_allclose(got["cropland_ha"], county_sums.loc[city_key, "cropland_ha"], rtol=1e-12)

    # Cities -> provinces.
    city_sums = cities.groupby("parent_code")[[*COUNT_COLUMNS, "cropland_ha"]].sum()
    got = provinces.set_index("code")
    assert (provinces["parent_code"] == "").all()
    np.testing.assert_array_equal(got[COUNT_COLUMNS].to_numpy(), city_sums.loc[got.index, COUNT_COLUMNS].to_numpy())
    np.testing.assert_allclose(got["cropland_ha"], city_sums.loc[got.index, "cropland_ha"], rtol=1e-12)
    assert provinces["cropland_ha"].sum() == pytest.approx(cropland.sum(), rel=1e-12)

    # Totals: every event in a cell, each category, and the straw fire pixels.
    for level in ("province", "city", "county", "cell"):
        part = rows(table, level)
        assert part["events"].sum() == len(inside), level
        for category in CATEGORIES:
            assert part[category].sum() == (inside["category"] == category).sum(), (level, category)
        assert (part[list(CATEGORIES)].sum(axis=1) == part["events"]).all()
        in_cell = fires["cell_id"].notna() & (fires["category"] == "straw_suspect")
        assert part["straw_points"].sum() == in_cell.sum()
    assert table.attrs["outside_grid"] == OUTSIDE
    assert sum(table.attrs["outside_grid_by_category"].values()) == OUTSIDE
    assert table.attrs["outside_grid_points"] == int(fires["cell_id"].isna().sum())

    # Per cell, straight from the events.
    expected_cell = inside.groupby("cell_id").size()
    assert (cells.set_index("code")["events"] == expected_cell.reindex(cells["code"]).to_numpy()).all()
    for column in COUNT_COLUMNS:
        assert table[column].dtype == "int64"


# --------------------------------------------------------------------------- 2. density and ranks


def test_density_and_ranks(table):
    with_crop = table[table["cropland_ha"] > 0]
    expected = with_crop["straw_suspect"] / with_crop["cropland_ha"] * 1000
    np.testing.assert_allclose(with_crop["straw_per_1000ha"], expected, rtol=1e-12)
    for level in LEVELS:
        part = rows(table, level)
        for key, rank in (("straw_suspect", "rank_count"), ("straw_per_1000ha", "rank_density")):
            values = part[key].to_numpy(dtype="float64")
            # 1 + how many units of the level have strictly more: the "min" rank of ties.
            expected = np.array([1 + int((values > v).sum()) for v in values])
            assert (part[rank].to_numpy(dtype="int64") == expected).all(), (level, rank)
    counties = rows(table, "county")
    assert counties["straw_suspect"].duplicated().any()  # ties are exercised
    zero = counties[counties["straw_suspect"] == 0]
    assert len(zero) > 0 and zero["rank_count"].nunique() == 1  # zero-event units ranked too, all tied
    assert zero["rank_count"].iloc[0] == 1 + (counties["straw_suspect"] > 0).sum()


def test_ties_and_zero_cropland_on_a_small_grid(grid, counties):
    # Five real cells of five counties: A, B, E with 3 suspected straw-burning events,
    # C with 1, D with none (one industrial event).
    picks = grid.drop_duplicates("county_code").iloc[[0, 40, 80, 120, 160]]
    a, b, c, d, e = picks["cell_id"].tolist()
    events = make_events(
        [a] * 3 + [b] * 3 + [e] * 3 + [c] + [d],
        ["straw_suspect"] * 10 + ["industrial"],
    )
    fires = make_fires(events, np.ones(len(events), dtype="int64"))
    cropland = pd.Series([1000.0, 2000.0, 2000.0, 500.0], index=[a, b, e, d])  # C is missing: 0 ha
    table = report_table(events, fires, picks, counties, cropland, {"previous_day": None, "last_year": None})
    cells = by_code(table, "cell").loc[[a, b, e, c, d]]
    assert cells["straw_suspect"].tolist() == [3, 3, 3, 1, 0]
    assert cells["rank_count"].tolist() == [1, 1, 1, 4, 5]
    assert cells["cropland_ha"].tolist() == [1000.0, 2000.0, 2000.0, 0.0, 500.0]
    density = cells["straw_per_1000ha"]
    assert density[a] == pytest.approx(3.0) and density[b] == density[e] == pytest.approx(1.5)
    assert np.isnan(density[c])  # no cropland: NaN, not inf
    assert density[d] == 0.0
    assert cells["rank_density"].tolist()[:3] == [1, 2, 2]
    assert cells["rank_density"][d] == 4  # min rank after a tie (not 3)
    assert pd.isna(cells["rank_density"][c])
    # The counties of these cells rank the same way (one cell each).
    county_rows = by_code(table, "county").loc[picks["county_code"].tolist()]
    assert county_rows["rank_count"].tolist() == [1, 1, 4, 5, 1]


# --------------------------------------------------------------------------- 3. history


def test_history_columns_and_changes(grid, counties, cropland, day):
    events, fires = day
    rng = np.random.default_rng(11)
    today_cells = events["cell_id"].dropna().unique()
    other_cells = np.setdiff1d(grid["cell_id"].to_numpy(dtype=object), today_cells.to_numpy(dtype=object))
    only_yesterday = other_cells[:5]  # cells with no event today, straw events yesterday
    prev_cells = list(rng.choice(today_cells, 150)) + list(only_yesterday) * 2 + [pd.NA] * 4
    previous = make_events(prev_cells, list(rng.choice(["straw_suspect", "industrial"], len(prev_cells))), "p")
    previous.loc[len(prev_cells) - 14 : len(prev_cells) - 5, "category"] = "straw_suspect"  # only_yesterday: straw
    table = report_table(events, fires, grid, counties, cropland, {"previous_day": previous, "last_year": None})

    for column in ("previous_day", "change_previous_day", "last_year", "change_last_year"):
        assert table[column].dtype == "Int64"
    assert table["last_year"].isna().all() and table["change_last_year"].isna().all()

    cells = by_code(table, "cell")
    assert set(only_yesterday) <= set(cells.index)  # history alone brings a cell into the table
    straw_prev = previous[previous["category"] == "straw_suspect"].dropna(subset=["cell_id"]).groupby("cell_id").size()
    expected = straw_prev.reindex(cells.index, fill_value=0)
    assert (cells["previous_day"].to_numpy(dtype="int64") == expected.to_numpy()).all()
    assert (cells.loc[only_yesterday, "straw_suspect"] == 0).all()
    assert (cells.loc[only_yesterday, "previous_day"] == 2).all()
    assert (table["change_previous_day"] == table["straw_suspect"] - table["previous_day"]).all()
    # Adds up too.
    for level in ("province", "city", "county", "cell"):
        assert rows(table, level)["previous_day"].sum() == straw_prev.sum(), level

    # Both histories; last year = today exactly: changes all 0.
    both = report_table(events, fires, grid, counties, cropland, {"previous_day": previous, "last_year": events})
    assert (both["last_year"] == both["straw_suspect"]).all()
    assert (both["change_last_year"] == 0).all()
    pd.testing.assert_series_equal(
        both.set_index(["level", "code", "parent_code"])["previous_day"],
        table.set_index(["level", "code", "parent_code"])["previous_day"],
    )
    # No history at all: NA columns.
    none = report_table(events, fires, grid, counties, cropland, {"previous_day": None, "last_year": None})
    assert none["previous_day"].isna().all() and none["change_previous_day"].isna().all()


# --------------------------------------------------------------------------- 4. cities


def test_cities_from_the_county_layer_and_unknown_city(table, day, grid, counties, cropland):
    county_rows = by_code(table, "county")
    assert county_rows.loc["110101", "parent_code"] == "110000"  # Beijing districts: city code = province code
    assert county_rows.loc["410102", "parent_code"] == "410100"  # 中原区 in Zhengzhou
    cities = rows(table, "city").set_index(["parent_code", "code"])
    assert cities.loc[("110000", "110000"), "name"] == "北京市"
    assert cities.loc[("410000", "410100"), "name"] == "郑州市"
    assert cities.loc[("410000", "419001"), "name"] == "济源市"
    assert len(cities) == counties[counties["district_adcode"].isin(grid["county_code"])]["city_adcode"].nunique()

    # Drop a county with events from the layer: it falls into city "" "unknown" of its province.
    events, fires = day
    busy = county_rows[county_rows["events"] > 0].index[0]
    layer = counties[counties["district_adcode"] != busy]
    partial = report_table(events, fires, grid, layer, cropland, {"previous_day": None, "last_year": None})
    county = by_code(partial, "county").loc[busy]
    assert county["parent_code"] == ""
    province = grid.loc[grid["county_code"] == busy, "province_code"].iloc[0]
    unknown = rows(partial, "city").set_index(["parent_code", "code"]).loc[(province, "")]
    assert unknown["name"] == "unknown"
    assert unknown["events"] == county["events"] and unknown["cropland_ha"] == pytest.approx(county["cropland_ha"])
    assert rows(partial, "province")["events"].sum() == rows(table, "province")["events"].sum()
    pd.testing.assert_frame_equal(rows(partial, "province"), rows(table, "province"))


# --------------------------------------------------------------------------- 5. files


MALICIOUS = "<img src=x onerror=alert(1)>"


def test_write_report(tmp_path, day, grid, counties, cropland):
    events, fires = day
    bad_grid = grid.copy()
    events_per_county = rows(
        report_table(events, fires, grid, counties, cropland, {"previous_day": None, "last_year": None}), "county"
    ).set_index("code")["straw_suspect"]
    victim = events_per_county.idxmax()  # in the top-15 chart as well as the tables
    bad_grid["county_name"] = bad_grid["county_name"].where(bad_grid["county_code"] != victim, MALICIOUS)
    previous = events.iloc[::3]
    table = report_table(events, fires, bad_grid, counties, cropland, {"previous_day": previous, "last_year": None})

    folder = tmp_path / "out"
    (folder).mkdir()
    (folder / "report.csv").write_text("stale")  # replaced, not appended to
    paths = write_report(table, folder, day=DAY, title="秸秆焚烧日报 Straw burning daily report")
    assert paths == [folder / "report.csv", folder / "report.html"]
    assert all(p.exists() for p in paths)
    assert not list(folder.glob("*.partial"))

    raw = paths[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM for Excel
    back = pd.read_csv(paths[0], encoding="utf-8-sig", dtype={"code": str, "parent_code": str, "name": str})
    assert list(back.columns) == REPORT_COLUMNS
    assert len(back) == len(table)
    assert back["code"].fillna("").tolist() == table["code"].tolist()
    assert back["level"].tolist() == table["level"].tolist()
    for column in REPORT_COLUMNS[4:]:
        if column == "cropland_ha":  # rounded to 0.1 ha in the CSV
            np.testing.assert_allclose(back[column].to_numpy(), table[column].to_numpy(), atol=0.05)
        elif column == "straw_per_1000ha":  # 3 significant digits
            np.testing.assert_allclose(back[column].to_numpy(), table[column].to_numpy(), rtol=5e-3)
        elif column == "landcover_coverage":
            np.testing.assert_allclose(back[column].to_numpy(), table[column].to_numpy(), atol=5e-4)
        else:
            expected = table[column].astype("Int64")
            got = back[column].astype("Int64")
            assert got.isna().tolist() == expected.isna().tolist(), column
            assert (got.fillna(-999) == expected.fillna(-999)).all(), column
    assert MALICIOUS in raw.decode("utf-8-sig")  # text kept as is in the CSV

    page = paths[1].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    assert "<script src" not in lowered and "http://" not in lowered and "https://" not in lowered
    assert "<link" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "<svg" in page
    assert "&lt;img" in page and "<img src=x" not in page
    assert "2022-06-03" in page and "北京时间" in page and "Beijing time" in page
    assert "疑似秸秆焚烧" in page and "suspected straw burning" in page
    for heading in ("省级 provinces", "地市级 cities", "县级 counties", "网格 grid cells"):
        assert heading in page
    total = int(rows(table, "province")["straw_suspect"].sum())
    assert f"suspected straw burning: {total:,}" in page
    assert f"events outside the grid: {OUTSIDE}" in page
    assert 'class="num' in page and "+" in page  # right-aligned numbers, signed changes
    # Cell table limited to 100 rows; county table has every county.
    cell_section = page.split("网格 grid cells", 1)[1]
    assert cell_section.count("<tr>") == 1 + min(100, len(rows(table, "cell")))
    assert page.count("<svg") == 2


class Seen(HTMLParser):
    """The elements of a page and the text inside each kind of element, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.open: list[str] = []
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in ("meta", "br"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self.open:
            self.text.setdefault(self.open[-1], []).append(data)


def test_hostile_names_are_shown_as_text(grid, counties):
    # Two real cells of two counties; one cell's name is markup, its county's name has & and quotes.
    picks = grid.drop_duplicates("county_code").iloc[[0, 40]].copy()
    a, b = picks["cell_id"].tolist()
    picks["cell_name"] = picks["cell_name"].where(picks["cell_id"] != a, MALICIOUS)
    picks["county_name"] = picks["county_name"].where(picks["cell_id"] != a, 'A & "B" <i>')
    events = make_events([a] * 3 + [b], ["straw_suspect"] * 4)
    fires = make_fires(events, np.ones(len(events), dtype="int64"))
    cropland = pd.Series([1000.0, 2000.0], index=[a, b])
    land = pd.DataFrame({"area_ha": [2500.0, 2500.0], "landcover_ha": [1000.0, 2500.0]}, index=[a, b])
    table = report_table(events, fires, picks, counties, cropland, {"previous_day": None, "last_year": None}, land=land)
    for language in ("both", "zh", "en"):
        page = report_html(table, day=DAY, title="日报 <b>&", language=language, home="index.html")
        seen = Seen()
        seen.feed(page)
        assert "img" not in seen.tags and "i" not in seen.tags and "b" not in seen.tags, language
        assert MALICIOUS in seen.text["td"], language  # the cell's name, as text in the cell table
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        county = 'A & "B" <i>'  # in the county table and, with its city, the bar charts (SVG <text> and <title>)
        assert county in seen.text["td"] and seen.text["text"].count(f"{county}（北京市）") == 2, language
        assert f"{county}（北京市）: 3" in seen.text["title"], language
        assert seen.text["h1"] == ["日报 <b>&"] and seen.text["title"][0] == "日报 <b>&"
        if language != "en":  # the land-cover warning names the county (least covered first), in bold lead text
            assert any(t.startswith('（A & "B" <i> 40%') for t in seen.text["li"]), language
        assert seen.tags.count("tr") == 4 * (1 + 2)  # head and 2 rows for each level: 2 provinces, cities, counties, cells


# --------------------------------------------------------------------------- 6. empty day


def test_empty_day(tmp_path, grid, counties, cropland):
    events = make_events([], [])
    fires = make_fires(events, np.array([], dtype="int64"))
    table = report_table(events, fires, grid, counties, cropland, {"previous_day": None, "last_year": None})
    assert list(table.columns) == REPORT_COLUMNS
    assert set(table["level"]) == {"province", "city", "county"}  # no cell rows
    assert len(rows(table, "county")) == grid["county_code"].nunique()
    assert (table[COUNT_COLUMNS] == 0).all().all()
    assert (table["straw_per_1000ha"] == 0).all()
    assert (table["rank_count"] == 1).all() and (table["rank_density"] == 1).all()
    assert table.attrs["outside_grid"] == 0
    paths = write_report(table, tmp_path, day=DAY, title="秸秆焚烧日报")
    page = paths[1].read_text(encoding="utf-8")
    assert page.rstrip().endswith("</html>")
    assert "suspected straw burning: 0" in page
    back = pd.read_csv(paths[0], encoding="utf-8-sig", dtype={"code": str})
    assert len(back) == len(table)
