"""Fire-point tables from other agencies (NSMC sheets, provincial bulletins): reader, config, nightly run.

No real NSMC or bulletin file could be had here. The tables in
``tests/data/tables/`` are built to the published layout (the centre's
``时间, 中心经度, 中心纬度, 省, 市, 县`` sheet; a provincial bulletin's detail
table with ``乡镇``, ``卫星过境日期`` and degrees-minutes-seconds) from the real
FIRMS MODIS points over Heilongjiang of 2025-11-18/19 in
``tests/data/fires/MODIS_C6_1_Global_24h_2025-11-18_heilongjiang-subset.csv``,
by ``tests/data/tables/make_tables.py``. So every position and time read from
a table can be checked against the FIRMS row it was written from.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely

from pipelines.core.schema import FIRE_DTYPES
from pipelines.core.settings import ConfigError
from pipelines.fires.load import expand_tables, read_table_fires
from pipelines.fires.readers import read_points
from pipelines.fires.readers.tables import TableFormat, parse_angle, read_table_file, satellite_name
from pipelines.grid.cells import load_counties, make_grid
from pipelines.run.cli import main
from pipelines.run.config import load_config
from pipelines.run.nightly import EXIT_OK

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
TABLES = DATA / "tables"
XLSX = TABLES / "nsmc_fire_points_heilongjiang_20251118-19.xlsx"
BULLETIN = TABLES / "heilongjiang_bulletin_20251119.csv"
FIRMS = DATA / "fires" / "MODIS_C6_1_Global_24h_2025-11-18_heilongjiang-subset.csv"
SONGBEI_FIRE = (126.44101, 45.75617)  # the FIRMS point of 2025-11-19 06:37 UTC in Songbei District
ARCSEC = 1 / 3600


def metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance (m) on a 6,371 km sphere."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - np.asarray(lon1)) / 2) ** 2
    return 2 * 6_371_000 * np.arcsin(np.sqrt(a))


@pytest.fixture(scope="module")
def firms() -> pd.DataFrame:
    frame, skips = read_points(FIRMS)
    assert skips == [] and len(frame) == 229
    return frame


def nsmc(**kwargs: object) -> TableFormat:
    return TableFormat(path=("*.xlsx",), **{"satellite": "FY-3D", **kwargs})


def bulletin(**kwargs: object) -> TableFormat:
    return TableFormat(path=("*.csv",), **{"header_row": 2, "satellite": "FY-3D", "overpass_times": {"FY-3D": "14:00"}, **kwargs})


def nearest(table: pd.DataFrame, firms: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each table row: the index of the nearest FIRMS point and its distance (m)."""
    d = metres(table["lon"].to_numpy()[:, None], table["lat"].to_numpy()[:, None], firms["lon"].to_numpy()[None, :], firms["lat"].to_numpy()[None, :])
    at = d.argmin(axis=1)
    return at, d[np.arange(len(table)), at]


def test_nsmc_sheet_round_trips_real_points(firms: pd.DataFrame) -> None:
    frame, skips = read_table_file(XLSX, nsmc())
    assert skips == []
    assert list(frame.columns) == list(FIRE_DTYPES)
    assert frame.dtypes.astype(str).to_dict() == {c: str(t) for c, t in FIRE_DTYPES.items()}
    # The sheet holds the FIRMS rows in file order: sheet row r is FIRMS line r.
    assert frame["source_row"].tolist() == firms["source_row"].tolist() == list(range(2, 231))
    assert metres(frame["lon"], frame["lat"], firms["lon"], firms["lat"]).max() < 1.0
    # 时间 is Beijing time in the sheet: stored as the FIRMS UTC instant.
    assert frame["time_utc"].tolist() == firms["time_utc"].tolist()
    assert frame["time_bjt"].iloc[0] == pd.Timestamp("2025-11-18 13:59", tz="Asia/Shanghai")
    assert set(frame["sensor"]) == {"MERSI"} and set(frame["satellite"]) == {"FY-3D"}
    assert (frame["scan_km"] == 1.0).all() and (frame["track_km"] == 1.0).all()
    assert frame["confidence"].isna().all() and frame["confidence_level"].isna().all()
    assert not frame["product"].str.contains("overpass").any()
    # The centre's place names, as written in the sheet.
    sheet = openpyxl.load_workbook(XLSX, read_only=True).worksheets[0]
    written = pd.DataFrame(list(sheet.iter_rows(min_row=2, values_only=True)), columns=["t", "lon", "lat", "province", "city", "county"])
    for ours in ("province", "city", "county"):
        assert frame[f"agency_{ours}"].tolist() == written[ours].tolist()
    assert set(frame["agency_province"]) == {"黑龙江省"} and frame["agency_township"].isna().all()
    assert frame["agency_county"].value_counts()["宾县"] == 74


def test_bulletin_dms_and_date_only_rows(firms: pd.DataFrame) -> None:
    frame, skips = read_table_file(BULLETIN, bulletin())
    assert skips == [] and len(frame) == 87
    assert frame["source_row"].min() == 3  # caption on line 1, header on line 2
    on_day = firms[firms["time_bjt"].dt.date == dt.date(2025, 11, 19)].reset_index(drop=True)
    at, distance = nearest(frame, on_day)
    assert distance.max() < 1.0  # seconds written to 0.001" (3 cm)
    assert len(set(at)) == 87  # one bulletin row per FIRMS point
    # A date without a time of day: the configured overpass, in Beijing time, and the row says so.
    assert (frame["time_bjt"] == pd.Timestamp("2025-11-19 14:00", tz="Asia/Shanghai")).all()
    assert (frame["time_utc"] == pd.Timestamp("2025-11-19 06:00", tz="UTC")).all()
    assert frame["product"].str.contains("时间取配置的过境时间 14:00 Asia/Shanghai / date only: time is the configured overpass", regex=False).all()
    # The bulletin names city, county and township, not the province.
    assert frame["agency_province"].isna().all()
    assert set(frame["agency_city"]) == {"哈尔滨市", "佳木斯市", "齐齐哈尔市", "绥化市"}
    township = frame[frame["agency_township"].notna()]
    assert len(township) == 1 and township.iloc[0]["agency_county"] == "松北区"
    assert metres(township["lon"], township["lat"], *SONGBEI_FIRE).max() < 1.0
    outlines = gpd.read_file(DATA / "songbei_townships_wgs84.geojson")
    inside = outlines[outlines.is_valid & outlines.contains(shapely.Point(*SONGBEI_FIRE))]
    assert inside["township"].tolist() == [township.iloc[0]["agency_township"]]


def test_overpass_time_in_utc_and_the_read_counts_it() -> None:
    fmt = bulletin(overpass_times={"FY3D": "05:40 UTC"})  # satellite names are matched as written by agencies
    points, skips, counts = read_table_fires([(BULLETIN, fmt)], day=dt.date(2025, 11, 19)).compute(scheduler="sync")
    assert skips == [] and (points["time_utc"] == pd.Timestamp("2025-11-19 05:40", tz="UTC")).all()
    assert counts[BULLETIN.name] == {"rows_read": 87, "other_dates": 0, "rows_kept": 87, "time_from_overpass": 87}
    assert points["product"].str.contains("05:40 UTC").all()


def test_date_only_rows_without_an_overpass_time_are_skipped_not_invented() -> None:
    frame, skips = read_table_file(BULLETIN, bulletin(overpass_times={"FY-4B": "13:00"}))
    assert frame.empty and len(skips) == 87
    assert {s.row for s in skips} == set(range(3, 90))
    assert {(s.field, s.reason) for s in skips} == {
        ("卫星过境日期", "date without a time of day, and no [[fires.tables]] overpass_times entry for satellite FY-3D")
    }


@pytest.mark.parametrize(
    "text",
    ["126°26'27.6\"E", "126°26′27.6″E", "126 26 27.6", "126:26:27.6", "E126°26'27.6\"", "东经126°26'27.6\"",
     "126度26分27.6秒", "126°26.46'", "126.44101", "126.44101°E"],
)
def test_dms_forms_of_a_real_point(text: str) -> None:
    """The Songbei fire's longitude in the forms agencies write, to 0.1": within half of that."""
    value, why = parse_angle(pd.Series([text]), "lon")
    assert why.iloc[0] == "" and abs(value.iloc[0] - SONGBEI_FIRE[0]) <= 0.05 * ARCSEC + 1e-12


def test_dms_latitude_and_bad_forms() -> None:
    value, why = parse_angle(pd.Series(["45°45'22.2\"N", "45 45 22.2 S", "北纬45°45'22.2\""]), "lat")
    assert (why == "").all()
    assert np.allclose(value, [SONGBEI_FIRE[1], -SONGBEI_FIRE[1], SONGBEI_FIRE[1]], atol=0.05 * ARCSEC)
    bad = ["126°61'27.6\"E", "126°26'60.0\"E", "45°45'22.2\"N", "126.5°26'", "126°26'27.6\"EE", "东经", ""]
    _, why = parse_angle(pd.Series(bad), "lon")
    assert why.tolist() == ["minutes or seconds of 60 or more", "minutes or seconds of 60 or more", "hemisphere",
                            "unparsable", "unparsable", "unparsable", "missing"]


def test_bad_bulletin_rows_are_skipped_one_by_one(tmp_path: Path) -> None:
    rows = list(csv.reader(io.StringIO(BULLETIN.read_bytes().decode("gb18030"))))
    # Line n is rows[n - 1]; fields: 设区市, 县(市、区), 乡镇, 中心经度, 中心纬度, 卫星过境日期.
    rows[2][3] = re.sub(r"°\d+'", "°63'", rows[2][3])  # minutes of 63
    rows[4][4] = re.sub(r"^\d+", "96", rows[4][4])  # latitude 96°
    rows[6][5] = "2025年11月31日"  # no such day
    rows[8][3] = "东经"  # no number
    rows[10][5] = "19/11/2025"  # day first: not a form we read
    rows.append(["合计", "", "", "", "", ""])  # a totals line
    broken = tmp_path / "bulletin_broken.csv"
    with broken.open("w", encoding="gb18030", newline="") as f:
        csv.writer(f, lineterminator="\r\n").writerows(rows)

    frame, skips = read_table_file(broken, bulletin())
    got = [(s.row, s.field, re.sub(r" '.*", "", s.reason)) for s in skips]
    assert got == [
        (3, "中心经度", "longitude has minutes or seconds of 60 or more"),
        (5, "中心纬度", "latitude outside -90..90:"),
        (7, "卫星过境日期", "unparsable date"),
        (9, "中心经度", "longitude unparsable; expected decimal degrees or degrees-minutes-seconds (126°38'24.5\"E, 126 38 24.5)"),
        (11, "卫星过境日期", "unparsable date"),
        (90, "中心纬度", "latitude missing"),
    ]
    assert all(s.file == "bulletin_broken.csv" for s in skips)
    assert len(frame) == 87 - 5 and not set(frame["source_row"]) & {3, 5, 7, 9, 11, 90}


def test_bad_sheet_rows_use_sheet_row_numbers(tmp_path: Path, firms: pd.DataFrame) -> None:
    book = openpyxl.load_workbook(XLSX)
    sheet = book.worksheets[0]
    sheet["A5"] = "2025-11-18 25:61"  # no such time
    sheet["C10"] = 145.25358  # latitude out of range
    sheet["B12"] = "126°38'24.5\""  # a DMS cell among numbers is fine
    for cell in sheet[20]:
        cell.value = None  # a blank row is not data
    sheet.insert_rows(1)  # a caption row above the header
    sheet["A1"] = "秸秆焚烧火点信息"
    path = tmp_path / "nsmc_broken.xlsx"
    book.save(path)

    frame, skips = read_table_file(path, nsmc(header_row=2))
    assert [(s.row, s.field) for s in skips] == [(6, "时间"), (11, "中心纬度")]
    assert skips[0].reason.startswith("unparsable date '2025-11-18 25:61'")
    assert len(frame) == 229 - 3 and frame["source_row"].max() == 231 and 21 not in set(frame["source_row"])
    row = frame[frame["source_row"] == 13].iloc[0]
    assert abs(row["lon"] - (126 + 38 / 60 + 24.5 / 3600)) < 1e-9
    assert row["time_utc"] == firms.loc[firms["source_row"] == 12, "time_utc"].iloc[0]
    # Past the blank row, sheet row r + 1 (the caption pushed it down) is still FIRMS line r.
    after = frame[frame["source_row"] > 21].merge(firms.assign(source_row=firms["source_row"] + 1), on="source_row")
    assert len(after) == 210 and metres(after["lon_x"], after["lat_x"], after["lon_y"], after["lat_y"]).max() < 1.0
    assert (after["time_utc_x"] == after["time_utc_y"]).all()

    _, skips = read_table_file(path, nsmc(sheet="Sheet9"))
    assert len(skips) == 1 and skips[0].row is None and "no sheet 'Sheet9'" in skips[0].reason
    _, skips = read_table_file(path, nsmc())  # the header is not on row 1
    assert len(skips) == 1 and "no column for time, lon, lat" in skips[0].reason and "header_row" in skips[0].reason


def test_satellite_per_row_clock_column_and_utc_table(tmp_path: Path, firms: pd.DataFrame) -> None:
    """A table in UTC naming the satellite per row, with the time of day in its own column."""
    raw = pd.read_csv(FIRMS, dtype=str)
    table = pd.DataFrame({
        "日期": raw["acq_date"].str.replace("-", "/"),
        "时刻": raw["acq_time"].str[:2] + ":" + raw["acq_time"].str[2:],
        "经度": raw["longitude"],
        "纬度": raw["latitude"],
        "卫星": raw["satellite"].map({"A": "Aqua", "T": "Terra"}),
        "可信度": raw["confidence"],
        "FRP": raw["frp"],
    })
    table.loc[len(table)] = ["2025/11/19", "06:37", "126.44101", "45.75617", "GF-4", "50", "1.0"]
    table.loc[len(table)] = ["2025/11/19", "06:37", "126.44101", "45.75617", "", "50", "1.0"]
    path = tmp_path / "utc_table.csv"
    table.to_csv(path, index=False, encoding="utf-8")

    frame, skips = read_table_file(path, TableFormat(path=("*.csv",), timezone="UTC"))
    assert [(s.row, s.field) for s in skips] == [(231, "卫星"), (232, "卫星")]
    assert "unknown satellite 'GF-4'" in skips[0].reason and "no satellite" in skips[1].reason
    assert frame["time_utc"].tolist() == firms["time_utc"].tolist()
    assert frame["sensor"].tolist() == firms["sensor"].tolist() and frame["satellite"].tolist() == firms["satellite"].tolist()
    assert frame["confidence"].tolist() == firms["confidence"].tolist() and np.allclose(frame["frp_mw"], firms["frp_mw"])
    # The same detection from two sources has one fire_id: dedupe keeps one.
    assert frame["fire_id"].tolist() == firms["fire_id"].tolist()


def test_satellite_names_as_agencies_write_them() -> None:
    assert [satellite_name(s) for s in ("FY3D", "FY-3D", "fy_3d", "风云三号D星", "风云4B", "FY-4B/AGRI", "NPP", "GF-4")] == [
        "FY-3D", "FY-3D", "FY-3D", "FY-3D", "FY-4B", "FY-4B", "Suomi NPP", None]


def config_text(tables: str) -> str:
    """The project's config.toml with absolute paths, and ``tables`` appended."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace('"geodata/', f'"{ROOT}/geodata/')
    return text + "\n" + tables


def test_the_commented_example_in_config_toml_loads(tmp_path: Path) -> None:
    lines = (ROOT / "config.toml").read_text(encoding="utf-8").splitlines()
    start = lines.index("# [[fires.tables]]")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("# "))
    lines[start:end] = [line[2:] for line in lines[start:end]]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    (table,) = load_config(path).fires.tables
    assert table.path == ("geodata/fires/nsmc/*{date:%Y%m%d}*.xlsx",) and table.satellite == "FY-3D"
    assert table.overpass_times == {"FY-3D": "13:30"} and table.columns == {} and table.timezone == "Asia/Shanghai"
    assert load_config(ROOT / "config.toml").fires.tables == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('overpass_times = { "FY-3D" = "25:00" }', '#1 overpass_times.FY-3D = \'25:00\': expected "HH:MM"'),
        ('overpass_times = "13:30"', "[fires.tables[0]] overpass_times = '13:30': expected a table"),
        ('columns = { longitude = "经度" }', "#1 columns.longitude: unknown field; expected one of time, clock, lon, lat"),
        ('timezone = "Beijing"', "#1 timezone = 'Beijing': expected a time zone name"),
        ('confidence = "very"', "#1 confidence = 'very': expected"),
        ('satellite = "GF-4"', "#1 satellite = 'GF-4' is not one gridwatch knows"),
        ('satellite = "GF-4"\nsensor = "PMS"', "#1 pixel_km = 0.0: expected km > 0 (sensor PMS has no default"),
        ("header_row = 0", "#1 header_row = 0: expected a row number >= 1"),
        ("pixel_km = -1.0", "#1 pixel_km = -1.0: expected km > 0"),
        ("shet = \"火点\"", "unknown key 'shet' in [fires.tables[0]]; did you mean 'sheet'?"),
    ],
)
def test_bad_table_settings_name_the_key(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(f'[[fires.tables]]\npath = ["x/*.xlsx"]\n{entry}\n'), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_a_file_is_read_with_the_first_entry_that_matches(tmp_path: Path) -> None:
    first, second = TableFormat(path=(f"{TABLES}/*.xlsx",), satellite="FY-3D"), TableFormat(path=(f"{TABLES}/*",), satellite="FY-4B")
    files = expand_tables((first, second), tmp_path)
    assert [(p.name, f.satellite) for p, f in files] == [(BULLETIN.name, "FY-4B"), ("make_tables.py", "FY-4B"), (XLSX.name, "FY-3D")]


# --- the nightly run with two agency tables over a tiny grid ------------------------------------------------


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One nightly run for 2025-11-19 over a 5 km grid of Bin county and Songbei district (Harbin).

    The NSMC sheet is configured as FY-3D (MERSI, 1 km), the bulletin as FY-4B (AGRI, 2 km) with a
    13:30 Beijing overpass; a copy of the sheet under another name matches no entry and is not read;
    the points pattern also matches the bulletin, which is read only as its table.
    """
    tmp = tmp_path_factory.mktemp("tables_nightly")
    project = load_config(ROOT / "config.toml")
    counties = load_counties(project.counties)
    grid = make_grid(counties[counties["county_code"].isin(["230125", "230109"])], cell_km=5.0)
    grid.to_parquet(tmp / "grid.parquet")
    inbox = tmp / "inbox"
    inbox.mkdir()
    for source in (XLSX, BULLETIN):
        (inbox / source.name).write_bytes(source.read_bytes())
    (inbox / "other_agency_20251119.xlsx").write_bytes(XLSX.read_bytes())
    config = f"""
[output]
dir = "{tmp}/out"
[region]
bbox = [121.0, 43.0, 135.5, 53.6]
[grid]
path = "{tmp}/grid.parquet"
id_column = "cell_id"
name_column = "cell_name"
county_column = "county_code"
supervisor_column = "supervisor"
county_name_column = "county_name"
province_column = "province_code"
province_name_column = "province_name"
[counties]
path = "{ROOT}/geodata/china_counties.parquet"
code_column = "district_adcode"
name_column = "district_name"
province_code_column = "province_adcode"
province_name_column = "province_name"
[make_grid]
cell_km = 5.0
provinces = ["230000"]
out = "{tmp}/unused.parquet"
[fires]
points = ["{inbox}/*.csv"]
[[fires.tables]]
path = ["{inbox}/nsmc_*.xlsx"]
satellite = "FY-3D"
[[fires.tables]]
path = ["{inbox}/*bulletin_{{date:%Y%m%d}}.csv"]
header_row = 2
satellite = "FY-4B"
overpass_times = {{ "FY-4B" = "13:30" }}
[windows]
mode = "sun"
after_work_start_h = -1.5
after_work_end_h = 0.5
first_half_night_end = "24:00"
fixed_after_work = ["17:00", "19:00"]
fixed_first_half_night = ["19:00", "24:00"]
[maps]
tiles = ""
"""
    path = tmp / "config.toml"
    path.write_text(config, encoding="utf-8")
    assert main(["nightly", "--date", "2025-11-19", "--config", str(path), "--quiet"]) == EXIT_OK
    return tmp / "out" / "2025-11-19"


def test_nightly_reads_the_configured_tables(table_run: Path) -> None:
    manifest = json.loads((table_run / "run.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "ok" and manifest["skipped"] == []
    assert manifest["inputs"]["fires"] == [] and manifest["inputs"]["rasters"] == []
    tables = {Path(t["path"]).name: t for t in manifest["inputs"]["tables"]}
    assert set(tables) == {XLSX.name, BULLETIN.name}  # other_agency_20251119.xlsx matches no entry
    assert tables[XLSX.name]["entry"] == 1 and tables[BULLETIN.name]["entry"] == 2
    assert {k: tables[XLSX.name][k] for k in ("rows_read", "outside_region", "other_dates", "rows_kept", "time_from_overpass")} == {
        "rows_read": 229, "outside_region": 0, "other_dates": 142, "rows_kept": 87, "time_from_overpass": 0}
    assert {k: tables[BULLETIN.name][k] for k in ("rows_read", "other_dates", "rows_kept", "time_from_overpass")} == {
        "rows_read": 87, "other_dates": 0, "rows_kept": 87, "time_from_overpass": 87}
    assert len(tables[XLSX.name]["sha256"]) == 64
    assert manifest["counts"]["by_sensor"] == {"AGRI": 87, "MERSI": 87} and manifest["counts"]["times_from_overpass"] == 87


def test_nightly_fires_keep_the_agency_labels(table_run: Path) -> None:
    fires = gpd.read_parquet(table_run / "fires.parquet")
    assert len(fires) == 174
    mersi, agri = fires[fires["sensor"] == "MERSI"], fires[fires["sensor"] == "AGRI"]
    assert set(mersi["satellite"]) == {"FY-3D"} and (mersi["scan_km"] == 1.0).all()
    assert set(agri["satellite"]) == {"FY-4B"} and (agri["scan_km"] == 2.0).all()
    assert (agri["time_bjt"] == pd.Timestamp("2025-11-19 13:30", tz="Asia/Shanghai")).all()
    assert set(mersi["time_bjt"].dt.strftime("%H:%M")) == {"09:11", "12:59", "14:37", "14:39"}
    assert (mersi["agency_province"] == "黑龙江省").all() and agri["agency_province"].isna().all()
    # Fires in the grid: gridwatch's county beside the agency's (both Tianditu names here, so they agree).
    inside = fires[fires["cell_id"].notna()]
    assert len(inside) == 2 * 38
    assert (inside["agency_county"] == inside["county_name"]).all() and set(inside["county_name"]) == {"宾县", "松北区"}
    assert (fires.loc[fires["cell_id"].isna(), "agency_county"].notna()).all()
    assert fires.loc[fires["agency_township"].notna(), "agency_township"].tolist() == ["松北街道"]
