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

from .attribution import PointIndex
from .holidays import WorkCalendar
from .powerstate import PowerState
from .readers.power import LEVEL_RANK
from .schema import BEIJING_TZ, WGS84
from .wording import kwh_zh

RULES = ("resurgence", "noncompliance", "unregistered_load", "stopped")
RULE_LABELS = {
    "resurgence": ("死灰复燃", "closed site running again"),
    "noncompliance": ("应急减排未落实", "not cutting use during a warning"),
    "unregistered_load": ("疑似新增散乱污", "unregistered factory-like load"),
    "stopped": ("疑似停产或搬迁", "stopped or moved"),
}
CHART_DAYS = 60
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class ResurgenceRule:
    consecutive_days: int = 2  # k: days above the floor (rest days at the floor do not break the run)
    grace_days: int = 3  # days after the closure date before the floor is learnt (winding down)
    floor_days: int = 14  # days the floor is learnt from
    min_floor_days: int = 7  # known days needed among them
    floor_quantile: float = 0.9  # quantile (0-1) of those days that is the floor, kWh/day
    ratio: float = 3.0  # a day is above the floor at more than floor x ratio ...
    min_excess_kwh: float = 10.0  # ... and more than floor + this, kWh/day
    production_fraction: float = 0.2  # the run's median must reach this share (0-1) of the pre-closure workday median, when known
    min_work_share: float = 0.5  # 15-minute data: share (0-1) of the run's use in working hours


@dataclass(frozen=True)
class ComplianceRule:
    levels: tuple[str, ...] = ("orange", "red")  # warning levels that are checked
    grades: tuple[str, ...] = ("B", "C", "D")  # performance grades that are checked
    baseline_weeks: int = 4  # weeks of same-weekday history the baseline is the median of
    min_baseline_days: int = 2  # fewer same-weekday days: all days of the same kind in those weeks
    tolerance: float = 0.05  # flagged when the cut falls short of the requirement by more than this (0-1)
    min_baseline_kwh: float = 10.0  # kWh/day; smaller baselines are noise


@dataclass(frozen=True)
class GradeCuts:
    """Fraction (0-1) of baseline use each grade must cut; 1 = stop production."""

    A: float = 0.0
    B: float = 0.0
    C: float = 0.0
    D: float = 0.0
    leading: float = 0.0

    def of(self, grade: str) -> float:
        return float(getattr(self, grade, 0.0) or 0.0)


@dataclass(frozen=True)
class ReductionTable:
    yellow: GradeCuts = GradeCuts(B=0.1, C=0.2, D=0.3)
    orange: GradeCuts = GradeCuts(B=0.2, C=0.3, D=0.5)
    red: GradeCuts = GradeCuts(B=0.3, C=0.5, D=1.0)

    def required(self, level: str, grade: str) -> float:
        return getattr(self, level).of(grade)


@dataclass(frozen=True)
class UnregisteredRule:
    days: int = 28  # days of history the profile is taken over
    min_days: int = 14  # known days needed among them
    min_kwh: float = 50.0  # kWh/day: median workday use of a small factory
    weekly_ratio: float = 1.5  # daily data: workday median / rest-day median
    min_work_share: float = 0.55  # 15-minute data: share (0-1) of workday use in working hours (flat load: ~0.42)


@dataclass(frozen=True)
class StoppedRule:
    workdays: int = 10  # working days in a row at low use
    fraction: float = 0.05  # low = at most this fraction (0-1) of the usual (90th percentile) workday use
    min_kwh: float = 20.0  # kWh/day: usual use below this is too small to judge


@dataclass(frozen=True)
class SiteRules:
    resurgence: ResurgenceRule = ResurgenceRule()
    noncompliance: ComplianceRule = ComplianceRule()
    reduction: ReductionTable = ReductionTable()
    unregistered: UnregisteredRule = UnregisteredRule()
    stopped: StoppedRule = StoppedRule()
    festival_days: tuple[int, int] = (7, 15)  # the Spring Festival season: days before and after the official holiday


@dataclass
class Fleet:
    """Transformers (state order) with their enterprise, location and cell; enterprises of the registry."""

    transformers: pd.DataFrame  # transformer_id, enterprise_id, lon, lat, cell_id, county_code; registered (bool)
    registry: pd.DataFrame  # readers.power.read_registry
    counts: dict[str, int] = field(default_factory=dict)


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
    t["registered"] = t["enterprise_id"].isin(set(registry["enterprise_id"].astype(str)))
    counts = {"transformers": len(t), "transformers_outside_grid": int((~inside).sum()),
              "transformers_unregistered": int((~t["registered"]).sum()),
              "enterprises": len(registry), "enterprises_without_transformer": int((~registry["enterprise_id"].isin(t["enterprise_id"])).sum())}
    return Fleet(t, registry.reset_index(drop=True), counts)


def closure_days(fleet: Fleet, day: dt.date) -> np.ndarray:
    """Per transformer: the closure (or rectification) date in force on ``day``, days since 1970; 0 = none."""
    reg = fleet.registry.set_index("enterprise_id")
    status = fleet.transformers["enterprise_id"].map(reg["status"]).fillna("")
    since = fleet.transformers["enterprise_id"].map(reg["status_date"])
    deadline = fleet.transformers["enterprise_id"].map(reg["deadline"])
    since_days = _epoch_days(since)
    deadline_days = _epoch_days(deadline)
    today = (day - EPOCH).days
    rectifying = (status == "rectifying").to_numpy() & ((deadline_days == _NO_DATE) | (deadline_days >= today))
    in_force = status.isin(("closed", "moved")).to_numpy() | rectifying
    return np.where(in_force & (since_days != _NO_DATE) & (since_days <= today), since_days, 0).astype("int32")


_NO_DATE = np.iinfo("int64").min


def _epoch_days(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of ``datetime.date`` values; ``_NO_DATE`` where missing."""
    stamps = pd.to_datetime(dates, errors="coerce")
    return np.where(stamps.isna(), _NO_DATE, (stamps - pd.Timestamp(EPOCH)).dt.days.fillna(0).astype("int64"))


def learn_floors(state: PowerState, closed: np.ndarray, rule: ResurgenceRule) -> PowerState:
    """``state`` with the post-closure floor learnt wherever a closure has enough settled days.

    ``closed``: ``closure_days``. A floor is learnt once per closure, from
    the first ``floor_days`` days starting ``grace_days`` after it (or the
    oldest days of the ring for closures older than the ring), all before the
    ring's last day, and then kept.
    """
    ring_start = (state.dates[0].date() - EPOCH).days
    todo = np.flatnonzero((closed > 0) & (state.floor_for != closed))
    floor_kwh, floor_for = state.floor_kwh.copy(), state.floor_for.copy()
    # A new closure (or a reopened enterprise) forgets the old floor.
    floor_kwh[todo], floor_for[todo] = np.nan, 0
    if len(todo):
        first = np.maximum(closed[todo] - ring_start + rule.grace_days, 0)
        columns = first[:, None] + np.arange(rule.floor_days)
        complete = columns[:, -1] <= state.days - 2
        values = state.daily[todo[:, None], np.minimum(columns, state.days - 1)]
        known = np.isfinite(values).sum(axis=1)
        ok = complete & (known >= rule.min_floor_days)
        if ok.any():
            floors = row_quantile(values[ok], rule.floor_quantile)
            floor_kwh[todo[ok]] = floors.astype("float32")
            floor_for[todo[ok]] = closed[todo[ok]]
    floor_kwh[closed == 0], floor_for[closed == 0] = np.nan, 0
    return replace(state, floor_kwh=floor_kwh, floor_for=floor_for)


def resurgence(state: PowerState, closed: np.ndarray, calendar: WorkCalendar, rule: ResurgenceRule) -> pd.DataFrame:
    """Transformers of closed enterprises running again: one row per flagged transformer (state position ``row``)."""
    rows = np.flatnonzero((closed > 0) & (state.floor_for == closed) & np.isfinite(state.floor_kwh))
    if not len(rows):
        return _empty_flags()
    floor = state.floor_kwh[rows].astype("float64")
    threshold = np.maximum(floor * rule.ratio, floor + rule.min_excess_kwh)
    ring_start = (state.dates[0].date() - EPOCH).days
    settled = closed[rows] - ring_start + rule.grace_days + rule.floor_days  # first column after the floor was learnt
    values = state.daily[rows].astype("float64")
    above = values > threshold[:, None]
    count, first = _runs(above, values, calendar.workday & ~calendar.festival, np.maximum(settled, 0))
    flagged = count >= rule.consecutive_days
    if not flagged.any():
        return _empty_flags()
    before = _pre_closure_level(values, calendar, closed[rows] - ring_start)
    out = []
    for j in np.flatnonzero(flagged):
        streak = slice(first[j], state.days)
        run_values = values[j, streak][above[j, streak]]
        share = state.work_share[rows[j], streak][above[j, streak]]
        median = float(np.median(run_values))
        level_ok = not np.isfinite(before[j]) or median >= rule.production_fraction * before[j]
        share_ok = not np.isfinite(share).any() or float(np.nanmedian(share)) >= rule.min_work_share
        if not (level_ok and share_ok):
            continue
        out.append({
            "row": rows[j], "rule": "resurgence", "first_day": state.dates[first[j]].date(), "days": int(count[j]),
            "floor_kwh": float(floor[j]), "threshold_kwh": float(threshold[j]), "pre_closure_kwh": float(before[j]),
            "ratio": median / max(float(floor[j]), 1.0), "value_kwh": float(values[j, -1]),
            "recent_kwh": [round(float(v), 1) for v in run_values[-7:]],
            "work_share": float(np.nanmedian(share)) if np.isfinite(share).any() else np.nan,
            **_evidence(
                f"关停后又在用电：自 {state.dates[first[j]].date():%m月%d日} 起连续 {int(count[j])} 天超过关停后的正常水平"
                f"（约每天 {kwh_zh(floor[j])}），近期每天约 {kwh_zh(median)}"
                + (f"，相当于关停前的 {median / before[j]:.0%}" if np.isfinite(before[j]) and before[j] > 0 else ""),
                f"above its post-closure floor of {floor[j]:.0f} kWh/day (threshold {threshold[j]:.0f}) on {int(count[j])} "
                f"day(s) since {state.dates[first[j]].date()}, median {median:.0f} kWh/day"
                + (f" = {median / before[j]:.0%} of its use before closure" if np.isfinite(before[j]) and before[j] > 0 else "")),
        })
    return pd.DataFrame(out) if out else _empty_flags()


def _runs(high: np.ndarray, values: np.ndarray, workday: np.ndarray, earliest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Length and first column of each row's latest run of ``high`` days ending at the last column.

    A working day that is not high ends the run; rest days and unknown days
    that are not high neither end nor lengthen it. Columns before
    ``earliest`` (per row) are not looked at.
    """
    n, w = high.shape
    count = np.zeros(n, int)
    first = np.full(n, w, int)
    open_ = np.ones(n, bool)
    for c in range(w - 1, -1, -1):
        active = open_ & (c >= earliest)
        if not active.any():
            break
        hit = active & high[:, c]
        count[hit] += 1
        first[hit] = c
        breaks = active & ~high[:, c] & workday[c] & np.isfinite(values[:, c])
        open_ &= ~breaks & (c >= earliest)
    return count, first


def _pre_closure_level(values: np.ndarray, calendar: WorkCalendar, closure_column: np.ndarray, days: int = 28) -> np.ndarray:
    """Median workday use in the ``days`` before each row's closure, where the ring holds them; else NaN."""
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
    t = fleet.transformers
    codes, ids = pd.factorize(t["enterprise_id"].where(t["registered"].to_numpy()))
    rows = np.flatnonzero(codes >= 0)
    rows = rows[np.argsort(codes[rows], kind="stable")]
    if not len(rows):
        return EnterpriseUse(pd.Index([], dtype=object), np.zeros((0, state.days)), np.zeros(0, int))
    starts = np.flatnonzero(np.r_[True, codes[rows][1:] != codes[rows][:-1]])
    values = state.daily[rows]
    total = np.add.reduceat(np.nan_to_num(values.astype("float64")), starts, axis=0)
    unknown = np.logical_or.reduceat(~np.isfinite(values), starts, axis=0)
    return EnterpriseUse(pd.Index(ids, dtype=object), np.where(unknown, np.nan, total), rows[starts])


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
    t = fleet.transformers
    covered = set(t.loc[t["registered"], "cell_id"].dropna())
    # Only transformers registered to no enterprise (""): one whose enterprise id the registry lacks is unknown.
    rows = np.flatnonzero((~t["registered"] & (t["enterprise_id"] == "") & t["cell_id"].notna() & ~t["cell_id"].isin(covered)).to_numpy())
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
    """Operating enterprises at a small fraction of their usual use for ``workdays`` working days."""
    use = use or enterprise_use(state, fleet)
    ids, daily, first_row = use.ids, use.daily, use.first_row
    reg = fleet.registry.set_index("enterprise_id")
    status = pd.Series(ids, dtype=object).map(reg["status"]).fillna("").to_numpy()
    rows = np.flatnonzero(status == "operating")
    if not len(rows):
        return _empty_flags()
    working = calendar.workday & ~calendar.festival
    values = daily[rows]
    usual = row_quantile(np.where(working, values, np.nan), 0.9)
    low = values <= (rule.fraction * usual)[:, None]
    count, first = _runs(low & working, values, working, np.zeros(len(rows), int))
    flagged = (count >= rule.workdays) & (usual >= rule.min_kwh)
    out = []
    for j in np.flatnonzero(flagged):
        out.append({
            "row": first_row[rows[j]], "rule": "stopped", "first_day": state.dates[first[j]].date(),
            "days": int(count[j]), "baseline_kwh": float(usual[j]), "value_kwh": float(values[j, -1]),
            "recent_kwh": [round(float(v), 1) for v in values[j, -7:]],
            **_evidence(
                f"自 {state.dates[first[j]].date():%m月%d日} 起连续 {int(count[j])} 个工作日几乎不用电"
                f"（不到平常每天 {kwh_zh(usual[j])} 的 {rule.fraction:.0%}），可能已停产或搬走",
                f"{int(count[j])} working days in a row at or below {rule.fraction:.0%} of its usual "
                f"{usual[j]:.0f} kWh/day, since {state.dates[first[j]].date()} (Spring Festival season not counted)"),
        })
    return pd.DataFrame(out) if out else _empty_flags()


SITE_COLUMNS = [
    "site_id", "day", "rule", "rule_zh", "rule_en", "evidence", "evidence_zh", "evidence_en", "enterprise_id", "name", "address", "industry", "status",
    "status_date", "grade", "transformer_id", "transformers", "first_day", "days", "value_kwh", "floor_kwh", "threshold_kwh",
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
    calendar = WorkCalendar.build(state.dates[0].date(), state.days, festival_before=before, festival_after=after)
    closed = closure_days(fleet, day)
    state = learn_floors(state, closed, rules.resurgence)
    use = enterprise_use(state, fleet)
    found = [
        resurgence(state, closed, calendar, rules.resurgence),
        noncompliance(state, fleet, calendar, warnings, rules.noncompliance, rules.reduction, use),
        unregistered_load(state, fleet, calendar, rules.unregistered),
        stopped(state, fleet, calendar, rules.stopped, use),
    ]
    if not any(len(f) for f in found):
        return empty_sites(), state
    flags = pd.concat([f for f in found if len(f)], ignore_index=True)
    return _site_frame(flags, state, fleet, use), state


ENTERPRISE_RULES = ("noncompliance", "stopped")  # judged on the sum of an enterprise's transformers


def _site_frame(flags: pd.DataFrame, state: PowerState, fleet: Fleet, use: EnterpriseUse) -> gpd.GeoDataFrame:
    """Flags (one row each, ``row`` = the state row of the transformer that fired or the enterprise's first)
    with the registry's facts, the location, and the 60-day chart."""
    t = fleet.transformers
    reg = fleet.registry.set_index("enterprise_id")
    rows = flags["row"].to_numpy(dtype=int)
    out = flags.drop(columns=["row", "enterprise_id"], errors="ignore").reset_index(drop=True)
    per_enterprise = out["rule"].isin(ENTERPRISE_RULES).to_numpy(bool)
    out["transformer_id"] = t["transformer_id"].to_numpy()[rows]
    out["enterprise_id"] = np.where(t["registered"].to_numpy()[rows], t["enterprise_id"].to_numpy()[rows], "")
    flagged = t["registered"] & t["enterprise_id"].isin(set(out["enterprise_id"]))
    members = t[flagged].groupby("enterprise_id")["transformer_id"].agg(",".join)
    out["transformers"] = np.where(per_enterprise, out["enterprise_id"].map(members), out["transformer_id"])
    out["site_id"] = out["rule"] + ":" + np.where(per_enterprise, out["enterprise_id"], out["transformer_id"])
    for column in ("name", "address", "industry", "status", "status_date", "grade"):
        out[column] = out["enterprise_id"].map(reg[column])
    out["rule_zh"] = out["rule"].map(lambda r: RULE_LABELS[r][0])
    out["rule_en"] = out["rule"].map(lambda r: RULE_LABELS[r][1])
    out["day"] = state.end

    days = min(CHART_DAYS, state.days)
    enterprise_rows = use.row_of(out["enterprise_id"])
    out["chart_kwh"] = [
        (use.daily[e] if whole else state.daily[r])[-days:].astype("float32").tolist()
        for e, r, whole in zip(enterprise_rows, rows, per_enterprise)
    ]
    out["chart_start"] = state.dates[-days].date()
    for column in ("lon", "lat", "cell_id", "cell_name", "county_code"):
        out[column] = t[column].to_numpy()[rows]
    for column in SITE_COLUMNS:
        if column not in out and column != "geometry":
            out[column] = np.nan
    frame = gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out["lon"], out["lat"]), crs=WGS84)
    order = np.lexsort((frame["site_id"].to_numpy(str), frame["rule"].map(RULES.index).to_numpy()))
    return _typed(frame.iloc[order].reset_index(drop=True)[SITE_COLUMNS])


_TEXT = ("site_id", "rule", "rule_zh", "rule_en", "evidence", "evidence_zh", "evidence_en", "enterprise_id", "name", "address", "industry", "status",
         "grade", "transformer_id", "transformers", "warning_level", "warning_id", "cell_id", "cell_name", "county_code")
_NUMBERS = ("value_kwh", "floor_kwh", "threshold_kwh", "pre_closure_kwh", "baseline_kwh", "ratio", "required_reduction",
            "achieved_reduction", "work_share", "weekly_ratio", "lon", "lat")
_DTYPES = {**dict.fromkeys(_TEXT, "string"), **dict.fromkeys(_NUMBERS, "float64"), "days": "int64"}


def _typed(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fixed column types, so that every night's sites.parquet has the same schema."""
    frame = frame.astype(_DTYPES)
    for column in ("day", "first_day", "status_date", "chart_start"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


LEVEL_ZH = {"yellow": "黄色", "orange": "橙色", "red": "红色"}


def _evidence(zh: str, en: str) -> dict[str, str]:
    """A flag's evidence: plain Chinese for the supervisor, English for the analyst, and both (``evidence``)."""
    return {"evidence": f"{zh} {en}", "evidence_zh": zh, "evidence_en": en}


def _empty_flags() -> pd.DataFrame:
    return pd.DataFrame({"row": pd.Series([], dtype="int64"), "rule": pd.Series([], dtype="string")})


def empty_sites() -> gpd.GeoDataFrame:
    """A sites frame with no rows (the run's ``sites.parquet`` when electricity is not configured)."""
    return _empty_sites().copy()


@functools.cache
def _empty_sites() -> gpd.GeoDataFrame:
    fleet = Fleet(pd.DataFrame({c: pd.Series([], dtype=object) for c in ("transformer_id", "enterprise_id", "lon", "lat", "cell_id", "cell_name", "county_code")}).assign(registered=pd.Series([], dtype=bool)),
                  pd.DataFrame({c: pd.Series([], dtype=object) for c in ("enterprise_id", "name", "address", "industry", "status", "status_date", "grade")}))
    state = PowerState.empty([], dt.date(2000, 1, 1), CHART_DAYS)
    return _site_frame(_empty_flags(), state, fleet, enterprise_use(state, fleet))
