"""Attribute fire points to supervision grid cells.

Everything here is in WGS84 (EPSG:4326): coordinates and resolutions are in
degrees, pixel sizes in kilometres.

The centre of each fire pixel is assigned to the grid cell *within* which it
lies, with exactly the semantics of
``geopandas.sjoin(points, cells, predicate="within")``: a point on a cell
boundary is within no cell, and where cells overlap the one with the lowest
positional index wins. ``PointIndex`` answers a night's fires (up to hundreds
of thousands of points) with exact geometry on prepared polygons, and larger
sets (the land-cover sub-pixels of ``landcover.land_hectares``) mostly from a
raster lookup table, built once per grid and kept in a cache folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from affine import Affine

from pipelines.core.schema import ATTRIBUTION_DTYPES, GRID_COLUMNS
from pipelines.grid import cache as gridcache

# Lookup-table codes besides polygon positions (which are >= 0).
NO_POLYGON = -1
UNCERTAIN = -2

# Default resolution: the typical polygon (square root of the median polygon
# area) is about this many lookup cells across. Finer means fewer points near a boundary (which take the slow exact
# path) at the cost of a longer build and more memory.
CELLS_ACROSS_TYPICAL_POLYGON = 40

# How far, in lookup cells, each cell is grown when testing whether a polygon
# boundary touches it: far more than the rounding error of the cell
# arithmetic (~1e-12 cells), far less than a cell.
EDGE_TOLERANCE = 1e-6

# Boundary segments processed at once while building (bounds transient memory).
SEGMENTS_PER_CHUNK = 65_536

# Upper bound on the lookup table's size: 50 million cells is 100 MB with
# int16 codes (fewer than 32,767 polygons), 200 MB with int32.
MAX_CELLS = 50_000_000

# From this many points at once, ``locate`` uses the lookup table (building it,
# or reading it from the cache, if needed); fewer take the exact path. Measured
# on the 44,279-cell 5 km grid of the sample (benchmarks/attribution.py, a
# loaded 2-core machine): the exact path, as sjoin does it, places 6,000 points
# in ~0.05 s and 600,000 in ~1-2.5 s; building the table takes 3-7 s and
# reading it back from the cache (100 MB, checksummed) 1-2 s. So only the
# millions of land-cover sub-pixels of ``landcover.land_hectares`` use it.
TABLE_FROM_POINTS = 2_000_000

# Version of the lookup-table layout, part of its cache key.
TABLE_FORMAT = 1

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_AT_EQUATOR = 111.320

_POLYGONAL_OR_MISSING = [
    shapely.GeometryType.MISSING,
    shapely.GeometryType.POLYGON,
    shapely.GeometryType.MULTIPOLYGON,
]


@dataclass(frozen=True)
class _Table:
    """The lookup table of a ``PointIndex`` (see there)."""

    codes: np.ndarray  # (rows, cols), int16 or int32
    west: float
    north: float
    resolution: float


@dataclass(frozen=True, eq=False)
class PointIndex:
    """Point-in-polygon index over a fixed set of polygons (EPSG:4326).

    Points are answered exactly from the polygons (an STRtree of their
    bounding boxes, then point-in-polygon on the prepared polygons) or, for
    many points at once, from a lookup table: ``codes`` is a north-up raster
    of lookup cells of ``resolution`` degrees whose top-left corner is
    ``(west, north)``. A cell holds the positional index of the polygon
    containing it entirely (the lowest one where several do), ``NO_POLYGON``
    where no polygon touches it, or ``UNCERTAIN`` where a polygon boundary
    touches it (or comes within ``EDGE_TOLERANCE`` cells); points in
    uncertain cells take the exact path. Both give the same answers.

    The table is built only when first needed (``locate`` with at least
    ``TABLE_FROM_POINTS`` points, or reading ``codes``): over a 44k-cell 5 km
    grid it takes 3-7 s, while the exact path places 6,000 points in ~0.05 s. With ``cache`` (a folder, see ``gridcache``) a built table is
    kept there and read back on later runs over the same polygons.
    Build with :meth:`build`.

    Example::

        counties = load_counties(config.counties)            # EPSG:4326
        index = PointIndex.build(counties.geometry)
        where = index.locate(fires["lon"].to_numpy(), fires["lat"].to_numpy())  # -1: in no county
        fires["county_code"] = counties["county_code"].reindex(where).to_numpy()
    """

    polygons: np.ndarray  # shapely (Multi)Polygons, prepared; None where missing
    tree: shapely.STRtree
    present: np.ndarray  # bool per polygon: not missing, not empty
    table_resolution: float | None  # degrees; None: the default (see build)
    cache: Path | None = None
    _built: dict = field(default_factory=dict, repr=False)  # "table": the _Table, once built or read

    @classmethod
    def build(cls, polygons: gpd.GeoSeries, resolution: float | None = None, *, cache: Path | None = None) -> PointIndex:
        """Index ``polygons`` (EPSG:4326, valid, Polygon/MultiPolygon or missing).

        ``resolution`` is the lookup cell size in degrees; by default the
        typical polygon spans ``CELLS_ACROSS_TYPICAL_POLYGON`` cells, coarsened
        if needed to keep the table within ``MAX_CELLS`` cells. The table takes
        2 bytes per cell (4 with 32,767 polygons or more): 63 MiB for the
        2,891 counties of China by default. Building it peaks at about three
        times that (GDAL's working copies of the table and the polygons).
        ``cache``: a folder where the table is kept between runs (None: not kept).
        """
        geoms = _polygon_array(polygons)
        present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        if not present.any():
            raise ValueError("no non-empty polygons to index")
        if resolution is not None:  # checked now; the default one (computed when the table is built) always fits
            if not resolution > 0:
                raise ValueError(f"resolution must be positive, got {resolution}")
            _, _, shape = _lookup_grid(shapely.total_bounds(geoms[present]), resolution)
            if shape[0] * shape[1] > MAX_CELLS:
                raise ValueError(
                    f"resolution {resolution} deg needs {shape[0] * shape[1]:,} cells, "
                    f"more than MAX_CELLS={MAX_CELLS:,}"
                )
        shapely.prepare(geoms)
        geoms.flags.writeable = False
        return cls(geoms, shapely.STRtree(geoms), present, None if resolution is None else float(resolution),
                   Path(cache) if cache is not None else None)

    @property
    def codes(self) -> np.ndarray:
        """The lookup table (built, or read from the cache, on first use)."""
        return self._table().codes

    @property
    def west(self) -> float:
        return self._table().west

    @property
    def north(self) -> float:
        return self._table().north

    @property
    def resolution(self) -> float:
        return self._table().resolution

    def _table(self) -> _Table:
        table = self._built.get("table")
        if table is None:
            table = self._built["table"] = self._read_or_build_table()
        return table

    def _read_or_build_table(self) -> _Table:
        geoms, present, resolution = self.polygons, self.present, self.table_resolution
        bounds = shapely.total_bounds(geoms[present])
        if resolution is None:
            resolution = _default_resolution(geoms[present], bounds)
        west, north, shape = _lookup_grid(bounds, resolution)
        dtype = np.int16 if len(geoms) <= np.iinfo(np.int16).max else np.int32
        key = None
        if self.cache is not None:
            key = gridcache.digest("PointIndex", TABLE_FORMAT, gridcache.geometry_digest(geoms), resolution, shape, np.dtype(dtype).str)
            stored = gridcache.load(self.cache, "pointindex", key)
            if stored is not None and stored["codes"].shape == shape and stored["codes"].dtype == dtype:
                codes = stored["codes"]
                codes.flags.writeable = False
                return _Table(codes, west, north, resolution)
        codes = _rasterize_codes(geoms, present, west, north, resolution, shape)
        if key is not None:
            gridcache.store(self.cache, "pointindex", key, {"codes": codes})
        codes.flags.writeable = False
        return _Table(codes, west, north, resolution)

    def __len__(self) -> int:
        """Number of polygons indexed (including missing ones)."""
        return len(self.polygons)

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Positional index of the polygon each point (x=lon, y=lat, degrees) lies within.

        Returns int64, ``-1`` where the point is within no polygon (including
        points on a boundary and NaN coordinates); the lowest index where the
        point is within several polygons.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError("x and y must be 1-D arrays of the same length")
        if len(x) < TABLE_FROM_POINTS and "table" not in self._built:
            return self._locate_exactly(x, y)
        result = self._lookup(x, y)
        uncertain = np.flatnonzero(result == UNCERTAIN)
        result[uncertain] = self._locate_exactly(x[uncertain], y[uncertain])
        return result

    def intersecting(self, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (shape position, polygon position) of intersecting geometries.

        ``shapes`` is an array of shapely geometries in EPSG:4326; touching
        boundaries count as intersecting.
        """
        shape_pos, polygon_pos = self.tree.query(shapes)
        # Testing against the prepared polygons, rather than with the tree's
        # predicate (which prepares each query shape instead), is about twice
        # as fast for small shapes against detailed polygons.
        hit = shapely.intersects(self.polygons[polygon_pos], shapes[shape_pos])
        return shape_pos[hit], polygon_pos[hit]

    def _lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Lookup-table codes of the cells the points fall in.

        The table has a margin of at least one empty cell around every polygon,
        so points off the table (and NaN) are certainly within none.
        """
        table = self._table()
        col = np.floor((x - table.west) / table.resolution)
        row = np.floor((table.north - y) / table.resolution)
        rows, cols = table.codes.shape
        on_table = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
        # A flat gather over every point (off-table ones read cell 0, then get
        # overwritten) is about twice as fast as gathering the masked subset.
        cell = np.where(on_table, row * cols + col, 0).astype(np.intp)
        result = table.codes.ravel()[cell].astype(np.int64)
        result[~on_table] = NO_POLYGON
        return result

    def _locate_exactly(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Exact answer from geometry, for points near a boundary."""
        # As sjoin does it: a tree on the points, asked with every polygon
        # whether it contains them (a point on a boundary is contained by
        # none). For up to hundreds of thousands of points this beats asking
        # the polygon tree point by point (benchmarks/attribution.py).
        finite = np.isfinite(x) & np.isfinite(y)  # NaN is within nothing
        at = np.flatnonzero(finite)
        lowest = np.full(x.shape, np.iinfo(np.int64).max, dtype=np.int64)
        if len(at):
            polygon, point = shapely.STRtree(shapely.points(x[at], y[at])).query(self.polygons, predicate="contains")
            np.minimum.at(lowest, at[point], polygon)
        lowest[lowest == np.iinfo(np.int64).max] = NO_POLYGON
        return lowest


def _polygon_array(polygons: gpd.GeoSeries) -> np.ndarray:
    """The geometries as a numpy object array, after checking CRS and types."""
    if polygons.crs is not None and polygons.crs.to_epsg() != 4326:
        raise ValueError(f"polygons must be in EPSG:4326, got {polygons.crs}")
    geoms = np.array(polygons.values, dtype=object)
    if not np.isin(shapely.get_type_id(geoms), _POLYGONAL_OR_MISSING).all():
        raise ValueError("polygons must be Polygon or MultiPolygon (or missing)")
    return geoms


def _default_resolution(geoms: np.ndarray, bounds: np.ndarray) -> float:
    """Lookup cell size (degrees) for these polygons, within ``MAX_CELLS``."""
    typical = float(np.median(np.sqrt(shapely.area(geoms))))
    width, height = bounds[2] - bounds[0], bounds[3] - bounds[1]
    # Smallest r with (width/r + 3) * (height/r + 3) <= MAX_CELLS, which bounds
    # the cell count of _lookup_grid (ceil adds < 1 cell, the margin 2).
    n = MAX_CELLS - 9
    coarsest_allowed = (
        3 * (width + height) + math.sqrt(9 * (width + height) ** 2 + 4 * n * width * height)
    ) / (2 * n)
    return max(typical / CELLS_ACROSS_TYPICAL_POLYGON, coarsest_allowed)


def _lookup_grid(bounds: np.ndarray, resolution: float) -> tuple[float, float, tuple[int, int]]:
    """West, north and (rows, cols) of a lookup table covering ``bounds``.

    One margin cell on every side guarantees that points off the table are
    outside every polygon's bounding box.
    """
    west = bounds[0] - resolution
    north = bounds[3] + resolution
    cols = math.ceil((bounds[2] - bounds[0]) / resolution) + 2
    rows = math.ceil((bounds[3] - bounds[1]) / resolution) + 2
    return float(west), float(north), (rows, cols)


def _rasterize_codes(
    geoms: np.ndarray,
    present: np.ndarray,
    west: float,
    north: float,
    resolution: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """The lookup table of ``PointIndex``.

    A cell that no polygon boundary comes near lies entirely inside or
    entirely outside each polygon, so any point in it has the answer that
    GDAL burns at its centre. Polygons are burnt from the highest index down
    so that the lowest one wins where they overlap. Cells near a boundary
    are then overwritten with UNCERTAIN.
    """
    dtype = np.int16 if len(geoms) <= np.iinfo(np.int16).max else np.int32
    order = np.flatnonzero(present)[::-1]
    codes = rasterio.features.rasterize(
        [(geoms[i], int(i)) for i in order],
        out_shape=shape,
        transform=Affine(resolution, 0, west, 0, -resolution, north),
        fill=NO_POLYGON,
        dtype=dtype,
    )
    u0, v0, u1, v1 = _segments(geoms[present], west, north, resolution)
    # In chunks, since each segment's cells take ~100 bytes while computed.
    for chunk in range(0, len(u0), SEGMENTS_PER_CHUNK):
        part = slice(chunk, chunk + SEGMENTS_PER_CHUNK)
        rows, cols = _cells_touched_by_segments(u0[part], v0[part], u1[part], v1[part])
        codes[rows, cols] = UNCERTAIN
    return codes


def _cells_touched_by_segments(
    u0: np.ndarray, v0: np.ndarray, u1: np.ndarray, v1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the lookup cells the segments touch (see ``_segments``).

    A cell counts as touched when a segment meets it grown by
    ``EDGE_TOLERANCE`` cells on every side, so a boundary along a cell edge
    or through a corner marks the cells on both sides, and rounding in the
    point-to-cell arithmetic of ``PointIndex._lookup`` cannot move a point
    across a boundary into a cell that is not marked. This is done here rather
    than with GDAL's all_touched line burning, whose handling of exactly
    those edge cases would need every marked cell dilated by a whole cell,
    sending about 2.5 times as many points down the exact path.

    Each segment is walked column by column: the part of the segment within
    a (grown) column spans a range of rows, all of which it touches.
    """
    segment, col = _spread(np.minimum(u0, u1), np.maximum(u0, u1))
    u_step = (u1 - u0)[segment]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_a = (col - EDGE_TOLERANCE - u0[segment]) / u_step
        t_b = (col + 1 + EDGE_TOLERANCE - u0[segment]) / u_step
    # A segment along a column lies wholly within it (and dividing by its zero
    # u_step gave inf or NaN): t spans [0, 1].
    along = u_step == 0
    t_low = np.where(along, 0.0, np.clip(np.minimum(t_a, t_b), 0.0, 1.0))
    t_high = np.where(along, 1.0, np.clip(np.maximum(t_a, t_b), 0.0, 1.0))
    v_step = (v1 - v0)[segment]
    v_a = v0[segment] + t_low * v_step
    v_b = v0[segment] + t_high * v_step
    part, row = _spread(np.minimum(v_a, v_b), np.maximum(v_a, v_b))
    return row, col[part]


def _segments(
    geoms: np.ndarray, west: float, north: float, resolution: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Start and end of every ring segment, in fractional lookup-cell units.

    Returns u0, v0, u1, v1 where u counts columns east of ``west`` and v
    counts rows south of ``north``.
    """
    rings = shapely.get_rings(shapely.get_parts(geoms))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    u = (coords[:, 0] - west) / resolution
    v = (north - coords[:, 1]) / resolution
    same_ring = ring[1:] == ring[:-1]
    return u[:-1][same_ring], v[:-1][same_ring], u[1:][same_ring], v[1:][same_ring]


def _spread(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every integer cell index within [low, high] grown by EDGE_TOLERANCE.

    Returns (i, cell) pairs: position i in the inputs and one cell index.
    """
    first = np.floor(low - EDGE_TOLERANCE).astype(np.intp)
    count = np.floor(high + EDGE_TOLERANCE).astype(np.intp) - first + 1
    owner = np.repeat(np.arange(len(first)), count)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    return owner, first[owner] + offset


def footprints(
    lon: np.ndarray, lat: np.ndarray, scan_km: np.ndarray, track_km: np.ndarray
) -> np.ndarray:
    """Pixel footprints as shapely geometries (EPSG:4326, degrees).

    Each is an axis-aligned rectangle centred on (lon, lat), ``scan_km`` wide
    east-west and ``track_km`` tall north-south, with 1 degree of latitude
    taken as 110.574 km and 1 degree of longitude as 111.320 * cos(lat) km.
    Where either size is missing, zero or negative the footprint is the
    centre point itself.
    """
    lon, lat, scan_km, track_km = (
        np.asarray(a, dtype=np.float64) for a in (lon, lat, scan_km, track_km)
    )
    result = shapely.points(lon, lat)
    sized = (scan_km > 0) & (track_km > 0)  # False for NaN too
    lon, lat = lon[sized], lat[sized]
    half_width = scan_km[sized] / 2 / (KM_PER_DEG_LON_AT_EQUATOR * np.cos(np.radians(lat)))
    half_height = track_km[sized] / 2 / KM_PER_DEG_LAT
    result[sized] = shapely.box(
        lon - half_width, lat - half_height, lon + half_width, lat + half_height
    )
    return result


def attribute(
    fires: pd.DataFrame, grid: gpd.GeoDataFrame, index: PointIndex | None = None
) -> pd.DataFrame:
    """``fires`` with the ``ATTRIBUTION_DTYPES`` columns added (a new frame).

    ``fires`` has pixel centres in ``lon``/``lat`` (degrees, EPSG:4326; a
    GeoDataFrame's geometry is not used) and, optionally, pixel sizes in
    ``scan_km``/``track_km``; ``grid`` has the ``GRID_COLUMNS`` in EPSG:4326
    with unique ``cell_id``. ``index`` is ``PointIndex.build(grid.geometry)``,
    passed in to reuse it across calls (building it is cheap; its lookup
    table, built only for very many points, is not).

    The cell columns describe the cell the centre lies within (as
    ``PointIndex.locate``; <NA> where none). ``cells_touched`` lists the
    sorted ``cell_id`` of every cell the pixel footprint intersects (boundary
    contact included), which always includes the centre's cell.

    Example::

        grid = load_supervision_grid(config)
        index = PointIndex.build(grid.geometry)   # build once, reuse for many frames
        fires = attribute(points, grid, index)
        fires["cell_id"].isna().sum()              # fires in no cell
    """
    _check_grid(grid)
    if index is None:
        index = PointIndex.build(grid.geometry)
    elif len(index) != len(grid):
        raise ValueError(f"index has {len(index)} polygons but grid has {len(grid)} cells")
    lon = fires["lon"].to_numpy(dtype=np.float64, na_value=np.nan)
    lat = fires["lat"].to_numpy(dtype=np.float64, na_value=np.nan)
    out = fires.copy()
    for column, values in _cell_columns(grid, index.locate(lon, lat)).items():
        out[column] = values
    out["cells_touched"] = _cells_touched(
        footprints(lon, lat, _size(fires, "scan_km"), _size(fires, "track_km")), grid, index
    )
    return out


def _check_grid(grid: gpd.GeoDataFrame) -> None:
    """Raise ValueError unless ``grid`` has the GRID_COLUMNS and unique cell ids."""
    missing = [c for c in GRID_COLUMNS if c not in grid.columns]
    if missing:
        raise ValueError(f"grid lacks columns {missing}")
    if not grid["cell_id"].is_unique:
        raise ValueError("grid cell_id must be unique")


def _size(fires: pd.DataFrame, column: str) -> np.ndarray:
    """Pixel size in km, NaN (a point footprint) where the column is absent."""
    if column not in fires.columns:
        return np.full(len(fires), np.nan)
    return fires[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _cell_columns(
    grid: gpd.GeoDataFrame, position: np.ndarray
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """The grid's attribute columns taken at ``position`` (-1 gives <NA>)."""
    cells = grid[GRID_COLUMNS[:-1]].reset_index(drop=True)
    taken = cells.reindex(position)  # -1 is not a label: all <NA>
    return {c: taken[c].astype(ATTRIBUTION_DTYPES[c]).array for c in cells.columns}


def _cells_touched(shapes: np.ndarray, grid: gpd.GeoDataFrame, index: PointIndex) -> np.ndarray:
    """Sorted cell_id lists of the cells each shape intersects, as an object array."""
    shape_pos, cell_pos = index.intersecting(shapes)
    cell_ids = grid["cell_id"].astype(str).to_numpy(dtype=object)
    id_rank = np.argsort(np.argsort(cell_ids))
    order = np.lexsort((id_rank[cell_pos], shape_pos))
    shape_pos, ids = shape_pos[order], cell_ids[cell_pos[order]]
    shapes_n = np.arange(len(shapes))
    starts = np.searchsorted(shape_pos, shapes_n, side="left")
    ends = np.searchsorted(shape_pos, shapes_n, side="right")
    result = np.empty(len(shapes), dtype=object)
    for i, (start, end) in enumerate(zip(starts, ends)):
        result[i] = ids[start:end].tolist()
    return result
