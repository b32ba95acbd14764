"""Benchmark PointIndex against geopandas.sjoin(predicate="within").

    /work/venv/bin/python benchmarks/attribution.py [--points N] [--repeat R]

The polygons are real: the 2,891 counties of China in
geodata/china_counties.parquet (EPSG:4326). The points are generated:
N points (default 1,000,000) uniformly at random, with a fixed seed, within
the layer's total bounds, so about a third fall inside China.

Timed: sjoin including the spatial index it builds (on the points, for
"within"); PointIndex.build and PointIndex.locate separately. The point
GeoDataFrame sjoin needs is made before timing, and reducing its matches to
one polygon per point is not timed, both in sjoin's favour. Each repeat makes
points and polygons afresh so that nothing cached by one run (trees, prepared
geometries) speeds up another; the fastest of the repeats is reported.

Second part, a night's sizes: the real 44,279-cell 5 km grid of the sample
(geodata/grid_ncp_5km.parquet) and 600 to 600,000 points uniform in its
bounds (seeded), each located by: sjoin (tree + join); PointIndex built and
asked at that size (below ``TABLE_FROM_POINTS`` the exact path: an STRtree of
the cells, point-in-polygon on the prepared cells; no lookup table); the
lookup table built and used (what every night paid before the table became
lazy); and the table read back from the per-grid cache (``gridcache``).

Exits with status 1 if the results differ from sjoin's (lowest polygon index
per point, -1 for none).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np

from pipelines.grid.attribution import UNCERTAIN, PointIndex

COUNTIES = Path(__file__).resolve().parents[1] / "geodata" / "china_counties.parquet"
GRID = Path(__file__).resolve().parents[1] / "geodata" / "grid_ncp_5km.parquet"
SEED = 20241101


def load_polygons() -> gpd.GeoSeries:
    return gpd.read_parquet(COUNTIES, columns=["geometry"]).geometry


def random_points(bounds: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in lon/lat within bounds (degrees)."""
    rng = np.random.default_rng(SEED)
    return rng.uniform(bounds[0], bounds[2], n), rng.uniform(bounds[1], bounds[3], n)


def run_sjoin(x: np.ndarray, y: np.ndarray) -> tuple[float, gpd.GeoDataFrame]:
    """Seconds for sjoin (tree build included), and its result.

    Both frames are made afresh: for "within" sjoin builds its tree on the
    points and caches it on them, which would flatter later repeats.
    """
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")
    polygons = load_polygons().to_frame()
    start = time.perf_counter()
    joined = gpd.sjoin(points, polygons, predicate="within")
    return time.perf_counter() - start, joined


def run_index(x: np.ndarray, y: np.ndarray) -> tuple[float, float, PointIndex, np.ndarray]:
    """Seconds to build a PointIndex on fresh polygons and to locate, the index, the result."""
    polygons = load_polygons()
    start = time.perf_counter()
    index = PointIndex.build(polygons)
    index.codes  # the lookup table, built now (locate would build it for this many points anyway)
    built = time.perf_counter()
    found = index.locate(x, y)
    return built - start, time.perf_counter() - built, index, found


def lowest_match(joined: gpd.GeoDataFrame, n: int) -> np.ndarray:
    """sjoin matches as the lowest polygon position per point, -1 for none."""
    result = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(result, joined.index.to_numpy(), joined["index_right"].to_numpy())
    result[result == np.iinfo(np.int64).max] = -1
    return result


def report(n: int, sjoin_s: float, build_s: float, locate_s: float, index: PointIndex,
           uncertain: float) -> None:
    rows, cols = index.codes.shape
    print(f"points (generated, uniform in bounds): {n:,}")
    print(f"polygons (real counties):             {len(index):,}")
    print(f"lookup table: {rows:,} x {cols:,} cells of {index.resolution:.5f} deg, "
          f"{index.codes.dtype}, {index.codes.nbytes / 2**20:.0f} MiB; "
          f"points on the exact path: {uncertain:.1%}")
    print()
    print(f"{'step':<24}{'seconds':>9}{'points/s':>14}{'vs sjoin':>10}")
    for step, seconds in [
        ("sjoin (tree + join)", sjoin_s),
        ("PointIndex.build", build_s),
        ("PointIndex.locate", locate_s),
        ("build + locate", build_s + locate_s),
    ]:
        rate = "" if step == "PointIndex.build" else f"{n / seconds:>14,.0f}"
        ratio = "" if step == "PointIndex.build" else f"{sjoin_s / seconds:>9.1f}x"
        print(f"{step:<24}{seconds:>9.3f}{rate:>14}{ratio:>10}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"\npeak RSS: {peak_mib:,.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    x, y = random_points(load_polygons().total_bounds, args.points)
    sjoin_s = build_s = locate_s = float("inf")
    for _ in range(args.repeat):
        seconds, joined = run_sjoin(x, y)
        sjoin_s = min(sjoin_s, seconds)
        build, locate, index, found = run_index(x, y)
        build_s, locate_s = min(build_s, build), min(locate_s, locate)

    uncertain = float(np.mean(index._lookup(x, y) == UNCERTAIN))
    report(args.points, sjoin_s, build_s, locate_s, index, uncertain)
    mismatches = int(np.count_nonzero(found != lowest_match(joined, args.points)))
    if mismatches:
        print(f"DIFFERENT from sjoin at {mismatches:,} points")
        return 1
    print("identical to sjoin at every point")
    return night_sizes(args.repeat)


def night_sizes(repeat: int) -> int:
    """PointIndex at a night's sizes on the sample's 44,279-cell grid, against sjoin (see the module docstring)."""
    import tempfile

    from pipelines.grid import attribution

    grid = gpd.read_parquet(GRID, columns=["geometry"])
    bounds = grid.total_bounds
    cache = Path(tempfile.mkdtemp(prefix="gridwatch-pointindex-"))
    PointIndex.build(grid.geometry, cache=cache).codes  # fill the cache (not timed)
    print(f"\nnight sizes: {len(grid):,} cells of the sample grid; TABLE_FROM_POINTS = {attribution.TABLE_FROM_POINTS:,}")
    print(f"{'points':>9}{'sjoin s':>9}{'index s':>9}{'x sjoin':>8}{'table built s':>15}{'table cached s':>16}")
    different = 0
    for n in (600, 6_000, 60_000, 600_000):
        rng = np.random.default_rng(SEED + n)
        x, y = rng.uniform(bounds[0], bounds[2], n), rng.uniform(bounds[1], bounds[3], n)
        times = {"sjoin": [], "index": [], "built": [], "cached": []}
        for _ in range(repeat):
            points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")
            cells = gpd.read_parquet(GRID, columns=["geometry"])
            start = time.perf_counter()
            joined = gpd.sjoin(points, cells, predicate="within")
            times["sjoin"].append(time.perf_counter() - start)
            for label, cached in (("index", None), ("built", None), ("cached", cache)):
                polygons = gpd.read_parquet(GRID, columns=["geometry"]).geometry
                start = time.perf_counter()
                index = PointIndex.build(polygons, cache=cached)
                if label != "index":
                    index.codes
                found = index.locate(x, y)
                times[label].append(time.perf_counter() - start)
                different += int(np.count_nonzero(found != lowest_match(joined, n)))
        best = {k: min(v) for k, v in times.items()}
        print(f"{n:>9,}{best['sjoin']:>9.3f}{best['index']:>9.3f}{best['sjoin'] / best['index']:>7.1f}x"
              f"{best['built']:>15.3f}{best['cached']:>16.3f}")
    if different:
        print(f"DIFFERENT from sjoin at {different:,} points")
        return 1
    print("identical to sjoin at every point and size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
