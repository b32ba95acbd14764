"""One Beijing day of meter readings -> one day's use per transformer, with every problem counted.

The readings of a province's day are tens of millions of rows. Each
partition of the dask dataframe is parsed, placed on the day's interval
slots and de-duplicated on its own (in parallel); only the surviving
(slot, value) pairs travel to the final assembly, which fills one dense
``transformers x slots`` array. Problems are never dropped silently: each
kind is counted for ``run.json`` with up to ``EXAMPLES`` example rows.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipelines.core.skips import Skip
from pipelines.power.readers import (
    BAD_ID,
    BAD_ROW,
    BAD_TIME,
    BAD_VALUE,
    OUTSIDE_DAY,
    REPEATED_HEADER,
    ROW_PROBLEMS,
    UNMAPPED,
    ReadingFormat,
    day_bounds_utc,
)

EXAMPLES = 5  # example rows kept per problem and partition
NS_PER_MIN = 60 * 10**9


@dataclass(frozen=True)
class MeterLimits:
    """What counts as a usable day and a plausible reading."""

    min_coverage: float = 0.9  # fraction of a day's intervals that must be known for its total; the rest is scaled up
    max_kw: float = 200000.0  # kW: without a transformer's capacity, a reading implying more average power is an error
    work_hours: tuple[int, int] = (8, 18)  # Beijing clock hours [start, end) of a working day shift
    kw_per_kva: float = 2.0  # with a transformer's capacity (kVA): at most this many kW per kVA on average (overload included)


@dataclass
class DayUse:
    """The use of every transformer of the fleet on one Beijing day.

    Arrays are aligned with the fleet index given to ``day_use``. ``kwh`` is
    NaN where less than ``min_coverage`` of the day is known; ``work_share``
    (0-1) is the share of the day's kWh used in working hours, NaN for daily
    readings. ``last_register`` is the meter register (kWh) at the last
    reading of the day, for the next day's differences.
    """

    day: dt.date
    kwh: np.ndarray  # float32
    work_share: np.ndarray  # float32
    coverage: np.ndarray  # float32, 0-1
    last_register: np.ndarray  # float64
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[Skip] = field(default_factory=list)
    unmapped: dict[str, int] = field(default_factory=dict)  # transformer id -> rows, the 20 commonest

    @classmethod
    def unknown(cls, day: dt.date, transformers: int) -> DayUse:
        """A day without any readings."""
        nan = np.full(transformers, np.nan, "float32")
        return cls(day, nan, nan.copy(), np.zeros(transformers, "float32"), np.full(transformers, np.nan))


@dataclass
class _Part:
    """One partition's readings on the day's slots: flat index -> value, count, conflict."""

    flat: np.ndarray  # int64, transformer * slots + slot, sorted unique
    value: np.ndarray  # float64
    n: np.ndarray  # int32, rows seen for that slot
    conflict: np.ndarray  # bool, rows disagreed
    rows: np.ndarray  # int64, the line (record) of the value kept for each slot, for reports
    file: str
    counts: Counter
    examples: list[Skip]
    unmapped: Counter


def capacity_kw(limits: MeterLimits, kva: np.ndarray | None, n: int) -> np.ndarray:
    """Per transformer, the largest plausible average power (kW): ``kw_per_kva`` x its kVA where the
    transformer table gives one, else the fleet-wide ``max_kw``."""
    if kva is None:
        return np.full(n, limits.max_kw)
    kva = np.asarray(kva, dtype="float64")
    return np.where(np.isfinite(kva) & (kva > 0), kva * limits.kw_per_kva, limits.max_kw)


def day_use(readings: dd.DataFrame, fleet: pd.Index, day: dt.date, fmt: ReadingFormat, *,
            limits: MeterLimits = MeterLimits(), previous_register: np.ndarray | None = None,
            kva: np.ndarray | None = None) -> DayUse:
    """The day's use per transformer of ``fleet`` from ``readings`` (``readers.power.read_readings``).

    ``previous_register`` (register readings only): each transformer's
    register at the end of the day before, in kWh; NaN where unknown (then
    the first interval of the day is unknown). Computes on the current dask
    scheduler. ``day`` is a Beijing date (00:00-24:00 UTC+8); ``kwh`` of the
    result is kWh per day, ``work_share`` 0-1.

    Example::

        use = day_use(read_readings(files, fmt), state.ids, day, fmt)
        state = state.advance(use)
        use.counts                                 # every problem counted
    """
    start, _ = day_bounds_utc(day)
    caps = capacity_kw(limits, kva, len(fleet))
    parts = [dask.delayed(_place)(p, fleet, start.value, fmt, limits, caps) for p in readings.to_delayed()]
    # One partition (a small day) gains nothing from threads: computed in this thread, it skips the scheduler's overhead.
    placed = dask.compute(*parts, scheduler="sync") if len(parts) == 1 else dask.compute(*parts)
    values, n, conflict, counts, examples, unmapped = _assemble(placed, len(fleet), fmt)
    prev = np.full(len(fleet), np.nan) if previous_register is None else previous_register
    if fmt.values == "register":
        energy, covered, resets, implausible, lone, last = _register_energy(values, conflict, prev, fmt, caps)
        counts["meter_resets"] += int(resets.sum())
        counts["implausible"] += int(implausible.sum() + lone.sum())
        cap = "its capacity" if kva is not None and np.isfinite(kva).any() else f"max_kw = {limits.max_kw:g} kW"
        for mask, reason in (
            (resets, "register lower than the reading before (meter reset or replaced?); this interval is left unknown"),
            (implausible, f"register rose by more than {cap} allows; this interval is left unknown, the transformer's others are kept"),
            (lone, f"register out of line with the readings before and after it (a misread beyond {cap}); "
                   "this reading is not used, the next interval spans its gap"),
        ):
            examples += [Skip(file, reason, row=row, field=fmt.value_column) for file, row in _locate(placed, mask)]
    else:
        energy = np.where(conflict, np.nan, values)
        covered = np.isfinite(energy).sum(axis=1)
        last = np.full(len(fleet), np.nan)
    kwh, share, coverage = _day_totals(energy, covered, fmt, limits)
    seen = n.sum(axis=1) > 0
    counts["transformers"] = len(fleet)
    counts["transformers_without_readings"] = int((~seen).sum())
    counts["transformers_with_gaps"] = int((seen & (coverage < 1) & np.isfinite(kwh)).sum())
    counts["days_too_incomplete"] = int((seen & ~np.isfinite(kwh)).sum())
    top = dict(unmapped.most_common(20))
    counts["unmapped_transformers"] = len(unmapped)
    return DayUse(day, kwh, share, coverage, last, dict(counts), examples, top)


def _place(frame: pd.DataFrame, fleet: pd.Index, day_start_ns: int, fmt: ReadingFormat, limits: MeterLimits, caps: np.ndarray) -> _Part:
    counts: Counter = Counter(rows=len(frame))
    examples: list[Skip] = []
    ids = frame["transformer"].astype("category")
    lookup = fleet.get_indexer(ids.cat.categories.astype(str))
    codes = ids.cat.codes.to_numpy()
    t = np.where(codes >= 0, lookup[codes], -1)
    bad = frame["bad"].to_numpy().copy()
    bad[(bad == 0) & (t < 0)] = UNMAPPED
    unmapped = Counter(frame["transformer"].to_numpy()[bad == UNMAPPED].astype(str)) if (bad == UNMAPPED).any() else Counter()
    file = str(frame["file"].iat[0]) if len(frame) else ""
    column = {"transformer": fmt.transformer_column, "time": fmt.time_column, "value": fmt.value_column}

    slots = fmt.slots
    step = fmt.interval_minutes * NS_PER_MIN
    ns = frame["time"].to_numpy(dtype="datetime64[ns]").view("int64")
    offset = ns - day_start_ns
    if slots == 1:
        slot = np.where((offset >= 0) & (offset < 1440 * NS_PER_MIN), 0, -1)
    else:
        k = np.floor_divide(offset + step // 2, step)  # nearest interval boundary: tolerates clock jitter
        slot = k - 1 if fmt.label == "end" else k
        slot = np.where((slot >= 0) & (slot < slots), slot, -1)
    bad[(bad == 0) & (slot < 0)] = OUTSIDE_DAY

    value = frame["value"].to_numpy(dtype="float64")
    good = bad == 0
    if fmt.values == "interval":
        negative = good & (value < 0)
        implausible = good & (value > caps[np.maximum(t, 0)] * fmt.interval_minutes / 60)
        counts["negative"] += int(negative.sum())
        counts["implausible"] += int(implausible.sum())
        _examples(examples, frame, negative, column["value"], "negative kWh in an interval; the interval is left unknown")
        _examples(examples, frame, implausible, column["value"],
                  f"more than the transformer's capacity (kva x kw_per_kva, else max_kw = {limits.max_kw:g} kW) on average; "
                  "this interval is left unknown, the transformer's others are kept")
        good &= ~(negative | implausible)
    else:
        negative = good & (value < 0)
        counts["negative"] += int(negative.sum())
        _examples(examples, frame, negative, column["value"], "negative register reading; the interval is left unknown")
        good &= ~negative
    for code, (role, reason) in ROW_PROBLEMS.items():
        mask = bad == code
        counts[_COUNT_NAMES[code]] += int(mask.sum())
        if code == UNMAPPED:
            for r in np.flatnonzero(mask)[:EXAMPLES]:
                examples.append(Skip(file, f"transformer id {str(frame['transformer'].iat[r])[:80]!r} not in the transformer table; "
                                     "the row is not used", row=int(frame["row"].iat[r]), field=column[role]))
        else:
            _examples(examples, frame, mask, column[role], reason)
    counts["outside_day"] += int((bad == OUTSIDE_DAY).sum())

    flat = t[good].astype("int64") * slots + slot[good]
    value = value[good]
    order = np.argsort(flat, kind="stable")
    flat, value = flat[order], value[order]
    first = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]]) if len(flat) else np.zeros(0, "int64")
    n = np.diff(np.r_[first, len(flat)]).astype("int32")
    if len(flat) and (n > 1).any():
        lo = np.minimum.reduceat(value, first)
        hi = np.maximum.reduceat(value, first)
        conflict = hi != lo
    else:
        conflict = np.zeros(len(first), bool)
    counts["duplicates"] += int((n[~conflict] - 1).sum())
    counts["conflicting"] += int(n[conflict].sum())
    rows = frame["row"].to_numpy()[good][order]
    if conflict.any():
        bad_rows = rows[first[conflict]][:EXAMPLES]
        examples += [Skip(file, "the same transformer and interval twice with different values; the interval is left unknown",
                          row=int(r), field=column["time"]) for r in bad_rows]
    counts["used"] += int((~conflict).sum())
    return _Part(flat[first], value[first], n, conflict, rows[first], file, counts, examples, unmapped)


_COUNT_NAMES = {BAD_ID: "bad_id", BAD_TIME: "bad_time", BAD_VALUE: "bad_value", UNMAPPED: "unmapped_rows", REPEATED_HEADER: "repeated_header",
                **{code: "malformed_rows" for codes in BAD_ROW.values() for code in codes}}


def _examples(out: list[Skip], frame: pd.DataFrame, mask: np.ndarray, column: str, reason: str) -> None:
    if mask.any():
        rows = frame["row"].to_numpy()[mask][:EXAMPLES]
        out += [Skip(str(frame["file"].iat[0]), reason, row=int(r), field=column) for r in rows]


def _assemble(parts: tuple[_Part, ...], n_transformers: int, fmt: ReadingFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray, Counter, list[Skip], Counter]:
    """One dense (transformers, slots) array of values, with rows seen and conflicts, from the partitions."""
    size = n_transformers * fmt.slots
    dtype = "float64" if fmt.values == "register" else "float32"
    values = np.full(size, np.nan, dtype)
    n = np.zeros(size, "int32")
    conflict = np.zeros(size, bool)
    counts: Counter = Counter()
    examples: list[Skip] = []
    unmapped: Counter = Counter()
    for part in parts:
        # The same interval in two partitions (two files of one day): a duplicate, or a conflict.
        seen = n[part.flat] > 0
        before = conflict[part.flat]
        equal = values[part.flat] == part.value
        both_clean = seen & ~before & ~part.conflict
        counts["duplicates"] += int((both_clean & equal).sum())
        # Each newly conflicting interval turns its used row(s) (one per side that was clean) into conflicting ones.
        newly = both_clean & ~equal
        turned = 2 * newly.sum() + (seen & ~before & part.conflict).sum() + (seen & before & ~part.conflict).sum()
        counts["conflicting"] += int(turned)
        counts["used"] -= int((both_clean & equal).sum() + turned)
        conflict[part.flat] |= part.conflict | newly
        fresh = ~seen
        values[part.flat[fresh]] = part.value[fresh]
        n[part.flat] += part.n
        counts.update(part.counts)
        examples += part.examples
        unmapped.update(part.unmapped)
    shape = (n_transformers, fmt.slots)
    return values.reshape(shape), n.reshape(shape), conflict.reshape(shape), counts, examples, unmapped


def _register_energy(registers: np.ndarray, conflict: np.ndarray, previous: np.ndarray, fmt: ReadingFormat,
                     caps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """kWh per interval from cumulative registers, with resets and implausible jumps left unknown.

    A difference across missing readings is put on the interval where
    reading resumes and covers the whole gap. A lone wrong reading (a spike
    up or down between two readings that agree with each other) would break
    two differences: that reading alone is dropped instead, and the next
    difference spans its gap. Returns (energy, intervals covered per
    transformer, and (transformers x slots) masks of resets, implausible
    jumps and dropped lone readings, then the last register of the day).
    """
    cap = (caps * fmt.interval_minutes / 60)[:, None]  # kWh per interval, per transformer
    full = np.concatenate([previous[:, None].astype("float64"), np.where(conflict, np.nan, registers)], axis=1)
    diff, span, before = _differences(full)
    bad = np.isfinite(diff) & ((diff < 0) | (diff > cap * span))
    columns = np.arange(full.shape[1])
    rows = np.arange(full.shape[0])[:, None]
    # The next known reading after each column, and whether going straight to it from the one before is plausible.
    after = np.minimum.accumulate(np.where(np.isfinite(full), columns, full.shape[1])[:, ::-1], axis=1)[:, ::-1]
    nxt = np.concatenate([after[:, 1:], np.full((full.shape[0], 1), full.shape[1])], axis=1)
    has_next = nxt < full.shape[1]
    nxt_c = np.minimum(nxt, full.shape[1] - 1)
    bridged = full[rows, nxt_c] - np.where(before >= 0, full[rows, np.maximum(before, 0)], np.nan)
    # Out of line, while going straight from the reading before to the one after is plausible: a misread (a spike up
    # or down), whatever the cap (a reset stays below the reading before; a replaced meter stays far above it).
    lone = bad & has_next & (bridged >= 0) & (bridged <= cap * (nxt_c - before))
    lone[:, 0] = False
    if lone.any():
        full = np.where(lone, np.nan, full)
        diff, span, before = _differences(full)
    valid = np.isfinite(diff)
    reset = valid & (diff < 0)
    implausible = valid & ~reset & (diff > cap * span)
    energy = np.where(reset | implausible, np.nan, diff)[:, 1:]
    covered = np.where(np.isfinite(energy), span[:, 1:], 0).sum(axis=1)
    have = np.isfinite(full)
    last_seen = np.maximum.accumulate(np.where(have, columns, -1), axis=1)[:, -1]
    last = np.where(last_seen >= 0, full[rows[:, 0], np.maximum(last_seen, 0)], np.nan)
    return energy, covered, reset[:, 1:], implausible[:, 1:], lone[:, 1:], last


def _differences(full: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference to the previous known register, columns it spans, column of that register or -1), per column of ``full``."""
    have = np.isfinite(full)
    columns = np.arange(full.shape[1])
    rows = np.arange(full.shape[0])[:, None]
    last_seen = np.maximum.accumulate(np.where(have, columns, -1), axis=1)
    before = np.concatenate([np.full((full.shape[0], 1), -1), last_seen[:, :-1]], axis=1)
    earlier = np.where(before >= 0, full[rows, np.maximum(before, 0)], np.nan)
    diff = np.where(have & (before >= 0), full - earlier, np.nan)
    return diff, columns - before, before


def _locate(parts: tuple[_Part, ...], mask: np.ndarray) -> list[tuple[str, int]]:
    """(file, row) of the readings kept for the first ``EXAMPLES`` slots set in ``mask`` (transformers x slots)."""
    found = []
    for flat in np.flatnonzero(mask.ravel())[:EXAMPLES]:
        for part in parts:  # the first partition holding a slot gave its value (see _assemble)
            i = np.searchsorted(part.flat, flat)
            if i < len(part.flat) and part.flat[i] == flat:
                found.append((part.file, int(part.rows[i])))
                break
    return found


def _day_totals(energy: np.ndarray, covered: np.ndarray, fmt: ReadingFormat, limits: MeterLimits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kWh of the day, working-hours share, coverage) from per-interval energy (NaN = unknown).

    ``covered``: intervals per transformer whose energy is known. A day with
    at least ``min_coverage`` known is scaled up to the whole day.
    """
    known = np.isfinite(energy)
    coverage = (covered / fmt.slots).astype("float32")
    total = np.where(known, energy, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        kwh = np.where(coverage >= limits.min_coverage, total * fmt.slots / np.maximum(covered, 1), np.nan)
        if fmt.slots == 1:
            share = np.full(len(kwh), np.nan)
        else:
            hours = (np.arange(fmt.slots) * fmt.interval_minutes) / 60
            work = (hours >= limits.work_hours[0]) & (hours < limits.work_hours[1])
            in_work = np.where(known[:, work], energy[:, work], 0.0).sum(axis=1) * work.sum() / np.maximum(known[:, work].sum(axis=1), 1)
            off_work = np.where(known[:, ~work], energy[:, ~work], 0.0).sum(axis=1) * (~work).sum() / np.maximum(known[:, ~work].sum(axis=1), 1)
            share = np.where(np.isfinite(kwh) & (in_work + off_work > 0), in_work / (in_work + off_work), np.nan)
    return kwh.astype("float32"), share.astype("float32"), coverage
