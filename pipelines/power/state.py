"""The compact per-transformer history a nightly run keeps instead of re-reading months of readings.

For each transformer of the fleet: its daily kWh and working-hours share over
the last ``days`` Beijing days (a ring, newest last), its meter register at the
end of the last day, and the floor learnt after its enterprise's closure.
One file per day, ``<dir>/<YYYY-MM-DD>.parquet``, each the state at the end of
that day: the run for D reads D-1 and writes D, so re-running D gives the
same result, and a crashed run leaves D-1 untouched.

What the rules need beyond the ring is kept per transformer, so that
dropping old days never changes an answer: the closure the floor belongs to,
the floor, and the reference use before that closure (``ref_kwh``).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.exceptions import StateError
from pipelines.core.outputs import atomic_path
from pipelines.power.meters import DayUse

FORMAT_VERSION = "2"  # 2: ref_kwh added (a version-1 file is rebuilt from readings)
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.parquet$")


@dataclass(frozen=True)
class PowerState:
    """Per-transformer history at the end of Beijing day ``end``.

    ``daily`` and ``work_share`` are float32 arrays (transformers x days),
    column ``days - 1`` being ``end``; NaN = unknown. ``floor_kwh`` is the
    post-closure floor (kWh/day) learnt for the closure dated
    ``floor_for`` (days since 1970-01-01; 0 = no closure in force), and
    ``ref_kwh`` the median working-day use (kWh/day) before that closure
    (NaN = unknown); both are kept for as long as the closure is in force,
    whatever the ring holds.

    Example::

        state = PowerState.read(Path("out/state/electricity/2022-06-03.parquet"))
        row = state.ids.get_loc("YZ0200")
        daily = pd.Series(state.daily[row], index=state.dates)   # kWh per Beijing day
    """

    ids: pd.Index  # transformer ids (str)
    end: dt.date
    daily: np.ndarray
    work_share: np.ndarray
    last_register: np.ndarray  # float64, kWh; NaN = unknown
    floor_kwh: np.ndarray  # float32
    floor_for: np.ndarray  # int32
    ref_kwh: np.ndarray | None = None  # float32; None = all unknown

    def __post_init__(self) -> None:
        if self.ref_kwh is None:
            object.__setattr__(self, "ref_kwh", np.full(len(self.ids), np.nan, "float32"))

    @classmethod
    def empty(cls, ids: pd.Index | list[str], end: dt.date, days: int) -> PowerState:
        n = len(ids)
        return cls(pd.Index(ids, dtype=object), end, np.full((n, days), np.nan, "float32"), np.full((n, days), np.nan, "float32"),
                   np.full(n, np.nan), np.full(n, np.nan, "float32"), np.zeros(n, "int32"), np.full(n, np.nan, "float32"))

    @property
    def days(self) -> int:
        return self.daily.shape[1]

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The Beijing dates of the ring's columns."""
        return _ring_dates(self.end, self.days)

    def register_before(self, day: dt.date) -> np.ndarray:
        """Registers at the end of the day before ``day``, NaN where unknown (or if that day is not ``end``)."""
        if day - dt.timedelta(days=1) != self.end:
            return np.full(len(self.ids), np.nan)
        return self.last_register

    def advance(self, use: DayUse) -> PowerState:
        """The state at the end of ``use.day`` (after ``end``; days in between are unknown)."""
        shift = (use.day - self.end).days
        if shift <= 0:
            raise StateError(f"cannot add {use.day} to a state that already ends on {self.end}")
        daily = _shifted(self.daily, shift)
        share = _shifted(self.work_share, shift)
        daily[:, -1] = use.kwh
        share[:, -1] = use.work_share
        register = np.where(np.isfinite(use.last_register), use.last_register, self.last_register if shift == 1 else np.nan)
        return replace(self, end=use.day, daily=daily, work_share=share, last_register=register)

    def reindex(self, ids: pd.Index | list[str]) -> PowerState:
        """The state for fleet ``ids``: new transformers have no history, removed ones are dropped."""
        ids = pd.Index(ids, dtype=object)
        if ids.equals(self.ids):
            return self
        where = self.ids.get_indexer(ids)
        known = where >= 0

        def take(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((len(ids), *a.shape[1:]), fill, a.dtype)
            out[known] = a[where[known]]
            return out

        return PowerState(ids, self.end, take(self.daily, np.nan), take(self.work_share, np.nan), take(self.last_register, np.nan),
                          take(self.floor_kwh, np.nan), take(self.floor_for, 0), take(self.ref_kwh, np.nan))

    def equals(self, other: PowerState) -> bool:
        """Same transformers, day, ring and kept values (NaN equal to NaN)."""
        same = lambda a, b: a.shape == b.shape and np.array_equal(a, b, equal_nan=True)  # noqa: E731
        return (self.end == other.end and self.ids.equals(other.ids) and same(self.daily, other.daily)
                and same(self.work_share, other.work_share) and same(self.last_register, other.last_register)
                and same(self.floor_kwh, other.floor_kwh) and same(self.floor_for, other.floor_for) and same(self.ref_kwh, other.ref_kwh))

    def resized(self, days: int) -> PowerState:
        """The same history in a ring of ``days`` (older days dropped, or unknown ones added)."""
        if days == self.days:
            return self
        return replace(self, daily=_fit(self.daily, days), work_share=_fit(self.work_share, days))

    def write(self, path: Path) -> None:
        """Write atomically: a reader never sees half a file."""
        w = self.days
        table = pa.table({
            "transformer_id": pa.array(self.ids.astype(str), pa.string()),
            "daily_kwh": pa.FixedSizeListArray.from_arrays(pa.array(self.daily.ravel()), w),
            "work_share": pa.FixedSizeListArray.from_arrays(pa.array(self.work_share.ravel()), w),
            "last_register_kwh": pa.array(self.last_register),
            "floor_kwh": pa.array(self.floor_kwh),
            "floor_for": pa.array(self.floor_for),
            "ref_kwh": pa.array(self.ref_kwh),
        }).replace_schema_metadata({"gridwatch_power_state": FORMAT_VERSION, "end": self.end.isoformat()})
        with atomic_path(path, fsync=True) as partial:
            pq.write_table(table, partial, compression="zstd")

    @classmethod
    def read(cls, path: Path) -> PowerState:
        """The state stored at ``path`` (written by :meth:`write`); raises ``StateError`` if unusable."""
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise StateError(f"{path}: cannot read electricity state: {exc}") from None
        meta = table.schema.metadata or {}
        if meta.get(b"gridwatch_power_state") != FORMAT_VERSION.encode():
            raise StateError(f"{path}: not a gridwatch electricity state (format {FORMAT_VERSION})")
        n = table.num_rows

        def matrix(name: str) -> np.ndarray:
            column = table.column(name).combine_chunks()
            return column.flatten().to_numpy(zero_copy_only=False).astype("float32").reshape(n, column.type.list_size)

        return cls(
            pd.Index(table.column("transformer_id").to_pylist(), dtype=object),
            dt.date.fromisoformat(meta[b"end"].decode()),
            matrix("daily_kwh"),
            matrix("work_share"),
            table.column("last_register_kwh").to_numpy(),
            table.column("floor_kwh").to_numpy().astype("float32"),
            table.column("floor_for").to_numpy().astype("int32"),
            table.column("ref_kwh").to_numpy().astype("float32"),
        )


@functools.lru_cache(maxsize=256)
def _ring_dates(end: dt.date, days: int) -> pd.DatetimeIndex:
    return pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")


def _shifted(a: np.ndarray, shift: int) -> np.ndarray:
    out = np.full_like(a, np.nan)
    if shift < a.shape[1]:
        out[:, : a.shape[1] - shift] = a[:, shift:]
    return out


def _fit(a: np.ndarray, days: int) -> np.ndarray:
    if days <= a.shape[1]:
        return a[:, a.shape[1] - days :].copy()
    return np.concatenate([np.full((a.shape[0], days - a.shape[1]), np.nan, a.dtype), a], axis=1)


def state_path(folder: Path, day: dt.date) -> Path:
    return folder / f"{day.isoformat()}.parquet"


def latest_state(folder: Path, before: dt.date) -> Path | None:
    """The newest state file in ``folder`` ending before ``before``."""
    found = []
    for path in folder.glob("*.parquet") if folder.exists() else ():
        m = _NAME.match(path.name)
        if m and dt.date.fromisoformat(m.group(1)) < before:
            found.append(path)
    return max(found, default=None)


def prune_states(folder: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest state files; returns what was deleted."""
    dated = sorted(p for p in folder.glob("*.parquet") if _NAME.match(p.name))
    old = dated[: max(len(dated) - keep, 0)]
    for path in old:
        path.unlink(missing_ok=True)
    return old
