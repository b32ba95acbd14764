"""Right outside the sample: the real FIRMS fires of 2025-11-18 over a Heilongjiang + Jilin grid.

The grid is made by ``gridwatch make-grid`` from the shipped county layer; the
fires are the China rows of the real global MODIS file of that day
(``geodata/archive/``). The published arable land the cropland is checked
against is the Third National Land Survey (2019 data, bulletins of 2021):
Heilongjiang 17.19 million ha, Jilin 7.49 million ha. MCD12C1 at 0.05° counts
the cropland/natural mosaic class too, so it reads somewhat more.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import rasterio
from rasterio.windows import from_bounds
from test_nightly import write_config

from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL

ROOT = Path(__file__).resolve().parent.parent
FIRES = ROOT / "geodata/archive/MODIS_C6_1_Global_24h_2025-11-18_china-subset.csv"
LANDCOVER = ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif"
DAY = "2025-11-18"
ARABLE_MHA = {"230000": 17.19, "220000": 7.49}  # Third National Land Survey


def _northeast(tmp: Path, landcover: Path = LANDCOVER) -> Path:
    config = write_config(tmp, points=[str(FIRES)], rasters=[], without="electricity")
    text = config.read_text()
    text = text.replace("bbox = [110.0, 28.0, 123.0, 43.0]", "bbox = [73.0, 17.0, 136.0, 54.0]")
    text = text.replace('provinces = ["110000", "120000", "130000", "320000", "340000", "370000", "410000"]', 'provinces = ["230000", "220000"]')
    text = text.replace(f'out = "{ROOT}/geodata/grid_ncp_5km.parquet"', f'out = "{tmp}/grid_ne.parquet"')
    text = text.replace(f'path = "{ROOT}/geodata/grid_ncp_5km.parquet"', f'path = "{tmp}/grid_ne.parquet"', 1)
    text = text.replace(f'"{LANDCOVER}"', f'"{landcover}"').replace("cell_km = 5.0", "cell_km = 20.0")
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def northeast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("northeast")
    config = _northeast(tmp)
    assert main(["make-grid", "--config", str(config)]) == 0
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) in (EXIT_OK, EXIT_PARTIAL)
    return tmp


def test_no_fire_in_the_grid_has_unknown_land_cover(northeast: Path) -> None:
    out = northeast / "out" / DAY
    fires = gpd.read_parquet(out / "fires.parquet")
    in_grid = fires[fires["cell_id"].notna()]
    assert len(in_grid) > 100
    assert (in_grid["category"] != "unknown").all()
    straw = (in_grid["category"] == "straw_suspect").mean()
    assert straw > 0.8, straw  # mid-November in the northeast: the maize-straw burning season
    manifest = json.loads((out / "run.json").read_text())
    assert not any("land cover unknown" in w for w in manifest["warnings"])


def test_cropland_per_province_is_close_to_the_published_arable_land(northeast: Path) -> None:
    report = pd.read_csv(northeast / "out" / DAY / "report.csv", dtype={"code": str})
    provinces = report[report["level"] == "province"].set_index("code")
    for code, published in ARABLE_MHA.items():
        ratio = provinces.loc[code, "cropland_ha"] / 1e6 / published
        assert 0.8 < ratio < 1.35, (code, ratio)
        assert provinces.loc[code, "landcover_coverage"] == pytest.approx(1.0)
    counties = report[report["level"] == "county"]
    assert (counties["landcover_coverage"] > 0.99).all()


def test_land_cover_that_stops_short_is_said_everywhere(northeast: Path, tmp_path: Path) -> None:
    # The shipped raster of the first release: the same data, cut at 46°N.
    clipped = tmp_path / "landcover_south_of_46N.tif"
    with rasterio.open(LANDCOVER) as src:
        window = from_bounds(108.0, 26.0, 130.0, 46.0, src.transform)
        profile = src.profile | {"width": int(window.width), "height": int(window.height),
                                 "transform": src.window_transform(window)}
        with rasterio.open(clipped, "w", **profile) as dst:
            dst.write(src.read(1, window=window), 1)
    config = _northeast(tmp_path, clipped)
    config.write_text(config.read_text().replace(f'"{tmp_path}/grid_ne.parquet"', f'"{northeast}/grid_ne.parquet"'))
    assert main(["nightly", "--date", DAY, "--config", str(config), "--quiet"]) == EXIT_PARTIAL
    out = tmp_path / "out" / DAY
    fires = gpd.read_parquet(out / "fires.parquet")
    unknown = fires[fires["category"] == "unknown"]
    assert unknown["reason"].str.contains("地类不明").all()
    in_grid = unknown[unknown["cell_id"].notna()]
    assert len(in_grid) and ((in_grid["lat"] > 45.9) | (in_grid["lon"] > 129.9)).all()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["counts"]["fires_by_category"]["unknown"] == len(unknown)
    assert any(s["field"] == "landcover" for s in manifest["skipped"])
    assert any("land cover unknown for" in w for w in manifest["warnings"])
    assert any("covers only part of" in w for w in manifest["warnings"])
    report = pd.read_csv(out / "report.csv", dtype={"code": str})
    heilongjiang = report[(report["level"] == "province") & (report["code"] == "230000")].iloc[0]
    assert heilongjiang["unknown"] > 0 and heilongjiang["landcover_coverage"] < 0.3
    assert "土地覆盖数据未完全覆盖" in (out / "report.html").read_text(encoding="utf-8")
    assert "地类不明" in (out / "map.html").read_text(encoding="utf-8")
    assert "地类不明" in (out / "index.html").read_text(encoding="utf-8")
