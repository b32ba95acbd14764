"""Fuse fire observations from every satellite sensor into fire *events*.

One fire is usually seen many times: by Terra in the morning and Aqua in the
afternoon, by VIIRS at night, by Himawari every 10 minutes, and often as
several adjacent pixels of one overpass. An *event* groups the observations
that may be the same burning field. Input is the tidy fire-point frame of
``schema.FIRE_DTYPES`` (one row per fire pixel, deduplicated by ``fire_id``
with ``load.dedupe``); coordinates are pixel centres in WGS84 degrees
(EPSG:4326), pixel sizes in km, instants tz-aware.

Spatial tolerance
    Two observations *may be the same fire* when the distance between their
    pixel centres is at most ``pair_tolerance_km``: by default ``hd_a + hd_b``
    with ``hd = 0.5 * hypot(scan_km, track_km)``, half the pixel diagonal, so
    that the two footprints could touch; or a fixed ``FusionTolerance.distance_km``
    when that is > 0. A pixel of unknown size (``scan_km`` or ``track_km``
    missing, zero or negative, or the column absent) is taken as 1 km x 1 km,
    for the tolerance and for the footprint alike.

Distance
    The straight line between the two centres placed on the WGS84 ellipsoid
    (Earth-centred Cartesian coordinates, km). Over the few km compared here
    it equals the geodesic distance to well under a millimetre (the chord is
    shorter by d^3 / 24R^2), it is a true metric, and it has no seam at the
    antimeridian and no distortion far from a projection's centre, so the
    same code serves a North China Plain subset and a Himawari full disk.

Event
    A set of observations in which *every* pair is within its spatial
    tolerance (complete linkage: no two observations of one event are ever
    farther apart than their tolerance, so an event cannot creep along a
    fire front), chained in time: in time order, consecutive observations of
    an event are at most ``max_gap_h`` hours apart. The default 5 h was
    measured on the real 2022 FIRMS data: a Terra (~10:30) and an Aqua
    (~13:30 local time) detection of the same field are 1.6-4.4 h apart
    (5th-95th percentile), and 96 % of them lie within ``hd_a + hd_b``.

Assignment (deterministic, greedy)
    Observations are processed sorted by (``time_utc``, ``fire_id``). The
    candidate events of an observation are found by grid hashing: a dict from
    integer grid cell (a cube of side the largest tolerance in the data, in
    Earth-centred km) to the events with a member there; the 3 x 3 x 3 cells
    around the observation hold every observation within tolerance. An event
    is eligible when its last observation is at least ``time - max_gap_h``
    and every one of its members is within the pairwise tolerance of the new
    observation. The observation joins the eligible event with the nearest
    member (ties: the event whose id sorts first), or else starts a new event.

``event_id`` is ``"E"`` + the ``fire_id`` of the event's first observation,
so the same input gives the same ids whatever its row order, and running a
day again reproduces them.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from pipelines.core.schema import BEIJING_TZ, WGS84, WINDOW_COLUMNS
from pipelines.grid.attribution import footprints

# Size assumed for a pixel whose size is unknown (km along scan and along track).
UNKNOWN_PIXEL_KM = 1.0

# WGS84 ellipsoid, km.
_WGS84_A_KM = 6378.137
_WGS84_E2 = 6.69437999014e-3

# Grid cells are never smaller than this (km), which keeps every integer cell
# coordinate within 21 bits so that three of them pack into one int64 key.
_MIN_CELL_KM = 0.01
_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)

# The cell is a hair larger than the largest tolerance so that rounding in
# the coordinate arithmetic can never push a pair within tolerance two
# cells apart.
_CELL_MARGIN = 1.0 + 1e-9

_NS_PER_HOUR = 3_600_000_000_000

EVENT_COLUMNS = [
    "event_id",
    "first_seen_utc",
    "last_seen_utc",
    "first_seen_bjt",
    "last_seen_bjt",
    "duration_h",
    "observations",
    "sensors",
    "satellites",
    "max_frp_mw",
    "lon",
    "lat",
    "cell_id",
]


@dataclass(frozen=True)
class FusionTolerance:
    """How close two observations must be to belong to one event.

    ``distance_km``: 0 derives the spatial tolerance of each pair from the
    pixel sizes (``hd_a + hd_b``, half pixel diagonals); > 0 uses this many km
    for every pair. ``max_gap_h``: the longest time, in hours, between
    consecutive observations of one event.

    Example::

        tolerance = FusionTolerance(config.events.distance_km, config.events.max_gap_h)
        fires["event_id"] = assign_events(fires, tolerance)
    """

    distance_km: float = 0.0
    max_gap_h: float = 5.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.distance_km) and self.distance_km >= 0):
            raise ValueError(f"distance_km must be a finite number >= 0, got {self.distance_km}")
        if not (np.isfinite(self.max_gap_h) and self.max_gap_h >= 0):
            raise ValueError(f"max_gap_h must be a finite number >= 0, got {self.max_gap_h}")


def half_diagonal_km(scan_km: npt.ArrayLike, track_km: npt.ArrayLike) -> np.ndarray:
    """Half the pixel diagonal, km; a pixel of unknown size (NaN, <= 0) counts as 1 km x 1 km."""
    scan = _known_size(scan_km)
    track = _known_size(track_km)
    return 0.5 * np.hypot(scan, track)


def pair_tolerance_km(
    scan_a: npt.ArrayLike,
    track_a: npt.ArrayLike,
    scan_b: npt.ArrayLike,
    track_b: npt.ArrayLike,
    tolerance: FusionTolerance = FusionTolerance(),
) -> np.ndarray:
    """Spatial tolerance, km, of pairs of observations a and b (arrays broadcast).

    ``tolerance.distance_km`` where that is > 0; otherwise ``hd_a + hd_b``,
    the sum of half pixel diagonals (pixel sizes in km; unknown sizes count
    as 1 km): the largest centre distance at which the footprints could touch.
    """
    hd_a = half_diagonal_km(scan_a, track_a)
    hd_b = half_diagonal_km(scan_b, track_b)
    if tolerance.distance_km > 0:
        return np.full(np.broadcast_shapes(hd_a.shape, hd_b.shape), float(tolerance.distance_km))
    return hd_a + hd_b


def assign_events(fires: pd.DataFrame, tolerance: FusionTolerance = FusionTolerance()) -> pd.Series:
    """``event_id`` of every observation (``pd.StringDtype``, same index as ``fires``).

    ``fires`` needs ``fire_id`` (unique: run ``load.dedupe`` first),
    ``time_utc`` (tz-aware), ``lon``/``lat`` (pixel centre, WGS84 degrees)
    and, for the default tolerance, ``scan_km``/``track_km`` (km; missing
    sizes count as 1 km). See the module docstring for the semantics.
    Raises ValueError on a missing or repeated ``fire_id``, a missing time
    or a missing coordinate.

    Example::

        fires["event_id"] = assign_events(fires)   # fires: dedupe(points)[0], attributed
        fires["event_id"].nunique()                # events
    """
    name = "event_id"
    if len(fires) == 0:
        return pd.Series([], index=fires.index, dtype=pd.StringDtype(), name=name)
    missing = [c for c in ("fire_id", "time_utc", "lon", "lat") if c not in fires.columns]
    if missing:
        raise ValueError(f"fires lack columns {missing}")
    fire_id = fires["fire_id"].astype(pd.StringDtype())
    if fire_id.isna().any():
        raise ValueError("fire_id is missing for some observations")
    if not fire_id.is_unique:
        raise ValueError("fire_id is not unique: run pipelines.fires.load.dedupe first")
    fire_id_arr = fire_id.to_numpy(dtype=str)
    time_ns = _utc_ns(fires["time_utc"])
    lon = fires["lon"].to_numpy(dtype=np.float64, na_value=np.nan)
    lat = fires["lat"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ValueError("lon/lat are missing for some observations")

    hd = half_diagonal_km(_column(fires, "scan_km"), _column(fires, "track_km"))
    fixed = float(tolerance.distance_km)
    largest = fixed if fixed > 0 else 2.0 * float(hd.max())
    cell_km = max(largest, _MIN_CELL_KM) * _CELL_MARGIN

    xyz = _ecef_km(lon, lat)
    cell = np.floor(xyz / cell_km).astype(np.int64)
    offsets = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(-1, 3)
    neighbour_keys = _pack(cell[:, None, :] + offsets[None, :, :])

    # Stable sorts: fire_id first, then time, gives (time, fire_id) order
    # whatever the input row order.
    by_id = np.argsort(fire_id_arr, kind="stable")
    order = by_id[np.argsort(time_ns[by_id], kind="stable")]

    event_of, event_ids = _greedy(
        order,
        time_ns,
        xyz,
        hd,
        fixed,
        int(round(tolerance.max_gap_h * _NS_PER_HOUR)),
        _pack(cell).tolist(),
        neighbour_keys.tolist(),
        fire_id_arr,
    )
    ids = np.asarray(event_ids, dtype=object)[event_of]
    return pd.Series(ids, index=fires.index, dtype=pd.StringDtype(), name=name)


def _greedy(
    order: np.ndarray,
    time_ns: np.ndarray,
    xyz: np.ndarray,
    hd: np.ndarray,
    fixed_km: float,
    gap_ns: int,
    own_key: list[int],
    neighbour_keys: list[list[int]],
    fire_id: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Event number of each observation (by position) and the id of each event."""
    x, y, z = (np.ascontiguousarray(xyz[:, i]) for i in range(3))
    times = time_ns.tolist()
    spots = list(zip(x.tolist(), y.tolist(), z.tolist()))
    event_of = np.empty(len(order), dtype=np.int64)
    # An event checks a new observation against one member per distinct pixel
    # centre: the one with the smallest pixel, whose tolerance is the
    # tightest there. Same answer as checking every member, but a fire that a
    # geostationary imager sees at the same grid cell every 10 minutes stays
    # a handful of members instead of growing by 144 a day.
    members: list[list[int]] = []  # positions of each event's representative observations
    member_at: list[dict[tuple[float, float, float], int]] = []  # centre -> slot in members
    last_ns: list[int] = []
    event_ids: list[str] = []
    cells: dict[int, set[int]] = {}

    for p in order.tolist():
        cutoff = times[p] - gap_ns
        candidates: set[int] = set()
        for key in neighbour_keys[p]:
            bucket = cells.get(key)
            if not bucket:
                continue
            # Observations come in time order, so an event that has fallen
            # behind the cutoff can never be joined again: drop it for good,
            # which keeps buckets short over a day of 10-minute scans.
            expired = [e for e in bucket if last_ns[e] < cutoff]
            if expired:
                bucket.difference_update(expired)
            candidates |= bucket

        best = -1
        if candidates:
            best = _nearest_eligible(sorted(candidates), p, members, event_ids, x, y, z, hd, fixed_km)
        spot = spots[p]
        if best < 0:
            best = len(members)
            members.append([p])
            member_at.append({spot: 0})
            last_ns.append(times[p])
            event_ids.append("E" + str(fire_id[p]))
        else:
            last_ns[best] = times[p]
            slot = member_at[best].get(spot)
            if slot is not None:
                if hd[p] < hd[members[best][slot]]:
                    members[best][slot] = p
                event_of[p] = best
                continue  # the centre, hence its grid cell, is already registered
            member_at[best][spot] = len(members[best])
            members[best].append(p)
        event_of[p] = best
        bucket = cells.get(own_key[p])
        if bucket is None:
            cells[own_key[p]] = {best}
        else:
            bucket.add(best)
    return event_of, event_ids


def _nearest_eligible(
    candidates: list[int],
    p: int,
    members: list[list[int]],
    event_ids: list[str],
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    hd: np.ndarray,
    fixed_km: float,
) -> int:
    """The eligible candidate event with the nearest member to observation p, or -1."""
    # One vectorized pass over the members of all candidates: the per-call
    # overhead of numpy, not the arithmetic, dominates at these sizes.
    if len(candidates) == 1:
        idx = np.asarray(members[candidates[0]])
        starts = np.zeros(1, dtype=np.intp)
    else:
        sizes = [len(members[e]) for e in candidates]
        idx = np.fromiter((m for e in candidates for m in members[e]), dtype=np.intp, count=sum(sizes))
        starts = np.zeros(len(sizes), dtype=np.intp)
        np.cumsum(sizes[:-1], out=starts[1:])
    dist = np.sqrt((x[idx] - x[p]) ** 2 + (y[idx] - y[p]) ** 2 + (z[idx] - z[p]) ** 2)
    limit = fixed_km if fixed_km > 0 else hd[idx] + hd[p]
    too_far = np.logical_or.reduceat(dist > limit, starts)
    nearest = np.minimum.reduceat(dist, starts)
    best, best_key = -1, None
    for e, far, d in zip(candidates, too_far.tolist(), nearest.tolist()):
        if far:
            continue
        key = (d, event_ids[e])
        if best_key is None or key < best_key:
            best, best_key = e, key
    return best


def events_table(fires: pd.DataFrame) -> gpd.GeoDataFrame:
    """One row per event, from observations that carry ``event_id`` (EPSG:4326).

    Columns, in order: ``event_id``; ``first_seen_utc``/``last_seen_utc``
    (UTC) and ``first_seen_bjt``/``last_seen_bjt`` (Asia/Shanghai);
    ``duration_h`` (hours); ``observations``; ``sensors``/``satellites``
    (sorted unique values joined by ", "; <NA> if none known);
    ``max_frp_mw`` (MW, NaN if all unknown); ``lon``/``lat`` (mean of the
    member pixel centres, WGS84 degrees); ``cell_id`` (first non-missing
    ``cell_id`` of the members in time order; <NA> if none or no such column);
    the window columns of ``schema.WINDOW_COLUMNS`` present in ``fires``, as
    nullable booleans: True if any member is True, else False if any is
    False, else <NA>; ``geometry``, the union of the members' pixel
    footprints (Polygon or MultiPolygon; unknown pixel sizes count as 1 km).
    Sorted by ``first_seen_utc``, then ``event_id``.

    Example::

        fires["event_id"] = assign_events(fires)
        events = events_table(fires)               # GeoDataFrame, EPSG:4326
        events.sort_values("duration_h").tail()
    """
    if "event_id" not in fires.columns:
        raise ValueError("fires lack event_id: run assign_events first")
    windows = [c for c in WINDOW_COLUMNS if c in fires.columns]
    if len(fires) == 0:
        return _empty_events(windows)
    event_id = fires["event_id"].astype(pd.StringDtype())
    if event_id.isna().any():
        raise ValueError("event_id is missing for some observations")

    time_ns = _utc_ns(fires["time_utc"])
    work = pd.DataFrame(
        {
            "event_id": event_id.to_numpy(dtype=object),
            "time_ns": time_ns,
            "fire_id": _strings(fires, "fire_id"),
            "lon": fires["lon"].to_numpy(dtype=np.float64, na_value=np.nan),
            "lat": fires["lat"].to_numpy(dtype=np.float64, na_value=np.nan),
            "sensor": _strings(fires, "sensor"),
            "satellite": _strings(fires, "satellite"),
            "frp_mw": _column(fires, "frp_mw"),
            "scan_km": _column(fires, "scan_km"),
            "track_km": _column(fires, "track_km"),
            "cell_id": _strings(fires, "cell_id"),
        }
    )
    for c in windows:
        work[c] = fires[c].astype("boolean").to_numpy()
    work = work.sort_values(["event_id", "time_ns", "fire_id"], kind="stable", ignore_index=True)
    groups = work.groupby("event_id", sort=False)
    keys = work["event_id"].drop_duplicates().to_numpy()

    first_ns = groups["time_ns"].min().to_numpy()
    last_ns = groups["time_ns"].max().to_numpy()
    first = pd.to_datetime(first_ns, utc=True).as_unit("ns")
    last = pd.to_datetime(last_ns, utc=True).as_unit("ns")

    # Unwrapped around each event's first member, so that an event straddling
    # the antimeridian has its centre there and not near longitude 0.
    lon0 = groups["lon"].transform("first").to_numpy()
    unwrapped = (work["lon"].to_numpy() - lon0 + 180.0) % 360.0 - 180.0 + lon0
    mean_lon = work.assign(lon=unwrapped).groupby("event_id", sort=False)["lon"].mean().to_numpy()
    mean_lon = np.where(mean_lon > 180.0, mean_lon - 360.0, mean_lon)
    mean_lon = np.where(mean_lon < -180.0, mean_lon + 360.0, mean_lon)

    table = pd.DataFrame(
        {
            "event_id": pd.array(keys, dtype=pd.StringDtype()),
            "first_seen_utc": first,
            "last_seen_utc": last,
            "first_seen_bjt": first.tz_convert(BEIJING_TZ),
            "last_seen_bjt": last.tz_convert(BEIJING_TZ),
            "duration_h": (last_ns - first_ns) / _NS_PER_HOUR,
            "observations": groups.size().to_numpy().astype(np.int64),
            "sensors": _joined_unique(work, "sensor", keys),
            "satellites": _joined_unique(work, "satellite", keys),
            "max_frp_mw": groups["frp_mw"].max().to_numpy(dtype=np.float64),
            "lon": mean_lon,
            "lat": groups["lat"].mean().to_numpy(),
            # groupby's first() skips missing values: the first cell in time order.
            "cell_id": pd.array(groups["cell_id"].first().to_numpy(), dtype=pd.StringDtype()),
        }
    )
    for c in windows:
        table[c] = _window_union(work, c)
    geometry = _union_footprints(work)
    result = gpd.GeoDataFrame(table, geometry=geometry, crs=WGS84)
    result = result.sort_values(["first_seen_utc", "event_id"], kind="stable", ignore_index=True)
    return result[EVENT_COLUMNS + windows + ["geometry"]]


def _window_union(work: pd.DataFrame, column: str) -> pd.arrays.BooleanArray:
    """True if any member is True, else False if any is False, else <NA>."""
    values = work[column]
    any_true = values.eq(True).fillna(False).groupby(work["event_id"], sort=False).any().to_numpy()
    any_false = values.eq(False).fillna(False).groupby(work["event_id"], sort=False).any().to_numpy()
    result = pd.array(np.where(any_true, True, False), dtype="boolean")
    result[~any_true & ~any_false] = pd.NA
    return result


def _union_footprints(work: pd.DataFrame) -> np.ndarray:
    """Union of the members' pixel footprints per event, in order of first appearance."""
    shapes = footprints(
        work["lon"].to_numpy(),
        work["lat"].to_numpy(),
        _known_size(work["scan_km"].to_numpy()),
        _known_size(work["track_km"].to_numpy()),
    )
    ev = work["event_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ev[1:] != ev[:-1]])
    ends = np.r_[starts[1:], len(ev)]
    result = shapes[starts].copy()
    for i in np.flatnonzero(ends - starts > 1):
        result[i] = shapely.union_all(shapes[starts[i] : ends[i]])
    return result


def _joined_unique(work: pd.DataFrame, column: str, keys: np.ndarray) -> pd.arrays.StringArray:
    """Sorted unique values of ``column`` per event joined by ", ", <NA> if none."""
    pairs = work[["event_id", column]].dropna().drop_duplicates()
    pairs = pairs.sort_values(["event_id", column], kind="stable")
    joined = pairs.groupby("event_id", sort=False)[column].agg(", ".join)
    return pd.array(joined.reindex(keys).to_numpy(), dtype=pd.StringDtype())


def _empty_events(windows: list[str]) -> gpd.GeoDataFrame:
    utc = pd.DatetimeTZDtype("ns", "UTC")
    bjt = pd.DatetimeTZDtype("ns", BEIJING_TZ)
    dtypes: dict[str, object] = {
        "event_id": pd.StringDtype(),
        "first_seen_utc": utc,
        "last_seen_utc": utc,
        "first_seen_bjt": bjt,
        "last_seen_bjt": bjt,
        "duration_h": np.float64,
        "observations": np.int64,
        "sensors": pd.StringDtype(),
        "satellites": pd.StringDtype(),
        "max_frp_mw": np.float64,
        "lon": np.float64,
        "lat": np.float64,
        "cell_id": pd.StringDtype(),
    }
    dtypes.update({c: "boolean" for c in windows})
    frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)


def _known_size(size_km: npt.ArrayLike) -> np.ndarray:
    size = np.asarray(size_km, dtype=np.float64)
    return np.where(size > 0, size, UNKNOWN_PIXEL_KM)  # NaN > 0 is False


def _column(fires: pd.DataFrame, column: str) -> np.ndarray:
    """A float column as numpy (NaN for missing), all NaN where the column is absent."""
    if column not in fires.columns:
        return np.full(len(fires), np.nan)
    return fires[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _strings(fires: pd.DataFrame, column: str) -> np.ndarray:
    """A string column as an object array (None for missing, all None where absent)."""
    if column not in fires.columns:
        return np.full(len(fires), None, dtype=object)
    values = fires[column].astype(pd.StringDtype())
    return values.to_numpy(dtype=object, na_value=None)


def _utc_ns(times: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (int64) of tz-aware instants; raises on naive or missing ones."""
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"time_utc must be tz-aware, got {times.dtype}")
    if times.isna().any():
        raise ValueError("time_utc is missing for some observations")
    return times.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()


def _ecef_km(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Earth-centred Cartesian coordinates (km) of points on the WGS84 ellipsoid, shape (n, 3)."""
    lam, phi = np.radians(lon), np.radians(lat)
    sin_phi = np.sin(phi)
    n = _WGS84_A_KM / np.sqrt(1.0 - _WGS84_E2 * sin_phi**2)
    return np.column_stack(
        (n * np.cos(phi) * np.cos(lam), n * np.cos(phi) * np.sin(lam), n * (1.0 - _WGS84_E2) * sin_phi)
    )


def _pack(cell: np.ndarray) -> np.ndarray:
    """One int64 key per integer (i, j, k) cell (last axis of ``cell``)."""
    shifted = cell + _KEY_OFFSET
    return (shifted[..., 0] << (2 * _KEY_BITS)) | (shifted[..., 1] << _KEY_BITS) | shifted[..., 2]
