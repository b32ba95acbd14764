"""The nightly run for one Beijing-time day D: fire points to flagged, attributed, mapped cells.

sources -> tidy fire frame -> attributed to grid cells -> window flags ->
written and drawn, into ``<out>/<D>/`` (see ``outputs``), with ``run.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dask
import geopandas as gpd
import pandas as pd

from pipelines import __version__
from pipelines.core.exceptions import RunError
from pipelines.core.manifest import file_record, skip_records, versions
from pipelines.core.outputs import staged_folder, write_atomic
from pipelines.core.runlog import RunLog
from pipelines.core.schema import CATEGORIES, WGS84, WINDOW_COLUMNS
from pipelines.core.settings import Config, ConfigError, PersistentConfig
from pipelines.core.skips import Skip
from pipelines.core.wording import t
from pipelines.field.night import FieldNight
from pipelines.fires.classify import classify, classify_events
from pipelines.fires.coverage import OBSERVED_LABELS, coverage_line, grid_coverage
from pipelines.fires.events import FusionTolerance, assign_events, events_table
from pipelines.fires.landcover import LandCoverError
from pipelines.fires.load import NO_ROWS, dedupe, expand_patterns, expand_tables, read_fires, read_table_fires
from pipelines.fires.persistent import FireHistory
from pipelines.fires.rasters import read_raster_fires
from pipelines.fires.readers.tables import TableFormat
from pipelines.fires.sources import Sources, load_sources
from pipelines.grid.attribution import PointIndex, attribute, footprints
from pipelines.grid.cells import load_counties, load_grid
from pipelines.power.electricity import (
    ElectricityError,
    SitesResult,
    nightly_sites,
    state_folder,
    store_state,
)
from pipelines.power.sites import empty_sites
from pipelines.publish.bulletin import write_bulletin
from pipelines.publish.daycounts import day_counts
from pipelines.publish.index import write_index
from pipelines.publish.maps import MapDay, add_home_link, cell_map_filename, map_options, overview_map, place_outlines, plan_map, save_map
from pipelines.publish.offlinetiles import MBTiles, OfflineTilesError, add_offline_basemap, export_tiles
from pipelines.publish.pages import STATIC_DIR
from pipelines.publish.report import partly_covered, report_table, write_report
from pipelines.publish.summary import grid_summary
from pipelines.publish.supervisors import write_supervisor_pages
from pipelines.windows.plan import cell_probes, patrol_plan, recent_event_counts
from pipelines.windows.sun import ClockWindows, flag_clock_windows

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PARTIAL = 3
PLAN_MAP_CELLS = 500
OVERVIEW_MAX_TILE_ZOOM = 10  # the overview's offline tiles stop here: a whole grid at street level would be millions  # cells drawn on plan.html; plan.csv lists them all


@dataclass
class RunResult:
    """What a finished run produced."""

    day: dt.date
    folder: Path  # <out>/<D>
    manifest: dict[str, object]
    skips: list[Skip] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "partial" if self.skips else "ok"

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.skips else EXIT_OK


def clock_windows(config: Config) -> ClockWindows:
    w = config.windows
    try:
        return ClockWindows(
            mode=w.mode,
            after_work_start_h=w.after_work_start_h,
            after_work_end_h=w.after_work_end_h,
            first_half_night_end=w.first_half_night_end,
            fixed_after_work=w.fixed_after_work,
            fixed_first_half_night=w.fixed_first_half_night,
        )
    except ValueError as exc:
        raise ConfigError(f"{config.source}: [windows] {exc}") from None


def run_nightly(
    config: Config,
    day: dt.date,
    *,
    out_root: Path | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    command: list[str] | None = None,
) -> RunResult:
    """Run the nightly job for Beijing date ``day``; returns what it wrote.

    Raises ``ConfigError`` or ``RunError`` (nothing written) when the run
    cannot be done; inputs that are only partly usable are skipped and listed
    in ``run.json``. ``scheduler`` is a dask.distributed address; None runs
    on local threads.

    Example::

        result = run_nightly(load_config("config.toml"), dt.date(2022, 6, 3), out_root=Path("out"))
        result.folder, result.status      # out/2022-06-03, "ok" or "partial"
    """
    started = dt.datetime.now(dt.UTC)
    timings: dict[str, float] = {}
    windows = clock_windows(config)
    out_root = Path(out_root) if out_root else config.output.dir
    base = config.base_dir
    with RunLog().collecting() as runlog:
        try:
            for note in config.notes:  # sections left out, once each: into run.log and run.json's warnings
                log.warning("%s", note)
            with _stage(timings, "load_grid", progress, f"读取网格 loading the grid {config.grid.path.name}"):
                counties = load_counties(config.counties)  # read once: names, the GCJ-02 check and the cell maps' outlines
                grid = load_grid(config.grid, counties)
            tables = expand_tables(config.fires.tables, base, day)
            # A file claimed by a [[fires.tables]] entry is read as that table only, not as a point product.
            claimed = {p for p, _ in tables}
            points = [p for p in expand_patterns(config.fires.points, base, day) if p not in claimed]
            files = _Inputs(points, expand_patterns(config.fires.rasters, base, day), tables, missing_fire_data(config, day))
            with _stage(timings, "load_sources", progress, "读取参考数据 loading land cover, plant lists, fire history, calendars"):
                sources = load_sources(config)
            run = _Run(config, day, grid, files, windows, sources, runlog, timings, scheduler, command, started, out_root, progress,
                       places=_places(counties, grid))
            # Reach the scheduler before anything is written.
            with _scheduler(scheduler, progress), staged_folder(out_root, day.isoformat()) as staging:
                result = _run(run, staging)
        except Exception as exc:
            exc.failure_log = _failure_log(out_root, day, runlog, exc)  # the CLI names it
            raise
    if config.alerts.enabled:  # once the day's folder is in place (the messages link to it); never fails the night
        from pipelines.publish.alerts import send_night_alerts

        send_night_alerts(config, result.folder, day, out_root)
    return result


def failure_log_path(out_root: Path, day: dt.date) -> Path:
    """Where a failed night leaves its records and traceback: ``OUT/state/failed/<D>.log`` (no day folder is written)."""
    return Path(out_root) / "state" / "failed" / f"{day.isoformat()}.log"


def _failure_log(out_root: Path, day: dt.date, runlog: RunLog, exc: BaseException) -> Path | None:
    """Write the failed night's records and traceback; its path, or None when even that cannot be written."""
    try:
        return write_atomic(failure_log_path(out_root, day), runlog.text + "".join(traceback.format_exception(exc)))
    except OSError:
        return None


@dataclass(frozen=True)
class _Inputs:
    points: list[Path]  # fire-point files
    rasters: list[Path]  # fire-mask rasters
    tables: list[tuple[Path, TableFormat]] = field(default_factory=list)  # agency tables, with their [[fires.tables]] entry
    missing: list[Skip] = field(default_factory=list)  # configured patterns that matched no file


def grid_cache_folder(out_root: Path) -> Path:
    """Where per-grid constants are kept between nights (``gridcache``): ``OUT/state/grid``."""
    return Path(out_root) / "state" / "grid"


def missing_fire_data(config: Config, day: dt.date) -> list[Skip]:
    """One skip per ``[fires]`` pattern that matches no file for ``day``.

    An expected file that is not there is "no data", never "no fires": the run
    goes on (electricity, pages) but ends partial, so that cron sees it.
    """
    skips = []
    entries = [("[fires] points", "points", config.fires.points), ("[fires] rasters", "rasters", config.fires.rasters)]
    entries += [(f"[[fires.tables]] #{i + 1}", "path", t.path) for i, t in enumerate(config.fires.tables)]
    for where, key, patterns in entries:
        for pattern in patterns:
            if not expand_patterns([pattern], config.base_dir, day):
                skips.append(Skip(where, f"no file matches {pattern.format(date=day)!r} (relative to {config.base_dir}): "
                                  "no fire data for this day, which is not the same as no fires", field=key))
    return skips


@dataclass(frozen=True)
class _Run:
    config: Config
    day: dt.date
    grid: gpd.GeoDataFrame
    files: _Inputs
    windows: ClockWindows
    sources: Sources
    log: RunLog  # this run's records: run.log and run.json's warnings
    timings: dict[str, float]
    scheduler: str | None
    command: list[str] | None
    started: dt.datetime
    out_root: Path
    progress: bool = False  # stage lines on stderr (a terminal, not --quiet)
    places: gpd.GeoDataFrame | None = None  # county outlines and names under the cell maps (maps.place_outlines)


def _run(run: _Run, staging: Path) -> RunResult:
    config, day, grid, files, timings = run.config, run.day, run.grid, run.files, run.timings
    log.info("gridwatch %s nightly run for %s: %d fire-point file(s), %d raster(s), %d agency table(s), %d grid cells",
             __version__, day, len(files.points), len(files.rasters), len(files.tables), len(grid))
    filters = {"bbox": config.region.bbox, "day": day, "min_confidence": config.fires.min_confidence}
    tables = f" and {len(files.tables)} table(s)" if files.tables else ""
    with _stage(timings, "read_fires", run.progress, f"读取火点 reading {len(files.points)} point file(s) and {len(files.rasters)} raster(s){tables}"):
        lazy = (read_fires(files.points, **filters) + read_raster_fires(files.rasters, cloud_window=config.fires.cloud_window, **filters)
                + read_table_fires(files.tables, **filters))
        points, skips, per_file = lazy.compute()
    skips = grid.attrs.get("skipped", []) + run.sources.plant_skips + files.missing + skips + _no_scans_of_the_day(files, per_file, day)
    for skip in skips:
        log.info("skipped %s", skip)
    if skips:
        log.warning("%d input row(s) or file(s) skipped; run.json lists them", len(skips))
    points, duplicates = dedupe(points)

    with _stage(timings, "attribute", run.progress, f"归属网格 attributing {len(points):,} fires to {len(grid):,} cells"):
        index = PointIndex.build(grid.geometry, cache=grid_cache_folder(run.out_root))
        fires = attribute(points, grid, index)
    with _timed(timings, "coverage"):
        coverage, coverage_skips, coverage_files = grid_coverage(files.rasters, grid, index, day)
    skips += coverage_skips
    for name, looks in coverage_files.items():
        per_file.setdefault(name, {}).update(looks)
    fires = flag_clock_windows(fires, run.windows)
    with _stage(timings, "windows", run.progress, "时段 before-rain and before-sowing windows"):
        for flags in (run.sources.before_rain(fires), run.sources.before_sowing(fires)):
            if flags is not None:
                fires = fires.drop(columns=[c for c in flags.columns if c in fires.columns]).join(flags)
        _log_unknown(fires)
    fires = gpd.GeoDataFrame(fires, geometry=gpd.points_from_xy(fires["lon"], fires["lat"]), crs=WGS84)
    fires["footprint"] = gpd.GeoSeries(
        footprints(fires["lon"].to_numpy(), fires["lat"].to_numpy(), fires["scan_km"].to_numpy(), fires["track_km"].to_numpy()),
        index=fires.index, crs=WGS84,
    )
    with _stage(timings, "classify", run.progress, f"分类 classifying {len(fires):,} fires"):
        try:
            fires = classify(fires, run.sources.classifier, day)
        except LandCoverError as exc:  # a block that could not be decoded: only the land cover is lost
            skips.append(Skip(str(config.classify.landcover.name), f"{exc}; every fire's land cover is unknown", field="landcover"))
            run = dataclasses.replace(run, sources=dataclasses.replace(
                run.sources, classifier=dataclasses.replace(run.sources.classifier, landcover=None)))
            fires = classify(fires, run.sources.classifier, day)
        skips += _unknown_landcover(fires)
        # Places the supervisors verified as other heat sources (pipelines.field) are masked like persistent ones.
        field = FieldNight.load(config, run.out_root, day)
        fires = field.mask(fires)
        skips += field.skips
    with _stage(timings, "events", run.progress, "火点事件 fusing observations into events"):
        fires["event_id"] = assign_events(fires, FusionTolerance(config.events.distance_km, config.events.max_gap_h))
        events = classify_events(events_table(fires), fires)
    with _stage(timings, "electricity", run.progress and config.electricity is not None, "用电 electricity sites"):
        power = _electricity(run, index)
    skips += power.skips
    sites = power.sites

    with _stage(timings, "write_tables", run.progress, "写出表格 writing fires, events, sites and the grid summary"):
        fires.to_parquet(staging / "fires.parquet", index=False, compression="zstd", write_covering_bbox=False)
        events.to_parquet(staging / "events.parquet", index=False, compression="zstd", write_covering_bbox=False)
        sites.to_parquet(staging / "sites.parquet", index=False, compression="zstd", write_covering_bbox=False)
        cells = sorted(set(_cells_to_map(fires)) | set(sites["cell_id"].dropna()))
        links = {c: f"maps/{cell_map_filename(c)}" for c in cells}
        summary = grid_summary(fires, grid, links, sites, coverage)
        summary.to_csv(staging / "grid_summary.csv", index=False, encoding="utf-8")
    with _stage(timings, "report", run.progress, "统计报表 report by province, city, county and cell"):
        land = run.sources.land(grid, index, grid_cache_folder(run.out_root))
        cropland = land["cropland_ha"] if land is not None else pd.Series(0.0, index=grid["cell_id"].to_numpy())
        history = {"previous_day": _events_of(run.out_root, day - dt.timedelta(days=1)), "last_year": _events_of(run.out_root, _year_before(day))}
        table = report_table(events, fires, grid, run.sources.counties, cropland, history, land,
                             verification=field.previous_day_results(history["previous_day"]))
        _log_landcover_gaps(table)
        language = config.maps.language
        day_totals = day_counts(fires, events, sites, cell_maps=len(cells))
        write_report(table, staging, day=day, title=t(f"秸秆焚烧日报 {day.isoformat()}", f"gridwatch daily report {day.isoformat()}", language),
                     language=language, home="index.html")
        write_bulletin(staging, table, sites, day_totals, day=day)
    with _stage(timings, "plan", run.progress, "巡查计划 tomorrow's patrol plan"):
        today = events.loc[events["category"] == "straw_suspect", "cell_id"].dropna().value_counts()
        plan = tomorrows_plan(config, run.sources, grid, day, cropland, run.out_root, today)
        write_plan(plan, grid, staging, day=day + dt.timedelta(days=1), map_kwargs=map_options(config.maps), home="index.html")
    with _timed(timings, "write_maps"):
        title = f"gridwatch {day.isoformat()}" + ("" if len(fires) else f" · 未观测到火点 no fires observed ({coverage_line(coverage)})")
        seen = dict(zip(coverage["cell_id"], coverage["observed"]))
        log.info("writing the overview map and %d cell maps", len(cells))
        shown = _MapProgress(len(cells) + 1, run.progress)
        # Every page loads Leaflet and our scripts from one shared folder (the folder opens offline as it is).
        static = staging / STATIC_DIR
        basemap = _offline_basemap(run, grid, cells, static, skips)
        overview = overview_map(fires, grid, title=title, cell_links=links, context=province_outlines(grid), events=events, sites=sites,
                                day_counts=day_totals, **map_options(config.maps))
        if basemap:
            add_offline_basemap(overview, basemap[0], STATIC_DIR, basemap[1])
        save_map(add_home_link(overview, "index.html", language), staging / "map.html", static=static)
        shown.step()
        (staging / "maps").mkdir()
        # The night grouped by cell once; county boundaries and names under every cell map.
        day_maps = MapDay(fires, grid, events=events, sites=sites, places=run.places)
        for cell in cells:
            cell_title = f"{title} · {OBSERVED_LABELS.get(seen.get(cell), '')}".rstrip(" ·")
            page = day_maps.cell_map(cell, title=cell_title, **map_options(config.maps))
            if basemap:
                add_offline_basemap(page, basemap[0], f"../{STATIC_DIR}", basemap[1])
            save_map(add_home_link(page, "../index.html", language), staging / links[cell], static=static)
            shown.step()
        shown.close()
        people = write_supervisor_pages(staging, grid, cells, day_maps.tasks, day=day, language=language, map_links=links,
                                        previous_sites=_site_ids_of(run.out_root, day - dt.timedelta(days=1)),
                                        headline=day_totals.headline(language), tokens=field.token, verified=field.verified)
        write_index(staging / "index.html", summary, day=day, title=title, fires=fires, events=events, language=language,
                    counts=day_totals, supervisor_links=people,
                    notices=run_notices(fires, [*files.points, *files.rasters, *(p for p, _ in files.tables)], per_file, skips, coverage))

    updated = None
    if config.persistent is not None and config.persistent.update:
        # Before the day's folder is in place: if this fails nothing is written. The history only
        # counts days before a run's date, so having added today's fires never changes today's result.
        with _stage(timings, "update_history", run.progress, "更新火点历史 updating the fire history"):
            updated = _update_history(config.persistent, fires)
    if power.state is not None:
        # Like the fire history: written before the day's folder is swapped in; the run for D
        # always starts from the state of D-1, so a rerun after a failed swap gives the same state.
        with _timed(timings, "store_state"):
            stored = store_state(power.state, state_folder(config, run.out_root), config.electricity.keep_states)
        power.inputs["state_written"] = str(stored)
    counts = _counts(fires, events, list(per_file.values()), duplicates, len(cells))
    counts["electricity"] = power.counts or None
    counts["day"] = day_totals.as_dict()  # what every page and the command line report (daycounts)
    counts["supervisor_pages"] = len(people)
    counts["verification"] = field.counts()
    log.info("%d fires on %s: %d in grid cells, %d outside any cell; %d cell maps", counts["fires"], day, counts["attributed"], counts["unattributed"], len(cells))
    listed, summary_skips = skip_records(skips)
    manifest = {
        "gridwatch": __version__,
        "date": day.isoformat(),
        "status": "partial" if skips else "ok",
        "exit_code": EXIT_PARTIAL if skips else EXIT_OK,
        "command": run.command or [],
        "started_utc": run.started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scheduler": run.scheduler or "local threads",
        "inputs": {
            "config": file_record(config.source) if config.source else None,
            "grid": {**file_record(config.grid.path), "cells": len(grid)},
            "fires": [{**file_record(p), **per_file.get(p.name, {})} for p in files.points],
            "rasters": [{**file_record(p), **per_file.get(p.name, {})} for p in files.rasters],
            "tables": [{**file_record(p), "entry": _entry_number(config, fmt), **per_file.get(p.name, {})} for p, fmt in files.tables],
            "plants": [{**file_record(pl.path), **c} for pl, c in zip(config.classify.industrial if config.classify else (), run.sources.plant_counts) if pl.path.exists()],
            "landcover": file_record(config.classify.landcover) if config.classify else None,
            "fire_history": {**(run.sources.history_record or {"path": str(config.persistent.path), "cells": 0}),
                             "cells_after_update": updated} if config.persistent is not None else None,
            "electricity": power.inputs or None,
        },
        "config": config.to_dict(),
        "versions": versions(),
        "counts": counts,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "warnings": run.log.warnings,
        "skipped": listed,
        "skipped_summary": summary_skips,
        "outputs": sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()) + ["run.json", "run.log"],
    }
    (staging / "run.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    (staging / "run.log").write_text(run.log.text, encoding="utf-8")
    return RunResult(day, run.out_root / day.isoformat(), manifest, skips)


def run_notices(fires: pd.DataFrame, read: list[Path], per_file: dict[str, dict], skips: list[Skip],
                coverage: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """What the start page must say before any count: missing fire data, a night without fires
    (and which files were read, and which cells the fire masks saw clear or under cloud),
    fires of unknown land cover, skipped input. ``(level, text)``."""
    notices: list[tuple[str, str]] = []
    missing = [s for s in skips if s.file.startswith(("[fires]", "[[fires.tables]]")) or s.reason == NO_ROWS]
    for skip in missing:
        notices.append(("warn", f"火点数据缺失 fire data missing: {skip}"))
    if fires.empty:
        listed = ", ".join(f"{p.name} ({per_file.get(p.name, {}).get('rows_read', 0)} 行 rows)" for p in read[:10])
        more = f" … +{len(read) - 10}" if len(read) > 10 else ""
        files = f"已读取 files read: {listed}{more}" if read else "未读取任何火点文件 no fire file was read"
        seen = f" {coverage_line(coverage)}." if coverage is not None else ""
        # Cells under cloud or not seen are not clean: a cloudy night must not read as a quiet one.
        # (Point files alone leave coverage unknown, and the text says so.)
        cloudy = coverage is not None and bool(coverage["observed"].isin(["cloud", "not_observed"]).any())
        notices.append(("warn" if missing or not read or cloudy else "info", f"今日未观测到火点 no fires observed.{seen} {files}"))
    unknown = int((fires["category"] == "unknown").sum()) if "category" in fires else 0
    if unknown:
        notices.append(("warn", f"{unknown} 个火点地类不明，未计入疑似秸秆焚烧 {unknown} fires of unknown land cover, "
                        "not counted as suspected straw burning (see run.json)"))
    others = len(skips) - len(missing)
    if others > 0:
        notices.append(("warn", f"{others} 条输入被跳过，详见 run.json {others} input rows, files or settings skipped: see run.json"))
    return notices


def _places(counties: gpd.GeoDataFrame, grid: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """County outlines and names around the grid, to draw under the cell maps."""
    west, south, east, north = grid.total_bounds
    return place_outlines(counties.cx[west - 0.5:east + 0.5, south - 0.5:north + 0.5])


def _offline_basemap(run: _Run, grid: gpd.GeoDataFrame, cells: list[str], static: Path, skips: list[Skip]) -> tuple[MBTiles, int] | None:
    """``[maps] offline_tiles`` copied around the mapped cells into ``static``: the file and the highest zoom copied.

    An MBTiles file that cannot be used is a skip: the maps are drawn without it.
    """
    name = run.config.maps.offline_tiles
    if not name:
        return None
    path = Path(name) if Path(name).is_absolute() else run.config.base_dir / name
    try:
        tiles = MBTiles.open(path)
    except OfflineTilesError as exc:
        skips.append(Skip(path.name, f"{exc}; the maps are drawn without the offline basemap", field="offline_tiles"))
        log.error("[maps] offline_tiles: %s", exc)
        return None
    by_id = grid.set_index("cell_id").geometry
    boxes = [tuple(by_id[c].bounds) for c in cells if c in by_id.index]
    counts = export_tiles(tiles, [(w - 0.02, s - 0.02, e + 0.02, n + 0.02) for w, s, e, n in boxes], static)
    overview = export_tiles(tiles, [tuple(grid.total_bounds)], static, max_zoom=OVERVIEW_MAX_TILE_ZOOM)
    log.info("offline basemap %s: %d tiles copied for %d cell maps (zoom %d-%d), %d for the overview",
             path.name, counts["tiles_written"], len(boxes), tiles.minzoom, counts["max_zoom_copied"], overview["tiles_written"])
    return tiles, counts["max_zoom_copied"]


def _no_scans_of_the_day(files: _Inputs, per_file: dict[str, dict], day: dt.date) -> list[Skip]:
    """A skip when raster files were found but none holds a scan of ``day``: no geostationary data that night."""
    if not files.rasters:
        return []
    other = sum(per_file.get(p.name, {}).get("scans_other_dates", 0) for p in files.rasters)
    if other < len(files.rasters):
        return []
    return [Skip("[fires] rasters", f"none of the {len(files.rasters)} raster file(s) holds a scan of {day.isoformat()} (Beijing date): "
                 "no fire-mask data for this day", field="rasters")]


def _entry_number(config: Config, fmt: TableFormat) -> int:
    """1-based position of a table's [[fires.tables]] entry, as config messages count them."""
    return next(i for i, t in enumerate(config.fires.tables, start=1) if t is fmt)


def _electricity(run: _Run, index: PointIndex) -> SitesResult:
    """The day's electricity sites; unusable electricity inputs make the run partial, not failed."""
    try:
        return nightly_sites(run.config, run.day, run.grid, run.out_root, index)
    except ElectricityError as exc:
        log.error("electricity sites not checked: %s", exc)
        return SitesResult(empty_sites(), skips=exc.skips or [Skip("[electricity]", str(exc))])


def tomorrows_plan(config: Config, sources: Sources, grid: gpd.GeoDataFrame, day: dt.date, cropland: pd.Series,
                   out_root: Path, today: pd.Series | None = None) -> pd.DataFrame:
    """The patrol plan for ``day`` + 1 (``plan.patrol_plan``): cells where a before-rain or
    before-sowing window is open then, ranked by cropland and the suspected straw-burning events of
    the last ``[plan] recent_days`` runs in ``out_root`` (``today``: per-cell counts of the run being
    written, which is not in ``out_root`` yet)."""
    tomorrow = day + dt.timedelta(days=1)
    probes = cell_probes(grid, tomorrow)
    earlier = recent_event_counts(out_root, day - dt.timedelta(days=1 if today is not None else 0),
                                  config.plan.recent_days - (1 if today is not None else 0), _read_events_table)
    recent = pd.concat([earlier, today]).groupby(level=0).sum() if today is not None else earlier
    return patrol_plan(grid, rain=sources.before_rain(probes, extra_h=24.0), sowing=sources.before_sowing(probes),
                       cropland_ha=cropland, recent_fires=recent)


def write_plan(plan: pd.DataFrame, grid: gpd.GeoDataFrame, folder: Path, *, day: dt.date, map_kwargs: dict | None = None,
               home: str | None = None) -> None:
    """``plan.csv`` (every open cell, ranked; UTF-8 with BOM; cropland to 0.1 ha, score to 0.001) and ``plan.html``
    (the first ``PLAN_MAP_CELLS`` on the map, the rest counted; a ranked table beside it). ``home``: relative link
    to the run's ``index.html`` (None: the page is not in a run's folder)."""
    plan.assign(cropland_ha=plan["cropland_ha"].round(1), score=plan["score"].round(3)).to_csv(
        folder / "plan.csv", index=False, encoding="utf-8-sig")
    kwargs = dict(map_kwargs or {})
    language = kwargs.get("language", "both")
    shown = plan.head(PLAN_MAP_CELLS)
    title = t(f"明日巡查计划 {day.isoformat()}", f"patrol plan {day.isoformat()}", language)
    m = plan_map(shown, grid, title=title, total=len(plan), **kwargs)
    # In a run's folder the page shares its static/; alone (`gridwatch plan`) it carries everything inside it.
    save_map(add_home_link(m, home, language) if home else m, folder / "plan.html", inline=home is None,
             static=folder / STATIC_DIR if home else None)


def _site_ids_of(out_root: Path, day: dt.date) -> set[str] | None:
    """The site ids of the run of ``day`` in ``out_root``; None when that run or its sites.parquet is not there."""
    path = Path(out_root) / day.isoformat() / "sites.parquet"
    if not path.is_file():
        return None
    try:
        return set(pd.read_parquet(path, columns=["site_id"])["site_id"].astype(str))
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: not read (%s); every electricity site counts as new", path, exc)
        return None


def _read_events_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path, columns=["cell_id", "category"])


def _log_unknown(fires: pd.DataFrame) -> None:
    """A warning in run.json for each window left unknown, with the commonest reasons."""
    for column, note in (("win_before_rain", "rain_note"), ("win_before_sowing", None)):
        unknown = fires[column].isna()
        if unknown.any() and len(fires):
            why = ""
            if note and note in fires:
                top = fires.loc[unknown, note].dropna().astype(str).value_counts().head(3)
                why = "; ".join(f"{reason} ({n})" for reason, n in top.items())
            log.warning("%s unknown for %d of %d fires%s", column, int(unknown.sum()), len(fires), f": {why}" if why else "")


def _unknown_landcover(fires: pd.DataFrame) -> list[Skip]:
    """A warning in run.json when fires could not be classified for lack of land cover: how many, and where.

    Fires in grid cells left unknown also make the run partial (one entry in
    ``skipped``): the configured land cover does not cover the grid, and a
    supervisor's straw-burning count would silently be too low.
    """
    unknown = fires[fires["category"] == "unknown"]
    if unknown.empty:
        return []
    where = unknown["province_name"].fillna("outside the grid").value_counts().head(5)
    places = ", ".join(f"{name} {n}" for name, n in where.items())
    log.warning("land cover unknown for %d of %d fires (category 'unknown', not counted as straw burning): %s; "
                "lon %.2f-%.2f, lat %.2f-%.2f: check that [classify] landcover covers the region",
                len(unknown), len(fires), places, unknown["lon"].min(), unknown["lon"].max(), unknown["lat"].min(), unknown["lat"].max())
    in_grid = int(unknown["cell_id"].notna().sum())
    if not in_grid:
        return []
    return [Skip("[classify] landcover", f"land cover unknown for {in_grid} fire(s) in grid cells: they are category 'unknown', "
                 "not straw_suspect; expected a land-cover raster that covers the grid", field="landcover")]


def _log_landcover_gaps(table: pd.DataFrame) -> None:
    """A warning in run.json naming the counties the land cover does not fully cover (their cropland is too low)."""
    counties = partly_covered(table)
    if counties.empty:
        return
    worst = counties.head(5)
    log.warning("the land-cover raster covers only part of %d counties (cropland and densities there are too low): %s",
                len(counties), ", ".join(f"{n} {c:.0%}" for n, c in zip(worst["name"], worst["landcover_coverage"])))


def _events_of(out_root: Path, day: dt.date) -> pd.DataFrame | None:
    """The events of an earlier run in the same output root, or None if it was not run."""
    path = out_root / day.isoformat() / "events.parquet"
    if not path.exists():
        return None
    try:
        return gpd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - an unreadable old run only loses the comparison
        log.warning("cannot read %s for the comparison: %s", path, exc)
        return None


def _year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _update_history(cfg: PersistentConfig, fires: pd.DataFrame) -> int:
    """Add the day's fires to the fire history file (under its lock, atomically; the same day twice changes nothing).

    Returns the number of cells in the history.
    """
    updated = FireHistory.add_to_file(cfg.path, fires, cfg.cell_m)
    log.info("fire history %s updated: %d cells", cfg.path, len(updated))
    return len(updated)


def province_outlines(grid: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One outline per province of the grid, simplified to ~1 km: the overview's offline backdrop."""
    provinces = grid[["province_name", "geometry"]].dissolve("province_name", as_index=False)
    provinces["geometry"] = provinces.simplify(0.01)
    return provinces.rename(columns={"province_name": "name"})


def _cells_to_map(fires: pd.DataFrame) -> list[str]:
    """Cells with a fire centred in them or reached by a fire's footprint."""
    touched = {c for cells in fires["cells_touched"] for c in cells}
    return sorted(touched | set(fires["cell_id"].dropna()))


def _counts(fires: pd.DataFrame, events: pd.DataFrame, per_file: list[dict], duplicates: int, cell_maps: int) -> dict[str, object]:
    def total(key: str) -> int:
        return int(sum(c.get(key, 0) for c in per_file))

    counts: dict[str, object] = {
        "fire_files": len(per_file),
        "raster_blocks_unreadable": total("blocks_unreadable"),
        "scans_other_dates": total("scans_other_dates"),
        "rows_read": total("rows_read"),
        "outside_region": total("outside_region"),
        "other_dates": total("other_dates"),
        "below_confidence": total("below_confidence"),
        "times_from_overpass": total("time_from_overpass"),
        "duplicates": duplicates,
        "fires": len(fires),
        "attributed": int(fires["cell_id"].notna().sum()),
        "unattributed": int(fires["cell_id"].isna().sum()),
        "on_cell_borders": int((fires["cells_touched"].map(len) > 1).sum()),
        "cells_with_fires": int(fires["cell_id"].nunique()),
        "cell_maps": cell_maps,
        "by_sensor": {str(k): int(v) for k, v in fires["sensor"].value_counts().sort_index().items()},
        "events": len(events),
        "events_seen_by_several_sensors": int(events["sensors"].str.contains(",").fillna(False).sum()),
        "fires_by_category": {c: int((fires["category"] == c).sum()) for c in CATEGORIES},
        "events_by_category": {c: int((events["category"] == c).sum()) for c in CATEGORIES},
    }
    for column in WINDOW_COLUMNS:
        flags = fires[column].astype("boolean")
        counts[column] = None if flags.isna().all() and len(flags) else int(flags.fillna(False).sum())
    return counts


class _MapProgress:
    """``writing maps 120/542`` on stderr, rewritten in place at most twice a second; silent unless ``show``."""

    def __init__(self, total: int, show: bool) -> None:
        self.total, self.show, self.done, self._shown_at = total, show, 0, 0.0

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.show and (now - self._shown_at >= 0.5 or self.done == self.total):
            self._shown_at = now
            sys.stderr.write(f"\rgridwatch: 写地图 writing maps {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.show and self.done:
            sys.stderr.write("\n")
            sys.stderr.flush()


@contextlib.contextmanager
def _stage(timings: dict[str, float], step: str, progress: bool, what: str) -> Iterator[None]:
    """``_timed``; with ``progress`` (a terminal, not --quiet) also a line on stderr when the stage
    starts and, when it took a second or more, how long it took. Never into run.log."""
    if progress:
        print(f"gridwatch: {what} …", file=sys.stderr, flush=True)
    with _timed(timings, step):
        yield
    if progress and timings[step] >= 1.0:
        print(f"gridwatch:   {timings[step]:.1f} s", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


@contextlib.contextmanager
def _scheduler(address: str | None, progress: bool) -> Iterator[None]:
    """Local threads by default; a dask.distributed cluster when given its address."""
    if address:
        from distributed import Client

        try:
            # The wait is dask's own setting, distributed.comm.timeouts.connect (30 s by default).
            client = Client(address, set_as_default=False)
        except OSError as exc:
            raise RunError(f"cannot reach dask scheduler at {address}: {exc}") from None
        with client, dask.config.set(scheduler=client):
            yield
        return
    with dask.config.set(scheduler="threads"):
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(out=sys.stderr, minimum=1.0):
                yield
        else:
            yield
