"""Replay a season: the nights ``first`` .. ``last`` in order, as separate nightly runs would have done them.

``--only electricity`` loads the grid, its point index, the registry,
transformer table and warning list once, keeps the state in memory from one
night to the next, and writes per night what the electricity part of a
nightly run writes: ``OUT/D/sites.parquet`` and ``OUT/D/run.json`` (status,
electricity counts, skips), and the state ``OUT/state/electricity/D.parquet``
(pruned to ``keep_states``, as each night does). The sites and states are
those of separate nightly runs (``tests/test_replay.py`` checks it); fires,
maps, report and plan are not made. Without ``--only``, or with ``--only
fires``, each night is a full ``run_nightly`` (fires: with ``[electricity]``
left out), which reads its inputs itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines import __version__
from pipelines.core.manifest import file_record, skip_records, versions
from pipelines.core.outputs import staged_folder
from pipelines.core.settings import Config
from pipelines.core.skips import Skip
from pipelines.grid.attribution import PointIndex
from pipelines.grid.cells import load_supervision_grid
from pipelines.power.electricity import ElectricityError, FleetInputs, load_fleet, nightly_sites, state_folder, store_state
from pipelines.power.sites import empty_sites
from pipelines.power.state import PowerState
from pipelines.run.nightly import EXIT_OK, EXIT_PARTIAL, run_nightly

log = logging.getLogger(__name__)

ONLY = ("electricity", "fires")


@dataclass
class ReplayResult:
    """Per night: its exit code (0 ok, 3 partial) and its count of sites; the wall time of the whole replay."""

    nights: list[dt.date] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    sites: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return max(self.exit_codes, default=EXIT_OK)


def replay(config: Config, first: dt.date, last: dt.date, *, out_root: Path | None = None, only: str | None = None,
           progress: bool = False, command: list[str] | None = None) -> ReplayResult:
    """Run the nights ``first`` .. ``last`` (Beijing dates) in order; see the module docstring for what is written.

    Example::

        result = replay(load_config("config.toml"), dt.date(2016, 1, 1), dt.date(2016, 3, 31), only="electricity")
        result.seconds, result.exit_code
    """
    if only not in (None, *ONLY):
        raise ValueError(f"only = {only!r}: expected one of {ONLY} or None")
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    out_root = Path(out_root) if out_root else config.output.dir
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    started = time.perf_counter()
    bar = _Progress(len(days), progress)
    result = ReplayResult()
    if only == "electricity":
        if config.electricity is None:
            raise ValueError(f"{config.source}: --only electricity needs an [electricity] section")
        night = _electricity_nights(config, out_root, command)
    else:
        cfg = dataclasses.replace(config, electricity=None) if only == "fires" else config

        def night(day: dt.date) -> tuple[int, int]:
            run = run_nightly(cfg, day, out_root=out_root, command=command)
            return run.exit_code, int((run.manifest["counts"].get("electricity") or {}).get("sites", 0))
    for day in days:
        code, sites = night(day)
        result.nights.append(day)
        result.exit_codes.append(code)
        result.sites.append(sites)
        bar.step(day, sites)
    bar.close()
    result.seconds = time.perf_counter() - started
    return result


def _electricity_nights(config: Config, out_root: Path, command: list[str] | None) -> Callable[[dt.date], tuple[int, int]]:
    """A function running one night's electricity part, holding the grid, index, fleet and state between nights."""
    grid = load_supervision_grid(config)
    index = PointIndex.build(grid.geometry)
    folder = state_folder(config, out_root)
    held: dict[str, object] = {}
    # The same for every night of the replay: computed once.
    same = {"config_record": file_record(config.source) if config.source else None, "config": config.to_dict(), "versions": versions()}
    try:
        held["fleet"] = FleetInputs(*load_fleet(config, grid, index))
    except ElectricityError as exc:  # every night is partial, as separate runs would be
        held["error"] = exc

    def night(day: dt.date) -> tuple[int, int]:
        started = dt.datetime.now(dt.UTC)
        state: PowerState | None = held.get("state")  # type: ignore[assignment]
        counts: dict[str, object] | None = None
        inputs: dict[str, object] | None = None
        if "error" in held:
            exc = held["error"]
            sites, skips, new_state = empty_sites(), exc.skips or [Skip("[electricity]", str(exc))], None  # type: ignore[union-attr]
        else:
            try:
                power = nightly_sites(config, day, grid, out_root, index, fleet_inputs=held["fleet"], state_before=state)  # type: ignore[arg-type]
                sites, skips, new_state, counts, inputs = power.sites, power.skips, power.state, power.counts, power.inputs
            except ElectricityError as exc:
                log.error("electricity sites of %s not checked: %s", day, exc)
                sites, skips, new_state = empty_sites(), exc.skips or [Skip("[electricity]", str(exc))], None
        with staged_folder(out_root, day.isoformat()) as staging:
            sites.to_parquet(staging / "sites.parquet", index=False, compression="zstd", write_covering_bbox=False)
            if new_state is not None:
                stored = store_state(new_state, folder, config.electricity.keep_states)
                inputs = {**(inputs or {}), "state_written": str(stored)}
            listed, summary = skip_records(skips)
            code = EXIT_PARTIAL if skips else EXIT_OK
            manifest = {
                "gridwatch": __version__, "date": day.isoformat(), "status": "partial" if skips else "ok", "exit_code": code,
                "command": command or [], "mode": "replay --only electricity: sites.parquet and the state only",
                "started_utc": started.isoformat(timespec="seconds"), "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "inputs": {"config": same["config_record"], "electricity": inputs},
                "config": same["config"], "versions": same["versions"], "counts": {"electricity": counts},
                "skipped": listed, "skipped_summary": summary, "outputs": ["sites.parquet", "run.json"],
            }
            (staging / "run.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        held["state"] = new_state  # a night without readings leaves no state: the next one catches up from the files
        return code, len(sites)

    return night


class _Progress:
    """One line on stderr, rewritten per night: nights done, the night, its sites, the time left."""

    def __init__(self, total: int, shown: bool) -> None:
        self.total, self.shown, self.done, self.start = total, shown and sys.stderr.isatty(), 0, time.perf_counter()

    def step(self, day: dt.date, sites: int) -> None:
        self.done += 1
        if not self.shown:
            return
        spent = time.perf_counter() - self.start
        left = spent / self.done * (self.total - self.done)
        width = 30
        filled = int(width * self.done / self.total)
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {day} {sites:>5} sites, "
              f"{spent:.0f} s, ~{left:.0f} s left", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def nights_table(result: ReplayResult) -> pd.DataFrame:
    """The replay's nights as a table (date, exit code, sites)."""
    return pd.DataFrame({"date": result.nights, "exit_code": result.exit_codes, "sites": result.sites})
