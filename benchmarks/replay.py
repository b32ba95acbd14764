"""Benchmark a season's replay: 639 nights x 1,454 enterprises, electricity only, through ``gridwatch replay``'s code.

    PYTHONPATH=. python benchmarks/replay.py [--nights 639] [--workdir DIR] [--keep] [--profile]

The readings are built (seeded, not timed) by resampling the real series, as
no real data set has all 1,454 enterprises over the whole period: the
Tianchi set behind ``tests/data/power/Tianchi_power_9.csv`` has them, but
only September 2016 is here. Each of the 1,454 real enterprises of that file
keeps its real mean daily use of September 2016 as its level, and takes the
shape of one of the 38 real full series of
``tests/data/power/tianchi_subset_40users.csv`` (2015-01-01 .. 2016-09-30,
divided by that series' median day), so shutdowns, restarts, weekly rhythms
and the Spring Festival are real, at real levels (the largest ~0.8 M kWh/day,
which the old ``max_kw = 20000`` rejected; no day above 1.5 x the
enterprise's real September maximum). Each enterprise has one
transformer at a random point of a random Yangzhong cell of the real grid
``geodata/grid_ncp_5km.parquet``; enterprises whose shape has a shutdown of 14
days or more are registered closed from its first day (the registry is one
file: the first such shutdown). One CSV of daily totals per day, the format
the sample run uses (``interval_minutes = 1440``).

Timed: ``pipelines.run.replay.replay(config, first, last, only="electricity")``
in this process, from an empty output folder: the grid, its index and the
registry are loaded once; the first night rebuilds its state from the
readings (there are none before 2015-01-01); each night writes
``sites.parquet``, ``run.json`` and its state, as ``gridwatch replay --only
electricity`` does. The baseline is the same nights as separate nightly
electricity runs (``nightly_sites`` reading the fleet and the state from
disk each night, then the same writes) on the first ``--baseline-nights``
nights, per night, measured in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.core.settings import load_config  # noqa: E402
from pipelines.grid.attribution import PointIndex  # noqa: E402
from pipelines.power.electricity import nightly_sites, state_folder, store_state  # noqa: E402
from pipelines.run.nightly import load_supervision_grid  # noqa: E402
from pipelines.run.replay import replay  # noqa: E402

SERIES = ROOT / "tests/data/power/tianchi_subset_40users.csv"
MONTH = ROOT / "tests/data/power/Tianchi_power_9.csv"
GRID = ROOT / "geodata/grid_ncp_5km.parquet"
FIRST = dt.date(2015, 1, 1)
SEED = 20150101


def build(folder: Path, nights: int, seed: int = SEED) -> Path:
    """Readings, transformers, registry and a config.toml for the replay; returns the config's path."""
    rng = np.random.default_rng(seed)
    frame = pd.read_csv(SERIES, parse_dates=["record_date"])
    wide = frame.pivot(index="record_date", columns="user_id", values="power_consumption").asfreq("D")
    shapes = wide.to_numpy("float64").T
    shapes = shapes / np.median(shapes, axis=1, keepdims=True).clip(min=1)
    month = pd.read_csv(MONTH)
    level = month.groupby("user_id")["power_consumption"].mean()
    users = level.index.to_numpy()
    pick = rng.integers(0, len(shapes), len(users))
    daily = shapes[pick] * level.to_numpy()[:, None] * rng.lognormal(0, 0.05, (len(users), shapes.shape[1]))
    # A spiky shape on a large level would exceed anything real: no day above 1.5 x the enterprise's real September maximum.
    top = month.groupby("user_id")["power_consumption"].max().reindex(users).to_numpy("float64")
    daily = np.maximum(np.round(np.minimum(daily, 1.5 * top[:, None])), 1)

    # Registry: closed from the first real shutdown (14 off days) of the shape, if any.
    off = shapes <= np.maximum(5 / np.maximum(np.median(wide.to_numpy(), axis=0), 1), 0.05)[:, None]
    first_off = []
    for row in off:
        run, found = 0, None
        for c, v in enumerate(row):
            run = run + 1 if v else 0
            if run == 14:
                found = c - 13
                break
        first_off.append(found)
    closure = [wide.index[first_off[p]].date() if first_off[p] is not None else None for p in pick]
    ids = [f"E{u:04d}" for u in users]
    registry = pd.DataFrame({"enterprise_id": ids, "name": [f"扬中企业{u:04d}" for u in users], "address": "扬中市", "industry": "",
                             "status": ["关停" if c else "正常" for c in closure], "status_date": [c.isoformat() if c else "" for c in closure],
                             "deadline": "", "grade": ""})
    grid = gpd.read_parquet(GRID)
    cells = grid[grid["county_code"] == "321182"].reset_index(drop=True)
    where = cells.geometry.representative_point().iloc[rng.integers(0, len(cells), len(users))]
    transformers = pd.DataFrame({"transformer_id": [f"YZ{u:04d}" for u in users], "enterprise_id": ids,
                                 "lon": where.x.round(6).to_numpy(), "lat": where.y.round(6).to_numpy()})
    (folder / "readings").mkdir(parents=True)
    registry.to_csv(folder / "registry.csv", index=False)
    transformers.to_csv(folder / "transformers.csv", index=False)
    tids = transformers["transformer_id"].to_numpy()
    for i in range(nights):
        day = FIRST + dt.timedelta(days=i)
        pd.DataFrame({"transformer_id": tids, "time": day.isoformat(), "kwh": daily[:, i].astype("int64")}).to_csv(
            folder / "readings" / f"{day}.csv", index=False)
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    config = folder / "config.toml"
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        if line.startswith("[output]"):
            lines.append(line)
            continue
        if key == "dir" and lines and lines[-1].startswith("[output]"):
            line = f'dir = "{folder / "out"}"'
        elif key == "readings":
            line = f'readings = ["{folder}/readings/{{date}}.csv"]'
        elif key in ("transformers", "registry"):
            line = f'{key} = "{folder / (key + ".csv")}"'
        elif key == "warnings":
            line = "# no warnings"
        else:
            line = line.replace('"geodata/', f'"{ROOT}/geodata/')  # the other inputs stay the repository's
        lines.append(line)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=639)
    parser.add_argument("--baseline-nights", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gridwatch-replay-", dir=args.workdir))
    try:
        config_path = build(work, args.nights)
        config = load_config(config_path)
        last = FIRST + dt.timedelta(days=args.nights - 1)
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        result = replay(config, FIRST, last, out_root=work / "out", only="electricity")
        if profile:
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
        # Baseline: separate nightly electricity runs (fleet and state read from disk each night), same writes.
        base_out = work / "separate"
        grid = load_supervision_grid(config)
        index = PointIndex.build(grid.geometry)
        n = min(args.baseline_nights, args.nights)
        start = time.perf_counter()
        for i in range(n):
            day = FIRST + dt.timedelta(days=i)
            power = nightly_sites(config, day, grid, base_out, index)
            (base_out / day.isoformat()).mkdir(parents=True, exist_ok=True)
            power.sites.to_parquet(base_out / day.isoformat() / "sites.parquet", index=False)
            store_state(power.state, state_folder(config, base_out), config.electricity.keep_states)
        separate = (time.perf_counter() - start) / n
        same = all(pd.read_parquet(work / "out" / (FIRST + dt.timedelta(days=i)).isoformat() / "sites.parquet")
                   .drop(columns="geometry").astype(str).equals(
                       pd.read_parquet(base_out / (FIRST + dt.timedelta(days=i)).isoformat() / "sites.parquet").drop(columns="geometry").astype(str))
                   for i in range(n))
        figures = {"nights": args.nights, "enterprises": 1454, "replay_s": round(result.seconds, 1),
                   "replay_ms_per_night": round(1000 * result.seconds / args.nights, 1),
                   "separate_nightly_ms_per_night": round(1000 * separate, 1), "separate_nights_measured": n,
                   "separate_equal_to_replay": same, "sites_last_night": result.sites[-1], "partial_nights": int(sum(c == 3 for c in result.exit_codes))}
        print(json.dumps(figures))
        print(f"replay of {args.nights} nights x 1,454 enterprises, electricity only: {result.seconds:.1f} s "
              f"({figures['replay_ms_per_night']} ms/night); separate nightly electricity runs: {figures['separate_nightly_ms_per_night']} ms/night "
              f"(first {n} nights, which rebuild or read their state); target under 60 s: {'met' if result.seconds < 60 else 'NOT MET'}")
        return 0 if same else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
