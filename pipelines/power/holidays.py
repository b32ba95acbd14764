"""China's working calendar: public holidays and make-up workdays (调休), from ``chinesecalendar``.

The State Council publishes each year's holidays in the December before, so
the library covers the years up to its release. For a year it does not cover,
days are judged by the weekday alone and ``WorkCalendar.unknown_years`` says
which years those were, so the run can warn (upgrade ``chinesecalendar``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import chinese_calendar
import numpy as np
import pandas as pd

SPRING_FESTIVAL = "Spring Festival"


@dataclass(frozen=True)
class WorkCalendar:
    """Day kinds of a run of consecutive Beijing dates ``start`` .. ``start + len - 1``.

    ``workday``: a working day (Monday-Friday that is no holiday, or a make-up
    Saturday/Sunday); ``holiday``: a public holiday; ``makeup``: a weekend
    day worked in lieu; ``festival``: the Spring Festival season, from
    ``festival_before`` days before the official holiday to
    ``festival_after`` days after it, when factories stop and restart
    gradually and low use is no sign of closure.

    Example::

        cal = WorkCalendar.build(dt.date(2022, 5, 30), 7)
        cal.kind()        # [..., "holiday"]: 2022-06-03 is the Dragon Boat Festival
    """

    start: dt.date
    workday: np.ndarray  # bool
    holiday: np.ndarray  # bool
    makeup: np.ndarray  # bool
    festival: np.ndarray  # bool
    unknown_years: tuple[int, ...] = ()

    @classmethod
    def build(cls, start: dt.date, days: int, *, festival_before: int = 7, festival_after: int = 15) -> WorkCalendar:
        dates = [start + dt.timedelta(days=i) for i in range(-festival_after, days + festival_before)]
        workday, holiday, makeup, spring = (np.zeros(len(dates), bool) for _ in range(4))
        unknown: set[int] = set()
        for i, day in enumerate(dates):
            try:
                workday[i] = chinese_calendar.is_workday(day)
                is_holiday, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                unknown.add(day.year)
                workday[i] = day.weekday() < 5
                continue
            holiday[i] = is_holiday and name is not None
            makeup[i] = workday[i] and day.weekday() >= 5
            spring[i] = holiday[i] and name == SPRING_FESTIVAL
        # The season reaches festival_before days ahead of and festival_after days beyond any festival day.
        window = np.ones(festival_before + festival_after + 1, int)
        festival = np.convolve(spring.astype(int), window, mode="full")[festival_before : festival_before + len(dates)] > 0
        keep = slice(festival_after, festival_after + days)
        in_range = {d.year for d in dates[keep]}
        return cls(start, workday[keep], holiday[keep], makeup[keep], festival[keep], tuple(sorted(unknown & in_range)))

    @classmethod
    def cached(cls, start: dt.date, days: int, *, festival_before: int = 7, festival_after: int = 15) -> WorkCalendar:
        """``build``, from whole years computed once per process (a replay asks for hundreds of shifted windows)."""
        years = range(start.year, (start + dt.timedelta(days=days - 1)).year + 1)
        parts = [_year(y, festival_before, festival_after) for y in years]
        offset = (start - dt.date(start.year, 1, 1)).days
        keep = slice(offset, offset + days)

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])[keep]

        unknown = tuple(sorted({y for p in parts for y in p.unknown_years}))
        return cls(start, joined("workday"), joined("holiday"), joined("makeup"), joined("festival"), unknown)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=len(self.workday), freq="D")

    def kind(self) -> list[str]:
        """``workday``, ``makeup`` (weekend worked in lieu), ``holiday`` or ``weekend``, per day."""
        return [
            "makeup" if m else "workday" if w else "holiday" if h else "weekend"
            for w, h, m in zip(self.workday, self.holiday, self.makeup)
        ]


@functools.lru_cache(maxsize=64)
def _year(year: int, festival_before: int, festival_after: int) -> WorkCalendar:
    first = dt.date(year, 1, 1)
    return WorkCalendar.build(first, (dt.date(year + 1, 1, 1) - first).days, festival_before=festival_before, festival_after=festival_after)


def work_calendar(dates: Sequence[dt.date] | pd.DatetimeIndex, **kwargs: int) -> WorkCalendar:
    """The ``WorkCalendar`` of consecutive ``dates``."""
    first = pd.Timestamp(dates[0]).date()
    return WorkCalendar.build(first, len(dates), **kwargs)


def unknown_years(first: dt.date, last: dt.date) -> tuple[int, ...]:
    """Years of ``first`` .. ``last`` whose holidays ``chinesecalendar`` does not know (one look-up per year)."""
    missing = []
    for year in range(first.year, last.year + 1):
        try:
            chinese_calendar.is_workday(dt.date(year, 1, 1))
        except NotImplementedError:
            missing.append(year)
    return tuple(missing)
