"""gridwatch: satellite fire and electricity surveillance by supervision grid cell.

The functions the nightly run is made of, for notebooks and scripts::

    import datetime as dt
    import pipelines as gw

    config = gw.load_config("config.toml")
    grid = gw.load_supervision_grid(config)                  # GeoDataFrame, EPSG:4326
    files = gw.expand_patterns(config.fires.points, config.base_dir, dt.date(2022, 6, 3))
    points, skips, per_file = gw.read_fires(files, bbox=config.region.bbox, day=dt.date(2022, 6, 3)).compute()
    fires = gw.flag_clock_windows(gw.attribute(gw.dedupe(points)[0], grid))

Every name in ``__all__`` is loaded on first use (PEP 562 module
``__getattr__``): ``import pipelines`` itself imports none of pandas, dask,
geopandas or folium, so a command-line tool or a worker that needs one
function does not pay for the maps. Times are UTC or Beijing time (UTC+8) as
each column's name says (``time_utc``, ``time_bjt``); a "day" is a Beijing
date; coordinates are WGS84 degrees (EPSG:4326) unless stated.

The classification function shares its name with its module, so it is not
exported here: ``from pipelines.fires.classify import classify``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Exported name -> submodule (relative to this package) that defines it, in the order of a nightly run.
_EXPORTS: dict[str, str] = {
    # Configuration, grid and reference layers.
    "load_config": "run.config",
    "load_supervision_grid": "grid.cells",
    "load_grid": "grid.cells",
    "load_counties": "grid.cells",
    "load_sources": "fires.sources",
    # Fire points and fire-mask rasters, read lazily with dask.
    "expand_patterns": "core.files",
    "read_fires": "fires.load",
    "dedupe": "fires.load",
    "detect_raster": "fires.readers.rasters",
    "open_scans": "fires.readers.rasters",
    "extract_fires": "fires.rasters",
    "read_raster_fires": "fires.rasters",
    # Where each fire is, and when.
    "PointIndex": "grid.attribution",
    "attribute": "grid.attribution",
    "ClockWindows": "windows.sun",
    "flag_clock_windows": "windows.sun",
    # Events, classification, report.
    "FusionTolerance": "fires.events",
    "assign_events": "fires.events",
    "events_table": "fires.events",
    "classify_events": "fires.classify",
    "report_table": "publish.report",
    # Maps.
    "overview_map": "publish.maps",
    "cell_map": "publish.maps",
    "save_map": "publish.maps",
    # Electricity sites.
    "read_readings": "power.readers",
    "reading_format": "power.electricity",
    "reading_files": "power.electricity",
    "day_use": "power.meters",
    "PowerState": "power.state",
    "WorkCalendar": "power.holidays",
    "load_fleet": "power.electricity",
    "site_rules": "power.electricity",
    "find_sites": "power.sites",
    "nightly_sites": "power.electricity",
    "store_state": "power.electricity",
    # The whole night.
    "run_nightly": "run.nightly",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs only: at run time these load lazily
    from pipelines.core.files import expand_patterns
    from pipelines.fires.classify import classify_events
    from pipelines.fires.events import FusionTolerance, assign_events, events_table
    from pipelines.fires.load import dedupe, read_fires
    from pipelines.fires.rasters import extract_fires, read_raster_fires
    from pipelines.fires.readers.rasters import detect_raster, open_scans
    from pipelines.fires.sources import load_sources
    from pipelines.grid.attribution import PointIndex, attribute
    from pipelines.grid.cells import load_counties, load_grid, load_supervision_grid
    from pipelines.power.electricity import load_fleet, nightly_sites, reading_files, reading_format, site_rules, store_state
    from pipelines.power.holidays import WorkCalendar
    from pipelines.power.meters import day_use
    from pipelines.power.readers import read_readings
    from pipelines.power.sites import find_sites
    from pipelines.power.state import PowerState
    from pipelines.publish.maps import cell_map, overview_map, save_map
    from pipelines.publish.report import report_table
    from pipelines.run.config import load_config
    from pipelines.run.nightly import run_nightly


def _load(name: str) -> Any:
    """The exported object ``name``, importing its submodule on first use."""
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        # AttributeError (not KeyError) so that `from pipelines import publish` falls back to the subpackage.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _load(name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
