"""The exercise format: finding exercises in a notebook, and the text transforms on their cells.

An exercise is a test cell (nbgrader `grade: true`, a `grade_id`, `points`) plus the solution
cells (`solution: true`) between the previous test cell and it. Solutions sit between
`### BEGIN SOLUTION` / `### END SOLUTION` (C++: `//`); hidden tests between
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`. docs/authoring.md describes the format;
`course.release` and `course.grading` build on this module.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

BEGIN_SOLUTION = re.compile(r"^(\s*)(###|//) BEGIN SOLUTION\s*$")
END_SOLUTION = re.compile(r"^\s*(###|//) END SOLUTION\s*$")
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"


class GradingError(Exception):
    """Something the instructor must fix (a broken source notebook, a bad path)."""


# ---------------------------------------------------------------------------------------------
# Exercise discovery


@dataclass
class Exercise:
    """One graded test cell and the solution cells that belong to it."""

    id: str
    notebook: str
    points: float
    test_index: int
    solution_ids: list[str] = field(default_factory=list)


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def source_of(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def is_test(cell) -> bool:
    return cell.get("cell_type") == "code" and bool(nbgrader_meta(cell).get("grade"))


def is_solution(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def exercises_of(nb, notebook: str) -> list[Exercise]:
    """Every test cell of a source notebook, with its solution cells (the ones before it)."""
    found, pending, seen = [], [], set()
    for index, cell in enumerate(nb["cells"]):
        meta = nbgrader_meta(cell)
        if is_solution(cell):
            pending.append(str(meta.get("grade_id", f"cell-{index}")))
        if is_test(cell):
            grade_id = str(meta.get("grade_id", ""))
            if not grade_id or grade_id in seen:
                raise GradingError(f"{notebook}: test cell {index} has a missing or duplicate "
                                   f"grade_id {grade_id!r}; give every test cell a unique one")
            seen.add(grade_id)
            found.append(Exercise(grade_id, notebook, float(meta.get("points", 0)), index,
                                  pending))
            pending = []
    return found


def exercise_of_solution(exercises: list[Exercise], solution_id: str) -> str:
    for ex in exercises:
        if solution_id in ex.solution_ids:
            return ex.id
    return solution_id.removesuffix("_solution")


def read_notebook(path: Path):
    import nbformat

    with open(path, encoding="utf-8") as handle:
        return nbformat.read(handle, as_version=4)


def source_notebooks(source_dir: Path) -> list[Path]:
    paths = sorted(Path(source_dir).glob("[0-9]*.ipynb"))
    if not paths:
        raise GradingError(f"no notebooks NN_name.ipynb in {source_dir}; pass --source DIR")
    return paths


def all_exercises(source_dir: Path) -> dict[str, list[Exercise]]:
    return {p.name: exercises_of(read_notebook(p), p.name) for p in source_notebooks(source_dir)}


# ---------------------------------------------------------------------------------------------
# Text transforms: hidden tests out, solutions to stubs


def strip_hidden(source: str) -> str:
    """Remove the lines between the hidden-test markers, markers included."""
    out, hidden = [], False
    for line in source.splitlines(keepends=True):
        if line.strip() == BEGIN_HIDDEN:
            hidden = True
        elif line.strip() == END_HIDDEN:
            hidden = False
        elif not hidden:
            out.append(line)
    return "".join(out)


def hidden_lines(source: str) -> list[str]:
    lines, hidden = [], False
    for line in source.splitlines():
        if line.strip() in (BEGIN_HIDDEN, END_HIDDEN):
            hidden = line.strip() == BEGIN_HIDDEN
        elif hidden and len(line.strip()) >= 8:
            lines.append(line.strip())
    return lines


def is_cpp_cell(source: str) -> bool:
    return source.lstrip().startswith("%%cpp")


def stub_line(exercise: str, indent: str, cpp: bool) -> str:
    if cpp:
        return f'{indent}throw std::logic_error("not implemented: {exercise}");\n'
    return (f'{indent}raise NotImplementedError("{exercise}: not implemented yet; '
            f'write your solution here")\n')


def stub_solution(source: str, exercise: str) -> str:
    """Replace each BEGIN/END SOLUTION block with a stub at the marker's indentation."""
    out, inside, cpp = [], False, is_cpp_cell(source)
    for line in source.splitlines(keepends=True):
        begin = BEGIN_SOLUTION.match(line.rstrip("\n"))
        if begin and not inside:
            inside = True
            out.append(stub_line(exercise, begin.group(1), cpp))
        elif inside and END_SOLUTION.match(line.rstrip("\n")):
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GradingError(f"{exercise}: BEGIN SOLUTION without END SOLUTION")
    return "".join(out).rstrip("\n")


def solution_lines(source: str) -> list[str]:
    """The answer lines of a solution cell (between the markers), stripped."""
    lines, inside = [], False
    for line in source.splitlines():
        if BEGIN_SOLUTION.match(line):
            inside = True
        elif END_SOLUTION.match(line):
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def checksum(cell) -> str:
    """nbgrader's cell checksum (nbgrader.utils.compute_checksum), so nbgrader can verify it."""
    meta = nbgrader_meta(cell)
    grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
    locked = False if solution else (True if grade else bool(meta.get("locked")))
    digest = hashlib.md5()
    for part in (source_of(cell), cell["cell_type"], str(grade), str(solution), str(locked),
                 str(meta["grade_id"])):
        digest.update(part.encode("utf-8"))
    if grade:
        digest.update(str(float(meta["points"])).encode())
    return digest.hexdigest()


def student_notebook(nb, notebook: str):
    """The released version of a source notebook: stubs, no hidden tests, no outputs."""
    import copy

    nb = copy.deepcopy(nb)
    exercises = exercises_of(nb, notebook)
    for cell in nb["cells"]:
        meta = nbgrader_meta(cell)
        if is_solution(cell):
            ex = exercise_of_solution(exercises, str(meta.get("grade_id", "")))
            cell["source"] = stub_solution(source_of(cell), ex)
        if is_test(cell):
            cell["source"] = strip_hidden(source_of(cell)).rstrip("\n")
            meta["locked"] = True
            cell.setdefault("metadata", {})["editable"] = False
            cell["metadata"]["deletable"] = False
        if meta:
            meta["checksum"] = checksum(cell)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb
