"""The electricity part of a nightly run: one new day of readings against the stored state -> sites.

The run for Beijing day D reads the state at the end of D-1, the readings of
D, the registry, transformer table and warning list as they are that night,
and writes the state at the end of D. Missing states are rebuilt by replaying
the days' readings (the first run replays ``history_days`` days).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from pipelines.core.exceptions import ElectricityError
from pipelines.core.files import expand_patterns
from pipelines.core.manifest import file_record, versions
from pipelines.core.outputs import shared_lock
from pipelines.core.settings import Config, ElectricityConfig
from pipelines.core.skips import Skip
from pipelines.grid.attribution import PointIndex
from pipelines.power.holidays import WorkCalendar, unknown_years
from pipelines.power.meters import DayUse, MeterLimits, day_use
from pipelines.power.readers import (
    PowerInputError,
    ReadingFormat,
    check_readings,
    read_readings,
    read_registry,
    read_transformers,
    read_warnings,
)
from pipelines.power.sites import (
    EPOCH,
    Fleet,
    SiteRules,
    closure_days,
    empty_sites,
    find_sites,
    learn_floors,
    locate_fleet,
)
from pipelines.power.state import PowerState, StateError, latest_state, prune_states, state_path

log = logging.getLogger(__name__)


@dataclass
class SitesResult:
    """What the electricity part of a run found and read."""

    sites: gpd.GeoDataFrame
    state: PowerState | None = None  # the state at the end of the day, to be stored
    counts: dict[str, object] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    inputs: dict[str, object] = field(default_factory=dict)


def reading_format(cfg: ElectricityConfig) -> ReadingFormat:
    """How ``[electricity]`` readings files are laid out (columns, interval minutes, time zone, label).

    Example::

        fmt = reading_format(config.electricity)
        fmt.slots                                  # intervals per Beijing day: 1 for daily totals
    """
    return ReadingFormat(cfg.transformer_column, cfg.time_column, cfg.value_column, cfg.interval_minutes, cfg.timezone,
                         cfg.label, cfg.values)


def site_rules(cfg: ElectricityConfig) -> SiteRules:
    """The thresholds of the four site rules from ``[electricity]`` (kWh/day, days, fractions 0-1).

    Example::

        rules = site_rules(config.electricity)
        rules.resurgence.ratio, rules.resurgence.min_excess_kwh
    """
    return SiteRules(cfg.resurgence, cfg.noncompliance, cfg.reduction, cfg.unregistered, cfg.stopped, cfg.festival_days, cfg.silent)


def meter_limits(cfg: ElectricityConfig) -> MeterLimits:
    """Coverage, capacity and working-hours limits of ``[electricity]`` for ``meters.day_use``."""
    return MeterLimits(cfg.min_coverage, cfg.max_kw, cfg.work_hours, cfg.kw_per_kva)


def state_folder(config: Config, out_root: Path) -> Path:
    cfg = config.electricity
    return cfg.state_dir if cfg is not None and cfg.state_dir is not None else out_root / "state" / "electricity"


def reading_files(cfg: ElectricityConfig, base: Path, day: dt.date) -> list[Path]:
    """The readings files of Beijing day ``day`` (patterns with {date}, {prev_date}, {next_date}).

    Patterns are relative to ``base`` (the config file's folder); a folder
    stands for its CSV and Parquet files.

    Example::

        files = reading_files(config.electricity, config.base_dir, dt.date(2022, 6, 3))
    """
    patterns = [p.replace("{prev_date}", (day - dt.timedelta(days=1)).isoformat())
                 .replace("{next_date}", (day + dt.timedelta(days=1)).isoformat())
                 .replace("{date}", day.isoformat()) for p in cfg.readings]
    found: list[Path] = []
    for path in expand_patterns(patterns, base):
        found += sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet")) if path.is_dir() else [path]
    return found


def load_fleet(config: Config, grid: gpd.GeoDataFrame, index: PointIndex | None = None) -> tuple[Fleet, pd.DataFrame, list[Skip], dict]:
    """Registry, transformers (located in the grid) and warnings of ``[electricity]``, with the rows skipped.

    Returns ``(fleet, warnings, skips, file records)``. Transformer positions
    are converted to WGS84 from ``transformers_crs`` and located in ``grid``
    (EPSG:4326); warning times are UTC.

    Example::

        fleet, warnings, skips, _ = load_fleet(config, grid)
        fleet.transformers[["transformer_id", "enterprise_id", "cell_id"]]
    """
    cfg = config.electricity
    try:
        registry, skips = read_registry(cfg.registry)
        transformers, more = read_transformers(cfg.transformers, cfg.transformers_crs)
        skips += more
        warnings = pd.DataFrame(columns=["warning_id", "level", "start_utc", "end_utc", "region"])
        if cfg.warnings is not None:
            warnings, more = read_warnings(cfg.warnings)
            skips += more
    except FileNotFoundError as exc:
        raise ElectricityError(f"[electricity]: {exc.filename}: file not found") from None
    except PowerInputError as exc:
        raise ElectricityError(f"[electricity]: {exc}", [exc.skip] if exc.skip else None) from None
    records = {name: {**file_record(path), "rows": rows} for name, path, rows in (
        ("registry", cfg.registry, len(registry)), ("transformers", cfg.transformers, len(transformers)),
        ("warnings", cfg.warnings, len(warnings))) if path is not None}
    # An enterprise id that the registry lacks (its row skipped, or a typo) is unknown, not "no enterprise":
    # such a transformer is never taken for an unregistered load (sites.unregistered_load needs an empty id).
    stray = (transformers["enterprise_id"] != "") & ~transformers["enterprise_id"].isin(set(registry["enterprise_id"]))
    skips += [Skip(cfg.transformers.name, f"enterprise id not in {cfg.registry.name} (its row skipped, or a typo?); "
                   "the transformer's use is kept but it is not judged as an unregistered load", row=int(r), field="enterprise_id")
              for r in transformers.loc[stray, "source_row"]]
    return locate_fleet(transformers, registry, grid, index), warnings, skips, records


@dataclass
class FleetInputs:
    """What ``load_fleet`` returns, loaded once by a replay of many nights."""

    fleet: Fleet
    warnings: pd.DataFrame
    skips: list[Skip]
    records: dict


def nightly_sites(config: Config, day: dt.date, grid: gpd.GeoDataFrame, out_root: Path, index: PointIndex | None = None, *,
                  fleet_inputs: FleetInputs | None = None, state_before: PowerState | None = None) -> SitesResult:
    """Sites of Beijing day ``day`` from ``[electricity]``; an empty result when it is not configured.

    Raises ``ElectricityError`` when the registry, transformer table or
    warning list is unusable, or the day has no readings file at all.

    Reads the state of ``day`` - 1 from ``state_folder(config, out_root)``,
    or rebuilds it by replaying readings: ``history_days`` days, or further
    back to ``reference_days`` before the oldest closure in force (at most
    ``rebuild_max_days``), so that a rebuilt state gives the same sites as
    the night-by-night one; ``counts`` say from when and why. The state at
    the end of ``day`` is returned in ``.state``, **not written** (the
    nightly run writes it with :func:`store_state`). Sites are EPSG:4326.
    A replay passes the fleet it loaded once (``fleet_inputs``) and the
    state it holds (``state_before``, ending on ``day`` - 1).

    Example::

        result = nightly_sites(config, dt.date(2022, 6, 3), grid, Path(tempfile.mkdtemp()))
        result.sites[["site_id", "rule", "episode", "evidence"]]
        store_state(result.state, state_folder(config, out_root), config.electricity.keep_states)
    """
    cfg = config.electricity
    if cfg is None:
        return SitesResult(empty_sites())
    fmt, rules, limits = reading_format(cfg), site_rules(cfg), meter_limits(cfg)
    if fleet_inputs is None:
        fleet_inputs = FleetInputs(*load_fleet(config, grid, index))
    fleet, warnings, inputs = fleet_inputs.fleet, fleet_inputs.warnings, dict(fleet_inputs.records)
    skips = list(fleet_inputs.skips)
    files = reading_files(cfg, config.base_dir, day)
    if not files:
        raise ElectricityError(f"[electricity] readings: no file for {day} matches {list(cfg.readings)} (relative to {config.base_dir})")
    ids = pd.Index(fleet.transformers["transformer_id"], dtype=object)
    kva = fleet.transformers["kva"].to_numpy("float64")
    if state_before is not None and state_before.end == day - dt.timedelta(days=1):
        state, rebuild = state_before.reindex(ids).resized(cfg.history_days), Rebuild()
    else:
        state, rebuild = _state_before(state_folder(config, out_root), day, ids, cfg, fmt, limits, rules, fleet, config.base_dir)
    use = read_day(files, ids, day, fmt, limits, state.register_before(day), kva)
    state = state.advance(use)
    sites, state = find_sites(state, fleet, warnings, rules)
    unknown = unknown_years(state.dates[0].date(), state.end)
    if unknown:
        log.warning("chinesecalendar %s has no holidays for %s: those days are judged by weekday only (upgrade it)",
                    versions()["chinesecalendar"], ", ".join(map(str, unknown)))
    silent = sites[(sites["rule"] == "silent_meter") & (sites["episode"] != "ended")]
    if len(silent):
        log.warning("%d transformer(s) without usable readings for %d day(s) or more (silent_meter sites), e.g. %s",
                    len(silent), rules.silent.days, ", ".join(silent["transformer_id"].astype(str).head(5)))
    by_days = silent.sort_values(["days", "transformer_id"], ascending=[False, True]).head(SILENT_LISTED)
    counts = {**fleet.counts, **{k: v for k, v in use.counts.items() if k != "transformers"},
              "state_days_replayed": rebuild.replayed, "state_days_without_readings": rebuild.missing,
              "state_rebuilt_from": rebuild.first.isoformat() if rebuild.first else None, "state_rebuild_reason": rebuild.reason,
              "sites": len(sites), "sites_by_rule": {str(k): int(v) for k, v in sites["rule"].value_counts().items()},
              "sites_by_episode": {str(k): int(v) for k, v in sites["episode"].value_counts().items()},
              "silent_transformers": len(silent),
              "silent_transformer_days": {str(t): int(d) for t, d in zip(by_days["transformer_id"], by_days["days"])},
              "unmapped_transformer_ids": use.unmapped}
    if use.counts.get("unmapped_rows"):
        log.warning("%d readings of %d transformer(s) not in %s, e.g. %s", use.counts["unmapped_rows"], use.counts["unmapped_transformers"],
                    cfg.transformers.name, ", ".join(list(use.unmapped)[:5]))
    for key in ("files_unusable", "negative", "conflicting", "implausible", "meter_resets", "bad_time", "bad_value", "bad_id",
                "malformed_rows", "repeated_header", "days_too_incomplete"):
        if use.counts.get(key):
            log.warning("electricity readings of %s: %d %s", day, use.counts[key], key.replace("_", " "))
    inputs["readings"] = [file_record(p) for p in files]
    return SitesResult(sites, state, counts, skips + use.examples, inputs)


SILENT_LISTED = 100  # silent transformers listed by id in run.json (the longest silent first); all are in sites.parquet


def store_state(state: PowerState, folder: Path, keep: int) -> Path:
    """Write the day's state and prune old ones (all but the ``keep`` newest); returns its path.

    Example::

        path = store_state(result.state, state_folder(config, out_root), keep=7)
        PowerState.read(path).end                  # the run's Beijing date
    """
    path = state_path(folder, state.end)
    with shared_lock(folder / "states"):  # another night may be reading the newest state or pruning
        state.write(path)
        prune_states(folder, keep)
    return path


def read_day(files: list[Path], ids: pd.Index, day: dt.date, fmt: ReadingFormat, limits: MeterLimits,
             previous_register: np.ndarray | None = None, kva: np.ndarray | None = None) -> DayUse:
    """The use of Beijing day ``day`` from its readings ``files``, for the fleet ``ids`` (kWh per day, see ``meters.day_use``).

    A file that cannot be read at all (binary, empty, header only, a
    configured column missing) is left out with one skip in ``.examples``
    and counted in ``counts["files_unusable"]``; bad rows of the others lose
    only themselves. Raises ``ElectricityError`` (with the skips) when no
    file of the day is usable, so that the day is not taken as one without use.

    Example::

        use = read_day(reading_files(cfg, config.base_dir, day), ids, day, reading_format(cfg), MeterLimits())
        use.kwh, use.examples                      # kWh per transformer, the rows and files skipped
    """
    usable, skips = check_readings(files, fmt)
    if not usable:
        raise ElectricityError(f"[electricity] readings of {day}: no usable file ({'; '.join(str(s) for s in skips)})", skips)
    try:
        use = day_use(read_readings(usable, fmt), ids, day, fmt, limits=limits, previous_register=previous_register, kva=kva)
    except (OSError, ValueError) as exc:
        raise ElectricityError(f"[electricity] readings of {day}: {exc}", skips) from None
    use.counts["files_unusable"] = len(skips)
    use.examples = skips + use.examples
    return use


@dataclass(frozen=True)
class Rebuild:
    """How the state before a night was obtained: read (nothing replayed) or replayed from ``first``."""

    replayed: int = 0  # days replayed from readings
    missing: int = 0  # of those, days without a usable readings file (unknown)
    first: dt.date | None = None  # the first day replayed
    reason: str = ""  # why the replay started there


def rebuild_start(day: dt.date, fleet: Fleet, cfg: ElectricityConfig, rules: SiteRules) -> tuple[dt.date, str]:
    """The first day a state for the night of ``day`` must be replayed from, and why.

    ``history_days`` days fill the ring; a closure in force whose reference
    (``reference_days`` before it) lies further back makes the replay start
    there, so that its floor and reference are learnt from the same days as
    night by night; never more than ``rebuild_max_days`` back.
    """
    first = day - dt.timedelta(days=cfg.history_days)
    reason = f"history_days = {cfg.history_days}"
    closed = closure_days(fleet, day)
    if (closed > 0).any():
        oldest = EPOCH + dt.timedelta(days=int(closed[closed > 0].min()))
        needed = oldest - dt.timedelta(days=rules.resurgence.reference_days)
        if needed < first:
            limit = day - dt.timedelta(days=cfg.rebuild_max_days)
            first = max(needed, limit)
            reason = (f"the oldest closure in force ({oldest}) needs its {rules.resurgence.reference_days} days before"
                      + (f" (capped by rebuild_max_days = {cfg.rebuild_max_days})" if needed < limit else ""))
    return first, reason


def catch_up(state: PowerState, day: dt.date, fleet: Fleet, rules: SiteRules, use_of: Callable[[dt.date, PowerState], DayUse | None]) -> tuple[PowerState, int]:
    """``state`` advanced night by night to the end of ``day`` - 1, learning floors as each night does.

    ``use_of(d, state)`` gives the use of day ``d`` (None = unknown). Returns
    (state, days without use).
    """
    missing = 0
    d = state.end + dt.timedelta(days=1)
    before, after = rules.festival_days
    while d < day:
        use = use_of(d, state)
        if use is None:
            missing += 1
            use = DayUse.unknown(d, len(state.ids))
        state = state.advance(use)
        calendar = WorkCalendar.cached(state.dates[0].date(), state.days, festival_before=before, festival_after=after)
        state = learn_floors(state, closure_days(fleet, d), rules.resurgence, calendar)
        d += dt.timedelta(days=1)
    return state, missing


def _state_before(folder: Path, day: dt.date, ids: pd.Index, cfg: ElectricityConfig, fmt: ReadingFormat, limits: MeterLimits,
                  rules: SiteRules, fleet: Fleet, base: Path) -> tuple[PowerState, Rebuild]:
    """The state at the end of ``day`` - 1: read, or caught up (or rebuilt) by replaying the days' readings."""
    first, reason = rebuild_start(day, fleet, cfg, rules)
    state = None
    with shared_lock(folder / "states"):  # not while another night writes or prunes
        path = latest_state(folder, day)
        try:
            stored = PowerState.read(path) if path is not None else None
            if stored is not None and stored.end >= day - dt.timedelta(days=cfg.history_days + 1):
                state = stored.reindex(ids).resized(cfg.history_days)
                reason = f"caught up from the state of {stored.end}" if stored.end < day - dt.timedelta(days=1) else ""
        except StateError as exc:
            log.warning("%s; rebuilding the electricity history from readings", exc)
    if state is None:
        state = PowerState.empty(ids, first - dt.timedelta(days=1), cfg.history_days)
        log.info("no electricity state before %s in %s: replaying readings from %s (%s)", day, folder, first, reason)
    kva = fleet.transformers["kva"].to_numpy("float64")

    def use_of(d: dt.date, state: PowerState) -> DayUse | None:
        files = reading_files(cfg, base, d)
        try:
            return read_day(files, ids, d, fmt, limits, state.register_before(d), kva) if files else None
        except ElectricityError as exc:  # reported by that day's own run; here the day is unknown
            log.warning("electricity history: %s", exc)
            return None

    replayed_from = state.end + dt.timedelta(days=1)
    state, missing = catch_up(state, day, fleet, rules, use_of)
    replayed = (day - replayed_from).days
    if missing:
        log.warning("electricity history: %d of %d replayed day(s) before %s had no readings file", missing, replayed, day)
    return state, Rebuild(replayed, missing, replayed_from if replayed else None, reason if replayed else "")
