"""A learner re-runs cells: "Run All" twice in one kernel must raise nothing the first run did not.

nbval checks one clean run per notebook; this checks that the cells are also safe to run again
(%%cpp cells recompiled, models rebuilt, files rewritten) in the same kernel.
"""
import nbformat
import pytest
from nbclient import NotebookClient

import course

NOTEBOOKS = sorted(course.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_twice_in_one_kernel(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    twice = nbformat.v4.new_notebook(metadata=nb.metadata)
    twice.cells = [nbformat.from_dict(dict(c)) for c in code + code]
    NotebookClient(twice, timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(n % len(code), o.ename, o.evalue[:200]) for n, c in enumerate(twice.cells)
              for o in c.outputs if o.output_type == "error"]
    assert errors == [], f"{path.name}: cells that failed (index, error): {errors}"
