"""The nightly run end to end on the sample data in geodata/, and on broken input."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, failure_log_path

ROOT = Path(__file__).resolve().parent.parent
FIRES = Path(__file__).resolve().parent / "data" / "fires"
DAY = "2022-06-03"


def write_config(tmp_path: Path, *, points: list[str] | None = None, rasters: list[str] | None = None, drop: str | None = None,
                 grid: str | None = None, without: str | None = None) -> Path:
    """The project's config.toml with absolute paths (and optional edits), in ``tmp_path``.

    ``drop``: a key to remove; ``without``: a section to remove with its sub-tables.
    """
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    if without is not None:
        kept, skipping = [], False
        for line in text.splitlines():
            if line.startswith("["):
                name = line.strip("[]").split("]")[0].strip("[]")
                skipping = name == without or name.startswith(without + ".")
            if not skipping:
                kept.append(line)
        text = "\n".join(kept) + "\n"
    text = text.replace('"geodata/', f'"{ROOT}/geodata/').replace('dir = "out"', f'dir = "{tmp_path}/out"')
    if points is not None:
        text = text.replace(f'points = ["{ROOT}/geodata/fires/*.csv"]', "points = " + json.dumps(points))
    if rasters is not None:
        text = text.replace(f'rasters = ["{ROOT}/geodata/fires/ahi/*.nc"]', "rasters = " + json.dumps(rasters))
    if grid is not None:
        text = text.replace(f'path = "{ROOT}/geodata/grid_ncp_5km.parquet"', f'path = "{grid}"', 1)
    if drop is not None:
        text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{drop} ="))
    text = text.replace('tiles = "OpenStreetMap"', 'tiles = ""')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("nightly")
    assert main(["nightly", "--date", DAY, "--config", str(write_config(tmp)), "--quiet"]) == EXIT_OK
    return tmp / "out" / DAY


def test_outputs_of_the_contract(sample_run: Path) -> None:
    names = {p.name for p in sample_run.iterdir()}
    assert {"fires.parquet", "events.parquet", "grid_summary.csv", "report.csv", "report.html", "map.html", "maps", "run.json", "run.log"} <= names
    manifest = json.loads((sample_run / "run.json").read_text())
    assert manifest["status"] == "ok" and manifest["exit_code"] == 0
    # MODIS points of 2022-06-03 (Beijing time) in the region, and the AHI scans' fire pixels.
    assert manifest["counts"]["by_sensor"] == {"AHI": 478, "MODIS": 90}
    assert manifest["counts"]["duplicates"] == 81  # the 24 h file repeats the 7-day file
    assert all(len(f["sha256"]) == 64 for f in manifest["inputs"]["fires"] + manifest["inputs"]["rasters"])
    assert len(manifest["inputs"]["rasters"]) == 144 and sum(r["rows_read"] for r in manifest["inputs"]["rasters"]) == 478
    assert not list(sample_run.parent.glob(".*tmp*"))


def test_fires_are_attributed_like_sjoin(sample_run: Path) -> None:
    fires = gpd.read_parquet(sample_run / "fires.parquet")
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    joined = gpd.sjoin(fires[["fire_id", "geometry"]], grid[["cell_id", "geometry"]], predicate="within", how="left")
    expected = joined.set_index("fire_id")["cell_id"]
    got = fires.set_index("fire_id")["cell_id"]
    assert got.notna().sum() == 535
    pd.testing.assert_series_equal(got.astype(object).where(got.notna(), None).sort_index(),
                                   expected.astype(object).where(expected.notna(), None).sort_index(), check_names=False)
    assert fires.crs.to_epsg() == 4326 and fires["footprint"].notna().all()
    assert (fires["time_bjt"].dt.date.astype(str) == DAY).all()
    # Terra's night pass (14:22 UTC = 22:22 Beijing) falls in the first half of the night.
    night = fires[fires["win_first_half_night"] & (fires["sensor"] == "MODIS")]
    assert len(night) == 3 and set(night["time_bjt"].dt.strftime("%H:%M")) == {"22:22"}
    assert fires["win_before_rain"].isna().all()


def test_every_fire_belongs_to_an_event(sample_run: Path) -> None:
    fires = gpd.read_parquet(sample_run / "fires.parquet")
    events = gpd.read_parquet(sample_run / "events.parquet")
    assert fires["event_id"].notna().all() and set(fires["event_id"]) == set(events["event_id"])
    assert events["observations"].sum() == len(fires)
    # The geostationary scans follow the fires MODIS saw: most events join both sensors.
    both = events[events["sensors"] == "AHI, MODIS"]
    assert len(both) >= 40
    night = fires[fires["win_first_half_night"] & (fires["sensor"] == "MODIS")]
    night_events = events[events["event_id"].isin(night["event_id"])]
    assert night_events["win_first_half_night"].all()
    assert (night_events["first_seen_bjt"] <= night["time_bjt"].min()).all()
    html = (sample_run / "map.html").read_text()
    assert "fire events (59)" in html and "heat-source events (9)" in html and "首次发现 first seen" in html


def test_fires_are_classified_and_reported(sample_run: Path) -> None:
    fires = gpd.read_parquet(sample_run / "fires.parquet")
    events = gpd.read_parquet(sample_run / "events.parquet")
    manifest = json.loads((sample_run / "run.json").read_text())
    assert manifest["counts"]["events_by_category"] == {"industrial": 9, "persistent": 0, "straw_suspect": 44, "other_vegetation": 5, "unknown": 0, "other": 10}
    assert fires["category"].notna().all() and fires["reason"].notna().all()
    industrial = fires[fires["category"] == "industrial"]
    assert len(industrial) and all(name in reason for name, reason in zip(industrial["plant_name"], industrial["reason"]))
    assert (fires.loc[fires["category"] == "straw_suspect", "cropland_fraction"] >= 0.5).all()
    report = pd.read_csv(sample_run / "report.csv", dtype={"code": str, "parent_code": str}, keep_default_na=False, na_values=[""])
    provinces = report[report["level"] == "province"]
    in_cells = events[events["cell_id"].notna()]
    assert provinces["straw_suspect"].sum() == (in_cells["category"] == "straw_suspect").sum()
    counties = report[report["level"] == "county"].set_index("code")
    cells = report[report["level"] == "cell"]
    by_county = cells.groupby("parent_code")["straw_suspect"].sum()
    assert (counties.loc[by_county.index, "straw_suspect"] == by_county).all()
    html = (sample_run / "report.html").read_text()
    assert "<svg" in html and "http" not in html.replace("http-equiv", "")
    overview = (sample_run / "map.html").read_text()
    assert "industrial heat source" in overview  # its layer exists (hidden until switched on)


def test_summary_and_cell_maps_agree(sample_run: Path) -> None:
    summary = pd.read_csv(sample_run / "grid_summary.csv", dtype={"cell_id": str, "county_code": str, "map": str})
    fires = gpd.read_parquet(sample_run / "fires.parquet")
    assert len(summary) == len(gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet"))
    assert summary["fires"].sum() == fires["cell_id"].notna().sum()
    with_map = summary[summary["map"].notna()]
    assert set(with_map["cell_id"]) >= set(fires["cell_id"].dropna())
    for path in with_map["map"]:
        assert (sample_run / path).is_file()
    html = (sample_run / "map.html").read_text()
    assert "cdn.jsdelivr" not in html and "北京时间" in html
    assert "boundaries" in html and "河南省" in html  # province outlines: readable with no basemap


def test_rerun_gives_identical_fires(sample_run: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_OK
    again = tmp_path / "out" / DAY
    assert (again / "fires.parquet").read_bytes() == (sample_run / "fires.parquet").read_bytes()
    assert (again / "grid_summary.csv").read_bytes() == (sample_run / "grid_summary.csv").read_bytes()


def test_bad_inputs_are_skipped_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    good = (ROOT / "geodata" / "fires" / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv").read_text().splitlines()
    (bad / "truncated.csv").write_text("\n".join(good[:40]) + "\n" + good[40][:25])
    (bad / "nocolumns.csv").write_text("\n".join(line.rsplit(",", 7)[0] for line in good) + "\n")
    out_of_range = list(good)
    out_of_range[5] = "95.1" + out_of_range[5][out_of_range[5].index(","):]
    (bad / "range.csv").write_text("\n".join(out_of_range) + "\n")
    (bad / "unreadable.csv").write_bytes(b"\x00\x01\x02 not a csv")
    config = write_config(tmp_path, points=[f"{ROOT}/geodata/fires/*.csv", f"{bad}/*.csv"])

    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    assert "partial" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "out" / DAY / "run.json").read_text())
    assert manifest["status"] == "partial"
    skipped = {(s["file"], s["row"], s["field"]) for s in manifest["skipped"]}
    assert any(f == "truncated.csv" and r == 41 for f, r, _ in skipped)  # header + 39 rows, then the cut line
    assert ("range.csv", 6, "latitude") in skipped
    assert any(f == "nocolumns.csv" and r is None for f, r, _ in skipped)
    assert any(f == "unreadable.csv" and r is None for f, r, _ in skipped)
    assert manifest["counts"]["by_sensor"]["MODIS"] == 90  # the good data (and good rows of bad files) all made it


def test_missing_config_key_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, drop="id_column")
    assert main(["nightly", "--date", DAY, "--config", str(config)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "missing key 'id_column' in [grid]" in err and str(config) in err
    assert not (tmp_path / "out").exists()


def test_missing_grid_file_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, grid=str(tmp_path / "no_such_grid.gpkg"))
    assert main(["nightly", "--date", DAY, "--config", str(config)]) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_grid.gpkg: file not found" in err[0] and "Traceback" not in err[0]
    # No day folder; the traceback is in the failure log the message names.
    assert not (tmp_path / "out" / DAY).exists()
    log = failure_log_path(tmp_path / "out", dt.date.fromisoformat(DAY))
    assert str(log) in err[0] and "Traceback" in log.read_text(encoding="utf-8")


def test_killed_run_leaves_previous_output_untouched(sample_run: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_OK
    final = tmp_path / "out" / DAY
    before = digest(final)

    proc = subprocess.Popen([sys.executable, "-m", "pipelines.run.cli", "nightly", "--date", DAY, "--config", str(config), "--quiet"], cwd=ROOT)
    deadline = time.monotonic() + 120
    # Kill it while it is writing maps into its staging folder.
    while time.monotonic() < deadline and proc.poll() is None:
        staged = list((tmp_path / "out").glob(f".{DAY}.tmp-*/maps/*.html"))
        if staged:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert digest(final) == before
    assert list((tmp_path / "out").glob(f".{DAY}.tmp-*"))  # the killed run's leftovers...
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_OK
    assert not list((tmp_path / "out").glob(f".{DAY}.tmp-*"))  # ...are cleaned by the next run
    assert digest(final).keys() == before.keys()


def test_help_explains_exit_codes() -> None:
    out = subprocess.run([sys.executable, "-m", "pipelines.run.cli", "nightly", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    assert "partial" in out.stdout and "--scheduler" in out.stdout and "Beijing" in out.stdout


def test_runs_on_a_distributed_scheduler(sample_run: Path, tmp_path: Path) -> None:
    """The same command on a dask.distributed cluster (here a local one, in separate processes)."""
    from distributed import LocalCluster

    config = write_config(tmp_path)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["nightly", "--date", DAY, "--config", str(config), "--quiet", "--scheduler", cluster.scheduler_address])
    assert code == EXIT_OK
    manifest = json.loads((tmp_path / "out" / DAY / "run.json").read_text())
    assert manifest["scheduler"].startswith("tcp://") and manifest["counts"]["by_sensor"] == {"AHI": 478, "MODIS": 90}
    assert (tmp_path / "out" / DAY / "fires.parquet").read_bytes() == (sample_run / "fires.parquet").read_bytes()


def test_unreachable_scheduler_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import dask

    config = write_config(tmp_path)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        assert main(["nightly", "--date", DAY, "--config", str(config), "--scheduler", "tcp://127.0.0.1:1"]) == EXIT_FAILED
    assert "cannot reach dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "out" / DAY).exists()


def test_broken_rasters_make_a_partial_run(tmp_path: Path) -> None:
    scans = tmp_path / "ahi"
    scans.mkdir()
    for path in sorted((ROOT / "geodata" / "fires" / "ahi").glob("*.nc")):
        (scans / path.name).write_bytes(path.read_bytes())
    truncated = scans / "H08_20220603_0500_FIRE_MASK_R02.nc"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    tif = scans / "MYD14.A2022154.0455.061.tif"  # no CRS
    import numpy as np
    import rasterio

    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):
        with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=2, dtype="uint16") as dst:
            dst.write(np.full((2, 4, 4), 5, dtype="uint16"))
    config = write_config(tmp_path, rasters=[f"{scans}/*.nc", f"{scans}/*.tif"])
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    manifest = json.loads((tmp_path / "out" / DAY / "run.json").read_text())
    reasons = {s["file"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {truncated.name, tif.name}
    assert "HDF error" in reasons[truncated.name] and "neither a CRS" in reasons[tif.name]
    assert manifest["counts"]["by_sensor"]["AHI"] == 478 - 26  # the 05:00 scan held 26 fire pixels


def test_the_run_computes_once_after_building_its_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading, extraction and filtering of fires stay lazy: one pass of the scheduler reads every fire input."""
    import dask.base

    calls = []
    threads = dask.base.named_schedulers["threads"]

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return threads(*args, **kwargs)

    monkeypatch.setitem(dask.base.named_schedulers, "threads", counting)
    assert main(["nightly", "--date", DAY, "--config", str(write_config(tmp_path, without="electricity")), "--quiet"]) == EXIT_OK
    assert len(calls) == 1


def test_plant_list_with_bad_coordinates_makes_a_partial_run(tmp_path: Path) -> None:
    lines = (ROOT / "geodata/industrial/gem_steel_plants_china.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"23.1268220, 113.5058170"', '"twenty-three north"')
    lines[5] = lines[5].replace('"', "", 2).replace(", ", ";", 1)  # coordinates split over two columns
    steel = tmp_path / "steel.csv"
    steel.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(f"{ROOT}/geodata/industrial/gem_steel_plants_china.csv", str(steel)))
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    manifest = json.loads((tmp_path / "out" / DAY / "run.json").read_text())
    skipped = {(s["file"], s["row"]) for s in manifest["skipped"]}
    assert ("steel.csv", 3) in skipped and ("steel.csv", 6) in skipped
    steel_record = next(p for p in manifest["inputs"]["plants"] if p["file"] == "steel.csv")
    assert steel_record["plants"] == 289 - 2 and steel_record["rows_skipped"] == 2
    assert manifest["counts"]["events_by_category"]["industrial"] == 9  # neither bad row is a plant near these fires


def test_persistent_command_builds_the_shipped_history(tmp_path: Path) -> None:
    from pipelines.fires.persistent import FireHistory

    out = tmp_path / "history.parquet"
    assert main(["persistent", "--config", str(ROOT / "config.toml"), "--out", str(out), "--quiet"]) == EXIT_OK
    assert FireHistory.read(out) == FireHistory.read(ROOT / "geodata" / "persistent_history.parquet")


def test_nightly_updates_the_history_once_per_day(sample_run: Path, tmp_path: Path) -> None:
    from pipelines.fires.persistent import FireHistory

    history = tmp_path / "history.parquet"
    history.write_bytes((ROOT / "geodata" / "persistent_history.parquet").read_bytes())
    config = write_config(tmp_path)
    text = config.read_text().replace(f'path = "{ROOT}/geodata/persistent_history.parquet"', f'path = "{history}"')
    config.write_text(text.replace("update = false", "update = true"))
    before = FireHistory.read(history)
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_OK
    after = FireHistory.read(history)
    assert len(after) > len(before)  # the AHI pixels' places were new
    first = history.read_bytes()
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_OK
    assert history.read_bytes() == first  # the same day again adds nothing
    # ...and classifies the same: the history counts only days before the run date.
    assert (tmp_path / "out" / DAY / "fires.parquet").read_bytes() == (sample_run / "fires.parquet").read_bytes()


def test_windows_of_the_sample_day_and_tomorrows_plan(sample_run: Path) -> None:
    fires = gpd.read_parquet(sample_run / "fires.parquet")
    # June 2022: summer maize is sown right after the wheat harvest; no 2022 rain data ships, so before-rain is unknown.
    assert fires["win_before_sowing"].sum() == 415 and fires["win_before_sowing"].notna().all()
    sowing = fires[fires["win_before_sowing"].fillna(False)]
    assert set(sowing["sowing_crop"]) <= {"summer maize", "summer crops", "rice transplanting"} and sowing["sowing_source"].notna().all()
    assert fires["win_before_rain"].isna().all()
    manifest = json.loads((sample_run / "run.json").read_text())
    assert any("win_before_rain unknown for 568 of 568 fires" in w for w in manifest["warnings"])
    plan = pd.read_csv(sample_run / "plan.csv", dtype={"cell_id": str})
    assert list(plan["rank"]) == list(range(1, len(plan) + 1)) and plan["score"].is_monotonic_decreasing
    assert len(plan) > 1000 and (plan["windows"] == "播种前 before sowing").all()
    # The cells where suspected straw burning already started come first.
    assert plan["recent_fires"].iloc[0] > 0
    html = (sample_run / "plan.html").read_text()
    assert "cells to patrol (500)" in html and "cdn." not in html


def test_plan_command_writes_tomorrows_plan_all_at_once(sample_run: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = sample_run.parent  # the sample run's events count as recent fires
    assert main(["plan", "--date", DAY, "--config", str(config), "--out", str(out), "--quiet"]) == EXIT_OK
    folder = out / "plan-2022-06-04"
    assert sorted(p.name for p in folder.iterdir()) == ["plan.csv", "plan.html"]  # plan.html is self-contained
    assert (folder / "plan.csv").read_bytes() == (sample_run / "plan.csv").read_bytes()


def test_before_rain_from_forecasts_then_stations(tmp_path: Path) -> None:
    """Real stations around Beijing, July 2016 (tests/data/weather); a real onset at Dingling."""
    from pipelines.core.settings import load_config
    from pipelines.fires.sources import load_sources

    weather = ROOT / "tests" / "data" / "weather"
    config = write_config(tmp_path)
    text = config.read_text()
    text = text.replace('forecasts = []', f'forecasts = ["{weather}/precip_forecast_2016071812.nc"]')
    text = text.replace('stations = []', f'stations = ["{weather}/beijing_multisite_201607.csv"]')
    text = text.replace('accumulated = false', 'accumulated = true').replace('station_tz = "UTC"', 'station_tz = "Asia/Shanghai"')
    config.write_text(text)
    sources = load_sources(load_config(config))
    onset = pd.Timestamp("2016-07-18 22:00", tz="UTC")  # Dingling, 06:00 on 07-19 Beijing time
    fires = pd.DataFrame({"lon": [116.220] * 3, "lat": [40.292] * 3,
                          "time_utc": [onset - pd.Timedelta(hours=10), onset - pd.Timedelta(hours=30), onset - pd.Timedelta(hours=40)]})
    flags = sources.before_rain(fires)
    assert flags["win_before_rain"].tolist() == [True, False, False]
    assert flags["rain_onset_utc"].iloc[0] == onset
    # The forecast was issued 07-18 12 UTC: the fire 10 h before the onset could use it, the one 40 h before could not.
    assert flags["rain_source"].iloc[0].startswith("forecast")
    assert flags["rain_source"].iloc[2].startswith("stations")


def test_rain_sentinels_and_gaps_are_unknown_with_a_warning(tmp_path: Path) -> None:
    """The real 999990 sentinel and missing values of the UCI five-cities data (Beijing, Shenyang, Nov 2015)."""
    from pipelines.core.settings import load_config
    from pipelines.fires.sources import load_sources

    weather = ROOT / "tests" / "data" / "weather"
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('stations = []', f'stations = ["{weather}/uci_5cities_201511.csv"]'))
    sources = load_sources(load_config(config))
    assert any("999990" in s.reason or "sentinel" in s.reason for s in sources.plant_skips)  # listed in run.json as skipped
    series = sources.rain[0][1]
    beijing = list(series.names).index("Beijing")
    values = series.values[beijing]
    # A fire whose next 24 h hold no rain but a missing hour (the sentinel or a gap): it cannot be called dry.
    start = next(k for k in range(len(values) - 24) if np.isnan(values[k + 1 : k + 25]).any() and not (values[k + 1 : k + 25] >= 0.1).any())
    when = series.times[start]
    fires = pd.DataFrame({"lon": [series.lon[beijing], 100.0], "lat": [series.lat[beijing], 30.0], "time_utc": [when, when]})
    flags = sources.before_rain(fires)
    assert flags["win_before_rain"].isna().all()  # never a silent False
    assert "missing" in flags["rain_note"].iloc[0] and "no station within 50 km" in flags["rain_note"].iloc[1]


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["nightly", "--date", DAY, "--config", str(config), "--out", "/proc/gridwatch-out", "--quiet"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["gridwatch: error: No such file or directory: /proc/gridwatch-out; nothing written"]
