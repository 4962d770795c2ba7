"""Grading figures: wall time of `course grade`, totals per student, repeatability, no leftovers.

Releases the course to a temp folder, then builds SUBMISSIONS with three students: `solution`
(the instructor's notebooks handed in), `stub` (the released notebooks untouched) and `mutant`
(the solution with one seeded bug from tests/mutants spliced in). Then, all with -j 2:
  1. cold: grade SUBMISSIONS into OUT (reference runs of the source notebooks + 3 students);
  2. one submission: a copy of `solution` under a new name graded into the same OUT, whose
     reference records (OUT/.reference/) are cached: the time to grade one full-course
     submission (target < 5 minutes on 2 cores);
  3. again: SUBMISSIONS graded into a fresh OUT2 holding only the cached references, so every
     student notebook runs again; grades.csv must be byte-identical to the cold run's.
Afterwards no process may be left to a sandbox uid (61000-61063) that no grader holds.
Must run as root (full sandbox). Run: .venv/bin/python benchmarks/grading_figures.py
(about 6 minutes on an idle 2-core machine).
"""
from __future__ import annotations

import argparse
import fcntl
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

import course
from course import exercises, grading, release, sandbox

MUTANT = Path(course.REPO) / "tests" / "mutants" / "ex06_dense_backward" / \
    "forgot_bias_gradient.cpp"
JOBS = 2


def solution_notebooks(folder: Path) -> None:
    """The instructor's notebooks, outputs cleared, handed in as a submission."""
    folder.mkdir(parents=True)
    for path in exercises.source_notebooks(course.NOTEBOOKS):
        nb = exercises.read_notebook(path)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, folder / path.name)


def splice_mutant(folder: Path, mutant: Path) -> str:
    """Replace the first solution cell of the mutant's exercise; returns the exercise id."""
    exercise = mutant.parent.name
    for path in sorted(folder.glob("*.ipynb")):
        nb = exercises.read_notebook(path)
        for ex in exercises.exercises_of(nb, path.name):
            if ex.id == exercise:
                cell = next(c for c in nb.cells
                            if exercises.nbgrader_meta(c).get("grade_id") == ex.solution_ids[0])
                cell.source = mutant.read_text()
                nbformat.write(nb, path)
                return exercise
    raise SystemExit(f"no exercise {exercise!r} in the source notebooks")


def build_submissions(root: Path, mutant: Path | None) -> tuple[Path, str | None]:
    released = root / "release"
    release.release(released)
    subs = root / "subs"
    solution_notebooks(subs / "solution")
    shutil.copytree(released / "notebooks", subs / "stub")
    exercise = None
    if mutant is not None:
        shutil.copytree(subs / "solution", subs / "mutant")
        exercise = splice_mutant(subs / "mutant", mutant)
    return subs, exercise


def timed_grade(subs: Path, out: Path) -> tuple[list[dict], float]:
    start = time.perf_counter()
    rows = grading.grade(subs, out, jobs=JOBS, log=lambda *a: None)
    return rows, time.perf_counter() - start


def leftover_processes() -> tuple[int, list[int]]:
    """Processes of sandbox uids that no grader holds, and the uids other graders hold now."""
    leftovers, busy = 0, []
    for uid in range(sandbox.UID_BASE, sandbox.UID_BASE + sandbox.UID_COUNT):
        lock = sandbox.LOCK_DIR / f"uid-{uid}.lock"
        if not lock.exists():
            leftovers += len(sandbox.pids_of_uid(uid))
            continue
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.append(uid)
                continue
            leftovers += len(sandbox.pids_of_uid(uid))
    return leftovers, busy


def student_table(rows: list[dict]) -> list[str]:
    lines = [f"{'student':16} {'points':>13}  statuses"]
    for student in dict.fromkeys(r["student"] for r in rows):
        mine = [r for r in rows if r["student"] == student]
        got, total = sum(r["points"] for r in mine), sum(r["max_points"] for r in mine)
        counts = Counter(r["status"] for r in mine)
        lines.append(f"{student:16} {got:6g} / {total:<4g}  "
                     + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-mutant", action="store_true", help="grade solution and stub only")
    args = parser.parse_args()
    if sandbox.isolation_report():
        print(f"warning: reduced isolation: {sandbox.isolation_report()}")
    with tempfile.TemporaryDirectory(prefix="grading-figures-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        subs, exercise = build_submissions(root, None if args.no_mutant else MUTANT)
        t_release = time.perf_counter() - start
        out, out2 = root / "out", root / "out2"
        rows, t_cold = timed_grade(subs, out)
        cold_csv = (out / "grades.csv").read_bytes()

        one = root / "subs_one"
        shutil.copytree(subs / "solution", one / "solution_again")
        one_rows, t_one = timed_grade(one, out)

        shutil.copytree(out / ".reference", out2 / ".reference")
        _, t_again = timed_grade(subs, out2)
        same_csv = (out2 / "grades.csv").read_bytes() == cold_csv
        leftovers, busy = leftover_processes()

    students = len({r["student"] for r in rows})
    print(f"course grade -j {JOBS}, {len(exercises.source_notebooks(course.NOTEBOOKS))} notebooks,"
          f" {len(rows) // students} exercises per student")
    print("\n".join(student_table(rows + one_rows)))
    if exercise:
        bad = [r for r in rows if r["student"] == "mutant" and r["status"] != "passed"]
        print(f"mutant {MUTANT.stem} in {exercise}: not passed = "
              f"{[r['exercise'] for r in bad]}")
    same_one = [{**r, "student": "solution"} for r in one_rows] == \
        [r for r in rows if r["student"] == "solution"]
    print(f"\n{'figure':58} {'value':>10}")
    for label, value in [
            ("release (stubs, headers, prebuilt kernels) s", f"{t_release:.0f}"),
            (f"cold: references + {students} students s", f"{t_cold:.0f}"),
            ("one full-course submission, references cached s", f"{t_one:.0f}"),
            ("  target < 300 s", "PASS" if t_one < 300 else "FAIL"),
            (f"again: {students} students re-run, references cached s", f"{t_again:.0f}"),
            ("  per submission s", f"{t_again / students:.0f}"),
            ("grades.csv byte-identical (cold vs re-run)", str(same_csv)),
            ("solution_again rows == solution rows", str(same_one)),
            ("processes left to free sandbox uids (must be 0)", str(leftovers)),
            ("sandbox uids held by other graders now", str(busy or "none"))]:
        print(f"{label:58} {value:>10}")


if __name__ == "__main__":
    main()
