"""Nights that run at once: the per-day lock, the shared files' lock, and records kept apart."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_nightly import ROOT, write_config

from pipelines.core.exceptions import OutputLocked
from pipelines.core.outputs import shared_lock, staged_folder
from pipelines.core.runlog import RunLog
from pipelines.fires.persistent import FireHistory
from pipelines.run.cli import main


def _history_config(tmp_path: Path) -> Path:
    """The project's config with only the 7-day FIRMS file, no rasters, and a new history each night adds to."""
    config = write_config(tmp_path, points=[str(ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv")], rasters=[])
    history = tmp_path / "history.parquet"
    text = config.read_text(encoding="utf-8")
    text = text.replace(f'path = "{ROOT}/geodata/persistent_history.parquet"', f'path = "{history}"').replace("update = false", "update = true")
    config.write_text(text, encoding="utf-8")
    return config


def test_two_nights_at_once_both_reach_the_history_and_the_electricity_state(tmp_path: Path) -> None:
    config = _history_config(tmp_path)
    history = tmp_path / "history.parquet"
    days = ["2022-06-01", "2022-06-02"]  # a backfill beside the nightly cron job
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-m", "pipelines.run.cli", "nightly", "--date", day, "--config", str(config), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for day in days]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode in (0, 3), err
    days_in_history = {d for dates in FireHistory.read(history).to_frame()["dates"] for d in dates}
    # Each night adds its own Beijing day; neither night's update is lost to the other.
    assert days_in_history == {dt.date(2022, 6, 1), dt.date(2022, 6, 2)}
    states = sorted(p.name for p in (tmp_path / "out" / "state" / "electricity").glob("*.parquet"))
    assert states == ["2022-06-01.parquet", "2022-06-02.parquet"]
    assert not list(tmp_path.rglob(".*.partial-*"))


def test_a_second_run_of_the_same_day_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _history_config(tmp_path)
    out = tmp_path / "out"
    with staged_folder(out, "2022-06-03") as staging:  # a run of that day is writing
        (staging / "marker.txt").write_text("first run", encoding="utf-8")
        code = main(["nightly", "--date", "2022-06-03", "--config", str(config), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("gridwatch: error: another run is writing") and "Traceback" not in "\n".join(err)
    # The first run's output is whole and is the only one.
    assert (out / "2022-06-03" / "marker.txt").read_text(encoding="utf-8") == "first run"
    assert sorted(p.name for p in (out / "2022-06-03").iterdir()) == ["marker.txt"]


def test_a_shared_file_held_by_another_run_times_out_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "history.parquet"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pipelines.core.outputs import shared_lock\n"
        f"with shared_lock({str(target)!r}):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked, match="history.parquet"), shared_lock(target, timeout_s=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
    with shared_lock(target, timeout_s=5):  # free again once the holder is gone
        pass


def test_two_runs_in_one_process_keep_their_own_records() -> None:
    log = logging.getLogger("pipelines.fires.load")
    both_started = threading.Barrier(2)
    logs: dict[str, RunLog] = {}

    def night(name: str) -> None:
        with RunLog().collecting() as runlog:
            logs[name] = runlog
            both_started.wait()
            for i in range(50):
                log.warning("%s message %d", name, i)
                both_started.wait() if i == 25 else None

    threads = [threading.Thread(target=night, args=(name,)) for name in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.warning("outside any run")
    for name, runlog in logs.items():
        assert len(runlog.warnings) == 50
        assert all(w.startswith(f"pipelines.fires.load: {name} message") for w in runlog.warnings)
