"""Supervision grid cells: loading them from any polygon layer, or generating them.

A grid is a GeoDataFrame in WGS84 (EPSG:4326) with ``schema.GRID_COLUMNS``:
one row per cell with a stable id, a name, its county and province codes and
names, and the responsible supervisor.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from pipelines.core.exceptions import GridError
from pipelines.core.schema import GRID_COLUMNS, WGS84
from pipelines.core.settings import Config, CountiesConfig, GridConfig
from pipelines.core.skips import Skip
from pipelines.grid.chinacrs import bd09_to_wgs84, gcj02_to_wgs84, to_wgs84

log = logging.getLogger(__name__)

# Albers equal-area for China: square cells of equal area anywhere in the country.
CHINA_ALBERS = "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +ellps=WGS84 +units=m +no_defs"
UNASSIGNED = "unassigned"
SLIVER_FRACTION = 0.01  # pieces under 1 % of a square's area join a neighbour
DATUM_SAMPLE = 20  # counties whose outlines are compared with the grid's when looking for a GCJ-02/BD-09 layer
DATUM_RATIO = 0.75  # read as GCJ-02 (BD-09) the outlines must differ at most this fraction of what they differ as loaded
DATUM_MIN_M = 50.0  # m: outlines closer than this on average are not suspected of a datum shift


def read_layer(path: Path, layer: str = "") -> gpd.GeoDataFrame:
    """Read polygons from GeoPackage, GeoJSON, Shapefile or GeoParquet."""
    if not path.exists():
        raise GridError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return gpd.read_parquet(path)
        return gpd.read_file(path, layer=layer or None, engine="pyogrio")
    except Exception as exc:  # the drivers raise many types; all mean "cannot use this file"
        raise GridError(f"{path}: cannot read polygon layer: {exc}") from exc


def load_counties(cfg: CountiesConfig) -> gpd.GeoDataFrame:
    """County polygons with ``county_code``, ``county_name``, ``province_code``, ``province_name``.

    Converted to WGS84 (EPSG:4326) from the layer's CRS; codes are 6-digit
    adcodes as strings; invalid polygons are repaired.

    Example::

        counties = load_counties(config.counties)
        index = PointIndex.build(counties.geometry)
    """
    raw = to_wgs84(read_layer(cfg.path), None)
    columns = {
        cfg.code_column: "county_code",
        cfg.name_column: "county_name",
        cfg.province_code_column: "province_code",
        cfg.province_name_column: "province_name",
    }
    _require_columns(raw, list(columns), cfg.path, "[counties]")
    counties = raw.rename(columns=columns)[[*columns.values(), "geometry"]]
    for column in ("county_code", "province_code"):
        counties[column] = _codes(counties[column])
    return _repaired(counties, cfg.path, "county_code")[0]


def load_grid(cfg: GridConfig, counties: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """The supervision grid of ``cfg`` in WGS84, with ``schema.GRID_COLUMNS``.

    Converts from the layer's CRS or from ``cfg.crs`` (an EPSG code, or
    ``GCJ-02``/``BD-09``, which have none); repairs invalid polygons with a
    warning; fills county and province names from ``counties`` (matched by
    county code) where the layer has none. Raises ``GridError`` for a missing
    file or column, duplicate cell ids, or a layer without CRS.

    Example::

        grid = load_grid(config.grid, load_counties(config.counties))  # EPSG:4326
        # load_supervision_grid(config) does the same, reading counties only when needed
    """
    raw = read_layer(cfg.path, cfg.layer)
    wanted = [cfg.id_column, cfg.name_column, cfg.county_column, cfg.supervisor_column,
              cfg.county_name_column, cfg.province_column, cfg.province_name_column]
    _require_columns(raw, [c for c in wanted if c], cfg.path, "[grid]")
    try:
        raw = to_wgs84(raw, cfg.crs or None)
    except ValueError as exc:
        raise GridError(f"{cfg.path}: {exc}") from exc

    grid = gpd.GeoDataFrame(geometry=raw.geometry.values, crs=WGS84, index=raw.index)
    grid["cell_id"] = raw[cfg.id_column].astype("string").str.strip()
    grid["cell_name"] = raw[cfg.name_column].astype("string")
    grid["county_code"] = _codes(raw[cfg.county_column])
    grid["province_code"] = (
        _codes(raw[cfg.province_column]) if cfg.province_column else grid["county_code"].str[:2] + "0000"
    )
    grid["supervisor"] = (
        raw[cfg.supervisor_column].astype("string").fillna(UNASSIGNED) if cfg.supervisor_column else UNASSIGNED
    )
    grid["county_name"] = raw[cfg.county_name_column].astype("string") if cfg.county_name_column else pd.NA
    grid["province_name"] = raw[cfg.province_name_column].astype("string") if cfg.province_name_column else pd.NA
    if counties is not None:
        grid = _fill_names(grid, counties)

    grid["_feature"] = np.arange(1, len(grid) + 1)
    blank = (grid["cell_id"].isna() | (grid["cell_id"] == "")).to_numpy()
    repeated = grid["cell_id"].duplicated().to_numpy() & ~blank
    if blank.mean() > 0.5 or (len(grid) and repeated.sum() > len(grid) / 2):
        # Most ids bad: the wrong column, not a few bad cells.
        duplicated = ", ".join(map(str, grid.loc[repeated, "cell_id"].unique()[:10]))
        raise GridError(f"{cfg.path}: [grid] id_column '{cfg.id_column}' is not unique ({duplicated}) or empty in most features")
    skips = [Skip(cfg.path.name, f"{cfg.id_column} is empty: expected a cell id; cell left out", row=int(r), field=cfg.id_column)
             for r in grid.loc[blank, "_feature"]]
    skips += [Skip(cfg.path.name, f"{cfg.id_column} {i!r} repeats an earlier cell's id; this cell left out", row=int(r), field=cfg.id_column)
              for i, r in zip(grid.loc[repeated, "cell_id"], grid.loc[repeated, "_feature"])]
    grid, dropped = _repaired(grid[~(blank | repeated)], cfg.path, "cell_id")
    skips += [Skip(cfg.path.name, "geometry is empty or missing: expected a polygon; cell left out", row=int(r), field="geometry")
              for r in dropped]
    if grid.empty:
        raise GridError(f"{cfg.path}: no usable cell (every feature lacks an id or a polygon)")
    grid = grid[GRID_COLUMNS].reset_index(drop=True)
    if counties is not None:
        warn_if_shifted(grid, counties, cfg.path)
    grid.attrs["skipped"] = skips  # one per left-out feature, for run.json
    return grid


def outline_misfit(grid: gpd.GeoDataFrame, counties: gpd.GeoDataFrame, to_wgs84_xy=None, sample: int = DATUM_SAMPLE) -> float | None:
    """Mean distance (m) between the outline of each county's cells and the county's polygon.

    The symmetric difference of the two, in m², over the length of the
    counties' outlines (China Albers), summed over up to ``sample`` counties
    the grid and the county layer share (spread over the codes in order).
    ``to_wgs84_xy`` (e.g. ``gcj02_to_wgs84``) is first applied to the
    grid's coordinates: "how well would it fit read as GCJ-02". None when no
    county code is in both layers.
    """
    by_code = counties.drop_duplicates("county_code").set_index("county_code").geometry
    codes = sorted(set(grid["county_code"].dropna()) & set(by_code.index))
    if not codes:
        return None
    codes = codes[:: max(1, len(codes) // sample)][:sample]
    unions, outlines = [], []
    for code in codes:
        cells = grid.geometry.values[(grid["county_code"] == code).to_numpy()]
        if to_wgs84_xy is not None:
            # Shifting vertices one by one can fold the shared edges of neighbouring cells.
            cells = shapely.make_valid(shapely.transform(cells, lambda xy: np.column_stack(to_wgs84_xy(xy[:, 0], xy[:, 1]))))
        unions.append(shapely.union_all(cells))
        outlines.append(by_code[code])
    both = gpd.GeoSeries(unions + outlines, crs=WGS84).to_crs(CHINA_ALBERS).values
    mine, theirs = both[: len(codes)], both[len(codes):]
    length = shapely.length(theirs).sum()
    return float(shapely.area(shapely.symmetric_difference(mine, theirs)).sum() / length) if length > 0 else None


def warn_if_shifted(grid: gpd.GeoDataFrame, counties: gpd.GeoDataFrame, path: Path) -> str | None:
    """Warn when the grid fits the county layer much better read as GCJ-02 (or BD-09): it was probably traced on Amap/Baidu.

    Boundaries traced on those maps sit 100-700 m (BD-09 up to ~1 km) off
    WGS84 in a direction that varies slowly across China. The cells of each
    county are compared with the county's polygon as loaded and as if
    converted from GCJ-02 / BD-09; generalisation differences between two
    boundary sources stay, so only a clear improvement counts. Returns the
    warning (also logged), or None.
    """
    as_loaded = outline_misfit(grid, counties)
    if as_loaded is None or as_loaded < DATUM_MIN_M:
        return None
    for name, convert in (("GCJ-02", gcj02_to_wgs84), ("BD-09", bd09_to_wgs84)):
        other = outline_misfit(grid, counties, convert)
        if other is not None and other <= DATUM_RATIO * as_loaded:
            message = (f"{path.name}: the cells' outlines are {as_loaded:.0f} m off the county layer on average, "
                       f"{other:.0f} m if read as {name}: the layer may be in {name} coordinates "
                       f"(traced on {'Amap/Tencent' if name == 'GCJ-02' else 'Baidu'} maps); if so set [grid] crs = \"{name}\"")
            log.warning("%s", message)
            return message
    return None


def make_grid(counties: gpd.GeoDataFrame, cell_km: float = 5.0, provinces: tuple[str, ...] = (),
              county_codes: tuple[str, ...] = ()) -> gpd.GeoDataFrame:
    """A regular supervision grid: squares of ``cell_km`` km clipped to county polygons.

    Squares are laid on a fixed lattice in China Albers equal-area (origin at
    0, 0), so a cell keeps its id whichever counties are gridded; a square that
    straddles a county border becomes one cell per county. Cell ids read
    ``<county code>_E<x km>_N<y km>`` (the square's south-west corner).
    ``provinces`` and ``county_codes`` (6-digit adcodes) select the counties
    gridded: those of the provinces plus the counties named; both empty = all.
    Returns WGS84 cells with ``schema.GRID_COLUMNS``, supervisor "unassigned",
    every geometry a valid (multi)polygon.
    """
    if provinces or county_codes:
        unknown = sorted(set(provinces) - set(counties["province_code"])) + sorted(set(county_codes) - set(counties["county_code"]))
        if unknown:
            raise GridError(f"the county layer has no province or county with the code(s) {', '.join(unknown)}: expected 6-digit "
                            f"adcodes of provinces (e.g. 230000) or counties (e.g. 230102; a city's code such as 230100 is neither)")
        counties = counties[counties["province_code"].isin(provinces) | counties["county_code"].isin(county_codes)]
    size = cell_km * 1000.0
    projected = counties.to_crs(CHINA_ALBERS)
    pieces = []
    for county, geometry in zip(counties.itertuples(index=False), projected.geometry.values):
        x0, y0, x1, y1 = geometry.bounds
        ix, iy = np.meshgrid(np.arange(np.floor(x0 / size), np.ceil(x1 / size)),
                             np.arange(np.floor(y0 / size), np.ceil(y1 / size)))
        ix, iy = ix.ravel(), iy.ravel()
        squares = shapely.box(ix * size, iy * size, (ix + 1) * size, (iy + 1) * size)
        shapely.prepare(geometry)
        hit = shapely.intersects(geometry, squares)
        clipped = shapely.intersection(squares[hit], geometry)
        polygonal = shapely.get_dimensions(clipped) == 2
        clipped = np.array([_polygonal_part(g) for g in clipped[polygonal]], dtype=object)
        x_km, y_km = (ix[hit][polygonal] * cell_km).astype(int), (iy[hit][polygonal] * cell_km).astype(int)
        keep = _absorb_slivers(clipped, min_area=SLIVER_FRACTION * size**2)
        clipped, x_km, y_km = clipped[keep], x_km[keep], y_km[keep]
        ids = [f"{county.county_code}_{_axis(x, 'E', 'W')}_{_axis(y, 'N', 'S')}" for x, y in zip(x_km, y_km)]
        pieces.append(pd.DataFrame({
            "cell_id": ids,
            "cell_name": [f"{county.county_name} {i.split('_', 1)[1]}" for i in ids],
            "county_code": county.county_code,
            "county_name": county.county_name,
            "province_code": county.province_code,
            "province_name": county.province_name,
            "supervisor": UNASSIGNED,
            "geometry": clipped,
        }))
    cells = pd.concat(pieces, ignore_index=True)
    grid = gpd.GeoDataFrame(cells, geometry="geometry", crs=CHINA_ALBERS).to_crs(WGS84)
    # Valid in Albers is not valid in degrees: reprojecting can fold a ring where two vertices
    # of a county border nearly touch (230206_E1410_N5235 in Heilongjiang). Repair here, once,
    # rather than in every nightly load.
    invalid = ~shapely.is_valid(grid.geometry.values)
    if invalid.any():
        grid.loc[invalid, "geometry"] = [_polygonal_part(g) for g in shapely.make_valid(grid.geometry.values[invalid])]
    grid = grid[~(shapely.is_empty(grid.geometry.values) | (shapely.area(grid.geometry.values) == 0))]
    for column in GRID_COLUMNS[:-1]:
        grid[column] = grid[column].astype("string")
    return grid.sort_values("cell_id", ignore_index=True)[GRID_COLUMNS]


def _absorb_slivers(pieces: np.ndarray, min_area: float) -> np.ndarray:
    """Merge pieces smaller than ``min_area`` into their neighbour with the longest shared edge.

    Simplified county borders cut squares into slivers of a few m², which
    would each become a cell, a map and a supervisor's assignment. ``pieces``
    (one county's, projected, m²) is modified in place; returns the mask of
    pieces to keep.
    """
    keep = np.ones(len(pieces), dtype=bool)
    small = np.flatnonzero(shapely.area(pieces) < min_area)
    tree = shapely.STRtree(pieces)
    for i in small:
        near = [j for j in tree.query(pieces[i], predicate="intersects") if j != i and keep[j]]
        if not near:
            continue
        shared = shapely.length(shapely.intersection(shapely.boundary(pieces[near]), pieces[i].boundary))
        target = near[int(np.argmax(shared))]
        pieces[target] = _polygonal_part(shapely.union(pieces[target], pieces[i]))
        keep[i] = False
    return keep


def _axis(value_km: int, positive: str, negative: str) -> str:
    return f"{positive if value_km >= 0 else negative}{abs(value_km)}"


def _polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """Drop the points and lines an intersection or a repair can leave along shared edges."""
    if isinstance(geometry, shapely.GeometryCollection):
        parts = [g for g in shapely.get_parts(geometry) if shapely.get_dimensions(g) == 2]
        return shapely.union_all(parts) if parts else shapely.Polygon()
    return geometry


def codes_as_text(values: pd.Series) -> pd.Series:
    """Administrative codes as text, whether stored as text, int or float."""
    def text(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return pd.NA
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()
    return values.map(text).astype("string")


_codes = codes_as_text


def _require_columns(frame: pd.DataFrame, columns: list[str], path: Path, section: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(c for c in frame.columns if c != "geometry")
        raise GridError(f"{path}: {section} names column(s) {', '.join(repr(c) for c in missing)}, which the layer does not have (it has: {have})")


def _repaired(frame: gpd.GeoDataFrame, path: Path, id_column: str) -> tuple[gpd.GeoDataFrame, list[int]]:
    """Invalid polygons made valid (with a warning naming them); empty ones dropped, and
    their ``_feature`` numbers (1-based position in the layer) returned."""
    frame = frame.copy()
    geometry = frame.geometry.values
    invalid = ~shapely.is_valid(geometry) & ~shapely.is_missing(geometry)
    if invalid.any():
        names = ", ".join(map(str, frame.loc[invalid, id_column].head(10)))
        log.warning("%s: repaired %d invalid polygon(s) (%s)", path.name, int(invalid.sum()), names)
        fixed = shapely.make_valid(geometry[invalid])
        frame.loc[invalid, "geometry"] = [_polygonal_part(g) for g in fixed]
    empty = shapely.is_missing(frame.geometry.values) | shapely.is_empty(frame.geometry.values)
    if empty.any():
        names = ", ".join(map(str, frame.loc[empty, id_column].head(10)))
        log.warning("%s: dropped %d cell(s) with no area (%s)", path.name, int(empty.sum()), names)
        return frame[~empty], [int(r) for r in frame.loc[empty, "_feature"]] if "_feature" in frame else []
    return frame, []


def _fill_names(grid: gpd.GeoDataFrame, counties: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    by_code = counties.drop_duplicates("county_code").set_index("county_code")
    grid["county_name"] = grid["county_name"].fillna(grid["county_code"].map(by_code["county_name"]))
    provinces = counties.drop_duplicates("province_code").set_index("province_code")["province_name"]
    grid["province_name"] = grid["province_name"].fillna(grid["province_code"].map(provinces))
    return grid


def load_supervision_grid(config: Config) -> gpd.GeoDataFrame:
    """The configured grid (``GRID_COLUMNS``, EPSG:4326), names filled from the county layer where the grid lacks them.

    The county layer is also what the grid's outlines are compared with, to
    warn about a layer in GCJ-02 or BD-09 read as WGS84 (``cells.warn_if_shifted``).

    Example::

        grid = load_supervision_grid(load_config("config.toml"))   # GeoDataFrame, one row per cell
    """
    return load_grid(config.grid, load_counties(config.counties))
