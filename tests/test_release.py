"""`course release`: the student version has stubs, no hidden tests, no solution text anywhere,
and still runs: C++ stubs compile, reference kernels ship prebuilt."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course
from course import cpp, exercises, grading, release

FIXTURES = Path(__file__).parent / "fixtures" / "grading" / "source"


@pytest.fixture(scope="module")
def fixture_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    release.release(out, FIXTURES)
    return out


def test_notebooks_keep_their_names(fixture_release):
    names = sorted(p.name for p in (fixture_release / "notebooks").iterdir())
    assert names == sorted(p.name for p in FIXTURES.glob("*.ipynb"))


def test_release_has_stubs_no_hidden_tests_no_outputs(fixture_release):
    for path in (fixture_release / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        text = json.dumps(nb)
        assert "HIDDEN" not in text and "_hidden" not in text
        assert "BEGIN SOLUTION" not in text
        for cell in nb.cells:
            meta = exercises.nbgrader_meta(cell)
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
            if meta.get("grade"):
                assert meta["locked"] and meta["checksum"] == exercises.checksum(cell)
            if meta.get("solution"):
                assert "not implemented" in cell.source


def test_support_files_ship(fixture_release):
    assert (fixture_release / "course" / "checks.py").is_file()
    assert (fixture_release / "pyproject.toml").is_file()
    # The student's own entry points, not the instructor's README (which talks of make test).
    assert "make check NB=" in (fixture_release / "README.md").read_text()
    assert "lab:" in (fixture_release / "Makefile").read_text()
    assert (fixture_release / "cpp_snippets" / "lib" / cpp.KERNELS_LIB).is_file()
    dense = (fixture_release / "cpp_snippets" / "dense.h").read_text()
    assert "COURSE_KERNEL void dense_backward(" in dense
    assert dense == release.declarations_only((cpp.SNIPPETS / "dense.h").read_text())
    assert release.kernel_bodies(dense) == []


def test_no_solution_text_anywhere_in_the_release(fixture_release):
    secrets = release.secret_lines(FIXTURES, cpp.SNIPPETS)
    assert "return np.asarray(x, dtype=np.float64) * factor" in secrets
    assert any("+=" in line for line in secrets)  # kernel bodies are scanned too
    assert release.scan_release(fixture_release, secrets) == []


def test_the_scan_finds_a_planted_leak(fixture_release, tmp_path):
    secrets = release.secret_lines(FIXTURES, cpp.SNIPPETS)
    leaked = tmp_path / "leaky"
    (leaked / "notes").mkdir(parents=True)
    (leaked / "notes" / "hint.txt").write_text("try: out[i] = inp[i] + 1.0f;\n")
    assert release.scan_release(leaked, secrets) == [("notes/hint.txt", "out[i] = inp[i] + 1.0f;")]


def test_released_cpp_stub_compiles_and_reports_not_implemented(fixture_release):
    rows = grading.check(fixture_release / "notebooks" / "02_cpp.ipynb", timeout=120, quiet=True)
    assert [(r["exercise"], r["status"]) for r in rows] == [("fx02_add_one", "failed")]
    assert "not implemented: fx02_add_one" in rows[0]["message"]


def test_check_on_the_source_passes_and_prints_a_table(capsys):
    rows = grading.check(FIXTURES / "01_python.ipynb", timeout=120)
    assert [r["status"] for r in rows] == ["passed", "passed"]
    table = capsys.readouterr().out
    assert "fx01_scale" in table and "visible tests: 3 / 3 points" in table
    assert "x_hidden" not in table


def test_check_command_line_exit_codes(fixture_release):
    stub = fixture_release / "notebooks" / "01_python.ipynb"
    done = subprocess.run([sys.executable, "-m", "course", "check", str(stub)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "not implemented" in done.stdout
    done = subprocess.run([sys.executable, "-m", "course", "check", "nope.ipynb"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no such notebook" in done.stderr


def test_prebuilt_kernels_work_without_their_source(fixture_release):
    script = ("import numpy as np, course\nfrom course import cpp\n"
              "assert cpp.SNIPPETS.parent.resolve() == __import__('pathlib').Path.cwd().resolve()\n"
              "k = cpp.kernels()\n"
              "x = np.arange(6, dtype=np.float32).reshape(2, 3); w = np.ones((4, 3), np.float32)\n"
              "out = np.zeros((2, 4), np.float32)\n"
              "k.dense_forward(out, x, w, cpp.nullptr if hasattr(cpp, 'nullptr') else None, "
              "2, 3, 4)\nprint(out.sum())")
    env = {**os.environ, "PYTHONPATH": str(fixture_release)}
    done = subprocess.run([sys.executable, "-c", script], cwd=fixture_release, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) == pytest.approx(4 * (3 + 12))


def test_release_of_the_course_notebooks_has_no_leak(tmp_path):
    if not list(course.NOTEBOOKS.glob("[0-9]*.ipynb")):
        pytest.fail("no lesson notebooks in notebooks/")
    done = subprocess.run([sys.executable, "-m", "course", "release", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "notebooks").iterdir())
    assert names == sorted(p.name for p in course.NOTEBOOKS.glob("[0-9]*.ipynb"))


RUN_RELEASED = """\
import json, sys
import nbformat
from course import exercises, sandbox
nb = nbformat.read(sys.argv[1], as_version=4)
limits = sandbox.Limits(cell_timeout=300, notebook_timeout=900, rlimits=False)
results = sandbox.run_notebook(nb, limits=limits, isolation=sandbox.Isolation(enabled=False),
                               env=dict(__import__("os").environ), cwd=sys.argv[2])
bad = []
for i, r in sorted(results.items()):
    kind = "test" if exercises.is_test(nb.cells[i]) else "other"
    bad += [[kind, i, r.status, r.ename, r.evalue[:300]]] if r.status != "ok" else []
print(json.dumps(bad))
"""


def test_a_released_lesson_runs_on_the_prebuilt_kernels(tmp_path):
    """Only the exercises' test cells fail in an unsolved release: the lesson itself runs."""
    name = "06_cpp_backprop.ipynb"
    if not (course.NOTEBOOKS / name).is_file():
        pytest.fail(f"notebooks/{name} is missing")
    release.release(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", RUN_RELEASED, str(tmp_path / "notebooks" / name),
                           str(tmp_path / "notebooks")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    bad = json.loads(done.stdout.strip().splitlines()[-1])
    assert [b for b in bad if b[0] != "test"] == []
    assert bad and all("not implemented" in b[4].lower() for b in bad), bad
