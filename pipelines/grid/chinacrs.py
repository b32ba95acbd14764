"""Chinese web-map coordinate systems: GCJ-02 and BD-09 to and from WGS84.

GCJ-02 (国测局坐标, "Mars coordinates": Amap/Gaode, Tencent, Google China) and
BD-09 (Baidu's lon/lat, ``bd09ll``) are deliberately obfuscated datums with no
EPSG code, so pyproj cannot convert them. GCJ-02 moves points by a few
hundred metres (about 580 m in Henan), BD-09 by roughly twice that: enough to
put a fire pixel in the wrong township.

Every function here takes and returns longitude/latitude in **degrees**
(array-like or scalar, broadcast like numpy) and returns ``(lon, lat)`` as
float64 numpy arrays of the broadcast shape (0-d for scalar input). Only the
BD-09 lon/lat flavour is handled; Baidu Mercator (``bd09mc``, metres) is not.

The GCJ-02 forward formula is the standard public one (Krasovsky 1940
ellipsoid) that Amap/Tencent-compatible tools use; the official algorithm is
unpublished. The inverses are iterated to agree with this forward formula to
well under 1 mm (the widely copied one-step inverse misses by up to ~5 m).
"""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely

WGS84 = "EPSG:4326"

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula (not WGS84's).
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
# Baidu's angular perturbation works in units of pi * 3000 / 180.
_X_PI = np.pi * 3000.0 / 180.0

# Tolerance on the inverse iterations, degrees (1e-11 deg is about 1 micrometre).
_INVERSE_TOL_DEG = 1e-11
_INVERSE_MAX_ITER = 50

ArrayLike = npt.ArrayLike
LonLat = tuple[np.ndarray, np.ndarray]

_GCJ_NAMES = {"GCJ02"}
_BD_NAMES = {"BD09", "BD09LL"}
_BD_MERCATOR_NAMES = {"BD09MC", "BD09MERCATOR"}


def _as_float_arrays(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    # broadcast_arrays returns read-only views; callers write into copies.
    return lon_a.copy(), lat_a.copy()


def _result(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    # numpy ufuncs turn 0-d arrays into scalars; keep the return type uniform.
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """True where GCJ-02 leaves a point unchanged (outside China's rough bounding box).

    ``lon``/``lat`` in degrees. This is the rectangle every public GCJ-02
    implementation uses; it is coarse (it includes e.g. Seoul, Hanoi and
    Ulaanbaatar), and matching it is what makes round trips consistent with
    data produced by Chinese map APIs.
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = (lon_a > 72.004) & (lon_a < 137.8347) & (lat_a > 0.8293) & (lat_a < 55.8271)
    return ~inside


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> LonLat:
    """GCJ-02 minus WGS84, degrees, evaluated at WGS84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    # The sine terms are the obfuscation; the polynomial sets the ~500 m bias.
    shared = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += shared
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += shared
    dlon += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    # The terms above are metres; turn them into degrees on the Krasovsky ellipsoid.
    radlat = np.radians(lat)
    magic = 1.0 - _KRASOVSKY_EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrtmagic) * pi)
    dlon = (dlon * 180.0) / (_KRASOVSKY_A / sqrtmagic * np.cos(radlat) * pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """WGS84 (EPSG:4326) degrees -> GCJ-02 degrees. Points outside China unchanged."""
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    dlon, dlat = _gcj_delta(lon_a[inside], lat_a[inside])
    lon_a[inside] += dlon
    lat_a[inside] += dlat
    return _result(lon_a, lat_a)


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], LonLat],
    lon: np.ndarray,
    lat: np.ndarray,
    first_guess: LonLat,
) -> LonLat:
    """Solve forward(x) = target by fixed-point iteration x <- x - (forward(x) - target).

    Converges fast because both obfuscations are a small, slowly varying shift
    (Jacobian within ~1% of identity); the common one-step inverse stops after
    the first iteration and is off by up to a couple of metres for GCJ-02.
    """
    x_lon, x_lat = first_guess
    for _ in range(_INVERSE_MAX_ITER):
        f_lon, f_lat = forward(x_lon, x_lat)
        e_lon = f_lon - lon
        e_lat = f_lat - lat
        x_lon = x_lon - e_lon
        x_lat = x_lat - e_lat
        if not (np.any(np.abs(e_lon) > _INVERSE_TOL_DEG) or np.any(np.abs(e_lat) > _INVERSE_TOL_DEG)):
            break
    return x_lon, x_lat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """GCJ-02 degrees -> WGS84 (EPSG:4326) degrees, iterated to < 1 mm.

    Points whose GCJ-02 coordinates fall outside the China rectangle are
    returned unchanged, mirroring :func:`wgs84_to_gcj02`.
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    g_lon, g_lat = lon_a[inside], lat_a[inside]

    def forward(x: np.ndarray, y: np.ndarray) -> LonLat:
        d_lon, d_lat = _gcj_delta(x, y)
        return x + d_lon, y + d_lat

    d_lon, d_lat = _gcj_delta(g_lon, g_lat)
    w_lon, w_lat = _invert(forward, g_lon, g_lat, (g_lon - d_lon, g_lat - d_lat))
    lon_a[inside] = w_lon
    lat_a[inside] = w_lat
    return _result(lon_a, lat_a)


def _gcj_to_bd(lon: np.ndarray, lat: np.ndarray) -> LonLat:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """GCJ-02 degrees -> BD-09 (Baidu ``bd09ll``) degrees. Applied everywhere.

    Baidu's shift has no "outside China" rule, so neither does this.
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    return _result(*_gcj_to_bd(lon_a, lat_a))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """BD-09 (Baidu ``bd09ll``) degrees -> GCJ-02 degrees, exact inverse of :func:`gcj02_to_bd09`.

    Starts from the widely copied one-step formula (whose result, sent back
    through :func:`gcj02_to_bd09`, misses by up to a few decimetres) and
    iterates to < 1 mm.
    """
    lon_a, lat_a = _as_float_arrays(lon, lat)
    x = lon_a - 0.0065
    y = lat_a - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    guess = (z * np.cos(theta), z * np.sin(theta))
    return _result(*_invert(_gcj_to_bd, lon_a, lat_a, guess))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """WGS84 (EPSG:4326) degrees -> BD-09 degrees (via GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> LonLat:
    """BD-09 degrees -> WGS84 (EPSG:4326) degrees (via GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _normalise_crs_name(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


def is_chinese_crs(name: object) -> bool:
    """True if ``name`` names GCJ-02 or BD-09 (any case; "-", "_" and spaces ignored).

    Recognised: GCJ-02, GCJ02, BD-09, BD09, BD09LL. Anything that is not a
    string (a pyproj CRS, an EPSG integer, None) is False.
    """
    if not isinstance(name, str):
        return False
    return _normalise_crs_name(name) in _GCJ_NAMES | _BD_NAMES


def to_wgs84(gdf: gpd.GeoDataFrame, crs: str | None = None) -> gpd.GeoDataFrame:
    """Return a copy of ``gdf`` in WGS84 (EPSG:4326, degrees).

    ``crs`` says what the coordinates really are, overriding whatever the
    file declares (Chinese data sets in GCJ-02 are routinely labelled WGS84
    or CRS84, because GCJ-02 has no code to label them with):

    * "GCJ-02"/"GCJ02" or "BD-09"/"BD09"/"BD09LL" (any case): every vertex of
      every geometry is converted with the formulas above; Z is kept.
    * any other string pyproj understands (e.g. "EPSG:4490", "EPSG:32650"):
      the layer is relabelled with it, then reprojected.
    * None or "": the layer's own CRS is trusted; ValueError if it has none.
    """
    if crs is not None and not isinstance(crs, str):
        raise TypeError(f"crs must be a string or None, got {type(crs).__name__}")
    name = (crs or "").strip()

    if not name:
        if gdf.crs is None:
            raise ValueError(
                "the layer has no CRS: set `crs` to what its coordinates are "
                "(e.g. 'EPSG:4326', 'GCJ-02' or 'BD-09')"
            )
        return gdf.to_crs(WGS84)

    key = _normalise_crs_name(name)
    if key in _BD_MERCATOR_NAMES:
        raise ValueError(
            f"crs={crs!r}: Baidu Mercator (metres) is not supported; "
            "supply BD-09 longitude/latitude ('BD-09')"
        )
    if key not in _GCJ_NAMES | _BD_NAMES:
        return gdf.set_crs(name, allow_override=True).to_crs(WGS84)

    to_wgs: Callable[[ArrayLike, ArrayLike], LonLat] = gcj02_to_wgs84 if key in _GCJ_NAMES else bd09_to_wgs84
    geoms = gdf.geometry.to_numpy()
    _check_lonlat_bounds(geoms, crs=name)

    def transform(coords: np.ndarray) -> np.ndarray:
        out = coords.copy()
        out[:, 0], out[:, 1] = to_wgs(coords[:, 0], coords[:, 1])
        return out

    # include_z=None keeps each geometry's own dimensionality (2D stays 2D).
    new_geoms = shapely.transform(geoms, transform, include_z=None)
    out = gdf.copy()
    out[out.geometry.name] = gpd.GeoSeries(new_geoms, index=gdf.index)
    return out.set_crs(WGS84, allow_override=True)


def _check_lonlat_bounds(geoms: np.ndarray, crs: str) -> None:
    # Projected coordinates labelled GCJ-02 would otherwise pass through the
    # sine terms silently and come out as plausible-looking garbage.
    if len(geoms) == 0:
        return
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    if np.isnan(xmin):  # only empty or missing geometries
        return
    if xmin < -180.0 or xmax > 360.0 or ymin < -90.0 or ymax > 90.0:
        raise ValueError(
            f"crs={crs!r} expects longitude/latitude in degrees, but the layer's "
            f"bounds are ({xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g})"
        )
