"""The electricity benchmark still runs and its two methods still agree (at smoke-test size)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_electricity_benchmark_quick() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "electricity.py"), "--quick"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "the increment and the naive recompute agree" in result.stdout


@pytest.mark.slow
def test_cell_maps_benchmark_quick() -> None:
    """The cell-map benchmark runs on a few cells of the sample night and writes both pages of each."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cell_maps.py"), "--cells", "5"],
                            capture_output=True, text=True, timeout=900, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "5 cell maps" in result.stdout and "write, gridwatch page (MapPage)" in result.stdout
