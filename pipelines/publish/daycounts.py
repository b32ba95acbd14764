"""The day's counts, defined once: what an official reports upwards.

The number that counts is **events of suspected straw burning** (疑似秸秆焚烧
起数): fused fires (``events.parquet``, one event = one fire seen by one or
more sensors) whose category is ``straw_suspect`` and whose cell
(``events.cell_id``) is a grid cell. Beside it, always, the **fire pixels**
(火点) behind them: ``fires.parquet`` rows of category ``straw_suspect``
centred in a grid cell. ``report.csv`` (``straw_suspect`` and ``straw_points``
summed over provinces), ``index.html``, ``map.html``, ``bulletin.html`` and the
command line's last line all show these same two numbers; ``run.json`` keeps
them under ``counts.day``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from pipelines.core.wording import t

STRAW = "straw_suspect"


def _in_grid(frame: pd.DataFrame) -> pd.Series:
    return frame["cell_id"].notna() if "cell_id" in frame else pd.Series(False, index=frame.index)


def _straw(frame: pd.DataFrame) -> pd.Series:
    return (frame["category"] == STRAW).fillna(False).astype(bool) if "category" in frame else pd.Series(False, index=frame.index)


@dataclass(frozen=True)
class DayCounts:
    """One day's counts (see the module docstring for the definitions)."""

    straw_events: int  # events of suspected straw burning in grid cells
    straw_fires: int  # their fire pixels: straw_suspect pixels centred in grid cells
    events: int  # all fire events in grid cells
    fires: int  # all fire pixels centred in grid cells
    fires_outside: int  # fire pixels centred outside every cell
    cells_with_straw: int  # cells with at least one suspected straw-burning event
    cells_with_fires: int  # cells with at least one fire pixel centred in them
    sites: int  # electricity sites flagged
    cell_maps: int = 0  # cell maps written (cells with a fire centred in, touching or a site)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def headline(self, language: str = "both") -> str:
        """The one sentence every page and the command line start with."""
        return t(
            f"疑似秸秆焚烧 {self.straw_events} 起（{self.straw_fires} 个火点），涉及 {self.cells_with_straw} 个网格",
            f"{self.straw_events} suspected straw-burning events ({self.straw_fires} fire pixels) in {self.cells_with_straw} cells",
            language,
        )

    def detail(self, language: str = "both") -> str:
        """The second line: all fires, outside the grid, electricity sites."""
        return t(
            f"全部火情 {self.events} 起（{self.fires} 个火点），网格外火点 {self.fires_outside} 个，用电异常 {self.sites} 处",
            f"all fire events {self.events} ({self.fires} fire pixels), {self.fires_outside} fire pixels outside the grid, "
            f"{self.sites} electricity sites",
            language,
        )


def day_counts(fires: pd.DataFrame, events: pd.DataFrame, sites: pd.DataFrame | None = None, cell_maps: int = 0) -> DayCounts:
    """The :class:`DayCounts` of a run's ``fires``, ``events`` and ``sites`` tables."""
    fire_in, event_in = _in_grid(fires), _in_grid(events)
    straw_events = events[event_in & _straw(events)]
    return DayCounts(
        straw_events=len(straw_events),
        straw_fires=int((fire_in & _straw(fires)).sum()),
        events=int(event_in.sum()),
        fires=int(fire_in.sum()),
        fires_outside=int((~fire_in).sum()),
        cells_with_straw=int(straw_events["cell_id"].nunique()),
        cells_with_fires=int(fires.loc[fire_in, "cell_id"].nunique()) if len(fires) else 0,
        sites=0 if sites is None else len(sites),
        cell_maps=cell_maps,
    )
