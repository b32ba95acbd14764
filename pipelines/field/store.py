"""The verification store: every supervisor's result per task, and every file or post that brought them.

An embedded SQLite file by default (``OUT/state/verification.sqlite``), or a
PostgreSQL database given by URL (``postgresql://user@host/db``) where a unit has a
server (needs ``psycopg``; where the database has PostGIS, ``marks.geom`` holds each
task's point, EPSG:4326). Either way a batch (one checked file or post) is written in
one transaction, under the store file's cross-process lock for SQLite (``outputs.shared_lock``) or a
PostgreSQL advisory lock: a night that reads the store while an import runs sees all
of that import or none of it, and two imports never interleave.

Marks are keyed by (day, cell, item): a later export of the same page carries the
earlier marks again, and a mark only replaces a stored one that is older
(``marked_utc``). A batch whose ``export_id`` or bytes were stored before is a
replay and is refused whole (:class:`Replayed`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from pipelines.core.exceptions import OutputLocked, Replayed, StoreError
from pipelines.core.outputs import shared_lock
from pipelines.field.marks import Mark, MarkBatch

DEFAULT_NAME = "verification.sqlite"  # in OUT/state/
LOCK_TIMEOUT_S = 60.0
ADVISORY_LOCK = 7310533  # pg_advisory_xact_lock key of the store's writers (any number no other application uses)

MARK_COLUMNS = ["day", "cell_id", "item_id", "supervisor", "result", "note", "photo", "marked_utc", "kind", "category",
                "lon", "lat", "county_code", "export_id"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS imports (
        export_id TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, supervisor TEXT NOT NULL, day TEXT NOT NULL,
        source TEXT NOT NULL, imported_utc TEXT NOT NULL, marks INTEGER NOT NULL, stored INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS marks (
        day TEXT NOT NULL, cell_id TEXT NOT NULL, item_id TEXT NOT NULL, supervisor TEXT NOT NULL, result TEXT NOT NULL,
        note TEXT NOT NULL, photo TEXT NOT NULL, marked_utc TEXT NOT NULL, kind TEXT NOT NULL, category TEXT NOT NULL,
        lon DOUBLE PRECISION, lat DOUBLE PRECISION, county_code TEXT NOT NULL, export_id TEXT NOT NULL,
        PRIMARY KEY (day, cell_id, item_id))""",
)


@dataclass(frozen=True)
class ImportResult:
    export_id: str
    supervisor: str
    day: dt.date
    marks: int  # in the batch
    stored: int  # new or newer than what was stored


class VerificationStore:
    """The store at ``location``: a path (SQLite) or a ``postgresql://`` URL.

    Example::

        store = VerificationStore(out_root / "state" / "verification.sqlite")
        store.add(batch)                      # ImportResult; Replayed if stored before
        store.marks()                         # DataFrame, MARK_COLUMNS
    """

    def __init__(self, location: str | Path) -> None:
        text = str(location)
        self.postgres = text.startswith(("postgresql://", "postgres://"))
        self.location = text if self.postgres else Path(location)

    def __repr__(self) -> str:
        return f"VerificationStore({self.shown})"

    @property
    def exists(self) -> bool:
        """Whether there is anything to read (a SQLite file not yet made holds no marks)."""
        return self.postgres or Path(self.location).is_file()

    # -------------------------------------------------------------- connections

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[_Cursor]:
        """A cursor in one transaction; committed when the block ends, rolled back on any error.

        A database error (cannot connect, no privilege, connection lost) becomes a ``StoreError``.
        """
        if self.postgres:
            with self._postgres_transaction(write) as cur:
                yield cur
            return
        path = Path(self.location)
        with contextlib.ExitStack() as held:
            if write:
                try:
                    held.enter_context(shared_lock(path, timeout_s=LOCK_TIMEOUT_S))
                except OutputLocked:
                    raise StoreError(f"{path}: another import holds the store's lock for more than {LOCK_TIMEOUT_S:.0f} s") from None
                except OSError as exc:
                    raise StoreError(f"{path}: cannot open the verification store: {exc}") from None
            try:
                conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"{path}: cannot open the verification store: {exc}") from None
            try:
                # IMMEDIATE: the write lock from the start; a reader's BEGIN gives one consistent snapshot of both tables.
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield _Cursor(conn.cursor(), postgres=False)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"{path}: the verification store failed: {exc}{'; nothing changed' if write else ''}") from None
            finally:
                conn.close()

    @contextmanager
    def _postgres_transaction(self, write: bool) -> Iterator[_Cursor]:
        """One PostgreSQL transaction: a writer holds an advisory lock (one import at a time, from any host);
        a reader's transaction is REPEATABLE READ, one snapshot of both tables."""
        try:
            import psycopg
        except ImportError:
            raise StoreError(f"{self.shown}: a PostgreSQL store needs the psycopg package "
                             "(pip install 'psycopg[binary]', or gridwatch's [postgres] extra)") from None
        try:
            conn = psycopg.connect(self.location, connect_timeout=10, application_name="gridwatch")
        except psycopg.Error as exc:
            raise StoreError(f"{self.shown}: cannot connect to the verification store: {_one_line(exc)}") from None
        try:
            # A writer's statements must see what the import before it committed while it waited for the lock (READ
            # COMMITTED takes a snapshot per statement); a reader wants one snapshot for all its statements.
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED if write else psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = not write
            with conn.transaction(), conn.cursor() as cur:  # commits at the end, rolls back on any exception
                if write:
                    # Held until the transaction ends; waits (like the SQLite lock file) for an import under way.
                    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S:.0f}s'")
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
                yield _Cursor(cur, postgres=True)
        except psycopg.errors.LockNotAvailable:
            raise StoreError(f"{self.shown}: another import holds the store's lock for more than {LOCK_TIMEOUT_S:.0f} s; "
                             "nothing changed") from None
        except psycopg.Error as exc:
            raise StoreError(f"{self.shown}: the verification store failed: {_one_line(exc)}"
                             f"{'; nothing changed' if write else ''}") from None
        finally:
            conn.close()

    @property
    def shown(self) -> str:
        """The location for messages: a URL without its password."""
        if not self.postgres:
            return str(self.location)
        url = urlsplit(str(self.location))
        if url.password is None:
            return str(self.location)
        netloc = url.netloc.replace(f":{url.password}@", ":***@", 1)
        return urlunsplit(url._replace(netloc=netloc))

    # -------------------------------------------------------------- writing

    def add(self, batch: MarkBatch, now: dt.datetime | None = None) -> ImportResult:
        """Store ``batch`` in one transaction. ``Replayed`` (nothing changed) when its export id or bytes were stored before."""
        now = now or dt.datetime.now(dt.UTC)
        with self._transaction(write=True) as cur:
            for statement in _SCHEMA:
                cur.execute(statement)
            if self.postgres:
                _postgis_column(cur)
            cur.execute("SELECT export_id, source, imported_utc FROM imports WHERE export_id = ? OR sha256 = ?",
                        (batch.export_id, batch.sha256))
            before = cur.fetchone()
            if before is not None:
                raise Replayed(f"{batch.source}: already imported (export {before[0]}, from {before[1]}, at {before[2]} UTC): "
                               "nothing changed")
            stored = 0
            for mark in batch.marks:
                key = (mark.day.isoformat(), mark.cell_id, mark.item_id)
                cur.execute("SELECT marked_utc FROM marks WHERE day = ? AND cell_id = ? AND item_id = ?", key)
                row = cur.fetchone()
                when = _utc_text(mark.marked_utc)
                if row is not None and row[0] >= when:
                    continue  # what is stored is as new or newer: an earlier export played back changes nothing
                values = _mark_values(mark, batch.export_id)
                if row is None:
                    cur.execute(f"INSERT INTO marks ({', '.join(MARK_COLUMNS)}) VALUES ({', '.join('?' * len(MARK_COLUMNS))})", values)
                else:
                    sets = ", ".join(f"{c} = ?" for c in MARK_COLUMNS[3:])
                    cur.execute(f"UPDATE marks SET {sets} WHERE day = ? AND cell_id = ? AND item_id = ?", (*values[3:], *key))
                stored += 1
            cur.execute("INSERT INTO imports (export_id, sha256, supervisor, day, source, imported_utc, marks, stored) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (batch.export_id, batch.sha256, batch.supervisor, batch.day.isoformat(), batch.source[:300],
                         _utc_text(now), len(batch.marks), stored))
        return ImportResult(batch.export_id, batch.supervisor, batch.day, len(batch.marks), stored)

    # -------------------------------------------------------------- reading

    def marks(self, days: Iterable[dt.date] | None = None, before: dt.date | None = None) -> pd.DataFrame:
        """Stored marks (``MARK_COLUMNS``; ``day`` a date, ``marked_utc`` UTC), of ``days`` or of days ``before`` a date;
        empty when the store does not exist yet."""
        if not self.exists:
            return _frame([])
        where, params = [], []
        if days is not None:
            wanted = sorted({d.isoformat() for d in days})
            if not wanted:
                return _frame([])
            where.append(f"day IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if before is not None:
            where.append("day < ?")
            params.append(before.isoformat())
        sql = f"SELECT {', '.join(MARK_COLUMNS)} FROM marks" + (f" WHERE {' AND '.join(where)}" if where else "") + \
            " ORDER BY day, cell_id, item_id"
        with self._transaction(write=False) as cur:
            if not cur.has_table("marks"):
                return _frame([])
            cur.execute(sql, tuple(params))
            rows = cur.fetchall()
        return _frame(rows)

    def imports(self) -> list[dict[str, Any]]:
        """Every stored batch, oldest first."""
        if not self.exists:
            return []
        with self._transaction(write=False) as cur:
            if not cur.has_table("imports"):
                return []
            cur.execute("SELECT export_id, sha256, supervisor, day, source, imported_utc, marks, stored FROM imports ORDER BY imported_utc")
            names = ["export_id", "sha256", "supervisor", "day", "source", "imported_utc", "marks", "stored"]
            return [dict(zip(names, row)) for row in cur.fetchall()]


def _postgis_column(cur: _Cursor) -> None:
    """Where the database has PostGIS, ``marks.geom``: each task's point (EPSG:4326, from ``lon``/``lat``), kept by
    PostgreSQL itself and indexed, for the unit's GIS; the store reads and writes ``lon``/``lat`` either way.

    Installing the extension is the database administrator's step (``CREATE EXTENSION postgis``), never the store's.
    The column is added once: ALTER TABLE locks out readers until the import commits, so it is not run again.
    """
    cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
    if cur.fetchone() is None:
        return
    cur.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'marks' AND column_name = 'geom'")
    if cur.fetchone() is not None:
        return
    cur.execute("ALTER TABLE marks ADD COLUMN geom geometry(Point, 4326) "
                "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED")
    cur.execute("CREATE INDEX IF NOT EXISTS marks_geom ON marks USING gist (geom)")


class _Cursor:
    """A DB-API cursor taking ``?`` placeholders on either database."""

    def __init__(self, cur: Any, postgres: bool) -> None:
        self._cur, self._postgres = cur, postgres

    def execute(self, sql: str, params: tuple = ()) -> None:
        self._cur.execute(sql.replace("?", "%s") if self._postgres else sql, params)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list:
        return list(self._cur.fetchall())

    def has_table(self, name: str) -> bool:
        if self._postgres:
            self.execute("SELECT to_regclass(?)", (name,))
            return self.fetchone()[0] is not None
        self.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return self.fetchone() is not None


def store_for(location: str, out_root: Path, base: Path) -> VerificationStore:
    """The store of ``[verification] store``: "" = ``OUT/state/verification.sqlite``; a relative path is relative to ``base``."""
    if not location:
        return VerificationStore(Path(out_root) / "state" / DEFAULT_NAME)
    if location.startswith(("postgresql://", "postgres://")):
        return VerificationStore(location)
    path = Path(location)
    return VerificationStore(path if path.is_absolute() else Path(base) / path)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _utc_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mark_values(mark: Mark, export_id: str) -> tuple:
    lon = None if math.isnan(mark.lon) else mark.lon
    lat = None if math.isnan(mark.lat) else mark.lat
    return (mark.day.isoformat(), mark.cell_id, mark.item_id, mark.supervisor, mark.result, mark.note, mark.photo,
            _utc_text(mark.marked_utc), mark.kind, mark.category, lon, lat, mark.county_code, export_id)


def _frame(rows: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=MARK_COLUMNS)
    frame["day"] = pd.to_datetime(frame["day"]).dt.date if len(frame) else pd.Series([], dtype=object)
    frame["marked_utc"] = pd.to_datetime(frame["marked_utc"], utc=True)
    for column in ("lon", "lat"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame
