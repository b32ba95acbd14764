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

from pipelines.core.schema import CATEGORIES, WGS84
from pipelines.fires.landcover import LandCover, cover_fractions
from pipelines.fires.persistent import FireHistory, PersistenceRule
from pipelines.grid.cells import CHINA_ALBERS

UNKNOWN_REASON_ZH = "地类不明：火点不在土地覆盖数据范围内"
UNKNOWN_REASON_EN = "land cover unknown: the pixel is outside the land-cover raster (or on its nodata)"
NO_LANDCOVER_REASON_ZH = "地类不明：没有可用的土地覆盖数据"
NO_LANDCOVER_REASON_EN = "land cover unknown: no usable land-cover raster ([classify] landcover, see run.json)"
UNKNOWN_REASON = f"{UNKNOWN_REASON_ZH} {UNKNOWN_REASON_EN}"
NO_LANDCOVER_REASON = f"{NO_LANDCOVER_REASON_ZH} {NO_LANDCOVER_REASON_EN}"
# ``reason`` is both sentences (Chinese first) for analysts; pages pick ``reason_zh`` or ``reason_en`` by [maps] language.
CLASS_COLUMNS = ["category", "reason", "reason_zh", "reason_en", "cropland_fraction", "plant_id", "plant_name", "plant_km", "persistent_days"]
REASON_COLUMNS = ("reason", "reason_zh", "reason_en")
PLANT_KINDS_ZH = {"steel plant": "钢铁厂", "power plant": "电厂", "industrial site": "工厂"}  # by the end of the plant kind


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
    reasons_zh, reasons_en = [], []
    for i in range(n):
        zh, en = _reason(str(category[i]), i, near, days, crop, veg, centre, classifier, day)
        reasons_zh.append(zh)
        reasons_en.append(en)
    out["category"] = pd.array(category, dtype="string")
    out["reason"] = pd.array([f"{zh} {en}" for zh, en in zip(reasons_zh, reasons_en)], dtype="string")
    out["reason_zh"] = pd.array(reasons_zh, dtype="string")
    out["reason_en"] = pd.array(reasons_en, dtype="string")
    out["cropland_fraction"] = crop
    out["plant_id"] = near["plant_id"].to_numpy()
    out["plant_name"] = near["plant_name"].to_numpy()
    out["plant_km"] = near["plant_km"].to_numpy()
    out["persistent_days"] = np.asarray(days, dtype=np.int64)
    return out


def _kind_zh(kind: str) -> str:
    """A plant kind ("coal power plant", "steel plant") in Chinese words a supervisor uses."""
    fuel = {"coal": "燃煤", "gas": "燃气", "oil": "燃油", "biomass": "生物质"}.get(kind.split(" ")[0], "")
    base = next((zh for en, zh in PLANT_KINDS_ZH.items() if kind.endswith(en)), "工厂")
    return fuel + base if base == "电厂" else base


def _reason(c: str, i: int, near: pd.DataFrame, days: np.ndarray, crop: np.ndarray, veg: np.ndarray, centre: np.ndarray,
            classifier: Classifier, day: dt.date) -> tuple[str, str]:
    """Why fire ``i`` is of category ``c``: (plain Chinese for a supervisor, English for an analyst)."""
    if c == "industrial":
        kind, name, pid = near["plant_kind"].iat[i], near["plant_name"].iat[i], near["plant_id"].iat[i]
        km, buffer = near["plant_km"].iat[i], near["buffer_km"].iat[i]
        return (f"靠近{_kind_zh(str(kind))}“{name}”，约 {km:.1f} 公里：多为厂内热源，不是秸秆焚烧",
                f"{kind} {name} ({pid}): {km:.1f} km from the pixel centre; the pixel reaches its {buffer:g} km buffer")
    if c == "persistent":
        window, least = classifier.rule.window_days, classifier.rule.min_days
        return (f"固定热源：此处过去 {window} 天里有 {days[i]} 天出现火点（{least} 天及以上即视为固定热源）",
                f"persistent heat source: fires on {days[i]} days in the {window} days before "
                f"{day.isoformat()} (at least {least} make a place persistent)")
    if c == "unknown":
        if classifier.landcover is not None:
            return UNKNOWN_REASON_ZH, UNKNOWN_REASON_EN
        return NO_LANDCOVER_REASON_ZH, NO_LANDCOVER_REASON_EN
    return (f"火点范围内耕地约占 {crop[i]:.0%}，林草等自然植被约占 {veg[i]:.0%}",
            f"{crop[i]:.0%} of the pixel is cropland, {veg[i]:.0%} natural vegetation (class {centre[i]} at its centre)")


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
    for column in REASON_COLUMNS:
        if column in decisive:
            out[column] = pd.array(out["event_id"].map(decisive[column]), dtype="string")
    return out
