"""Every exercise validated: for each exercise in notebooks/*.ipynb,

1. the instructor's solution passes, graded in the sandbox like a student's submission;
2. the released stub fails with a not-implemented message;
3. every seeded wrong solution in tests/mutants/<exercise>/ fails (at least two per exercise).

One sandboxed run per notebook holds the stubs and all mutants (`grading.splice_variants`), so
the suite costs three notebook runs per lesson: reference, solution, wrong answers.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

import course
from course import exercises, grading

MUTANTS = Path(__file__).parent / "mutants"
JOBS = int(os.environ.get("COURSE_TEST_JOBS", "2"))
EXERCISES = exercises.all_exercises(course.NOTEBOOKS)
ALL = [ex for exs in EXERCISES.values() for ex in exs]
BY_ID = {ex.id: ex for ex in ALL}


def mutants_of(exercise_id):
    folder = MUTANTS / exercise_id
    return sorted(p for p in folder.glob("*") if p.suffix in (".py", ".cpp")) \
        if folder.is_dir() else []


MUTANT_CASES = [(ex.id, m.stem) for ex in ALL for m in mutants_of(ex.id)]


def test_there_are_exercises():
    assert ALL, "no exercises found in notebooks/*.ipynb"


@pytest.mark.parametrize("exercise", sorted(BY_ID))
def test_every_exercise_has_at_least_two_mutants(exercise):
    found = mutants_of(exercise)
    assert len(found) >= 2, f"{exercise}: add at least two wrong solutions to " \
                            f"tests/mutants/{exercise}/ (docs/authoring.md), found {len(found)}"


def test_every_mutant_folder_names_an_exercise():
    assert sorted(p.name for p in MUTANTS.iterdir() if p.is_dir() and p.name not in BY_ID) == []


@pytest.mark.parametrize("exercise,mutant", MUTANT_CASES)
def test_mutant_names_its_bug_and_keeps_the_cell_language(exercise, mutant):
    path = next(p for p in mutants_of(exercise) if p.stem == mutant)
    lines = path.read_text().splitlines()
    source = exercises.read_notebook(course.NOTEBOOKS / BY_ID[exercise].notebook)
    solution = next(c for c in source.cells if exercises.is_solution(c)
                    and exercises.nbgrader_meta(c)["grade_id"] in BY_ID[exercise].solution_ids)
    first = exercises.source_of(solution).lstrip().splitlines()[0]
    if exercises.is_cpp_cell(first):
        assert path.suffix == ".cpp" and lines[0].strip() == first.strip()
        assert lines[1].lstrip().startswith("//"), "second line: a comment naming the bug"
    else:
        assert path.suffix == ".py" and lines[0].startswith("#"), "first line names the bug"


def solution_submission(notebook):
    nb = exercises.read_notebook(course.NOTEBOOKS / notebook)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """Grade the solution as a student; run every notebook's stubs and mutants in one run each."""
    root = tmp_path_factory.mktemp("exercises")
    subs = root / "subs" / "solution"
    subs.mkdir(parents=True)
    for notebook in EXERCISES:
        nbformat.write(solution_submission(notebook), subs / notebook)
    started = time.monotonic()
    rows = grading.grade(root / "subs", root / "out", course.NOTEBOOKS, jobs=JOBS,
                         log=lambda *a: None)
    print(f"\nreference runs + a full-course submission graded in "
          f"{time.monotonic() - started:.0f} s with -j {JOBS}")
    batch = grading.prepare_batch(root / "subs", root / "out", course.NOTEBOOKS)
    refs = {nb: grading._reference(batch, nb) for nb in EXERCISES}  # cached by grade()
    with ThreadPoolExecutor(JOBS) as pool:
        runs = dict(zip(EXERCISES, pool.map(lambda nb: variants_run(batch, nb), EXERCISES)))
    return {"rows": {r["exercise"]: r for r in rows}, "runs": runs, "refs": refs}


def variants_run(batch, notebook):
    variants = {ex.id: [(m.stem, m.read_text()) for m in mutants_of(ex.id)]
                for ex in EXERCISES[notebook]}
    spliced = grading.splice_variants(batch.sources[notebook], EXERCISES[notebook], variants)
    return grading.run_spliced(spliced, batch.limits, batch.isolation)


def variant_verdict(validated, exercise, label):
    ex = BY_ID[exercise]
    run = grading.variant_view(validated["runs"][ex.notebook], exercise, label)
    return grading.verdict(ex, run, validated["refs"][ex.notebook], [])


@pytest.mark.parametrize("exercise", sorted(BY_ID))
def test_solution_passes_in_the_sandbox(validated, exercise):
    r = validated["rows"][exercise]
    assert (r["status"], r["points"]) == ("passed", r["max_points"]), r


@pytest.mark.parametrize("exercise", sorted(BY_ID))
def test_released_stub_fails_not_implemented(validated, exercise):
    points, status, message = variant_verdict(validated, exercise, "stub")
    assert (points, status) == (0, "failed"), message
    assert "not implemented" in message.lower(), message


@pytest.mark.parametrize("exercise,mutant", MUTANT_CASES)
def test_mutant_fails(validated, exercise, mutant):
    points, status, message = variant_verdict(validated, exercise, mutant)
    assert points == 0 and status != "passed", f"mutant {mutant} of {exercise} passes"
