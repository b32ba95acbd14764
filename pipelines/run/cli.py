"""The ``gridwatch`` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import traceback
from pathlib import Path

from pipelines import __version__
from pipelines.core.exceptions import ConfigError, GridwatchError, RunError
from pipelines.core.files import expand_patterns
from pipelines.core.outputs import atomic_path, shared_lock, staged_folder
from pipelines.fires.persistent import build_history
from pipelines.fires.sources import load_sources
from pipelines.grid.cells import load_counties, load_supervision_grid, make_grid
from pipelines.publish.daycounts import DayCounts
from pipelines.publish.maps import map_options
from pipelines.run.config import load_config
from pipelines.run.nightly import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, grid_cache_folder, run_nightly, tomorrows_plan, write_plan
from pipelines.run.sitesetup import init_site

log = logging.getLogger("pipelines.run.cli")

DESCRIPTION = """\
gridwatch: satellite fire surveillance by supervision grid cell, for the
autumn-winter air-pollution campaigns (straw burning, 散乱污 sites).

Every morning, `gridwatch nightly` turns one day's satellite fire points
into a map per grid cell, so each grid supervisor (网格员) knows where to go.
"""

NIGHTLY_EPILOG = f"""\
The day is a Beijing-time calendar day (00:00-24:00 UTC+8): a fire at
23:30 Beijing time on D is in D's run even though it is 15:30 UTC.

Output, written all at once (a failed or killed run leaves the previous
output untouched): OUT/D/fires.parquet, events.parquet, grid_summary.csv,
sites.parquet, report.csv, report.html, bulletin.html (the day's 通报),
plan.csv, plan.html (tomorrow's patrol plan), index.html (start here),
map.html, maps/<cell file>.html, supervisors/<supervisor file>.html, static/
(the pages' shared scripts), run.json, run.log.

exit status:
  {EXIT_OK}  all inputs used
  {EXIT_PARTIAL}  partial: done, but some input files or rows were skipped (listed in run.json)
  {EXIT_FAILED}  failed: nothing written (the reason is on stderr)
  2  wrong command-line arguments

example:
  gridwatch nightly --date 2022-06-03 --config config.toml --out out
  gridwatch nightly --date yesterday --config /srv/gridwatch/config.toml   # from cron
"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    interactive = sys.stderr.isatty() and not args.quiet
    _setup_logging(interactive)
    try:
        return args.func(args, interactive)
    except GridwatchError as exc:
        print(f"gridwatch: error: {exc}{_details(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("gridwatch: interrupted; nothing written", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # the environment, not gridwatch: an output folder that cannot be made, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"gridwatch: error: {exc.strerror or exc}{where}; nothing written{_details(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug: the traceback is in the failure log, or here when there is none
        if getattr(exc, "failure_log", None) is None:
            traceback.print_exc(file=sys.stderr)
        print(f"gridwatch: failed ({type(exc).__name__}: {exc}); nothing written{_details(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _details(exc: BaseException) -> str:
    """Where a failed night left its records and traceback (``nightly.failure_log_path``), if anywhere."""
    path = getattr(exc, "failure_log", None)
    return f" (details: {path})" if path else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridwatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gridwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    nightly = commands.add_parser(
        "nightly",
        help="flag one day's fires by grid cell and draw the maps",
        description="Read the day's fire points, attribute them to grid cells, flag the 收工时/上半夜 windows, write tables and maps.",
        epilog=NIGHTLY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nightly.add_argument("--date", required=True, type=_date,
                         help="the Beijing-time day to process: YYYY-MM-DD, or 'yesterday' (the Beijing day before now; for cron)")
    _common(nightly)
    nightly.add_argument("--out", type=Path, help="output root (default: [output] dir of the config)")
    nightly.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 (default: local threads)")
    nightly.set_defaults(func=_nightly)

    init = commands.add_parser(
        "init",
        help="set up a site: starter config.toml, a grid over your counties, the reference data",
        description="Write a commented config.toml, a grid of square cells over the given counties or provinces "
        "(as make-grid), and copies of the reference data the nightly run needs (county layer, land cover, "
        "plant lists, crop calendars) into a site folder, plus an empty fires/ folder for the day's fire files.",
        epilog="example:\n  gridwatch init --counties 230102,230103 --cell-km 2 --dir mysite\n"
        "  gridwatch nightly --date 2023-04-05 --config mysite/config.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("--counties", type=_codes, default=(), help="comma-separated 6-digit county adcodes, e.g. 230102,230103")
    init.add_argument("--provinces", type=_codes, default=(), help="comma-separated 6-digit province adcodes, e.g. 230000,220000")
    init.add_argument("--cell-km", type=float, default=5.0, help="cell size in km (default: 5)")
    init.add_argument("--dir", type=Path, default=Path("."), help="the site folder (default: the current folder)")
    init.add_argument("--from-data", type=Path, metavar="DIR",
                      help="copy the reference data from DIR (same layout as the project's geodata/) instead of the installed package's")
    init.add_argument("--force", action="store_true", help="overwrite an existing config.toml and grid.parquet")
    init.add_argument("--quiet", action="store_true", help="print nothing but errors")
    init.set_defaults(func=_init)

    grid = commands.add_parser(
        "make-grid",
        help="generate a regular supervision grid clipped to county polygons",
        description="Cover the configured provinces' counties with square cells of N km "
        "(China Albers equal-area); a square on a county border becomes one cell per county.",
    )
    _common(grid)
    grid.add_argument("--cell-km", type=float, help="cell size in km (default: [make_grid] cell_km)")
    grid.add_argument("--provinces", type=_codes, help="comma-separated 6-digit province codes (default: [make_grid] provinces)")
    grid.add_argument("--counties", type=_codes, help="comma-separated 6-digit county codes (default: [make_grid] counties)")
    grid.add_argument("--out", type=Path, help="GeoParquet/GeoPackage/GeoJSON to write (default: [make_grid] out)")
    grid.set_defaults(func=_make_grid)

    history = commands.add_parser(
        "persistent",
        help="build the fire history that masks persistent heat sources",
        description="Read an archive of fire files (FIRMS CSV, earlier fires.parquet) and write, per 500 m cell, "
        "the days it burnt: places that burn on many days (plants, flares, landfills) are then not counted "
        "as straw burning.",
    )
    _common(history)
    history.add_argument("--archive", nargs="+", metavar="PATTERN", help="glob patterns of fire files (default: [persistent] archive)")
    history.add_argument("--out", type=Path, help="history file to write (default: [persistent] path)")
    history.set_defaults(func=_persistent)

    plan = commands.add_parser(
        "plan",
        help="tomorrow's patrol plan: cells where a before-rain or before-sowing window opens",
        description="List, for the day after --date, the grid cells where rain is expected (下雨前) or sowing is "
        "near (播种前), ranked by cropland and recent suspected straw burning, with a map. Writes "
        "OUT/plan-<D+1>/plan.csv and plan.html (all at once). The nightly run writes the same into OUT/D/.",
    )
    plan.add_argument("--date", required=True, type=_date, help="today, YYYY-MM-DD or 'today'/'yesterday' (Beijing time); the plan is for the next day")
    _common(plan)
    plan.add_argument("--out", type=Path, help="output root (default: [output] dir of the config)")
    plan.set_defaults(func=_plan)

    season = commands.add_parser(
        "replay",
        help="run the nights of a season in order (backfill), e.g. the electricity sites of a year",
        description="Run the nights --from .. --to in order, as separate nightly runs would, with a progress bar. "
        "--only electricity loads the grid, index and registry once, keeps the state in memory and writes per night "
        "OUT/D/sites.parquet, OUT/D/run.json and the state OUT/state/electricity/D.parquet (no fires, maps, report or plan; "
        "an existing OUT/D is replaced). --only fires runs full nights without [electricity]; no --only runs full nights.",
        epilog="example:\n  gridwatch replay --from 2015-01-01 --to 2016-09-30 --only electricity --config config.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    season.add_argument("--from", dest="first", required=True, type=_date, help="the first Beijing-time day, YYYY-MM-DD")
    season.add_argument("--to", dest="last", required=True, type=_date, help="the last Beijing-time day, YYYY-MM-DD")
    season.add_argument("--only", choices=("electricity", "fires"), help="run only this part of each night")
    _common(season)
    season.add_argument("--out", type=Path, help="output root (default: [output] dir of the config)")
    season.set_defaults(func=_replay)
    _field_commands(commands)
    return parser


def _field_commands(commands: argparse._SubParsersAction) -> None:
    """``alerts``, ``verify import`` and ``serve``: the field loop (pipelines.field)."""
    alerts = commands.add_parser(
        "alerts", help="send (or print) the messages of a finished night: supervisors, county officials, the operator",
        description="Send the messages of the night of --date through the channels of [alerts] (WeCom / DingTalk robots, "
        "mail); a message already sent for that day, recipient and channel is not sent again. --dry-run prints them.")
    alerts.add_argument("--date", required=True, type=_date, help="the night, YYYY-MM-DD or 'yesterday' (Beijing time)")
    _common(alerts)
    alerts.add_argument("--out", type=Path, help="output root (default: [output] dir of the config)")
    alerts.add_argument("--dry-run", action="store_true", help="print the messages instead of sending them")
    alerts.set_defaults(func=_alerts)

    verify = commands.add_parser("verify", help="supervisors' verification results (核查结果)")
    actions = verify.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "import", help="import verification files exported from supervisor pages into the store",
        description="Check each file (size, format, the supervisor's token, tasks of their own cells, not imported before) and "
        "store it whole, or refuse it whole with the reason. Exit 0: all imported; 3: some refused; 1: none imported.")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _common(load)
    load.add_argument("--out", type=Path, help="output root whose runs the tasks belong to (default: [output] dir)")
    load.set_defaults(func=_verify_import)

    serve = commands.add_parser(
        "serve", help="serve the output folder on an intranet and take verification posts",
        description="Serve the output folder read-only over HTTP and take verification files POSTed to /verify "
        "(the same checks as `verify import`). Bind to an intranet address; there is no TLS.")
    _common(serve)
    serve.add_argument("--out", type=Path, help="output root to serve (default: [output] dir)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.set_defaults(func=_serve)


def _alerts(args: argparse.Namespace, interactive: bool) -> int:
    from pipelines.publish.alerts import AlertError, send_night_alerts

    config = _load(args.config)
    out_root = args.out or config.output.dir
    folder = out_root / args.date.isoformat()
    if not (folder / "run.json").exists():
        raise RunError(f"no finished run of {args.date} in {out_root} (expected {folder / 'run.json'})")
    try:
        records = send_night_alerts(config, folder, args.date, out_root, dry_run=args.dry_run)
    except AlertError as exc:
        raise RunError(str(exc)) from None
    failed = [r for r in records if r.status == "failed"]
    for r in failed:
        print(f"gridwatch: alert to {r.recipient} on {r.channel} failed: {r.error}", file=sys.stderr)
    if records and (interactive or failed):
        sent = sum(r.status == "sent" for r in records)
        print(f"gridwatch: {sent} sent, {sum(r.status == 'already_sent' for r in records)} sent before, {len(failed)} failed "
              f"(recorded in {folder / 'run.json'})", file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK


def _verify_import(args: argparse.Namespace, interactive: bool) -> int:
    from pipelines.field.importer import import_files
    from pipelines.field.store import store_for

    config = _load(args.config)
    out_root = args.out or config.output.dir
    v = config.verification
    outcomes = import_files(args.files, out_root=out_root, store=store_for(v.store, out_root, config.base_dir),
                            secret_env=v.secret_env, max_bytes=v.max_file_kb * 1024)
    for outcome in outcomes:
        print(f"gridwatch: {outcome.message}", file=sys.stderr if outcome.result is None else sys.stdout)
    imported = sum(o.result is not None for o in outcomes)
    return EXIT_OK if imported == len(outcomes) else EXIT_PARTIAL if imported else EXIT_FAILED


def _serve(args: argparse.Namespace, interactive: bool) -> int:
    from pipelines.field.server import serve

    config = _load(args.config)
    serve(config, args.out or config.output.dir, args.host, args.port)
    return EXIT_OK


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config.toml"), help="configuration file (default: ./config.toml)")
    parser.add_argument("--quiet", action="store_true", help="no progress or info messages (implied when stderr is not a terminal, e.g. under cron)")


def _nightly(args: argparse.Namespace, interactive: bool) -> int:
    config = load_config(args.config)
    result = run_nightly(config, args.date, out_root=args.out, scheduler=args.scheduler, progress=interactive, command=sys.argv)
    counts = result.manifest["counts"]
    if result.skips:
        print(f"gridwatch: partial: {len(result.skips)} input row(s)/file(s) skipped, see {result.folder / 'run.json'}", file=sys.stderr)
    if interactive or result.skips:
        day = DayCounts(**counts["day"])
        print(f"gridwatch: {day.headline(config.maps.language)}; {day.cell_maps} cell maps; open {result.folder / 'index.html'}", file=sys.stderr)
    return result.exit_code


def _replay(args: argparse.Namespace, interactive: bool) -> int:
    from pipelines.run.replay import replay  # only this command needs it

    if args.last < args.first:
        raise RunError(f"--to {args.last} is before --from {args.first}")
    config = _load(args.config)
    if args.only == "electricity" and config.electricity is None:
        raise ConfigError(f"{config.source}: --only electricity needs an [electricity] section")
    result = replay(config, args.first, args.last, out_root=args.out, only=args.only, progress=interactive, command=sys.argv)
    partial = sum(code == EXIT_PARTIAL for code in result.exit_codes)
    if interactive or partial:
        print(f"gridwatch: {len(result.nights)} nights in {result.seconds:.1f} s, {partial} partial (see OUT/D/run.json)", file=sys.stderr)
    return result.exit_code


def _init(args: argparse.Namespace, interactive: bool) -> int:
    site = init_site(args.dir, counties=args.counties, provinces=args.provinces, cell_km=args.cell_km,
                     from_data=args.from_data, force=args.force)
    if not args.quiet:
        print(f"gridwatch: wrote {site.config} and {site.grid} ({site.cells} cells of {args.cell_km:g} km over {site.counties} {'county' if site.counties == 1 else 'counties'})\n"
              f"gridwatch: copied {len(site.copied)} reference files from {site.source} to {site.folder / 'data'}\n"
              f"gridwatch: next: put the day's FIRMS files in {site.folder / 'fires'} and run\n"
              f"  gridwatch nightly --date YYYY-MM-DD --config {site.config}")
    return EXIT_OK


def _load(path: Path):
    """The config, its notes (sections left out) logged as warnings; the nightly run logs them itself, into run.json."""
    config = load_config(path)
    for note in config.notes:
        log.warning("%s", note)
    return config


def _make_grid(args: argparse.Namespace, interactive: bool) -> int:
    config = _load(args.config)
    section = config.make_grid
    cell_km = args.cell_km or (section.cell_km if section else None)
    out = args.out or (section.out if section else None)
    provinces = args.provinces if args.provinces is not None else (section.provinces if section else ())
    counties = args.counties if args.counties is not None else (section.counties if section else ())
    wanted = [what for what, value in (("cell_km (--cell-km)", cell_km), ("out (--out)", out)) if not value]
    if section is None and not (provinces or counties):
        wanted.append("provinces or counties (--provinces, --counties)")
    if wanted:
        raise ConfigError(f"{config.source}: make-grid needs [make_grid] {', '.join(wanted)}")
    grid = make_grid(load_counties(config.counties), cell_km, provinces, counties)
    with atomic_path(out) as partial:
        if out.suffix.lower() in (".parquet", ".geoparquet"):
            grid.to_parquet(partial, compression="zstd", write_covering_bbox=False)
        else:
            grid.to_file(partial, driver={".gpkg": "GPKG", ".geojson": "GeoJSON"}.get(out.suffix.lower(), "GPKG"), engine="pyogrio")
    if interactive:
        print(f"gridwatch: wrote {len(grid)} cells of {cell_km:g} km to {out}", file=sys.stderr)
    return EXIT_OK


def _persistent(args: argparse.Namespace, interactive: bool) -> int:
    config = _load(args.config)
    if config.persistent is None:
        raise ConfigError(f"{config.source}: no [persistent] section")
    base = config.base_dir
    patterns = args.archive or list(config.persistent.archive)
    files = expand_patterns(patterns, base)
    if not files:
        raise RunError(f"no fire files match {patterns} (relative to {base})")
    history, skips = build_history(files, config.persistent.cell_m)
    out = args.out or config.persistent.path
    with shared_lock(out):
        history.write(out)
    for skip in skips:
        print(f"gridwatch: skipped {skip}", file=sys.stderr)
    if interactive:
        print(f"gridwatch: {len(history)} cells of {config.persistent.cell_m:g} m from {len(files)} file(s) written to {out}", file=sys.stderr)
    return EXIT_PARTIAL if skips else EXIT_OK


def _plan(args: argparse.Namespace, interactive: bool) -> int:
    config = _load(args.config)
    out_root = args.out or config.output.dir
    grid = load_supervision_grid(config)
    sources = load_sources(config)
    plan = tomorrows_plan(config, sources, grid, args.date, sources.cropland(grid, cache=grid_cache_folder(out_root)), out_root)
    tomorrow = args.date + dt.timedelta(days=1)
    with staged_folder(out_root, f"plan-{tomorrow.isoformat()}") as folder:
        write_plan(plan, grid, folder, day=tomorrow, map_kwargs=map_options(config.maps))
    if interactive:
        print(f"gridwatch: {len(plan)} cells to patrol on {tomorrow}; open {out_root / f'plan-{tomorrow}' / 'plan.html'}", file=sys.stderr)
    return EXIT_PARTIAL if sources.plant_skips else EXIT_OK


def _codes(text: str) -> tuple[str, ...]:
    codes = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in codes if not (len(c) == 6 and c.isdigit())]
    if bad:
        raise argparse.ArgumentTypeError(f"{', '.join(bad)}: expected 6-digit adcodes separated by commas")
    return codes


BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    """The Beijing calendar day at ``now`` (default: the current time), whatever the machine's time zone."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(BEIJING).date()


def _date(text: str, now: dt.datetime | None = None) -> dt.date:
    """``YYYY-MM-DD``, or ``today``/``yesterday`` in Beijing time (a cron job at 06:00 runs ``--date yesterday``)."""
    relative = {"today": 0, "yesterday": 1}.get(text.strip().lower())
    if relative is not None:
        return beijing_today(now) - dt.timedelta(days=relative)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD, 'today' or 'yesterday'") from None


def _setup_logging(interactive: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO if interactive else logging.ERROR)
    logging.getLogger("pipelines").addHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
