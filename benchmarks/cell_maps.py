"""Benchmark the cell maps of a night: milliseconds per page, the gridwatch page writer against folium.

    /work/venv/bin/python benchmarks/cell_maps.py [--scale K] [--cells N]

The night is the real sample run for 2022-06-03 (fires, events, electricity
sites, county outlines under each map: what the nightly job draws), made once
by benchmarks/maps.py and cached in benchmarks/.data/. With ``--scale K`` the
fires are K x the sample's, resampled from the real ones with 5 km of jitter
and attributed again (benchmarks/maps.py ``resample``; events are then left
out, as they do not follow the resampling). Every cell with a map is drawn
(or the first N).

Measured, in one run on the same MapDay (the night grouped by cell once, not
timed), wall-clock ms per cell page, mean over the cells:

* build: ``MapDay.cell_map`` (layers, popups, legend, fire list, task list);
  shared by both writers;
* gridwatch: writing that ``MapPage`` with ``save_map`` (one Jinja template and
  the page's JSON; ``gridwatch-map.js`` draws it);
* folium (baseline): the same page as a ``folium.Map`` (``MapPage.to_folium``:
  the same layers, drawn by the same scripts) written with ``save_map``: the
  folium element tree gridwatch built per cell map before.

Pages load the shared ``static/`` folder, as in the nightly run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maps import GRID, resample, sample_fires  # noqa: E402  (benchmarks/maps.py)

from pipelines.publish import maps  # noqa: E402
from pipelines.core.settings import load_config  # noqa: E402
from pipelines.grid.cells import load_counties  # noqa: E402
from pipelines.run.nightly import _places  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="fires as K x the sample day's (default 1: the real night)")
    parser.add_argument("--cells", type=int, default=None, help="draw only the first N cells")
    args = parser.parse_args(argv)

    fires_path = sample_fires()
    grid = gpd.read_parquet(GRID)
    fires = gpd.read_parquet(fires_path)
    events = gpd.read_parquet(fires_path.with_name("events.parquet"))
    sites = gpd.read_parquet(fires_path.with_name("sites.parquet"))
    if args.scale > 1:
        fires, events = resample(fires, grid, len(fires) * args.scale), None
    places = _places(load_counties(load_config(ROOT / "config.toml").counties), grid)
    day = maps.MapDay(fires, grid, events=events, sites=sites, places=places)
    cells = day.cell_ids()[: args.cells]
    print(f"{len(fires):,} fires, {len(cells)} cell maps ({'sample day' if args.scale == 1 else f'{args.scale}x the sample day'})")

    build, ours, baseline, sizes = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="gridwatch-cell-maps-") as scratch:
        folder = Path(scratch)
        static = folder / "static"
        for cell in cells:
            name = maps.cell_map_filename(cell)
            start = time.perf_counter()
            page = maps.add_home_link(day.cell_map(cell, title="gridwatch 2022-06-03", tiles="OpenStreetMap"), "../index.html")
            built = time.perf_counter()
            maps.save_map(page, folder / "maps" / name, static=static)
            written = time.perf_counter()
            maps.save_map(page.to_folium(), folder / "folium" / name, static=static)
            done = time.perf_counter()
            build.append(built - start)
            ours.append(written - built)
            baseline.append(done - written)
            sizes.append(((folder / "maps" / name).stat().st_size, (folder / "folium" / name).stat().st_size))
    ms = {k: 1000 * float(np.mean(v)) for k, v in (("build", build), ("ours", ours), ("folium", baseline))}
    kb = np.mean(sizes, axis=0) / 1000
    print(f"per cell page, mean of {len(cells)}:")
    print(f"  build (MapDay.cell_map, shared)       {ms['build']:6.2f} ms")
    print(f"  write, gridwatch page (MapPage)       {ms['ours']:6.2f} ms   {kb[0]:7.1f} kB")
    print(f"  write, folium page (baseline)         {ms['folium']:6.2f} ms   {kb[1]:7.1f} kB")
    total, folium_total = ms["build"] + ms["ours"], ms["build"] + ms["folium"]
    print(f"  build + write: gridwatch {total:.2f} ms, folium {folium_total:.2f} ms ({folium_total / total:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
