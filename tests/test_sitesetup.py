"""A site of one's own: `gridwatch init`, sections left out of the config, the county layer's columns as configuration."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from pipelines.core import refdata
from pipelines.core.settings import ConfigError, load_config
from pipelines.fires.sources import load_sources
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_FAILED, EXIT_OK, RunError
from pipelines.run.sitesetup import SetupError, init_site

ROOT = Path(__file__).resolve().parent.parent
FIRES = Path(__file__).resolve().parent / "data" / "fires"
BAOQING = "230523"  # 宝清县, Shuangyashan, Heilongjiang: 45 VIIRS fires on 2023-04-05 in the AgriFireInfo sample


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site") / "baoqing"
    init_site(folder, counties=(BAOQING,), cell_km=10.0)
    return folder


def test_init_writes_a_config_a_grid_and_the_reference_data(site: Path) -> None:
    config = load_config(site / "config.toml")
    # The starter config leaves out only what needs the user's own data: one warning each.
    assert [note.split(" not in ")[0] for note in config.notes] == ["[rain]", "[electricity]"]
    assert config.grid.path == site / "grid.parquet" and config.counties.path == site / "data" / refdata.COUNTIES
    assert config.classify is not None and config.classify.landcover == site / "data" / refdata.LANDCOVER
    grid = gpd.read_parquet(config.grid.path)
    assert set(grid["county_code"]) == {BAOQING} and set(grid["county_name"]) == {"宝清县"}
    assert shapely.is_valid(grid.geometry.values).all()
    lon0, lat0, lon1, lat1 = grid.total_bounds
    x0, y0, x1, y1 = config.region.bbox
    assert x0 < lon0 and y0 < lat0 and x1 > lon1 and y1 > lat1 and x1 - x0 < lon1 - lon0 + 0.5
    for name in refdata.ALL:  # copies, not links into the package
        copy = site / "data" / name
        assert copy.is_file() and not copy.is_symlink()
        assert copy.read_bytes() == refdata.shipped(name).read_bytes()
    assert (site / "fires").is_dir() and not any((site / "fires").iterdir())
    raw = tomllib.loads((site / "config.toml").read_text(encoding="utf-8"))
    assert raw["make_grid"] == {"cell_km": 10.0, "provinces": [], "counties": [BAOQING], "out": "grid.parquet"}


def test_make_grid_from_the_site_config_remakes_its_grid(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.parquet"
    assert main(["make-grid", "--config", str(site / "config.toml"), "--out", str(out), "--quiet"]) == EXIT_OK
    assert list(gpd.read_parquet(out)["cell_id"]) == list(gpd.read_parquet(site / "grid.parquet")["cell_id"])


def test_init_refuses_bad_codes_and_an_existing_site(site: Path, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="already has config.toml, grid.parquet; use --force"):
        init_site(site, counties=(BAOQING,))
    with pytest.raises(SetupError, match="no province or county with the code.*230100"):
        init_site(tmp_path / "x", counties=("230100",))
    assert not (tmp_path / "x").exists()
    with pytest.raises(SetupError, match="give the counties"):
        init_site(tmp_path / "x")
    with pytest.raises(SystemExit) as wrong:  # argparse: not a 6-digit code
        main(["init", "--counties", "2301", "--dir", str(tmp_path / "y")])
    assert wrong.value.code == 2 and not (tmp_path / "y").exists()


def test_init_from_a_data_folder_names_what_is_missing(tmp_path: Path) -> None:
    data = tmp_path / "geodata"
    data.mkdir()
    shutil.copyfile(refdata.shipped(refdata.COUNTIES), data / refdata.COUNTIES)
    with pytest.raises(SetupError, match=r"geodata: reference data missing: landcover/MCD12C1_2019_IGBP_china_0\.05deg\.tif, industrial/"):
        init_site(tmp_path / "site", provinces=("710000",), from_data=data)


def test_left_out_sections_get_their_defaults_with_one_note_each(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[grid]\npath = "grid.parquet"\nid_column = "cell_id"\nname_column = "cell_name"\n'
                    'county_column = "county_code"\nsupervisor_column = ""\n\n[fires]\npoints = ["fires/*.csv"]\n', encoding="utf-8")
    config = load_config(path)
    left_out = [note.split("]")[0] + "]" for note in config.notes]
    assert left_out == ["[output]", "[region]", "[counties]", "[windows]", "[maps]", "[events]", "[classify]", "[sowing]",
                        "[rain]", "[plan]", "[persistent]", "[electricity]"]
    assert config.output.dir == tmp_path / "out" and config.make_grid is None
    # (resolved: in the source tree the shipped files are links into geodata/)
    assert config.counties.path == refdata.shipped(refdata.COUNTIES).resolve() and config.counties.city_code_column == "city_adcode"
    assert config.classify is not None and config.classify.landcover == refdata.shipped(refdata.LANDCOVER).resolve()
    assert [p.format for p in config.classify.industrial] == ["gem_steel", "wri_power"]
    assert config.sowing is not None and config.sowing.table == refdata.shipped(refdata.SOWING_TABLE).resolve() and len(config.sowing.defaults) == 4
    assert config.windows.mode == "sun" and config.rain is None and config.electricity is None


def test_every_missing_key_is_named_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[grid]\npath = "grid.parquet"\nname_column = "cell_name"\n\n[make_grid]\nprovinces = ["410000"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 5 missing keys: ")
    for key in ("'id_column' in [grid]", "'county_column' in [grid]", "'supervisor_column' in [grid]",
                "'cell_km' in [make_grid]", "'out' in [make_grid]"):
        assert key in message
    path.write_text('[grid]\npath = "grid.parquet"\nid_column = "cell_id"\nname_column = "n"\ncounty_column = "c"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config.toml: missing key 'supervisor_column' in \[grid\]$"):
        load_config(path)


def test_make_grid_without_its_section_needs_its_options(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (site / "config.toml").read_text(encoding="utf-8")
    start = text.index("[make_grid]")
    path = site / "no_make_grid.toml"
    path.write_text(text[:start] + text[text.index("[fires]"):], encoding="utf-8")
    assert main(["make-grid", "--config", str(path)]) == EXIT_FAILED
    assert "make-grid needs [make_grid] cell_km (--cell-km), out (--out), provinces or counties" in capsys.readouterr().err
    out = tmp_path / "grid.parquet"
    assert main(["make-grid", "--config", str(path), "--cell-km", "10", "--counties", BAOQING, "--out", str(out), "--quiet"]) == EXIT_OK
    assert len(gpd.read_parquet(out)) == len(gpd.read_parquet(site / "grid.parquet"))


def site_config(site: Path, tmp_path: Path, **counties: str) -> Path:
    """The site's config with [counties] keys replaced, written in ``tmp_path`` with absolute paths."""
    text = (site / "config.toml").read_text(encoding="utf-8").replace('"data/', f'"{site}/data/').replace('"grid.parquet"', f'"{site}/grid.parquet"')
    text = text.replace('"fires/', f'"{site}/fires/').replace('dir = "out"', f'dir = "{tmp_path}/out"')
    for key, value in counties.items():
        lines = text.splitlines()
        section = lines.index("[counties]                             # county polygons: names, cities, provinces for the report; make-grid clips to them")
        i = next(j for j in range(section, len(lines)) if lines[j].startswith(f"{key} ="))
        lines[i] = f'{key} = "{value}"'
        text = "\n".join(lines) + "\n"
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_city_column_the_county_layer_lacks_stops_the_run_before_writing(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = site_config(site, tmp_path, city_code_column="city_code", city_name_column="city")
    with pytest.raises(RunError, match=r"china_counties.parquet: \[counties\] city_code_column = 'city_code'; city_name_column = 'city': no such column"):
        load_sources(load_config(path))
    shutil.copy(FIRES / "viirs_2023-04-05_with_township_address_sample.csv", tmp_path / "fires.csv")
    text = path.read_text(encoding="utf-8").replace(f'"{site}/fires/*.csv"', f'"{tmp_path}/fires.csv"')
    path.write_text(text, encoding="utf-8")
    assert main(["nightly", "--date", "2023-04-05", "--config", str(path)]) == EXIT_FAILED
    assert "city_code_column = 'city_code'" in capsys.readouterr().err and not list((tmp_path / "out").glob("20*"))


def test_another_county_layer_with_its_own_column_names(site: Path, tmp_path: Path) -> None:
    """The same real counties under other column names (and codes stored as numbers): cities still found."""
    layer = gpd.read_parquet(site / "data" / refdata.COUNTIES)
    layer = layer[layer["province_adcode"].astype(str) == "230000"]
    renamed = layer.rename(columns={"district_adcode": "xian_dm", "district_name": "xian_mc", "city_adcode": "shi_dm", "city_name": "shi_mc",
                                    "province_adcode": "sheng_dm", "province_name": "sheng_mc"})
    renamed["xian_dm"] = renamed["xian_dm"].astype(int)
    own = tmp_path / "counties.gpkg"
    renamed.to_file(own)
    path = site_config(site, tmp_path, code_column="xian_dm", name_column="xian_mc", city_code_column="shi_dm", city_name_column="shi_mc",
                       province_code_column="sheng_dm", province_name_column="sheng_mc")
    path.write_text(path.read_text(encoding="utf-8").replace(f'"{site}/data/{refdata.COUNTIES}"', f'"{own}"'), encoding="utf-8")
    table = load_sources(load_config(path)).counties
    baoqing = table.set_index("district_adcode").loc[BAOQING]
    assert (baoqing["city_adcode"], baoqing["city_name"], baoqing["province_name"]) == ("230500", "双鸭山市", "黑龙江省")


def test_without_city_columns_every_county_is_in_city_unknown_with_a_warning(site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipelines.publish.report import report_table

    path = site_config(site, tmp_path, city_code_column="", city_name_column="")
    config = load_config(path)
    grid = gpd.read_parquet(config.grid.path)
    with caplog.at_level("WARNING", logger="pipelines"):
        table = load_sources(config).counties
        report = report_table(pd.DataFrame({"cell_id": [], "category": []}), None, grid, table, pd.Series(dtype=float), None)
    assert table["city_adcode"].isna().all()
    messages = [r.getMessage() for r in caplog.records]
    assert any("city_code_column / city_name_column not set" in m for m in messages)
    assert any("1 of 1 counties of the grid have no city" in m and "230523 宝清县" in m for m in messages)
    assert list(report.loc[report["level"] == "city", "name"]) == ["unknown"]


def test_the_shipped_reference_data_is_found_in_the_package() -> None:
    assert refdata.data_dir() == ROOT / "pipelines" / "data"
    for name in refdata.ALL:
        assert refdata.shipped(name).is_file(), name


def test_a_new_site_with_the_days_firms_file_runs_a_complete_night(site: Path, tmp_path: Path) -> None:
    # The starter config names only what a new site has: a night with its FIRMS file is complete (exit 0), not partial.
    folder = tmp_path / "site"
    shutil.copytree(site, folder)
    shutil.copy(FIRES / "viirs_2023-04-05_with_township_address_sample.csv", folder / "fires" / "viirs_2023-04-05.csv")
    code = main(["nightly", "--date", "2023-04-05", "--config", str(folder / "config.toml"), "--out", str(tmp_path / "out"), "--quiet"])
    skipped = json.loads((tmp_path / "out" / "2023-04-05" / "run.json").read_text(encoding="utf-8"))["skipped"]
    assert (code, skipped) == (EXIT_OK, [])
