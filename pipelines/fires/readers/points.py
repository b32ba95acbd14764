"""Helpers that turn validated columns into the common fire-point frame."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pipelines.core.schema import AGENCY_COLUMNS, BEIJING_TZ, FIRE_DTYPES
from pipelines.core.skips import Skip

# Normalized 0-100 confidence for products that give classes: the midpoints of
# the MODIS collection-6 ranges (low < 30 <= nominal < 80 <= high).
LEVEL_SCORE = {"low": 15.0, "nominal": 55.0, "high": 90.0}


def level_from_score(score: pd.Series) -> pd.Series:
    """MODIS C6 confidence classes from a 0-100 score."""
    level = np.select([score < 30, score < 80, score >= 80], ["low", "nominal", "high"], "")
    return pd.Series(level, index=score.index, dtype="string").replace("", pd.NA)


def fire_ids(sensor: pd.Series, satellite: pd.Series, time_utc: pd.Series, lon: np.ndarray, lat: np.ndarray) -> pd.Series:
    """A stable id per detection: the same pixel read from two files gets the same id.

    Call it on validated rows only: a missing value would still hash, to a meaningless id.
    """
    stamps = time_utc.dt.strftime("%Y%m%dT%H%M%S").to_numpy(dtype=object, na_value="")
    keys = zip(sensor.to_numpy(dtype=object, na_value=""), satellite.to_numpy(dtype=object, na_value=""), stamps,
               np.round(np.asarray(lon, dtype=float), 5), np.round(np.asarray(lat, dtype=float), 5))
    ids = [hashlib.sha1(f"{s}|{sat}|{t}|{x:.5f}|{y:.5f}".encode()).hexdigest()[:16] for s, sat, t, x, y in keys]
    return pd.Series(ids, index=sensor.index, dtype="string")


def bad_frp(frp: pd.Series) -> pd.Series:
    """True where FRP (MW) is given but negative or not finite (1e400 reads as infinity)."""
    values = frp.to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(~np.isnan(values) & ~(np.isfinite(values) & (values >= 0)), index=frp.index)


def bad_size(km: pd.Series, largest_km: float = 10.0) -> pd.Series:
    """True where a pixel size (km) is given but not in (0, ``largest_km``]: no fire product has larger pixels."""
    values = km.to_numpy(dtype=float, na_value=np.nan)
    return pd.Series(~np.isnan(values) & ~((values > 0) & (values <= largest_km)), index=km.index)


def row_skips(file: str, lines: np.ndarray, checks: list[tuple[str, pd.Series, str]]) -> tuple[np.ndarray, list[Skip]]:
    """Apply row checks ``(field, bad_mask, reason)`` in order; report each bad row once.

    Returns the mask of good rows and the skips.
    """
    bad_so_far = np.zeros(len(lines), dtype=bool)
    skips: list[Skip] = []
    for field_name, bad, reason in checks:
        new = np.asarray(bad, dtype=bool) & ~bad_so_far
        skips.extend(Skip(file, reason, row=int(line), field=field_name) for line in lines[new])
        bad_so_far |= new
    return ~bad_so_far, skips


def assemble(columns: dict[str, object], index: pd.Index, good: np.ndarray | pd.Series | None = None) -> pd.DataFrame:
    """The fire frame in schema order and dtypes from a dict of column values, keeping only ``good`` rows."""
    frame = pd.DataFrame(columns, index=index)
    if good is not None:
        frame = frame[np.asarray(good, dtype=bool)]
    # Only rasters know these; point files leave them unknown.
    if "cloud_fraction" not in frame:
        frame["cloud_fraction"] = np.nan
    if "source_col" not in frame:
        frame["source_col"] = pd.NA
    # Only agency tables name the place; every other source leaves it unknown.
    for column in AGENCY_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    frame["time_bjt"] = frame["time_utc"].dt.tz_convert(BEIJING_TZ)
    frame["fire_id"] = fire_ids(frame["sensor"], frame["satellite"], frame["time_utc"], frame["lon"].to_numpy(), frame["lat"].to_numpy())
    frame = frame[list(FIRE_DTYPES)].astype(FIRE_DTYPES)
    return frame.reset_index(drop=True)
