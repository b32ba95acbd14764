"""One bad value loses one row, never the night: a corpus of broken inputs made from the real files.

Every case is a copy of real rows (the FIRMS MODIS file of 2022-06-03 and the
JAXA Himawari-9 WLF scan of 2025-12-09 in ``geodata/fires/``) with one defect
put in. All cases of a product are read by one nightly run (so that the corpus
stays fast); each case then asserts, from that run's ``run.json``, the run's
exit code, its own skip entry (file, row, field) and how many of its good rows
were kept. Inputs that fail differently (no file at all, a header only, a
broken land-cover or crop-calendar raster, a grid with empty geometries, a bad
setting) get runs of their own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pytest
from test_nightly import write_config

from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL

ROOT = Path(__file__).resolve().parent.parent
FIRMS = ROOT / "geodata/fires/MODIS_C6_1_Global_24h_2022-06-03_ncp-subset.csv"
HIMAWARI = ROOT / "geodata/fires/H09_20251209_1900_L2WLF010_FLDK.06001_06001.csv"
FIRMS_DAY, HIMAWARI_DAY = "2022-06-03", "2025-12-10"
ROWS = 12  # real data rows per case file
ANY = object()  # a skip whose field the reader may name as it can (a row with too many fields)


@dataclass(frozen=True)
class Case:
    name: str
    lines: Callable[[list[str]], list[str] | bytes]  # header + ROWS data lines -> the broken file
    row: int | None  # line of the skip (header = 1); None: the whole file
    field: str | None | object  # ANY: whichever field the reader blames
    kept: int  # good rows that must reach the run
    skipped: bool = True  # False: a harmless variant that must lose nothing


def _set(field: str, value: str, at: int = 5) -> Callable[[list[str]], list[str]]:
    """Put ``value`` into column ``field`` of data row ``at`` (0-based)."""

    def mutate(lines: list[str]) -> list[str]:
        header = lines[0].split(",")
        cells = lines[at + 1].split(",")
        cells[header.index(field)] = value
        return [*lines[: at + 1], ",".join(cells), *lines[at + 2:]]

    return mutate


def _line(at: int, text: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    return lambda lines: [*lines[: at + 1], text(lines[at + 1]), *lines[at + 2:]]


def _bad(field: str, value: str, at: int = 5, report: str | None = None, header_line: int = 1) -> Case:
    """A case with ``value`` in ``field`` of data row ``at``, reported on ``report`` (default: that field)."""
    slug = "".join(ch if ch.isalnum() else "_" for ch in value)[:12] or "empty"
    return Case(f"{field}-{slug}-row{at}", _set(field, value, at), at + header_line + 1, report or field, ROWS - 1)


def _wlf(field: str, value: str, report: str | None = None) -> Case:
    return _bad(field, value, report=report, header_line=2)  # the WLF header is the file's second line


FIRMS_CASES = [
    # Each of these raised inside the id hashing before bad rows were dropped, and failed the night.
    _bad("satellite", "X"), _bad("satellite", "", at=0), _bad("satellite", "FY3D", at=ROWS - 1),
    _bad("acq_time", "2400"), _bad("acq_time", "1261"), _bad("acq_time", "-5"), _bad("acq_time", "", at=0),
    _bad("acq_time", "25:00"), _bad("acq_time", "3 19"), _bad("acq_time", "99999"),
    _bad("acq_date", ""), _bad("acq_date", "2022-02-30"), _bad("acq_date", "13/3/2022"), _bad("acq_date", "yesterday", at=0),
    _bad("acq_date", "2022-06"), _bad("acq_date", "0/0/0", at=ROWS - 1),
    _bad("latitude", "95"), _bad("latitude", "-90.5"), _bad("latitude", "abc"), _bad("latitude", "", at=0),
    _bad("latitude", "nan"), _bad("latitude", "inf"), _bad("latitude", "34.4N"),
    _bad("longitude", "200"), _bad("longitude", "-181"), _bad("longitude", "NaN", at=ROWS - 1), _bad("longitude", "1e400"),
    _bad("longitude", "113°47'"), _bad("longitude", ""),
    # Implausible fire radiative power and pixel sizes are rejected, not stored.
    _bad("frp", "-5"), _bad("frp", "-0.01", at=0), _bad("frp", "inf"), _bad("frp", "1e400"), _bad("frp", "-inf"),
    _bad("frp", "nan"), _bad("frp", "ten"),
    _bad("scan", "0"), _bad("scan", "-1"), _bad("scan", "1e6"), _bad("scan", "x"), _bad("scan", "inf", at=ROWS - 1),
    _bad("track", "0"), _bad("track", "-2.5"), _bad("track", "50"), _bad("track", "?"),
    _bad("confidence", "150"), _bad("confidence", "-1"), _bad("confidence", "maybe"), _bad("confidence", "1e400"),
    _bad("daynight", "X"), _bad("daynight", "day"),
    Case("extra-field", _line(5, lambda s: s + ",surplus"), 7, ANY, ROWS - 1),
    Case("missing-field", _line(5, lambda s: s.rsplit(",", 1)[0]), 7, ANY, ROWS - 1),
    Case("unquoted-thousands", _set("frp", "1,234"), 7, ANY, ROWS - 1),
    Case("decimal-comma", _set("latitude", "34,49"), 7, ANY, ROWS - 1),
    Case("header-repeated", lambda lines: [*lines[:6], lines[0], *lines[6:]], 7, "latitude", ROWS),
    Case("empty-cells-row", lambda lines: [*lines[:6], ",,,,,,,,,,,,", *lines[6:]], 7, "latitude", ROWS),
    Case("truncated-last-line", lambda lines: [*lines[:-1], lines[-1][:20]], ROWS + 1, ANY, ROWS - 1),
    Case("nul-byte-in-a-row", _line(5, lambda s: s[:10] + "\x00" + s[10:]), 7, "longitude", ROWS - 1),
    Case("huge-field", _set("version", "x" * 200_000), 7, "version", ROWS - 1),
    Case("stray-quote", _set("version", '6.1"NRT'), None, None, ROWS, skipped=False),
    # Harmless variants: nothing may be lost.
    Case("blank-lines", lambda lines: [*lines[:4], "", "  ", *lines[4:]], None, None, ROWS, skipped=False),
    Case("comment-line", lambda lines: [*lines[:4], "# re-exported by hand", *lines[4:]], None, None, ROWS, skipped=False),
    Case("crlf", lambda lines: ("\r\n".join(lines) + "\r\n").encode(), None, None, ROWS, skipped=False),
    Case("bom", lambda lines: ("\ufeff" + "\n".join(lines) + "\n").encode(), None, None, ROWS, skipped=False),
    Case("gb18030", lambda lines: ("\n".join(lines) + "\n").encode("gb18030"), None, None, ROWS, skipped=False),
    Case("spaces", lambda lines: [lines[0], *(", ".join(line.split(",")) for line in lines[1:])], None, None, ROWS, skipped=False),
    Case("upper-case-header", lambda lines: [lines[0].upper(), *lines[1:]], None, None, ROWS, skipped=False),
    Case("iso-dates", lambda lines: [lines[0], *(line.replace("6/3/2022", "2022-06-03") for line in lines[1:])], None, None, ROWS,
         skipped=False),
    # Whole files that cannot be used: one skip naming the file, the rest of the night goes on.
    Case("header-only", lambda lines: lines[:1], None, None, 0),
    Case("empty-file", lambda lines: b"", None, None, 0),
    Case("binary-png", lambda lines: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, None, None, 0),
    Case("zip-archive", lambda lines: b"PK\x03\x04" + b"\x00" * 300, None, None, 0),
    Case("not-firms-header", lambda lines: ["lat_deg,lon_deg,when", "34.4,113.7,2022-06-03"], None, None, 0),
    Case("no-acq-time-column", lambda lines: [",".join(c.split(",")[i] for i in range(13) if i != 6) for c in lines], None, None, 0),
    Case("invalid-bytes-in-a-row", lambda lines: ("\n".join(_set("version", "6.1@NRT")(lines)) + "\n").encode().replace(b"@", b"\xff\xfe"),
         7, None, ROWS - 1),
]

HIMAWARI_CASES = [
    _wlf("Time(UTC)", "2500"), _wlf("Time(UTC)", "1960"), _wlf("Time(UTC)", ""),
    _wlf("Year", "20x5", "Time(UTC)"), _wlf("Month", "13", "Time(UTC)"), _wlf("Day", "32", "Time(UTC)"),
    _wlf("Lat", "91"), _wlf("Lat", "north"), _wlf("Lon", "-200"), _wlf("Lon", ""),
    _wlf("Area(km^2)", "0"), _wlf("Area(km^2)", "-3.7"), _wlf("Area(km^2)", "inf"), _wlf("Area(km^2)", "1e6"),
    _wlf("Reliability", "7"), _wlf("FRP(Wm^-2)", "-3.75"), _wlf("FRP(Wm^-2)", "1e400"), _wlf("FRP(Wm^-2)", "hot"),
    Case("extra-field", _line(5, lambda s: s + ",9"), 8, ANY, ROWS - 1),
]


def _himawari_lines() -> list[str]:
    """The scan's two comment lines with a plain header (as _set expects), then ROWS rows over China."""
    text = HIMAWARI.read_text().splitlines()
    china = [line for line in text[2:] if 100 < float(line.split(",")[6]) < 125 and 30 < float(line.split(",")[5]) < 45]
    return [text[1].removeprefix("# "), *china[:ROWS]]


def _write_case(folder: Path, case: Case, lines: list[str], name: str, comment: str | None = None) -> None:
    content = case.lines(list(lines))
    if isinstance(content, list):
        if comment is not None:  # Himawari: the header is a comment line, after the scan's time line
            content = [comment, "# " + content[0], *content[1:]]
        content = ("\n".join(content) + "\n").encode()
    (folder / name).write_bytes(content)


def _config(tmp: Path, points: str, *, bbox: str | None = None, extra: str = "") -> Path:
    path = write_config(tmp, points=[points], rasters=[], without="electricity")
    text = path.read_text(encoding="utf-8")
    if bbox:
        text = text.replace("bbox = [110.0, 28.0, 123.0, 43.0]", f"bbox = {bbox}")
    path.write_text(text.replace('path = "' + str(ROOT) + '/geodata/grid_ncp_5km.parquet"', f'path = "{_small_grid(tmp)}"', 1) + extra,
                    encoding="utf-8")
    return path


def _small_grid(tmp: Path) -> Path:
    """The sample grid's cells around the cases' fires (Henan and Hebei): a few hundred cells, fast to map."""
    path = tmp / "grid.parquet"
    if not path.exists():
        grid = gpd.read_parquet(ROOT / "geodata/grid_ncp_5km.parquet")
        grid.cx[111.0:115.0, 33.8:35.0].to_parquet(path)
    return path


def _run(config: Path, day: str) -> tuple[int, dict]:
    code = main(["nightly", "--date", day, "--config", str(config), "--quiet"])
    manifest = config.parent / "out" / day / "run.json"  # write_config's output root
    return code, json.loads(manifest.read_text()) if manifest.exists() else {}


@pytest.fixture(scope="module")
def firms_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    tmp = tmp_path_factory.mktemp("bad-firms")
    folder = tmp / "cases"
    folder.mkdir()
    lines = FIRMS.read_text().splitlines()[: ROWS + 1]
    for i, case in enumerate(FIRMS_CASES):
        _write_case(folder, case, lines, f"case{i:03d}_{case.name}.csv")
    shutil.copy(FIRMS, folder / "zzz_clean.csv")  # sorted last: the good copy of each detection is deduplicated away
    return _run(_config(tmp, f"{folder}/*.csv"), FIRMS_DAY)


@pytest.fixture(scope="module")
def himawari_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    tmp = tmp_path_factory.mktemp("bad-himawari")
    folder = tmp / "cases"
    folder.mkdir()
    raw = HIMAWARI.read_text().splitlines()
    lines = _himawari_lines()
    for i, case in enumerate(HIMAWARI_CASES):
        _write_case(folder, case, lines, f"H09_20251209_1900_L2WLF010_case{i:03d}.csv", comment=raw[0])
    return _run(_config(tmp, f"{folder}/*.csv", bbox="[73.0, 17.0, 136.0, 54.0]"), HIMAWARI_DAY)


def _check(run: tuple[int, dict], file: str, case: Case) -> None:
    code, manifest = run
    assert code == EXIT_PARTIAL and manifest["status"] == "partial"  # some cases are bad: never exit 1, never a traceback
    mine = [s for s in manifest["skipped"] if s["file"] == file]
    if not case.skipped:
        assert mine == []
    elif case.row is None:
        assert len(mine) >= 1 and all(s["row"] is None for s in mine[:1]), mine
    else:
        assert [(s["row"], ANY if case.field is ANY else s["field"]) for s in mine] == [(case.row, case.field)], mine
        assert mine[0]["reason"]
    counts = next((f for f in manifest["inputs"]["fires"] if Path(f["path"]).name == file), None)
    assert counts is not None
    assert counts.get("rows_read", 0) == case.kept


@pytest.mark.parametrize("index", range(len(FIRMS_CASES)), ids=[c.name for c in FIRMS_CASES])
def test_firms_case(firms_run: tuple[int, dict], index: int) -> None:
    case = FIRMS_CASES[index]
    _check(firms_run, f"case{index:03d}_{case.name}.csv", case)


@pytest.mark.parametrize("index", range(len(HIMAWARI_CASES)), ids=[c.name for c in HIMAWARI_CASES])
def test_himawari_case(himawari_run: tuple[int, dict], index: int) -> None:
    case = HIMAWARI_CASES[index]
    _check(himawari_run, f"H09_20251209_1900_L2WLF010_case{index:03d}.csv", case)


def test_the_good_rows_of_every_case_reach_the_tables(firms_run: tuple[int, dict]) -> None:
    code, manifest = firms_run
    # The clean file holds every detection once more: after deduplication the night has exactly its fires.
    clean = next(f for f in manifest["inputs"]["fires"] if f["path"].endswith("zzz_clean.csv"))
    assert manifest["counts"]["fires"] == clean["rows_kept"]
    assert manifest["counts"]["duplicates"] > 0
    assert all(f["rows_read"] >= 0 for f in manifest["inputs"]["fires"])


# ------------------------------------------------------------------ nights that used to fail whole

CONTRACT = ["fires.parquet", "events.parquet", "sites.parquet", "grid_summary.csv", "report.csv", "report.html", "plan.csv",
            "plan.html", "index.html", "map.html", "run.json", "run.log"]


def _complete(folder: Path) -> None:
    """Every output of the contract is there, and the fire table has its full schema even when empty."""
    assert sorted(p for p in CONTRACT if not (folder / p).exists()) == []
    fires = gpd.read_parquet(folder / "fires.parquet")
    assert {"fire_id", "time_utc", "category", "cell_id", "win_before_rain", "event_id", "reason"} <= set(fires.columns)


def _notices(folder: Path) -> str:
    page = (folder / "index.html").read_text(encoding="utf-8")
    return page.split('<ul class="notices"', 1)[1].split("</ul>", 1)[0] if '<ul class="notices"' in page else ""


def test_a_header_only_file_is_no_data_not_no_fires(tmp_path: Path) -> None:
    folder = tmp_path / "fires"
    folder.mkdir()
    (folder / "MODIS_C6_1_Global_24h_2022-06-03.csv").write_text(FIRMS.read_text().splitlines()[0] + "\n")
    code, manifest = _run(_config(tmp_path, f"{folder}/*.csv"), FIRMS_DAY)
    assert code == EXIT_PARTIAL and manifest["counts"]["fires"] == 0
    assert [(s["file"], s["row"]) for s in manifest["skipped"]] == [("MODIS_C6_1_Global_24h_2022-06-03.csv", None)]
    out = tmp_path / "out" / FIRMS_DAY
    _complete(out)
    notices = _notices(out)
    assert "火点数据缺失" in notices and "未观测到火点" in notices and "MODIS_C6_1_Global_24h_2022-06-03.csv (0 行 rows)" in notices
    assert "未观测到火点" in (out / "map.html").read_text(encoding="utf-8")


def test_a_missing_file_is_no_data_and_the_night_still_completes(tmp_path: Path) -> None:
    code, manifest = _run(_config(tmp_path, str(tmp_path / "nowhere" / "MODIS_*_{date:%Y-%m-%d}.csv")), FIRMS_DAY)
    assert code == EXIT_PARTIAL
    skip = manifest["skipped"][0]
    assert skip["file"] == "[fires] points" and skip["field"] == "points" and "MODIS_*_2022-06-03.csv" in skip["reason"]
    _complete(tmp_path / "out" / FIRMS_DAY)
    assert "火点数据缺失" in _notices(tmp_path / "out" / FIRMS_DAY)


def test_a_quiet_night_is_ok_and_says_which_files_were_read(tmp_path: Path) -> None:
    # The real file of 2022-06-03 read for 2022-06-10: rows, but none on the day.
    code, manifest = _run(_config(tmp_path, str(FIRMS)), "2022-06-10")
    assert code == EXIT_OK and manifest["skipped"] == [] and manifest["counts"]["fires"] == 0
    out = tmp_path / "out" / "2022-06-10"
    _complete(out)
    notices = _notices(out)
    rows = len(FIRMS.read_text().splitlines()) - 1
    assert 'class="info"' in notices and f"{FIRMS.name} ({rows} 行 rows)" in notices and "warn" not in notices


def test_electricity_alone_runs_without_fire_files(tmp_path: Path) -> None:
    config = write_config(tmp_path, points=[], rasters=[])
    code, manifest = _run(config, FIRMS_DAY)
    assert code == EXIT_OK, manifest.get("skipped")
    assert manifest["counts"]["fires"] == 0 and manifest["counts"]["electricity"]["sites"] > 0
    _complete(tmp_path / "out" / FIRMS_DAY)


def _night_with_truncated(reference: Path, tmp_path: Path, keep: float) -> tuple[Path, tuple[int, dict]]:
    """The sample night with ``reference`` (a file the config names) cut to ``keep`` of its bytes."""
    broken = tmp_path / reference.name
    broken.write_bytes(reference.read_bytes()[: int(reference.stat().st_size * keep)])
    config = _config(tmp_path, str(FIRMS))
    config.write_text(config.read_text().replace(str(reference), str(broken)))
    return broken, _run(config, FIRMS_DAY)


def test_a_truncated_crop_calendar_raster_loses_only_before_sowing_from_it(tmp_path: Path) -> None:
    raster = ROOT / "geodata/crop_calendar/cropcalendars_phase2_smoothed_S2_SOS_ncp-yrd_WGS84.tif"
    broken, (code, manifest) = _night_with_truncated(raster, tmp_path, keep=1 / 2)
    assert code == EXIT_PARTIAL
    assert [(s["file"], s["field"]) for s in manifest["skipped"]] == [(broken.name, "summer_raster")]
    fires = gpd.read_parquet(tmp_path / "out" / FIRMS_DAY / "fires.parquet")
    assert len(fires) and fires["win_before_sowing"].notna().any()  # the table and the defaults still decide


def test_a_corrupt_land_cover_raster_makes_every_fire_unknown_not_other(tmp_path: Path) -> None:
    landcover = ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif"
    broken, (code, manifest) = _night_with_truncated(landcover, tmp_path, keep=1 / 3)
    assert code == EXIT_PARTIAL
    assert (broken.name, "landcover") in {(s["file"], s["field"]) for s in manifest["skipped"]}
    fires = gpd.read_parquet(tmp_path / "out" / FIRMS_DAY / "fires.parquet")
    assert len(fires) and set(fires["category"]) <= {"unknown", "industrial", "persistent"}
    assert manifest["counts"]["fires_by_category"]["straw_suspect"] == 0


@pytest.mark.parametrize(("key", "value"), [("horizon_h", "-5.0"), ("threshold_mm", "0.0"), ("max_station_km", "-1.0"),
                                            ("station_step_h", "nan")])
def test_implausible_rain_settings_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str) -> None:
    config = _config(tmp_path, str(FIRMS))
    text = config.read_text()
    start = text.index(f"\n{key} = ") + 1
    config.write_text(text[:start] + f"{key} = {value}" + text[text.index("  #", start):])
    assert main(["nightly", "--date", FIRMS_DAY, "--config", str(config), "--quiet"]) == EXIT_FAILED
    assert f"[rain] {key} = " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_raster_fire_pixel_with_negative_frp_loses_only_that_pixel(tmp_path: Path) -> None:
    import numpy as np
    import xarray as xr

    scans = sorted((ROOT / "tests/data/rasters").glob("H08_20220603_*_FIRE_MASK_R02.nc"))
    folder = tmp_path / "ahi"
    folder.mkdir()
    for scan in scans:
        shutil.copy(scan, folder / scan.name)
    with xr.open_dataset(scans[0]) as ds:
        ds = ds.load()
    fire = np.argwhere(ds["fire_mask"].values >= 7)
    assert len(fire) >= 2
    frp = ds["frp"].values.copy()
    frp[fire[0][0], fire[0][1]] = -12.5
    ds["frp"].values = frp
    target = folder / scans[0].name
    target.unlink()
    ds.to_netcdf(target)
    config = write_config(tmp_path, points=[], rasters=[f"{folder}/*.nc"], without="electricity")
    config.write_text(config.read_text().replace('path = "' + str(ROOT) + '/geodata/grid_ncp_5km.parquet"', f'path = "{_small_grid(tmp_path)}"', 1))
    code, manifest = _run(config, FIRMS_DAY)
    assert code == EXIT_PARTIAL
    assert [(s["file"], s["row"], s["field"]) for s in manifest["skipped"]] == [(scans[0].name, int(fire[0][0]) + 1, "frp")]
    fires = gpd.read_parquet(tmp_path / "out" / FIRMS_DAY / "fires.parquet")
    assert (fires["frp_mw"].dropna() >= 0).all() and (fires["source_file"] == scans[0].name).sum() == len(fire) - 1


def test_grid_cells_without_a_polygon_or_an_id_lose_only_themselves(tmp_path: Path) -> None:
    grid = gpd.read_parquet(_small_grid(tmp_path))
    grid.loc[grid.index[3], "geometry"] = None
    grid.loc[grid.index[7], "cell_id"] = ""
    grid.loc[grid.index[9], "cell_id"] = grid.loc[grid.index[8], "cell_id"]
    grid.to_parquet(tmp_path / "grid.parquet")
    code, manifest = _run(_config(tmp_path, str(FIRMS)), FIRMS_DAY)
    assert code == EXIT_PARTIAL
    assert [(s["file"], s["row"], s["field"]) for s in manifest["skipped"]] == [
        ("grid.parquet", 8, "cell_id"), ("grid.parquet", 10, "cell_id"), ("grid.parquet", 4, "geometry")]
    assert manifest["inputs"]["grid"]["cells"] == len(grid) - 3
    assert manifest["counts"]["attributed"] > 0


def test_a_truncated_fire_history_loses_only_the_persistent_mask(tmp_path: Path) -> None:
    history = ROOT / "geodata/persistent_history.parquet"
    broken, (code, manifest) = _night_with_truncated(history, tmp_path, keep=1 / 2)
    assert code == EXIT_PARTIAL
    assert [(s["file"], s["field"]) for s in manifest["skipped"]] == [(broken.name, "path")]
    assert manifest["counts"]["fires"] > 0 and manifest["counts"]["fires_by_category"]["straw_suspect"] > 0
