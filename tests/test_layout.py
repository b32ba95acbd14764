"""The package's layout: rooms by domain that import downwards only, one exception family, one atomic write."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines
from pipelines.core.exceptions import GridwatchError
from pipelines.run.cli import main

PACKAGE = Path(pipelines.__file__).parent
# Bottom to top: a room may import its own modules and the rooms below it.
ROOMS = ["core", "grid", "windows", "fires", "power", "field", "publish", "run"]


def _room(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 and parts[0] in ROOMS else None


def _imported_rooms(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "pipelines" and len(parts) > 1 and parts[1] in ROOMS:
                found.append((node.lineno, parts[1]))
    return found


def test_rooms_import_downwards_only() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        if room is None:
            continue
        for line, target in _imported_rooms(path):
            if ROOMS.index(target) > ROOMS.index(room):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} {room} -> {target}")
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_the_settings_import_no_stage() -> None:
    code = "import sys, pipelines.core.settings; print(' '.join(sorted(m for m in sys.modules if m.startswith('pipelines.'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "pipelines.core.settings" in loaded
    assert [m for m in loaded if not m.startswith("pipelines.core")] == []


@pytest.mark.parametrize("room", ROOMS + ["testing"])
def test_every_room_says_what_lives_there(room: str) -> None:
    doc = importlib.import_module(f"pipelines.{room}").__doc__ or ""
    assert len(doc.split()) >= 15, f"pipelines/{room}/__init__.py should say in a few lines what lives there"


def _all_modules() -> list[object]:
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(pipelines.__path__, "pipelines.")]


def test_every_error_is_a_gridwatch_error_from_one_module() -> None:
    strays = []
    for module in _all_modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("pipelines") and cls.__module__ == module.__name__:
                if module.__name__ != "pipelines.core.exceptions" and module.__name__ != "pipelines.testing":
                    strays.append(f"{module.__name__}.{name}")
                elif module.__name__ == "pipelines.core.exceptions" and not issubclass(cls, GridwatchError):
                    strays.append(f"{name} is not a GridwatchError")
    assert not strays, strays


def test_one_atomic_write_helper() -> None:
    renames = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "os.replace(" in p.read_text(encoding="utf-8")]
    assert renames == ["core/outputs.py"]


def test_a_gridwatch_error_is_one_line_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text((PACKAGE.parent / "config.toml").read_text(encoding="utf-8").replace("[fires]", "[fires]\nno_such_key = 1", 1),
                      encoding="utf-8")
    assert main(["nightly", "--date", "2022-06-03", "--config", str(config), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gridwatch: error: ") and "no_such_key" in err[0]
    assert not (tmp_path / "out").exists()
