"""Build the sample electricity inputs of the nightly run from real enterprise series.

    /work/venv/bin/python geodata/power/make_sample.py

Source: ``tests/data/power/tianchi_subset_40users.csv``, the daily kWh of 40
real enterprises of the Yangzhong high-tech zone (Tianchi public data,
2015-01-01..2016-09-30). Locations, the registry and the warnings are not
public, so this script makes them up, deterministically:

- readings: each enterprise's real daily use of 2016-03-05..2016-06-10,
  moved forward by exactly 312 weeks (2,184 days) onto 2022-03-05..2022-06-03,
  the sample fire day, so that weekdays stay weekdays and the last day is a
  Dragon Boat Festival Friday in both years (2016-06-10 and 2022-06-03).
  Other holidays do not line up (Qingming, May Day): the sample is a
  demonstration, the tests use the real dates. One CSV per Beijing day,
  ``readings/<date>.csv`` (transformer_id, time, kwh).
- transformers: one per enterprise, ``YZ<user id>``, at a seeded random point
  of a 5 km grid cell of Yangzhong (扬中市, 321182), where the data come
  from; registered enterprises share a few cells (the high-tech zone),
  the unregistered ones each have a cell of their own.
- registry: enterprise ``E<user id>``. Closed at the start of a real
  shutdown: 200 (2016-04-18, restarts 2016-05-23) and 20 (2016-04-01, never
  restarts). Users 8, 10, 22 (clear weekday rhythm) and 4 (flat) have no
  registered enterprise. Some are on the emergency reduction list (grades).
- warnings: one orange warning over Yangzhong, 2022-06-02 20:00 to 2022-06-03
  24:00 (made up; real warnings are in autumn and winter).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOURCE = ROOT / "tests" / "data" / "power" / "tianchi_subset_40users.csv"
SHIFT = dt.timedelta(weeks=312)
FIRST, LAST = dt.date(2016, 3, 5), dt.date(2016, 6, 10)
COUNTY = "321182"
CLOSED = {200: "2016-04-18", 20: "2016-04-01"}
UNREGISTERED = (4, 8, 10, 22)
GRADES = {1: "B", 3: "C", 5: "D", 7: "B", 9: "A", 11: "leading", 13: "C", 15: "D", 171: "B", 187: "C"}
INDUSTRIES = ("机械加工 machining", "电子 electronics", "电线电缆 cables", "化工 chemicals", "纺织 textiles")
SEED = 20161001


def main() -> None:
    daily = pd.read_csv(SOURCE, parse_dates=["record_date"])
    users = sorted(daily["user_id"].unique())
    rng = np.random.default_rng(SEED)
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    cells = grid[grid["county_code"] == COUNTY].sort_values("cell_id").reset_index(drop=True)
    zone = cells.iloc[rng.choice(len(cells), 6, replace=False)]
    spare = cells.drop(zone.index).reset_index(drop=True)

    transformers, registry = [], []
    for i, user in enumerate(users):
        registered = user not in UNREGISTERED
        cell = zone.iloc[i % len(zone)] if registered else spare.iloc[UNREGISTERED.index(user)]
        lon, lat = _point_in(cell.geometry, rng)
        transformers.append({"transformer_id": f"YZ{user:04d}", "enterprise_id": f"E{user:04d}" if registered else "",
                             "lon": round(lon, 6), "lat": round(lat, 6)})
        if registered:
            closed = user in CLOSED
            registry.append({
                "enterprise_id": f"E{user:04d}", "name": f"扬中示例企业{user:03d}", "address": f"扬中市 示例地址 {user} 号",
                "industry": INDUSTRIES[user % len(INDUSTRIES)], "status": "关停" if closed else "正常",
                "status_date": (dt.date.fromisoformat(CLOSED[user]) + SHIFT).isoformat() if closed else "",
                "deadline": "", "grade": GRADES.get(user, ""),
            })
    _write(HERE / "transformers.csv", transformers)
    _write(HERE / "registry.csv", registry)
    _write(HERE / "warnings.csv", [{"warning_id": "YZ-2022-001", "level": "橙色", "start": "2022-06-02 20:00",
                                    "end": "2022-06-03 24:00", "region": COUNTY}])

    folder = HERE / "readings"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    days = daily[(daily["record_date"].dt.date >= FIRST) & (daily["record_date"].dt.date <= LAST)]
    for date, rows in days.groupby("record_date"):
        shifted = date.date() + SHIFT
        _write(folder / f"{shifted.isoformat()}.csv", [
            {"transformer_id": f"YZ{u:04d}", "time": shifted.isoformat(), "kwh": int(v)}
            for u, v in zip(rows["user_id"], rows["power_consumption"])
        ])
    print(f"{len(transformers)} transformers, {len(registry)} enterprises, {days['record_date'].nunique()} days of readings in {folder}")


def _point_in(polygon: shapely.Geometry, rng: np.random.Generator) -> tuple[float, float]:
    x0, y0, x1, y1 = polygon.bounds
    while True:
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if polygon.contains(shapely.Point(x, y)):
            return x, y


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
