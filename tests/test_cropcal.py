"""播种前 before sowing: the sowing table, the WorldCereal rasters and real fires."""

from __future__ import annotations

import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from pipelines.core.settings import DEFAULT_REGIONS
from pipelines.fires.readers import read_points
from pipelines.windows import sowing as cropcal

ROOT = Path(__file__).resolve().parent.parent
SITES_CSV = (
    Path(__file__).resolve().parent / "data" / "crop_calendar" / "sample_sites_doy.csv"
)
FIRES_7D = (
    ROOT
    / "geodata"
    / "fires"
    / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv"
)

# City centres (WGS84, degrees) of the named sites; see tests/data/crop_calendar/SOURCES.md.
SITES = {
    "Changchun_Jilin": (125.32, 43.82),
    "Harbin_HLJ": (126.63, 45.75),
    "Hefei_Anhui": (117.23, 31.82),
    "Jinan_Shandong": (117.00, 36.65),
    "Shenyang_Liaoning": (123.43, 41.80),
    "Shijiazhuang_Hebei": (114.51, 38.04),
    "Suqian_NJiangsu": (118.28, 33.96),
    "Xuzhou_Jiangsu": (117.18, 34.26),
    "Yangzhou_Jiangsu": (119.41, 32.39),
    "Zhengzhou_Henan": (113.63, 34.75),
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    table, _ = cropcal.read_sowing_table(cropcal.SOWING_TABLE, cropcal.SUBREGION_CITIES)
    return table


@pytest.fixture(scope="module")
def counties() -> gpd.GeoDataFrame:
    return gpd.read_parquet(ROOT / "geodata" / "china_counties.parquet")


@pytest.fixture(scope="module")
def june_fires() -> pd.DataFrame:
    fires, skips = read_points(FIRES_7D)
    assert not skips
    return fires


def _fire(lon: float, lat: float, when: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lon": [lon],
            "lat": [lat],
            "time_bjt": pd.to_datetime([when]).tz_localize("Asia/Shanghai"),
        }
    )


# --------------------------------------------------------------------------
# Rasters
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["S1_SOS", "S1_EOS", "S2_SOS", "S2_EOS"])
def test_clipped_rasters_give_back_the_published_site_values(layer: str) -> None:
    sites = pd.read_csv(SITES_CSV).set_index("site")
    column = f"cropcalendars_phase2_smoothed_{layer}_WGS84.tif"
    path = (
        Path(__file__).resolve().parent.parent / "geodata" / "crop_calendar"
        / f"cropcalendars_phase2_smoothed_{layer}_ncp-yrd_WGS84.tif"
    )
    lon, lat = zip(*(SITES[s] for s in sites.index), strict=True)
    got = cropcal.sample_doy(path, lon, lat)
    assert got.tolist() == sites[column].astype(int).tolist()


def test_raster_nodata_and_outside_the_clip_are_missing() -> None:
    # 123.5E 27N is the East China Sea (nodata 0); 80E 30N is outside the clip.
    got = cropcal.sample_doy(cropcal.RASTERS["S2"], [123.5, 80.0], [27.0, 30.0])
    assert got.isna().all()


def test_doy_windows_turn_emergence_into_sowing() -> None:
    lon, lat = SITES["Zhengzhou_Henan"]
    w = cropcal.doy_windows(cropcal.RASTERS, [lon], [lat], 2022, lead_days=10)
    # S2 SOS 166 = 15 June 2022 (emergence); sowing starts 10 days earlier.
    assert w.loc[0, "S2_sos_doy"] == 166
    assert w.loc[0, "S2_start"] == pd.Timestamp("2022-06-05")
    assert w.loc[0, "S2_end"] == pd.Timestamp("2022-06-15")
    # S1 SOS 311 = 7 November 2022; in a leap year DOY 311 is 6 November.
    assert w.loc[0, "S1_end"] == pd.Timestamp("2022-11-07")
    leap = cropcal.doy_windows(
        cropcal.RASTERS, [lon], [lat], 2024, lead_days={"S1": 30, "S2": 10}
    )
    assert leap.loc[0, "S1_end"] == pd.Timestamp("2024-11-06")
    assert leap.loc[0, "S1_start"] == pd.Timestamp("2024-10-07")


# --------------------------------------------------------------------------
# Sowing table
# --------------------------------------------------------------------------


def test_table_skips_rows_without_dates_by_line() -> None:
    _, skips = cropcal.read_sowing_table(cropcal.SOWING_TABLE, cropcal.SUBREGION_CITIES)
    # Line 17: 安徽 淮北中北部 with no start; line 19: 安徽 沿淮 with neither date.
    assert [(s.row, s.field) for s in skips] == [
        (17, "sow_start_mmdd"),
        (19, "sow_start_mmdd"),
    ]
    assert all(s.file == "winter_wheat_sowing_windows_by_region.csv" for s in skips)


def test_every_mapped_city_exists_in_the_county_layer(
    counties: gpd.GeoDataFrame,
) -> None:
    mapping = pd.read_csv(cropcal.SUBREGION_CITIES)
    known = set(counties["city_name"])
    assert set(mapping["city_name"]) <= known
    # Every city of Henan and Shandong has a sub-region of its own province.
    for province in ("河南省", "山东省"):
        cities = set(counties.loc[counties["province_name"] == province, "city_name"])
        assert cities <= set(
            mapping.loc[mapping["province"] == province[:2], "city_name"]
        )


@pytest.mark.parametrize(
    ("province", "city", "start", "end", "subregion"),
    [
        ("河南省", "郑州市", "10-13", "10-22", "河南/豫中大部及豫东"),
        ("河南省", "安阳市", "10-05", "10-11", "河南/豫北及豫西局部"),
        ("河南", "信阳", "10-19", "10-28", "河南/豫南"),
        ("河北省", "邯郸市", "10-08", "10-18", "河北/南部麦区(衡水/邢台/邯郸)"),
        ("山东省", "菏泽市", "10-05", "10-15", "山东/鲁南/鲁西南"),
        # 沿淮 has no dates: Bengbu falls back to the 黄淮南片 zone part 皖北.
        ("安徽省", "蚌埠市", "10-10", "10-20", "黄淮南片(豫/皖北/苏北/关中)"),
    ],
)
def test_county_resolves_through_its_city_to_the_subregion_window(
    table: pd.DataFrame,
    counties: gpd.GeoDataFrame,
    province: str,
    city: str,
    start: str,
    end: str,
    subregion: str,
) -> None:
    window = cropcal.county_window(
        table, province_name=province, city_name=city, year=2022
    )
    assert window is not None
    assert (window.start, window.end) == (
        datetime.date(2022, int(start[:2]), int(start[3:])),
        datetime.date(2022, int(end[:2]), int(end[3:])),
    )
    assert window.crop == "winter wheat"
    assert window.source.startswith(f"table {subregion} (http")


def test_county_of_zhengzhou_by_its_code(
    table: pd.DataFrame, counties: gpd.GeoDataFrame
) -> None:
    # 中牟县 (410122) is a county of 郑州: the fire frame carries only the county code.
    row = counties.loc[counties["district_adcode"].astype(str) == "410122"].iloc[0]
    fire = _fire(114.0, 34.7, "2022-10-05 19:00").assign(
        county_code=pd.array(["410122"], dtype="string"),
        province_name=pd.array(["河南省"], dtype="string"),
    )
    out = cropcal.before_sowing(fire, table=table, counties=counties)
    assert row["city_name"] == "郑州市"
    assert out.loc[0, "sowing_source"].startswith("table 河南/豫中大部及豫东")
    assert out.loc[0, "days_to_sowing"] == 8  # 13 Oct - 5 Oct
    assert bool(out.loc[0, "win_before_sowing"])


def test_province_fallback_and_unknown(table: pd.DataFrame) -> None:
    # 张家口 (spring-wheat country) is in no sub-region and Hebei has no whole-province row.
    assert (
        cropcal.county_window(
            table, province_name="河北省", city_name="张家口市", year=2022
        )
        is None
    )
    assert (
        cropcal.county_window(
            table, province_name="广东省", city_name="广州市", year=2022
        )
        is None
    )
    # A Shandong city missing from the mapping would fall back to 黄淮北片 "鲁全省".
    window = cropcal.county_window(
        table, province_name="山东省", city_name="莱芜市", year=2022
    )
    assert window is not None and window.source.startswith("table 黄淮北片")
    assert (window.start, window.end) == (
        datetime.date(2022, 10, 5),
        datetime.date(2022, 10, 15),
    )


# --------------------------------------------------------------------------
# Before sowing, real fires
# --------------------------------------------------------------------------


def test_june_2022_fires_in_henan_and_shandong_are_before_maize_sowing(
    june_fires: pd.DataFrame, table: pd.DataFrame, counties: gpd.GeoDataFrame
) -> None:
    out = cropcal.before_sowing(
        june_fires,
        table=table,
        counties=counties,
        rasters=cropcal.RASTERS,
        defaults=DEFAULT_REGIONS,
    )
    assert out.index.equals(june_fires.index)
    assert str(out["win_before_sowing"].dtype) == "boolean"
    province, _ = cropcal._fire_cities(june_fires, counties)
    here = np.isin(province, ["河南", "山东"])
    assert here.sum() == 361
    sos = cropcal.sample_doy(
        cropcal.RASTERS["S2"], june_fires["lon"], june_fires["lat"]
    ).to_numpy(dtype=float, na_value=np.nan)
    # Fires of 28 May-4 June where the S2 SOS is DOY 155-170 (4-19 June): sowing starts
    # 25 May-9 June, so every one of them is inside the window or at most 12 days before it.
    sure = here & (sos >= 155) & (sos <= 170)
    assert sure.sum() > 150
    hit = out[sure]
    assert hit["win_before_sowing"].all()
    # The crop is named by the NCP default box (lat >= 32.5); south of it (信阳, south of the
    # Huai, rice country) the raster's own name stays.
    in_ncp = june_fires.loc[sure, "lat"] >= 32.5
    assert in_ncp.sum() > 150
    assert (hit.loc[in_ncp, "sowing_crop"] == "summer maize").all()
    assert (hit.loc[~in_ncp, "sowing_crop"] == "summer crops").all()
    assert (
        hit["sowing_source"].str.fullmatch(r"WorldCereal S2 SOS 1[5-7]\d - 10 d").all()
    )
    assert hit["days_to_sowing"].between(-10, 12).all()
    expected_start = pd.to_datetime("2022-01-01") + pd.to_timedelta(
        sos[sure] - 1 - 10, unit="D"
    )
    assert (hit["sowing_start"].to_numpy() == expected_start.to_numpy()).all()
    assert (hit["sowing_end"] - hit["sowing_start"]).eq(pd.Timedelta(days=10)).all()
    # Overall most Henan/Shandong fires of that week are before sowing.
    assert out.loc[here, "win_before_sowing"].mean() > 0.8
    # The rest are after an early S2 start (SOS before mid-May): False, never unknown.
    assert out.loc[here, "win_before_sowing"].notna().all()


def test_same_place_in_august_is_not_before_sowing(
    june_fires: pd.DataFrame, table: pd.DataFrame, counties: gpd.GeoDataFrame
) -> None:
    august = june_fires.assign(
        time_bjt=pd.Timestamp("2022-08-15 20:00", tz="Asia/Shanghai")
    )
    province, _ = cropcal._fire_cities(august, counties)
    here = np.isin(province, ["河南", "山东"])
    out = cropcal.before_sowing(
        august,
        table=table,
        counties=counties,
        rasters=cropcal.RASTERS,
        defaults=DEFAULT_REGIONS,
    )[here]
    assert out["win_before_sowing"].notna().all()
    assert not out["win_before_sowing"].any()
    # The evidence is the nearest window ahead: the autumn winter-wheat sowing, mostly from
    # the table (its windows start before the raster's S1 SOS - 10 d nearly everywhere).
    assert out["sowing_crop"].isin(["winter wheat", "winter cereals"]).all()
    assert out["sowing_source"].str.match(r"table |WorldCereal S1 SOS ").all()
    assert out["sowing_source"].str.startswith("table ").mean() > 0.9
    assert (out["days_to_sowing"] > 15).all()


def test_outside_every_source_is_unknown_never_false(
    table: pd.DataFrame, counties: gpd.GeoDataFrame
) -> None:
    fires = pd.concat(
        [
            _fire(
                123.5, 27.0, "2022-06-01 20:00"
            ),  # East China Sea: raster nodata, no county, no default
            _fire(
                80.0, 30.0, "2022-06-01 20:00"
            ),  # Tibet: outside the clip and every default
        ],
        ignore_index=True,
    )
    out = cropcal.before_sowing(
        fires,
        table=table,
        counties=counties,
        rasters=cropcal.RASTERS,
        defaults=DEFAULT_REGIONS,
    )
    assert out["win_before_sowing"].isna().all()
    assert out["sowing_source"].isna().all() and out["days_to_sowing"].isna().all()


def test_defaults_fill_a_season_only_where_nothing_else_does() -> None:
    fire = _fire(
        116.0, 35.0, "2022-06-01 20:00"
    )  # SW Shandong, inside the NCP default box
    only_default = cropcal.before_sowing(fire, defaults=DEFAULT_REGIONS)
    assert only_default.loc[0, "sowing_source"] == "default NCP summer maize"
    assert bool(only_default.loc[0, "win_before_sowing"])
    assert only_default.loc[0, "days_to_sowing"] == 4  # 5 June - 1 June
    with_raster = cropcal.before_sowing(
        fire, rasters=cropcal.RASTERS, defaults=DEFAULT_REGIONS
    )
    assert with_raster.loc[0, "sowing_source"].startswith("WorldCereal S2 SOS")


def test_days_before_bounds_and_inside_the_window() -> None:
    # Default NCP summer maize 5-20 June: 21 May is 15 days before, 20 May 16 days.
    fires = pd.concat(
        [
            _fire(116.0, 35.0, d)
            for d in (
                "2022-05-20 12:00",
                "2022-05-21 12:00",
                "2022-06-20 23:00",
                "2022-06-21 01:00",
            )
        ],
        ignore_index=True,
    )
    ncp_maize = (DEFAULT_REGIONS[0],)
    out = cropcal.before_sowing(fires, defaults=ncp_maize)
    assert out["win_before_sowing"].tolist() == [False, True, True, False]
    assert out["days_to_sowing"].tolist()[:3] == [16, 15, -15]
    # After the window the next one ahead is next year's.
    assert out.loc[3, "sowing_start"] == pd.Timestamp("2023-06-05")


def test_windows_of_many_places_are_each_places_county_window(table: pd.DataFrame, counties: gpd.GeoDataFrame) -> None:
    """Tomorrow's plan asks for every cell of the real 5 km grid at once: each distinct place and
    year is looked up once and spread, which must give each cell exactly its own ``county_window``."""
    from pipelines.windows.plan import cell_probes

    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    cells = grid.iloc[::20].reset_index(drop=True)  # ~2,200 cells over all seven provinces
    probes = pd.concat([cell_probes(cells, datetime.date(2022, 10, 1)), cell_probes(cells.iloc[:300], datetime.date(2023, 1, 2))],
                       ignore_index=True)
    probes.loc[::7, "county_code"] = pd.NA  # some found by their county polygon instead
    out = cropcal.before_sowing(probes, table=table, counties=counties)
    by_code = counties.drop_duplicates("district_adcode").set_index(counties.drop_duplicates("district_adcode")["district_adcode"].astype(str))
    checked = 0
    for i in range(0, len(probes), 5):
        code = probes.loc[i, "county_code"]
        if pd.isna(code):
            continue
        city = by_code.loc[code, "city_name"]
        day = probes.loc[i, "time_bjt"]
        windows = [cropcal.county_window(table, province_name=probes.loc[i, "province_name"], city_name=city, year=day.year + k)
                   for k in (-1, 0, 1)]
        ahead = [w for w in windows if w is not None and (w.end - day.date()).days >= 0]
        if not ahead:
            continue
        if out.loc[i, "sowing_source"] is pd.NA or not str(out.loc[i, "sowing_source"]).startswith("table"):
            continue  # a raster window came first here
        assert out.loc[i, "sowing_source"] == ahead[0].source
        assert out.loc[i, "sowing_start"].date() == ahead[0].start and out.loc[i, "sowing_end"].date() == ahead[0].end
        checked += 1
    assert checked > 100
