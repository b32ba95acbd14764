"""What each fire is: suspected straw burning, or something else, and why.

In order of precedence (``schema.CATEGORIES``):

1. ``industrial``: the pixel reaches within a listed plant's buffer, i.e. the
   distance from the plant to the pixel centre is at most the plant's
   ``buffer_km`` plus half the pixel's diagonal (China Albers, km);
2. ``persistent``: the place burnt on at least ``min_days`` distinct days in the
   ``window_days`` before the run date (``persistent.FireHistory``);
3. ``straw_suspect``: at least ``min_cropland`` of the pixel footprint is
   cropland (``landcover.cover_fractions``);
4. ``other_vegetation``: at least ``min_cropland`` of it is natural vegetation;
5. ``unknown``: the land-cover raster says nothing there (outside it, or on its
   nodata), or no raster is configured: it may be cropland, so it is never
   ``other``;
6. ``other``: anything else (towns, water, bare land).

An event takes the first category, in that order, of any of its observations,
and that observation's reason: one industrial pixel makes the whole event
industrial.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from .grid import CHINA_ALBERS
from .landcover import LandCover, cover_fractions
from .persistent import FireHistory, PersistenceRule
from .schema import CATEGORIES, WGS84

UNKNOWN_REASON = "地类不明：火点像元不在土地覆盖数据范围内 land cover unknown: the pixel is outside the land-cover raster (or on its nodata)"
NO_LANDCOVER_REASON = "地类不明：没有可用的土地覆盖数据 land cover unknown: no usable land-cover raster ([classify] landcover, see run.json)"
CLASS_COLUMNS = ["category", "reason", "cropland_fraction", "plant_id", "plant_name", "plant_km", "persistent_days"]


@dataclass(frozen=True)
class Classifier:
    """Everything classification needs; ``plants`` from ``readers.plants.read_plant_lists``."""

    plants: gpd.GeoDataFrame
    landcover: LandCover | None = None
    history: FireHistory | None = None
    rule: PersistenceRule = PersistenceRule()
    min_cropland: float = 0.5  # fraction of the footprint, 0-1


def classify(fires: pd.DataFrame, classifier: Classifier, day: dt.date) -> pd.DataFrame:
    """``fires`` with ``CLASS_COLUMNS`` added (a new frame; same index).

    ``fires`` has pixel centres ``lon``/``lat`` (EPSG:4326) and sizes
    ``scan_km``/``track_km``; ``day`` is the Beijing date of the run (the
    persistent-source history is counted strictly before it).

    ``category`` is ``straw_suspect``, ``industrial``, ``persistent``,
    ``other_vegetation``, ``unknown`` (no land cover there) or ``other``; ``cropland_fraction`` is 0-1 of the
    pixel footprint; ``plant_km`` is km from the pixel centre.

    Example::

        sources = load_sources(config)             # plants, land cover, fire history
        fires = classify(fires, sources.classifier, dt.date(2022, 6, 3))
        fires["category"].value_counts()
    """
    out = fires.copy()
    n = len(out)
    lon, lat = out["lon"].to_numpy(dtype=float), out["lat"].to_numpy(dtype=float)
    scan = out["scan_km"].to_numpy(dtype=float, na_value=np.nan)
    track = out["track_km"].to_numpy(dtype=float, na_value=np.nan)

    near = _nearest_plants(lon, lat, scan, track, classifier.plants)
    if classifier.history is not None and n:
        persistent = classifier.history.flag(out, day, classifier.rule)
        days = persistent["persistent_days"].to_numpy()
        is_persistent = persistent["persistent"].to_numpy(dtype=bool)
    else:
        days, is_persistent = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if classifier.landcover is not None and n:
        cover = cover_fractions(lon, lat, scan, track, classifier.landcover)
        crop, veg = cover["cropland_fraction"].to_numpy(), cover["vegetation_fraction"].to_numpy()
        centre = cover["landcover_class"].to_numpy()
    else:
        crop = veg = np.full(n, np.nan)
        centre = np.full(n, -1)

    industrial = near["plant_km"].notna().to_numpy()
    cropland = ~industrial & ~is_persistent & (crop >= classifier.min_cropland)
    vegetation = ~industrial & ~is_persistent & ~cropland & (veg >= classifier.min_cropland)
    unknown = ~industrial & ~is_persistent & np.isnan(crop)
    category = np.select(
        [industrial, is_persistent, cropland, vegetation, unknown],
        ["industrial", "persistent", "straw_suspect", "other_vegetation", "unknown"],
        "other",
    )
    reasons = []
    for i in range(n):
        c = category[i]
        if c == "industrial":
            reasons.append(
                f"{near['plant_kind'].iat[i]} {near['plant_name'].iat[i]} ({near['plant_id'].iat[i]}): "
                f"{near['plant_km'].iat[i]:.1f} km from the pixel centre; the pixel reaches its {near['buffer_km'].iat[i]:g} km buffer"
            )
        elif c == "persistent":
            reasons.append(
                f"persistent heat source: fires on {days[i]} days in the {classifier.rule.window_days} days before "
                f"{day.isoformat()} (at least {classifier.rule.min_days} make a place persistent)"
            )
        elif c == "unknown":
            reasons.append(UNKNOWN_REASON if classifier.landcover is not None else NO_LANDCOVER_REASON)
        else:
            reasons.append(f"{crop[i]:.0%} of the pixel is cropland, {veg[i]:.0%} natural vegetation (class {centre[i]} at its centre)")
    out["category"] = pd.array(category, dtype="string")
    out["reason"] = pd.array(reasons, dtype="string")
    out["cropland_fraction"] = crop
    out["plant_id"] = near["plant_id"].to_numpy()
    out["plant_name"] = near["plant_name"].to_numpy()
    out["plant_km"] = near["plant_km"].to_numpy()
    out["persistent_days"] = np.asarray(days, dtype=np.int64)
    return out


def _nearest_plants(lon: np.ndarray, lat: np.ndarray, scan: np.ndarray, track: np.ndarray, plants: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per fire, the nearest plant whose buffer the pixel reaches (all <NA> where none)."""
    n = len(lon)
    result = pd.DataFrame(
        {
            "plant_id": pd.array([pd.NA] * n, dtype="string"),
            "plant_name": pd.array([pd.NA] * n, dtype="string"),
            "plant_kind": pd.array([pd.NA] * n, dtype="string"),
            "plant_km": np.full(n, np.nan),
            "buffer_km": np.full(n, np.nan),
        }
    )
    if not n or plants.empty:
        return result
    to_albers = Transformer.from_crs(WGS84, CHINA_ALBERS, always_xy=True)
    fx, fy = (np.asarray(a) / 1000 for a in to_albers.transform(lon, lat))
    px, py = (np.asarray(a) / 1000 for a in to_albers.transform(plants["lon"].to_numpy(), plants["lat"].to_numpy()))
    half_diagonal = 0.5 * np.hypot(np.where(scan > 0, scan, 1.0), np.where(track > 0, track, 1.0))
    reach = plants["buffer_km"].to_numpy()
    tree = shapely.STRtree(shapely.points(px, py))
    fire_i, plant_i = tree.query(shapely.points(fx, fy), predicate="dwithin", distance=float(reach.max() + np.nanmax(half_diagonal)))
    if not len(fire_i):
        return result
    distance = np.hypot(fx[fire_i] - px[plant_i], fy[fire_i] - py[plant_i])
    hit = distance <= reach[plant_i] + half_diagonal[fire_i]
    pairs = pd.DataFrame({"fire": fire_i[hit], "plant": plant_i[hit], "km": distance[hit]})
    nearest = pairs.sort_values(["fire", "km", "plant"]).drop_duplicates("fire")
    rows, which = nearest["fire"].to_numpy(), nearest["plant"].to_numpy()
    for column, source in (("plant_id", "plant_id"), ("plant_name", "name"), ("plant_kind", "kind"), ("buffer_km", "buffer_km")):
        result.loc[rows, column] = plants[source].to_numpy()[which]
    result.loc[rows, "plant_km"] = nearest["km"].to_numpy()
    return result


def classify_events(events: pd.DataFrame, fires: pd.DataFrame) -> pd.DataFrame:
    """``events`` with ``category`` and ``reason``: the first category (``schema.CATEGORIES`` order)
    of any of its observations, with the reason of its earliest such observation.

    ``fires`` are the classified observations with ``event_id``; a new frame
    is returned (EPSG:4326 kept when ``events`` is a GeoDataFrame).

    Example::

        events = classify_events(events_table(fires), fires)
        events[events["category"] == "straw_suspect"]
    """
    rank = fires["category"].map({c: i for i, c in enumerate(CATEGORIES)})
    decisive = (
        fires.assign(_rank=rank)
        .sort_values(["event_id", "_rank", "time_utc", "fire_id"], kind="stable")
        .drop_duplicates("event_id")
        .set_index("event_id")
    )
    out = events.copy()
    out["category"] = pd.array(out["event_id"].map(decisive["category"]), dtype="string")
    out["reason"] = pd.array(out["event_id"].map(decisive["reason"]), dtype="string")
    return out
