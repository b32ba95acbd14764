"""Electricity inputs: readers, one day of meter readings, the stored state, and the nightly run's sites.

Readings at 15-minute resolution are not public: the tests spread the real
daily totals of tests/data/power/tianchi_subset_40users.csv over 96 intervals
with a fixed working-hours shape, so the day's totals they must give back are
the real ones.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from test_nightly import DAY, ROOT, write_config

from pipelines.power.holidays import WorkCalendar, unknown_years
from pipelines.power.meters import DayUse, MeterLimits, day_use
from pipelines.power.readers import (
    ReadingFormat,
    read_readings,
    read_registry,
    read_transformers,
    read_warnings,
)
from pipelines.power.state import PowerState, latest_state, prune_states
from pipelines.publish.maps import cell_map_filename
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL
from pipelines.testing import raise_if_dask_computes

SERIES = Path(__file__).resolve().parent / "data" / "power" / "tianchi_subset_40users.csv"
DAY_2016 = dt.date(2016, 9, 1)
# Share of a day's use in each hour: a day shift (08-18) over a small night load.
SHAPE = np.where((np.arange(96) >= 32) & (np.arange(96) < 72), 3.0, 1.0)
SHAPE = SHAPE / SHAPE.sum()


@pytest.fixture(scope="module")
def real_day() -> pd.Series:
    """Real kWh of every enterprise on 2016-09-01, by transformer id."""
    frame = pd.read_csv(SERIES, parse_dates=["record_date"])
    day = frame[frame["record_date"] == pd.Timestamp(DAY_2016)]
    return pd.Series(day["power_consumption"].to_numpy(float), index=[f"T{u}" for u in day["user_id"]])


def quarter_hours(totals: pd.Series, day: dt.date = DAY_2016, *, tz: str = "Asia/Shanghai") -> pd.DataFrame:
    """96 end-labelled readings per transformer whose sum is its real daily total."""
    ends = pd.date_range(pd.Timestamp(day) + pd.Timedelta(minutes=15), periods=96, freq="15min").tz_localize("Asia/Shanghai").tz_convert(tz)
    return pd.DataFrame({
        "transformer_id": np.repeat(totals.index.to_numpy(), 96),
        "time": np.tile(ends.tz_localize(None).strftime("%Y-%m-%d %H:%M:%S"), len(totals)),
        "kwh": np.outer(totals.to_numpy(), SHAPE).ravel(),
    })


def use_of(paths: list[Path], fleet: pd.Index, fmt: ReadingFormat | None = None, **kwargs: object) -> DayUse:
    fmt = fmt or ReadingFormat()
    return day_use(read_readings(paths, fmt), fleet, DAY_2016, fmt, **kwargs)


# ----------------------------------------------------------------------- holidays


def test_calendar_knows_spring_festival_and_make_up_days() -> None:
    cal = WorkCalendar.build(dt.date(2016, 1, 25), 40)
    kinds = dict(zip(cal.dates.date, cal.kind()))
    assert kinds[dt.date(2016, 2, 8)] == "holiday" and kinds[dt.date(2016, 2, 6)] == "makeup" and kinds[dt.date(2016, 2, 14)] == "makeup"
    season = cal.dates[cal.festival].date
    assert season[0] == dt.date(2016, 1, 31) and season[-1] == dt.date(2016, 2, 28)  # 7 days before 7 Feb, 15 after 13 Feb
    assert cal.unknown_years == ()


def test_calendar_beyond_the_library_falls_back_to_weekdays() -> None:
    cal = WorkCalendar.build(dt.date(2099, 1, 1), 7)
    assert cal.unknown_years == (2099,) == unknown_years(dt.date(2025, 12, 1), dt.date(2099, 1, 7))[-1:]
    assert unknown_years(dt.date(2015, 1, 1), dt.date(2016, 12, 31)) == ()
    assert list(cal.workday) == [d.weekday() < 5 for d in cal.dates]


# ----------------------------------------------------------------------- readers


def test_registry_rows_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(
        "enterprise_id,name,address,industry,status,status_date,deadline,grade\n"
        "E1,甲厂,地址,铸造,关停,2016-04-01,,\n"
        "E2,乙厂,地址,铸造,在产,,,b\n"
        "E3,丙厂,地址,铸造,倒闭,2016-04-01,,\n"
        "E4,丁厂,地址,铸造,closed,,,\n"
        "E5,戊厂,地址,铸造,operating,,,E\n"
        "E1,甲厂二,地址,铸造,正常,,,\n",
        encoding="utf-8",
    )
    registry, skips = read_registry(path)
    assert list(registry["enterprise_id"]) == ["E1", "E2"]
    assert list(registry["status"]) == ["closed", "operating"] and list(registry["grade"]) == ["", "B"]
    assert registry["status_date"].iloc[0] == dt.date(2016, 4, 1)
    assert [(s.row, s.field) for s in skips] == [(4, "status"), (5, "status_date"), (6, "grade"), (7, "enterprise_id")]
    assert all(s.file == "registry.csv" for s in skips)


def test_transformers_in_gcj02_are_moved_to_wgs84(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("transformer_id,enterprise_id,lon,lat\nT1,E1,119.85,32.2\nT2,,abc,32.2\nT1,E9,119.8,32.1\n", encoding="utf-8")
    wgs, skips = read_transformers(path)
    gcj, _ = read_transformers(path, "GCJ-02")
    assert len(wgs) == 1 and [(s.row, s.field) for s in skips] == [(3, "lon"), (4, "transformer_id")]
    shift_m = np.hypot((wgs["lon"] - gcj["lon"]) * 94_000, (wgs["lat"] - gcj["lat"]) * 111_000).iloc[0]
    assert 300 < shift_m < 700  # GCJ-02 offsets are a few hundred metres in Jiangsu


def test_warnings_times_are_beijing_and_24_00_is_midnight(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("warning_id,level,start,end,region\nW1,橙色,2016-12-16 20:00,2016-12-21 24:00,13;41\nW2,purple,2016-12-16,2016-12-17,*\n", encoding="utf-8")
    warnings, skips = read_warnings(path)
    assert warnings["level"].tolist() == ["orange"] and [(s.row, s.field) for s in skips] == [(3, "level")]
    assert warnings["start_utc"].iloc[0] == pd.Timestamp("2016-12-16 12:00", tz="UTC")
    assert warnings["end_utc"].iloc[0] == pd.Timestamp("2016-12-21 16:00", tz="UTC")


# ----------------------------------------------------------------------- one day of readings


def test_day_totals_are_the_real_ones_from_csv_or_parquet(tmp_path: Path, real_day: pd.Series) -> None:
    frame = quarter_hours(real_day)
    frame.to_csv(tmp_path / "day.csv", index=False)
    shuffled = frame.sample(frac=1, random_state=1)
    for i in range(3):
        shuffled.iloc[i::3].to_parquet(tmp_path / f"part{i}.parquet", row_group_size=700)
    fleet = pd.Index(real_day.index)
    from_csv = use_of([tmp_path / "day.csv"], fleet)
    with raise_if_dask_computes():
        lazy = read_readings(sorted(tmp_path.glob("*.parquet")), ReadingFormat())
    assert lazy.npartitions > 3  # one per row group
    from_parquet = day_use(lazy, fleet, DAY_2016, ReadingFormat())
    for use in (from_csv, from_parquet):
        np.testing.assert_allclose(use.kwh, real_day.to_numpy(), rtol=1e-5)
        np.testing.assert_allclose(use.work_share, SHAPE[32:72].sum(), rtol=1e-5)
        assert use.counts["rows"] == use.counts["used"] == len(frame)
        assert use.counts["duplicates"] == use.counts["conflicting"] == use.counts["negative"] == 0


def test_utc_times_and_start_labels_give_the_same_day(tmp_path: Path, real_day: pd.Series) -> None:
    fleet = pd.Index(real_day.index)
    quarter_hours(real_day, tz="UTC").to_csv(tmp_path / "utc.csv", index=False)
    utc = use_of([tmp_path / "utc.csv"], fleet, ReadingFormat(timezone="UTC"))
    np.testing.assert_allclose(utc.kwh, real_day.to_numpy(), rtol=1e-5)
    # The same file read as if its times were Beijing time loses the first 8 hours' intervals to the day before.
    wrong = use_of([tmp_path / "utc.csv"], fleet, ReadingFormat())
    assert wrong.counts["outside_day"] == 32 * len(real_day) and np.isnan(wrong.kwh).all()

    start = quarter_hours(real_day)
    start["time"] = (pd.to_datetime(start["time"]) - pd.Timedelta(minutes=15)).dt.strftime("%Y-%m-%d %H:%M")
    start.to_csv(tmp_path / "start.csv", index=False)
    labelled = use_of([tmp_path / "start.csv"], fleet, ReadingFormat(label="start"))
    np.testing.assert_allclose(labelled.kwh, real_day.to_numpy(), rtol=1e-5)


def test_malformed_readings_are_counted_never_dropped_silently(tmp_path: Path, real_day: pd.Series) -> None:
    frame = quarter_hours(real_day)
    t1, t2, t3, t4 = "T1", "T2", "T3", "T4"
    rows = frame.index[frame["transformer_id"] == t1]
    frame.loc[rows[10], "kwh"] = -5.0  # a negative interval
    frame.loc[rows[11], "time"] = "not a time"
    frame.loc[rows[12], "kwh"] = np.nan
    frame.loc[rows[13], "kwh"] = 1e9  # far beyond any transformer
    dup_same = frame[frame["transformer_id"] == t2].iloc[[5, 6]]
    dup_other = frame[frame["transformer_id"] == t3].iloc[[7]].assign(kwh=lambda f: f["kwh"] + 1)
    gap = frame.index[frame["transformer_id"] == t4][:20]  # 20 of 96 intervals missing: under min_coverage
    stranger = pd.DataFrame({"transformer_id": ["X9"] * 3, "time": frame["time"].iloc[:3], "kwh": [1.0, 2.0, 3.0]})
    bad = pd.concat([frame.drop(index=gap), dup_same, dup_other, stranger], ignore_index=True)
    bad.to_csv(tmp_path / "bad.csv", index=False)

    use = use_of([tmp_path / "bad.csv"], pd.Index(real_day.index))
    c = use.counts
    assert (c["negative"], c["bad_time"], c["bad_value"], c["implausible"]) == (1, 1, 1, 1)
    assert (c["duplicates"], c["conflicting"], c["unmapped_rows"], c["unmapped_transformers"]) == (2, 2, 3, 1)
    assert use.unmapped == {"X9": 3}
    assert c["rows"] == len(bad) and c["days_too_incomplete"] == 1
    # Every row is either used or counted under one reason.
    accounted = c["used"] + c["duplicates"] + c["conflicting"] + c["negative"] + c["bad_time"] + c["bad_value"] + c["implausible"] + c["unmapped_rows"]
    assert accounted == len(bad)
    kwh = pd.Series(use.kwh, index=real_day.index)
    assert np.isnan(kwh["T4"])
    # T1 lost 4 intervals and T3 one (conflict): still above min_coverage, scaled up from the known 92 and 95.
    assert kwh["T2"] == pytest.approx(real_day["T2"], rel=1e-5)
    assert 0.8 * real_day["T1"] < kwh["T1"] < 1.2 * real_day["T1"]
    rows_named = {(s.row, s.field) for s in use.examples}
    assert (rows[10] + 2, "kwh") in rows_named and (rows[11] + 2, "time") in rows_named


def test_register_readings_survive_gaps_and_meter_resets(tmp_path: Path, real_day: pd.Series) -> None:
    frame = quarter_hours(real_day)
    frame["kwh"] = frame.groupby("transformer_id")["kwh"].cumsum() + 50_000.0
    previous = np.full(len(real_day), 50_000.0)
    t5 = frame.index[frame["transformer_id"] == "T5"]
    frame.loc[t5[60:], "kwh"] -= frame.loc[t5[59], "kwh"]  # meter replaced at interval 60: the register restarts near 0
    t6 = frame.index[frame["transformer_id"] == "T6"]
    frame = frame.drop(index=t6[30:60])  # 30 missing readings: the next one carries their energy
    frame.to_csv(tmp_path / "register.csv", index=False)
    fmt = ReadingFormat(values="register")
    use = use_of([tmp_path / "register.csv"], pd.Index(real_day.index), fmt, previous_register=previous)
    kwh = pd.Series(use.kwh, index=real_day.index)
    assert use.counts["meter_resets"] == 1
    assert kwh["T6"] == pytest.approx(real_day["T6"], rel=1e-6)  # exact: the register spans the gap
    # The interval of the reset is unknown; the day is the other 95 scaled up to 96.
    assert kwh["T5"] == pytest.approx(real_day["T5"] * (1 - SHAPE[60]) * 96 / 95, rel=1e-5)
    others = kwh.drop(["T5"])
    np.testing.assert_allclose(others, real_day.drop(["T5"]), rtol=1e-6)
    without_previous = use_of([tmp_path / "register.csv"], pd.Index(real_day.index), fmt)
    assert np.isfinite(without_previous.kwh).all()  # the first interval is unknown, 95 of 96 known


def test_meter_limits_are_configurable(tmp_path: Path, real_day: pd.Series) -> None:
    frame = quarter_hours(real_day)
    frame.to_csv(tmp_path / "day.csv", index=False)
    strict = use_of([tmp_path / "day.csv"], pd.Index(real_day.index), limits=MeterLimits(max_kw=10.0))
    assert strict.counts["implausible"] > 0 and np.isnan(strict.kwh).sum() > 0


# ----------------------------------------------------------------------- state


def test_state_round_trip_roll_and_reindex(tmp_path: Path, real_day: pd.Series) -> None:
    state = PowerState.empty(list(real_day.index), dt.date(2016, 8, 30), 10)
    values = real_day.to_numpy("float32")
    state = state.advance(DayUse(dt.date(2016, 8, 31), values, values * 0, np.ones_like(values), np.full(len(values), 7.0)))
    state = state.advance(DayUse(dt.date(2016, 9, 2), values * 2, values * 0, np.ones_like(values), np.full(len(values), np.nan)))
    assert state.end == dt.date(2016, 9, 2)
    assert np.isnan(state.daily[:, -2]).all() and np.array_equal(state.daily[:, -3], values)
    assert np.isnan(state.last_register).all()  # the register of 31 August is no use after a missing day
    state.write(tmp_path / "2016-09-02.parquet")
    back = PowerState.read(tmp_path / "2016-09-02.parquet")
    assert back.end == state.end and np.array_equal(back.daily, state.daily, equal_nan=True) and list(back.ids) == list(state.ids)
    grown = back.reindex(["NEW", *back.ids[:3]])
    assert np.isnan(grown.daily[0]).all() and np.array_equal(grown.daily[1], back.daily[0], equal_nan=True)
    assert not list(tmp_path.glob(".*tmp*"))
    for day in ("2016-08-30", "2016-08-31", "2016-09-01"):
        shutil.copy(tmp_path / "2016-09-02.parquet", tmp_path / f"{day}.parquet")
    assert latest_state(tmp_path, dt.date(2016, 9, 2)).name == "2016-09-01.parquet"
    prune_states(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["2016-09-01.parquet", "2016-09-02.parquet"]


# ----------------------------------------------------------------------- the nightly run


@pytest.fixture(scope="module")
def electricity_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("electricity")
    assert main(["nightly", "--date", DAY, "--config", str(write_config(tmp)), "--quiet"]) == EXIT_OK
    return tmp


def test_sample_night_writes_sites(electricity_run: Path) -> None:
    folder = electricity_run / "out" / DAY
    sites = gpd.read_parquet(folder / "sites.parquet")
    assert sites.crs == "EPSG:4326"
    by_rule = sites.groupby("rule")["enterprise_id"].apply(set).to_dict()
    # The sample's closures: 200 restarted (real 2016-05-23), 20 never did.
    assert "E0200" in by_rule["resurgence"] and "E0020" not in by_rule.get("resurgence", set())
    assert set(sites.loc[sites["rule"] == "unregistered_load", "transformer_id"]) == {"YZ0010", "YZ0022"}
    assert sites["cell_id"].str.startswith("321182_").all()
    manifest = json.loads((folder / "run.json").read_text())
    counts = manifest["counts"]["electricity"]
    assert counts["sites"] == len(sites) and counts["transformers"] == 38
    # The first run rebuilds its state from readings: history_days, or further back for the oldest closure's reference.
    rebuilt_from = dt.date.fromisoformat(counts["state_rebuilt_from"])
    assert counts["state_days_replayed"] == (dt.date.fromisoformat(DAY) - rebuilt_from).days > 90
    assert "oldest closure in force" in counts["state_rebuild_reason"]
    assert set(sites["episode"]) <= {"new", "continuing", "ended", "resumed"} and sites["episode_rank"].is_monotonic_increasing
    assert len(manifest["inputs"]["electricity"]["readings"]) == 1
    summary = pd.read_csv(folder / "grid_summary.csv", dtype={"cell_id": str})
    assert summary["sites"].sum() == len(sites)
    page = (folder / "map.html").read_text(encoding="utf-8")
    assert "死灰复燃" in page and "gridwatchChart" in (folder / "static" / "gridwatch-map.js").read_text(encoding="utf-8")
    cell = sites.loc[sites["rule"] == "resurgence", "cell_id"].iloc[0]
    assert "死灰复燃" in (folder / "maps" / cell_map_filename(cell)).read_text(encoding="utf-8")
    assert (electricity_run / "out" / "state" / "electricity" / f"{DAY}.parquet").exists()


def test_rerun_reads_the_stored_state_and_computes_the_day_once(electricity_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = electricity_run / "out" / DAY
    before = gpd.read_parquet(folder / "sites.parquet")
    state_dir = electricity_run / "out" / "state" / "electricity"
    # The state of the day before, as a previous night would have left it.
    day = dt.date.fromisoformat(DAY)
    previous = PowerState.read(state_dir / f"{DAY}.parquet")
    previous = PowerState(previous.ids, day - dt.timedelta(days=1), np.concatenate([previous.daily[:, :1] * np.nan, previous.daily[:, :-1]], axis=1),
                          np.concatenate([previous.work_share[:, :1] * np.nan, previous.work_share[:, :-1]], axis=1),
                          previous.last_register, previous.floor_kwh, previous.floor_for, previous.ref_kwh)
    previous.write(state_dir / f"{day - dt.timedelta(days=1)}.parquet")
    computes = []
    original = day_use

    def counting(*args: object, **kwargs: object) -> object:
        computes.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr("pipelines.power.electricity.day_use", counting)
    assert main(["nightly", "--date", DAY, "--config", str(electricity_run / "config.toml"), "--quiet"]) == EXIT_OK
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["counts"]["electricity"]["state_days_replayed"] == 0 and computes == [day]
    after = gpd.read_parquet(folder / "sites.parquet")
    pd.testing.assert_frame_equal(before.drop(columns="geometry"), after.drop(columns="geometry"))


def test_malformed_readings_make_a_partial_run(tmp_path: Path) -> None:
    readings = tmp_path / "readings"
    shutil.copytree(ROOT / "geodata" / "power" / "readings", readings)
    day_file = readings / f"{DAY}.csv"
    lines = day_file.read_text(encoding="utf-8").splitlines()
    lines += ["YZ0001,2022-06-03,-7", "YZ9999,2022-06-03,12", lines[2], "YZ0003,yesterday,5"]
    day_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(tmp_path)
    text = config.read_text(encoding="utf-8").replace(f'"{ROOT}/geodata/power/readings/{{date}}.csv"', f'"{readings}/{{date}}.csv"')
    config.write_text(text, encoding="utf-8")
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    manifest = json.loads((tmp_path / "out" / DAY / "run.json").read_text())
    counts = manifest["counts"]["electricity"]
    assert (counts["negative"], counts["unmapped_rows"], counts["duplicates"], counts["bad_time"]) == (1, 1, 1, 1)
    assert counts["unmapped_transformer_ids"] == {"YZ9999": 1}
    skipped = {(s["file"], s["row"], s["field"]) for s in manifest["skipped"]}
    assert (f"{DAY}.csv", len(lines) - 3, "kwh") in skipped and (f"{DAY}.csv", len(lines), "time") in skipped
    assert (tmp_path / "out" / DAY / "sites.parquet").exists()


def test_unusable_registry_keeps_the_fires(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    broken = tmp_path / "registry.csv"
    broken.write_text("id,name\n1,x\n", encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8").replace(f'"{ROOT}/geodata/power/registry.csv"', f'"{broken}"'), encoding="utf-8")
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    folder = tmp_path / "out" / DAY
    manifest = json.loads((folder / "run.json").read_text())
    assert any((s["file"], s["row"], s["field"]) == ("registry.csv", 1, "enterprise_id") and "missing column" in s["reason"]
               for s in manifest["skipped"])
    assert gpd.read_parquet(folder / "sites.parquet").empty and len(gpd.read_parquet(folder / "fires.parquet")) == 568


def test_capacity_per_transformer_instead_of_one_cap(tmp_path: Path) -> None:
    """The largest real consumer of the Yangzhong data (user 1416, up to 1,104,348 kWh/day in September 2016, ~46 MW)
    is used with the default limits; a transformer table's kva makes a reading beyond kva x kw_per_kva implausible."""
    month = pd.read_csv(SERIES.with_name("Tianchi_power_9.csv"))
    biggest = month.loc[month["power_consumption"].idxmax()]
    assert int(biggest["user_id"]) == 1416 and biggest["power_consumption"] > 1_000_000
    totals = pd.Series([float(biggest["power_consumption"]), 5000.0], index=["T1416", "T2"])
    frame = pd.DataFrame({"transformer_id": totals.index, "time": DAY_2016.isoformat(), "kwh": totals.to_numpy()})
    frame.to_csv(tmp_path / "day.csv", index=False)
    fmt = ReadingFormat(interval_minutes=1440)
    fleet = pd.Index(totals.index)
    use = use_of([tmp_path / "day.csv"], fleet, fmt)
    assert use.counts["implausible"] == 0 and np.allclose(use.kwh, totals.to_numpy())
    assert MeterLimits(max_kw=20000.0).max_kw * 24 < biggest["power_consumption"]  # the old cap rejected it
    # T2 with a 100 kVA transformer: 5,000 kWh/day is 208 kW on average, beyond 2 x 100: that reading is rejected.
    capped = use_of([tmp_path / "day.csv"], fleet, fmt, kva=np.array([np.nan, 100.0]))
    assert capped.counts["implausible"] == 1 and np.isnan(capped.kwh[1]) and capped.kwh[0] == pytest.approx(totals.iloc[0])
    table = tmp_path / "t.csv"
    table.write_text("transformer_id,enterprise_id,lon,lat,kva\nT1,E1,119.85,32.2,630\nT2,E2,119.85,32.2,\nT3,E3,119.85,32.2,big\n", encoding="utf-8")
    transformers, skips = read_transformers(table)
    assert transformers["kva"].tolist()[0] == 630 and np.isnan(transformers["kva"].tolist()[1:]).all()
    assert [(s.row, s.field) for s in skips] == [(4, "kva")] and len(transformers) == 3
