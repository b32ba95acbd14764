"""Benchmark fire-pixel extraction from a day of geostationary scans.

    /work/venv/bin/python benchmarks/rasters.py [--scans 144] [--repeat 3] [--data DIR]

The scans are generated (real products could not be had): 144 AHI-style
10-minute scans, 0.02° (about 2 km), 1,000 × 800 pixels over 108-128°E
28-44°N, zlib-compressed NetCDF4 in 200 × 250 chunks, made by
``pipelines.testing.products.write_geostationary_scans`` from the real MODIS detections
in geodata/ (the 7-day FIRMS file, every detection moved onto one day at its
real time of day, burning 1-3 hours around it) over the real MCD12C1 land
cover, with drifting cloud. They are written once into ``--data`` (default
benchmarks/.data/, not committed) and reused.

Each method runs in a fresh process, so its peak memory (max RSS) is its own;
the best wall time of ``--repeat`` runs is reported:

- decode (the decode limit): open each file and read ``fire_mask`` and
  ``frp`` into numpy with netCDF4, nothing else, one file after another. The
  netCDF library holds Python's GIL and is not thread-safe, so in one
  process this is the floor for anything that decompresses both arrays;
- decode, mask only: the same for ``fire_mask`` alone, the floor for any
  method: gridwatch decodes FRP only in the compressed chunks that hold a
  fire, so it can beat the decode limit but never this;
- gridwatch reads only: the Dataset of ``readers.rasters.open_scans``
  computed without extraction (the mask, and FRP in the chunks with fires):
  the decode limit of gridwatch's own reads;
- naive loop: open each file and read both arrays into numpy, plus ``np.nonzero`` on the mask and FRP and
  coordinates at the fire pixels (no cloud fraction, no schema, no frames);
- mask-first loop (the fair single-process baseline): open each file, decode
  ``fire_mask``, then FRP only on the rows that hold a fire (netCDF decodes
  only the chunks crossing them), and coordinates at the fire pixels; one file
  after another;
- mask-first 2 processes: the same per file on a ``multiprocessing`` pool of 2
  processes (pool start-up timed), the fair baseline for a 2-core machine;
- gridwatch: ``read_raster_fires(paths).compute()`` on dask's threaded
  scheduler (the nightly default): schema-complete fire points with cloud
  fraction, pixel size, fire ids and filters;
- gridwatch distributed (-1): the same graph on a ``distributed.LocalCluster`` of
  2 (1) single-threaded worker processes with README's recommended worker
  environment (cluster start-up and the workers' imports not timed; memory is
  that of the client process only).

"of decode limit" is the decode method's time over each method's; "of best baseline"
the faster of the two mask-first baselines' time over each method's (above 100 %:
faster than the baseline).

The run fails (exit 1) if any method finds a different number of fire pixels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIRES = ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv"
LANDCOVER = ROOT / "geodata/landcover/MCD12C1_2019_IGBP_china_0.05deg.tif"
DAY = dt.date(2022, 6, 3)


def make_scans(folder: Path, scans: int) -> list[Path]:
    """The benchmark's scans, generated once (see the module docstring)."""
    import pandas as pd

    from pipelines.fires.load import dedupe
    from pipelines.fires.readers import read_points
    from pipelines.testing.products import write_geostationary_scans

    existing = sorted(folder.glob("H08_*_FIRE_MASK_R02.nc"))
    if len(existing) == scans:
        return existing
    for old in existing:
        old.unlink()
    fires, _ = read_points(FIRES)
    fires, _ = dedupe(fires)
    # Every detection of the week, at its time of day on one (Beijing) day.
    shift = pd.to_timedelta((DAY - fires["time_bjt"].dt.date).map(lambda d: d.days), unit="D")
    fires = fires.assign(time_utc=fires["time_utc"] + shift)
    start = dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.timezone.utc) - dt.timedelta(hours=8)
    return write_geostationary_scans(
        folder, fires, start_utc=start, scans=scans, lon_range=(108.0, 128.0), lat_range=(28.0, 44.0),
        landcover=LANDCOVER, seed=7,
    )


# ---------------------------------------------------------------- methods (run in child processes)


def decode(paths: list[Path]) -> int:
    import netCDF4

    for path in paths:
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_maskandscale(False)
            nc["fire_mask"][:]
            nc["frp"][:]
    return -1  # decoding finds no fires


def decode_mask(paths: list[Path]) -> int:
    import netCDF4

    for path in paths:
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_maskandscale(False)
            nc["fire_mask"][:]
    return -1


def reads_only(paths: list[Path]) -> int:
    import dask
    import dask.array as da

    from pipelines.fires.readers.rasters import detect_raster, open_scans

    ds, _ = open_scans(paths, detect_raster(paths[0]))
    # Reduce each block right away: the arrays are decoded, never gathered.
    warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
    dask.compute(ds["fire_mask"].data.max(), da.nanmax(ds["frp"].data), scheduler="threads")
    return -1


def naive(paths: list[Path]) -> int:
    import netCDF4

    found = 0
    for path in paths:
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_maskandscale(False)
            mask = nc["fire_mask"][:]
            rows, cols = np.nonzero(mask >= 7)
            frp = nc["frp"][:][rows, cols]
            lat, lon = nc["latitude"][:][rows], nc["longitude"][:][cols]
            found += len(frp) + 0 * len(lat) + 0 * len(lon)
    return found


def _mask_first_one(path: Path) -> int:
    """One scan the plain way, done well: the mask, then FRP only on the rows that hold a fire."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        mask = nc["fire_mask"][:]
        fire = mask >= 7
        rows = np.flatnonzero(fire.any(axis=1))
        if not len(rows):
            return 0
        frp_rows = nc["frp"][rows, :]  # decodes only the chunks crossing those rows
        r, c = np.nonzero(fire[rows])
        frp = frp_rows[r, c]
        lat, lon = nc["latitude"][:][rows[r]], nc["longitude"][:][c]
        return len(frp) + 0 * len(lat) + 0 * len(lon)


def mask_first(paths: list[Path]) -> int:
    return sum(_mask_first_one(p) for p in paths)


def mask_first_pool(paths: list[Path]) -> int:
    # Processes, not threads: netCDF4 holds the GIL. Pool start-up is timed (it is part of the method).
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        return sum(pool.map(_mask_first_one, paths, chunksize=max(1, len(paths) // 8)))


def ours(paths: list[Path]) -> int:
    from pipelines.fires.rasters import read_raster_fires

    fires, skips, _ = read_raster_fires(paths).compute(scheduler="threads")
    assert not skips, skips
    return len(fires)


def ours_distributed(paths: list[Path], workers: int = 2) -> tuple[int, float]:
    import dask
    from distributed import Client, LocalCluster

    from pipelines.fires.rasters import read_raster_fires

    # The worker environment README recommends (distributed's default MALLOC_TRIM_THRESHOLD_ halves numpy's speed in workers).
    env = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 134217728, "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 33554432}
    with dask.config.set(env), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("pipelines.fires.rasters"))  # workers up, modules imported
        start = time.perf_counter()
        fires, skips, _ = read_raster_fires(paths).compute(scheduler=client)
        return len(fires), time.perf_counter() - start


def ours_distributed_1(paths: list[Path]) -> tuple[int, float]:
    return ours_distributed(paths, workers=1)


METHODS = {"decode": decode, "decode-mask-only": decode_mask, "gridwatch-reads-only": reads_only, "naive": naive,
           "mask-first loop": mask_first, "mask-first 2 processes": mask_first_pool,
           "gridwatch": ours, "gridwatch-distributed-1": ours_distributed_1, "gridwatch-distributed": ours_distributed}


def child(method: str, paths: list[Path], queue: multiprocessing.Queue) -> None:
    import distributed  # noqa: F401 - imports are not what is measured
    import netCDF4  # noqa: F401

    import pipelines.fires.rasters  # noqa: F401

    start = time.perf_counter()
    result = METHODS[method](paths)
    seconds = time.perf_counter() - start
    if isinstance(result, tuple):
        result, seconds = result
    queue.put((result, seconds, peak_rss_mb()))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that across exec from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(method: str, paths: list[Path]) -> tuple[int, float, float]:
    queue: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(target=child, args=(method, paths, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=144)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks/.data")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    paths = make_scans(args.data, args.scans)
    pixels = 1000 * 800 * len(paths)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{len(paths)} scans of 1000 x 800 pixels ({pixels / 1e6:.1f} M pixels, {megabytes:.1f} MB compressed) in {args.data}")

    best: dict[str, tuple[int, float, float]] = {}
    for method in METHODS:
        runs = [measure(method, paths) for _ in range(args.repeat)]
        best[method] = min(runs, key=lambda r: r[1])
    limit = best["decode"][1]
    baseline = min(best["mask-first loop"][1], best["mask-first 2 processes"][1])
    print(f"{'method':<26}{'wall s':>8}{'M px/s':>9}{'of decode limit':>17}{'of best baseline':>18}{'peak MB':>9}{'fires':>8}")
    for method, (found, seconds, peak) in best.items():
        shown = "" if found < 0 else str(found)
        print(f"{method:<26}{seconds:>8.2f}{pixels / seconds / 1e6:>9.1f}{limit / seconds:>16.0%}{baseline / seconds:>17.0%}{peak:>9.0f}{shown:>8}")
    print(json.dumps({m: {"seconds": round(s, 3), "mpx_per_s": round(pixels / s / 1e6, 1), "of_decode_limit": round(limit / s, 3),
                          "of_best_baseline": round(baseline / s, 3), "peak_mb": round(p)} for m, (_, s, p) in best.items()}))
    counts = {m: r[0] for m, r in best.items() if r[0] >= 0}
    if len(set(counts.values())) != 1:
        print(f"FAIL: the methods found different numbers of fire pixels: {counts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
