"""Fire points from many files, read lazily and in parallel with dask.

One dask partition per file: each is parsed into the common fire-point frame
(``schema.FIRE_DTYPES``), and points outside the region, the day or the
confidence floor are dropped inside the partition, before anything is
gathered. Rows and files that cannot be used come back as ``Skip`` records
beside the points, computed in the same pass.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.dataframe as dd
import pandas as pd
from dask.delayed import Delayed

from pipelines.core.files import expand_patterns
from pipelines.core.schema import empty_fires
from pipelines.core.skips import Skip
from pipelines.fires.readers import read_points
from pipelines.fires.readers.tables import OVERPASS_NOTE, TableFormat, read_table_file
from pipelines.windows.sun import daynight

NO_ROWS = "no data rows (only a header): expected fire rows, even if none fall in the region or the day"


@dataclass
class LazyFires:
    """Fire points not yet read: delayed ``(points, skips, counts)``, one per file or group of raster blocks.

    ``counts`` is a list of ``{"file": name, <count>: n, ...}``, summed per file by ``compute``.

    ``skips`` are inputs already known to be unusable (files that could not be opened).
    """

    parts: list[Delayed]
    skips: list[Skip] = field(default_factory=list)

    def __add__(self, other: LazyFires) -> LazyFires:
        return LazyFires(self.parts + other.parts, self.skips + other.skips)

    @property
    def points(self) -> dd.DataFrame:
        """The points as a dask DataFrame (``schema.FIRE_DTYPES``), one partition per part."""
        if not self.parts:
            return dd.from_pandas(empty_fires(), npartitions=1)
        return dd.from_delayed([p[0] for p in self.parts], meta=empty_fires(), verify_meta=False)

    def compute(self, **kwargs: object) -> tuple[pd.DataFrame, list[Skip], dict[str, dict]]:
        """Read everything in one pass of the scheduler: points, skips, and counts per file name."""
        (results,) = dask.compute(self.parts, **kwargs)
        frames = [r[0] for r in results if len(r[0])]
        points = pd.concat(frames, ignore_index=True) if frames else empty_fires()
        counts: dict[str, dict] = {}
        for c in (c for r in results for c in r[2]):
            merged = counts.setdefault(c["file"], {})
            for key, value in c.items():
                if key != "file":
                    merged[key] = merged.get(key, 0) + value
        return points, self.skips + [s for r in results for s in r[1]], counts


def read_fires(
    paths: list[Path],
    *,
    bbox: tuple[float, float, float, float] | None = None,
    day: dt.date | None = None,
    min_confidence: float = 0.0,
) -> LazyFires:
    """Lazily read fire-point files (FIRMS, Himawari WLF) into one dask DataFrame.

    ``bbox`` is (lon_min, lat_min, lon_max, lat_max) in WGS84 degrees; ``day``
    keeps the points whose **Beijing** date is ``day`` (None: every day in the
    files, e.g. a season of archive files); ``min_confidence`` is a
    percentage, 0-100 (fires of unknown confidence are kept).

    Nothing is read here: the result's ``.points`` is a dask DataFrame with
    one partition per file, and ``.compute()`` reads all files in one pass
    of the current scheduler, returning ``(points, skips, counts per file)``.
    Points have ``time_utc``/``time_bjt`` and WGS84 ``lon``/``lat`` (the
    pixel centre). Add ``read_raster_fires(...)`` with ``+`` to read rasters
    in the same pass.

    Example::

        lazy = read_fires(files, bbox=config.region.bbox, day=dt.date(2022, 6, 3), min_confidence=30)
        lazy.points.npartitions              # one per file
        points, skips, per_file = lazy.compute()
    """
    parts = [
        dask.delayed(_read_one)(str(p), bbox, day, min_confidence, dask_key_name=f"read-fires-{i}-{Path(p).name}")
        for i, p in enumerate(paths)
    ]
    return LazyFires(parts)


def expand_tables(tables: tuple[TableFormat, ...] | list[TableFormat], base: Path, day: dt.date | None = None) -> list[tuple[Path, TableFormat]]:
    """Files of each ``[[fires.tables]]`` entry (``path`` patterns as in ``expand_patterns``), sorted.

    A file matched by several entries is read with the first. Files matched by
    no entry are not tables (and are not read as such).
    """
    claimed: dict[Path, TableFormat] = {}
    for fmt in tables:
        for found in expand_patterns(fmt.path, base, day):
            claimed.setdefault(found, fmt)
    return sorted(claimed.items(), key=lambda item: item[0])


def read_table_fires(
    files: list[tuple[Path, TableFormat]],
    *,
    bbox: tuple[float, float, float, float] | None = None,
    day: dt.date | None = None,
    min_confidence: float = 0.0,
) -> LazyFires:
    """Lazily read agency fire-point tables (CSV, .xlsx; ``readers.tables``), one partition per file.

    ``files`` pairs each file with its ``[[fires.tables]]`` entry (``expand_tables``);
    filters as in ``read_fires``, applied inside the partition. Add to
    ``read_fires(...)`` with ``+`` to read everything in one pass.

    Example::

        files = expand_tables(config.fires.tables, config.base_dir, dt.date(2025, 11, 19))
        points, skips, per_file = read_table_fires(files, day=dt.date(2025, 11, 19)).compute()
    """
    parts = [
        dask.delayed(_read_table_one)(str(p), fmt, bbox, day, min_confidence, dask_key_name=f"read-table-{i}-{Path(p).name}")
        for i, (p, fmt) in enumerate(files)
    ]
    return LazyFires(parts)


def _read_table_one(
    path: str, fmt: TableFormat, bbox: tuple[float, float, float, float] | None, day: dt.date | None, min_confidence: float
) -> tuple[pd.DataFrame, list[Skip], list[dict]]:
    frame, skips = read_table_file(path, fmt)
    from_overpass = int(frame["product"].str.contains(OVERPASS_NOTE, regex=False).sum())
    frame, counts = filter_fires(frame, bbox, day, min_confidence)
    return frame, skips, [{"file": Path(path).name, **counts, "time_from_overpass": from_overpass}]


def _read_one(
    path: str, bbox: tuple[float, float, float, float] | None, day: dt.date | None, min_confidence: float
) -> tuple[pd.DataFrame, list[Skip], list[dict]]:
    frame, skips = read_points(path)
    if frame.empty and not skips:
        # A header and nothing else: a failed or empty download, which must not read as a quiet night.
        skips = [Skip(Path(path).name, NO_ROWS)]
    frame, counts = filter_fires(frame, bbox, day, min_confidence)
    return frame, skips, [{"file": Path(path).name, **counts}]


def filter_fires(
    frame: pd.DataFrame, bbox: tuple[float, float, float, float] | None, day: dt.date | None, min_confidence: float
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop fires outside ``bbox``, the Beijing ``day`` or below ``min_confidence``; fill day/night.

    Returns the kept fires and how many each filter dropped.
    """
    counts = {"rows_read": len(frame)}
    if bbox is not None:
        lon0, lat0, lon1, lat1 = bbox
        inside = frame["lon"].between(lon0, lon1) & frame["lat"].between(lat0, lat1)
        counts["outside_region"] = int((~inside).sum())
        frame = frame[inside]
    if day is not None:
        on_day = frame["time_bjt"].dt.date == day
        counts["other_dates"] = int((~on_day).sum())
        frame = frame[on_day]
    if min_confidence > 0:
        confident = ~(frame["confidence"] < min_confidence)
        counts["below_confidence"] = int((~confident).sum())
        frame = frame[confident]
    counts["rows_kept"] = len(frame)
    return fill_daynight(frame), counts


def fill_daynight(frame: pd.DataFrame) -> pd.DataFrame:
    """Day/night where the product does not say: the sun's centre above the horizon is day."""
    missing = frame["daynight"].isna()
    if not missing.any():
        return frame
    frame = frame.copy()
    sub = frame[missing]
    frame.loc[missing, "daynight"] = daynight(sub["lon"].to_numpy(), sub["lat"].to_numpy(), sub["time_utc"])
    return frame


def dedupe(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per detection (``fire_id``), sorted by time; the number of repeats dropped.

    The same pixel often arrives in overlapping files (a 24 h and a 7 d FIRMS
    export); the copy from the first file by name is kept.

    Example::

        points, repeats = dedupe(points)     # points from read_fires(...).compute()
    """
    ordered = frame.sort_values(["fire_id", "source_file", "source_row"], kind="stable")
    unique = ordered.drop_duplicates("fire_id", keep="first")
    unique = unique.sort_values(["time_utc", "fire_id"], kind="stable", ignore_index=True)
    return unique, len(frame) - len(unique)
