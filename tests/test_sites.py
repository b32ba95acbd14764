"""The electricity rules on real enterprise series.

The daily use is real: 38 enterprises of the Yangzhong high-tech zone
(tests/data/power/tianchi_subset_40users.csv). Registries, locations and
warnings are not public, so each test builds them over those series (one
transformer per enterprise, placed in 5 km cells of Yangzhong), and says which
real event it relies on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from pipelines.power.holidays import WorkCalendar
from pipelines.power.meters import DayUse
from pipelines.power.sites import (
    ComplianceRule,
    Fleet,
    ResurgenceRule,
    SiteRules,
    StoppedRule,
    find_sites,
    locate_fleet,
)
from pipelines.power.state import PowerState

ROOT = Path(__file__).resolve().parent.parent
SERIES = Path(__file__).resolve().parent / "data" / "power" / "tianchi_subset_40users.csv"
# Real shutdowns of the data set (first day at the floor, first day back in production).
SHUTDOWNS = {126: ("2015-06-03", "2016-02-24"), 232: ("2015-09-05", "2015-11-17"), 187: ("2015-12-31", "2016-03-01"),
             19: ("2016-07-04", "2016-08-09"), 200: ("2016-04-18", "2016-05-23")}
NEVER_RESTARTS = (20, "2016-04-01")  # at the floor from 2016-04-01 to the end of the data
NO_WARNINGS = pd.DataFrame({"warning_id": pd.Series([], dtype="string"), "level": pd.Series([], dtype="string"),
                            "start_utc": pd.Series([], dtype="datetime64[ns, UTC]"), "end_utc": pd.Series([], dtype="datetime64[ns, UTC]"),
                            "region": pd.Series([], dtype="string")})


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    """Real daily kWh, one column per enterprise (user id), one row per Beijing day."""
    frame = pd.read_csv(SERIES, parse_dates=["record_date"])
    return frame.pivot(index="record_date", columns="user_id", values="power_consumption").astype("float32")


@pytest.fixture(scope="module")
def yangzhong() -> gpd.GeoDataFrame:
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    return grid[grid["county_code"] == "321182"].sort_values("cell_id").reset_index(drop=True)


def fleet_of(users: list[int], cells: gpd.GeoDataFrame, *, closed: dict[int, str] | None = None, grades: dict[int, str] | None = None,
             unregistered: dict[int, int] | None = None) -> Fleet:
    """One transformer per user; registered users share cell 0, unregistered ones sit in the given cell index."""
    closed, grades, unregistered = closed or {}, grades or {}, unregistered or {}
    points = cells.representative_point()
    transformers = gpd.GeoDataFrame({
        "transformer_id": [f"T{u}" for u in users],
        "enterprise_id": ["" if u in unregistered else f"E{u}" for u in users],
    }, geometry=[points.iloc[unregistered.get(u, 0)] for u in users], crs="EPSG:4326")
    transformers["lon"], transformers["lat"] = transformers.geometry.x, transformers.geometry.y
    registered = [u for u in users if u not in unregistered]
    registry = pd.DataFrame({
        "enterprise_id": [f"E{u}" for u in registered], "name": [f"enterprise {u}" for u in registered], "address": "", "industry": "",
        "status": ["closed" if u in closed else "operating" for u in registered],
        "status_date": [dt.date.fromisoformat(closed[u]) if u in closed else None for u in registered],
        "deadline": None, "grade": [grades.get(u, "") for u in registered], "source_row": 0,
    })
    return locate_fleet(transformers, registry, cells)


def replay(daily: pd.DataFrame, users: list[int], fleet: Fleet, first: str, last: str, *, rules: SiteRules | None = None,
           warnings: pd.DataFrame = NO_WARNINGS, days: int = 90) -> Iterator[tuple[dt.date, gpd.GeoDataFrame]]:
    """Run the rules night after night, as the nightly run does: advance the state one day, find sites."""
    state = PowerState.empty([f"T{u}" for u in users], pd.Timestamp(first).date() - dt.timedelta(days=days + 1), days)
    for day, row in daily.loc[pd.Timestamp(state.end + dt.timedelta(days=1)): pd.Timestamp(last), users].iterrows():
        values = row.to_numpy()
        use = DayUse(day.date(), values, np.full(len(values), np.nan, "float32"), np.ones(len(values), "float32"), np.full(len(values), np.nan))
        sites, state = find_sites(state.advance(use), fleet, warnings, rules or SiteRules())
        if day >= pd.Timestamp(first):
            yield day.date(), sites


def test_real_restarts_are_flagged_within_k_days(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    users = [*SHUTDOWNS, NEVER_RESTARTS[0], 1, 2, 3]
    fleet = fleet_of(users, yangzhong, closed={u: start for u, (start, _) in SHUTDOWNS.items()} | {NEVER_RESTARTS[0]: NEVER_RESTARTS[1]})
    first_flag: dict[str, tuple[dt.date, dt.date, float]] = {}
    for day, sites in replay(daily, users, fleet, "2015-06-01", "2016-09-30"):
        for site in sites[sites["rule"] == "resurgence"].itertuples():
            first_flag.setdefault(site.transformer_id, (day, site.first_day, site.floor_kwh))
    assert set(first_flag) == {f"T{u}" for u in SHUTDOWNS}
    k = ResurgenceRule().consecutive_days
    for user, (_, restart) in SHUTDOWNS.items():
        flagged_on, first_day, floor = first_flag[f"T{user}"]
        assert first_day == dt.date.fromisoformat(restart)
        assert (flagged_on - first_day).days <= k - 1, user
        assert floor <= 3  # the real post-closure floor is 1 kWh/day


def test_k_is_honoured(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    users = [232]
    fleet = fleet_of(users, yangzhong, closed={232: "2015-09-05"})
    rules = SiteRules(resurgence=ResurgenceRule(consecutive_days=4))
    flagged = [day for day, sites in replay(daily, users, fleet, "2015-11-10", "2015-11-30", rules=rules) if len(sites)]
    # 2015-11-17 is a Tuesday: the fourth day back is Friday the 20th.
    assert flagged[0] == dt.date(2015, 11, 20)


def test_spring_festival_is_no_closure_nor_resurgence(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """Every enterprise that really dipped over Spring Festival 2016 (holiday 7-13 Feb) and was back at work
    in March, all registered as operating, is never flagged; 187, closed before the festival, is flagged
    only when it really restarts on 1 March."""
    usual = daily.loc["2016-01-04":"2016-01-22"].median()
    dipped = daily.loc["2016-02-07":"2016-02-13"].median() < 0.3 * usual
    march = daily.loc["2016-03-01":"2016-03-15"]
    back = march[march.index.day_of_week < 5].median() >= 0.5 * usual
    dippers = {f"T{u}" for u in daily.columns[dipped & back & (usual > 20)]}
    assert {"T171", "T200"} <= dippers and len(dippers) >= 5

    users = list(daily.columns)
    fleet = fleet_of(users, yangzhong, closed={187: "2015-12-31"})
    flagged: dict[str, set[str]] = {"stopped": set(), "resurgence": set()}
    for _, sites in replay(daily, users, fleet, "2016-01-25", "2016-03-31"):
        for rule in flagged:
            flagged[rule] |= set(sites.loc[sites["rule"] == rule, "transformer_id"])
    assert flagged["resurgence"] == {"T187"}
    assert not dippers & flagged["stopped"]


def test_without_the_festival_season_the_dips_would_be_closures(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """The control of the test above: the same data with no festival season flags 171's dip."""
    users = [171]
    fleet = fleet_of(users, yangzhong)
    rules = SiteRules(festival_days=(0, 0), stopped=StoppedRule(workdays=10))
    flagged = {day for day, sites in replay(daily, users, fleet, "2016-01-20", "2016-03-10", rules=rules) if (sites["rule"] == "stopped").any()}
    assert flagged


def test_real_long_stops_of_operating_enterprises_are_flagged(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    users = [126, 232, 20]
    fleet = fleet_of(users, yangzhong)
    first = {}
    for day, sites in replay(daily, users, fleet, "2015-06-01", "2016-09-30"):
        for site in sites[sites["rule"] == "stopped"].itertuples():
            first.setdefault(site.transformer_id, site.first_day)
    assert first == {"T126": dt.date(2015, 6, 3), "T232": dt.date(2015, 9, 6), "T20": dt.date(2016, 4, 1)}


def orange(start: str, end: str, region: str = "321182") -> pd.DataFrame:
    return pd.DataFrame({"warning_id": ["W1"], "level": ["orange"],
                         "start_utc": [pd.Timestamp(start, tz="Asia/Shanghai").tz_convert("UTC")],
                         "end_utc": [pd.Timestamp(end, tz="Asia/Shanghai").tz_convert("UTC")], "region": [region]})


def night_of(daily: pd.DataFrame, users: list[int], fleet: Fleet, day: str, warnings: pd.DataFrame, rules: SiteRules | None = None) -> gpd.GeoDataFrame:
    return next(sites for d, sites in replay(daily, users, fleet, day, day, warnings=warnings, rules=rules))


def same_weekday_baseline(daily: pd.DataFrame, user: int, day: str) -> float:
    """What the rule should find: the median of the four previous same weekdays (none of them a holiday here)."""
    previous = [pd.Timestamp(day) - pd.Timedelta(weeks=k) for k in range(1, 5)]
    return float(daily.loc[previous, user].median())


def with_use(daily: pd.DataFrame, day: str, use: dict[int, float]) -> pd.DataFrame:
    changed = daily.copy()
    for user, value in use.items():
        changed.loc[day, user] = value
    return changed


def test_noncompliance_by_grade_against_the_same_weekday(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """Real history up to Wednesday 2015-12-02; that day's use set to 78% of each baseline, as if each cut 22%."""
    users, day = [1, 2, 3, 5], "2015-12-02"
    baselines = {u: same_weekday_baseline(daily, u, day) for u in users}
    changed = with_use(daily, day, {u: 0.78 * b for u, b in baselines.items()})
    fleet = fleet_of(users, yangzhong, grades={1: "B", 2: "C", 3: "A", 5: "leading"})
    sites = night_of(changed, users, fleet, day, orange("2015-12-01 20:00", "2015-12-03 12:00"))
    flagged = sites[sites["rule"] == "noncompliance"].set_index("enterprise_id")
    # B must cut 20% and did; C must cut 30% and did not; A and leading decide for themselves.
    assert list(flagged.index) == ["E2"]
    e2 = flagged.loc["E2"]
    assert e2["baseline_kwh"] == pytest.approx(baselines[2])
    assert e2["achieved_reduction"] == pytest.approx(0.22, abs=1e-5)
    assert e2["required_reduction"] == pytest.approx(0.3) and e2["warning_level"] == "orange"
    assert "must cut 30%, cut 22%" in e2["evidence"]


def test_a_warning_covering_part_of_the_day_requires_part_of_the_cut(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    users, day = [2], "2015-12-02"
    uncut = with_use(daily, day, {2: same_weekday_baseline(daily, 2, day)})
    fleet = fleet_of(users, yangzhong, grades={2: "D"})
    sites = night_of(uncut, users, fleet, day, orange("2015-12-02 20:00", "2015-12-04 00:00"))
    assert sites["required_reduction"].tolist() == [pytest.approx(0.5 * 4 / 24)]
    assert night_of(uncut, users, fleet, day, orange("2015-12-01 00:00", "2015-12-04 00:00", region="13;41")).empty


def test_make_up_workday_baseline_is_workdays(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """Saturday 2015-10-10 was a make-up workday after National Day: its baseline is working days, not Saturdays."""
    users = [8]  # a real weekday rhythm: workdays use ~2.5x weekends
    fleet = fleet_of(users, yangzhong, grades={8: "D"})
    calendar = WorkCalendar.build(dt.date(2015, 10, 10), 1)
    assert calendar.workday[0] and calendar.makeup[0]
    sites = night_of(daily, users, fleet, "2015-10-10", orange("2015-10-10 00:00", "2015-10-11 00:00"))
    site = sites.iloc[0]
    assert "working days" in site["evidence"]
    saturdays = daily.loc[["2015-09-12", "2015-09-19", "2015-09-26"], 8].median()
    assert site["baseline_kwh"] > 1.5 * saturdays


def test_unregistered_factory_rhythm_in_empty_cells(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """Real users 8 and 22 work on weekdays; user 4 runs flat every day."""
    users = [1, 4, 8, 22]
    fleet = fleet_of(users, yangzhong, unregistered={4: 3, 8: 4, 22: 0})  # 22 shares cell 0 with registered enterprise 1
    sites = night_of(daily, users, fleet, "2016-09-01", NO_WARNINGS)
    flagged = sites[sites["rule"] == "unregistered_load"]
    assert list(flagged["transformer_id"]) == ["T8"]
    assert flagged["weekly_ratio"].iloc[0] >= 1.5 and flagged["enterprise_id"].iloc[0] == ""


def test_site_rows_carry_evidence_location_and_chart(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    users = [200]
    fleet = fleet_of(users, yangzhong, closed={200: "2016-04-18"})
    sites = night_of(daily, users, fleet, "2016-05-25", NO_WARNINGS)
    site = sites.iloc[0]
    assert site["rule"] == "resurgence" and site["cell_id"] == yangzhong["cell_id"].iloc[0]
    assert sites.crs == "EPSG:4326" and site.geometry.within(yangzhong.geometry.iloc[0])
    assert len(site["chart_kwh"]) == 60 and site["chart_start"] == dt.date(2016, 3, 27)
    assert site["chart_kwh"][-1] == daily.loc["2016-05-25", 200]
    assert site["recent_kwh"] == [float(v) for v in daily.loc["2016-05-23":"2016-05-25", 200]]
    assert "floor 1 kWh/day" in site["evidence"] and site["episode"] == "continuing" and site["first_day"] == dt.date(2016, 5, 23)


def test_compliance_rule_is_configurable(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    users, day = [2], "2015-12-02"
    uncut = with_use(daily, day, {2: same_weekday_baseline(daily, 2, day)})
    fleet = fleet_of(users, yangzhong, grades={2: "B"})
    warning = orange("2015-12-01 00:00", "2015-12-04 00:00")
    assert len(night_of(uncut, users, fleet, day, warning)) == 1
    rules = SiteRules(noncompliance=ComplianceRule(grades=("C", "D")))
    assert night_of(uncut, users, fleet, day, warning, rules).empty


def test_a_silent_meter_is_listed_and_its_closed_enterprise_named(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """Real use of 126 (closed since 2015-06-03) and 1, with 126's readings missing from 2015-08-03 to 2015-08-09."""
    users = [126, 1]
    gap = daily.copy()
    gap.loc["2015-08-03":"2015-08-09", 126] = np.nan
    fleet = fleet_of(users, yangzhong, closed={126: "2015-06-03"})
    seen = {day: sites[sites["rule"] == "silent_meter"] for day, sites in replay(gap, users, fleet, "2015-08-01", "2015-08-12")}
    assert all(seen[dt.date(2015, 8, d)].empty for d in (1, 2, 3, 4, 11, 12))
    new = seen[dt.date(2015, 8, 5)]
    assert list(new["transformer_id"]) == ["T126"] and list(new["episode"]) == ["new"] and new["first_day"].iloc[0] == dt.date(2015, 8, 3)
    assert "closed enterprise" in new["evidence"].iloc[0]
    assert list(seen[dt.date(2015, 8, 9)]["episode"]) == ["continuing"] and seen[dt.date(2015, 8, 9)]["days"].iloc[0] == 7
    assert list(seen[dt.date(2015, 8, 10)]["episode"]) == ["ended"]


def test_a_restart_the_day_after_the_closure_date_is_flagged_on_its_second_day(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """200 really restarted on 2016-05-23 after five weeks at 1 kWh/day; registered closed on 2016-05-22 (1 day before),
    2016-05-13 (10 days) or 2016-05-03 (20 days), it is flagged on the 24th, its second day of production."""
    for closure in ("2016-05-22", "2016-05-13", "2016-05-03"):
        fleet = fleet_of([200], yangzhong, closed={200: closure})
        flagged = [day for day, sites in replay(daily, [200], fleet, "2016-05-15", "2016-05-26") if (sites["rule"] == "resurgence").any()]
        assert flagged[0] == dt.date(2016, 5, 24), closure


def test_production_inside_the_learning_window_does_not_raise_the_floor(daily: pd.DataFrame, yangzhong: gpd.GeoDataFrame) -> None:
    """200 restarted 2015-12-12, 15 days after it stopped (2015-11-27): the old 90th-percentile floor of days closure+3 ..
    closure+16 learnt its production as 'closed'. Now the floor stays at its real 1 kWh/day and the restart is flagged."""
    fleet = fleet_of([200], yangzhong, closed={200: "2015-11-27"})
    sites = [s for _, s in replay(daily, [200], fleet, "2015-12-13", "2015-12-17")]  # it stopped again on the 18th
    assert all((s["rule"] == "resurgence").any() for s in sites)
    last = sites[-1][sites[-1]["rule"] == "resurgence"].iloc[0]
    assert last["floor_kwh"] <= 3 and last["pre_closure_kwh"] > 2000 and last["first_day"] == dt.date(2015, 12, 12)
