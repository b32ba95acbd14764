"""Sites a supervisor must check, from dedicated-transformer electricity use.

Four rules, each comparing a meter (or an enterprise, the sum of its meters)
with its own history in the ``PowerState`` ring and China's working calendar:

- ``resurgence`` (死灰复燃): a closed, moved or rectifying enterprise's
  transformer rises above its post-closure floor for k days, at a production
  level;
- ``noncompliance``: a B, C or D enterprise of the emergency reduction list
  that does not cut its use by the fraction its grade requires during an
  orange or red warning, against its own same-weekday baseline;
- ``unregistered_load``: a transformer of no registered enterprise, in a cell
  with no registered enterprise, whose use has a factory's rhythm: a
  candidate new 散乱污 site;
- ``stopped``: an operating enterprise at a fraction of its usual use for
  many working days (closed quietly or moved away: check the registry).

Rest days (weekends, public holidays) never break or make a run of days, and
the Spring Festival season counts as rest; make-up workdays are workdays.
All days are Beijing calendar days; kWh are per day.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings as pywarnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import geopandas as gpd
import numpy as np
import pandas as pd

from pipelines.core.schema import BEIJING_TZ, WGS84
from pipelines.core.settings import (
    ComplianceRule,
    GradeCuts,
    ReductionTable,
    ResurgenceRule,
    SilentRule,
    SiteRules,
    StoppedRule,
    UnregisteredRule,
)
from pipelines.core.wording import kwh_zh
from pipelines.grid.attribution import PointIndex
from pipelines.power.holidays import WorkCalendar
from pipelines.power.readers import LEVEL_RANK
from pipelines.power.state import PowerState

RULES = ("resurgence", "noncompliance", "unregistered_load", "stopped", "silent_meter")
RULE_LABELS = {
    "resurgence": ("死灰复燃", "closed site running again"),
    "noncompliance": ("应急减排未落实", "not cutting use during a warning"),
    "unregistered_load": ("疑似新增散乱污", "unregistered factory-like load"),
    "stopped": ("疑似停产或搬迁", "stopped or moved"),
    "silent_meter": ("电表无数据", "meter without readings"),
}
# Episode states, in the order pages list them: what is new tonight first.
EPISODES = ("new", "continuing", "resumed", "ended")
EPISODE_LABELS = {"new": ("新发现", "new"), "continuing": ("持续", "continuing"), "resumed": ("已恢复生产", "resumed"),
                  "ended": ("已结束", "ended")}
CHART_DAYS = 60
EPOCH = dt.date(1970, 1, 1)


@dataclass
class Fleet:
    """Transformers (state order) with their enterprise, location and cell; enterprises of the registry."""

    transformers: pd.DataFrame  # transformer_id, enterprise_id, lon, lat, cell_id, county_code; registered (bool)
    registry: pd.DataFrame  # readers.power.read_registry
    counts: dict[str, int] = field(default_factory=dict)
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def cached(self, key: str, make: Callable[[], object]) -> object:
        """What ``make`` derives from the (unchanging) fleet, computed once: a replay judges hundreds of nights."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def status(self) -> np.ndarray:
        """Registry status of each transformer's enterprise ("" = none or unknown), fleet order."""
        return self.cached("status", lambda: self.transformers["enterprise_id"].map(
            self.registry.set_index("enterprise_id")["status"]).fillna("").to_numpy(object))


def locate_fleet(transformers: gpd.GeoDataFrame, registry: pd.DataFrame, grid: gpd.GeoDataFrame,
                 index: PointIndex | None = None) -> Fleet:
    """Attach each transformer's grid cell and county, and whether its enterprise is registered."""
    index = index or PointIndex.build(grid.geometry)
    where = index.locate(transformers["lon"].to_numpy(), transformers["lat"].to_numpy())
    inside = where >= 0
    t = pd.DataFrame({
        "transformer_id": transformers["transformer_id"].astype(str).to_numpy(),
        "enterprise_id": transformers["enterprise_id"].fillna("").astype(str).to_numpy(),
        "lon": transformers["lon"].to_numpy(), "lat": transformers["lat"].to_numpy(),
    })
    for column in ("cell_id", "cell_name", "county_code"):
        values = grid[column].astype("string").to_numpy()
        t[column] = pd.array(np.where(inside, values[np.maximum(where, 0)], None), dtype="string")
    t["kva"] = transformers["kva"].to_numpy("float64") if "kva" in transformers else np.nan  # rated capacity; NaN = not given
    t["registered"] = t["enterprise_id"].isin(set(registry["enterprise_id"].astype(str)))
    counts = {"transformers": len(t), "transformers_outside_grid": int((~inside).sum()),
              "transformers_unregistered": int((~t["registered"]).sum()),
              "enterprises": len(registry), "enterprises_without_transformer": int((~registry["enterprise_id"].isin(t["enterprise_id"])).sum())}
    return Fleet(t, registry.reset_index(drop=True), counts)


def closure_days(fleet: Fleet, day: dt.date) -> np.ndarray:
    """Per transformer: the closure (or rectification) date in force on ``day``, days since 1970; 0 = none."""
    def dates() -> tuple[np.ndarray, np.ndarray]:
        reg = fleet.registry.set_index("enterprise_id")
        since = fleet.transformers["enterprise_id"].map(reg["status_date"])
        deadline = fleet.transformers["enterprise_id"].map(reg["deadline"])
        return _epoch_days(since), _epoch_days(deadline)

    since_days, deadline_days = fleet.cached("closure_dates", dates)
    status = fleet.status()
    today = (day - EPOCH).days
    rectifying = (status == "rectifying") & ((deadline_days == _NO_DATE) | (deadline_days >= today))
    in_force = np.isin(status, ("closed", "moved")) | rectifying
    return np.where(in_force & (since_days != _NO_DATE) & (since_days <= today), since_days, 0).astype("int32")


_NO_DATE = np.iinfo("int64").min


def _epoch_days(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of ``datetime.date`` values; ``_NO_DATE`` where missing."""
    stamps = pd.to_datetime(dates, errors="coerce")
    return np.where(stamps.isna(), _NO_DATE, (stamps - pd.Timestamp(EPOCH)).dt.days.fillna(0).astype("int64"))


def learn_floors(state: PowerState, closed: np.ndarray, rule: ResurgenceRule, calendar: WorkCalendar | None = None) -> PowerState:
    """``state`` with, per transformer of a closed enterprise, the reference use before the closure and the floor after it.

    ``closed``: ``closure_days``. On the first night a closure date ``C`` is
    in force, the reference (median working-day use of the
    ``reference_days`` before ``C``, kWh/day) is taken from the ring and
    kept. The floor is a low quantile (``floor_quantile``) of the known days
    ``C + grace_days`` .. ``C + grace_days + floor_days - 1`` before the
    ring's last day, at most ``floor_cap`` x the reference: provisional while
    that window is open, then kept for as long as the closure is. A low
    quantile is what production inside the window cannot raise (a restart
    on ``C + 1`` leaves the days at the floor as the lowest), and the cap
    keeps a floor learnt while an enterprise never stopped below production.
    Both are kept in the state, so dropping old days never changes them.
    """
    calendar = calendar or WorkCalendar.cached(state.dates[0].date(), state.days)
    ring_start = (state.dates[0].date() - EPOCH).days
    today = state.days - 1
    floor_kwh, floor_for, ref_kwh = state.floor_kwh.copy(), state.floor_for.copy(), state.ref_kwh.copy()
    new = np.flatnonzero((closed > 0) & (floor_for != closed))
    # A new closure (or a reopened enterprise) forgets the old floor and reference.
    floor_kwh[new], floor_for[new], ref_kwh[new] = np.nan, closed[new], np.nan
    if len(new):
        ref_kwh[new] = _pre_closure_level(state.daily[new].astype("float64"), calendar, closed[new] - ring_start, rule.reference_days)
    first = closed - ring_start + rule.grace_days  # ring column of the window's first day
    # Learning while the window is open; a closure first seen tonight (registered late) learns from the ring at once.
    is_new = np.zeros(len(closed), bool)
    is_new[new] = True
    open_ = np.flatnonzero((closed > 0) & (first <= today - 1) & ((first + rule.floor_days - 1 >= today - 1) | is_new))
    if len(open_):
        columns = first[open_, None] + np.arange(rule.floor_days)
        usable = (columns >= 0) & (columns <= today - 1)  # days before the ring's last day
        values = np.where(usable, state.daily[open_[:, None], np.clip(columns, 0, today)], np.nan)
        known = np.isfinite(values).sum(axis=1)
        # A standby under min_excess_kwh is never capped: for a tiny consumer it is not a sign of production.
        cap = np.maximum(rule.floor_cap * ref_kwh[open_], rule.min_excess_kwh)
        # Without a reference (no days before the closure: a new meter, or the start of the data) nothing bounds
        # a low quantile from above, and standby swings would pass for production: the floor is then the
        # median of the whole window, and the closure is judged once the window is over (unknown before).
        complete = first[open_] + rule.floor_days - 1 <= today - 1
        q = np.where(np.isfinite(cap), row_quantile(values, rule.floor_quantile), row_quantile(values, 0.5))
        floors = np.where((known >= rule.min_floor_days) & (np.isfinite(cap) | complete), q, np.nan)
        floor_kwh[open_] = np.where(np.isfinite(cap) & np.isfinite(floors), np.minimum(floors, cap), floors).astype("float32")
    gone = closed == 0
    floor_kwh[gone], floor_for[gone], ref_kwh[gone] = np.nan, 0, np.nan
    return replace(state, floor_kwh=floor_kwh, floor_for=floor_for, ref_kwh=ref_kwh)


def production_threshold(floor: np.ndarray, ref: np.ndarray, rule: ResurgenceRule) -> np.ndarray:
    """kWh/day above which a closed site's day is production: above the floor x ``ratio`` and floor +
    ``min_excess_kwh``, and at least ``production_fraction`` of the reference; inf where neither is known."""
    floor, ref = floor.astype("float64"), ref.astype("float64")
    by_floor = np.where(np.isfinite(floor), np.maximum(floor * rule.ratio, floor + rule.min_excess_kwh), rule.min_excess_kwh)
    by_ref = np.where(np.isfinite(ref), rule.production_fraction * ref, -np.inf)
    # Without a reference the floor must be known (learnt from the whole window): until then, not judged.
    return np.where(np.isfinite(ref) | np.isfinite(floor), np.maximum(by_floor, by_ref), np.inf)


@dataclass
class Episodes:
    """Per row, the episode at the end of the ring and the one that ended on its last day (columns; -1 = none)."""

    active: np.ndarray  # bool: an episode runs on the last day
    was_active: np.ndarray  # bool: one ran on the day before
    first: np.ndarray  # int: first column of the running (or just ended) episode
    days: np.ndarray  # int: its days that met the rule

    @property
    def state(self) -> np.ndarray:
        """``new``, ``continuing``, ``ended`` or "" per row."""
        return np.select([self.active & ~self.was_active, self.active & self.was_active, ~self.active & self.was_active],
                         ["new", "continuing", "ended"], "")


def scan_episodes(hit: np.ndarray, start_break: np.ndarray, end_hit: np.ndarray, other: np.ndarray, earliest: np.ndarray,
                  start_days: int, end_days: int) -> Episodes:
    """Episodes with hysteresis, scanning each row's columns (days) in order from ``earliest``.

    An episode starts on the ``start_days``-th ``hit`` with no ``start_break``
    between them (other days neither count nor break) and its first day is
    the first of those hits; it ends after ``end_days`` ``end_hit`` days in
    a row (a hit or an ``other`` day resets that count; rest days do not).
    Columns before ``earliest`` (per row) are not looked at. Everything is
    read from the ring, so a state rebuilt from readings gives the same
    episodes.
    """
    n, w = hit.shape
    looked_at = np.arange(w)[None, :] >= earliest[:, None]
    some = np.flatnonzero((hit & looked_at).any(axis=1))
    if len(some) < n:  # rows without a single hit have no episode: scan only the others
        out = Episodes(np.zeros(n, bool), np.zeros(n, bool), np.full(n, -1), np.zeros(n, int))
        if len(some):
            part = scan_episodes(hit[some], start_break[some], end_hit[some], other[some], earliest[some], start_days, end_days)
            out.active[some], out.was_active[some], out.first[some], out.days[some] = part.active, part.was_active, part.first, part.days
        return out
    active, was = np.zeros(n, bool), np.zeros(n, bool)
    run, ends, days = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
    candidate, first = np.full(n, -1), np.full(n, -1)
    start = int(np.argmax((hit & looked_at).any(axis=0)))  # nothing happens before the first hit
    for c in range(start, w):
        if c == w - 1:
            was = active.copy()
        looked = c >= earliest
        h, sb, eh, o = hit[:, c] & looked, start_break[:, c] & looked, end_hit[:, c] & looked, other[:, c] & looked
        # Not (yet) in an episode.
        idle = ~active
        starting = idle & h
        candidate = np.where(starting & (run == 0), c, candidate)
        run = np.where(starting, run + 1, np.where(idle & sb, 0, run))
        begins = idle & (run >= start_days)
        first = np.where(begins, candidate, first)
        days = np.where(begins, run, days)
        active |= begins
        ends = np.where(begins, 0, ends)
        # In an episode (from before this day).
        going = ~idle
        days = np.where(going & h, days + 1, days)
        ends = np.where(going & (h | o), 0, np.where(going & eh, ends + 1, ends))
        stop = going & (ends >= end_days)
        if stop.any():
            active &= ~stop
            run = np.where(stop, 0, run)
            ends = np.where(stop, 0, ends)
            if c < w - 1:  # an episode that ended before the last day is history
                first = np.where(stop, -1, first)
                days = np.where(stop, 0, days)
    return Episodes(active, was, first, days)


def resurgence(state: PowerState, closed: np.ndarray, calendar: WorkCalendar, rule: ResurgenceRule) -> pd.DataFrame:
    """Transformers of closed enterprises running again: one row per episode running or ended tonight (state row ``row``)."""
    rows = np.flatnonzero((closed > 0) & (state.floor_for == closed))
    if not len(rows):
        return _empty_flags()
    floor, ref = state.floor_kwh[rows].astype("float64"), state.ref_kwh[rows].astype("float64")
    threshold = production_threshold(floor, ref, rule)
    ring_start = (state.dates[0].date() - EPOCH).days
    earliest = np.maximum(closed[rows] - ring_start + 1 + rule.grace_days, 0)  # the closure date itself is not judged
    values = state.daily[rows].astype("float64")
    working = calendar.workday & ~calendar.festival
    known = np.isfinite(values)
    hit = known & (values > threshold[:, None])
    below = known & ~hit & working
    ep = scan_episodes(hit, below, below, np.zeros_like(hit), earliest, rule.consecutive_days, rule.end_workdays)
    state_of = ep.state
    listed = np.flatnonzero(state_of != "")
    if not len(listed):
        return _empty_flags()
    # Medians of each listed episode's production days (and working-hours shares), all rows at once.
    in_episode = (np.arange(state.days)[None, :] >= ep.first[listed, None]) & hit[listed]
    medians = _quiet_nan(np.nanmedian, np.where(in_episode, values[listed], np.nan), axis=1)
    shares = _quiet_nan(np.nanmedian, np.where(in_episode, state.work_share[rows[listed]], np.nan), axis=1)
    dates = state.dates
    out = []
    for i, j in enumerate(listed):
        if state_of[j] != "ended" and np.isfinite(shares[i]) and shares[i] < rule.min_work_share:
            continue  # 15-minute data: round-the-clock use is no workshop at work
        median = float(medians[i])
        first_day = dates[ep.first[j]].date()
        since = "at least " if ep.first[j] == 0 and closed[rows[j]] < ring_start else ""
        how = (f"{int(ep.days[j])} production day(s) since {since}{first_day}, median {median:.0f} kWh/day"
               + (f" = {median / ref[j]:.0%} of its use before closure ({ref[j]:.0f})" if np.isfinite(ref[j]) and ref[j] > 0 else "")
               + f"; post-closure floor {floor[j]:.0f} kWh/day, production above {threshold[j]:.0f}")
        if state_of[j] == "ended":
            how = f"back at its floor for {rule.end_workdays} working days; episode ended: " + how
        out.append({
            "row": rows[j], "rule": "resurgence", "first_day": first_day, "days": int(ep.days[j]), "episode": state_of[j],
            "floor_kwh": float(floor[j]), "threshold_kwh": float(threshold[j]), "pre_closure_kwh": float(ref[j]),
            "ratio": median / max(float(floor[j]) if np.isfinite(floor[j]) else 1.0, 1.0), "value_kwh": float(values[j, -1]),
            "recent_kwh": [round(float(v), 1) for v in values[j][in_episode[i]][-7:]],
            "work_share": float(shares[i]),
            **_evidence(
                (f"关停后又在用电（此次已结束：已回到关停后水平 {rule.end_workdays} 个工作日）：" if state_of[j] == "ended" else "关停后又在用电：")
                + f"自 {first_day:%m月%d日} 起 {int(ep.days[j])} 个生产日超过关停后的正常水平（约每天 {kwh_zh(floor[j])}），"
                f"期间每天约 {kwh_zh(median)}"
                + (f"，相当于关停前的 {median / ref[j]:.0%}" if np.isfinite(ref[j]) and ref[j] > 0 else ""),
                how),
        })
    return pd.DataFrame(out) if out else _empty_flags()


def _pre_closure_level(values: np.ndarray, calendar: WorkCalendar, closure_column: np.ndarray, days: int = 28) -> np.ndarray:
    """Median workday use in the ``days`` before each row's closure, where the ring holds at least 5 of them; else NaN."""
    columns = closure_column[:, None] - days + np.arange(days)
    valid = (columns >= 0) & (columns < values.shape[1])
    clipped = np.clip(columns, 0, values.shape[1] - 1)
    picked = np.where(valid & calendar.workday[clipped] & ~calendar.festival[clipped], values[np.arange(len(values))[:, None], clipped], np.nan)
    out = np.full(len(values), np.nan)
    some = np.isfinite(picked).sum(axis=1) >= 5
    out[some] = np.nanmedian(picked[some], axis=1)
    return out


def row_quantile(a: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(a, q, axis=1)`` (linear interpolation), sorted once instead of row by row; NaN for all-NaN rows."""
    ordered = np.sort(a, axis=1)  # NaN last
    known = np.isfinite(a).sum(axis=1)
    position = (known - 1) * q
    below = np.floor(position).astype(np.intp)
    rows = np.arange(len(a))
    low = ordered[rows, np.maximum(below, 0)]
    high = ordered[rows, np.clip(below + 1, 0, np.maximum(known - 1, 0))]
    out = low + (high - low) * (position - below)
    out[known == 0] = np.nan
    return out


def _quiet_nan(function: Callable[..., np.ndarray], a: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
    """``np.nanmedian``/``np.nanquantile`` without the warning for all-NaN rows (they give NaN, as wanted)."""
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore", RuntimeWarning)
        return function(a, *args, **kwargs)


@dataclass(frozen=True)
class EnterpriseUse:
    """Daily kWh per registered enterprise: the sum of its transformers, unknown where any of them is."""

    ids: pd.Index
    daily: np.ndarray  # float64 (enterprises x days)
    first_row: np.ndarray  # state row of each enterprise's first transformer

    def row_of(self, enterprise_ids: pd.Series) -> np.ndarray:
        """Row of each enterprise id, -1 where it is not registered."""
        return self.ids.get_indexer(enterprise_ids)


def enterprise_use(state: PowerState, fleet: Fleet) -> EnterpriseUse:
    """Sum the state's transformers per registered enterprise (sorted groups, one ``reduceat``)."""
    def groups() -> tuple[pd.Index, np.ndarray, np.ndarray]:
        t = fleet.transformers
        codes, ids = pd.factorize(t["enterprise_id"].where(t["registered"].to_numpy()))
        rows = np.flatnonzero(codes >= 0)
        rows = rows[np.argsort(codes[rows], kind="stable")]
        starts = np.flatnonzero(np.r_[True, codes[rows][1:] != codes[rows][:-1]]) if len(rows) else np.zeros(0, int)
        return pd.Index(ids, dtype=object), rows, starts

    ids, rows, starts = fleet.cached("enterprise_groups", groups)
    if not len(rows):
        return EnterpriseUse(pd.Index([], dtype=object), np.zeros((0, state.days)), np.zeros(0, int))
    values = state.daily[rows]
    total = np.add.reduceat(np.nan_to_num(values.astype("float64")), starts, axis=0)
    unknown = np.logical_or.reduceat(~np.isfinite(values), starts, axis=0)
    return EnterpriseUse(ids, np.where(unknown, np.nan, total), rows[starts])


def noncompliance(state: PowerState, fleet: Fleet, calendar: WorkCalendar, warnings: pd.DataFrame,
                  rule: ComplianceRule, cuts: ReductionTable, use: EnterpriseUse | None = None) -> pd.DataFrame:
    """Enterprises of the reduction list not cutting use as required on the ring's last day."""
    if warnings.empty:
        return _empty_flags()
    use = use or enterprise_use(state, fleet)
    ids, daily, first_row = use.ids, use.daily, use.first_row
    reg = fleet.registry.set_index("enterprise_id")
    grade = pd.Series(ids, dtype=object).map(reg["grade"]).fillna("").to_numpy()
    status = pd.Series(ids, dtype=object).map(reg["status"]).fillna("").to_numpy()
    county = fleet.transformers["county_code"].to_numpy()[first_row]
    checked = np.isin(grade, rule.grades) & (status == "operating")
    dates = state.dates
    cover = _warning_cover(warnings[warnings["level"].isin(rule.levels)], dates, county)
    out = []
    today = state.days - 1
    for j in np.flatnonzero(checked):
        level, hours, warning_ids = cover(j, today)
        if not level:
            continue
        value = daily[j, today]
        baseline, used, how = _baseline(daily[j], calendar, lambda c, j=j: bool(cover(j, c)[0]), rule)
        required = cuts.required(level, grade[j]) * hours / 24
        if not np.isfinite(value) or not np.isfinite(baseline) or baseline < rule.min_baseline_kwh or required <= 0:
            continue
        achieved = 1 - value / baseline
        if achieved >= required - rule.tolerance:
            continue
        out.append({
            "row": first_row[j], "rule": "noncompliance", "first_day": dates[today].date(), "days": 1,
            "baseline_kwh": float(baseline), "value_kwh": float(value), "required_reduction": float(required),
            "achieved_reduction": float(achieved), "warning_level": level, "warning_id": ",".join(warning_ids),
            "recent_kwh": [round(float(v), 1) for v in daily[j, -7:]],
            **_evidence(
                f"{LEVEL_ZH.get(level, level)}预警期间（当天 {hours:.0f} 小时），绩效 {grade[j]} 级企业应减少用电 {required:.0%}，"
                + (f"实际只减少 {achieved:.0%}" if achieved >= 0 else f"反而多用 {-achieved:.0%}")
                + f"（当天用电 {kwh_zh(value)}，平常每天约 {kwh_zh(baseline)}）",
                f"{level} warning ({hours:.0f} h of the day), grade {grade[j]}: must cut {required:.0%}, "
                + (f"cut {achieved:.0%}" if achieved >= 0 else f"used {-achieved:.0%} more")
                + f" ({value:.0f} kWh against a baseline of {baseline:.0f} kWh/day, {how} of {used} day(s))"),
        })
    return pd.DataFrame(out) if out else _empty_flags()


def _warning_cover(warnings: pd.DataFrame, dates: pd.DatetimeIndex, county: np.ndarray) -> Callable[[int, int], tuple[str, float, list[str]]]:
    """A function (enterprise, column) -> (highest level, hours of that day under it, warning ids)."""
    starts = dates.tz_localize(BEIJING_TZ).tz_convert("UTC").tz_localize(None).to_numpy()
    day = np.timedelta64(1, "D")
    cache: dict[tuple[str, int], tuple[str, float, list[str]]] = {}
    records = list(warnings.itertuples(index=False))

    def cover(j: int, column: int) -> tuple[str, float, list[str]]:
        code = str(county[j]) if county[j] is not None and not pd.isna(county[j]) else ""
        key = (code, column)
        if key not in cache:
            best, hours, found = "", 0.0, []
            d0, d1 = starts[column], starts[column] + day
            for w in records:
                prefixes = [p.strip() for p in str(w.region).split(";") if p.strip()]
                if not ("*" in prefixes or (code and any(code.startswith(p) for p in prefixes))):
                    continue
                overlap = (min(d1, w.end_utc.tz_localize(None).to_datetime64()) - max(d0, w.start_utc.tz_localize(None).to_datetime64())) / np.timedelta64(1, "h")
                if overlap <= 0:
                    continue
                if LEVEL_RANK[w.level] > LEVEL_RANK.get(best, 0):
                    best, hours, found = w.level, 0.0, []
                if w.level == best:
                    hours, found = min(24.0, hours + overlap), [*found, w.warning_id]
            cache[key] = (best, hours, found)
        return cache[key]

    return cover


def _baseline(series: np.ndarray, calendar: WorkCalendar, warned: Callable[[int], bool], rule: ComplianceRule) -> tuple[float, int, str]:
    """Median use on the same weekday (and kind of day) in the previous weeks, holidays and warnings excluded."""
    today = len(series) - 1
    usable = calendar.workday == calendar.workday[today]
    usable &= ~calendar.holiday & ~calendar.festival

    def ok(c: int) -> bool:
        return c >= 0 and usable[c] and np.isfinite(series[c]) and not warned(c)

    same = [c for c in (today - 7 * k for k in range(1, rule.baseline_weeks + 1)) if ok(c)]
    if len(same) >= rule.min_baseline_days:
        return float(np.median(series[same])), len(same), "median of the same weekday"
    kind = [c for c in range(max(today - 7 * rule.baseline_weeks, 0), today) if ok(c)]
    if len(kind) >= rule.min_baseline_days:
        return float(np.median(series[kind])), len(kind), "median of " + ("working" if calendar.workday[today] else "rest") + " days"
    return np.nan, 0, ""


def unregistered_load(state: PowerState, fleet: Fleet, calendar: WorkCalendar, rule: UnregisteredRule) -> pd.DataFrame:
    """Unregistered transformers with a factory's rhythm, in cells where no registered enterprise is."""
    def candidates() -> np.ndarray:
        t = fleet.transformers
        covered = set(t.loc[t["registered"], "cell_id"].dropna())
        # Only transformers registered to no enterprise (""): one whose enterprise id the registry lacks is unknown.
        return np.flatnonzero((~t["registered"] & (t["enterprise_id"] == "") & t["cell_id"].notna() & ~t["cell_id"].isin(covered)).to_numpy())

    rows = fleet.cached("unregistered_candidates", candidates)
    if not len(rows):
        return _empty_flags()
    window = slice(state.days - rule.days, state.days)
    values = state.daily[rows, window].astype("float64")
    share = state.work_share[rows, window].astype("float64")
    work = (calendar.workday & ~calendar.festival)[window]
    rest = (~calendar.workday & ~calendar.festival)[window]
    known = np.isfinite(values).sum(axis=1)
    on_work = _quiet_nan(np.nanmedian, np.where(work, values, np.nan), axis=1)
    on_rest = _quiet_nan(np.nanmedian, np.where(rest, values, np.nan), axis=1)
    weekly = on_work / np.maximum(on_rest, 1.0)
    work_share = _quiet_nan(np.nanmedian, np.where(work, share, np.nan), axis=1)
    has_share = np.isfinite(work_share)
    rhythm = np.where(has_share, work_share >= rule.min_work_share, np.isfinite(weekly) & (weekly >= rule.weekly_ratio))
    flagged = (known >= rule.min_days) & (on_work >= rule.min_kwh) & rhythm
    out = []
    for j in np.flatnonzero(flagged):
        how = (f"{work_share[j]:.0%} of workday use in working hours" if has_share[j]
               else f"workdays use {weekly[j]:.1f}x rest days")
        out.append({
            "row": rows[j], "rule": "unregistered_load", "first_day": state.dates[state.days - rule.days].date(),
            "days": int(known[j]), "value_kwh": float(values[j, -1]), "baseline_kwh": float(on_work[j]),
            "work_share": float(work_share[j]), "weekly_ratio": float(weekly[j]),
            "recent_kwh": [round(float(v), 1) for v in values[j, -7:]],
            **_evidence(
                f"本网格没有登记企业，但这台变压器像工厂一样用电：近 {rule.days} 天工作日每天约 {kwh_zh(on_work[j])}，"
                + (f"{work_share[j]:.0%} 的用电在上班时间" if has_share[j] else f"工作日用电是休息日的 {weekly[j]:.1f} 倍"),
                f"no registered enterprise in this cell; median workday use {on_work[j]:.0f} kWh/day over {rule.days} days, {how}"),
        })
    return pd.DataFrame(out) if out else _empty_flags()


def stopped(state: PowerState, fleet: Fleet, calendar: WorkCalendar, rule: StoppedRule, use: EnterpriseUse | None = None) -> pd.DataFrame:
    """Operating enterprises at a small fraction of their usual use for ``workdays`` working days: one row per
    episode running tonight, or ending tonight because use came back ("resumed")."""
    use = use or enterprise_use(state, fleet)
    daily, first_row = use.daily, use.first_row
    status = fleet.status()[first_row]
    rows = np.flatnonzero(status == "operating")
    if not len(rows):
        return _empty_flags()
    working = calendar.workday & ~calendar.festival
    values = daily[rows]
    usual = row_quantile(np.where(working, values, np.nan), 0.9)
    ep = _stop_episodes(values, usual, working, rule)
    # The usual use is that of the days before the stop, so that a long stop does not lower it.
    again = np.flatnonzero(ep.first >= 0)  # only an episode changes what "before the stop" is
    before = np.where(working & (np.arange(state.days) < ep.first[again, None]), values[again], np.nan)
    enough = np.isfinite(before).sum(axis=1) >= 5
    if enough.any():
        again = again[enough]
        usual[again] = row_quantile(before[enough], 0.9)
        part = _stop_episodes(values[again], usual[again], working, rule)
        ep.active[again], ep.was_active[again], ep.first[again], ep.days[again] = part.active, part.was_active, part.first, part.days
    state_of = ep.state
    out = []
    for j in np.flatnonzero((state_of != "") & (usual >= rule.min_kwh)):
        first_day = state.dates[ep.first[j]].date()
        if state_of[j] == "ended":
            episode = "resumed"
            evidence = (f"use back at {rule.resume_fraction:.0%} or more of its usual {usual[j]:.0f} kWh/day on {rule.resume_days} working days "
                        f"after {int(ep.days[j])} working days at or below {rule.fraction:.0%} since {first_day}: resumed")
        else:
            episode = state_of[j]
            evidence = (f"{int(ep.days[j])} working days at or below {rule.fraction:.0%} of its usual "
                        f"{usual[j]:.0f} kWh/day, since {first_day} (Spring Festival season not counted)")
        out.append({
            "row": first_row[rows[j]], "rule": "stopped", "first_day": first_day, "episode": episode,
            "days": int(ep.days[j]), "baseline_kwh": float(usual[j]), "value_kwh": float(values[j, -1]),
            "recent_kwh": [round(float(v), 1) for v in values[j, -7:]],
            **_evidence(
                (f"已恢复用电：自 {first_day:%m月%d日} 起停了 {int(ep.days[j])} 个工作日后，用电回到平常每天 {kwh_zh(usual[j])} 的一半以上"
                 if episode == "resumed" else
                 f"自 {first_day:%m月%d日} 起连续 {int(ep.days[j])} 个工作日几乎不用电"
                 f"（不到平常每天 {kwh_zh(usual[j])} 的 {rule.fraction:.0%}），可能已停产或搬走"),
                evidence),
        })
    return pd.DataFrame(out) if out else _empty_flags()


def _stop_episodes(values: np.ndarray, usual: np.ndarray, working: np.ndarray, rule: StoppedRule) -> Episodes:
    known = np.isfinite(values)
    low = known & working & (values <= (rule.fraction * usual)[:, None])
    back = known & working & (values >= (rule.resume_fraction * usual)[:, None])
    middle = known & working & ~low & ~back
    return scan_episodes(low, known & working & ~low, back, middle, np.zeros(len(values), int), rule.workdays, rule.resume_days)


def silent_meters(state: PowerState, fleet: Fleet, closed: np.ndarray, rule: SilentRule) -> pd.DataFrame:
    """Transformers without a usable day total for ``rule.days`` days in a row up to the ring's last day (running
    episodes), or with one again tonight after such a spell (ended). At a closed enterprise a meter that stops
    reporting is itself suspicious, and the evidence says so."""
    # Days on which no transformer at all has a usable total (no readings file: a supply problem, not a
    # meter's) neither count nor end a silence.
    supplied = np.flatnonzero(np.isfinite(state.daily).any(axis=0))
    if not len(supplied) or supplied[-1] != state.days - 1:
        return _empty_flags()  # tonight has no readings at all: nothing to say about single meters
    known = np.isfinite(state.daily[:, supplied])
    w = len(supplied)
    # Supplied days without a total in a row, ending tonight and ending on the supplied day before.
    last_known = np.where(known.any(axis=1), w - 1 - np.argmax(known[:, ::-1], axis=1), -1)
    prev_known = np.where(known[:, :-1].any(axis=1), w - 2 - np.argmax(known[:, -2::-1], axis=1), -1) if w > 1 else np.full(len(known), -1)
    tonight, last_night = w - 1 - last_known, w - 2 - prev_known
    silent_first = np.where(tonight >= rule.days, last_known + 1, prev_known + 1)
    ep = Episodes(tonight >= rule.days, last_night >= rule.days, supplied[np.clip(silent_first, 0, w - 1)],
                  np.where(tonight >= rule.days, tonight, last_night))
    state_of = ep.state
    status = fleet.status()
    out = []
    for r in np.flatnonzero(state_of != ""):
        first_day, days, episode = state.dates[ep.first[r]].date(), int(ep.days[r]), state_of[r]
        at_zh = {"closed": "已关停企业，请核查是否在偷偷用电生产", "moved": "登记为已搬迁的企业，请核查是否在偷偷用电生产",
                 "rectifying": "正在整改的企业，请核查是否在偷偷用电生产"}.get(status[r], "")
        zh = (f"电表恢复上报：此前自 {first_day:%m月%d日} 起 {days} 天没有读数" if episode == "ended" else
              f"电表自 {first_day:%m月%d日} 起 {days} 天没有可用读数（其他变压器有读数）" + (f"，{at_zh}" if at_zh else ""))
        at = {"closed": "a closed enterprise: check it is not running unmetered",
              "moved": "an enterprise registered as moved: check it is not running unmetered",
              "rectifying": "an enterprise under rectification: check it is not running unmetered"}.get(status[r], "")
        since = "at least " if ep.first[r] == supplied[0] else ""
        evidence = (f"readings again tonight after {days} day(s) without, since {first_day}" if episode == "ended" else
                    f"no usable readings on {since}{days} day(s) with readings from other transformers, since {first_day}"
                    + (f", at {at}" if at else ""))
        out.append({"row": r, "rule": "silent_meter", "first_day": first_day, "days": days, "episode": episode,
                    "value_kwh": float(state.daily[r, -1]), "recent_kwh": [round(float(v), 1) for v in state.daily[r, -7:]],
                    **_evidence(zh, evidence)})
    return pd.DataFrame(out) if out else _empty_flags()


SITE_COLUMNS = [
    "site_id", "day", "rule", "rule_zh", "rule_en", "evidence", "evidence_zh", "evidence_en", "enterprise_id", "name", "address", "industry", "status",
    "status_date", "grade", "transformer_id", "transformers", "first_day", "days", "episode", "episode_zh", "episode_rank", "value_kwh", "floor_kwh", "threshold_kwh",
    "pre_closure_kwh", "baseline_kwh", "ratio", "required_reduction", "achieved_reduction", "warning_level", "warning_id",
    "work_share", "weekly_ratio", "recent_kwh", "chart_start", "chart_kwh", "cell_id", "cell_name", "county_code",
    "lon", "lat", "geometry",
]


def find_sites(state: PowerState, fleet: Fleet, warnings: pd.DataFrame, rules: SiteRules = SiteRules()) -> tuple[gpd.GeoDataFrame, PowerState]:
    """Every rule on ``state`` (ending on the run's day): the sites (``SITE_COLUMNS``, EPSG:4326) and the
    state with any newly learnt floors (to be stored).

    kWh columns are kWh per Beijing day; ``warnings`` times are UTC
    (``readers.power.read_warnings``).

    Example::

        fleet, warnings, skips, _ = load_fleet(config, grid)
        sites, state = find_sites(state.advance(use), fleet, warnings, site_rules(config.electricity))
        sites[["site_id", "rule", "evidence"]]
    """
    day = state.end
    before, after = rules.festival_days
    calendar = WorkCalendar.cached(state.dates[0].date(), state.days, festival_before=before, festival_after=after)
    closed = closure_days(fleet, day)
    state = learn_floors(state, closed, rules.resurgence, calendar)
    use = enterprise_use(state, fleet)
    # Rules without a scan of their own are run on the ring ending last night as well: their episode is new,
    # continuing or ended by comparison, from the ring alone (a rebuilt state gives the same).
    last_night = replace(state, end=day - dt.timedelta(days=1), daily=state.daily[:, :-1], work_share=state.work_share[:, :-1])
    calendar_before = replace(calendar, workday=calendar.workday[:-1], holiday=calendar.holiday[:-1], makeup=calendar.makeup[:-1],
                              festival=calendar.festival[:-1])
    use_before = EnterpriseUse(use.ids, use.daily[:, :-1], use.first_row)
    found = [
        resurgence(state, closed, calendar, rules.resurgence),
        _compared(noncompliance(state, fleet, calendar, warnings, rules.noncompliance, rules.reduction, use),
                  noncompliance(last_night, fleet, calendar_before, warnings, rules.noncompliance, rules.reduction, use_before)),
        _compared(unregistered_load(state, fleet, calendar, rules.unregistered),
                  unregistered_load(last_night, fleet, calendar_before, rules.unregistered)),
        stopped(state, fleet, calendar, rules.stopped, use),
        silent_meters(state, fleet, closed, rules.silent),
    ]
    if not any(len(f) for f in found):
        return empty_sites(), state
    flags = pd.concat([f for f in found if len(f)], ignore_index=True)
    return _site_frame(flags, state, fleet, use), state


def _compared(tonight: pd.DataFrame, last_night: pd.DataFrame) -> pd.DataFrame:
    """Tonight's flags as new or continuing episodes, and last night's that are gone as ended ones."""
    if not len(tonight) and not len(last_night):
        return tonight
    before = set(last_night["row"]) if len(last_night) else set()
    now = tonight.assign(episode=["continuing" if r in before else "new" for r in tonight["row"]]) if len(tonight) else tonight
    if len(now) and len(last_night):
        earlier = last_night.set_index("row")
        cont = now["episode"].eq("continuing").to_numpy()
        now.loc[cont, "first_day"] = earlier.loc[now.loc[cont, "row"], "first_day"].to_numpy()
        if "days" in now:
            now.loc[cont, "days"] = np.maximum(now.loc[cont, "days"].to_numpy(int), earlier.loc[now.loc[cont, "row"], "days"].to_numpy(int) + 1)
    gone = last_night[~last_night["row"].isin(set(now["row"]) if len(now) else set())] if len(last_night) else last_night
    if len(gone):
        gone = gone.assign(episode="ended", evidence="no longer met tonight; last night: " + gone["evidence"].astype(str))
    parts = [p for p in (now, gone) if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else _empty_flags()


ENTERPRISE_RULES = ("noncompliance", "stopped")  # judged on the sum of an enterprise's transformers
ONE_PER_ENTERPRISE = ("resurgence",)  # judged per transformer, listed once per enterprise (its transformers named)


def _site_frame(flags: pd.DataFrame, state: PowerState, fleet: Fleet, use: EnterpriseUse) -> gpd.GeoDataFrame:
    """Flags (one row each, ``row`` = the state row of the transformer that fired or the enterprise's first)
    with the registry's facts, the location, and the 60-day chart; new episodes first.

    Built column by column from arrays (one frame at the end): a replay
    writes hundreds of these.
    """
    t = fleet.transformers
    rows = flags["row"].to_numpy(dtype=int)
    rule = flags["rule"].astype(str).to_numpy(object)
    per_enterprise = np.isin(rule, ENTERPRISE_RULES)
    tid = t["transformer_id"].to_numpy(object)[rows]
    registered = t["registered"].to_numpy(bool)[rows]
    eid = np.where(registered, t["enterprise_id"].to_numpy(object)[rows], "").astype(object)
    per_site = per_enterprise | (np.isin(rule, ONE_PER_ENTERPRISE) & (eid != ""))
    site_id = (pd.Series(rule, dtype=object) + ":" + pd.Series(np.where(per_site, eid, tid), dtype=object)).to_numpy(object)
    episode = flags["episode"].fillna("new").astype(str).to_numpy(object) if "episode" in flags else np.full(len(rows), "new", object)
    rank = np.array([EPISODES.index(e) for e in episode], dtype="int64")
    first_day = pd.to_datetime(flags["first_day"]).to_numpy("datetime64[D]")
    transformers = tid.copy()
    if per_enterprise.any():
        members = fleet.cached("members", lambda: t[t["registered"]].groupby("enterprise_id")["transformer_id"].agg(",".join))
        transformers[per_enterprise] = pd.Series(eid[per_enterprise]).map(members).to_numpy(object)
    # One site per enterprise and rule episode: of several transformers, the one whose episode is newest,
    # then earliest, stands for the enterprise, and all of them are named.
    keep = np.arange(len(rows))
    if len(set(site_id)) < len(site_id):
        order = np.lexsort((tid.astype(str), first_day, rank, site_id.astype(str)))
        first_of = np.r_[True, site_id[order][1:] != site_id[order][:-1]]
        named = pd.Series(tid).groupby(site_id).agg(lambda ids: ",".join(sorted(set(ids))))
        several = per_site & ~per_enterprise
        transformers[several] = named.reindex(site_id[several]).to_numpy(object)
        keep = np.sort(order[first_of])
    # Pages list new episodes first, then by rule and site.
    keep = keep[np.lexsort((site_id[keep].astype(str), [RULES.index(r) for r in rule[keep]], rank[keep]))]
    rows, per_enterprise = rows[keep], per_enterprise[keep]
    out: dict[str, object] = {column: flags[column].to_numpy()[keep] for column in flags.columns if column in SITE_COLUMNS}
    eid = eid[keep]
    reg = fleet.cached("registry_by_id", lambda: fleet.registry.set_index("enterprise_id"))
    where = reg.index.get_indexer(eid)
    for column in ("name", "address", "industry", "status", "status_date", "grade"):
        values = reg[column].to_numpy(object)
        out[column] = np.where(where >= 0, values[np.maximum(where, 0)], None) if len(values) else np.full(len(rows), None, object)
    days = min(CHART_DAYS, state.days)
    enterprise_rows = use.row_of(pd.Series(eid, dtype=object))
    out.update({
        "site_id": site_id[keep], "rule": rule[keep], "transformer_id": tid[keep], "enterprise_id": eid, "transformers": transformers[keep],
        "episode": episode[keep], "episode_rank": rank[keep], "episode_zh": np.array([EPISODE_LABELS[e][0] for e in episode[keep]], object),
        "rule_zh": np.array([RULE_LABELS[r][0] for r in rule[keep]], object), "rule_en": np.array([RULE_LABELS[r][1] for r in rule[keep]], object),
        "day": np.full(len(rows), state.end, object), "first_day": first_day[keep],
        "chart_kwh": [(use.daily[e] if whole else state.daily[r])[-days:].astype("float32").tolist()
                      for e, r, whole in zip(enterprise_rows, rows, per_enterprise)],
        "chart_start": np.full(len(rows), state.dates[-days].date(), object),
    })
    for column in ("lon", "lat", "cell_id", "cell_name", "county_code"):
        out[column] = t[column].to_numpy()[rows]
    columns = {}
    for column in SITE_COLUMNS[:-1]:
        value = out.get(column, np.full(len(rows), np.nan))
        if column in _DTYPES:
            value = pd.array(value, dtype=_DTYPES[column]) if _DTYPES[column] == "string" else np.asarray(value, dtype=_DTYPES[column])
        elif column in _DATES:
            value = pd.Series(pd.to_datetime(pd.Series(value, dtype=object), errors="coerce")).dt.date.to_numpy(object)
        columns[column] = value
    frame = pd.DataFrame(columns)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=WGS84)


_TEXT = ("site_id", "rule", "rule_zh", "episode", "episode_zh", "rule_en", "evidence", "evidence_zh", "evidence_en", "enterprise_id", "name", "address", "industry", "status",
         "grade", "transformer_id", "transformers", "warning_level", "warning_id", "cell_id", "cell_name", "county_code")
_NUMBERS = ("value_kwh", "floor_kwh", "threshold_kwh", "pre_closure_kwh", "baseline_kwh", "ratio", "required_reduction",
            "achieved_reduction", "work_share", "weekly_ratio", "lon", "lat")
_DTYPES = {**dict.fromkeys(_TEXT, "string"), **dict.fromkeys(_NUMBERS, "float64"), "days": "int64", "episode_rank": "int64"}
_DATES = ("day", "first_day", "status_date", "chart_start")


LEVEL_ZH = {"yellow": "黄色", "orange": "橙色", "red": "红色"}


def _evidence(zh: str, en: str) -> dict[str, str]:
    """A flag's evidence: plain Chinese for the supervisor, English for the analyst, and both (``evidence``)."""
    return {"evidence": f"{zh} {en}", "evidence_zh": zh, "evidence_en": en}


def _empty_flags() -> pd.DataFrame:
    return _no_flags().copy()


@functools.cache
def _no_flags() -> pd.DataFrame:
    return pd.DataFrame({"row": pd.Series([], dtype="int64"), "rule": pd.Series([], dtype="string"),
                         "first_day": pd.Series([], dtype=object), "days": pd.Series([], dtype="int64"),
                         "episode": pd.Series([], dtype="string"), "evidence": pd.Series([], dtype="string"),
                         "evidence_zh": pd.Series([], dtype="string"), "evidence_en": pd.Series([], dtype="string")})


def empty_sites() -> gpd.GeoDataFrame:
    """A sites frame with no rows (the run's ``sites.parquet`` when electricity is not configured)."""
    return _empty_sites().copy()


@functools.cache
def _empty_sites() -> gpd.GeoDataFrame:
    fleet = Fleet(pd.DataFrame({c: pd.Series([], dtype=object) for c in ("transformer_id", "enterprise_id", "lon", "lat", "cell_id", "cell_name", "county_code")}).assign(registered=pd.Series([], dtype=bool)),
                  pd.DataFrame({c: pd.Series([], dtype=object) for c in ("enterprise_id", "name", "address", "industry", "status", "status_date", "grade")}))
    state = PowerState.empty([], dt.date(2000, 1, 1), CHART_DAYS)
    return _site_frame(_empty_flags(), state, fleet, enterprise_use(state, fleet))
