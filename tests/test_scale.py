"""What makes heavy nights cheap must not change what they say: progress lines on a terminal,
the per-grid cache of a real (small) night, and raster reading in a few tasks per day."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from pipelines.core.settings import load_config
from pipelines.fires.load import dedupe
from pipelines.fires.rasters import extract_fires, read_raster_fires
from pipelines.fires.readers.rasters import detect_raster, open_scans
from pipelines.run.nightly import run_nightly

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2022, 6, 3)
AHI = sorted((ROOT / "geodata" / "fires" / "ahi").glob("*.nc"))
NON_MAP_STAGES = ["loading the grid", "loading land cover", "reading 1 point file(s) and 0 raster(s)", "attributing", "classifying",
                  "fusing observations", "writing fires", "report by province", "patrol plan"]


def small_config(tmp: Path) -> Path:
    """The project's config over the sample grid's cells in eastern Henan and one real FIRMS file."""
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    grid.cx[114.0:115.0, 34.3:34.8].to_parquet(tmp / "grid.parquet")
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace('"geodata/', f'"{ROOT}/geodata/')
    text = text.replace(f'path = "{ROOT}/geodata/grid_ncp_5km.parquet"', f'path = "{tmp}/grid.parquet"', 1)
    text = text.replace(f'points = ["{ROOT}/geodata/fires/*.csv"]',
                        f'points = ["{ROOT}/geodata/fires/MODIS_C6_1_Global_24h_2022-06-03_ncp-subset.csv"]')
    text = text.replace(f'rasters = ["{ROOT}/geodata/fires/ahi/*.nc"]', "rasters = []")
    text = text.replace('tiles = "OpenStreetMap"', 'tiles = ""').replace('dir = "out"', f'dir = "{tmp}/out"')
    path = tmp / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("scale")
    config = load_config(small_config(tmp))
    quiet = io.StringIO()
    with contextlib.redirect_stderr(quiet):
        first = run_nightly(config, DAY, progress=False)
    cache = tmp / "out" / "state" / "grid"
    stored = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npz")}
    tables = {name: (first.folder / name).read_bytes() for name in ("fires.parquet", "report.csv", "plan.csv", "grid_summary.csv")}
    return {"config": config, "first": first, "tables": tables, "cache": cache, "stored": stored, "quiet": quiet.getvalue()}


def test_a_second_night_reads_the_grid_cache_and_says_the_same(two_runs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert two_runs["first"].manifest["counts"]["fires"] > 0
    assert any(name.startswith("land-") for name in two_runs["stored"])
    capsys.readouterr()
    second = run_nightly(two_runs["config"], DAY, progress=True)
    err = capsys.readouterr().err
    for stage in NON_MAP_STAGES:
        assert stage in err, stage
    assert all(line.startswith("gridwatch: ") for line in err.splitlines() if line)  # "\r" rewrites the map counter in place
    # Read, not rebuilt: the cached files were not written again.
    assert {p.name: p.stat().st_mtime_ns for p in two_runs["cache"].glob("*.npz")} == two_runs["stored"]
    for name, data in two_runs["tables"].items():
        assert (second.folder / name).read_bytes() == data, name
    assert second.manifest["timings_s"]["report"] <= max(2.0, 2 * two_runs["first"].manifest["timings_s"]["report"])


def test_no_progress_lines_without_a_terminal(two_runs: dict) -> None:
    # The CLI passes progress=False when stderr is not a TTY or with --quiet.
    assert "gridwatch: " not in two_runs["quiet"]


def test_a_day_of_scans_is_a_few_tasks_with_the_same_fire_pixels() -> None:
    filters = {"bbox": (110.0, 28.0, 123.0, 43.0), "day": DAY, "min_confidence": 0.0}
    lazy = read_raster_fires(AHI, cloud_window=5, **filters)
    import dask

    graph = dask.base.collections_to_expr(lazy.parts).__dask_graph__()
    assert len(AHI) == 144 and len(graph) <= 10  # was 1,158 tasks
    grouped, skips, counts = lazy.compute(scheduler="threads")
    ds, _ = open_scans(AHI, detect_raster(AHI[0]))
    per_block, skips_b, counts_b = extract_fires(ds, cloud_window=5, **filters).compute(scheduler="threads")
    assert not skips and not skips_b and len(grouped) == 478
    pd.testing.assert_frame_equal(dedupe(grouped)[0], dedupe(per_block)[0])
    assert json.dumps(counts, sort_keys=True) == json.dumps(counts_b, sort_keys=True)
