"""Build the agency fire-point tables in this folder from real FIRMS points.

Run from the project root: ``python tests/data/tables/make_tables.py``.

No real table of the National Satellite Meteorological Centre (NSMC) or of a
provincial bulletin could be had here, so both are written **to the published
layout from real detections**: the 229 MODIS fire points over Heilongjiang in
``tests/data/fires/MODIS_C6_1_Global_24h_2025-11-18_heilongjiang-subset.csv``
(real FIRMS rows, 2025-11-18 05:59 UTC to 2025-11-19 06:39 UTC). The place
names are taken by point-in-polygon from the Tianditu county layer
``geodata/china_counties.parquet`` (the same data as
``shared/data/boundaries/china_counties_wgs84.gpkg``) and, for townships,
from ``tests/data/songbei_townships_wgs84.geojson`` (the only township
outlines of the area at hand: other rows leave 乡镇 empty rather than guess).

- ``nsmc_fire_points_heilongjiang_20251118-19.xlsx``: the centre's sheet,
  headers ``时间, 中心经度, 中心纬度, 省, 市, 县`` on row 1, one row per FIRMS
  point in file order; 时间 is the detection time in **Beijing time** as an
  Excel date-time cell (``yyyy-mm-dd hh:mm``), coordinates as numbers with
  FIRMS' 5 decimals.
- ``heilongjiang_bulletin_20251119.csv``: a provincial bulletin's detail
  table for Beijing date 2025-11-19 (87 points), as in the published Jiangxi
  bulletin (sthjt.jiangxi.gov.cn, 2019-11-25, 表2): a caption line, then
  ``设区市, 县(市、区), 乡镇, 中心经度, 中心纬度, 卫星过境日期``; coordinates in
  degrees-minutes-seconds with 3 decimals of seconds (``126°26'27.636"E``),
  the date as ``2025年11月19日`` without a time of day; GB18030-encoded, as
  Chinese spreadsheet software saves CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
FIRMS = ROOT / "tests/data/fires/MODIS_C6_1_Global_24h_2025-11-18_heilongjiang-subset.csv"
COUNTIES = ROOT / "geodata/china_counties.parquet"
TOWNSHIPS = ROOT / "tests/data/songbei_townships_wgs84.geojson"
XLSX = HERE / "nsmc_fire_points_heilongjiang_20251118-19.xlsx"
BULLETIN = HERE / "heilongjiang_bulletin_20251119.csv"


def labelled_points() -> pd.DataFrame:
    """The FIRMS rows (text as written) with Beijing time and Tianditu province/city/county, township where known."""
    firms = pd.read_csv(FIRMS, dtype=str, keep_default_na=False)
    utc = pd.to_datetime(firms["acq_date"] + " " + firms["acq_time"].str.zfill(4), format="%Y-%m-%d %H%M", utc=True)
    firms["bjt"] = utc.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
    points = gpd.GeoDataFrame(firms, geometry=gpd.points_from_xy(firms["longitude"].astype(float), firms["latitude"].astype(float)), crs=4326)
    counties = gpd.read_parquet(COUNTIES)[["province_name", "city_name", "district_name", "geometry"]]
    labelled = gpd.sjoin(points, counties, predicate="within", how="left").drop(columns="index_right")
    townships = gpd.read_file(TOWNSHIPS)
    townships = townships[townships.is_valid][["township", "geometry"]]
    labelled = gpd.sjoin(labelled, townships, predicate="within", how="left").drop(columns="index_right")
    assert labelled.index.is_unique and len(labelled) == len(firms)
    return pd.DataFrame(labelled.drop(columns="geometry")).sort_index()


def dms(value: float, positive: str, negative: str) -> str:
    """Degrees-minutes-seconds as the Jiangxi bulletin writes them: 116°14'37.289"E (no zero padding)."""
    thousandths = round(abs(value) * 3600 * 1000)
    degrees, rest = divmod(thousandths, 3600 * 1000)
    minutes, rest = divmod(rest, 60 * 1000)
    return f"{degrees}°{minutes}'{rest / 1000:.3f}\"{positive if value >= 0 else negative}"


def write_xlsx(points: pd.DataFrame) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "火点信息"
    sheet.append(["时间", "中心经度", "中心纬度", "省", "市", "县"])
    for p in points.itertuples():
        sheet.append([p.bjt.to_pydatetime(), float(p.longitude), float(p.latitude), p.province_name, p.city_name, p.district_name])
    for (cell,) in sheet.iter_rows(min_row=2, max_col=1):
        cell.number_format = "yyyy-mm-dd hh:mm"
    book.save(XLSX)


def write_bulletin(points: pd.DataFrame) -> None:
    day = points[points["bjt"].dt.date == dt.date(2025, 11, 19)].sort_values(["city_name", "district_name"], kind="stable")
    with BULLETIN.open("w", encoding="gb18030", newline="") as f:
        out = csv.writer(f, lineterminator="\r\n")
        out.writerow(["表2 黑龙江省秸秆焚烧遥感监测火点详情", "", "", "", "", ""])
        out.writerow(["设区市", "县(市、区)", "乡镇", "中心经度", "中心纬度", "卫星过境日期"])
        for p in day.itertuples():
            township = p.township if isinstance(p.township, str) else ""
            out.writerow([p.city_name, p.district_name, township, dms(float(p.longitude), "E", "W"),
                          dms(float(p.latitude), "N", "S"), f"{p.bjt.year}年{p.bjt.month}月{p.bjt.day}日"])


def main() -> None:
    points = labelled_points()
    write_xlsx(points)
    write_bulletin(points)


if __name__ == "__main__":
    main()
