"""Lists of industrial heat sources: steel plants, power plants, any user list.

Each list is read by its format and becomes points in WGS84 with a name, a
kind and a buffer (km) within which a fire is taken to be the plant's:

- ``gem_steel``: Global Energy Monitor's steel plant tracker (CSV, coordinates
  as one text column ``"lat, lon"``);
- ``wri_power``: WRI's Global Power Plant Database (CSV ``latitude``,
  ``longitude``, ``primary_fuel``), kept only for the configured fuels (hydro,
  wind and solar are not heat sources);
- ``points``: any CSV with name/longitude/latitude columns, or any point layer
  (GeoPackage, GeoJSON, Shapefile, GeoParquet) in any CRS.

Rows whose coordinates cannot be read are skipped, each with its line number.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from pipelines.core.csvtext import UnreadableFile, first_line, header_fields, read_table, read_text, to_float
from pipelines.core.schema import WGS84
from pipelines.core.settings import PLANT_FORMATS as FORMATS
from pipelines.core.settings import PlantList
from pipelines.core.skips import Skip

PLANT_COLUMNS = ["plant_id", "name", "kind", "buffer_km", "lon", "lat", "source_file", "source_row", "geometry"]





def read_plants(plants: PlantList) -> tuple[gpd.GeoDataFrame, list[Skip]]:
    """The plants of one list as points (EPSG:4326, columns ``PLANT_COLUMNS``) and the rows skipped.

    A file that cannot be used at all is one skip and no plants.
    """
    try:
        if plants.format == "gem_steel":
            return _gem(plants)
        if plants.format == "wri_power":
            return _wri(plants)
        if plants.format == "points":
            return _points(plants)
        raise UnreadableFile(f"unknown plant list format {plants.format!r}; expected one of {', '.join(FORMATS)}")
    except UnreadableFile as exc:
        return _frame([], [], [], [], [], plants), [Skip(plants.path.name, str(exc))]


def _csv(path: Path, required: list[str]) -> tuple[pd.DataFrame, np.ndarray, list[Skip]]:
    text = read_text(path).lstrip("\ufeff")
    names = header_fields(first_line(text)) if text.strip() else None
    if not names:
        raise UnreadableFile("empty file")
    table = read_table(path, text, 1, names)
    missing = [c for c in required if c.lower() not in table.frame.columns]
    if missing:
        raise UnreadableFile(f"missing column(s) {', '.join(missing)}; it has {', '.join(names)}")
    return table.frame, table.lines, table.skips


def _checked(path: Path, lines: np.ndarray, lon: pd.Series, lat: pd.Series, field: str) -> tuple[np.ndarray, list[Skip]]:
    bad = lon.isna() | lat.isna() | ~lon.between(-180, 180) | ~lat.between(-90, 90)
    skips = [Skip(path.name, "coordinates missing, unparsable or out of range", row=int(r), field=field) for r in lines[bad.to_numpy()]]
    return ~bad.to_numpy(), skips


def _gem(plants: PlantList) -> tuple[gpd.GeoDataFrame, list[Skip]]:
    frame, lines, skips = _csv(plants.path, ["Plant ID", "Coordinates"])
    parts = frame["coordinates"].str.split(",", n=1, expand=True).reindex(columns=[0, 1])
    lat, lon = to_float(parts[0].fillna("").str.strip()), to_float(parts[1].fillna("").str.strip())
    good, bad = _checked(plants.path, lines, lon, lat, "Coordinates")
    local = frame.get("plant name (other language)_x", frame.get("plant name (other language)", pd.Series("", index=frame.index)))
    english = frame.get("plant name (english)_x", frame.get("plant name (english)", pd.Series("", index=frame.index)))
    names = local.where(local != "", english)
    return _frame(frame["plant id"][good], names[good], lon[good], lat[good], lines[good], plants, default_kind="steel plant"), skips + bad


def _wri(plants: PlantList) -> tuple[gpd.GeoDataFrame, list[Skip]]:
    frame, lines, skips = _csv(plants.path, ["name", "latitude", "longitude", "primary_fuel"])
    burns = frame["primary_fuel"].isin(plants.fuels).to_numpy()
    frame, lines = frame[burns], lines[burns]
    lon, lat = to_float(frame["longitude"]), to_float(frame["latitude"])
    good, bad = _checked(plants.path, lines, lon, lat, "latitude/longitude")
    kinds = frame["primary_fuel"].str.lower() + " power plant"
    ids = pd.Series([f"WRI:{r}" for r in lines], index=frame.index)
    return _frame(ids[good], frame["name"][good], lon[good], lat[good], lines[good], plants, kinds=kinds[good]), skips + bad


def _points(plants: PlantList) -> tuple[gpd.GeoDataFrame, list[Skip]]:
    if plants.path.suffix.lower() in (".csv", ".txt"):
        frame, lines, skips = _csv(plants.path, [plants.name_column, plants.lon_column, plants.lat_column])
        lon, lat = to_float(frame[plants.lon_column.lower()]), to_float(frame[plants.lat_column.lower()])
        good, bad = _checked(plants.path, lines, lon, lat, f"{plants.lon_column}/{plants.lat_column}")
        names = frame[plants.name_column.lower()]
        ids = pd.Series([f"{plants.path.name}:{r}" for r in lines], index=frame.index)
        return _frame(ids[good], names[good], lon[good], lat[good], lines[good], plants), skips + bad
    try:
        if plants.path.suffix.lower() == ".parquet":
            layer = gpd.read_parquet(plants.path)
        else:
            layer = gpd.read_file(plants.path, layer=plants.layer or None)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unusable
        raise UnreadableFile(f"cannot read as a point layer: {exc}") from None
    if plants.name_column not in layer.columns:
        raise UnreadableFile(f"missing column {plants.name_column!r}")
    if layer.crs is None:
        raise UnreadableFile("the layer has no CRS")
    layer = layer.to_crs(WGS84)
    rows = np.arange(1, len(layer) + 1)
    points = layer.geometry.representative_point()
    lon, lat = pd.Series(points.x.to_numpy(), index=layer.index), pd.Series(points.y.to_numpy(), index=layer.index)
    good, bad = _checked(plants.path, rows, lon, lat, "geometry")
    ids = pd.Series([f"{plants.path.name}:{r}" for r in rows], index=layer.index)
    return _frame(ids[good], layer[plants.name_column].astype(str)[good], lon[good], lat[good], rows[good], plants), bad


def _frame(ids, names, lon, lat, rows, plants: PlantList, *, default_kind: str = "industrial site", kinds=None) -> gpd.GeoDataFrame:  # noqa: ANN001
    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    kind = np.asarray(kinds, dtype=object) if kinds is not None and not plants.kind else np.full(len(lon), plants.kind or default_kind, dtype=object)
    frame = pd.DataFrame(
        {
            "plant_id": pd.array(np.asarray(ids, dtype=object), dtype="string"),
            "name": pd.array(np.asarray(names, dtype=object), dtype="string"),
            "kind": pd.array(kind, dtype="string"),
            "buffer_km": np.full(len(lon), float(plants.buffer_km)),
            "lon": lon,
            "lat": lat,
            "source_file": pd.array([plants.path.name] * len(lon), dtype="string"),
            "source_row": np.asarray(rows, dtype="int64"),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs=WGS84)[PLANT_COLUMNS]


def read_plant_lists(lists: tuple[PlantList, ...] | list[PlantList]) -> tuple[gpd.GeoDataFrame, list[Skip], list[dict]]:
    """All configured lists as one layer, the skips, and per-list counts for ``run.json``."""
    frames, skips, counts = [], [], []
    for plants in lists:
        frame, skipped = read_plants(plants)
        frames.append(frame)
        skips += skipped
        counts.append({"file": plants.path.name, "format": plants.format, "plants": len(frame), "rows_skipped": len(skipped)})
    if not frames:
        return _frame([], [], [], [], [], PlantList(Path("none"), "points", 0.0)), skips, counts
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=WGS84), skips, counts
