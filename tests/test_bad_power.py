"""Bad electricity input: each case is the real sample (geodata/power/) with one defect injected.

The sample readings are the real daily kWh of 38 Yangzhong enterprises
(tests/data/power/tianchi_subset_40users.csv, moved to 2022 by
geodata/power/make_sample.py). For every defect the tests check the skip
that names it (file, row, field), that every other transformer's total of
the day is exactly the clean one, and the exit code the run gets. Most cases
run at the level of ``electricity.read_day`` / ``load_fleet`` against one
shared clean baseline; a few run the whole nightly CLI on the 25 grid cells
of Yangzhong with one fire file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from test_nightly import ROOT, write_config

from pipelines.core.settings import load_config
from pipelines.core.skips import Skip
from pipelines.power.electricity import ElectricityError, load_fleet, read_day, reading_format
from pipelines.power.meters import MeterLimits
from pipelines.power.readers import ReadingFormat
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL, RunResult

POWER = ROOT / "geodata" / "power"
DAY = dt.date(2022, 6, 3)
DAY_FILE = POWER / "readings" / f"{DAY}.csv"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
BIG = 200 * 1024  # characters: over the csv module's 128 KiB field limit


def exit_code(skips: list[Skip]) -> int:
    """The exit code a nightly run with these skips ends with (the nightly's own rule)."""
    return RunResult(DAY, Path("."), {}, skips).exit_code


def zipped(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readings.csv", text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The sample configuration, the Yangzhong cells, the fleet and the clean day, read once."""
    tmp = tmp_path_factory.mktemp("bad_power")
    config = load_config(write_config(tmp))
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    grid = grid[grid["county_code"] == "321182"].reset_index(drop=True)
    fleet, warnings, skips, _ = load_fleet(config, grid)
    assert skips == []
    ids = pd.Index(fleet.transformers["transformer_id"], dtype=object)
    cfg = config.electricity
    fmt, limits = reading_format(cfg), MeterLimits(cfg.min_coverage, cfg.max_kw, cfg.work_hours)
    clean = read_day([DAY_FILE], ids, DAY, fmt, limits)
    assert clean.examples == [] and np.isfinite(clean.kwh).all() and clean.counts["used"] == 38
    return SimpleNamespace(tmp=tmp, config=config, grid=grid, fleet=fleet, warnings=warnings, ids=ids, fmt=fmt, limits=limits,
                           kwh=pd.Series(clean.kwh, index=ids))


# ----------------------------------------------------------------------- readings, one defect each

Edit = Callable[[list[str]], list[str]]


def row(index: int, text: str) -> Edit:
    """Replace data row ``index`` (1-based: line ``index + 1``)."""
    def edit(lines: list[str]) -> list[str]:
        lines[index] = text
        return lines
    return edit


def value_of(index: int, value: str) -> Edit:
    def edit(lines: list[str]) -> list[str]:
        lines[index] = lines[index].rsplit(",", 1)[0] + "," + value
        return lines
    return edit


def add(text: str, at: int | None = None) -> Edit:
    def edit(lines: list[str]) -> list[str]:
        lines.insert(len(lines) if at is None else at, text)
        return lines
    return edit


@dataclasses.dataclass
class Case:
    edit: Edit | None = None  # on the lines of the day's file
    skip: tuple[int | None, str | None] | None = None  # (row, field) expected in the skips; None = no skip at all
    lost: tuple[str, ...] = ()  # transformers whose day becomes unknown
    encoding: str = "utf-8"
    newline: str = "\n"
    final_newline: bool = True
    prefix: bytes = b""
    extra: bytes | None = None  # a second file of the day, the one with the defect
    reason: str = ""  # a word the skip's reason must contain


CASES = {
    # An unquoted thousands separator: one row with a field too many, wherever it is.
    "comma_in_first_row": Case(row(1, "YZ0001,2022-06-03,1,234"), (2, "kwh"), ("YZ0001",), reason="1,234"),
    "comma_in_middle_row": Case(row(13, "YZ0013,2022-06-03,2,025"), (14, "kwh"), ("YZ0013",)),
    "comma_in_id": Case(row(5, "YZ,0005,2022-06-03,811"), (6, "kwh"), ("YZ0005",)),
    "quoted_thousands": Case(value_of(13, '"2,025"'), (14, "kwh"), ("YZ0013",), reason="number"),
    # Fields over the csv module's 128 KiB limit: quoted (the csv module refuses it) or plain.
    "huge_value": Case(value_of(5, "x" * BIG), (6, "kwh"), ("YZ0005",)),
    "huge_quoted_value": Case(value_of(5, '"' + "1," * (BIG // 2) + '"'), (6, "kwh"), ("YZ0005",), reason="128 KiB"),
    "huge_id": Case(row(3, "Y" * BIG + ",2022-06-03,238"), (4, "transformer_id"), ("YZ0003",), reason="not in the transformer table"),
    # NUL bytes inside a row, well within the file's first 4 KiB.
    "nul_in_value": Case(value_of(7, "6\x004"), (8, "kwh"), ("YZ0007",)),
    "nul_in_id": Case(row(8, "YZ00\x0008,2022-06-03,269"), (9, "transformer_id"), ("YZ0008",)),
    "nul_run": Case(value_of(2, "\x00" * 600), (3, "kwh"), ("YZ0002",)),
    # Encodings and line ends.
    "bom": Case(prefix="\ufeff".encode()),
    "crlf": Case(newline="\r\n"),
    "gb18030": Case(row(1, "扬中0001,2022-06-03,291"), (2, "transformer_id"), ("YZ0001",), encoding="gb18030", reason="扬中0001"),
    "no_final_newline": Case(final_newline=False),
    # Cut lines.
    "truncated_last_line": Case(row(38, "YZ0232,2022-06-0"), (39, "kwh"), ("YZ0232",), final_newline=False, reason="cut"),
    "truncated_in_id": Case(row(38, "YZ02"), (39, "time"), ("YZ0232",), final_newline=False),
    # Structure.
    "repeated_header": Case(add("transformer_id,time,kwh", at=20), (21, "transformer_id"), reason="header"),
    "extra_column": Case(lambda lines: [lines[0] + ",quality"] + [line + ",ok" for line in lines[1:]]),
    "extra_field_last_row": Case(row(38, "YZ0232,2022-06-03,372,"), (39, "kwh"), ("YZ0232",)),
    "blank_lines_keep_line_numbers": Case(lambda lines: value_of(22, "-337")(lines[:6] + [""] + lines[6:] + ["", ""]),
                                          (23, "kwh"), ("YZ0021",), reason="negative"),
    "stray_quote": Case(value_of(11, '"273'), (12, "kwh"), ("YZ0011",), reason="quote"),
    # Values.
    "date_2022_02_30": Case(row(9, "YZ0009,2022-02-30,356"), (10, "time"), ("YZ0009",)),
    "one_time_with_an_offset": Case(row(3, "YZ0003,2022-06-03T00:00+08:00,238")),  # the same instant: pandas refuses the mix
    "not_a_date": Case(row(9, "YZ0009,yesterday,356"), (10, "time"), ("YZ0009",)),
    "nan_kwh": Case(value_of(10, "NaN"), (11, "kwh"), ("YZ0010",)),
    "inf_kwh": Case(value_of(10, "inf"), (11, "kwh"), ("YZ0010",), reason="finite"),
    "1e400_kwh": Case(value_of(10, "1e400"), (11, "kwh"), ("YZ0010",)),
    "empty_kwh": Case(value_of(10, ""), (11, "kwh"), ("YZ0010",)),
    "negative_kwh": Case(value_of(12, "-18"), (13, "kwh"), ("YZ0012",), reason="negative"),
    "implausible_kwh": Case(value_of(27, "1e7"), (28, "kwh"), ("YZ0027",), reason="max_kw"),
    "unknown_transformer": Case(add("YZ9999,2022-06-03,12"), (40, "transformer_id"), reason="YZ9999"),
    "empty_transformer_id": Case(add(",2022-06-03,12"), (40, "transformer_id")),
    # A second file of the day that cannot be used at all: only it is lost.
    "png_file": Case(extra=PNG, skip=(None, None), reason="PNG"),
    "zip_file": Case(extra=zipped(DAY_FILE.read_text(encoding="utf-8")), skip=(None, None), reason="zip"),
    "empty_file": Case(extra=b"", skip=(1, None), reason="empty"),
    "header_only_file": Case(extra=b"transformer_id,time,kwh\r\n", skip=(1, None), reason="header"),
    "missing_column_file": Case(extra=b"transformer_id,time\nYZ0001,2022-06-03\n", skip=(1, "kwh"), reason="missing"),
}


def write_day(case: Case, folder: Path) -> list[Path]:
    lines = DAY_FILE.read_text(encoding="utf-8").splitlines()
    if case.edit is not None:
        lines = case.edit(lines)
    text = case.newline.join(lines) + (case.newline if case.final_newline else "")
    path = folder / DAY_FILE.name
    path.write_bytes(case.prefix + text.encode(case.encoding))
    if case.extra is None:
        return [path]
    extra = folder / f"{DAY}-second.csv"
    extra.write_bytes(case.extra)
    return [path, extra]


@pytest.mark.parametrize("name", list(CASES))
def test_one_bad_value_loses_one_row(name: str, sample: SimpleNamespace, tmp_path: Path) -> None:
    case = CASES[name]
    files = write_day(case, tmp_path)
    use = read_day(files, sample.ids, DAY, sample.fmt, sample.limits)
    kwh = pd.Series(use.kwh, index=sample.ids)
    if case.skip is None:
        assert use.examples == []
    else:
        bad_file = files[-1].name
        where = {(s.file, s.row, s.field): s.reason for s in use.examples}
        assert (bad_file, *case.skip) in where, use.examples
        assert case.reason in where[(bad_file, *case.skip)]
    # Every other transformer's day is exactly the clean one; the damaged row's is unknown, not a guess.
    kept = sample.ids.difference(case.lost)
    pd.testing.assert_series_equal(kwh[kept], sample.kwh[kept])
    assert kwh[list(case.lost)].isna().all()
    assert exit_code(use.examples) == (EXIT_OK if case.skip is None else EXIT_PARTIAL)


def test_table_has_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("content, where", [(PNG, (None, None)), (b"transformer_id,time\nYZ0001,2022-06-03\n", (1, "kwh")),
                                            (b"", (1, None))], ids=["png", "missing_column", "empty"])
def test_a_day_without_any_usable_file_is_not_taken_as_a_day_without_use(
        content: bytes, where: tuple, sample: SimpleNamespace, tmp_path: Path) -> None:
    path = tmp_path / DAY_FILE.name
    path.write_bytes(content)
    with pytest.raises(ElectricityError) as caught:
        read_day([path], sample.ids, DAY, sample.fmt, sample.limits)
    assert [(s.file, s.row, s.field) for s in caught.value.skips] == [(path.name, *where)]
    assert exit_code(caught.value.skips) == EXIT_PARTIAL


# ----------------------------------------------------------------------- 15-minute and register readings


SHAPE = np.where((np.arange(96) >= 32) & (np.arange(96) < 72), 3.0, 1.0)
SHAPE = SHAPE / SHAPE.sum()


def quarter_hours(totals: pd.Series, register: bool) -> pd.DataFrame:
    """96 end-labelled readings per transformer of the real day's totals, as kWh per interval or as a register."""
    ends = pd.date_range(pd.Timestamp(DAY) + pd.Timedelta(minutes=15), periods=96, freq="15min").strftime("%Y-%m-%d %H:%M")
    kwh = np.outer(totals.to_numpy(), SHAPE)
    return pd.DataFrame({
        "transformer_id": np.repeat(totals.index.to_numpy(), 96),
        "time": np.tile(ends, len(totals)),
        "kwh": (np.cumsum(kwh, axis=1) + 10_000.0).ravel() if register else kwh.ravel(),
    })


@pytest.mark.parametrize("defect", ["spike_up", "spike_down", "reset", "replaced_higher", "interval_over_cap"])
def test_implausible_readings_are_rejected_one_by_one(defect: str, sample: SimpleNamespace, tmp_path: Path) -> None:
    register = defect != "interval_over_cap"
    frame = quarter_hours(sample.kwh, register)
    rows = frame.index[frame["transformer_id"] == "YZ0013"]
    k = 40
    if defect == "spike_up":
        frame.loc[rows[k], "kwh"] += 1e7
    elif defect == "spike_down":
        frame.loc[rows[k], "kwh"] = 0.0
    elif defect == "reset":
        frame.loc[rows[k:], "kwh"] -= frame.loc[rows[k - 1], "kwh"]  # meter replaced: restarts near 0
    elif defect == "replaced_higher":
        frame.loc[rows[k:], "kwh"] += 1e7
    else:
        frame.loc[rows[k], "kwh"] = 1e7
    frame.to_csv(tmp_path / "day.csv", index=False)
    fmt = ReadingFormat(interval_minutes=15, values="register" if register else "interval")
    previous = np.full(len(sample.ids), 10_000.0) if register else None
    use = read_day([tmp_path / "day.csv"], sample.ids, DAY, fmt, sample.limits, previous)
    kwh = pd.Series(use.kwh, index=sample.ids).astype("float64")
    assert [(s.file, s.row, s.field) for s in use.examples] == [("day.csv", rows[k] + 2, "kwh")]
    others = sample.ids.drop("YZ0013")
    np.testing.assert_allclose(kwh[others], sample.kwh[others], rtol=1e-5)
    real = float(sample.kwh["YZ0013"])
    if defect.startswith("spike"):
        # The misread alone is dropped: the next difference spans it and the day is whole.
        assert kwh["YZ0013"] == pytest.approx(real, rel=1e-5) and use.counts["meter_resets"] == 0
    else:
        # One interval unknown, the day scaled up from the other 95: never the transformer's whole day.
        assert kwh["YZ0013"] == pytest.approx(real * (1 - SHAPE[k]) * 96 / 95, rel=1e-5)
    assert exit_code(use.examples) == EXIT_PARTIAL


# ----------------------------------------------------------------------- registry, transformer table, warnings


def line_edit(key: str, change: Callable[[str], str]) -> Edit:
    """Change the line of id ``key`` (its first field)."""
    def edit(lines: list[str]) -> list[str]:
        index = next(i for i, line in enumerate(lines) if line.split(",", 1)[0] == key)
        lines[index] = change(lines[index])
        return lines
    return edit


def field_edit(key: str, column: int, value: str) -> Edit:
    def change(line: str) -> str:
        fields = line.split(",")
        fields[column] = value
        return ",".join(fields)
    return line_edit(key, change)


@dataclasses.dataclass
class TableCase:
    table: str  # "registry", "transformers" or "warnings"
    edit: Edit | None = None
    skip: tuple[int | None, str | None] | None = None
    lost: tuple[str, ...] = ()  # transformers no longer in the fleet, or no longer tied to a registered enterprise
    encoding: str = "utf-8"
    newline: str = "\n"
    raw: bytes | None = None  # the whole file instead
    fatal: bool = False  # the file cannot be used: ElectricityError with the skip


ROW = {line.split(",", 1)[0]: i for i, line in enumerate((POWER / "registry.csv").read_text(encoding="utf-8").splitlines(), start=1)}
TABLE_CASES = {
    "registry_comma_in_name": TableCase("registry", line_edit("E0006", lambda s: s.replace("扬中示例企业006", "扬中,示例企业006")),
                                        (ROW["E0006"], "grade"), ("YZ0006",)),
    "registry_date_2022_02_30": TableCase("registry", field_edit("E0200", 5, "2022-02-30"), (ROW["E0200"], "status_date"), ("YZ0200",)),
    "registry_bad_status": TableCase("registry", field_edit("E0003", 4, "正\x00常"), (ROW["E0003"], "status"), ("YZ0003",)),
    "registry_huge_address": TableCase("registry", field_edit("E0009", 2, '"' + "地址," * (BIG // 3) + '"'), (ROW["E0009"], "address"), ("YZ0009",)),
    "registry_repeated_header": TableCase("registry", add("enterprise_id,name,address,industry,status,status_date,deadline,grade", at=10),
                                          (11, "enterprise_id")),
    "registry_gb18030_crlf": TableCase("registry", encoding="gb18030", newline="\r\n"),
    "registry_bom": TableCase("registry", encoding="utf-8-sig"),
    "transformers_lon_not_a_number": TableCase("transformers", field_edit("YZ0001", 2, "119.87l05"), (2, "lon"), ("YZ0001",)),
    "transformers_lon_outside_china": TableCase("transformers", field_edit("YZ0002", 2, "19.725867"), (3, "lon"), ("YZ0002",)),
    "transformers_lon_lat_swapped": TableCase("transformers", line_edit("YZ0003", lambda s: ",".join(s.split(",")[:2] + s.split(",")[2:][::-1])),
                                              (4, "lon"), ("YZ0003",)),
    "transformers_lat_inf": TableCase("transformers", field_edit("YZ0006", 3, "inf"), (7, "lat"), ("YZ0006",)),
    "transformers_truncated": TableCase("transformers", lambda lines: lines[:-1] + [lines[-1][:12]], (39, "lon"), ("YZ0232",)),
    "transformers_extra_column": TableCase("transformers", lambda lines: [lines[0] + ",note"] + [line + ",-" for line in lines[1:]]),
    "warnings_end_2022_02_30": TableCase("warnings", field_edit("YZ-2022-001", 3, "2022-02-30 24:00"), (2, "end")),
    "warnings_header_only": TableCase("warnings", lambda lines: lines[:1]),
    "registry_missing_column": TableCase("registry", lambda lines: [",".join(f for f in line.split(",")[:4] + line.split(",")[5:]) for line in lines],
                                         (1, "status"), fatal=True),
    "registry_header_only": TableCase("registry", lambda lines: lines[:1], (1, None), fatal=True),
    "registry_empty": TableCase("registry", raw=b"", skip=(1, None), fatal=True),
    "transformers_png": TableCase("transformers", raw=PNG, skip=(None, None), fatal=True),
    "warnings_missing_column": TableCase("warnings", lambda lines: [line.rsplit(",", 1)[0] for line in lines], (1, "region"), fatal=True),
}


@pytest.mark.parametrize("name", list(TABLE_CASES))
def test_one_bad_table_row_loses_one_row(name: str, sample: SimpleNamespace, tmp_path: Path) -> None:
    case = TABLE_CASES[name]
    source = POWER / f"{case.table}.csv"
    path = tmp_path / source.name
    if case.raw is not None:
        path.write_bytes(case.raw)
    else:
        lines = source.read_text(encoding="utf-8").splitlines()
        lines = case.edit(lines) if case.edit else lines
        path.write_bytes((case.newline.join(lines) + case.newline).encode(case.encoding))
    cfg = dataclasses.replace(sample.config.electricity, **{case.table: path})
    config = dataclasses.replace(sample.config, electricity=cfg)
    if case.fatal:
        with pytest.raises(ElectricityError) as caught:
            load_fleet(config, sample.grid)
        assert [(s.file, s.row, s.field) for s in caught.value.skips] == [(path.name, *case.skip)]
        assert exit_code(caught.value.skips) == EXIT_PARTIAL
        return
    fleet, warnings, skips, _ = load_fleet(config, sample.grid)
    if case.skip is None:
        assert skips == []
    else:
        assert (path.name, *case.skip) in {(s.file, s.row, s.field) for s in skips}, skips
    # Every other transformer keeps its place and enterprise; every other enterprise its registry row.
    columns = ["transformer_id", "enterprise_id", "registered", "cell_id"]
    clean = sample.fleet.transformers.set_index("transformer_id")[columns[1:]]
    now = fleet.transformers.set_index("transformer_id")[columns[1:]]
    kept = clean.index.difference(case.lost)
    pd.testing.assert_frame_equal(now.loc[kept], clean.loc[kept])
    assert not now.reindex(list(case.lost))["registered"].fillna(False).any()
    registry = sample.fleet.registry.drop(columns="source_row").set_index("enterprise_id")
    kept = registry.index.difference(["E" + t[2:] for t in case.lost])
    pd.testing.assert_frame_equal(fleet.registry.drop(columns="source_row").set_index("enterprise_id").loc[kept], registry.loc[kept])
    if case.table == "warnings":
        assert len(warnings) == (0 if case.skip or case.edit else len(sample.warnings))
    assert exit_code(skips) == (EXIT_OK if case.skip is None else EXIT_PARTIAL)


def test_a_transformer_of_an_enterprise_the_registry_lacks_is_not_an_unregistered_load(sample: SimpleNamespace, tmp_path: Path) -> None:
    lines = (POWER / "registry.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "registry.csv"
    path.write_text("\n".join(line for line in lines if not line.startswith("E0006,")) + "\n", encoding="utf-8")
    config = dataclasses.replace(sample.config, electricity=dataclasses.replace(sample.config.electricity, registry=path))
    fleet, _, skips, _ = load_fleet(config, sample.grid)
    row = fleet.transformers.set_index("transformer_id").loc["YZ0006"]
    assert row["enterprise_id"] == "E0006" and not row["registered"]
    assert [(s.file, s.row, s.field) for s in skips] == [("transformers.csv", 7, "enterprise_id")]


# ----------------------------------------------------------------------- the whole night


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, sample: SimpleNamespace) -> SimpleNamespace:
    """A clean night on Yangzhong's cells with one fire file, and the stored state of the day before to start bad nights from."""
    tmp = tmp_path_factory.mktemp("bad_power_night")
    sample.grid.to_parquet(tmp / "grid.parquet")
    fires = [str(ROOT / "geodata" / "fires" / "MODIS_C6_1_Global_24h_2022-06-03_ncp-subset.csv")]
    config = write_config(tmp, points=fires, rasters=[], grid=str(tmp / "grid.parquet"))
    before = (DAY - dt.timedelta(days=1)).isoformat()
    assert main(["nightly", "--date", before, "--config", str(config), "--quiet"]) == EXIT_OK
    assert main(["nightly", "--date", DAY.isoformat(), "--config", str(config), "--quiet"]) == EXIT_OK
    state = tmp / "out" / "state" / "electricity" / f"{before}.parquet"
    sites = gpd.read_parquet(tmp / "out" / DAY.isoformat() / "sites.parquet")
    return SimpleNamespace(config=config, state=state, sites=sites)


def night_with(night: SimpleNamespace, tmp: Path, readings: bytes | None = None, table: tuple[str, bytes] | None = None) -> tuple[int, dict]:
    """Run the night of DAY from the clean state of the day before, with the day's readings or one table replaced."""
    (tmp / "out" / "state" / "electricity").mkdir(parents=True)
    shutil.copy(night.state, tmp / "out" / "state" / "electricity" / night.state.name)
    text = night.config.read_text(encoding="utf-8").replace(f'dir = "{night.config.parent}/out"', f'dir = "{tmp}/out"')
    if readings is not None:
        (tmp / "readings").mkdir()
        (tmp / "readings" / DAY_FILE.name).write_bytes(readings)
        text = text.replace(f'"{ROOT}/geodata/power/readings/{{date}}.csv"', f'"{tmp}/readings/{{date}}.csv"')
    if table is not None:
        (tmp / f"{table[0]}.csv").write_bytes(table[1])
        text = text.replace(f'"{ROOT}/geodata/power/{table[0]}.csv"', f'"{tmp}/{table[0]}.csv"')
    (tmp / "config.toml").write_text(text, encoding="utf-8")
    code = main(["nightly", "--date", DAY.isoformat(), "--config", str(tmp / "config.toml"), "--quiet"])
    return code, json.loads((tmp / "out" / DAY.isoformat() / "run.json").read_text(encoding="utf-8"))


def test_night_with_1_234_in_the_first_row_keeps_the_other_transformers(night: SimpleNamespace, tmp_path: Path) -> None:
    text = DAY_FILE.read_text(encoding="utf-8").replace("YZ0001,2022-06-03,291", "YZ0001,2022-06-03,1,234")
    code, manifest = night_with(night, tmp_path, readings=text.encode())
    assert code == EXIT_PARTIAL and manifest["exit_code"] == EXIT_PARTIAL
    assert {(s["file"], s["row"], s["field"]) for s in manifest["skipped"]} == {(DAY_FILE.name, 2, "kwh")}
    counts = manifest["counts"]["electricity"]
    assert (counts["used"], counts["malformed_rows"], counts["transformers_without_readings"]) == (37, 1, 1)
    sites = gpd.read_parquet(tmp_path / "out" / DAY.isoformat() / "sites.parquet")
    # Only E0001 (YZ0001), whose day is unknown now, may lose its site; every other site is found as in the clean night.
    def others(frame: gpd.GeoDataFrame) -> pd.DataFrame:
        return frame[frame["enterprise_id"] != "E0001"].drop(columns="geometry").reset_index(drop=True)

    assert "E0001" in set(night.sites["enterprise_id"])
    pd.testing.assert_frame_equal(others(sites), others(night.sites))


def test_night_with_a_png_for_readings_is_partial_and_keeps_the_fires(night: SimpleNamespace, tmp_path: Path) -> None:
    code, manifest = night_with(night, tmp_path, readings=PNG)
    assert code == EXIT_PARTIAL
    assert [(s["file"], s["row"], s["field"]) for s in manifest["skipped"]] == [(DAY_FILE.name, None, None)]
    assert "PNG" in manifest["skipped"][0]["reason"]
    folder = tmp_path / "out" / DAY.isoformat()
    assert gpd.read_parquet(folder / "sites.parquet").empty and (folder / "fires.parquet").exists()
    # The day is not stored as one without use: the next night replays it from the (mended) file.
    assert not (tmp_path / "out" / "state" / "electricity" / f"{DAY}.parquet").exists()


def test_night_with_a_transformer_outside_china_loses_only_that_transformer(night: SimpleNamespace, tmp_path: Path) -> None:
    text = (POWER / "transformers.csv").read_text(encoding="utf-8").replace("YZ0003,E0003,119.838448", "YZ0003,E0003,19.838448")
    code, manifest = night_with(night, tmp_path, table=("transformers", text.encode()))
    assert code == EXIT_PARTIAL
    skipped = {(s["file"], s["row"], s["field"]) for s in manifest["skipped"]}
    assert ("transformers.csv", 4, "lon") in skipped
    assert manifest["counts"]["electricity"]["transformers"] == 37
    sites = gpd.read_parquet(tmp_path / "out" / DAY.isoformat() / "sites.parquet")
    clean = night.sites[night.sites["transformer_id"] != "YZ0003"]
    assert set(zip(sites["rule"], sites["transformer_id"])) >= set(zip(clean["rule"], clean["transformer_id"]))
