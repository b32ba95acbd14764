"""Tomorrow's patrol plan: the cells where a before-rain or before-sowing window is open.

The two windows that cannot be read off a clock are also the two a supervisor
can act on ahead of the burning. For day D+1 (Beijing time) every grid cell is
looked at as if a fire burnt there at 00:00: the before-rain window is open if
rain is expected during D+1 or within the rain horizon after it, the
before-sowing window if D+1 is within the lead days before the local sowing
start or inside the sowing window. Open cells are ranked by

    score = cropland (thousand ha) × (1 + suspected straw-burning events in the cell in the last days)

so that large cropland areas that have already started burning come first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from pipelines.core.schema import BEIJING_TZ

PLAN_COLUMNS = [
    "rank", "cell_id", "cell_name", "county_name", "province_name", "supervisor", "windows",
    "rain_onset_bjt", "rain_source", "sowing_crop", "sowing_start", "sowing_end", "sowing_source",
    "cropland_ha", "recent_fires", "score",
]


def cell_probes(grid: gpd.GeoDataFrame, day: dt.date) -> pd.DataFrame:
    """One would-be fire per cell at 00:00 Beijing time of ``day``, at a point inside the cell (WGS84)."""
    points = grid.geometry.representative_point()
    start = pd.Timestamp(day, tz=BEIJING_TZ)
    return pd.DataFrame(
        {
            "cell_id": grid["cell_id"].to_numpy(),
            "lon": points.x.to_numpy(),
            "lat": points.y.to_numpy(),
            "time_utc": start.tz_convert("UTC"),
            "time_bjt": start,
            "county_code": grid["county_code"].to_numpy(),
            "county_name": grid["county_name"].to_numpy(),
            "province_code": grid["province_code"].to_numpy(),
            "province_name": grid["province_name"].to_numpy(),
        },
        index=grid.index,
    )


def patrol_plan(
    grid: gpd.GeoDataFrame,
    *,
    rain: pd.DataFrame | None,
    sowing: pd.DataFrame | None,
    cropland_ha: pd.Series,
    recent_fires: pd.Series,
) -> pd.DataFrame:
    """The open cells of one day, ranked (``PLAN_COLUMNS``).

    ``rain`` and ``sowing`` are the window flags of ``cell_probes`` (same index
    as ``grid``) from ``rain.before_rain`` and ``sowing.before_sowing``, or
    None where that input is not configured. ``cropland_ha`` and
    ``recent_fires`` are indexed by ``cell_id``.
    """
    rain_open = _open(rain, "win_before_rain", grid.index)
    sowing_open = _open(sowing, "win_before_sowing", grid.index)
    chosen = rain_open | sowing_open
    cells = grid.loc[chosen, ["cell_id", "cell_name", "county_name", "province_name", "supervisor"]].copy()
    windows = np.where(rain_open[chosen] & sowing_open[chosen], "下雨前+播种前 before rain and sowing",
                       np.where(rain_open[chosen], "下雨前 before rain", "播种前 before sowing"))
    cells["windows"] = pd.array(windows, dtype="string")
    cells["rain_onset_bjt"] = _column(rain, "rain_onset_utc", cells.index).dt.tz_convert(BEIJING_TZ) if rain is not None else pd.NaT
    cells["rain_source"] = _column(rain, "rain_source", cells.index).astype("string") if rain is not None else pd.NA
    for column in ("sowing_crop", "sowing_start", "sowing_end", "sowing_source"):
        cells[column] = _column(sowing, column, cells.index) if sowing is not None else pd.NA
    cells["cropland_ha"] = cells["cell_id"].map(cropland_ha).fillna(0.0).to_numpy(dtype=float)
    cells["recent_fires"] = cells["cell_id"].map(recent_fires).fillna(0).to_numpy(dtype=np.int64)
    cells["score"] = cells["cropland_ha"] / 1000 * (1 + cells["recent_fires"])
    cells = cells.sort_values(["score", "cell_id"], ascending=[False, True], kind="stable")
    cells["rank"] = np.arange(1, len(cells) + 1)
    return cells[PLAN_COLUMNS].reset_index(drop=True)


def _open(flags: pd.DataFrame | None, column: str, index: pd.Index) -> pd.Series:
    if flags is None:
        return pd.Series(False, index=index)
    return flags[column].astype("boolean").reindex(index).fillna(False).astype(bool)


def _column(frame: pd.DataFrame, column: str, index: pd.Index) -> pd.Series:
    return frame[column].reindex(index)


def recent_event_counts(out_root: Path, day: dt.date, days: int, read: Callable[[Path], pd.DataFrame]) -> pd.Series:
    """Suspected straw-burning events per cell in the ``days`` runs up to ``day`` (missing runs count nothing).

    Events, not pixels: a field seen every 10 minutes by a geostationary satellite is one fire.
    """
    counts: list[pd.Series] = []
    for back in range(days):
        path = out_root / (day - dt.timedelta(days=back)).isoformat() / "events.parquet"
        if path.exists():
            events = read(path)
            straw = events[events["category"] == "straw_suspect"] if "category" in events else events
            counts.append(straw["cell_id"].dropna().value_counts())
    return pd.concat(counts).groupby(level=0).sum() if counts else pd.Series(dtype="int64")
