"""Verified heat sources: places the supervisors found to be something else, masked the next night.

Two kinds of place come from the verification store (marks of days before the run):

* a fire task marked **another heat source** (其他热源: a kiln, a flare, a boiler the
  plant lists do not have): the place is masked from the next night on;
* a place **dismissed** (未发现火情 no fire found) on at least ``dismissed_times``
  distinct days within ``radius_km`` of each other.

A later **confirmed straw burning** within ``radius_km`` lifts either (the field
has changed, or the first look was wrong). A fire of the night whose pixel centre
is within ``radius_km`` of a masked place, and that is not already an industrial or
persistent heat source, becomes ``persistent`` (like the fire-history mask), with a
reason naming the verification: who marked it, on which day, which task.

Distances are on the sphere's local tangent plane (equirectangular, km): exact to
well under 1 % at the few kilometres this uses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

MASKABLE = ("straw_suspect", "other_vegetation", "unknown", "other")  # industrial and persistent keep their own reason
_KM_PER_DEG_LAT = 110.574
_KM_PER_DEG_LON = 111.320  # at the equator, times cos(latitude)


@dataclass(frozen=True)
class MaskRule:
    radius_km: float = 1.0  # a fire within this distance of a verified place is masked; dismissals this close are one place
    dismissed_times: int = 2  # distinct days a place must be dismissed (no fire found) to be masked


def _km(lon0: np.ndarray, lat0: np.ndarray, lon1: float, lat1: float) -> np.ndarray:
    """Distances (km) from points (degrees WGS84) to one point."""
    dx = (lon0 - lon1) * _KM_PER_DEG_LON * np.cos(np.radians((lat0 + lat1) / 2))
    dy = (lat0 - lat1) * _KM_PER_DEG_LAT
    return np.hypot(dx, dy)


def verified_places(marks: pd.DataFrame, rule: MaskRule = MaskRule()) -> pd.DataFrame:
    """Masked places from stored marks (``store.MARK_COLUMNS``): ``lon``, ``lat`` (WGS84), ``kind``
    (``other_heat`` or ``dismissed``), ``reason_zh``, ``reason_en``. Only fire tasks with a position count."""
    columns = ["lon", "lat", "kind", "reason_zh", "reason_en"]
    fires = marks[marks["kind"].isin(["event", "fire"]) & marks["lon"].notna() & marks["lat"].notna()]
    if fires.empty:
        return pd.DataFrame(columns=columns)
    fires = fires.sort_values(["day", "marked_utc"])
    confirmed = fires[fires["result"] == "confirmed"]
    lon_c, lat_c, day_c = confirmed["lon"].to_numpy(float), confirmed["lat"].to_numpy(float), confirmed["day"].to_numpy()

    def lifted(lon: float, lat: float, day: dt.date) -> bool:
        near = _km(lon_c, lat_c, lon, lat) <= rule.radius_km
        return bool((near & (day_c > day)).any())

    rows = []
    for rec in fires[fires["result"] == "other_heat"].itertuples(index=False):
        if lifted(rec.lon, rec.lat, rec.day):
            continue
        rows.append((rec.lon, rec.lat, "other_heat",
                     f"网格员核查确认为其他热源（{rec.supervisor} {rec.day.isoformat()} 任务核查）",
                     f"verified heat source: marked 'another heat source' by {rec.supervisor} (task {rec.item_id} of {rec.day.isoformat()})"))
    dismissed = fires[fires["result"] == "no_fire"]
    lon_d, lat_d, day_d = dismissed["lon"].to_numpy(float), dismissed["lat"].to_numpy(float), dismissed["day"].to_numpy()
    for rec in dismissed.itertuples(index=False):
        near = _km(lon_d, lat_d, rec.lon, rec.lat) <= rule.radius_km
        days = sorted(set(day_d[near]))
        # One place per cluster: the last dismissal of it stands for it.
        if len(days) < rule.dismissed_times or rec.day != days[-1] or lifted(rec.lon, rec.lat, days[-1]):
            continue
        rows.append((rec.lon, rec.lat, "dismissed",
                     f"同一地点 {len(days)} 天核查均未发现火情（最近一次：{rec.supervisor} {days[-1].isoformat()}）",
                     f"dismissed on the spot on {len(days)} days, no fire found (last by {rec.supervisor} on {days[-1].isoformat()})"))
    places = pd.DataFrame(rows, columns=columns)
    return places.drop_duplicates(["lon", "lat", "kind"]).reset_index(drop=True)


def apply_mask(fires: pd.DataFrame, places: pd.DataFrame, rule: MaskRule = MaskRule()) -> tuple[pd.DataFrame, int]:
    """``fires`` (classified: ``lon``, ``lat``, ``category``, ``reason*``) with those near a verified place made
    ``persistent``; and how many were. The first place (in ``places`` order) within reach gives the reason."""
    if places.empty or fires.empty:
        return fires, 0
    out = fires.copy()
    lon, lat = out["lon"].to_numpy(float), out["lat"].to_numpy(float)
    eligible = out["category"].astype(str).isin(MASKABLE).to_numpy()
    masked = np.zeros(len(out), dtype=bool)
    zh = out["reason_zh"].astype(object).to_numpy().copy()
    en = out["reason_en"].astype(object).to_numpy().copy()
    for place in places.itertuples(index=False):
        hit = eligible & ~masked & (_km(lon, lat, float(place.lon), float(place.lat)) <= rule.radius_km)
        zh[hit], en[hit] = place.reason_zh, place.reason_en
        masked |= hit
    if masked.any():
        out.loc[masked, "category"] = "persistent"
        out["reason_zh"] = pd.array(zh, dtype="string")
        out["reason_en"] = pd.array(en, dtype="string")
        out.loc[masked, "reason"] = (out.loc[masked, "reason_zh"] + " " + out.loc[masked, "reason_en"]).astype("string")
    return out, int(masked.sum())
