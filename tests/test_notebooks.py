"""The analysts' notebooks run top to bottom on the sample data, and are stored clean."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _repo_files() -> set[Path]:
    """Files a notebook might write by mistake: the notebooks folder and the default output folder."""
    return {p for folder in (REPO / "notebooks", REPO / "out") if folder.exists() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = nbformat.read(path, as_version=4)
    before = _repo_files()
    start = time.perf_counter()
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    with capsys.disabled():  # the run time, for keeping the notebooks quick on a 2-core machine (pytest -s or -rA)
        print(f"\n{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    # Notebooks write into temporary folders only, never into the repository.
    assert _repo_files() == before


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_without_outputs(path: Path) -> None:
    """Outputs make diffs unreadable and can carry data or paths: clear them before committing.

    ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`` does it.
    """
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code
    dirty = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"cells {dirty} have outputs or an execution count"


def test_there_are_notebooks_in_working_order() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names == sorted(names)
    assert [n[:3] for n in names] == [f"{i:02d}_" for i in range(1, len(names) + 1)]
