"""`pip install` (not editable) into a fresh venv, then `gridwatch init` and a nightly run in an empty folder.

Offline and fast: the wheel is built from a copy of the source tree without
build isolation (`pip wheel --no-deps --no-index`), installed with `--no-deps`
into a new venv of the same base interpreter, and only then is the test
venv's site-packages appended to the new venv's path with a ``.pth`` line (a
plain path line: the ``.pth`` files inside it, such as the editable install's
finder for ``pipelines``, are not run, so the source tree cannot shadow the
installed copy). PYTHONPATH is cleared and the commands run from empty folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRES = Path(__file__).resolve().parent / "data" / "fires"
FIRE_FILE = "viirs_2023-04-05_with_township_address_sample.csv"  # 45 real VIIRS fires in 宝清县 on 2023-04-05

pytestmark = pytest.mark.slow


def run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A venv with gridwatch installed from a wheel; returns its bin folder and a clean environment."""
    tmp = tmp_path_factory.mktemp("install")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    # The source tree as a user checks it out: pipelines/data holds links into geodata/, which the wheel must resolve.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "pipelines", src / "pipelines", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "geodata").symlink_to(ROOT / "geodata")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", tmp / "dist", src], tmp, env)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("gridwatch-*.whl")

    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], tmp, env)
    assert done.returncode == 0, done.stderr
    # Dependencies from the test venv, added after the install so pip saw an empty environment.
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).stdout.strip()
    Path(purelib, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return venv / "bin", env


def test_wheel_is_small_and_holds_the_reference_data(installed: tuple[Path, dict[str, str]]) -> None:
    bin_dir, env = installed
    (wheel,) = (bin_dir.parent.parent / "dist").glob("gridwatch-*.whl")
    assert wheel.stat().st_size < 8e6
    where = run([bin_dir / "python", "-c", "import pipelines, pipelines.core.refdata as r; print(pipelines.__file__); print(r.data_dir())"],
                bin_dir.parent.parent, env)
    module, data = where.stdout.split()
    venv = str(bin_dir.parent)
    assert module.startswith(venv) and data.startswith(venv), where.stdout  # the installed copy, not the source tree
    assert (Path(data) / "china_counties.parquet").stat().st_size > 4e6 and not (Path(data) / "china_counties.parquet").is_symlink()


def test_init_then_nightly_in_an_empty_folder(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    bin_dir, env = installed
    work = tmp_path / "work"
    work.mkdir()
    made = run([bin_dir / "gridwatch", "init", "--counties", "230523", "--cell-km", "10", "--dir", "baoqing"], work, env)
    assert made.returncode == 0, made.stderr
    assert "copied 8 reference files from " + str(bin_dir.parent) in made.stdout
    site = work / "baoqing"
    shutil.copy(FIRES / FIRE_FILE, site / "fires" / FIRE_FILE)

    elsewhere = tmp_path / "elsewhere"  # any folder: paths in the config are relative to it, not to the working folder
    elsewhere.mkdir()
    night = run([bin_dir / "gridwatch", "nightly", "--date", "2023-04-05", "--config", site / "config.toml", "--quiet"], elsewhere, env)
    assert night.returncode in (0, 3), night.stderr
    assert not any(elsewhere.iterdir())
    out = site / "out" / "2023-04-05"
    for name in ("fires.parquet", "events.parquet", "grid_summary.csv", "report.csv", "map.html", "index.html", "run.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert counts["fires"] == 45 and counts["attributed"] == 45
    assert counts["fires_by_category"]["straw_suspect"] > 0  # classified with the copied land cover, not all "other"
    assert manifest["inputs"]["landcover"]["path"].startswith(str(site / "data"))
    left_out = [w for w in manifest["warnings"] if " not in config.toml: " in w]
    assert [w.split("[")[1].split("]")[0] for w in left_out] == ["rain", "electricity"]
    report = (out / "report.csv").read_text(encoding="utf-8-sig")
    assert "双鸭山市" in report and "宝清县" in report  # the city comes from the configured county columns
