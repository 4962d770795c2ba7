"""nbgrader accepts the course's notebooks: generate_assignment on every lesson, autograde on a
small one, and the C++ cells nbgrader releases still compile (`grading.nbgrader_preprocessors`)."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course
from course import exercises, grading

pytest.importorskip("nbgrader")
FIXTURES = Path(__file__).parent / "fixtures" / "grading" / "source"
BIN = Path(sys.executable).parent
CONFIG = """\
from course.grading import nbgrader_preprocessors
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "course"
c.GenerateAssignment.preprocessors = nbgrader_preprocessors()
c.ExecutePreprocessor.timeout = 300
"""


def nbgrader(root, *args):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    env.pop("COURSE_RECORD", None)
    done = subprocess.run([str(BIN / "nbgrader"), *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nbgrader")
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=str(root)))
    shutil.copytree(course.NOTEBOOKS, root / "source" / "lessons",
                    ignore=shutil.ignore_patterns(".*"))
    shutil.copytree(FIXTURES, root / "source" / "fixture")
    return root


def test_generate_assignment_accepts_every_lesson(course_dir):
    nbgrader(course_dir, "generate_assignment", "lessons", "--force")
    released = sorted(p.name for p in (course_dir / "release" / "lessons").glob("*.ipynb"))
    assert released == sorted(p.name for p in course.NOTEBOOKS.glob("[0-9]*.ipynb"))
    for path in (course_dir / "release" / "lessons").glob("*.ipynb"):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text


def test_nbgrader_releases_cpp_stubs_that_compile(course_dir):
    nbgrader(course_dir, "generate_assignment", "fixture", "--force")
    released = course_dir / "release" / "fixture" / "02_cpp.ipynb"
    nb = nbformat.read(released, as_version=4)
    cell = next(c for c in nb.cells if exercises.is_cpp_cell(c.source))
    assert 'throw std::logic_error("not implemented");' in cell.source
    assert "raise NotImplementedError" not in cell.source
    rows = grading.check(released, timeout=120, quiet=True)
    assert [r["status"] for r in rows] == ["failed"]
    assert "not implemented" in rows[0]["message"]  # compiled, ran, threw the stub's error


def test_autograde_scores_a_submission(course_dir):
    nbgrader(course_dir, "generate_assignment", "fixture", "--force")
    nbgrader(course_dir, "db", "student", "add", "alice")
    submitted = course_dir / "submitted" / "alice" / "fixture"
    submitted.mkdir(parents=True)
    for name in ("01_python.ipynb", "02_cpp.ipynb"):
        nb = nbformat.read(course_dir / "release" / "fixture" / name, as_version=4)
        source = nbformat.read(FIXTURES / name, as_version=4)
        answers = {exercises.nbgrader_meta(c)["grade_id"]: c.source for c in source.cells
                   if exercises.is_solution(c)}
        for cell in nb.cells:
            if exercises.is_solution(cell):
                cell.source = answers[exercises.nbgrader_meta(cell)["grade_id"]]
        nbformat.write(nb, submitted / name)
    (submitted / "timestamp.txt").write_text("2026-01-01 00:00:00.000000 UTC")
    nbgrader(course_dir, "autograde", "fixture", "--force")
    nbgrader(course_dir, "export", "--to", str(course_dir / "grades.csv"))
    with open(course_dir / "grades.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle)
                if (r["student_id"], r["assignment"]) == ("alice", "fixture")]
    assert [(float(r["score"]), float(r["max_score"])) for r in rows] == [(6.0, 6.0)]
