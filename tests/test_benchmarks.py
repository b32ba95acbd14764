"""The electricity benchmark still runs and its two methods still agree (at smoke-test size)."""

from __future__ import annotations

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
