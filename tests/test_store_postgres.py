"""The verification store in PostgreSQL (and PostGIS where installed), against a real server the tests start.

One throwaway server for the module (tests/pgserver.py: initdb, 127.0.0.1 at a free
port, fsync off), a role with a password taken from PGPASSWORD (as a unit would keep
it out of config.toml) and its own database. A real night on three counties of the
sample grid gives the tasks; the supervisors' files are written in the format their
pages export (pipelines/field/marks.py; the export from the page itself is tested in
headless Chromium by test_field_loop.py). Each step is checked against the SQLite
store fed the same files: the two stores behave alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pgserver
import pytest
import test_nightly as nightly

from pipelines.core.exceptions import StoreError
from pipelines.core.settings import load_config
from pipelines.field.importer import import_files
from pipelines.field.marks import read_task_index, supervisor_token
from pipelines.field.night import FieldNight
from pipelines.field.store import VerificationStore
from pipelines.run.cli import main
from pipelines.run.nightly import EXIT_FAILED, EXIT_OK

ROOT = Path(__file__).resolve().parent.parent
NIGHT1, NIGHT2 = "2022-05-30", "2022-05-31"
COUNTIES = ["130224", "370112", "130533"]
SECRET = "test-secret-of-the-unit"
PASSWORD = "pw-of-the-gridwatch-role"
HEAT = SimpleNamespace(supervisor="滦南县网格员13", cell="130224_E1135_N4310", item="E2aab6e4e89070bac")  # fires again on 05-31
STRAW = SimpleNamespace(supervisor="历城区网格员4", cell="370112_E1065_N4000", item="E2ea672dbcdccd8e7")
MANY = "威县网格员14"  # six tasks on 05-30
NOTE = '<img src=x onerror="document.title=1">砖窑 kiln & 烟囱'
MAX_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[SimpleNamespace]:
    """The server, the role ``gridwatch`` owning database ``gridwatch`` (with PostGIS where the server has it) and
    ``plain`` (without)."""
    reason = pgserver.why_not()
    if reason:
        pytest.skip(f"PostgreSQL store tests need a server: {reason}")
    pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg (pip install -e '.[test]')")
    pg = pgserver.start()
    try:
        with pg.admin() as admin:
            admin.execute(f"CREATE ROLE gridwatch LOGIN PASSWORD '{PASSWORD}'")
            admin.execute("CREATE DATABASE gridwatch OWNER gridwatch")
            admin.execute("CREATE DATABASE plain OWNER gridwatch")
            postgis = admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone() is not None
        if postgis:
            with pg.admin("gridwatch") as admin:  # the administrator's step, never the store's
                admin.execute("CREATE EXTENSION postgis")
        yield SimpleNamespace(pg=pg, postgis=postgis, url=pg.url("gridwatch", "gridwatch"), plain=pg.url("gridwatch", "plain"))
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def site(server: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A night on three counties whose config.toml names the PostgreSQL store; the secrets in the environment."""
    tmp = tmp_path_factory.mktemp("pgstore")
    grid = gpd.read_parquet(ROOT / "geodata" / "grid_ncp_5km.parquet")
    grid[grid["county_code"].isin(COUNTIES)].to_parquet(tmp / "grid.parquet")
    config = nightly.write_config(tmp, rasters=[], grid=str(tmp / "grid.parquet"), without="electricity")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('\nstore = ""', f'\nstore = "{server.url}"', 1), encoding="utf-8")
    assert load_config(config).verification.store == server.url
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRIDWATCH_VERIFY_SECRET", SECRET)
        env.setenv("PGPASSWORD", PASSWORD)  # libpq's own variable: the URL in config.toml carries no password
        assert main(["nightly", "--date", NIGHT1, "--config", str(config), "--quiet"]) == EXIT_OK
        yield SimpleNamespace(tmp=tmp, config=config, out=tmp / "out", store=VerificationStore(server.url),
                              sqlite=VerificationStore(tmp / "same.sqlite"), server=server)


def export(site: SimpleNamespace, day: str, supervisor: str, marks: list[tuple[str, str, str, str]], name: str) -> Path:
    """A verification file as the supervisor's page exports it: ``marks`` are (cell, item, result, marked_utc)."""
    payload = {"gridwatch_marks": 1, "day": day, "supervisor": supervisor,
               "token": supervisor_token(SECRET.encode(), supervisor),
               "export_id": hashlib.sha256(name.encode()).hexdigest()[:32], "exported_utc": "2022-05-30T12:00:00Z",
               "marks": [{"cell_id": cell, "item_id": item, "result": result, "note": NOTE if result == "other_heat" else "已制止",
                          "photo": "", "marked_utc": when} for cell, item, result, when in marks]}
    path = site.tmp / f"{name}.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return path


def both(site: SimpleNamespace, *paths: Path) -> tuple[list, list]:
    """Import ``paths`` into the PostgreSQL store and into the SQLite one; their outcomes."""
    kw = dict(out_root=site.out, secret_env="GRIDWATCH_VERIFY_SECRET", max_bytes=MAX_BYTES)
    return import_files(list(paths), store=site.store, **kw), import_files(list(paths), store=site.sqlite, **kw)


def same_marks(site: SimpleNamespace) -> pd.DataFrame:
    marks = site.store.marks()
    pd.testing.assert_frame_equal(marks, site.sqlite.marks())
    return marks


@pytest.fixture(scope="module")
def imported(site: SimpleNamespace) -> SimpleNamespace:
    """The HEAT and STRAW supervisors' files imported through the CLI into PostgreSQL (and into SQLite alike)."""
    files = {"heat": export(site, NIGHT1, HEAT.supervisor, [(HEAT.cell, HEAT.item, "other_heat", "2022-05-30T03:00:00Z")], "heat"),
             "straw": export(site, NIGHT1, STRAW.supervisor, [(STRAW.cell, STRAW.item, "confirmed", "2022-05-30T04:00:00Z")], "straw")}
    assert main(["verify", "import", str(files["heat"]), str(files["straw"]), "--config", str(site.config), "--quiet"]) == EXIT_OK
    import_files(list(files.values()), out_root=site.out, store=site.sqlite, secret_env="GRIDWATCH_VERIFY_SECRET",
                 max_bytes=MAX_BYTES)
    return SimpleNamespace(files=files, marks=same_marks(site))


def test_cli_imports_into_postgres(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    stored = imported.marks.set_index("item_id")
    assert set(stored.index) == {HEAT.item, STRAW.item}
    assert stored.loc[HEAT.item, "result"] == "other_heat" and stored.loc[HEAT.item, "note"] == NOTE
    assert stored.loc[HEAT.item, "category"] == "straw_suspect" and abs(stored.loc[HEAT.item, "lat"] - 39.4371) < 0.01
    assert stored.loc[STRAW.item, "marked_utc"] == pd.Timestamp("2022-05-30T04:00:00Z")
    imports = site.store.imports()
    assert [(i["supervisor"], i["marks"], i["stored"]) for i in imports] == [(HEAT.supervisor, 1, 1), (STRAW.supervisor, 1, 1)]
    # In the server itself, not only as the store reads it back: the tables, owned by the role of the URL.
    with site.server.pg.admin("gridwatch") as admin:
        assert admin.execute("SELECT count(*) FROM marks").fetchone()[0] == 2
        assert admin.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'imports'").fetchone()[0] == "gridwatch"


def test_replay_is_refused_and_changes_nothing(site: SimpleNamespace, imported: SimpleNamespace,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    copy = site.tmp / "copy-of-heat.json"  # the same bytes under another name
    shutil.copyfile(imported.files["heat"], copy)
    for path in (imported.files["heat"], copy):
        assert main(["verify", "import", str(path), "--config", str(site.config)]) == EXIT_FAILED
        assert "already imported" in capsys.readouterr().err
    pg, lite = both(site, copy)
    assert pg[0].result is None and lite[0].result is None and "nothing changed" in pg[0].message
    pd.testing.assert_frame_equal(same_marks(site), imported.marks)
    assert len(site.store.imports()) == len(site.sqlite.imports()) == 2


def test_night_reads_the_store(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    config = load_config(site.config)
    night = FieldNight.load(config, site.out, dt.date.fromisoformat(NIGHT2))
    assert not night.skips
    pd.testing.assert_frame_equal(night.marks, imported.marks)
    assert night.verified == {HEAT.item: ("other_heat", NIGHT1), STRAW.item: ("confirmed", NIGHT1)}
    # The next night through the CLI: the report's columns from the store, the verified heat source masked.
    assert main(["nightly", "--date", NIGHT2, "--config", str(site.config), "--quiet"]) == EXIT_OK
    manifest = json.loads((site.out / NIGHT2 / "run.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["verification"] == {"marks_in_store": 2, "verified_places": 1, "fires_masked": 1}
    report = pd.read_csv(site.out / NIGHT2 / "report.csv", dtype={"code": str})
    county = report[(report["level"] == "county") & (report["code"] == "130224")].iloc[0]
    assert (county["verified"], county["false_alarm"], county["persistent"]) == (1, 1, 1)


def test_newer_mark_replaces_older(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    newer = export(site, NIGHT1, HEAT.supervisor, [(HEAT.cell, HEAT.item, "no_fire", "2022-05-30T06:00:00Z")], "heat-newer")
    older = export(site, NIGHT1, HEAT.supervisor, [(HEAT.cell, HEAT.item, "confirmed", "2022-05-30T02:00:00Z")], "heat-older")
    pg, lite = both(site, newer, older)
    assert [o.result.stored for o in pg] == [o.result.stored for o in lite] == [1, 0]
    stored = same_marks(site).set_index("item_id")
    assert stored.loc[HEAT.item, "result"] == "no_fire" and stored.loc[HEAT.item, "note"] == "已制止"
    assert stored.loc[HEAT.item, "marked_utc"] == pd.Timestamp("2022-05-30T06:00:00Z")
    assert stored.loc[STRAW.item, "result"] == "confirmed"  # another task: untouched
    assert [i["stored"] for i in site.store.imports()][-2:] == [1, 0]


def _backends(site: SimpleNamespace, sql: str) -> int:
    with site.server.pg.admin() as admin:
        return admin.execute(sql).fetchone()[0]


def _wait_for(site: SimpleNamespace, sql: str, what: str) -> None:
    for _ in range(200):
        if _backends(site, sql):
            return
        time.sleep(0.05)
    raise AssertionError(f"no import {what} within 10 s")


def test_reader_during_an_import_sees_all_or_none(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    """An import halted in the middle of its transaction, and a second one waiting for the store's lock: a reader
    (the store, and a night) sees none of either until they commit, then all of both."""
    tasks = read_task_index(site.out, dt.date.fromisoformat(NIGHT1))["supervisors"][MANY]["tasks"]
    assert len(tasks) == 6
    many = export(site, NIGHT1, MANY, [(t["cell_id"], t["item_id"], "no_fire", "2022-05-30T05:00:00Z") for t in tasks], "many")
    straw = export(site, NIGHT1, STRAW.supervisor, [(STRAW.cell, STRAW.item, "other_heat", "2022-05-30T07:00:00Z")], "straw-later")
    export_id = json.loads(many.read_text(encoding="utf-8"))["export_id"]
    before, batches = site.store.marks(), len(site.store.imports())
    kw = dict(out_root=site.out, secret_env="GRIDWATCH_VERIFY_SECRET", max_bytes=MAX_BYTES)
    outcomes: dict[str, list] = {}

    def run(name: str, path: Path) -> None:
        outcomes[name] = import_files([path], store=site.store, **kw)

    # Another session holds, uncommitted, an imports row with the file's export id: the import writes its six marks,
    # then waits at its last statement (the unique key) until that session ends, with its transaction open.
    blocker = site.server.pg.admin("gridwatch")
    blocker.autocommit = False
    blocker.execute("INSERT INTO imports VALUES (%s, 'blocker', 'x', '2022-05-30', 'x', 'x', 0, 0)", (export_id,))
    first = threading.Thread(target=run, args=("many", many))
    first.start()
    _wait_for(site, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gridwatch' "
              "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO imports%'", "halted before its commit")
    second = threading.Thread(target=run, args=("straw", straw))
    second.start()
    _wait_for(site, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", "waiting for the lock")
    try:
        pd.testing.assert_frame_equal(site.store.marks(), before)
        night = FieldNight.load(load_config(site.config), site.out, dt.date.fromisoformat(NIGHT2))
        assert not night.skips and len(night.marks) == len(before)
        assert len(site.store.imports()) == batches
    finally:
        blocker.rollback()
        blocker.close()
        first.join(30)
        second.join(30)
    assert [o.result.stored for o in outcomes["many"]] == [6] and [o.result.stored for o in outcomes["straw"]] == [1]
    assert len(site.store.imports()) == batches + 2
    after = site.store.marks().set_index("item_id")
    assert len(after) == len(before) + 6 and after.loc[STRAW.item, "result"] == "other_heat"
    assert (after[after["supervisor"] == MANY]["result"] == "no_fire").all()


def test_postgis_point_of_each_mark(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    if not site.server.postgis:
        pytest.skip("PostGIS is not installed on this server (Debian: postgresql-15-postgis-3): the store keeps lon/lat only")
    with site.server.pg.admin("gridwatch") as admin:
        rows = admin.execute("SELECT lon, lat, ST_X(geom), ST_Y(geom), ST_SRID(geom) FROM marks").fetchall()
        assert rows and all(abs(x - lon) < 1e-9 and abs(y - lat) < 1e-9 and srid == 4326 for lon, lat, x, y, srid in rows)
        assert admin.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'marks_geom'").fetchone() is not None
        # For the unit's GIS: the marks within 1 km of the heat source verified on the spot.
        near = admin.execute("SELECT item_id FROM marks WHERE ST_DWithin(geom::geography, "
                             "(SELECT geom FROM marks WHERE item_id = %s)::geography, 1000)", (HEAT.item,)).fetchall()
        assert [r[0] for r in near] == [HEAT.item]


def test_database_without_postgis_keeps_lon_lat(site: SimpleNamespace, imported: SimpleNamespace) -> None:
    store = VerificationStore(site.server.plain)
    (outcome,) = import_files([imported.files["heat"]], out_root=site.out, store=store, secret_env="GRIDWATCH_VERIFY_SECRET",
                              max_bytes=MAX_BYTES)
    assert outcome.result is not None and outcome.result.stored == 1
    marks = store.marks()
    assert list(marks["item_id"]) == [HEAT.item] and abs(marks["lat"].iloc[0] - 39.4371) < 0.01
    with site.server.pg.admin("plain") as admin:
        columns = {r[0] for r in admin.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'marks'")}
    assert "geom" not in columns and {"lon", "lat"} <= columns


def test_unreachable_or_refused_server_is_a_store_error(site: SimpleNamespace, server: SimpleNamespace) -> None:
    """A wrong password or a server that is down: a clear error without the password; a night loses only the mask."""
    wrong = server.url.replace("gridwatch@", "gridwatch:not-the-password@")
    with pytest.raises(StoreError, match="password authentication failed") as caught:
        VerificationStore(wrong).marks()
    assert "not-the-password" not in str(caught.value) and ":***@" in str(caught.value)
    down = f"postgresql://gridwatch@127.0.0.1:{pgserver.free_port()}/gridwatch"  # nothing listens there
    with pytest.raises(StoreError, match="cannot connect"):
        VerificationStore(down).marks()
    config = load_config(site.config)
    config = dataclasses.replace(config, verification=dataclasses.replace(config.verification, store=down))
    night = FieldNight.load(config, site.out, dt.date.fromisoformat(NIGHT2))
    assert len(night.marks) == 0 and "cannot connect" in night.skips[0].reason

