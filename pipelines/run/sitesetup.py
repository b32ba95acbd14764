"""``gridwatch init``: a new site folder with a starter config, its grid and the reference data it needs.

A site is one folder::

    config.toml        commented starter configuration (paths relative to it)
    grid.parquet       square cells over the chosen counties (``cells.make_grid``)
    data/              copies of the reference data: county layer, land cover,
                       plant lists, crop calendars (see ``refdata``)
    fires/             where the day's FIRMS files are put (empty)

The reference data is copied, not referenced: a site keeps working, with the
same answers, when gridwatch is upgraded or uninstalled, and ``run.json``
hashes the files the site actually used. It comes from the installed package
(``pipelines/data``) or from ``--from-data DIR``, a folder with the same
layout (such as the project's ``geodata/``).
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from pipelines import __version__
from pipelines.core import refdata
from pipelines.core.exceptions import SetupError
from pipelines.core.settings import CountiesConfig
from pipelines.grid.cells import GridError, load_counties, make_grid

CONFIG_NAME = "config.toml"
GRID_NAME = "grid.parquet"
BBOX_MARGIN_DEG = 0.1  # degrees around the grid in [region] bbox: fires just outside still show as "outside the grid"


@dataclass(frozen=True)
class Site:
    """What ``init_site`` wrote."""

    folder: Path
    config: Path
    grid: Path
    cells: int
    counties: int
    copied: list[Path]  # reference files, inside folder/data
    source: Path  # where they were copied from


def init_site(folder: Path, *, counties: tuple[str, ...] = (), provinces: tuple[str, ...] = (), cell_km: float = 5.0,
              from_data: Path | None = None, force: bool = False) -> Site:
    """Set up a site in ``folder`` (created if needed) for the given county and/or province adcodes.

    Raises ``SetupError`` (nothing written) when no code is given, a code is
    not in the county layer, a reference file is missing, or ``folder``
    already holds a config or grid (unless ``force``).

    Example::

        site = init_site(Path("mysite"), counties=("230102", "230103"), cell_km=2.0)
        site.config      # mysite/config.toml: run `gridwatch nightly --date D --config mysite/config.toml`
    """
    if not (counties or provinces):
        raise SetupError("give the counties (--counties 230102,230103) or provinces (--provinces 230000) to cover")
    if not cell_km > 0:
        raise SetupError(f"--cell-km {cell_km}: expected a positive number of km")
    source = Path(from_data) if from_data is not None else refdata.data_dir()
    absent = [name for name in refdata.ALL if not (source / name).is_file()]
    if absent:
        raise SetupError(f"{source}: reference data missing: {', '.join(absent)} (expected the layout of gridwatch's pipelines/data)")
    folder = Path(folder)
    existing = [p.name for p in (folder / CONFIG_NAME, folder / GRID_NAME) if p.exists()]
    if existing and not force:
        raise SetupError(f"{folder}: already has {', '.join(existing)}; use --force to overwrite")

    try:
        layer = load_counties(CountiesConfig(source / refdata.COUNTIES))
        grid = make_grid(layer, cell_km, tuple(provinces), tuple(counties))
    except GridError as exc:
        raise SetupError(str(exc)) from None

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fires").mkdir(exist_ok=True)
    copied = []
    for name in refdata.ALL:
        target = folder / "data" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)  # follows links: a site holds the files themselves
        copied.append(target)
    grid_path = folder / GRID_NAME
    tmp = grid_path.with_name(f".{GRID_NAME}.tmp")
    grid.to_parquet(tmp, compression="zstd", write_covering_bbox=False)
    tmp.replace(grid_path)
    config_path = folder / CONFIG_NAME
    config_path.write_text(starter_config(grid, counties=counties, provinces=provinces, cell_km=cell_km, source=source), encoding="utf-8")
    return Site(folder, config_path, grid_path, len(grid), int(grid["county_code"].nunique()), copied, source)


def starter_config(grid: gpd.GeoDataFrame, *, counties: tuple[str, ...], provinces: tuple[str, ...], cell_km: float, source: Path) -> str:
    """The commented ``config.toml`` of a new site whose grid is ``grid`` (every path relative to the site folder)."""
    lon0, lat0, lon1, lat1 = grid.total_bounds
    bbox = [math.floor((lon0 - BBOX_MARGIN_DEG) * 100) / 100, math.floor((lat0 - BBOX_MARGIN_DEG) * 100) / 100,
            math.ceil((lon1 + BBOX_MARGIN_DEG) * 100) / 100, math.ceil((lat1 + BBOX_MARGIN_DEG) * 100) / 100]
    names = grid.drop_duplicates("county_code")
    covers = "、".join(names["county_name"].head(8)) + (f" … ({len(names)} counties)" if len(names) > 8 else "")
    quoted = lambda codes: "[" + ", ".join(f'"{c}"' for c in codes) + "]"  # noqa: E731 - TOML list of strings
    return f'''\
# gridwatch site configuration, written by `gridwatch init` {__version__} on {dt.date.today().isoformat()}
# for {covers}.
# Every key is documented in gridwatch's README ("Configuration"). Relative paths are relative to
# this file; coordinates are WGS84 degrees. Sections left out fall back to documented defaults,
# with one warning each in run.json.
#
# Daily use: put the day's fire files (NASA FIRMS CSV/TXT, Himawari L2 WLF CSV) into fires/, then
#     gridwatch nightly --date YYYY-MM-DD --config {CONFIG_NAME}
# The reference data in data/ was copied from {source}.

[output]
dir = "out"                            # root of the <date>/ folders; `--out` overrides

[region]
bbox = {bbox}  # lon_min, lat_min, lon_max, lat_max (degrees): the grid plus {BBOX_MARGIN_DEG}°; fires outside are dropped on read

[grid]
path = "{GRID_NAME}"                  # made by `gridwatch init` (make-grid); or your own township layer (GPKG, GeoJSON, SHP, GeoParquet)
crs = ""                               # "" = the file's own CRS; "GCJ-02" for outlines traced on Amap/Tencent, "BD-09" on Baidu
id_column = "cell_id"
name_column = "cell_name"
county_column = "county_code"          # 6-digit county adcode
supervisor_column = "supervisor"       # fill it in grid.parquet (e.g. in QGIS) to name each cell's 网格员; "unassigned" until then
county_name_column = "county_name"
province_column = "province_code"
province_name_column = "province_name"

[counties]                             # county polygons: names, cities, provinces for the report; make-grid clips to them
path = "data/{refdata.COUNTIES}"
code_column = "district_adcode"        # the columns of that layer: change them with the layer
name_column = "district_name"
city_code_column = "city_adcode"       # "" if the layer has no cities (the report then puts every county in city "unknown")
city_name_column = "city_name"
province_code_column = "province_adcode"
province_name_column = "province_name"

[make_grid]                            # `gridwatch make-grid --config {CONFIG_NAME}` remakes {GRID_NAME} (supervisors are lost)
cell_km = {cell_km:g}                          # side of a square cell, km
provinces = {quoted(provinces)}
counties = {quoted(counties)}
out = "{GRID_NAME}"

[fires]
points = ["fires/*.csv"]               # glob patterns; "{{date:%Y%m%d}}" is replaced by the run date; add "fires/*.txt" for NOAA CSPP text files
rasters = []                           # fire-mask rasters (GeoTIFF, swath or geostationary NetCDF), e.g. ["fires/ahi/*.nc"]
min_confidence = 0.0                   # percent (0-100): fires with a lower normalized confidence are dropped

[windows]
mode = "sun"                           # 收工时 / 上半夜 relative to local sunset; "fixed": fixed_* clock times
after_work_start_h = -1.5              # 收工时 starts at sunset + this many hours
after_work_end_h = 0.5                 # 收工时 ends, 上半夜 starts, at sunset + this many hours
first_half_night_end = "24:00"         # 上半夜 ends at this Beijing clock time

[events]                               # observations of one fire, from every sensor, fused into events
distance_km = 0.0                      # km; 0 = from the pixel sizes
max_gap_h = 5.0                        # hours between consecutive observations of one event

[plan]                                 # tomorrow's patrol plan
recent_days = 7                        # days of earlier runs whose suspected straw burning ranks a cell

[maps]
tiles = "OpenStreetMap"                # basemap (needs network): "openstreetmap", "tianditu" (+ tianditu_key), "amap", "" = none
language = "both"                      # "zh", "en" or "both"

[classify]                             # straw_suspect, industrial, persistent, other_vegetation, other
landcover = "data/{refdata.LANDCOVER}"  # MODIS MCD12C1 2019 IGBP, China
cropland_classes = [12, 14]            # IGBP 12 croplands, 14 cropland/natural mosaic
vegetation_classes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
min_cropland = 0.5                     # fraction (0-1) of a pixel footprint on cropland for straw_suspect

[[classify.industrial]]                # heat sources: a fire whose pixel reaches within buffer_km is the plant's
path = "data/{refdata.STEEL_PLANTS}"
format = "gem_steel"
buffer_km = 3.0

[[classify.industrial]]
path = "data/{refdata.POWER_PLANTS}"
format = "wri_power"
buffer_km = 2.0
fuels = ["Coal", "Gas"]

# [[classify.industrial]]              # your own list: CSV with name/lon/lat, or a point layer
# path = "my_plants.csv"
# format = "points"
# buffer_km = 1.0

[persistent]                           # places that burn on many days are not straw burning
path = "persistent_history.parquet"    # built by `gridwatch persistent` from archive; missing = a warning, no mask yet
archive = ["fires/*"]
update = true                          # each night adds its fires, so the history grows with the site

[sowing]                               # 播种前; the shipped tables cover the North China Plain and the Yangtze delta:
table = "data/{refdata.SOWING_TABLE}"   # elsewhere add [[sowing.defaults]] windows for your crops, or before-sowing stays unknown
subregions = "data/{refdata.SUBREGION_CITIES}"
winter_raster = "data/{refdata.WINTER_RASTER}"
summer_raster = "data/{refdata.SUMMER_RASTER}"

# [[sowing.defaults]]                  # a window where neither table nor raster gives one
# name = "local"
# bbox = {bbox}
# crop = "maize"
# start_mmdd = "04-25"
# end_mmdd = "05-20"
# season = "S2"

# [rain]                               # 下雨前: without precipitation data it stays unknown (one warning per run)
# forecasts = ["rain/forecast_*.nc"]
# stations = ["rain/stations_*.csv"]

# [electricity]                        # dedicated-transformer readings: see README "Electricity sites"
'''
