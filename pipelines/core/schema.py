"""Column contracts shared by every stage.

Fire points, whatever their source, become one tidy frame with ``FIRE_COLUMNS``;
grids become one GeoDataFrame with ``GRID_COLUMNS``. All coordinates are WGS84
(EPSG:4326, degrees); all instants are stored in UTC and shown in Beijing time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WGS84 = "EPSG:4326"
BEIJING_TZ = "Asia/Shanghai"

# Fire points as the readers return them (before attribution), in this order.
FIRE_DTYPES: dict[str, object] = {
    "fire_id": pd.StringDtype(),  # stable hash of product, satellite, time and position
    "time_utc": pd.DatetimeTZDtype("ns", "UTC"),
    "time_bjt": pd.DatetimeTZDtype("ns", BEIJING_TZ),
    "lon": np.dtype("float64"),  # pixel centre, degrees east, WGS84
    "lat": np.dtype("float64"),  # pixel centre, degrees north, WGS84
    "sensor": pd.StringDtype(),  # MODIS, VIIRS, AHI; MERSI, AGRI, ... from agency tables
    "satellite": pd.StringDtype(),  # Terra, Aqua, Suomi NPP, NOAA-20, NOAA-21, Himawari-9; FY-3D, FY-4B, ...
    "product": pd.StringDtype(),  # e.g. MCD14DL C6.1 NRT, VNP14IMGTDL 2.0NRT, L2WLF 010
    "confidence": np.dtype("float64"),  # 0-100, normalized across products
    "confidence_level": pd.StringDtype(),  # low, nominal, high
    "confidence_raw": pd.StringDtype(),  # the value as written in the source
    "frp_mw": np.dtype("float64"),  # fire radiative power, MW (NaN where unknown)
    "daynight": pd.StringDtype(),  # D or N
    "cloud_fraction": np.dtype("float64"),  # 0-1, cloud share of the pixels around a raster fire pixel (NaN: unknown)
    "scan_km": np.dtype("float64"),  # pixel size along scan, km
    "track_km": np.dtype("float64"),  # pixel size along track, km
    "source_file": pd.StringDtype(),  # file name the row was read from
    "source_row": np.dtype("int64"),  # 1-based line number in that file (header is line 1), or pixel row of a raster
    "source_col": pd.Int64Dtype(),  # 1-based pixel column of a raster; <NA> for point files
    # The places an agency's own table names (NSMC, provincial bulletins), kept beside
    # gridwatch's attribution so disagreements show; <NA> for every other source.
    "agency_province": pd.StringDtype(),
    "agency_city": pd.StringDtype(),
    "agency_county": pd.StringDtype(),
    "agency_township": pd.StringDtype(),
}
AGENCY_COLUMNS = ["agency_province", "agency_city", "agency_county", "agency_township"]
FIRE_COLUMNS = list(FIRE_DTYPES)

# Columns attribution adds (grid cell of the pixel centre; cells its footprint touches).
ATTRIBUTION_DTYPES: dict[str, object] = {
    "cell_id": pd.StringDtype(),  # <NA> when the centre lies in no cell
    "cell_name": pd.StringDtype(),
    "county_code": pd.StringDtype(),
    "county_name": pd.StringDtype(),
    "province_code": pd.StringDtype(),
    "province_name": pd.StringDtype(),
    "supervisor": pd.StringDtype(),
    "cells_touched": object,  # list[str]: every cell the pixel footprint intersects
}

# The four high-risk windows. Booleans; the last two are nullable (<NA> = unknown)
# until weather and crop-calendar inputs fill them.
WINDOW_COLUMNS = ["win_after_work", "win_first_half_night", "win_before_rain", "win_before_sowing"]
WINDOW_LABELS = {
    "win_after_work": "收工时 after work",
    "win_first_half_night": "上半夜 first half of night",
    "win_before_rain": "下雨前 before rain",
    "win_before_sowing": "播种前 before sowing",
}

# What a fire (or event) is, in order of precedence: a fire near a listed plant is
# industrial even on cropland; only what is left on cropland is suspected straw burning.
# ``unknown``: no land cover under the pixel, so it may be cropland; it ranks above ``other``
# so that a fire on known towns or water never hides it within one event.
CATEGORIES = ("industrial", "persistent", "straw_suspect", "other_vegetation", "unknown", "other")
CATEGORY_LABELS = {
    "straw_suspect": "疑似秸秆焚烧 suspected straw burning",
    "industrial": "工业热源 industrial heat source",
    "persistent": "固定热源 persistent heat source",
    "other_vegetation": "其他植被 other vegetation",
    "unknown": "地类不明 land cover unknown",
    "other": "其他 other",
}

# The supervision grid, as every stage after loading sees it (EPSG:4326).
GRID_COLUMNS = [
    "cell_id",
    "cell_name",
    "county_code",
    "county_name",
    "province_code",
    "province_name",
    "supervisor",
    "geometry",
]


def empty_fires() -> pd.DataFrame:
    """A zero-row frame with the fire schema (the ``meta`` of lazy readers)."""
    return _EMPTY_FIRES.copy()


_EMPTY_FIRES = pd.DataFrame({c: pd.Series(dtype=t) for c, t in FIRE_DTYPES.items()})
