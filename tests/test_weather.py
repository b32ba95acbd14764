"""下雨前 "before rain" against real UCI hourly rain (see tests/data/weather/SOURCES.md).

The event: the 19-20 July 2016 North China rainstorm. At Dingling (116.220 E,
40.292 N) the first wet hour after three dry days is the hour ending
2016-07-19 06:00 Beijing time = 2016-07-18 22:00 UTC, with 0.5 mm.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.skips import Skip
from pipelines.windows.rain import (
    RainRule,
    StationPrecip,
    before_rain,
    open_precip_grid,
    read_stations,
)

WEATHER = Path(__file__).resolve().parent / "data" / "weather"
MULTISITE = WEATHER / "beijing_multisite_201607.csv"
FIVE_CITIES = WEATHER / "uci_5cities_201511.csv"
GRID = WEATHER / "precip_grid.nc"
FORECASTS = sorted(WEATHER.glob("precip_forecast_*.nc"))

STATIONS = {
    "Aotizhongxin": (116.397, 39.982),
    "Dingling": (116.220, 40.292),
    "Huairou": (116.628, 40.328),
    "Shunyi": (116.655, 40.127),
}
DINGLING = STATIONS["Dingling"]
ONSET_BJT = pd.Timestamp("2016-07-19 06:00", tz="Asia/Shanghai")  # end of the first wet hour
ONSET_UTC = pd.Timestamp("2016-07-18 22:00", tz="UTC")
ONSET_MM = 0.5
H = pd.Timedelta(hours=1)


def fires_at(
    points: list[tuple[float, float]],
    times: list[pd.Timestamp],
    index: list | None = None,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lon": [p[0] for p in points],
            "lat": [p[1] for p in points],
            "time_utc": pd.DatetimeIndex(times).tz_convert("UTC"),
        },
        index=index,
    )


@pytest.fixture(scope="module")
def stations() -> StationPrecip:
    st, skips = read_stations(MULTISITE, tz="Asia/Shanghai")
    assert skips == []  # no NA in this span of the four stations
    return st


@pytest.fixture(scope="module")
def grid():
    return open_precip_grid(GRID)


@pytest.fixture(scope="module")
def forecasts():
    return open_precip_grid(FORECASTS, accumulated=True)


# --------------------------------------------------------------------------
# The real event, at the station
# --------------------------------------------------------------------------


def test_fire_10_h_before_the_real_onset_is_before_rain(stations):
    fires = fires_at(
        [DINGLING, DINGLING],
        [ONSET_UTC - 10 * H, ONSET_UTC - 30 * H],
        index=["f10", "f30"],
    )
    out = before_rain(fires, stations)
    assert list(out.index) == ["f10", "f30"]
    assert out["win_before_rain"].dtype == "boolean"
    assert out.loc["f10", "win_before_rain"] == True
    assert out.loc["f10", "rain_onset_utc"] == ONSET_UTC
    assert out.loc["f10", "rain_mm"] == pytest.approx(ONSET_MM)
    assert out.loc["f10", "rain_source"] == "station Dingling 0.0 km"
    # 30 h before: the 24 h window ends 6 h before the onset, all hours dry and present.
    assert out.loc["f30", "win_before_rain"] == False
    assert pd.isna(out.loc["f30", "rain_onset_utc"])
    assert pd.isna(out.loc["f30", "rain_note"])


def test_horizon_is_configurable(stations):
    fires = fires_at([DINGLING], [ONSET_UTC - 30 * H])
    out = before_rain(fires, stations, RainRule(horizon_h=36))
    assert out["win_before_rain"].iloc[0] == True
    assert out["rain_onset_utc"].iloc[0] == ONSET_UTC


def test_window_is_open_at_the_fire_and_closed_at_the_horizon(stations):
    # A fire exactly at the end of the onset hour: that hour is not "after" it;
    # the next rainy hour is. A fire exactly 24 h before: the onset hour counts.
    fires = fires_at([DINGLING, DINGLING], [ONSET_UTC, ONSET_UTC - 24 * H])
    out = before_rain(fires, stations)
    assert out["rain_onset_utc"].iloc[0] == ONSET_UTC + H
    assert out["rain_mm"].iloc[0] == pytest.approx(0.3)  # Dingling, hour ending 07:00 BJT
    assert out["rain_onset_utc"].iloc[1] == ONSET_UTC
    # 24 h + 1 min before: the onset hour is past the horizon.
    late = before_rain(fires_at([DINGLING], [ONSET_UTC - 24 * H - pd.Timedelta(minutes=1)]), stations)
    assert late["win_before_rain"].iloc[0] == False


def test_nearest_station_is_used(stations):
    # Aotizhongxin had a shower at 14:00 BJT on 18 July that Dingling did not.
    t = pd.Timestamp("2016-07-18 08:00", tz="Asia/Shanghai")
    near_aoti = (STATIONS["Aotizhongxin"][0] + 0.05, STATIONS["Aotizhongxin"][1])
    out = before_rain(fires_at([near_aoti, DINGLING], [t, t]), stations)
    assert out["rain_source"].iloc[0].startswith("station Aotizhongxin 4.")
    assert out["rain_onset_utc"].iloc[0] == pd.Timestamp("2016-07-18 14:00", tz="Asia/Shanghai")
    assert out["rain_mm"].iloc[0] == pytest.approx(7.1)
    assert out["rain_onset_utc"].iloc[1] == ONSET_UTC
    assert list(stations.at([near_aoti[0], 0.0], [near_aoti[1], 0.0])) == [0, -1]


# --------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------


def test_uci_hours_are_beijing_time_so_utc_is_8_h_earlier(stations):
    dingling = stations.series("Dingling")
    assert dingling.index.tz is not None and str(dingling.index.tz) == "UTC"
    # The raw row says 2016-07-19T06:00, 0.5 (naive Beijing time) ...
    raw = pd.read_csv(MULTISITE, dtype=str)
    row = raw[(raw.station == "Dingling") & (raw.time == "2016-07-19T06:00")]
    assert row["mm"].tolist() == ["0.5"]
    # ... which is 22:00 UTC the day before.
    assert ONSET_BJT.tz_convert("UTC") == ONSET_UTC == pd.Timestamp("2016-07-19 06:00", tz="UTC") - 8 * H
    assert dingling[ONSET_UTC] == 0.5
    assert dingling[ONSET_UTC - H] == 0.0
    assert stations.start_utc == pd.Timestamp("2016-07-09 16:00", tz="UTC")

    # Read as if UTC (the default), the same rain lands 8 h later: a wrong tz is visible.
    as_utc, _ = read_stations(MULTISITE)
    out = before_rain(fires_at([DINGLING], [ONSET_UTC - 10 * H]), as_utc)
    assert out["rain_onset_utc"].iloc[0] == ONSET_UTC + 8 * H


def test_explicit_offsets_win_over_tz():
    a, _ = read_stations(FIVE_CITIES)
    b, _ = read_stations(FIVE_CITIES, tz="Asia/Shanghai")
    assert a.start_utc == b.start_utc == pd.Timestamp("2015-10-31 16:00", tz="UTC")
    np.testing.assert_array_equal(a.values, b.values)


# --------------------------------------------------------------------------
# Missing values: sentinel, NA, far away
# --------------------------------------------------------------------------


def test_sentinel_and_na_are_reported_as_skips(caplog):
    with caplog.at_level(logging.WARNING, logger="pipelines.windows.rain"):
        st, skips = read_stations(FIVE_CITIES)
    assert all(isinstance(s, Skip) and s.field == "mm" for s in skips)
    sentinel = [s for s in skips if "sentinel" in s.reason]
    assert len(sentinel) == 1 and sentinel[0].row == 159 and "999990" in sentinel[0].reason
    assert "Beijing" in sentinel[0].reason
    na = {s.reason.split(" station ")[1].split()[0]: s for s in skips if "(NA)" in s.reason}
    assert na["Beijing"].reason.startswith("9 row(s)") and na["Beijing"].row == 121
    assert na["Shenyang"].reason.startswith("112 row(s)")
    assert "kept as missing" in caplog.text
    # Kept as missing (NaN), not dropped and not 0.
    bj = st.series("Beijing")
    assert np.isnan(bj[pd.Timestamp("2015-11-07 13:00", tz="Asia/Shanghai")])
    assert np.isnan(bj[pd.Timestamp("2015-11-08 09:00", tz="Asia/Shanghai")])
    assert bj[pd.Timestamp("2015-11-07 12:00", tz="Asia/Shanghai")] == 0.0


def test_sentinel_and_na_make_unknown_never_false():
    st, _ = read_stations(FIVE_CITIES)
    bj, sy = (116.40, 39.90), (123.43, 41.80)
    times = [
        pd.Timestamp("2015-11-07 06:00", tz="Asia/Shanghai"),  # window holds only the 999990 hour as missing
        pd.Timestamp("2015-11-07 14:00", tz="Asia/Shanghai"),  # window holds NA 11-08 08:00-10:00
        pd.Timestamp("2015-11-08 12:00", tz="Asia/Shanghai"),  # dry and complete
        pd.Timestamp("2015-11-07 12:00", tz="Asia/Shanghai"),  # Shenyang: 90 h NA from 20:00
        pd.Timestamp("2015-11-04 12:00", tz="Asia/Shanghai"),  # Shenyang: 0.6 mm at 11-05 01:00
    ]
    out = before_rain(fires_at([bj, bj, bj, sy, sy], times), st)
    assert out["win_before_rain"].isna().tolist() == [True, True, False, True, False]
    assert out["win_before_rain"].iloc[2] == False
    assert out["win_before_rain"].iloc[4] == True
    assert out["rain_note"].iloc[0] == "1 of 24 hours missing at Beijing"
    assert out["rain_note"].iloc[1] == "3 of 24 hours missing at Beijing"
    assert out["rain_note"].iloc[3] == "17 of 24 hours missing at Shenyang"  # 20:00-23:00, 00:00-12:00
    assert out["rain_onset_utc"].iloc[4] == pd.Timestamp("2015-11-05 01:00", tz="Asia/Shanghai")
    assert out["rain_mm"].iloc[4] == pytest.approx(0.6)

    # before_rain applies the rule's sentinel too, whatever the reader did ...
    raw, _ = read_stations(FIVE_CITIES, sentinel_mm=np.inf)
    assert pd.isna(before_rain(fires_at([bj], times[:1]), raw)["win_before_rain"].iloc[0])
    # ... because taken at face value the 999990 would be a downpour.
    blind = before_rain(fires_at([bj], times[:1]), raw, RainRule(sentinel_mm=np.inf))
    assert blind["win_before_rain"].iloc[0] == True
    assert blind["rain_mm"].iloc[0] == 999990


def test_fire_far_from_every_station_is_unknown(stations, grid):
    far = (117.5, 40.9)  # ~97 km from Huairou
    t = ONSET_UTC - 10 * H
    out = before_rain(fires_at([far, DINGLING], [t, t]), stations)
    assert pd.isna(out["win_before_rain"].iloc[0])
    assert out["rain_note"].iloc[0].startswith("no station within 50 km (nearest: Huairou 9")
    assert pd.isna(out["rain_source"].iloc[0])
    assert out["win_before_rain"].iloc[1] == True
    assert before_rain(fires_at([far], [t]), stations, RainRule(max_station_km=150))["win_before_rain"].iloc[0] == True
    g = before_rain(fires_at([far], [t]), grid)
    assert pd.isna(g["win_before_rain"].iloc[0]) and g["rain_note"].iloc[0] == "outside the precipitation grid"


def test_beyond_the_data_is_unknown(stations):
    end = pd.Timestamp("2016-07-26 23:00", tz="Asia/Shanghai")  # last row
    out = before_rain(fires_at([DINGLING, DINGLING], [end - 30 * H, end - 20 * H]), stations)
    assert out["win_before_rain"].iloc[0] == False
    assert pd.isna(out["win_before_rain"].iloc[1])
    assert out["rain_note"].iloc[1] == "4 of 24 hours missing at Dingling (beyond the data)"


def test_missing_fire_time_or_position_is_unknown(stations):
    fires = pd.DataFrame(
        {
            "lon": [np.nan, DINGLING[0]],
            "lat": [40.0, DINGLING[1]],
            "time_utc": pd.to_datetime([ONSET_UTC, pd.NaT], utc=True),
        }
    )
    out = before_rain(fires, stations)
    assert out["win_before_rain"].isna().all()
    assert (out["rain_note"] == "fire time or position missing").all()
    with pytest.raises(ValueError, match="tz-aware"):
        before_rain(fires.assign(time_utc=[pd.Timestamp("2016-07-18")] * 2), stations)


# --------------------------------------------------------------------------
# Reader: bad rows, daily steps
# --------------------------------------------------------------------------


def test_bad_rows_are_skipped_with_line_and_field(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(
        "station,lon,lat,time,mm\n"
        "A,116.2,40.3,2016-07-18T00:00,0\n"  # 2
        "A,116.2,40.3,yesterday,0\n"  # 3 time
        "A,east,40.3,2016-07-18T02:00,0\n"  # 4 lon
        "A,116.2,95,2016-07-18T03:00,0\n"  # 5 lat
        "A,116.2,40.3,2016-07-18T04:00,lots\n"  # 6 mm
        "A,116.2,40.3,2016-07-18T05:00,-0.2\n"  # 7 negative
        "\n"  # 8 blank: ignored, but line numbers go on
        "A,116.2,40.3,2016-07-18T06:30,0\n"  # 9 off the hourly grid
        "A,116.2,40.3,2016-07-18T07:00,NA\n"  # 10 NA: kept as missing
        "A,116.2,40.3,2016-07-18T07:00,1.0\n"  # 11 duplicate
        "A,116.2,40.3,2016-07-18T08:00,0\n"  # 12
    )
    st, skips = read_stations(p)
    got = {(s.row, s.field) for s in skips}
    assert got == {
        (3, "time"),
        (4, "lon"),
        (5, "lat"),
        (6, "mm"),
        (7, "mm"),
        (9, "time"),
        (10, "mm"),
        (11, "time"),
    }
    assert next(s for s in skips if s.row == 7).reason == "negative precipitation"
    # Bad rows leave their hour missing, never 0: a fire before them is unknown.
    assert np.isnan(st.values[0, 1:8]).all() and st.values[0, 0] == 0 and st.values[0, 8] == 0
    out = before_rain(fires_at([(116.2, 40.3)], [pd.Timestamp("2016-07-17T23:00", tz="UTC")]), st)
    assert pd.isna(out["win_before_rain"].iloc[0])


def test_missing_columns_skip_the_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("station,lon,lat,when,mm\nA,1,2,3,4\n")
    st, skips = read_stations(p)
    assert len(st.names) == 0 and skips[0].row is None and "missing column" in skips[0].reason
    out = before_rain(fires_at([DINGLING], [ONSET_UTC]), st)
    assert out["rain_note"].iloc[0] == "no station within 50 km"


def test_daily_steps_use_the_daily_threshold(stations, tmp_path):
    # Daily totals for Dingling, Beijing-local days (the step ends at local midnight).
    hourly = stations.series("Dingling").tz_convert("Asia/Shanghai")
    daily = hourly.resample("D", closed="right", label="right").sum(min_count=24).dropna()
    p = tmp_path / "daily.csv"
    pd.DataFrame(
        {
            "station": "Dingling",
            "lon": DINGLING[0],
            "lat": DINGLING[1],
            "time": daily.index.strftime("%Y-%m-%dT%H:%M"),
            "mm": daily.to_numpy(),
        }
    ).to_csv(p, index=False)
    st, skips = read_stations(p, step_h=24, tz="Asia/Shanghai")
    assert skips == [] and st.step_h == 24
    # A fire just after midnight on 19 July: the step ending 20 Jul 00:00 BJT
    # (the whole of 19 July) ends within 24 h, and it rained that day.
    fire = pd.Timestamp("2016-07-19 00:30", tz="Asia/Shanghai")
    out = before_rain(fires_at([DINGLING], [fire]), st)
    assert out["win_before_rain"].iloc[0] == True
    assert out["rain_onset_utc"].iloc[0] == pd.Timestamp("2016-07-20 00:00", tz="Asia/Shanghai")
    assert out["rain_mm"].iloc[0] == pytest.approx(daily[pd.Timestamp("2016-07-20", tz="Asia/Shanghai")])
    assert out["rain_mm"].iloc[0] > 20
    # 16 July had 0.3 mm at Dingling: wet by the hourly rule, dry by the 1 mm/day rule.
    d16 = daily[pd.Timestamp("2016-07-17", tz="Asia/Shanghai")]
    assert 0.1 <= d16 < 1.0
    early16 = fires_at([DINGLING], [pd.Timestamp("2016-07-16 00:30", tz="Asia/Shanghai")])
    assert before_rain(early16, st)["win_before_rain"].iloc[0] == False
    assert before_rain(early16, stations)["win_before_rain"].iloc[0] == True


# --------------------------------------------------------------------------
# Grids and forecasts
# --------------------------------------------------------------------------


def _fires_at_all_stations(start: str, end: str, every_h: int = 3) -> pd.DataFrame:
    times = pd.date_range(start, end, freq=f"{every_h}h", tz="UTC")
    rows = [(p, t) for p in STATIONS.values() for t in times]
    return fires_at([r[0] for r in rows], [r[1] for r in rows])


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_series_equal(a["win_before_rain"], b["win_before_rain"])
    pd.testing.assert_series_equal(a["rain_onset_utc"], b["rain_onset_utc"])
    np.testing.assert_allclose(a["rain_mm"], b["rain_mm"], atol=1e-3)


def test_grid_is_lazy_and_in_mm_per_step(grid):
    da = grid["precip_mm"]
    assert da.dims == ("time", "lat", "lon")
    assert da.chunks is not None and set(da.chunks[0]) == {1}
    assert grid.attrs["step_h"] == 1.0 and grid.attrs["resolution_deg"] == pytest.approx(0.1)


def test_grid_gives_the_station_answers(stations, grid):
    fires = _fires_at_all_stations("2016-07-09 13:00", "2016-07-27 00:00")
    s = before_rain(fires, stations)
    g = before_rain(fires, grid)
    assert s["win_before_rain"].value_counts(dropna=False).to_dict().keys() >= {
        True,
        False,
    }
    assert s["win_before_rain"].isna().any()  # the ends of the data
    _assert_same(s, g)
    assert (g["rain_source"] == "grid 0.1° (analysis)").all()
    one = before_rain(fires_at([DINGLING], [ONSET_UTC - 10 * H]), grid)
    assert one["rain_onset_utc"].iloc[0] == ONSET_UTC and one["rain_mm"].iloc[0] == pytest.approx(ONSET_MM)


def test_accumulated_forecast_gives_the_station_answers(stations, forecasts):
    assert forecasts["precip_mm"].dims == (
        "forecast_reference_time",
        "time",
        "lat",
        "lon",
    )
    # Fires whose 24 h window lies inside the forecast they get.
    for start, end, issued in [
        ("2016-07-17 00:00", "2016-07-18 00:00", "2016-07-17T00Z"),
        ("2016-07-18 12:00", "2016-07-20 12:00", "2016-07-18T12Z"),
    ]:
        fires = _fires_at_all_stations(start, end, every_h=1)
        f = before_rain(fires, forecasts, forecast=True)
        _assert_same(before_rain(fires, stations), f)
        assert (f["rain_source"] == f"grid 0.1° (forecast issued {issued})").all()
    one = before_rain(fires_at([DINGLING], [ONSET_UTC - 10 * H]), forecasts, forecast=True)
    assert one["rain_onset_utc"].iloc[0] == ONSET_UTC
    assert one["rain_mm"].iloc[0] == pytest.approx(ONSET_MM, abs=1e-3)  # float32 accumulation round-off


def test_forecast_uses_only_what_was_issued_before_the_fire(stations, forecasts):
    huairou = STATIONS["Huairou"]
    fires = fires_at(
        [DINGLING, huairou, huairou, DINGLING],
        [
            pd.Timestamp("2016-07-16 12:00", tz="UTC"),  # before the first forecast
            pd.Timestamp("2016-07-18 11:00", tz="UTC"),  # 07-17T00Z forecast, ends 07-19T00Z
            pd.Timestamp("2016-07-18 12:00", tz="UTC"),  # 07-18T12Z forecast (issued at the fire's time)
            ONSET_UTC - 10 * H,
        ],
    )
    f = before_rain(fires, forecasts, forecast=True)
    s = before_rain(fires, stations)
    # Huairou's first wet hour ends 2016-07-19 09:00 BJT = 01:00 UTC: after the old forecast ends.
    assert s["win_before_rain"].tolist() == [False, True, True, True]
    assert pd.isna(f["win_before_rain"].iloc[0])
    assert f["rain_note"].iloc[0] == "no forecast issued at or before the fire (first issued 2016-07-17T00Z)"
    assert pd.isna(f["win_before_rain"].iloc[1])  # the old forecast cannot tell: unknown, not False
    assert f["rain_note"].iloc[1] == "11 of 24 hours missing at grid cell 40.30N 116.60E (beyond the forecast)"
    assert f["rain_source"].iloc[1] == "grid 0.1° (forecast issued 2016-07-17T00Z)"
    assert f["win_before_rain"].iloc[2] == True
    assert f["rain_onset_utc"].iloc[2] == pd.Timestamp("2016-07-19 01:00", tz="UTC")
    assert f["rain_source"].iloc[2] == "grid 0.1° (forecast issued 2016-07-18T12Z)"
    assert f["win_before_rain"].iloc[3] == True
    # Several forecasts need forecast=True; stations cannot be forecasts.
    with pytest.raises(ValueError, match="forecast=True"):
        before_rain(fires, forecasts)
    with pytest.raises(ValueError):
        before_rain(fires, stations, forecast=True)


def test_accumulated_file_read_as_rates_is_wrong(forecasts):
    # Guard: the accumulated flag matters (the accumulation grows, the rate does not).
    raw = open_precip_grid(FORECASTS[1])
    fires = fires_at([DINGLING], [pd.Timestamp("2016-07-20 06:00", tz="UTC")])
    rate = before_rain(fires, forecasts, forecast=True)["rain_mm"].iloc[0]
    acc = before_rain(fires, raw)["rain_mm"].iloc[0]
    assert acc > rate + 10
    assert (
        raw.attrs["forecast"] == 1
        and "forecast issued 2016-07-18T12Z" in before_rain(fires, raw)["rain_source"].iloc[0]
    )


def test_many_fires_are_fast(stations, grid):

    rng = np.random.default_rng(0)
    n = 5000
    fires = pd.DataFrame(
        {
            "lon": rng.uniform(115.9, 117.1, n),
            "lat": rng.uniform(39.7, 40.7, n),
            "time_utc": pd.Timestamp("2016-07-10", tz="UTC") + pd.to_timedelta(rng.uniform(0, 16 * 24, n), unit="h"),
        }
    )
    s = before_rain(fires, stations)
    g = before_rain(fires, grid)
    assert len(s) == len(g) == n
    assert s["win_before_rain"].notna().mean() > 0.9
