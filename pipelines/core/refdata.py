"""The reference data shipped inside the package (``pipelines/data/``).

County polygons, a China-wide land-cover raster, the steel and power plant
lists and the crop-calendar tables: what ``gridwatch init`` copies into a new
site folder, and what a configuration without ``[counties]``, ``[classify]``
or ``[sowing]`` falls back to. ``data/README.md`` says where each comes from.

Paths are found through ``importlib.resources`` (the installed package, not a
source checkout), so they hold wherever gridwatch is installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Relative paths inside a data folder: the same layout as the project's geodata/,
# so `gridwatch init --from-data geodata` takes the same files from there.
COUNTIES = "china_counties.parquet"
LANDCOVER = "landcover/MCD12C1_2019_IGBP_china_0.05deg.tif"
STEEL_PLANTS = "industrial/gem_steel_plants_china.csv"
POWER_PLANTS = "industrial/wri_power_plants_china.csv"
SOWING_TABLE = "crop_calendar/winter_wheat_sowing_windows_by_region.csv"
SUBREGION_CITIES = "crop_calendar/subregion_cities.csv"
WINTER_RASTER = "crop_calendar/cropcalendars_phase2_smoothed_S1_SOS_ncp-yrd_WGS84.tif"
SUMMER_RASTER = "crop_calendar/cropcalendars_phase2_smoothed_S2_SOS_ncp-yrd_WGS84.tif"
ALL = (COUNTIES, LANDCOVER, STEEL_PLANTS, POWER_PLANTS, SOWING_TABLE, SUBREGION_CITIES, WINTER_RASTER, SUMMER_RASTER)

# Column names of the shipped county layer.
COUNTY_COLUMNS = {
    "code_column": "district_adcode",
    "name_column": "district_name",
    "province_code_column": "province_adcode",
    "province_name_column": "province_name",
    "city_code_column": "city_adcode",
    "city_name_column": "city_name",
}


def data_dir() -> Path:
    """The folder of the shipped reference data (inside the installed package)."""
    return Path(str(resources.files("pipelines") / "data"))


def shipped(relative: str) -> Path:
    """The shipped file at ``relative`` (one of the constants above)."""
    return data_dir() / relative
