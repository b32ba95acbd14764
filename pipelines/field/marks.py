"""The verification file a supervisor's page exports, and the checks it must pass before it is stored.

A supervisor marks each task of their page (``supervisors/<name>.html``) with one
result, a note, the time and optionally a photo reference. The page keeps the
marks in the browser (``localStorage``) and exports them as a small JSON file::

    {"gridwatch_marks": 1, "day": "2022-06-03", "supervisor": "兰考县网格员3",
     "token": "<32 hex>", "export_id": "<32 hex>", "exported_utc": "2022-06-04T02:10:00Z",
     "marks": [{"cell_id": "...", "item_id": "E...", "result": "confirmed",
                "note": "...", "photo": "IMG_0412.jpg", "marked_utc": "2022-06-04T01:55:00Z"}]}

Only what is expected is accepted, and a file that fails any check is refused
whole, with a message naming the file and the field (nothing is stored):

* at most ``max_bytes``, UTF-8 JSON, exactly these keys and types;
* ``day`` is a run in the output folder, ``supervisor`` one of its supervisors and
  ``token`` that supervisor's token (:func:`supervisor_token`, an HMAC of the name
  with the unit's secret, written into that supervisor's page only);
* every mark names a task of that supervisor's own cells on that day
  (``supervisors/tasks.json`` of the run), once, with a known result, a note of at
  most ``MAX_NOTE`` characters, and a time between the start of the day (Beijing)
  and now (plus ``CLOCK_SKEW``);
* the task's kind, category and position are taken from the run, never from the file.

A replayed file (an ``export_id`` already stored) is refused by the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.exceptions import MarksError

BEIJING = dt.timezone(dt.timedelta(hours=8))
FORMAT = 1  # the "gridwatch_marks" value this module reads
TASK_INDEX = "supervisors/tasks.json"  # written by supervisors.write_supervisor_pages, relative to OUT/D

# result -> (Chinese, English); the order is the page's.
RESULTS: dict[str, tuple[str, str]] = {
    "confirmed": ("确认秸秆焚烧", "confirmed straw burning"),
    "other_heat": ("其他热源", "another heat source"),
    "no_fire": ("未发现火情", "no fire found"),
    "not_reached": ("无法到达", "could not reach"),
}
VERIFIED = ("confirmed", "other_heat", "no_fire")  # a result on the spot; "not_reached" is not one
FALSE_ALARM = ("other_heat", "no_fire")

MAX_MARKS = 2000  # a supervisor has at most a few hundred tasks a day
MAX_NOTE = 500  # characters
MAX_PHOTO = 200  # characters of a photo reference (a file name or an id, never the photo)
MAX_TEXT_ID = 200  # characters of a cell or item id
CLOCK_SKEW = dt.timedelta(hours=1)  # a phone's clock may run ahead
_HEX_ID = re.compile(r"[0-9a-f]{16,64}")
_TOP_KEYS = {"gridwatch_marks", "day", "supervisor", "token", "export_id", "exported_utc", "marks"}
_MARK_KEYS = {"cell_id", "item_id", "result", "note", "photo", "marked_utc"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Mark:
    """One task's result, as stored: what the supervisor said, and where the task is (from the run)."""

    day: dt.date  # Beijing date of the run the task belongs to
    cell_id: str
    item_id: str  # event, fire or site id (tasklist.task_records' item_id)
    supervisor: str
    result: str  # a RESULTS key
    note: str
    photo: str
    marked_utc: dt.datetime  # aware, UTC
    kind: str  # event, fire or site
    category: str  # the task's category (a fire category or "electricity")
    lon: float  # WGS84 degrees of the task (NaN for a site without a location)
    lat: float
    county_code: str


@dataclass(frozen=True)
class MarkBatch:
    """A checked file (or post): all its marks are stored together, or none."""

    export_id: str
    sha256: str  # of the bytes as received
    supervisor: str
    day: dt.date
    source: str  # file name, or "post <address>"
    marks: tuple[Mark, ...]


# ------------------------------------------------------------------ tokens


def supervisor_token(secret: bytes, supervisor: str) -> str:
    """The supervisor's token: HMAC-SHA256 of their name with the unit's secret, 32 hex digits.

    It is written into that supervisor's page only; a file or post must carry it.
    """
    return hmac.new(secret, b"gridwatch-marks\n" + supervisor.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def load_secret(env_name: str, state_folder: Path) -> bytes:
    """The unit's token secret: the environment variable ``env_name`` when set, else
    ``state_folder/verification.key`` (32 random bytes, created readable by the owner only)."""
    value = os.environ.get(env_name, "") if env_name else ""
    if value:
        return value.encode("utf-8")
    path = Path(state_folder) / "verification.key"
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    try:
        os.link(partial, path)  # never replaces a key another process made first
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


# ------------------------------------------------------------------ the run's tasks


def read_task_index(out_root: Path, day: dt.date, where: str = "") -> dict[str, Any]:
    """``OUT/D/supervisors/tasks.json``: every supervisor's cells and tasks of the run of ``day``."""
    path = Path(out_root) / day.isoformat() / TASK_INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MarksError(f"{where}: day {day.isoformat()}: no run of that day with supervisor pages in {out_root} "
                         f"(expected {path})") from None
    except (OSError, ValueError) as exc:
        raise MarksError(f"{where}: {path}: cannot read the run's task list: {exc}") from None
    if not isinstance(index, dict) or not isinstance(index.get("supervisors"), dict):
        raise MarksError(f"{where}: {path}: not a gridwatch task list")
    return index


# ------------------------------------------------------------------ checks


def parse_marks(data: bytes, *, source: str, out_root: Path, secret: bytes, max_bytes: int,
                now: dt.datetime | None = None) -> MarkBatch:
    """Check a verification file's bytes (see the module's docstring); ``MarksError`` names what is wrong.

    ``source``: the file name (or post) for messages; ``out_root``: the output folder whose
    runs the tasks belong to; ``now``: the time to check marks against (default: now, UTC).
    """
    if len(data) > max_bytes:
        raise MarksError(f"{source}: {len(data):,} bytes: larger than the {max_bytes:,} bytes a verification file may have")
    try:
        payload = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MarksError(f"{source}: not UTF-8 text (byte {exc.start}): expected a gridwatch verification file (JSON)") from None
    except ValueError as exc:
        raise MarksError(f"{source}: not JSON ({exc}): expected a gridwatch verification file") from None
    if not isinstance(payload, dict) or payload.get("gridwatch_marks") != FORMAT:
        raise MarksError(f"{source}: [gridwatch_marks] expected a gridwatch verification file (format {FORMAT})")
    _exact_keys(payload, _TOP_KEYS, source, "")
    day = _date(payload["day"], source, "day")
    supervisor = _checked_text(payload["supervisor"], source, "supervisor", 200, empty=False)
    token = _checked_text(payload["token"], source, "token", 64)
    export_id = _checked_text(payload["export_id"], source, "export_id", 64)
    if not _HEX_ID.fullmatch(export_id):
        raise MarksError(f"{source}: [export_id] {export_id!r}: expected 16-64 lower-case hex digits")
    _instant(payload["exported_utc"], source, "exported_utc")
    marks = payload["marks"]
    if not isinstance(marks, list):
        raise MarksError(f"{source}: [marks] expected a list")
    if len(marks) > MAX_MARKS:
        raise MarksError(f"{source}: [marks] {len(marks):,} marks: at most {MAX_MARKS:,} in one file")

    index = read_task_index(out_root, day, source)
    person = index["supervisors"].get(supervisor)
    if person is None:
        raise MarksError(f"{source}: [supervisor] {supervisor!r}: not a supervisor of the run of {day.isoformat()}")
    if not hmac.compare_digest(token.encode("ascii", "replace"), supervisor_token(secret, supervisor).encode("ascii")):
        raise MarksError(f"{source}: [token] not the token of {supervisor!r}: export the file from their own page")
    tasks = {(str(t["cell_id"]), str(t["item_id"])): t for t in person.get("tasks", [])}
    counties = {str(c["cell_id"]): str(c.get("county_code") or "") for c in person.get("cells", [])}
    now = now or dt.datetime.now(dt.UTC)
    earliest = dt.datetime.combine(day, dt.time(0), BEIJING)
    seen: set[tuple[str, str]] = set()
    out = []
    for i, mark in enumerate(marks, start=1):
        where = f"marks[{i}]"
        if not isinstance(mark, dict):
            raise MarksError(f"{source}: [{where}] expected an object")
        _exact_keys(mark, _MARK_KEYS, source, where + ".")
        cell_id = _checked_text(mark["cell_id"], source, f"{where}.cell_id", MAX_TEXT_ID, empty=False)
        item_id = _checked_text(mark["item_id"], source, f"{where}.item_id", MAX_TEXT_ID, empty=False)
        task = tasks.get((cell_id, item_id))
        if task is None:
            raise MarksError(f"{source}: [{where}] task {item_id!r} of cell {cell_id!r}: not a task of {supervisor!r}'s cells "
                             f"on {day.isoformat()}")
        if (cell_id, item_id) in seen:
            raise MarksError(f"{source}: [{where}] task {item_id!r} of cell {cell_id!r} is marked twice")
        seen.add((cell_id, item_id))
        result = mark["result"]
        if result not in RESULTS:
            raise MarksError(f"{source}: [{where}.result] {str(result)[:40]!r}: expected one of {', '.join(RESULTS)}")
        marked = _instant(mark["marked_utc"], source, f"{where}.marked_utc")
        if not earliest <= marked <= now + CLOCK_SKEW:
            raise MarksError(f"{source}: [{where}.marked_utc] {mark['marked_utc']}: expected a time between the start of "
                             f"{day.isoformat()} (Beijing) and now")
        out.append(Mark(
            day=day, cell_id=cell_id, item_id=item_id, supervisor=supervisor, result=result,
            note=_checked_text(mark["note"], source, f"{where}.note", MAX_NOTE, newlines=True),
            photo=_checked_text(mark["photo"], source, f"{where}.photo", MAX_PHOTO),
            marked_utc=marked.astimezone(dt.UTC), kind=str(task.get("kind", "")), category=str(task.get("category", "")),
            lon=_float(task.get("lon")), lat=_float(task.get("lat")), county_code=counties.get(cell_id, ""),
        ))
    return MarkBatch(export_id=export_id, sha256=hashlib.sha256(data).hexdigest(), supervisor=supervisor, day=day,
                     source=source, marks=tuple(out))


def _exact_keys(obj: dict, expected: set[str], source: str, prefix: str) -> None:
    missing = sorted(expected - set(obj))
    extra = sorted(str(k)[:40] for k in set(obj) - expected)
    if missing:
        raise MarksError(f"{source}: [{prefix}{missing[0]}] missing: expected the fields {', '.join(sorted(expected))}")
    if extra:
        raise MarksError(f"{source}: [{prefix}{extra[0]}] unexpected field: expected only {', '.join(sorted(expected))}")


def _checked_text(value: object, source: str, field: str, limit: int, *, empty: bool = True, newlines: bool = False) -> str:
    if not isinstance(value, str):
        raise MarksError(f"{source}: [{field}] expected text")
    if len(value) > limit:
        raise MarksError(f"{source}: [{field}] {len(value):,} characters: at most {limit}")
    if not empty and not value.strip():
        raise MarksError(f"{source}: [{field}] empty")
    if _CONTROL.search(value) or (not newlines and ("\n" in value or "\r" in value)):
        raise MarksError(f"{source}: [{field}] contains control characters")
    return value


def _date(value: object, source: str, field: str) -> dt.date:
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise MarksError(f"{source}: [{field}] {str(value)[:40]!r}: expected a date YYYY-MM-DD") from None


def _instant(value: object, source: str, field: str) -> dt.datetime:
    """An ISO 8601 time with its offset (``Z`` or ``+08:00``); a time without one is refused, never guessed."""
    try:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MarksError(f"{source}: [{field}] {str(value)[:40]!r}: expected an ISO 8601 time with its offset") from None
    if stamp.tzinfo is None:
        raise MarksError(f"{source}: [{field}] {value!r}: no UTC offset (expected e.g. 2022-06-04T01:55:00Z)")
    return stamp


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
