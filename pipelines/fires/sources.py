"""What classification needs besides the day's fires: plant lists, land cover, fire history, the county table,
and the before-sowing and before-rain inputs of ``[sowing]`` and ``[rain]`` (``load_sources``)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from pipelines.core.exceptions import RunError
from pipelines.core.files import expand_patterns
from pipelines.core.manifest import file_record
from pipelines.core.settings import Config
from pipelines.core.skips import Skip
from pipelines.fires.classify import Classifier
from pipelines.fires.landcover import LandCover, LandCoverError, land_hectares
from pipelines.fires.persistent import FireHistory, PersistenceRule, PersistentError
from pipelines.fires.readers.plants import read_plant_lists
from pipelines.grid.attribution import PointIndex
from pipelines.grid.cells import GridError, codes_as_text, read_layer
from pipelines.windows.rain import RainRule, before_rain, open_precip_grid, read_stations
from pipelines.windows.sowing import before_sowing, check_doy_raster, read_sowing_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """What classification and the report need besides the day's fires."""

    classifier: Classifier
    plant_skips: list[Skip]
    plant_counts: list[dict]
    counties: pd.DataFrame  # county -> city -> province codes and names, for the report
    history_record: dict | None = None  # the history file as read (path, bytes, SHA-256), before any update
    sowing: dict | None = None  # keyword arguments of cropcal.before_sowing, None when not configured
    rain: list[tuple[str, object, bool]] = field(default_factory=list)  # (label, precipitation, is forecast), in order of preference
    rain_rule: RainRule = RainRule()

    def before_sowing(self, fires: pd.DataFrame) -> pd.DataFrame | None:
        """The 播种前 flags and evidence of fires (or of would-be fires), None when not configured."""
        return None if self.sowing is None else before_sowing(fires, counties=self.counties, **self.sowing)

    def cropland(self, grid: gpd.GeoDataFrame, index: PointIndex | None = None, cache: Path | None = None) -> pd.Series:
        """Hectares of cropland per cell (0 everywhere without a land-cover raster)."""
        land = self.land(grid, index, cache)
        return land["cropland_ha"] if land is not None else pd.Series(0.0, index=grid["cell_id"].to_numpy())

    def land(self, grid: gpd.GeoDataFrame, index: PointIndex | None = None, cache: Path | None = None) -> pd.DataFrame | None:
        """Per cell: hectares of cropland, of area and of area the land cover classifies
        (``landcover.land_hectares``, kept in ``cache`` between runs); None without a land-cover raster."""
        landcover = self.classifier.landcover
        return land_hectares(grid, landcover, index, cache=cache) if landcover else None

    def before_rain(self, fires: pd.DataFrame, extra_h: float = 0.0) -> pd.DataFrame | None:
        """The 下雨前 flags and evidence: from the first source (forecasts, grids, stations) that knows.

        ``extra_h`` widens the horizon (the plan asks about a whole day ahead).
        """
        result = None
        rule = dataclasses.replace(self.rain_rule, horizon_h=self.rain_rule.horizon_h + extra_h)
        for label, precip, forecast in self.rain:
            flags = before_rain(fires, precip, rule, forecast=forecast)
            flags["rain_source"] = (label + ": " + flags["rain_source"].astype("string")).astype("string")
            if result is None:
                result = flags
            else:
                unknown = result["win_before_rain"].isna() & flags["win_before_rain"].notna()
                result.loc[unknown] = flags.loc[unknown]
        return result


def load_sources(config: Config) -> Sources:
    """Plant lists, land cover, fire history and the county table of ``config``.

    Example::

        sources = load_sources(config)
        fires = classify(fires, sources.classifier, dt.date(2022, 6, 3))   # day: Beijing date

    A land-cover raster that is missing or unusable, or a plant list with bad
    rows, only makes the run partial (fires of unknown land cover are
    ``unknown``); a missing history makes it less informed.
    """
    counties = _county_table(config)
    sowing, sowing_skips = _sowing_inputs(config)
    rain, rain_skips, rain_rule = _rain_inputs(config)
    if config.classify is None:
        log.warning("[classify] is off: no land cover or plant lists, so every fire is 'unknown' and none can be straw_suspect")
        return Sources(Classifier(plants=read_plant_lists([])[0]), rain_skips + sowing_skips, [], counties, sowing=sowing, rain=rain,
                       rain_rule=rain_rule)
    c = config.classify
    landcover: LandCover | None = LandCover(c.landcover, c.cropland_classes, c.vegetation_classes)
    skips = []
    try:
        landcover.check()
    except LandCoverError as exc:
        # Only classification depends on it: the night goes on with every fire's land cover unknown.
        skips.append(Skip(c.landcover.name, f"{exc}; every fire's land cover is unknown", field="landcover"))
        log.error("[classify] landcover: %s: fires are classified without land cover ('unknown')", exc)
        landcover = None
    plants, plant_skips, counts = read_plant_lists(c.industrial)
    skips += plant_skips
    history, rule = None, PersistenceRule()
    if config.persistent is not None:
        p = config.persistent
        rule = PersistenceRule(min_days=p.min_days, window_days=p.window_days, neighbourhood=p.neighbourhood)
        if p.path.exists():
            try:
                history = FireHistory.read(p.path)
            except PersistentError as exc:
                # Only the persistent-source mask depends on it: the night goes on without it.
                skips.append(Skip(p.path.name, f"{exc}; persistent heat sources are not masked tonight", field="path"))
                log.error("[persistent] path: %s: persistent heat sources are not masked", exc)
        else:
            log.warning("no fire history at %s: persistent heat sources are not masked (build it with `gridwatch persistent`)", p.path)
    classifier = Classifier(plants=plants, landcover=landcover, history=history, rule=rule, min_cropland=c.min_cropland)
    record = {**file_record(config.persistent.path), "cells": len(history)} if history is not None else None
    return Sources(classifier, skips + rain_skips + sowing_skips, counts, counties, record, sowing=sowing, rain=rain, rain_rule=rain_rule)


def _rain_inputs(config: Config) -> tuple[list[tuple[str, object, bool]], list[Skip], RainRule]:
    """Precipitation sources of ``[rain]`` in order of preference: forecasts, grids, stations."""
    r = config.rain
    if r is None:
        return [], [], RainRule()
    rule = RainRule(threshold_mm=r.threshold_mm, daily_threshold_mm=r.daily_threshold_mm, horizon_h=r.horizon_h,
                    max_station_km=r.max_station_km, sentinel_mm=r.sentinel_mm)
    sources: list[tuple[str, object, bool]] = []
    skips: list[Skip] = []
    base = config.base_dir
    for label, patterns, forecast in (("forecast", r.forecasts, True), ("analysis", r.grids, False)):
        paths = expand_patterns(patterns, base)
        if paths:
            try:
                sources.append((label, open_precip_grid(paths, variable=r.variable, accumulated=r.accumulated and forecast), forecast))
            except (OSError, ValueError, KeyError) as exc:
                skips += [Skip(p.name, f"cannot use as a precipitation grid: {exc}") for p in paths]
    for path in expand_patterns(r.stations, base):
        stations, skipped = read_stations(path, step_h=r.station_step_h, tz=r.station_tz, sentinel_mm=r.sentinel_mm)
        skips += skipped
        sources.append((f"stations {path.name}", stations, False))
    if not sources:
        log.warning("[rain]: no precipitation file matches; before-rain stays unknown")
    return sources, skips, rule


def _sowing_inputs(config: Config) -> tuple[dict | None, list[Skip]]:
    """The sowing table and rasters of ``[sowing]``, checked once per run.

    A crop-calendar raster that is missing or cannot be read whole is left out
    with a skip (before-sowing is then decided by the table and the defaults,
    or unknown); a missing table or sub-region list stops the run.
    """
    s = config.sowing
    if s is None:
        return None, []
    for path in (s.table, s.subregions):
        if not path.exists():
            raise RunError(f"[sowing]: {path}: file not found")
    table, skipped = read_sowing_table(s.table, s.subregions)
    # A reference table's unusable rows (notes without dates) are the same every night: a warning, not a partial run.
    for skip in skipped:
        log.warning("sowing table: %s", skip)
    rasters, skips = {}, []
    for season, key, path in (("S1", "winter_raster", s.winter_raster), ("S2", "summer_raster", s.summer_raster)):
        problem = check_doy_raster(path)
        if problem:
            skips.append(Skip(path.name, f"{problem}; before-sowing comes from the table and defaults only", field=key))
            log.error("[sowing] %s: %s", key, problem)
        else:
            rasters[season] = path
    return {"table": table, "rasters": rasters, "defaults": s.defaults,
            "lead_days": {"S1": s.winter_lead_days, "S2": s.summer_lead_days}, "days_before": s.days_before}, skips


def _county_table(config: Config) -> pd.DataFrame:
    """County, city and province codes and names from the ``[counties]`` columns, under fixed names.

    Columns ``district_adcode``, ``district_name``, ``city_adcode``,
    ``city_name``, ``province_adcode``, ``province_name`` (what ``report`` and
    ``cropcal`` read). A configured column the layer lacks is a ``RunError``
    naming the file and the key; city columns set to "" put every county in
    city "unknown", with a warning.
    """
    c = config.counties
    try:
        raw = read_layer(c.path)
    except GridError as exc:
        raise RunError(f"[counties] path: {exc}") from None
    keys = {"code_column": "district_adcode", "name_column": "district_name", "city_code_column": "city_adcode",
            "city_name_column": "city_name", "province_code_column": "province_adcode", "province_name_column": "province_name"}
    columns = {key: getattr(c, key) for key in keys}
    absent = [f"{key} = {column!r}" for key, column in columns.items() if column and column not in raw.columns]
    if absent:
        have = ", ".join(str(col) for col in raw.columns if col != "geometry")
        raise RunError(f"{c.path}: [counties] {'; '.join(absent)}: no such column in the layer (it has: {have})")
    if not (c.city_code_column and c.city_name_column):
        log.warning("[counties] city_code_column / city_name_column not set: every county is in city \"unknown\" in report.csv")
    table = pd.DataFrame(index=raw.index)
    for key, new in keys.items():
        if not columns[key]:
            table[new] = pd.Series(pd.NA, index=raw.index, dtype="string")
        elif new.endswith("_adcode"):  # 410225, 410225.0 and "410225" alike
            table[new] = codes_as_text(raw[columns[key]])
        else:
            table[new] = raw[columns[key]].astype("string")
    return table
