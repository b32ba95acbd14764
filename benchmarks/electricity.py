"""Benchmark the nightly electricity increment against a DuckDB recompute of 90 days of Parquet readings (and pandas).

    /work/venv/bin/python benchmarks/electricity.py [--transformers 300000] [--naive-transformers 3000]
        [--workdir DIR] [--keep] [--seed N]
    /work/venv/bin/python benchmarks/electricity.py --quick     # 2,000 and 500: a smoke test, well under a minute

Generated (seeded, not timed) into a fresh directory under ``--workdir``
(default: the system's temporary directory; removed at the end unless
``--keep``; never inside the repository):

- a fleet of N dedicated transformers (``--transformers``, default 300,000):
  2% of no registered enterprise, the rest of about N / 1.2 registered
  enterprises (85% with one transformer, 10% two, 5% three), at random points
  inside random cells of the real grid ``geodata/grid_ncp_5km.parquet``
  (registered enterprises in 80% of the cells, "industrial" ones; the
  unregistered transformers anywhere). Ids look like the grid company's:
  city code + serial, e.g. "1301000123";
- daily kWh over the 90-day ring plus the benchmark day (2016-12-16, a
  Friday): resampled real data. Each enterprise takes a 91-day window of one
  of the 38 real series of ``tests/data/power/tianchi_subset_40users.csv``
  (2015-01-01 .. 2016-09-30; the window ends on a Friday so the weekly rhythm
  lines up with the benchmark's calendar), divided by that series' median day
  of use; each transformer a level drawn from the real mean daily use of the
  1,454 enterprises of ``Tianchi_power_9.csv`` (capped at 20 MWh/day), a
  lognormal jitter of that level (sigma 0.25) and multiplicative daily noise
  (sigma 0.1);
- 15-minute readings: synthetic, as no real 15-minute data exists here. Each
  transformer spreads each day's total over the 96 intervals with its own
  noisy profile (sigma 0.2 per interval): 60% a working-hours shape (08-18),
  the rest flat. The day's readings are end-labelled, tz-aware (Beijing)
  timestamps in Parquet, a handful of files of row groups of 1.44 M rows, in
  shuffled transformer order; 0.3% of the transformers have no reading that
  day, 1% lack 1-6 intervals (scaled up), 0.2% lack 20 (too incomplete);
- planted cases: 3% of the enterprises closed 25-80 days before the day
  (use falls to a standby floor), a quarter of them restarting 4 days before
  it (resurgence); 10% of the operating enterprises on the emergency
  reduction list with grades B, C, D, and one orange warning over Beijing,
  Tianjin and Hebei covering the whole day, which 85% of those obey
  (noncompliance); the unregistered transformers (unregistered load); and
  whatever stops in the real series (stopped);
- the inputs as a nightly run reads them: registry, transformer table and
  warning list as CSV, the day's readings, and the state at the end of the day
  before (``PowerState.write``), built from the generated daily totals and
  profile shares with the post-closure floors learnt, which is what the
  nightly runs before would have stored.

Timed, each in a fresh process (its peak memory, VmHWM, is its own; the grid
and its ``PointIndex`` are loaded first and not timed, as a nightly run has
them already for the fire attribution):

- increment: what ``pipelines.power.electricity.nightly_sites`` does for one
  day: the fleet (``read_registry``, ``read_transformers``, ``read_warnings``
  from CSV, ``locate_fleet``), ``PowerState.read``, ``read_readings`` +
  ``day_use`` (dask threaded scheduler, 2 workers), ``advance``,
  ``find_sites``, ``PowerState.write``. Readings/s = the day's readings /
  total wall time.
- duckdb: the same fleet, then the recompute a data engineer would write:
  one DuckDB query (2 threads) over the 90 days of Parquet readings of all N
  transformers (the 89 days before are generated too, without gaps), grouped
  by transformer, Beijing day and working hours with the same coverage rule
  as ``day_use``, pivoted to the daily matrix, a ``PowerState`` built from it
  and the same ``find_sites``. Measured at N in the same run, not
  extrapolated. It does no validation (duplicates, conflicts, implausible
  readings), in its favour. DuckDB is in the ``bench`` extra
  (``pip install -e .[bench]``).
- naive: a plain pandas recompute of the same 90 days (``groupby`` on one
  long frame), on a subset of M transformers only (``--naive-transformers``,
  whole enterprises plus 2% unregistered): 90 days of N = 300,000 are 2.6
  billion rows, beyond pandas on this machine. Its speed-up is against the
  increment on the same subset.

Exits 1 if the increment and the DuckDB recompute disagree at N, or the increment and the naive recompute on the subset
(the day's kWh and working-hours share, within float32 tolerance, or the
site ids), or if the increment's day totals at N differ from the generated
ones where the day is complete.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.schema import BEIJING_TZ, WGS84
from pipelines.grid.attribution import PointIndex
from pipelines.power.meters import MeterLimits
from pipelines.power.readers import ReadingFormat
from pipelines.power.sites import Fleet, SiteRules, closure_days, learn_floors, locate_fleet
from pipelines.power.state import PowerState, state_path

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "geodata/grid_ncp_5km.parquet"
DAILY_SERIES = ROOT / "tests/data/power/tianchi_subset_40users.csv"
MONTH_SERIES = ROOT / "tests/data/power/Tianchi_power_9.csv"

SEED = 20161216
DAY = dt.date(2016, 12, 16)  # a Friday in the heating season; the ring is 2016-09-18 .. 2016-12-16
HISTORY_DAYS = 90  # the ring of the state (pipelines default history_days)
SLOTS = 96
MINUTES = 15

UNREGISTERED = 0.02  # share of transformers of no registered enterprise
INDUSTRIAL_CELLS = 0.8  # share of cells where registered enterprises are
WORKING_PROFILE = 0.6  # share of transformers with a working-hours day
CLOSED, RESTARTED = 0.03, 0.25  # enterprises closed; of those, restarting before the day
LISTED, GRADE_P = 0.10, {"B": 0.4, "C": 0.4, "D": 0.2}  # emergency list of operating enterprises
DISOBEYING = 0.15  # of listed enterprises under the warning
WARNED = ("11", "12", "13")  # province code prefixes under the orange warning
MAX_LEVEL = 20_000.0  # kWh/day: cap on a transformer's level (a 20 MWh/day dedicated transformer is already large)
# kWh per interval no generated reading exceeds: half of day_use's implausibility limit (max_kw = 20,000 kW),
# so the naive recompute (which does not check) and day_use see the same readings.
SLOT_CAP = 0.5 * MeterLimits().max_kw * MINUTES / 60
ROW_GROUP = 15_000 * SLOTS  # 1.44 M rows
FILE_ROWS = 8_000_000  # about this many rows per readings file

STEPS = ("fleet", "state read", "readings + day_use", "advance", "find_sites", "state write")
NAIVE_STEPS = ("fleet", "read 90 days", "groupby + pivot", "find_sites")
RTOL = 1e-5  # float32 sums of 96 values in another order


# ----------------------------------------------------------------------------- generation (not timed)


@dataclass
class World:
    """The generated fleet, fleet order. ``daily`` is what each meter used; ``missing`` what the day's readings lack."""

    ids: np.ndarray  # transformer ids (str)
    enterprise: np.ndarray  # enterprise id per transformer, "" = none registered
    lon: np.ndarray
    lat: np.ndarray
    registry: pd.DataFrame  # as readers.power.read_registry returns it
    daily: np.ndarray  # float32 (N, HISTORY_DAYS + 1) kWh, last column = DAY
    profile: np.ndarray  # float32 (N, SLOTS): share of a day's kWh in each interval, rows sum to 1
    missing: np.ndarray  # bool (N, SLOTS): intervals of DAY without a reading
    planted: dict[str, int]

    @property
    def work_share(self) -> np.ndarray:
        """Share of each transformer's day in working hours, as ``day_use`` computes it from complete readings."""
        return self.profile[:, work_slots()].sum(axis=1, dtype="float64").astype("float32")


def work_slots(limits: MeterLimits | None = None) -> np.ndarray:
    """Intervals (by start, Beijing clock) in ``day_use``'s working hours."""
    limits = limits or MeterLimits()
    hours = np.arange(SLOTS) * MINUTES / 60  # interval start, Beijing clock
    return (hours >= limits.work_hours[0]) & (hours < limits.work_hours[1])


def real_shapes() -> tuple[np.ndarray, pd.DatetimeIndex]:
    """The 38 real daily series (series x days), each divided by its median day of use (1 kWh = none, kept)."""
    frame = pd.read_csv(DAILY_SERIES, parse_dates=["record_date"])
    wide = frame.pivot(index="record_date", columns="user_id", values="power_consumption").asfreq("D")
    values = wide.to_numpy("float64").T
    median = np.nanmedian(np.where(values > 1, values, np.nan), axis=1)
    return (values / median[:, None]).astype("float32"), wide.index


def real_levels() -> np.ndarray:
    """Mean daily kWh of the real enterprises that used power in September 2016, capped at ``MAX_LEVEL``."""
    frame = pd.read_csv(MONTH_SERIES)
    means = frame.groupby("user_id")["power_consumption"].mean().to_numpy("float64")
    return np.minimum(means[means > 1], MAX_LEVEL)


def points_in_cells(grid: gpd.GeoDataFrame, index: PointIndex, cells: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniform random point inside each cell: drawn in its bounds until inside, else its representative point."""
    bounds = grid.geometry.bounds.to_numpy()[cells]
    lon, lat = np.empty(len(cells)), np.empty(len(cells))
    todo = np.arange(len(cells))
    for _ in range(20):
        if not len(todo):
            break
        b = bounds[todo]
        x, y = rng.uniform(b[:, 0], b[:, 2]), rng.uniform(b[:, 1], b[:, 3])
        ok = index.locate(x, y) == cells[todo]
        lon[todo[ok]], lat[todo[ok]] = x[ok], y[ok]
        todo = todo[~ok]
    if len(todo):
        inside = grid.geometry.representative_point().to_numpy()[cells[todo]]
        lon[todo], lat[todo] = [p.x for p in inside], [p.y for p in inside]
    return lon, lat


def generate(n: int, seed: int, grid: gpd.GeoDataFrame, index: PointIndex) -> World:
    """The benchmark's fleet and its use (see the module docstring)."""
    rng = np.random.default_rng(seed)
    shapes, real_dates = real_shapes()
    levels = real_levels()
    width = HISTORY_DAYS + 1

    # Enterprises and their transformers; each unregistered transformer is a "unit" of its own.
    n_unreg = round(n * UNREGISTERED)
    n_reg = n - n_unreg
    sizes = rng.choice([1, 2, 3], size=max(n_reg, 1), p=[0.85, 0.10, 0.05])
    last = int(np.searchsorted(np.cumsum(sizes), n_reg))
    sizes = sizes[: last + 1]
    sizes[-1] -= sizes.sum() - n_reg
    sizes = sizes[sizes > 0]
    e = len(sizes)
    unit = rng.permutation(np.r_[np.repeat(np.arange(e), sizes), e + np.arange(n_unreg)])  # fleet order
    registered = unit < e

    industrial = np.flatnonzero(rng.random(len(grid)) < INDUSTRIAL_CELLS)
    unit_cell = np.r_[rng.choice(industrial, e), rng.integers(0, len(grid), n_unreg)]
    county = grid["county_code"].astype(str).to_numpy()
    lon, lat = points_in_cells(grid, index, unit_cell[unit], rng)
    city = pd.Series(county[unit_cell[unit]]).str[:4]
    ids = (city + city.groupby(city).cumcount().astype(str).str.zfill(6)).to_numpy(object)

    # Daily kWh: a real window per unit, a real level per transformer, daily noise.
    ends = np.flatnonzero((np.arange(len(real_dates)) >= HISTORY_DAYS) & (real_dates.day_of_week == DAY.weekday()))
    series = rng.integers(0, len(shapes), e + n_unreg)
    end = rng.choice(ends, e + n_unreg)
    shape = shapes[series[:, None], end[:, None] - HISTORY_DAYS + np.arange(width)]
    level = (rng.choice(levels, n) * rng.lognormal(0, 0.25, n)).astype("float32")
    daily = shape[unit] * level[:, None] * rng.lognormal(0, 0.1, (n, width)).astype("float32")

    working = rng.random(n) < WORKING_PROFILE

    # Closures: winding down for 2 days, then a standby floor; a quarter restart 4 days before the day.
    closed_e = rng.random(e) < CLOSED
    closure_col = width - 1 - rng.integers(25, 81, e)
    restart_e = closed_e & (rng.random(e) < RESTARTED)
    rows = np.flatnonzero(registered & closed_e[np.minimum(unit, e - 1)])
    c = closure_col[unit[rows]][:, None]
    col = np.arange(width)[None, :]
    floor = level[rows, None] * rng.uniform(0.003, 0.03, (len(rows), 1)) * rng.lognormal(0, 0.3, (len(rows), width))
    block = daily[rows]
    block = np.where((col >= c) & (col < c + 2), block * 0.4, np.where(col >= c + 2, floor, block))
    back = restart_e[unit[rows]]
    block[back, -4:] = level[rows[back], None] * rng.uniform(0.6, 1.0, (back.sum(), 1)) * rng.lognormal(0, 0.1, (back.sum(), 4))
    daily[rows] = block
    working[rows[back]] = True  # a restarted workshop works by day

    # The emergency list; under the warning most cut as required on the day, some do not.
    listed_e = ~closed_e & (rng.random(e) < LISTED)
    grade_e = np.where(listed_e, rng.choice(list(GRADE_P), e, p=list(GRADE_P.values())), "")
    warned_e = np.isin(pd.Series(county[unit_cell[:e]]).str[:2].to_numpy(), WARNED) & listed_e
    disobey_e = warned_e & (rng.random(e) < DISOBEYING)
    cut = np.array([SiteRules().reduction.required("orange", g) for g in grade_e])
    factor = np.where(disobey_e, 1 - rng.uniform(0, 1, e) * cut / 3, 1 - cut - rng.uniform(0.05, 0.2, e))
    on_list = np.flatnonzero(registered & warned_e[np.minimum(unit, e - 1)])
    daily[on_list, -1] *= factor[unit[on_list]].astype("float32")

    # Intraday profiles (synthetic): working hours or flat, with per-interval noise.
    base = np.where(work_slots(), 1.0, 0.2)
    hours = np.arange(SLOTS) * MINUTES / 60
    base[((hours >= 7) & (hours < 8)) | ((hours >= 18) & (hours < 19))] = 0.6
    profile = np.where(working[:, None], base.astype("float32"), np.float32(1)) * rng.lognormal(0, 0.2, (n, SLOTS)).astype("float32")
    profile /= profile.sum(axis=1, keepdims=True)
    daily = np.minimum(daily, (SLOT_CAP / profile.max(axis=1))[:, None]).astype("float32")

    # Gaps in the day's readings.
    r = rng.random(n)
    missing = np.zeros((n, SLOTS), bool)
    missing[r < 0.003] = True
    for lo, hi, k in ((0.003, 0.013, None), (0.013, 0.015, 20)):
        rows = np.flatnonzero((r >= lo) & (r < hi))
        count = rng.integers(1, 7, len(rows)) if k is None else np.full(len(rows), k)
        order = np.argsort(rng.random((len(rows), SLOTS)), axis=1)
        missing[rows] = np.argsort(order, axis=1) < count[:, None]

    enterprise_ids = np.array([f"E{i:07d}" for i in range(e)], dtype=object)
    status_date = [DAY - dt.timedelta(days=int(width - 1 - closure_col[i])) if closed_e[i] else None for i in range(e)]
    names = grid["county_name"].astype(str).to_numpy()[unit_cell[:e]]
    industries = np.array(["化工", "建材", "铸造", "家具", "印染", "塑料", "金属加工"], dtype=object)
    registry = pd.DataFrame({
        "enterprise_id": pd.array(enterprise_ids, dtype="string"),
        "name": pd.array([f"企业{i:07d}" for i in range(e)], dtype="string"),
        "address": pd.array([f"{names[i]}工业园{i % 97 + 1}号" for i in range(e)], dtype="string"),
        "industry": pd.array(industries[rng.integers(0, len(industries), e)], dtype="string"),
        "status": pd.array(np.where(closed_e, "closed", "operating"), dtype="string"),
        "status_date": pd.Series(status_date, dtype=object),
        "deadline": pd.Series([None] * e, dtype=object),
        "grade": pd.array(grade_e, dtype="string"),
        "source_row": np.arange(2, e + 2),
    })
    enterprise = np.where(registered, enterprise_ids[np.minimum(unit, e - 1)], "").astype(object)
    planted = {
        "closed enterprises": int(closed_e.sum()), "restarted transformers": int(back.sum()),
        "listed enterprises under the warning": int(warned_e.sum()), "disobeying": int(disobey_e.sum()),
        "unregistered transformers": n_unreg,
    }
    return World(ids, enterprise, lon, lat, registry, daily, profile, missing, planted)


def transformer_frame(world: World, rows: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "transformer_id": world.ids[rows], "enterprise_id": world.enterprise[rows], "lon": world.lon[rows], "lat": world.lat[rows],
    }, geometry=gpd.points_from_xy(world.lon[rows], world.lat[rows]), crs=WGS84)


def warnings_frame() -> pd.DataFrame:
    """One orange warning from the evening before the day to two days after it, over ``WARNED``."""
    start = pd.Timestamp(DAY - dt.timedelta(days=1)).tz_localize(BEIJING_TZ) + pd.Timedelta(hours=20)
    end = pd.Timestamp(DAY + dt.timedelta(days=3)).tz_localize(BEIJING_TZ)
    return pd.DataFrame({"warning_id": ["W-2016-12-15-1"], "level": ["orange"], "start": [start.strftime("%Y-%m-%d %H:%M")],
                         "end": [(end - pd.Timedelta(days=1)).strftime("%Y-%m-%d") + " 24:00"], "region": [";".join(WARNED)]})


def stored_state(world: World, grid: gpd.GeoDataFrame, index: PointIndex) -> PowerState:
    """The state at the end of the day before, as the nightly runs before would have stored it."""
    ids = pd.Index(world.ids, dtype=object)
    history = world.daily[:, :HISTORY_DAYS]
    share = np.where(np.isfinite(history), world.work_share[:, None], np.nan).astype("float32")
    before = DAY - dt.timedelta(days=1)
    state = PowerState(ids, before, history.copy(), share, np.full(len(ids), np.nan),
                       np.full(len(ids), np.nan, "float32"), np.zeros(len(ids), "int32"))
    fleet = locate_fleet(transformer_frame(world, np.arange(len(ids))), world.registry, grid, index)
    return learn_floors(state, closure_days(fleet, before), SiteRules().resurgence)


def readings_table(world: World, rows: np.ndarray, column: int, day: dt.date, with_gaps: bool) -> pa.Table:
    """The 15-minute readings of ``rows`` (in that order) on ``day`` (``column`` of ``daily``), end-labelled."""
    kwh = (world.daily[rows, column][:, None] * world.profile[rows]).astype("float32")
    keep = np.isfinite(kwh) & ~world.missing[rows] if with_gaps else np.isfinite(kwh)
    which, slot = np.nonzero(keep)
    start = np.datetime64(pd.Timestamp(day).tz_localize(BEIJING_TZ).tz_convert("UTC").tz_localize(None), "ms")
    times = start + ((slot + 1) * MINUTES).astype("timedelta64[m]")
    ids = pa.DictionaryArray.from_arrays(pa.array(which.astype("int32")), pa.array(world.ids[rows].tolist(), pa.string()))
    return pa.table({
        "transformer_id": ids.cast(pa.string()),  # plain strings, as an export has them
        "time": pa.array(times.astype("datetime64[ms]"), pa.timestamp("ms", tz=BEIJING_TZ)),
        "kwh": pa.array(kwh[which, slot]),
    })


def write_inputs(folder: Path, world: World, rows: np.ndarray, state: PowerState, rng: np.random.Generator,
                 history: bool) -> int:
    """Registry, transformers, warnings (CSV), the state of the day before and the day's readings of ``rows``.

    With ``history``, also one Parquet file of readings for each of the 89 days before (for the naive
    recompute). Returns the number of readings of the day.
    """
    folder.mkdir(parents=True)
    registry = world.registry[world.registry["enterprise_id"].isin(set(world.enterprise[rows]))]
    registry.drop(columns="source_row").to_csv(folder / "registry.csv", index=False)
    frame = transformer_frame(world, rows)
    pd.DataFrame(frame.drop(columns="geometry")).to_csv(folder / "transformers.csv", index=False)
    warnings_frame().to_csv(folder / "warnings.csv", index=False)
    state.reindex(pd.Index(world.ids[rows], dtype=object)).write(state_path(folder / "state", state.end))

    day_dir = folder / "readings" / DAY.isoformat()
    day_dir.mkdir(parents=True)
    order = rows[rng.permutation(len(rows))]  # the collection system's order is not the fleet's
    files = max(1, math.ceil(len(rows) * SLOTS / FILE_ROWS))
    total = 0
    for i, part in enumerate(np.array_split(order, files)):
        table = readings_table(world, part, HISTORY_DAYS, DAY, with_gaps=True)
        pq.write_table(table, day_dir / f"readings-{i:02d}.parquet", row_group_size=ROW_GROUP)
        total += table.num_rows
    if history:
        (folder / "history").mkdir()
        for column in range(1, HISTORY_DAYS):
            day = DAY - dt.timedelta(days=HISTORY_DAYS - column)
            pq.write_table(readings_table(world, order, column, day, with_gaps=False), folder / "history" / f"{day.isoformat()}.parquet",
                           row_group_size=ROW_GROUP)
    return total


def subset_rows(world: World, m: int, rng: np.random.Generator) -> np.ndarray:
    """About ``m`` transformers: whole random enterprises, plus the same share of unregistered ones (fleet order)."""
    if m >= len(world.ids):
        return np.arange(len(world.ids))
    registered = world.enterprise != ""
    codes, uniques = pd.factorize(world.enterprise[registered])
    counts = np.bincount(codes, minlength=len(uniques))
    order = rng.permutation(len(uniques))
    want = m - round(m * UNREGISTERED)
    chosen = order[: int(np.searchsorted(np.cumsum(counts[order]), want)) + 1]
    rows = np.flatnonzero(registered)[np.isin(codes, chosen)]
    loose = rng.permutation(np.flatnonzero(~registered))[: round(m * UNREGISTERED)]
    return np.sort(np.r_[rows, loose])


# ----------------------------------------------------------------------------- timed runs (child processes)


@contextmanager
def timed(steps: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    steps[name] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that across exec from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_fleet(folder: Path, grid: gpd.GeoDataFrame, index: PointIndex) -> tuple[Fleet, pd.DataFrame]:
    """The fleet and warnings as ``pipelines.power.electricity.load_fleet`` reads them (CSV, located in the grid)."""
    from pipelines.power.readers import read_registry, read_transformers, read_warnings

    registry, _ = read_registry(folder / "registry.csv")
    transformers, _ = read_transformers(folder / "transformers.csv")
    warnings, _ = read_warnings(folder / "warnings.csv")
    return locate_fleet(transformers, registry, grid, index), warnings


def timed_fleet(folder: Path, steps: dict[str, float]) -> tuple[Fleet, pd.DataFrame, pd.Index]:
    """The fleet, warnings and transformer ids, timed as "fleet" (the grid and its index are not: a nightly run has them)."""
    grid = gpd.read_parquet(GRID)
    index = PointIndex.build(grid.geometry)
    with timed(steps, "fleet"):
        fleet, warnings = load_fleet(folder, grid, index)
        ids = pd.Index(fleet.transformers["transformer_id"], dtype=object)
    return fleet, warnings, ids


def run_increment(folder: Path) -> dict:
    """One nightly increment on ``folder``: step times, and the day's use and sites for the checks."""
    import dask

    from pipelines.power.meters import day_use
    from pipelines.power.readers import read_readings
    from pipelines.power.sites import find_sites

    fmt = ReadingFormat()
    steps: dict[str, float] = {}
    fleet, warnings, ids = timed_fleet(folder, steps)
    with timed(steps, "state read"):
        state = PowerState.read(state_path(folder / "state", DAY - dt.timedelta(days=1))).reindex(ids).resized(HISTORY_DAYS)
    with timed(steps, "readings + day_use"):
        files = sorted((folder / "readings" / DAY.isoformat()).glob("*.parquet"))
        with dask.config.set(scheduler="threads", num_workers=2):
            use = day_use(read_readings(files, fmt), ids, DAY, fmt, previous_register=state.register_before(DAY))
    with timed(steps, "advance"):
        state = state.advance(use)
    with timed(steps, "find_sites"):
        sites, state = find_sites(state, fleet, warnings)
    with timed(steps, "state write"):
        state.write(state_path(folder / "state", DAY))
    return {"steps": steps, "peak_mb": peak_rss_mb(), "ids": ids.to_numpy(), "kwh": use.kwh, "share": use.work_share,
            "sites": sites["site_id"].astype(str).tolist(), "rules": sites["rule"].astype(str).tolist(), "readings": use.counts.get("rows", 0)}


def run_naive(folder: Path) -> dict:
    """The naive recompute on ``folder``: 90 days of readings -> daily matrix -> the same rules."""
    from pipelines.power.sites import find_sites

    limits = MeterLimits()
    steps: dict[str, float] = {}
    fleet, warnings, ids = timed_fleet(folder, steps)
    with timed(steps, "read 90 days"):
        files = sorted((folder / "history").glob("*.parquet")) + sorted((folder / "readings" / DAY.isoformat()).glob("*.parquet"))
        long = pd.concat([pd.read_parquet(p, columns=["transformer_id", "time", "kwh"]) for p in files], ignore_index=True)
    with timed(steps, "groupby + pivot"):
        daily, share = naive_daily(long, ids, limits)
        rows = len(long)
        del long
        state = PowerState(ids, DAY, daily, share, np.full(len(ids), np.nan), np.full(len(ids), np.nan, "float32"),
                           np.zeros(len(ids), "int32"))
    with timed(steps, "find_sites"):
        sites, _ = find_sites(state, fleet, warnings)
    return {"steps": steps, "peak_mb": peak_rss_mb(), "ids": ids.to_numpy(), "kwh": daily[:, -1], "share": share[:, -1],
            "sites": sites["site_id"].astype(str).tolist(), "rules": sites["rule"].astype(str).tolist(), "readings": rows}


def naive_daily(long: pd.DataFrame, ids: pd.Index, limits: MeterLimits) -> tuple[np.ndarray, np.ndarray]:
    """(daily kWh, working-hours share), transformers x the ring's days, with ``day_use``'s coverage rule."""
    start = long["time"].dt.tz_convert(BEIJING_TZ) - pd.Timedelta(minutes=MINUTES)  # stamps mark the interval's end
    hour = start.dt.hour
    keys = pd.DataFrame({
        "transformer_id": long["transformer_id"],
        "date": start.dt.tz_localize(None).dt.normalize(),
        "work": (hour >= limits.work_hours[0]) & (hour < limits.work_hours[1]),
        "kwh": long["kwh"].astype("float64"),
    })
    g = keys.groupby(["transformer_id", "date", "work"])["kwh"].agg(["sum", "count"]).unstack("work", fill_value=0)
    g = g.reindex(columns=pd.MultiIndex.from_product([["sum", "count"], [False, True]]), fill_value=0)
    s_off, s_work = g[("sum", False)].to_numpy(), g[("sum", True)].to_numpy()
    n_off, n_work = g[("count", False)].to_numpy(), g[("count", True)].to_numpy()
    kwh, share = recompute_day(s_work, n_work, s_off, n_off, limits)
    dates = pd.date_range(end=pd.Timestamp(DAY), periods=HISTORY_DAYS, freq="D")
    frame = pd.DataFrame({"kwh": kwh, "share": share}, index=g.index)

    def matrix(column: str) -> np.ndarray:
        wide = frame[column].unstack("date")
        wide.index = wide.index.astype(object)
        return wide.reindex(index=ids, columns=dates).to_numpy("float32")

    return matrix("kwh"), matrix("share")


def recompute_day(s_work: np.ndarray, n_work: np.ndarray, s_off: np.ndarray, n_off: np.ndarray,
                  limits: MeterLimits) -> tuple[np.ndarray, np.ndarray]:
    """A recompute's day total (kWh, scaled up to the day when ``min_coverage`` of its intervals are known,
    else NaN) and working-hours share, from the sums and counts of readings in and out of working hours."""
    count = n_off + n_work
    work = int(work_slots(limits).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        kwh = np.where(count / SLOTS >= limits.min_coverage, (s_off + s_work) * SLOTS / np.maximum(count, 1), np.nan)
        in_work = s_work * work / np.maximum(n_work, 1)
        off_work = s_off * (SLOTS - work) / np.maximum(n_off, 1)
        share = np.where(np.isfinite(kwh) & (in_work + off_work > 0), in_work / (in_work + off_work), np.nan)
    return kwh, share


def run_duckdb(folder: Path) -> dict:
    """The recompute a data engineer would write: one DuckDB query over the 90 days of Parquet readings (2 threads)
    -> daily matrix -> the same rules. Like the pandas one it does no validation, in its favour."""
    import duckdb

    from pipelines.power.sites import find_sites

    limits = MeterLimits()
    steps: dict[str, float] = {}
    fleet, warnings, ids = timed_fleet(folder, steps)
    files = sorted((folder / "history").glob("*.parquet")) + sorted((folder / "readings" / DAY.isoformat()).glob("*.parquet"))
    first = DAY - dt.timedelta(days=HISTORY_DAYS - 1)
    with timed(steps, "query 90 days"):
        con = duckdb.connect(config={"threads": 2})
        con.register("fleet", pd.DataFrame({"transformer_id": ids.to_numpy(str), "row": np.arange(len(ids), dtype="int64")}))
        # Interval start in Beijing time (UTC+8, no daylight saving), as day_use places an end-labelled reading.
        day_ms, work0, work1 = 86_400_000, limits.work_hours[0] * 60, limits.work_hours[1] * 60
        # epoch_us on the stored instant (a cast to a naive TIMESTAMP first is ~15x slower without ICU).
        result = con.execute(f"""
            WITH r AS (
                SELECT transformer_id, kwh, epoch_us(time) // 1000 + {8 * 3_600_000 - MINUTES * 60_000} AS ms
                FROM read_parquet({[str(f) for f in files]!r})
            ), g AS (
                SELECT transformer_id, ms // {day_ms} AS d,
                       sum(kwh::DOUBLE) FILTER (WHERE ms % {day_ms} >= {work0 * 60_000} AND ms % {day_ms} < {work1 * 60_000}) AS s_w,
                       count(*) FILTER (WHERE ms % {day_ms} >= {work0 * 60_000} AND ms % {day_ms} < {work1 * 60_000}) AS n_w,
                       sum(kwh::DOUBLE) AS s, count(*) AS n
                FROM r GROUP BY ALL
            )
            SELECT f.row, g.d, g.s_w, g.n_w, g.s - coalesce(g.s_w, 0) AS s_o, g.n - g.n_w AS n_o
            FROM g JOIN fleet f USING (transformer_id)
        """).fetchnumpy()
        rows_read = con.execute(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]!r})").fetchone()[0]
    with timed(steps, "pivot + coverage"):
        row, d = result["row"].astype(np.int64), result["d"].astype(np.int64) - (first - dt.date(1970, 1, 1)).days
        keep = (d >= 0) & (d < HISTORY_DAYS)
        s_w, n_w = np.nan_to_num(np.asarray(result["s_w"], "float64")), np.nan_to_num(np.asarray(result["n_w"], "float64"))
        s_o, n_o = np.nan_to_num(np.asarray(result["s_o"], "float64")), np.nan_to_num(np.asarray(result["n_o"], "float64"))
        kwh, share = recompute_day(s_w, n_w, s_o, n_o, limits)
        daily = np.full((len(ids), HISTORY_DAYS), np.nan, "float32")
        shares = np.full((len(ids), HISTORY_DAYS), np.nan, "float32")
        daily[row[keep], d[keep]] = kwh[keep]
        shares[row[keep], d[keep]] = share[keep]
        state = PowerState(ids, DAY, daily, shares, np.full(len(ids), np.nan), np.full(len(ids), np.nan, "float32"),
                           np.zeros(len(ids), "int32"))
    with timed(steps, "find_sites"):
        sites, _ = find_sites(state, fleet, warnings)
    return {"steps": steps, "peak_mb": peak_rss_mb(), "ids": ids.to_numpy(), "kwh": daily[:, -1], "share": shares[:, -1],
            "sites": sites["site_id"].astype(str).tolist(), "rules": sites["rule"].astype(str).tolist(), "readings": int(rows_read)}


METHODS = {"increment": run_increment, "naive": run_naive, "duckdb": run_duckdb}


def child(method: str, folder: Path, results: multiprocessing.Queue) -> None:
    import dask.dataframe  # noqa: F401 - imports are not what is measured

    from pipelines.power import (
        meters,
        sites,  # noqa: F401
    )

    try:
        results.put(("ok", METHODS[method](folder)))
    except BaseException:  # noqa: BLE001 - reported by the parent
        results.put(("error", traceback.format_exc()))


def measure(method: str, folder: Path) -> dict:
    """Run ``method`` on ``folder`` in a fresh process; its result."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    proc = context.Process(target=child, args=(method, folder, results))
    proc.start()
    while True:
        try:
            status, result = results.get(timeout=1)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"{method} on {folder}: the process died (exit code {proc.exitcode})") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{method} on {folder} failed:\n{result}")
    return result


# ----------------------------------------------------------------------------- checks and report


def compare(a: dict, b: dict) -> list[str]:
    """Differences between two runs on the same fleet: the day's kWh and share, the site ids."""
    problems = []
    if not np.array_equal(a["ids"], b["ids"]):
        return ["different fleets"]
    for key in ("kwh", "share"):
        x, y = a[key].astype("float64"), b[key].astype("float64")
        same_nan = np.isnan(x) == np.isnan(y)
        close = np.isclose(x, y, rtol=RTOL, atol=1e-6, equal_nan=True)
        if not (same_nan.all() and close.all()):
            bad = np.flatnonzero(~(same_nan & close))
            problems.append(f"{key} differs for {len(bad):,} transformers, e.g. {a['ids'][bad[0]]}: {x[bad[0]]} vs {y[bad[0]]}")
    only_a, only_b = set(a["sites"]) - set(b["sites"]), set(b["sites"]) - set(a["sites"])
    if only_a or only_b:
        problems.append(f"sites differ: {len(only_a)} only in the increment (e.g. {sorted(only_a)[:3]}), "
                        f"{len(only_b)} only in the naive recompute (e.g. {sorted(only_b)[:3]})")
    return problems


def check_truth(world: World, rows: np.ndarray, result: dict) -> list[str]:
    """The increment's day kWh against the generated totals: equal where complete, unknown where too incomplete."""
    if not np.array_equal(result["ids"], world.ids[rows]):
        return ["the increment's fleet is not the generated one"]
    truth = world.daily[rows, -1].astype("float64")
    gaps = world.missing[rows].sum(axis=1)
    got = result["kwh"].astype("float64")
    limit = SLOTS - math.ceil(MeterLimits().min_coverage * SLOTS)
    complete, lost = gaps == 0, gaps > limit
    problems = []
    wrong = complete & ~np.isclose(got, truth, rtol=RTOL)
    if wrong.any():
        j = np.flatnonzero(wrong)[0]
        problems.append(f"day kWh differs from the generated total for {wrong.sum():,} complete transformers, e.g. {world.ids[rows][j]}: {got[j]} vs {truth[j]}")
    if np.isfinite(got[lost]).any():
        problems.append(f"{np.isfinite(got[lost]).sum():,} transformers with more than {limit} intervals missing have a day total")
    scaled = ~complete & ~lost
    if not np.isfinite(got[scaled]).all():
        problems.append(f"{(~np.isfinite(got[scaled])).sum():,} transformers with 1-{limit} intervals missing have no day total")
    return problems


def rule_counts(result: dict) -> dict[str, int]:
    return pd.Series(result["rules"], dtype=object).value_counts().to_dict()


DUCKDB_STEPS = ("fleet", "query 90 days", "pivot + coverage", "find_sites")


def report(n: int, m: int, readings_n: int, readings_m: int, inc_n: dict, duck_n: dict, inc_m: dict, naive_m: dict, world: World,
           generation_s: float) -> dict:
    """Print and return the figures; every figure is measured (nothing extrapolated)."""
    total_n, total_m = sum(inc_n["steps"].values()), sum(inc_m["steps"].values())
    duck_total, naive_total = sum(duck_n["steps"].values()), sum(naive_m["steps"].values())
    speedup_duck, speedup_naive = duck_total / total_n, naive_total / total_m
    peak_gb = inc_n["peak_mb"] / 1024

    print(f"day {DAY} (Friday), ring of {HISTORY_DAYS} days, {os.cpu_count()} CPUs; generation {generation_s:.0f} s (not timed)")
    print(f"{'':<44}{'N':>14}{'M (subset)':>14}")
    print(f"{'transformers':<44}{n:>14,}{m:>14,}")
    print(f"{'readings of the day':<44}{readings_n:>14,}{readings_m:>14,}")
    print("increment, fresh process (seconds)")
    for step in STEPS:
        print(f"  {step:<42}{inc_n['steps'][step]:>14.2f}{inc_m['steps'][step]:>14.2f}")
    print(f"  {'total':<42}{total_n:>14.2f}{total_m:>14.2f}")
    print(f"  {'readings/s':<42}{readings_n / total_n:>14,.0f}{readings_m / total_m:>14,.0f}")
    print(f"  {'peak RSS (GB)':<42}{peak_gb:>14.2f}{inc_m['peak_mb'] / 1024:>14.2f}")
    print(f"DuckDB recompute over {HISTORY_DAYS} days of Parquet, 2 threads, fresh process, at N (seconds, measured)")
    print(f"  {'readings of 90 days':<42}{duck_n['readings']:>14,}")
    for step in DUCKDB_STEPS:
        print(f"  {step:<42}{duck_n['steps'][step]:>14.2f}")
    print(f"  {'total':<42}{duck_total:>14.2f}")
    print(f"  {'peak RSS (GB)':<42}{duck_n['peak_mb'] / 1024:>14.2f}")
    print(f"pandas recompute over {HISTORY_DAYS} days, fresh process, on the subset M only (seconds, measured)")
    for step in NAIVE_STEPS:
        print(f"  {step:<42}{'':>14}{naive_m['steps'][step]:>14.2f}")
    print(f"  {'total':<42}{'':>14}{naive_total:>14.2f}")
    print(f"  {'peak RSS (GB)':<42}{'':>14}{naive_m['peak_mb'] / 1024:>14.2f}")
    print(f"{'speed-up over DuckDB at N (measured)':<44}{speedup_duck:>13.1f}x")
    print(f"{'speed-up over pandas on M (measured)':<44}{'':>14}{speedup_naive:>13.1f}x")
    print(f"sites at N by rule: {rule_counts(inc_n)}; planted: {world.planted}")
    targets = {
        "increment at N under 60 s": total_n < 60,
        "at least 10x the DuckDB recompute at N": speedup_duck >= 10,
        "increment peak memory under 4 GB": peak_gb < 4,
    }
    for name, met in targets.items():
        print(f"target: {name:<56}{'met' if met else 'NOT MET'}")
    return {
        "transformers": n, "subset": m, "readings": readings_n, "increment_s": round(total_n, 2),
        "increment_steps_s": {k: round(v, 2) for k, v in inc_n["steps"].items()}, "readings_per_s": round(readings_n / total_n),
        "increment_peak_gb": round(peak_gb, 2), "duckdb_s": round(duck_total, 2),
        "duckdb_steps_s": {k: round(v, 2) for k, v in duck_n["steps"].items()}, "duckdb_peak_gb": round(duck_n["peak_mb"] / 1024, 2),
        "duckdb_readings": duck_n["readings"], "speedup_duckdb": round(speedup_duck, 1),
        "increment_subset_s": round(total_m, 2), "naive_subset_s": round(naive_total, 2),
        "naive_subset_peak_gb": round(naive_m["peak_mb"] / 1024, 2), "speedup_naive_subset": round(speedup_naive, 1),
        "targets": targets,
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transformers", type=int, default=300_000, help="fleet size N (default 300,000)")
    parser.add_argument("--naive-transformers", type=int, default=3_000, help="subset M for the naive recompute (default 3,000)")
    parser.add_argument("--quick", action="store_true", help="N = 2,000 and M = 500: a smoke test")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary data directory goes (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    n, m = (2_000, 500) if args.quick else (args.transformers, args.naive_transformers)
    m = min(m, n)
    base = (args.workdir or Path(tempfile.gettempdir())).resolve()
    if base == ROOT or ROOT in base.parents:
        parser.error(f"--workdir {base} is inside the repository; choose a directory outside it")
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gridwatch-electricity-", dir=base))
    try:
        start = time.perf_counter()
        grid = gpd.read_parquet(GRID)
        index = PointIndex.build(grid.geometry)
        world = generate(n, args.seed, grid, index)
        state = stored_state(world, grid, index)
        rng = np.random.default_rng(args.seed + 1)
        rows_m = subset_rows(world, m, rng)
        readings_n = write_inputs(work / "fleet", world, np.arange(n), state, rng, history=True)
        readings_m = write_inputs(work / "subset", world, rows_m, state, rng, history=True)
        generation_s = time.perf_counter() - start
        print(f"generated {n:,} transformers ({len(rows_m):,} in the subset) in {work}", flush=True)

        inc_n = measure("increment", work / "fleet")
        duck_n = measure("duckdb", work / "fleet")
        inc_m = measure("increment", work / "subset")
        naive_m = measure("naive", work / "subset")
        figures = report(n, len(rows_m), readings_n, readings_m, inc_n, duck_n, inc_m, naive_m, world, generation_s)
        problems = [f"N: {p}" for p in check_truth(world, np.arange(n), inc_n)]
        problems += [f"N, increment vs DuckDB: {p}" for p in compare(inc_n, duck_n)]
        problems += [f"subset: {p}" for p in check_truth(world, rows_m, inc_m)]
        problems += [f"subset, increment vs naive: {p}" for p in compare(inc_m, naive_m)]
        figures["agree"] = not problems
        print(json.dumps(figures))
        if problems:
            for p in problems:
                print(f"FAIL: {p}", file=sys.stderr)
            return 1
        print("the increment and the naive recompute agree on the subset, and the increment and the DuckDB recompute at N "
              "(day kWh, working-hours share, site ids); the increment's day totals match the generated ones")
        return 0
    finally:
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
