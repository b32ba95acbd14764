"""Tolerant CSV text reading shared by the point readers.

Satellite CSVs arrive truncated, re-saved by spreadsheets and hand-edited. We
read them with the ``csv`` module rather than ``pandas.read_csv`` because we
need the true line number of every row (quoted fields may span lines, blank
lines are skipped) and a record, not a silent drop, of every malformed row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..skips import Skip

# GB18030 is what Chinese spreadsheet software writes when it does not write UTF-8.
ENCODINGS = ("utf-8-sig", "gb18030")


class UnreadableFile(Exception):
    """The whole file cannot be used; the message says why."""


@dataclass
class CsvTable:
    """String cells of a CSV file, with the file line number of every row."""

    frame: pd.DataFrame  # all columns as str, column names stripped and lower-cased
    lines: np.ndarray  # int64, 1-based line number of each row
    skips: list[Skip] = field(default_factory=list)


def read_text(path: Path) -> str:
    """The file's text, decoded as UTF-8 or GB18030; raises ``UnreadableFile``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from exc
    if b"\x00" in raw[:4096]:
        raise UnreadableFile("binary content, expected CSV text")
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableFile("not UTF-8 or GB18030 text")


def read_table(path: Path, text: str, header_line: int, header: list[str]) -> CsvTable:
    """Parse CSV ``text`` whose data start after line ``header_line``.

    Rows with the wrong number of fields (a truncated last line, a stray comma)
    and blank lines are left out; the former are reported as skips.
    """
    names = [h.strip().lower() for h in header]
    rows: list[list[str]] = []
    lines: list[int] = []
    skips: list[Skip] = []
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            line = reader.line_num
            if line <= header_line or not row or (len(row) == 1 and not row[0].strip()):
                continue
            if row[0].lstrip().startswith("#"):
                continue
            if len(row) != len(names):
                skips.append(
                    Skip(path.name, f"expected {len(names)} fields, found {len(row)}", row=line)
                )
                continue
            rows.append(row)
            lines.append(line)
    except csv.Error as exc:
        # An unterminated quote at the end of a truncated file: keep what came before.
        skips.append(Skip(path.name, f"unparsable from here to end of file: {exc}", row=reader.line_num))
    frame = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names)
    return CsvTable(frame.astype(str).apply(lambda s: s.str.strip()), np.asarray(lines, dtype="int64"), skips)


def first_line(text: str) -> str:
    return text.lstrip("\ufeff").split("\n", 1)[0].strip()


def to_float(values: pd.Series) -> pd.Series:
    """Numbers from text; empty cells become NaN, unparsable ones NaN too (check ``bad_float``)."""
    return pd.to_numeric(values.where(values != ""), errors="coerce").astype("float64")


def bad_float(values: pd.Series) -> pd.Series:
    """True where a non-empty cell is not a number."""
    return (values != "") & to_float(values).isna()
