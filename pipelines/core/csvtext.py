"""Tolerant CSV text reading shared by the point, plant and electricity readers.

Satellite CSVs arrive truncated, re-saved by spreadsheets and hand-edited. We
read them with the ``csv`` module rather than ``pandas.read_csv`` because we
need the true line number of every row (quoted fields may span lines, blank
lines are skipped) and a record, not a silent drop, of every malformed row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.exceptions import UnreadableFile
from pipelines.core.skips import Skip

# GB18030 is what Chinese spreadsheet software writes when it does not write UTF-8.
ENCODINGS = ("utf-8-sig", "gb18030")


@dataclass
class CsvTable:
    """String cells of a CSV file, with the file line number of every row."""

    frame: pd.DataFrame  # all columns as str, column names stripped and lower-cased
    lines: np.ndarray  # int64, 1-based line number of each row
    skips: list[Skip] = field(default_factory=list)


# Leading bytes of files that are not text at all, and what they are.
MAGIC = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (or .xlsx workbook)"), (b"PK\x05\x06", "an empty zip archive"),
    (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls (OLE) workbook"), (b"PAR1", "a Parquet file"),
    (b"\x89HDF", "an HDF5/NetCDF-4 file"), (b"CDF\x01", "a NetCDF file"), (b"CDF\x02", "a NetCDF file"),
    (b"\x7fELF", "a program"), (b"MZ", "a Windows program"),
)
# Share of control characters (NUL and others, not tab/CR/LF) above which decoded "text" is binary:
# a stray NUL or a short run of them in one row is damage to that row, not a reason to drop the file.
MAX_CONTROL_SHARE = 0.3
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def binary_kind(head: bytes) -> str | None:
    """What a file starting with ``head`` is when it is a known binary format (PNG, zip, ...), else None."""
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), None)


REPLACEMENT = "\ufffd"  # what undecodable bytes become


def decode(raw: bytes) -> str:
    """Text of a CSV file's bytes: UTF-8 (BOM dropped), UTF-16 with a BOM, or GB18030; raises ``UnreadableFile``.

    A file is rejected as a whole only when it is a known binary format or
    mostly control characters; a stray NUL byte stays in its row (whose
    field then fails its own check).
    """
    kind = binary_kind(raw[:16])
    if kind is not None:
        raise UnreadableFile(f"binary content ({kind}), expected CSV text")
    encodings = ("utf-16",) if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ENCODINGS
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        # A few invalid bytes (a line corrupted in transfer) lose their own rows, which read_table skips by
        # the replacement character; a file that is mostly undecodable is not text at all.
        text = raw.decode("utf-8", errors="replace")
        if text.count(REPLACEMENT) > MAX_CONTROL_SHARE * len(text):
            raise UnreadableFile("not UTF-8 or GB18030 text (binary content?), expected CSV text")
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > MAX_CONTROL_SHARE * len(sample):
        raise UnreadableFile("binary content (mostly control characters), expected CSV text")
    return text


def read_text(path: Path) -> str:
    """The file's text, decoded as by :func:`decode`; raises ``UnreadableFile``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read file: {exc.strerror or exc}") from exc
    return decode(raw)


def header_fields(line: str) -> list[str]:
    """The fields of a header line; raises ``UnreadableFile`` when it is not CSV (e.g. a field over 128 KiB)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:
        raise UnreadableFile(f"header line is not CSV: {exc}") from None


class _Lines:
    """Physical lines of a text for ``csv.reader``: counts them, remembers those of the current record, takes lines back."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text))
        self._back: list[str] = []
        self.record: list[str] = []
        self.count = 0  # lines handed out so far = the line number of the last one

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._back.pop() if self._back else next(self._lines)
        self.count += 1
        self.record.append(line)
        return line

    def give_back(self, lines: list[str]) -> None:
        """Read ``lines`` again (a record that swallowed them was wrong)."""
        self._back.extend(reversed(lines))
        self.count -= len(lines)


@dataclass(frozen=True)
class BadRecord:
    """A CSV record that cannot be used: its first line, the field to blame (None if none can be told) and why.

    ``kind``: "few" or "many" fields for the header, "header" (the header
    line repeated) or "unparsable" (the ``csv`` module refused it, e.g. a
    field over its 128 KiB limit).
    """

    line: int
    field: str | None
    kind: str
    reason: str

    def skip(self, file: str) -> Skip:
        return Skip(file, self.reason, row=self.line, field=self.field)


def iter_records(text: str, header_line: int, names: list[str], *, comments: bool = True,
                 multiline: bool = False) -> Iterator[tuple[int, list[str]] | BadRecord]:
    """Rows of CSV ``text`` after line ``header_line``, each with the line it starts on, or a ``BadRecord``.

    Blank lines are left out silently, and so are lines starting with ``#``
    when ``comments``. A row with the wrong number of fields (an unquoted
    comma as in ``1,234``, a cut last line), the header line repeated, or a
    record that the ``csv`` module refuses (a field over its 128 KiB limit)
    becomes one ``BadRecord`` naming its line and, where it can be told, the
    field; reading goes on with the next line, so one bad row loses that row.
    Unless ``multiline``, a quoted field may not span lines: a stray quote
    loses its own line instead of swallowing the lines after it.
    """
    lines = _Lines(text)
    reader = csv.reader(lines)
    folded = [n.strip().lower() for n in names]
    while True:
        lines.record.clear()
        start = lines.count + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if not lines.record:  # nothing consumed: cannot go on
                return
            record = list(lines.record)
            if not multiline and len(record) > 1:
                lines.give_back(record[1:])  # a stray quote swallowed them: only its own line is lost
            if start <= header_line:
                continue
            if not multiline and len(record) > 1 and len(record[0]) <= csv.field_size_limit():
                yield BadRecord(start, _quoted_field(record[0], names), "unparsable", _STRAY_QUOTE)
            else:
                yield _unparsable(start, record[0] if not multiline else "".join(record), names, exc)
            continue
        if not multiline and len(lines.record) > 1:
            lines.give_back(lines.record[1:])
            if start > header_line:
                yield BadRecord(start, _quoted_field(lines.record[0], names), "unparsable", _STRAY_QUOTE)
            continue
        if start <= header_line:
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if comments and row[0].lstrip().startswith("#"):
            continue
        if len(row) != len(names):
            yield _miscounted(start, names, row)
            continue
        if names and [r.strip().lower() for r in row] == folded:
            yield BadRecord(start, names[0], "header", "the header line again (files joined together?); the row is not used")
            continue
        yield start, row


_STRAY_QUOTE = "a quote opened on this line is not closed on it (a stray quote?); the row is not used"


def _quoted_field(line: str, names: list[str]) -> str | None:
    """The field in which ``line``'s unclosed quote opens."""
    return _field_at(line, names, longest=False)


def _field_at(line: str, names: list[str], *, longest: bool) -> str | None:
    """The name of ``line``'s longest field (``longest``) or of its last one, splitting at commas outside quotes."""
    lengths = [0]
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            lengths.append(0)
        else:
            lengths[-1] += 1
    index = max(range(len(lengths)), key=lengths.__getitem__) if longest else len(lengths) - 1
    return names[min(index, len(names) - 1)] if names else None


def _miscounted(line: int, names: list[str], row: list[str]) -> BadRecord:
    """A row of the wrong length; the field to blame is the first missing one, or the last one when there are extra fields."""
    expected, found = len(names), len(row)
    if found > expected:
        return BadRecord(line, names[-1] if names else None, "many",
                         f"expected {expected} fields, found {found} (an unquoted comma in a value, e.g. 1,234?); the row is not used")
    return BadRecord(line, names[found], "few", f"expected {expected} fields, found {found} (a line cut short?); the row is not used")


def _unparsable(start: int, record: str, names: list[str], exc: csv.Error) -> BadRecord:
    field = _field_at(record, names, longest=True)
    if "field limit" in str(exc):
        reason = f"a field over {csv.field_size_limit() // 1024} KiB (the csv module's limit); the row is not used"
    else:
        reason = f"not CSV: {exc}; the row is not used"
    return BadRecord(start, field, "unparsable", reason)


def read_table(path: Path, text: str, header_line: int, header: list[str]) -> CsvTable:
    """Parse CSV ``text`` whose data start after line ``header_line``.

    Rows that cannot be read (see :func:`iter_records`) are left out and
    reported as skips; blank lines are left out silently.
    """
    names = [h.strip().lower() for h in header]
    rows: list[list[str]] = []
    lines: list[int] = []
    skips: list[Skip] = []
    for item in iter_records(text, header_line, names):
        if isinstance(item, BadRecord):
            skips.append(item.skip(path.name))
        elif any(REPLACEMENT in cell for cell in item[1]):
            skips.append(Skip(path.name, "bytes that are neither UTF-8 nor GB18030 in this row; the row is not used", row=item[0]))
        else:
            lines.append(item[0])
            rows.append(item[1])
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
