"""Benchmark the whole nightly run on heavier days: the sample day at 1x, 10x and 100x its fires.

    /work/main/.venv/bin/python benchmarks/nightly_scale.py [--scales 1,10,100] [--timeout 1800] [--keep DIR]

Every run is the real command, ``python -m pipelines.run.cli nightly --date
2022-06-03 --quiet``, in a subprocess, on the project's config.toml (absolute
paths) and sample data, with no basemap tiles. A day at k x has the sample's
own inputs (3 FIRMS MODIS files, 144 Himawari AHI fire-mask scans: 568 fires
after de-duplication) plus one more FIRMS-format CSV of (k - 1) x 568 fires
drawn with replacement from the 1x run's fires under a fixed seed, each moved
by a Gaussian jitter of 0.05 degree (about 5 km, as benchmarks/maps.py) and
written as a MODIS row with the real fire's UTC time, pixel size, FRP,
confidence and day/night (AHI fires become MODIS rows: the count, the places
and the times are what scale). Their fire ids differ (moved positions), so
nothing is de-duplicated away; fused events and cells with fires grow with
them.

The runs share one output root, run in order: 1x with an empty root
("1x cold": the per-grid cache in ``OUT/state/grid`` is built), then every
scale again with it in place (a normal night). The electricity history is
replayed every run (the sample has no state of the day before), which is
part of every figure.

Measured per run: wall-clock seconds; per-stage seconds from run.json's
``timings_s``; peak resident memory of the run's process (``os.wait4``'s
``ru_maxrss``, that process alone); the size of ``OUT/2022-06-03``. A run
that does not finish within ``--timeout`` is killed and reported as such.

Targets (issue 14): 10x within 4x the 1x time and an output folder under
150 MB; 100x under 15 minutes and 4 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DAY = "2022-06-03"
SEED = 14
JITTER_DEG = 0.05
FIRMS_COLUMNS = ["latitude", "longitude", "brightness", "scan", "track", "acq_date", "acq_time", "satellite", "confidence",
                 "version", "bright_t31", "frp", "daynight"]
STAGES = ["load_grid", "load_sources", "read_fires", "attribute", "windows", "classify", "events", "electricity",
          "write_tables", "report", "plan", "write_maps"]


def write_config(folder: Path, extra_points: Path | None) -> Path:
    """The project's config.toml with absolute paths, no basemap, and the extra fires file if any."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace('"geodata/', f'"{ROOT}/geodata/')
    text = text.replace('tiles = "OpenStreetMap"', 'tiles = ""')
    if extra_points is not None:
        original = f'points = ["{ROOT}/geodata/fires/*.csv"]'
        assert original in text
        text = text.replace(original, f'points = ["{ROOT}/geodata/fires/*.csv", "{extra_points}"]')
    path = folder / ("config.toml" if extra_points is None else f"config-{extra_points.stem}.toml")
    path.write_text(text, encoding="utf-8")
    return path


def extra_fires(real: pd.DataFrame, n: int, path: Path) -> Path:
    """``n`` fires resampled from ``real`` (a fires.parquet), jittered, as a FIRMS MODIS CSV."""
    rng = np.random.default_rng(SEED)
    fires = real.iloc[rng.integers(0, len(real), n)].reset_index(drop=True)
    utc = pd.to_datetime(fires["time_utc"]).dt.tz_convert("UTC")
    level = fires["confidence"].fillna(50).round().astype(int)
    rows = pd.DataFrame({
        "latitude": (fires["lat"] + rng.normal(0, JITTER_DEG, n)).round(5),
        "longitude": (fires["lon"] + rng.normal(0, JITTER_DEG, n)).round(5),
        "brightness": 330.0,
        "scan": fires["scan_km"].fillna(1.0).clip(0.3, 4.8).round(2),
        "track": fires["track_km"].fillna(1.0).clip(0.3, 2.0).round(2),
        "acq_date": utc.dt.strftime("%Y-%m-%d"),
        "acq_time": utc.dt.strftime("%H%M"),
        "satellite": np.where(np.arange(n) % 2, "A", "T"),
        "confidence": level.clip(0, 100),
        "version": "6.1NRT",
        "bright_t31": 300.0,
        "frp": fires["frp_mw"].fillna(10.0).clip(0, None).round(2),
        "daynight": fires["daynight"].fillna("D").astype(str),
    })
    rows[FIRMS_COLUMNS].to_csv(path, index=False)
    return path


def run_cli(config: Path, out: Path, timeout: float) -> dict:
    """One nightly run in a subprocess: wall seconds, exit code, peak RSS (MB) of that process."""
    command = [sys.executable, "-m", "pipelines.run.cli", "nightly", "--date", DAY, "--config", str(config), "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"seconds": time.perf_counter() - start, "code": None, "peak_mb": usage.ru_maxrss / 1024, "timed_out": True}
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return {"seconds": seconds, "code": proc.returncode, "peak_mb": usage.ru_maxrss / 1024, "timed_out": False, "stderr": err[-2000:]}


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,10,100", help="fire multiples of the sample day, comma-separated (1 is always run first)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds after which a run is killed (default 1800)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    scales = sorted({1, *(int(s) for s in args.scales.split(","))})
    work = args.keep or Path(tempfile.mkdtemp(prefix="gridwatch-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    base_config = write_config(work, None)

    results: list[tuple[str, int, dict]] = []

    def run(label: str, scale: int, config: Path) -> dict:
        print(f"running {label} ...", flush=True)
        r = run_cli(config, out, args.timeout)
        manifest_path = out / DAY / "run.json"
        if not r["timed_out"] and r["code"] in (0, 3) and manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            r.update(timings=manifest["timings_s"], fires=manifest["counts"]["fires"], cells=manifest["counts"]["cells_with_fires"],
                     maps=manifest["counts"]["cell_maps"], out_mb=folder_mb(out / DAY))
        elif not r["timed_out"]:
            print(f"  failed (exit {r['code']}): {r.get('stderr', '')}", file=sys.stderr)
        results.append((label, scale, r))
        return r

    first = run("1x cold", 1, base_config)
    if first.get("fires") is None:
        return 1
    real = pd.read_parquet(out / DAY / "fires.parquet")
    n_real = len(real)
    for scale in scales:
        config = base_config if scale == 1 else write_config(work, extra_fires(real, (scale - 1) * n_real, work / f"extra-{scale}x.csv"))
        run(f"{scale}x", scale, config)

    print(f"\nnightly run of {DAY}, sample day = {n_real} fires; work folder {work}")
    header = f"{'run':<9}{'fires':>8}{'cells':>7}{'maps':>6}{'wall s':>9}{'peak MB':>9}{'out MB':>8}  " + " ".join(f"{s[:9]:>9}" for s in STAGES)
    print(header)
    for label, _, r in results:
        if r.get("timings") is None:
            state = f"killed after {r['seconds']:.0f} s (timeout)" if r["timed_out"] else f"failed, exit {r['code']}"
            print(f"{label:<9}{'':>8}{'':>7}{'':>6}{r['seconds']:>9.1f}{r['peak_mb']:>9.0f}{'':>8}  {state}")
            continue
        stages = " ".join(f"{r['timings'].get(s, 0.0):>9.1f}" for s in STAGES)
        print(f"{label:<9}{r['fires']:>8}{r['cells']:>7}{r['maps']:>6}{r['seconds']:>9.1f}{r['peak_mb']:>9.0f}{r['out_mb']:>8.1f}  {stages}")
    by_label = {label: r for label, _, r in results}
    one = by_label.get("1x", {}).get("seconds")
    checks = []
    if one and "10x" in by_label:
        r = by_label["10x"]
        ok = r.get("timings") is not None and r["seconds"] <= 4 * one and r["out_mb"] < 150
        checks.append(f"10x: {r['seconds']:.0f} s = {r['seconds'] / one:.1f}x the 1x run (aim <= 4x), "
                      f"output {r.get('out_mb', float('nan')):.0f} MB (aim < 150): {'met' if ok else 'NOT met'}")
    if "100x" in by_label:
        r = by_label["100x"]
        ok = r.get("timings") is not None and r["seconds"] < 900 and r["peak_mb"] < 4096
        checks.append(f"100x: {r['seconds']:.0f} s (aim < 900), peak {r['peak_mb']:.0f} MB (aim < 4096): {'met' if ok else 'NOT met'}")
    for line in checks:
        print(line)
    print(json.dumps([{"run": label, **{k: v for k, v in r.items() if k != "stderr"}} for label, _, r in results], default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
