"""Benchmark reading fires on dask.distributed against local threads, in one run.

    /work/main/.venv/bin/python benchmarks/cluster.py [--nights 6] [--repeat 2]

Two workloads:

* a day: the sample day's inputs in geodata/ (3 FIRMS files and 144 real-layout
  Himawari AHI fire-mask scans), read as the nightly run reads them
  (``read_fires(...) + read_raster_fires(...)``, one ``compute``);
* many nights: the 144 generated 1000 x 800 scans of benchmarks/rasters.py
  (made there, in benchmarks/.data/) read as ``--nights`` separate nights
  (each night's scans are the same files under another folder name, so each is
  its own graph; the files stay in the page cache: decoding is what is
  measured), all in one ``compute``.

Schedulers, each measured in the same run (best of ``--repeat``):

* threads: dask's local threads (the nightly default), the baseline;
* cluster, 1 / 2 workers: a ``distributed.LocalCluster`` of single-threaded
  worker processes (start-up and the workers' first imports not timed),
  with the worker environment gridwatch's README recommends
  (``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_`` raised);
* cluster, 2 workers, distributed's default environment: its nanny sets
  ``MALLOC_TRIM_THRESHOLD_=65536``, which makes glibc give back and fault in
  every large numpy buffer again (about 2x slower numpy in the workers);
* cluster, 2 workers, per-block graph: the day's rasters as
  ``extract_fires(open_scans(...))`` builds them, one read, three takes and
  one extraction per block of every scan (the graph before this change,
  1,158 tasks for the sample day), recommended environment.

Each cluster runs in its own process (the nanny's environment leaks into the
process that starts it). Aim (issue 14): a day on a local 2-worker cluster no
slower than 1.3x threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2022, 6, 3)
BBOX = (110.0, 28.0, 123.0, 43.0)
RECOMMENDED_ENV = {"MALLOC_TRIM_THRESHOLD_": 134217728, "MALLOC_MMAP_THRESHOLD_": 33554432}


def day_parts(per_block: bool = False) -> list:
    from pipelines.fires.load import read_fires
    from pipelines.fires.rasters import extract_fires, read_raster_fires
    from pipelines.fires.readers.rasters import detect_raster, open_scans

    points = sorted((ROOT / "geodata/fires").glob("*.csv"))
    scans = sorted((ROOT / "geodata/fires/ahi").glob("*.nc"))
    filters = {"bbox": BBOX, "day": DAY, "min_confidence": 0.0}
    lazy = read_fires(points, **filters)
    if per_block:
        ds, _ = open_scans(scans, detect_raster(scans[0]))
        return (lazy + extract_fires(ds, cloud_window=5, **filters)).parts
    return (lazy + read_raster_fires(scans, cloud_window=5, **filters)).parts


def nights_parts(folders: list[Path]) -> list:
    from pipelines.fires.rasters import read_raster_fires

    parts = []
    for folder in folders:
        parts += read_raster_fires(sorted(folder.glob("H08_*.nc")), cloud_window=5).parts
    return parts


def count(results: tuple) -> int:
    return sum(len(r[0]) for r in results[0])


def timed(make, scheduler, repeat: int) -> tuple[float, int, int]:
    import dask

    best, found, tasks = float("inf"), -1, 0
    for _ in range(repeat):
        start = time.perf_counter()
        parts = make()
        tasks = len(dask.base.collections_to_expr(parts).__dask_graph__())
        results = dask.compute(parts, scheduler=scheduler)
        best = min(best, time.perf_counter() - start)
        found = count(results)
    return best, found, tasks


def child(kind: str, workers: int, env: dict | None, folders: list[Path], repeat: int, queue: multiprocessing.Queue) -> None:
    import dask

    import pipelines.fires.rasters  # noqa: F401 - imports are not what is measured

    makers = {"day": day_parts, "day per-block": lambda: day_parts(per_block=True), "nights": lambda: nights_parts(folders)}
    if workers == 0:
        queue.put(timed(makers[kind], "threads", repeat))
        return
    from distributed import Client, LocalCluster

    config = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in (env or {}).items()}
    with dask.config.set(config), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("pipelines.fires.rasters"))  # workers up, modules imported
        queue.put(timed(makers[kind], client, repeat))


def measure(kind: str, workers: int, env: dict | None, folders: list[Path], repeat: int) -> tuple[float, int, int]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(kind, workers, env, folders, repeat, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks/.data")
    args = parser.parse_args(argv)
    scans = sorted(args.data.glob("H08_*_FIRE_MASK_R02.nc"))
    if len(scans) != 144:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from rasters import make_scans

        scans = make_scans(args.data, 144)
    work = Path(tempfile.mkdtemp(prefix="gridwatch-nights-"))
    folders = []
    for night in range(args.nights):
        folder = work / f"night{night:02d}"
        folder.mkdir()
        for scan in scans:
            (folder / scan.name).symlink_to(scan)
        folders.append(folder)

    rows = []
    plans = [
        ("day", "threads", 0, None), ("day", "cluster 1 worker", 1, RECOMMENDED_ENV), ("day", "cluster 2 workers", 2, RECOMMENDED_ENV),
        ("day", "cluster 2 workers, default env", 2, {}), ("day per-block", "cluster 2 workers, per-block graph", 2, RECOMMENDED_ENV),
        ("nights", "threads", 0, None), ("nights", "cluster 1 worker", 1, RECOMMENDED_ENV), ("nights", "cluster 2 workers", 2, RECOMMENDED_ENV),
        ("nights", "cluster 2 workers, default env", 2, {}),
    ]
    for kind, label, workers, env in plans:
        print(f"{kind}: {label} ...", flush=True)
        seconds, found, tasks = measure(kind, workers, env, folders, args.repeat)
        rows.append({"workload": "day" if kind.startswith("day") else f"{args.nights} nights", "scheduler": label, "seconds": round(seconds, 2),
                     "tasks": tasks, "fires": found})
    base = {r["workload"]: r["seconds"] for r in rows if r["scheduler"] == "threads"}
    print(f"\n{'workload':<10}{'scheduler':<36}{'tasks':>7}{'wall s':>8}{'x threads':>10}{'fires':>8}")
    for r in rows:
        r["x_threads"] = round(r["seconds"] / base[r["workload"]], 2)
        print(f"{r['workload']:<10}{r['scheduler']:<36}{r['tasks']:>7}{r['seconds']:>8.2f}{r['x_threads']:>10.2f}{r['fires']:>8}")
    print(json.dumps(rows))
    fires = {r["workload"]: set() for r in rows}
    for r in rows:
        fires[r["workload"]].add(r["fires"])
    if any(len(v) != 1 for v in fires.values()):
        print(f"FAIL: schedulers found different numbers of fire pixels: {fires}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
