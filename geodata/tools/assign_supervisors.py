"""Give the sample grid real supervisor (网格员) assignments: one per township-sized group of cells.

A township (乡镇) in the North China Plain is some 50-100 km²; the sample grid's
cells are 5 km squares (25 km²). Cells are grouped per county by the 10 km x
10 km block their id's E/N position falls in (at most 4 cells, about one
township), blocks numbered north to south, then west to east, and each block's
supervisor is named ``<county name>网格员<k>``. Deterministic: the same grid
always gets the same names. Run from the repository root:

    python geodata/tools/assign_supervisors.py geodata/grid_ncp_5km.parquet

It rewrites the ``supervisor`` column in place (zstd GeoParquet, as
``gridwatch make-grid`` writes it) and prints how many supervisors there are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd

BLOCK = 10  # km: the cell ids' E/N numbers are km (China Albers, in 5 km steps), so a block holds at most 2 x 2 cells
ID = re.compile(r"_E(\d+)_N(\d+)$")


def block_of(cell_id: str) -> tuple[int, int]:
    """(north index, east index) of the ``BLOCK`` km block of a ``<county>_E<e>_N<n>`` cell id (e, n in km)."""
    found = ID.search(cell_id)
    if found is None:
        raise ValueError(f"{cell_id!r}: expected a cell id ending in _E<number>_N<number> (gridwatch make-grid)")
    east, north = int(found.group(1)), int(found.group(2))
    return north // BLOCK, east // BLOCK


def assign(grid: pd.DataFrame) -> pd.Series:
    """The supervisor of each cell (same index as ``grid``)."""
    blocks = pd.DataFrame([block_of(c) for c in grid["cell_id"]], columns=["n", "e"], index=grid.index)
    frame = pd.concat([grid[["county_code", "county_name"]], blocks], axis=1)
    keys = frame[["county_code", "n", "e"]].drop_duplicates().sort_values(["county_code", "n", "e"], ascending=[True, False, True])
    keys["k"] = keys.groupby("county_code").cumcount() + 1
    numbered = frame.merge(keys, on=["county_code", "n", "e"], how="left")
    return pd.Series((numbered["county_name"] + "网格员" + numbered["k"].astype(str)).to_numpy(), index=grid.index, dtype="string")


def main(path: str) -> None:
    grid = gpd.read_parquet(path)
    grid["supervisor"] = assign(grid)
    tmp = Path(path).with_suffix(".tmp.parquet")
    grid.to_parquet(tmp, compression="zstd", write_covering_bbox=False)
    tmp.replace(path)
    print(f"{path}: {grid['supervisor'].nunique()} supervisors for {len(grid)} cells")


if __name__ == "__main__":
    main(sys.argv[1])
