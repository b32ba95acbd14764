"""Make the weather test fixtures from the real UCI hourly files.

Run from the repository root with the shared data mounted::

    /work/venv/bin/python tests/data/weather/make_fixtures.py [/work/shared/data/weather]

Writes, next to this script (see SOURCES.md for provenance):

* ``beijing_multisite_201607.csv``: the canonical station format
  (``station, lon, lat, time, mm``) for the four UCI multisite stations
  Aotizhongxin, Dingling, Huairou and Shunyi, 2016-07-10 00:00 to 2016-07-26
  23:00 Beijing time (the 19-20 July 2016 Beijing rainstorm). ``time`` is
  written **naive, in Beijing local time**, exactly as the UCI
  year/month/day/hour columns give it, so the reader must be told
  ``tz="Asia/Shanghai"``. ``mm`` is the raw RAIN text (mm in that hour).
* ``uci_5cities_201511.csv``: the same format for the UCI "PM2.5 five cities"
  Beijing and Shenyang rows of 2015-11-01 00:00 to 2015-11-14 23:00 Beijing
  time, with times written with an explicit ``+08:00`` offset. ``mm`` is the
  raw ``precipitation`` text, so it keeps Beijing's 999990 sentinel
  (2015-11-07 13:00) and the NA values (Beijing 2015-11-05/06/08, Shenyang's
  90-hour gap from 2015-11-07 20:00).
* ``precip_grid.nc``: an hourly "analysis" grid (time x lat x lon, 0.1 deg cells
  centred on 115.9-117.1 E, 39.7-40.7 N) in which every cell carries the hourly
  series of its nearest multisite station (great-circle distance). Time is
  the UTC end of each hourly step. Made from the stations, so the tests can
  check the grid path gives the station answers.
* ``precip_forecast_2016071700.nc``, ``precip_forecast_2016071812.nc``: two
  "forecasts" on the same grid, issued 2016-07-17T00Z (48 h) and
  2016-07-18T12Z (72 h), whose ``precipitation`` is **accumulated since the
  issue time** (float32, as real NWP output) and which carry a scalar
  ``forecast_reference_time``. They are perfect forecasts: the accumulated
  station observations.

The UCI hour ``h`` is taken to be the hour *ending* at h:00 Beijing time (the
usual convention for hourly gauge totals reported at the hour); the files do
not say.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

HERE = Path(__file__).resolve().parent

# Public locations of the four multisite stations (approximate; the UCI files
# carry no coordinates). See SOURCES.md.
MULTISITE = {
    "Aotizhongxin": (116.397, 39.982),
    "Dingling": (116.220, 40.292),
    "Huairou": (116.628, 40.328),
    "Shunyi": (116.655, 40.127),
}
MULTISITE_SPAN = ("2016-07-10 00:00", "2016-07-26 23:00")  # Beijing local time

# City-centre approximations: the five-cities data set does not locate its
# weather observations. Only used for the sentinel / missing-value tests.
FIVE_CITIES = {
    "Beijing": ("BeijingPM20100101_20151231.csv", 116.40, 39.90),
    "Shenyang": ("ShenyangPM20100101_20151231.csv", 123.43, 41.80),
}
FIVE_CITIES_SPAN = ("2015-11-01 00:00", "2015-11-14 23:00")

GRID_LON = np.round(np.arange(115.9, 117.1 + 1e-9, 0.1), 1)
GRID_LAT = np.round(np.arange(39.7, 40.7 + 1e-9, 0.1), 1)
FORECASTS = [
    ("2016-07-17T00:00", 48),
    ("2016-07-18T12:00", 72),
]  # issue (UTC), length (h)


def _local_times(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame[["year", "month", "day", "hour"]])


def multisite(src: Path) -> pd.DataFrame:
    rows = []
    for name, (lon, lat) in MULTISITE.items():
        # Read mm as text: the fixture must keep the raw values.
        raw = pd.read_csv(
            src / "uci_beijing_multisite" / f"PRSA_Data_{name}_20130301-20170228.csv",
            dtype={"RAIN": str},
            keep_default_na=False,
        )
        t = _local_times(raw)
        keep = (t >= MULTISITE_SPAN[0]) & (t <= MULTISITE_SPAN[1])
        rows.append(
            pd.DataFrame(
                {
                    "station": name,
                    "lon": lon,
                    "lat": lat,
                    "time": t[keep].dt.strftime("%Y-%m-%dT%H:%M"),
                    "mm": raw.loc[keep, "RAIN"],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def five_cities(src: Path) -> pd.DataFrame:
    rows = []
    for name, (file, lon, lat) in FIVE_CITIES.items():
        raw = pd.read_csv(src / "uci_pm25_5cities" / file, dtype=str, keep_default_na=False)
        t = pd.to_datetime(raw[["year", "month", "day", "hour"]].astype(int))
        keep = (t >= FIVE_CITIES_SPAN[0]) & (t <= FIVE_CITIES_SPAN[1])
        rows.append(
            pd.DataFrame(
                {
                    "station": name,
                    "lon": lon,
                    "lat": lat,
                    "time": t[keep].dt.strftime("%Y-%m-%dT%H:%M+08:00"),
                    "mm": raw.loc[keep, "precipitation"],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _haversine_km(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(a))


def grids(stations: pd.DataFrame) -> None:
    t_utc = pd.to_datetime(stations["time"]).dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC").dt.tz_localize(None)
    wide = (
        stations.assign(t=t_utc, v=pd.to_numeric(stations["mm"], errors="coerce"))
        .pivot(index="t", columns="station", values="v")
        .sort_index()
    )
    names = list(MULTISITE)
    lon2, lat2 = np.meshgrid(GRID_LON, GRID_LAT)
    d = np.stack([_haversine_km(lon2, lat2, *MULTISITE[n]) for n in names])
    nearest = d.argmin(axis=0)  # (lat, lon) -> station index
    series = wide[names].to_numpy(dtype=np.float64)  # (time, station)
    field = series[:, nearest]  # (time, lat, lon)

    coords = {"time": wide.index.to_numpy(), "lat": GRID_LAT, "lon": GRID_LON}
    lat_attrs = {"units": "degrees_north", "standard_name": "latitude"}
    lon_attrs = {"units": "degrees_east", "standard_name": "longitude"}
    station_map = "; ".join(f"{i}={n}" for i, n in enumerate(names))
    analysis = xr.Dataset(
        {
            "precipitation": (
                ("time", "lat", "lon"),
                field.astype(np.float32),
                {
                    "units": "mm",
                    "long_name": "precipitation in the hour ending at time",
                },
            ),
            "nearest_station": (
                ("lat", "lon"),
                nearest.astype(np.int8),
                {"flag_meanings": station_map},
            ),
        },
        coords=coords,
        attrs={
            "title": "Test fixture: hourly precipitation gridded from 4 UCI Beijing multisite stations",
            "source": "UCI Beijing Multi-Site Air-Quality Data (RAIN), 2016-07-10..26 Beijing time",
            "method": "each 0.1 deg cell takes the hourly series of its nearest station (great-circle); "
            "not an interpolation, not a real analysis",
            "time_convention": "UTC, end of the hourly step (UCI hour h Beijing time = step ending h:00 BJT)",
            "Conventions": "CF-1.8",
        },
    )
    analysis["lat"].attrs.update(lat_attrs)
    analysis["lon"].attrs.update(lon_attrs)
    # One stored chunk per time step, matching the reader's dask chunks.
    enc = {
        "precipitation": {
            "zlib": True,
            "complevel": 9,
            "chunksizes": (1, len(GRID_LAT), len(GRID_LON)),
        }
    }
    analysis.to_netcdf(HERE / "precip_grid.nc", encoding=enc)

    for issued, hours in FORECASTS:
        ref = pd.Timestamp(issued)
        times = pd.date_range(ref + pd.Timedelta(hours=1), periods=hours, freq="h")
        hourly = analysis["precipitation"].astype(np.float64).sel(time=times)
        # Accumulate in float64, store float32 like real NWP output: the
        # reader's differencing must cope with the round-off.
        acc = hourly.cumsum("time").astype(np.float32)
        acc.attrs = {
            "units": "mm",
            "long_name": "precipitation accumulated since forecast_reference_time",
        }
        fc = xr.Dataset(
            {"precipitation": acc},
            attrs={
                **analysis.attrs,
                "title": "Test fixture: perfect 'forecast' (accumulated observations) on the station-derived grid",
            },
        )
        fc = fc.assign_coords(forecast_reference_time=np.datetime64(ref.to_datetime64(), "ns"))
        fc["forecast_reference_time"].attrs["standard_name"] = "forecast_reference_time"
        fc.to_netcdf(HERE / f"precip_forecast_{ref:%Y%m%d%H}.nc", encoding=enc)


def main(src: Path) -> None:
    ms = multisite(src)
    ms.to_csv(HERE / "beijing_multisite_201607.csv", index=False)
    five_cities(src).to_csv(HERE / "uci_5cities_201511.csv", index=False)
    grids(ms)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data/weather"))
