"""Readers of the grid company's data: enterprise registry, transformer table, warnings, readings.

Registry, transformer table and warning list are small CSV files kept by
hand; each bad row is skipped with its line number and field. Readings are the
large input (one row per transformer and 15-minute interval, or per day): they
become a dask dataframe with one partition per file (CSV) or row group
(Parquet), so that one day of a province never sits in memory as rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import dask.dataframe as dd
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipelines.core.csvtext import (
    BadRecord,
    CsvTable,
    UnreadableFile,
    binary_kind,
    decode,
    first_line,
    header_fields,
    iter_records,
    read_table,
    read_text,
    to_float,
)
from pipelines.core.exceptions import PowerInputError
from pipelines.core.schema import BEIJING_TZ, WGS84
from pipelines.core.settings import GRADES, LEVELS, ReadingFormat
from pipelines.core.skips import Skip
from pipelines.grid.chinacrs import to_wgs84

# Enterprise status, as written in English or in the registry's Chinese.
STATUSES = {
    "operating": "operating", "正常": "operating", "在产": "operating", "生产": "operating",
    "closed": "closed", "取缔": "closed", "关停": "closed", "关闭": "closed",
    "rectifying": "rectifying", "整改": "rectifying", "停产整改": "rectifying",
    "moved": "moved", "搬迁": "moved",
}
LEVEL_RANK = {"yellow": 1, "orange": 2, "red": 3}

# Degrees (WGS84, GCJ-02 or BD-09 alike) of a box around China: transformers outside it are typos.
CHINA_LON = (73.0, 136.0)
CHINA_LAT = (3.0, 54.0)

REGISTRY_COLUMNS = ["enterprise_id", "name", "address", "industry", "status", "status_date", "deadline", "grade"]
TRANSFORMER_COLUMNS = ["transformer_id", "enterprise_id", "lon", "lat"]
WARNING_COLUMNS = ["warning_id", "level", "start", "end", "region"]


# Codes of the per-row quality column of tidy readings.
OK, BAD_ID, BAD_TIME, BAD_VALUE, OUTSIDE_DAY, UNMAPPED, REPEATED_HEADER = 0, 1, 2, 3, 4, 5, 6
# Rows that do not split into the header's fields: (kind -> code for the transformer, time, value column).
BAD_ROW = {"few": (7, 8, 9), "many": (10, 11, 12), "unparsable": (13, 14, 15)}
_SHAPE_REASONS = {
    "few": "fewer fields than the header (a line cut short?); the row is not used",
    "many": "more fields than the header (an unquoted comma in a value, e.g. 1,234?); the row is not used",
    "unparsable": "not CSV (a field over the csv module's 128 KiB limit, or a stray quote); the row is not used",
}
# code -> (which configured column: "transformer", "time" or "value"; reason)
ROW_PROBLEMS = {
    BAD_ID: ("transformer", "no transformer id"),
    BAD_TIME: ("time", "not a time (expected e.g. 2016-09-01 00:15)"),
    BAD_VALUE: ("value", "not a finite number (expected kWh)"),
    UNMAPPED: ("transformer", "transformer id not in the transformer table"),
    REPEATED_HEADER: ("transformer", "the header line again (files joined together?); the row is not used"),
    **{code: (role, _SHAPE_REASONS[kind]) for kind, codes in BAD_ROW.items() for role, code in zip(("transformer", "time", "value"), codes)},
}


def read_registry(path: Path) -> tuple[pd.DataFrame, list[Skip]]:
    """Enterprises: ``REGISTRY_COLUMNS``, one row per enterprise id.

    ``status`` is normalised to operating / closed / rectifying / moved;
    ``status_date`` (Beijing date) is when it was closed, moved or put under
    rectification and is required for those; ``deadline`` ends a
    rectification; ``grade`` is A, B, C, D or leading for members of the
    emergency reduction list and "" otherwise. Raises ``PowerInputError`` if
    the file is unusable.
    """
    table = _csv(path, REGISTRY_COLUMNS[:5], optional=REGISTRY_COLUMNS[5:])
    frame, skips = table.frame, list(table.skips)
    status = frame["status"].str.strip().str.lower().map(STATUSES)
    grade = frame["grade"].str.strip().str.lower().map(GRADES)
    status_date = _dates(frame["status_date"])
    deadline = _dates(frame["deadline"])
    checks = [  # (bad rows, field, message); the first that applies to a row is reported
        (frame["enterprise_id"] == "", "enterprise_id", lambda i: "empty enterprise id"),
        (status.isna(), "status", lambda i: f"{frame['status'].iat[i]!r}: expected operating, closed (取缔/关停), rectifying (整改) or moved (搬迁)"),
        (grade.isna(), "grade", lambda i: f"{frame['grade'].iat[i]!r}: expected A, B, C, D, leading (引领性) or empty"),
        ((frame["status_date"] != "") & status_date.isna(), "status_date", lambda i: f"{frame['status_date'].iat[i]!r}: expected a date YYYY-MM-DD"),
        ((frame["deadline"] != "") & deadline.isna(), "deadline", lambda i: f"{frame['deadline'].iat[i]!r}: expected a date YYYY-MM-DD"),
        ((status != "operating") & status_date.isna(), "status_date", lambda i: f"status {status.iat[i]} needs the date it took effect"),
    ]
    keep = _check_rows(path, table.lines, checks, skips)
    out = pd.DataFrame({
        "enterprise_id": frame["enterprise_id"].astype("string"),
        "name": frame["name"].astype("string"),
        "address": frame["address"].astype("string"),
        "industry": frame["industry"].astype("string"),
        "status": status.astype("string"),
        "status_date": status_date,
        "deadline": deadline,
        "grade": grade.astype("string"),
        "source_row": table.lines,
    })[keep]
    repeated = out["enterprise_id"].duplicated()
    skips += [Skip(path.name, "enterprise id listed twice; the first row is used", row=int(r), field="enterprise_id")
              for r in out.loc[repeated, "source_row"]]
    return out[~repeated].reset_index(drop=True), skips


def read_transformers(path: Path, crs: str = "") -> tuple[gpd.GeoDataFrame, list[Skip]]:
    """Dedicated transformers: id, enterprise id ("" when none is registered), location, capacity.

    ``kva`` (optional column): the transformer's rated capacity in kVA, NaN
    where not given; readings implying more than ``kw_per_kva`` x kVA are
    implausible (``meters.capacity_kw``).

    Coordinates are longitude/latitude in ``crs`` ("" = WGS84; "GCJ-02" and
    "BD-09" are converted); the result is EPSG:4326. Raises ``PowerInputError``
    if the file is unusable.
    """
    table = _csv(path, TRANSFORMER_COLUMNS, ("kva",))
    frame, skips = table.frame, list(table.skips)
    lon, lat = to_float(frame["lon"]), to_float(frame["lat"])
    # Capacity (kVA, optional): a bad value loses only itself; the fleet-wide max_kw applies to that transformer.
    kva = to_float(frame["kva"])
    bad_kva = (frame["kva"] != "") & ~(np.isfinite(kva) & (kva > 0))
    skips += [Skip(path.name, f"{frame['kva'].iat[i]!r}: expected a capacity in kVA (> 0); the fleet-wide max_kw is used for this transformer",
                   row=int(table.lines[i]), field="kva") for i in np.flatnonzero(bad_kva.to_numpy(bool))]
    kva = kva.where(~bad_kva & (frame["kva"] != ""))
    checks = [
        (frame["transformer_id"] == "", "transformer_id", lambda i: "empty transformer id"),
        (~np.isfinite(lon), "lon", lambda i: f"{frame['lon'].iat[i]!r}: expected a longitude in degrees"),
        (~np.isfinite(lat), "lat", lambda i: f"{frame['lat'].iat[i]!r}: expected a latitude in degrees"),
        # A typo or swapped columns would put the transformer abroad; its enterprise would then never be judged.
        (~lon.between(*CHINA_LON), "lon", lambda i: f"{frame['lon'].iat[i]!r}: outside China (expected {CHINA_LON[0]:g}-{CHINA_LON[1]:g} °E)"),
        (~lat.between(*CHINA_LAT), "lat", lambda i: f"{frame['lat'].iat[i]!r}: outside China (expected {CHINA_LAT[0]:g}-{CHINA_LAT[1]:g} °N)"),
    ]
    keep = _check_rows(path, table.lines, checks, skips)
    out = gpd.GeoDataFrame(
        {"transformer_id": frame["transformer_id"].astype("string"), "enterprise_id": frame["enterprise_id"].astype("string"),
         "kva": kva.astype("float64").to_numpy(), "source_row": table.lines},
        geometry=gpd.points_from_xy(lon, lat), crs=WGS84,
    )[keep]
    repeated = out["transformer_id"].duplicated()
    skips += [Skip(path.name, "transformer id listed twice; the first row is used", row=int(r), field="transformer_id")
              for r in out.loc[repeated, "source_row"]]
    out = out[~repeated].reset_index(drop=True)
    if crs:
        try:
            out = to_wgs84(out, crs)
        except ValueError as exc:
            raise PowerInputError(f"{path}: {exc}") from None
    out["lon"], out["lat"] = out.geometry.x, out.geometry.y
    return out, skips


def read_warnings(path: Path) -> tuple[pd.DataFrame, list[Skip]]:
    """Heavy-pollution warnings: id, level (yellow/orange/red), start and end (UTC), region.

    ``start``/``end`` without an offset are Beijing time. ``region`` lists
    administrative code prefixes separated by ``;`` ("13" = Hebei, "1301" =
    Shijiazhuang, "130102" = one county) or ``*`` for everywhere.
    """
    table = _csv(path, WARNING_COLUMNS, allow_empty=True)
    frame, skips = table.frame, list(table.skips)
    level = frame["level"].str.lower().map(LEVELS)
    start, end = _instants(frame["start"]), _instants(frame["end"])
    checks = [
        (level.isna(), "level", lambda i: f"{frame['level'].iat[i]!r}: expected yellow, orange or red (黄色/橙色/红色)"),
        (start.isna(), "start", lambda i: f"{frame['start'].iat[i]!r}: expected a time, e.g. 2016-01-01 20:00"),
        (end.isna(), "end", lambda i: f"{frame['end'].iat[i]!r}: expected a time, e.g. 2016-01-03 24:00"),
        (end <= start, "end", lambda i: "ends before it starts"),
        (frame["region"] == "", "region", lambda i: "empty region: expected code prefixes separated by ';', or '*'"),
    ]
    keep = _check_rows(path, table.lines, checks, skips)
    out = pd.DataFrame({
        "warning_id": frame["warning_id"].where(frame["warning_id"] != "", "row " + pd.Series(table.lines, index=frame.index).astype(str)).astype("string"),
        "level": level.astype("string"),
        "start_utc": start,
        "end_utc": end,
        "region": frame["region"].astype("string"),
    })[keep]
    return out.reset_index(drop=True), skips


def _check_rows(path: Path, lines: np.ndarray, checks: list[tuple[pd.Series, str, Callable[[int], str]]], skips: list[Skip]) -> np.ndarray:
    """Rows to keep; each bad row becomes one skip, for the first check it fails (vectorised: registries are large)."""
    keep = np.ones(len(lines), bool)
    for bad, field, message in checks:
        for i in np.flatnonzero(bad.fillna(True).to_numpy(bool) & keep):
            skips.append(Skip(path.name, message(i), row=int(lines[i]), field=field))
            keep[i] = False
    skips.sort(key=lambda s: s.row or 0)
    return keep


def _csv(path: Path, required: list[str], optional: Sequence[str] = (), *, allow_empty: bool = False) -> CsvTable:
    """The file's cells; raises ``PowerInputError`` (with a skip) when it is unreadable, empty or lacks a column.

    ``allow_empty``: a header without rows is fine (no warnings); for the
    registry and transformer table it would make every transformer look
    unregistered, so it is an error.
    """
    expected = ", ".join([*required, *optional])
    try:
        text = read_text(path).lstrip("\ufeff")
        header = header_fields(first_line(text)) if text.strip() else []
    except UnreadableFile as exc:
        raise PowerInputError(f"{path}: {exc}", Skip(path.name, f"{exc}; the file is not used")) from None
    if not header:
        raise PowerInputError(f"{path}: empty file; expected a header {expected}",
                              Skip(path.name, f"empty file: expected a header {expected}; the file is not used", row=1))
    table = read_table(path, text, 1, header)
    missing = [c for c in required if c not in table.frame.columns]
    if missing:
        raise PowerInputError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}",
                              Skip(path.name, f"missing column(s) {', '.join(missing)}: expected {expected}; the file is not used",
                                   row=1, field=missing[0]))
    if not allow_empty and not len(table.frame) and not table.skips:
        raise PowerInputError(f"{path}: no rows, only a header",
                              Skip(path.name, "no rows, only a header: nothing can be judged against it; the file is not used", row=1))
    for column in optional:
        if column not in table.frame.columns:
            table.frame[column] = ""
    return table


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.where(values != ""), errors="coerce", format="mixed").dt.date.astype(object).where(
        lambda s: s.notna(), None)


def _instants(values: pd.Series) -> pd.Series:
    """UTC instants from text; "24:00" is the next midnight; no offset = Beijing time."""
    text = values.str.strip()
    midnight = text.str.endswith("24:00")
    text = text.where(~midnight, text.str[:-5] + "00:00")
    parsed = pd.Series(pd.NaT, index=values.index, dtype=pd.DatetimeTZDtype("ns", "UTC"))
    for i, value in text.items():
        try:
            ts = pd.Timestamp(value)
        except (ValueError, OverflowError, TypeError):
            continue
        if pd.isna(ts):
            continue
        ts = ts.tz_localize(BEIJING_TZ) if ts.tzinfo is None else ts
        parsed.at[i] = ts.tz_convert("UTC") + (pd.Timedelta(days=1) if midnight.at[i] else pd.Timedelta(0))
    return parsed


# ----------------------------------------------------------------------------- readings


def reading_parts(paths: Sequence[Path]) -> list[tuple[Path, int | None]]:
    """The partitions of a day's readings: one per CSV file, one per Parquet row group."""
    parts: list[tuple[Path, int | None]] = []
    for path in paths:
        if path.suffix.lower() == ".parquet":
            try:
                groups = pq.ParquetFile(path).metadata.num_row_groups
            except Exception:  # noqa: BLE001 - reported when the part is read
                groups = 1
            parts += [(path, g) for g in range(max(groups, 1))]
        else:
            parts.append((path, None))
    return parts


RAW_META = pd.DataFrame({
    "transformer": pd.Categorical([]), "time": pd.Series([], dtype="datetime64[ns, UTC]"),
    "value": pd.Series([], dtype="float64"), "row": pd.Series([], dtype="int64"), "file": pd.Categorical([]),
    "bad": pd.Series([], dtype="int8"),
})


def read_readings(paths: Sequence[Path], fmt: ReadingFormat) -> dd.DataFrame:
    """Readings of ``paths`` as a dask dataframe, one partition per file or row group.

    Columns: ``transformer`` (categorical id), ``time`` (UTC), ``value``
    (kWh, or the register in kWh), ``row`` (1-based line of a CSV file with its
    header as line 1, or record number in a Parquet file), ``file`` and ``bad``
    (a ``ROW_PROBLEMS`` code, 0 when the row parsed). Nothing is read until
    the frame is computed; a file that cannot be read raises ``OSError`` or
    ``ValueError`` naming it.

    Example::

        fmt = reading_format(config.electricity)
        files = reading_files(config.electricity, config.base_dir, dt.date(2022, 6, 3))
        readings = read_readings(files, fmt)       # dask DataFrame, lazy
    """
    return dd.from_map(_read_part, reading_parts(paths), fmt=fmt, meta=RAW_META, enforce_metadata=False)


def check_readings(paths: Sequence[Path], fmt: ReadingFormat) -> tuple[list[Path], list[Skip]]:
    """The readings files that can be read at all, and one skip for each that cannot.

    Looks only at each file's start (a CSV header, a Parquet schema), so it is
    cheap: a binary file (a PNG or zip named .csv), an empty file, a header
    without data rows, or a header missing one of the configured columns
    loses that file; everything inside a usable file is judged row by row
    when it is read.

    Example::

        usable, skips = check_readings(reading_files(cfg, base, day), fmt)
    """
    columns = [fmt.transformer_column, fmt.time_column, fmt.value_column]
    usable: list[Path] = []
    skips: list[Skip] = []
    for path in paths:
        problem = _parquet_problem(path, columns) if path.suffix.lower() == ".parquet" else _csv_problem(path, columns)
        if problem is None:
            usable.append(path)
        else:
            skips.append(problem)
    return usable, skips


def _csv_problem(path: Path, columns: list[str]) -> Skip | None:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        return Skip(path.name, f"cannot read readings: {exc.strerror or exc}")
    kind = binary_kind(head)
    if kind is not None:
        return Skip(path.name, f"binary content ({kind}), expected CSV readings; the file is not used")
    if not head.strip():
        return Skip(path.name, f"empty file: expected a header {','.join(columns)} and readings; the file is not used", row=1)
    line = head.split(b"\n", 1)[0]
    try:
        names = [n.strip() for n in header_fields(decode(line).rstrip("\r"))]
    except UnreadableFile as exc:
        return Skip(path.name, f"{exc}; the file is not used", row=1)
    missing = [c for c in columns if c not in names]
    if missing:
        return Skip(path.name, f"missing column(s) {', '.join(missing)}: header is {','.join(names)}, expected {', '.join(columns)} "
                    "(see [electricity] *_column); the file is not used", row=1, field=missing[0])
    if not head[len(line):].strip():
        return Skip(path.name, "no readings: the file has only its header line; the file is not used", row=1)
    return None


def _parquet_problem(path: Path, columns: list[str]) -> Skip | None:
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        return Skip(path.name, f"cannot read as Parquet readings: {exc}; the file is not used")
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        return Skip(path.name, f"missing column(s) {', '.join(missing)}: expected {', '.join(columns)} (see [electricity] *_column); "
                    "the file is not used", field=missing[0])
    if pf.metadata.num_rows == 0:
        return Skip(path.name, "no readings: the file has no rows; the file is not used")
    return None


def _read_part(part: tuple[Path, int | None], fmt: ReadingFormat) -> pd.DataFrame:
    path, group = part
    columns = [fmt.transformer_column, fmt.time_column, fmt.value_column]
    shape = np.zeros(0, "int8")
    try:
        if group is None:
            raw, rows, shape = _read_csv(path, columns)
        else:
            pf = pq.ParquetFile(path, read_dictionary=[fmt.transformer_column])
            raw = pf.read_row_group(group, columns=columns).to_pandas()
            first_row = 1 + sum(pf.metadata.row_group(g).num_rows for g in range(group))
            rows = np.arange(first_row, first_row + len(raw), dtype="int64")
    except (OSError, ValueError, KeyError, UnreadableFile) as exc:
        raise ValueError(f"{path}: cannot read readings: {exc}") from None
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)} (see [electricity] *_column)")
    ids = raw[fmt.transformer_column]
    ids = ids.astype("string").str.strip().astype("category") if not isinstance(ids.dtype, pd.CategoricalDtype) else ids
    if ids.cat.categories.dtype.kind in "iuf":
        ids = ids.cat.rename_categories(ids.cat.categories.astype(str))
    time = _reading_times(raw[fmt.time_column], fmt.timezone)
    values = raw[fmt.value_column]
    value = pd.to_numeric(values, errors="coerce").astype("float64") if values.dtype.kind not in "fiu" else values.astype("float64")
    bad = np.zeros(len(raw), "int8")
    bad[~np.isfinite(value.to_numpy())] = BAD_VALUE  # NaN, inf, 1e400: never a reading
    bad[time.isna().to_numpy()] = BAD_TIME
    codes = ids.cat.codes.to_numpy()
    empty = np.flatnonzero(ids.cat.categories.astype(str) == "")
    bad[(codes < 0) | np.isin(codes, empty)] = BAD_ID
    named = np.flatnonzero(ids.cat.categories.astype(str) == fmt.transformer_column)
    if len(named):
        # The header line again in the middle (files joined): one row, named as such.
        at = np.flatnonzero(np.isin(codes, named))
        header = raw[fmt.time_column].iloc[at].astype("string").str.strip().to_numpy() == fmt.time_column
        bad[at[header]] = REPEATED_HEADER
    if len(shape):
        bad[shape > 0] = shape[shape > 0]
    return pd.DataFrame({
        "transformer": ids.reset_index(drop=True),
        "time": time.reset_index(drop=True),
        "value": value.reset_index(drop=True),
        "row": rows,
        "file": pd.Categorical.from_codes(np.zeros(len(raw), "int8"), [path.name]),
        "bad": bad,
    })


def _read_csv(path: Path, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The ``columns`` of a readings CSV as text, the line of each row, and a ``BAD_ROW_*`` code per row (0 = fine).

    Files in which every line has the header's number of fields, no quoted
    comma or line break and no blank line are read by pandas' fast parser
    (the usual case: row i is line i + 2). Any other file is read record by
    record with the ``csv`` module (:func:`csvtext.iter_records`): slower,
    but a row with an unquoted ``1,234``, a cut line, a field over 128 KiB
    or a stray quote loses only that row, and line numbers stay true.
    """
    if _plain(path):
        try:
            raw = pd.read_csv(path, usecols=lambda c: c.strip() in columns, dtype=str, keep_default_na=False, na_filter=False,
                              encoding="utf-8-sig", index_col=False)
            raw.columns = [c.strip() for c in raw.columns]
            return raw, np.arange(2, 2 + len(raw), dtype="int64"), np.zeros(0, "int8")
        except (UnicodeDecodeError, pd.errors.ParserError):
            pass  # GB18030 text, or a line the byte scan could not judge: the careful path below
    data = path.read_bytes()
    try:
        text = decode(data)
    except UnreadableFile:
        text = data.decode("utf-8-sig", errors="replace")  # the header was readable: let each row fail on its own
    header = text.split("\n", 1)[0].rstrip("\r")
    names = [n.strip() for n in header_fields(header)]
    where = [names.index(c) for c in columns]
    cells: list[list[str]] = [[] for _ in columns]
    lines: list[int] = []
    shapes: list[int] = []
    for item in iter_records(text, 1, names, comments=False):
        if isinstance(item, BadRecord):
            role = columns.index(item.field) if item.field in columns else 2
            code = REPEATED_HEADER if item.kind == "header" else BAD_ROW[item.kind if item.kind in BAD_ROW else "unparsable"][role]
            lines.append(item.line)
            shapes.append(code)
            for c in cells:
                c.append("")
            continue
        line, row = item
        lines.append(line)
        shapes.append(0)
        for c, i in zip(cells, where):
            c.append(row[i])
    raw = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(columns, cells)})
    return raw, np.asarray(lines, "int64"), np.asarray(shapes, "int8")


def _plain(path: Path, block: int = 1 << 24) -> bool:
    """Whether every line of ``path`` has as many commas as its header, and each an even number of quotes.

    Then no row has a field too many or too few, no quoted comma or line
    break, and no blank line: pandas' fast parser reads it row for line.
    Scans the bytes in blocks, so memory stays small for large files.
    """
    commas = None
    tail = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(block)
            data = tail + chunk
            if not chunk:
                body, tail = (data + b"\n" if data else b""), b""
            else:
                cut = data.rfind(b"\n") + 1
                body, tail = data[:cut], data[cut:]
            if body:
                buf = np.frombuffer(body, np.uint8)
                ends = np.flatnonzero(buf == 10)
                per_line = np.diff(np.r_[0, np.searchsorted(np.flatnonzero(buf == 44), ends)])
                if commas is None:
                    commas = int(per_line[0])
                if (per_line != commas).any():
                    return False
                quotes = np.flatnonzero(buf == 34)
                if len(quotes) and (np.diff(np.r_[0, np.searchsorted(quotes, ends)]) % 2).any():
                    return False
            if not chunk:
                return commas is not None and commas > 0


def _reading_times(values: pd.Series, tz: str) -> pd.Series:
    """UTC instants from a time column (text, naive or aware timestamps); "24:00" is the next midnight."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if values.dtype.kind == "M":
        return values.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    text = values.astype("string").str.strip()
    midnight = text.str.endswith("24:00").fillna(False)
    if midnight.any():
        text = text.where(~midnight, text.str[:-5] + "00:00")
    try:
        parsed = _utc(pd.to_datetime(text, errors="coerce", format="ISO8601" if _iso(text) else "mixed"), tz)
    except (ValueError, OverflowError, TypeError):
        # pandas refuses a column that mixes times with an offset ("...+08:00", "...Z") and without:
        # parse the two apart, so that one such value does not lose the file.
        aware = text.str.contains(r"(?:[zZ]|[+-]\d{2}:?\d{2})$", regex=True).fillna(False).to_numpy(bool)
        parsed = pd.Series(pd.NaT, index=text.index, dtype=pd.DatetimeTZDtype("ns", "UTC"))
        parsed = parsed.mask(~aware, _utc(_parse_times(text[~aware], utc=False), tz))
        parsed = parsed.mask(aware, _parse_times(text[aware], utc=True))
    if midnight.any():
        parsed = parsed + pd.to_timedelta(midnight.astype("int64"), unit="D")
    return parsed


def _utc(parsed: pd.Series, tz: str) -> pd.Series:
    """Parsed times in UTC; naive ones are in ``tz``."""
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC")
    return parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _parse_times(text: pd.Series, *, utc: bool) -> pd.Series:
    """``pd.to_datetime`` of a column, unparsable values NaT; value by value if pandas refuses the column."""
    fmt = "ISO8601" if _iso(text) else "mixed"
    try:
        return pd.to_datetime(text, errors="coerce", format=fmt, utc=utc)
    except (ValueError, OverflowError, TypeError):
        def one(value: object) -> pd.Timestamp:
            try:
                ts = pd.Timestamp(value)
            except (ValueError, OverflowError, TypeError):
                return pd.NaT
            if pd.isna(ts):
                return pd.NaT
            return ts.tz_convert("UTC") if ts.tzinfo is not None else (ts.tz_localize("UTC") if utc else ts)
        return pd.to_datetime(text.map(one), errors="coerce", utc=utc)


def _iso(text: pd.Series) -> bool:
    """Whether the column looks like ISO 8601 (the fast parser's format); "2016/9/2" is not."""
    sample = text.dropna().head(20)
    return bool(len(sample)) and bool(sample.str.match(r"^\d{4}-\d{2}-\d{2}").all())


def day_bounds_utc(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Start and end (UTC) of the Beijing calendar day ``day``."""
    start = pd.Timestamp(day).tz_localize(BEIJING_TZ).tz_convert("UTC")
    return start, start + pd.Timedelta(days=1)
