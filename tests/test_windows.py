"""Tests for pipelines.windows.sun: NOAA sunset vs astral, and the 收工时/上半夜 windows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from astral import Observer
from astral import sun as astral_sun

from pipelines.core.schema import BEIJING_TZ
from pipelines.windows.sun import (
    ClockWindows,
    daynight,
    flag_clock_windows,
    solar_elevation,
    sunset_utc,
)

BJT = BEIJING_TZ
# A field near Puyang/Heze on the North China Plain (the brief's reference point).
LON, LAT = 115.0, 35.0


def fires_at(times_utc: list[str], lon: float = LON, lat: float = LAT) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lon": [lon] * len(times_utc),
            "lat": [lat] * len(times_utc),
            "time_utc": pd.to_datetime(times_utc, utc=True),
        }
    )


def bjt(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=BJT)


# --------------------------------------------------------------------------
# Sunset and solar elevation
# --------------------------------------------------------------------------


def test_sunset_reference_point_2022_06_03() -> None:
    sunset = sunset_utc(LON, LAT, "2022-06-03").tz_convert(BJT)[0]
    assert sunset.floor("min") == bjt("2022-06-03 19:29")


def test_sunset_matches_astral_across_china_and_the_year() -> None:
    lats = np.linspace(18.0, 53.0, 8)
    lons = np.linspace(73.0, 135.0, 7)
    # Every 11 days of a year (both solstices and equinoxes fall within 5 days
    # of a sample), plus the solstices themselves.
    dates = [dt.date(2022, 1, 1) + dt.timedelta(days=d) for d in range(0, 365, 11)]
    dates += [dt.date(2022, 6, 21), dt.date(2022, 12, 21)]
    grid = [(lon, lat, d) for lon in lons for lat in lats for d in dates]
    lon_a = np.array([g[0] for g in grid])
    lat_a = np.array([g[1] for g in grid])
    date_a = [g[2] for g in grid]

    ours = sunset_utc(lon_a, lat_a, date_a)
    theirs = pd.DatetimeIndex(
        [astral_sun.sunset(Observer(lat, lon), d, tzinfo=BJT) for lon, lat, d in grid]
    ).tz_convert("UTC")

    diff_s = np.abs((ours - theirs).total_seconds().to_numpy())
    print(f"sunset vs astral over {len(grid)} cases: max {diff_s.max():.1f} s, median {np.median(diff_s):.1f} s")
    assert len(grid) > 1500
    assert diff_s.max() < 25.0  # as the README says
    # Every sunset lands on the Beijing date it was asked for.
    assert (ours.tz_convert(BJT).date == np.array(date_a)).all()


def test_sunset_random_points_match_astral() -> None:
    rng = np.random.default_rng(20220603)
    n = 300
    lon = rng.uniform(73.0, 135.0, n)
    lat = rng.uniform(18.0, 53.0, n)
    days = rng.integers(0, 365 * 4, n)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in days]
    ours = sunset_utc(lon, lat, dates)
    theirs = pd.DatetimeIndex(
        [astral_sun.sunset(Observer(la, lo), d, tzinfo=BJT) for lo, la, d in zip(lon, lat, dates)]
    ).tz_convert("UTC")
    assert np.abs((ours - theirs).total_seconds()).max() < 25.0


def test_sunset_polar_day_and_night_are_nat() -> None:
    out = sunset_utc([20.0, 20.0, 20.0], [80.0, 80.0, 40.0], ["2022-06-21", "2022-12-21", "2022-06-21"])
    assert out.isna().tolist() == [True, True, False]


def test_sunset_accepts_tz_aware_instants_as_their_beijing_date() -> None:
    # 2022-06-02 17:00 UTC is already 2022-06-03 01:00 in Beijing.
    from_instant = sunset_utc(LON, LAT, pd.Timestamp("2022-06-02 17:00", tz="UTC"))
    from_date = sunset_utc(LON, LAT, dt.date(2022, 6, 3))
    assert from_instant.equals(from_date)


def test_solar_elevation_matches_astral() -> None:
    rng = np.random.default_rng(7)
    n = 200
    lon = rng.uniform(73.0, 135.0, n)
    lat = rng.uniform(18.0, 53.0, n)
    times = pd.Timestamp("2022-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")
    ours = solar_elevation(lon, lat, times)
    theirs = np.array(
        [
            astral_sun.elevation(Observer(la, lo), t.to_pydatetime(), with_refraction=False)
            for lo, la, t in zip(lon, lat, times)
        ]
    )
    assert np.abs(ours - theirs).max() < 0.01


def test_daynight_from_elevation() -> None:
    times = pd.to_datetime(["2022-06-03 04:20", "2022-06-03 16:00", None], utc=True)  # 12:20 and 00:00 BJT
    assert list(daynight(LON, LAT, times)) == ["D", "N", pd.NA]
    # Between the centre crossing 0 deg and the -0.833 deg sunset the default calls it night.
    sunset = sunset_utc(LON, LAT, "2022-06-03")[0]
    just_before = [sunset - pd.Timedelta(minutes=1)]
    assert list(daynight(LON, LAT, just_before)) == ["N"]
    assert list(daynight(LON, LAT, just_before, horizon_deg=-0.833)) == ["D"]


# --------------------------------------------------------------------------
# The windows
# --------------------------------------------------------------------------


def test_brief_examples_2022_06_03() -> None:
    out = flag_clock_windows(fires_at(["2022-06-03 11:30", "2022-06-03 13:00", "2022-06-03 05:19"]))
    assert out["win_after_work"].tolist() == [True, False, False]
    assert out["win_first_half_night"].tolist() == [False, True, False]
    assert (out["sunset_bjt"].dt.floor("min") == bjt("2022-06-03 19:29")).all()


def test_window_boundaries_are_half_open() -> None:
    sunset = sunset_utc(LON, LAT, "2022-06-03").tz_convert(BJT)[0]
    h = pd.Timedelta(hours=1)
    s = pd.Timedelta(seconds=1)
    times = {
        "before_after_work": sunset - 1.5 * h - s,
        "after_work_start": sunset - 1.5 * h,
        "last_after_work_second": sunset + 0.5 * h - s,
        "first_half_night_start": sunset + 0.5 * h,
        "last_second_of_day": bjt("2022-06-03 23:59:59"),
        "midnight_next_day": bjt("2022-06-04 00:00:00"),
    }
    fires = pd.DataFrame(
        {"lon": LON, "lat": LAT, "time_utc": pd.DatetimeIndex(list(times.values())).tz_convert("UTC")},
        index=list(times),
    )
    out = flag_clock_windows(fires)
    assert out["win_after_work"].to_dict() == {
        "before_after_work": False,
        "after_work_start": True,
        "last_after_work_second": True,
        "first_half_night_start": False,
        "last_second_of_day": False,
        "midnight_next_day": False,
    }
    assert out["win_first_half_night"].to_dict() == {
        "before_after_work": False,
        "after_work_start": False,
        "last_after_work_second": False,
        "first_half_night_start": True,
        "last_second_of_day": True,
        "midnight_next_day": False,
    }


def test_fire_takes_the_sunset_of_its_beijing_date() -> None:
    # 15:30 UTC = 23:30 Beijing on the 3rd; 16:30 UTC on the 3rd = 00:30 Beijing on the 4th.
    out = flag_clock_windows(fires_at(["2022-06-03 15:30", "2022-06-03 16:30"]))
    assert out["sunset_bjt"].dt.date.tolist() == [dt.date(2022, 6, 3), dt.date(2022, 6, 4)]
    assert out["win_first_half_night"].tolist() == [True, False]
    assert out["win_after_work"].tolist() == [False, False]


def test_sunset_date_follows_beijing_day_for_every_hour() -> None:
    times = pd.date_range("2022-06-03 00:00", periods=48, freq="30min", tz="UTC")
    out = flag_clock_windows(fires_at(list(times.strftime("%Y-%m-%d %H:%M"))))
    assert (out["sunset_bjt"].dt.date == out["time_utc"].dt.tz_convert(BJT).dt.date).all()


def test_windows_move_with_the_season() -> None:
    june = sunset_utc(LON, LAT, "2022-06-15").tz_convert(BJT)[0]
    october = sunset_utc(LON, LAT, "2022-10-15").tz_convert(BJT)[0]
    june_minutes = june.hour * 60 + june.minute
    october_minutes = october.hour * 60 + october.minute
    assert june_minutes - october_minutes > 90  # about 19:32 vs 17:45

    # 18:30 Beijing: still 收工时 in June, already 上半夜 in October.
    out = flag_clock_windows(fires_at(["2022-06-15 10:30", "2022-10-15 10:30"]))
    assert out["win_after_work"].tolist() == [True, False]
    assert out["win_first_half_night"].tolist() == [False, True]


def test_windows_move_with_longitude() -> None:
    # 21:00 Beijing on 2022-06-03: 上半夜 near Heze (115E) but still 收工时 in
    # Kashgar (76E), where the sun sets after 22:00 Beijing time.
    east = flag_clock_windows(fires_at(["2022-06-03 13:00"], lon=115.0, lat=35.0))
    west = flag_clock_windows(fires_at(["2022-06-03 13:00"], lon=76.0, lat=39.5))
    assert west["sunset_bjt"].iloc[0] > bjt("2022-06-03 22:00")
    assert (east["win_after_work"].iloc[0], east["win_first_half_night"].iloc[0]) == (False, True)
    assert (west["win_after_work"].iloc[0], west["win_first_half_night"].iloc[0]) == (True, False)


def test_fixed_mode_uses_clock_hours_only() -> None:
    clock = ["16:59:59", "17:00", "18:59:59", "19:00", "23:59:59", "00:00", "12:00"]
    expected_aw = [False, True, True, False, False, False, False]
    expected_fh = [False, False, False, True, True, False, False]
    fixed = ClockWindows(mode="fixed")
    for date in ("2022-06-03", "2022-10-15"):
        times = pd.DatetimeIndex([bjt(f"{date} {c}") for c in clock]).tz_convert("UTC")
        fires = pd.DataFrame({"lon": LON, "lat": LAT, "time_utc": times})
        out = flag_clock_windows(fires, fixed)
        assert out["win_after_work"].tolist() == expected_aw, date
        assert out["win_first_half_night"].tolist() == expected_fh, date
        assert out["sunset_bjt"].notna().all()


def test_custom_sun_windows() -> None:
    windows = ClockWindows(after_work_start_h=-1.0, after_work_end_h=0.0, first_half_night_end="22:00")
    # Sunset 19:29:41 Beijing: 19:00 in 收工时, 21:00 in 上半夜, 22:30 in neither.
    out = flag_clock_windows(fires_at(["2022-06-03 11:00", "2022-06-03 13:00", "2022-06-03 14:30"]), windows)
    assert out["win_after_work"].tolist() == [True, False, False]
    assert out["win_first_half_night"].tolist() == [False, True, False]


def test_output_columns_and_dtypes() -> None:
    fires = fires_at(["2022-06-03 11:30", "2022-06-03 13:00"])
    fires.index = [10, 20]
    before = fires.copy()
    out = flag_clock_windows(fires)
    pd.testing.assert_frame_equal(fires, before)  # input untouched
    assert out.index.tolist() == [10, 20]
    assert str(out["sunset_bjt"].dtype) == "datetime64[ns, Asia/Shanghai]"
    assert out["win_after_work"].dtype == bool
    assert out["win_first_half_night"].dtype == bool
    for name in ("win_before_rain", "win_before_sowing"):
        assert out[name].dtype == "boolean"
        assert out[name].isna().all()


def test_existing_rain_and_sowing_flags_are_kept() -> None:
    fires = fires_at(["2022-06-03 11:30"])
    fires["win_before_rain"] = pd.array([True], dtype="boolean")
    out = flag_clock_windows(fires)
    assert out["win_before_rain"].tolist() == [True]
    assert out["win_before_sowing"].isna().all()


def test_missing_time_and_empty_frames() -> None:
    out = flag_clock_windows(fires_at(["2022-06-03 11:30", None]))
    assert out["win_after_work"].tolist() == [True, False]
    assert out["sunset_bjt"].isna().tolist() == [False, True]
    empty = flag_clock_windows(fires_at([]))
    assert len(empty) == 0 and "win_first_half_night" in empty.columns


def test_bad_input_frames() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        flag_clock_windows(pd.DataFrame({"lon": [LON], "lat": [LAT], "time_utc": pd.to_datetime(["2022-06-03"])}))
    with pytest.raises(ValueError, match="lat"):
        flag_clock_windows(pd.DataFrame({"lon": [LON], "time_utc": pd.to_datetime(["2022-06-03"], utc=True)}))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "solar"}, "mode"),
        ({"after_work_start_h": 1.0, "after_work_end_h": 0.5}, "after_work_start_h"),
        ({"after_work_start_h": float("nan")}, "after_work_start_h"),
        ({"after_work_end_h": "0.5"}, "after_work_end_h"),
        ({"first_half_night_end": "25:00"}, "first_half_night_end"),
        ({"first_half_night_end": "24:30"}, "first_half_night_end"),
        ({"first_half_night_end": "23h00"}, "first_half_night_end"),
        ({"first_half_night_end": "02:00"}, "first_half_night_end"),
        ({"fixed_after_work": ("19:00", "17:00")}, "fixed_after_work"),
        ({"fixed_after_work": ("17:00",)}, "fixed_after_work"),
        ({"fixed_first_half_night": ("19:00", "7pm")}, "fixed_first_half_night"),
        ({"fixed_first_half_night": ("19:00", "19:60")}, "fixed_first_half_night"),
    ],
)
def test_clock_windows_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ClockWindows(**kwargs)  # type: ignore[arg-type]


def test_clock_windows_accepts_24_00_and_lists() -> None:
    # Lists (as a YAML/JSON config gives them) become tuples, so the instance stays hashable.
    w = ClockWindows(
        mode="fixed",
        fixed_after_work=["17:30", "19:30"],  # type: ignore[arg-type]
        fixed_first_half_night=["19:30", "24:00"],  # type: ignore[arg-type]
    )
    assert w.fixed_after_work == ("17:30", "19:30")
    same = ClockWindows(mode="fixed", fixed_after_work=("17:30", "19:30"), fixed_first_half_night=("19:30", "24:00"))
    assert hash(w) == hash(same) and w == same
    with pytest.raises(AttributeError):
        w.mode = "sun"  # type: ignore[misc]
