"""Geostationary fixed grids: scan angles to latitude/longitude and back.

The formulas are those of the GOES-R Product User Guide (PUG) vol. 5,
section 4.2.8 ("fixed grid"), written for both scan geometries:

- ``sweep="x"`` (GOES-R ABI): the mirror sweeps east-west first, so the
  north-south angle ``y`` is an elevation and ``x`` is taken about the tilted
  axis;
- ``sweep="y"`` (CGMS LRIT/HRIT normalized geostationary projection, used by
  Meteosat, Himawari and FY-4 AGRI): the roles are swapped.

Angles are radians, ``x`` positive east and ``y`` positive north of the
sub-satellite point; the ellipsoid is given by its equatorial and polar radii
(m) and ``height`` is the satellite's height above the equator (m). Pixels off
the Earth's disc give NaN. FY-4 AGRI files index pixels by line and column;
``fy4_angles`` turns those into angles with NSMC's published column/line
offsets and factors (the CGMS ``COFF``/``CFAC`` convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class FixedGrid:
    """Where a geostationary imager sits and how it scans (GOES ``goes_imager_projection`` terms)."""

    lon0: float  # sub-satellite longitude, degrees east
    height: float  # perspective point height above the ellipsoid, m
    r_eq: float = 6378137.0  # semi-major axis, m (GRS80)
    r_pol: float = 6356752.31414  # semi-minor axis, m
    sweep: Literal["x", "y"] = "x"

    @property
    def distance(self) -> float:
        """Satellite to Earth centre, m (the PUG's H)."""
        return self.height + self.r_eq

    def proj4(self) -> str:
        """The PROJ string of this grid in metres (angles × height), for analysts' tools."""
        return (f"+proj=geos +lon_0={self.lon0} +h={self.height} +a={self.r_eq} +b={self.r_pol} "
                f"+sweep={self.sweep} +units=m +no_defs")


def to_lonlat(grid: FixedGrid, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees, WGS84-compatible GRS80) of scan angles ``x``, ``y`` (radians)."""
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    big_h, ratio = grid.distance, (grid.r_eq / grid.r_pol) ** 2
    if grid.sweep == "y":
        # CGMS: the view vector is rotated by x about the polar axis after y.
        cos_x, cos_y = np.cos(x), np.cos(y)
        a = cos_y**2 + ratio * np.sin(y) ** 2
        b = big_h * cos_x * cos_y
        disc = b**2 - a * (big_h**2 - grid.r_eq**2)
        with np.errstate(invalid="ignore"):
            rs = (b - np.sqrt(disc)) / a
        sx = big_h - rs * cos_x * cos_y
        sy = rs * np.sin(x) * cos_y
        sz = rs * np.sin(y)
        lon = grid.lon0 + np.degrees(np.arctan2(sy, sx))
        lat = np.degrees(np.arctan(ratio * sz / np.hypot(sx, sy)))
    else:
        # PUG 4.2.8.1: distance to the surface along the line of sight, then the point.
        sin_x, cos_x, sin_y, cos_y = np.sin(x), np.cos(x), np.sin(y), np.cos(y)
        a = sin_x**2 + cos_x**2 * (cos_y**2 + ratio * sin_y**2)
        b = -2 * big_h * cos_x * cos_y
        c = big_h**2 - grid.r_eq**2
        with np.errstate(invalid="ignore"):
            rs = (-b - np.sqrt(b**2 - 4 * a * c)) / (2 * a)
        sx = rs * cos_x * cos_y
        sy = -rs * sin_x
        sz = rs * cos_x * sin_y
        lat = np.degrees(np.arctan(ratio * sz / np.hypot(big_h - sx, sy)))
        lon = grid.lon0 - np.degrees(np.arctan(sy / (big_h - sx)))
    lon = (lon + 180.0) % 360.0 - 180.0
    return lon, lat


def to_angles(grid: FixedGrid, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scan angles (radians; NaN where the satellite cannot see the point) of ``lon``/``lat`` (degrees)."""
    lon = np.radians(np.asarray(lon, dtype="float64") - grid.lon0)
    lat = np.radians(np.asarray(lat, dtype="float64"))
    big_h = grid.distance
    e2 = (grid.r_eq**2 - grid.r_pol**2) / grid.r_eq**2
    lat_c = np.arctan((grid.r_pol / grid.r_eq) ** 2 * np.tan(lat))  # geocentric latitude
    rc = grid.r_pol / np.sqrt(1 - e2 * np.cos(lat_c) ** 2)
    sx = big_h - rc * np.cos(lat_c) * np.cos(lon)
    sy = -rc * np.cos(lat_c) * np.sin(lon)
    sz = rc * np.sin(lat_c)
    norm = np.sqrt(sx**2 + sy**2 + sz**2)
    if grid.sweep == "y":
        x, y = np.arctan(-sy / sx), np.arcsin(sz / norm)
    else:
        x, y = np.arcsin(-sy / norm), np.arctan(sz / sx)
    hidden = big_h * (big_h - sx) < sy**2 + (grid.r_eq / grid.r_pol) ** 2 * sz**2
    return np.where(hidden, np.nan, x), np.where(hidden, np.nan, y)


# NSMC's nominal (NOM) full-disc grids of FY-4 AGRI: column/line offset and
# scale factor per resolution (CGMS convention: angle in degrees =
# (index - OFF) * 2**16 / FAC), square discs of 2 × OFF + 1 pixels.
FY4_NOMINAL = {"4000M": (1373.5, 10233137), "2000M": (2747.5, 20466274), "1000M": (5495.5, 40932549), "0500M": (10991.5, 81865099)}
FY4_HEIGHT = 42164000.0 - 6378137.0  # NSMC: satellite 42,164 km from the Earth's centre
FY4_R_POL = 6356752.3  # NSMC uses a 6356.7523 km polar radius


def fy4_grid(lon0: float) -> FixedGrid:
    """The FY-4 AGRI nominal projection for a satellite over ``lon0`` degrees east."""
    return FixedGrid(lon0=lon0, height=FY4_HEIGHT, r_pol=FY4_R_POL, sweep="y")


def fy4_angles(resolution: str, lines: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scan angles (radians; ``x`` east, ``y`` north) of FY-4 nominal line/column indices (0-based, line 0 north)."""
    if resolution not in FY4_NOMINAL:
        raise ValueError(f"FY-4 resolution {resolution!r}: expected one of {', '.join(FY4_NOMINAL)}")
    offset, factor = FY4_NOMINAL[resolution]
    step = np.radians(2.0**16 / factor)
    x = (np.asarray(columns, dtype="float64") - offset) * step
    y = -(np.asarray(lines, dtype="float64") - offset) * step  # lines run north to south
    return x, y
