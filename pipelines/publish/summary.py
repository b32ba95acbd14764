"""Per-cell counts: the ``grid_summary.csv`` of a nightly run."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from pipelines.core.schema import BEIJING_TZ, GRID_COLUMNS, WINDOW_COLUMNS

SUMMARY_COLUMNS = [
    *GRID_COLUMNS[:-1],
    "fires",
    "fires_touching",
    *(c.removeprefix("win_") for c in WINDOW_COLUMNS),
    "max_frp_mw",
    "first_fire_bjt",
    "last_fire_bjt",
    "sites",
    "observed",
    "clear_looks",
    "cloud_looks",
    "map",
]


def grid_summary(fires: pd.DataFrame, grid: gpd.GeoDataFrame, maps: dict[str, str] | None = None,
                 sites: pd.DataFrame | None = None, coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per grid cell, in grid order.

    ``fires``: fires whose pixel centre is in the cell; ``fires_touching``:
    fires centred elsewhere whose footprint reaches into the cell (a
    supervisor should know of them too). Window columns count the fires
    (centred in the cell) flagged True in each window, and are empty where
    every such flag is unknown. Times are Beijing time, ``YYYY-MM-DD HH:MM``.
    ``sites``: electricity sites (``sites.find_sites``), counted per cell.
    ``maps`` gives each cell's map path relative to the run folder.
    ``coverage`` (``coverage.grid_coverage``): ``observed`` (clear / cloud /
    not_observed / unknown) and the counts of clear and cloudy looks from the
    fire masks; without it every cell is ``unknown``.
    """
    table = pd.DataFrame(grid[GRID_COLUMNS[:-1]]).set_index("cell_id", drop=False)
    inside = fires[fires["cell_id"].notna()]
    by_cell = inside.groupby("cell_id", observed=True)
    table["fires"] = by_cell.size().reindex(table.index, fill_value=0).astype("int64")

    touching = fires[["fire_id", "cell_id", "cells_touched"]].explode("cells_touched")
    touching = touching[touching["cells_touched"].notna() & (touching["cells_touched"] != touching["cell_id"])]
    table["fires_touching"] = touching.groupby("cells_touched").size().reindex(table.index, fill_value=0).astype("int64")

    for column in WINDOW_COLUMNS:
        flags = inside[column].astype("boolean")
        grouped = pd.DataFrame({"true": flags.fillna(False), "known": flags.notna()}).groupby(inside["cell_id"])
        name = column.removeprefix("win_")
        table[name] = grouped["true"].sum().where(grouped["known"].any()).reindex(table.index).astype("Int64")
        table.loc[table["fires"] == 0, name] = 0

    table["max_frp_mw"] = by_cell["frp_mw"].max().reindex(table.index)
    times = by_cell["time_utc"]
    table["first_fire_bjt"] = _bjt(times.min().reindex(table.index))
    table["last_fire_bjt"] = _bjt(times.max().reindex(table.index))
    site_counts = sites["cell_id"].value_counts() if sites is not None and len(sites) else pd.Series(dtype="int64")
    table["sites"] = site_counts.reindex(table.index, fill_value=0).astype("int64")
    looks = coverage.set_index("cell_id") if coverage is not None else pd.DataFrame(index=pd.Index([], name="cell_id"))
    table["observed"] = looks["observed"].reindex(table.index).fillna("unknown").astype("string") if "observed" in looks else "unknown"
    for column in ("clear_looks", "cloud_looks"):
        table[column] = looks[column].reindex(table.index).astype("Int64") if column in looks else pd.array([pd.NA] * len(table), dtype="Int64")
    table["map"] = table.index.map(maps or {}).astype("string")
    return table[SUMMARY_COLUMNS].reset_index(drop=True)


def _bjt(times: pd.Series) -> pd.Series:
    return times.dt.tz_convert(BEIJING_TZ).dt.strftime("%Y-%m-%d %H:%M").astype("string")
