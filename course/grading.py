"""Exercises checked and graded: `course check` and `course grade`.

`check` runs a learner's visible tests. `grade` runs each submission's solution cells spliced
into the instructor's source notebook in a sandbox (`course.sandbox`), reads the values each
`course.checks` call recorded, and compares them here, in the grader, with the values the source
notebook itself recorded. The exercise format is `course.exercises`; the student version is
`course.release`. docs/instructor.md and docs/authoring.md describe the flow.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from course import sandbox
from course.exercises import (Exercise, GradingError, exercise_of_solution, exercises_of,
                              hidden_lines, is_cpp_cell, is_solution, nbgrader_meta,
                              read_notebook, source_notebooks, source_of, strip_hidden,
                              stub_solution)
from course.release import release_support, write_atomic

GRADER_VERSION = "1"
STATUSES = ("passed", "failed", "error", "timeout", "memory", "crashed", "missing", "invalid")
CSV_COLUMNS = ["student", "notebook", "exercise", "points", "max_points", "status", "message"]
MAX_FILE_BYTES = 20 << 20
MAX_SOLUTION_CHARS = 200_000


# ---------------------------------------------------------------------------------------------
# The notebook that is graded: source cells, the student's solution cells, a guard per test

# Runs first, before any student code: remembers IPython's own machinery.
PRELUDE = """\
def _course_snapshot():
    import sys
    ip = get_ipython()
    tm = ip.input_transformer_manager
    names = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell",
             "should_run_async", "transform_ast")
    sys._course_guard_state = {
        "cleanup": list(tm.cleanup_transforms), "line": list(tm.line_transforms),
        "token": list(tm.token_transformers),
        "methods": {n: type(ip).__dict__.get(n) for n in names},
        "events": {k: list(v) for k, v in ip.events.callbacks.items()},
    }
_course_snapshot()
del _course_snapshot
"""

# Runs before every test cell: a fresh course.checks and IPython's machinery as it was.
GUARD = """\
def _course_guard():
    import importlib, sys, types
    ip = get_ipython()
    state = sys._course_guard_state
    tm = ip.input_transformer_manager
    tm.cleanup_transforms[:] = state["cleanup"]
    tm.line_transforms[:] = state["line"]
    tm.token_transformers[:] = state["token"]
    ip.input_transformers_post[:] = []
    ip.ast_transformers[:] = []
    for name, method in state["methods"].items():
        ip.__dict__.pop(name, None)
        if method is not None:
            setattr(type(ip), name, method)
    for event, callbacks in state["events"].items():
        ip.events.callbacks[event][:] = callbacks
    sys.modules.pop("course.checks", None)
    course = importlib.import_module("course")
    checks = importlib.import_module("course.checks")
    course.checks = checks
    public = {n for n in dir(checks) if not n.startswith("_")}
    ns = ip.user_ns
    for key, value in list(ns.items()):
        if isinstance(value, types.ModuleType) and value.__name__ == "course.checks":
            ns[key] = checks
        elif key in public and callable(value) and ns[key] is not getattr(checks, key):
            ns[key] = getattr(checks, key)
_course_guard()
del _course_guard
"""


def _code_cell(source: str, role: str):
    from nbformat.v4 import new_code_cell

    return new_code_cell(source, metadata={"course_grader": role})


@dataclass
class Spliced:
    """The notebook to run, where each exercise's cells sit, and notes for the feedback."""

    nb: object
    tests: dict[str, int]
    solutions: dict[str, list[int]]
    notes: list[str]


def _student_cells(student_nb) -> dict[str, list]:
    cells: dict[str, list] = {}
    for cell in student_nb.get("cells", []) if student_nb else []:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if isinstance(grade_id, str):
            cells.setdefault(grade_id, []).append(cell)
    return cells


def _test_cell_note(ex: Exercise, released: str, found: list) -> str:
    if not found:
        return f"{ex.id}: test cell deleted; graded from the source"
    if len(found) > 1:
        return f"{ex.id}: test cell duplicated; graded once, from the source"
    if found[0].get("cell_type") != "code":
        return f"{ex.id}: test cell turned into {found[0].get('cell_type')}; graded from source"
    if source_of(found[0]).strip() != released.strip():
        return f"{ex.id}: test cell edited; your edits were ignored (restored from the source)"
    return ""


def _student_solution(src_cell, found: list, exercise: str) -> tuple[str, str]:
    """The student's source for one solution cell, or the stub, and a note when it is a stub."""
    stub = stub_solution(source_of(src_cell), exercise)
    code = [c for c in found if c.get("cell_type") == "code"]
    grade_id = nbgrader_meta(src_cell).get("grade_id")
    if not code:
        return stub, f"{exercise}: solution cell {grade_id} not found; graded as not implemented"
    text = source_of(code[0])
    first = source_of(src_cell).lstrip().split("\n", 1)[0].strip()
    if is_cpp_cell(source_of(src_cell)) and text.lstrip().split("\n", 1)[0].strip() != first:
        return stub, f"{exercise}: solution cell must start with `{first}`; graded as a stub"
    note = f"{exercise}: {len(code)} cells with grade_id {grade_id}; the first was graded"
    return text, note if len(code) > 1 else ""


def splice(source_nb, student_nb, exercises: list[Exercise]) -> Spliced:
    """Source notebook + student's solution cells (by grade_id) + guard cells; no outputs."""
    import copy

    nb = copy.deepcopy(source_nb)
    found = _student_cells(student_nb)
    by_test = {ex.test_index: ex for ex in exercises}
    cells, tests, solutions, notes = [_code_cell(PRELUDE, "prelude")], {}, {}, []
    for index, cell in enumerate(nb["cells"]):
        meta = nbgrader_meta(cell)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if is_solution(cell) and student_nb is not None:
            ex = exercise_of_solution(exercises, str(meta.get("grade_id")))
            cell["source"], note = _student_solution(cell, found.get(meta.get("grade_id"), []),
                                                     ex)
            notes += [note] if note else []
            solutions.setdefault(ex, []).append(len(cells))
        elif is_solution(cell):
            ex = exercise_of_solution(exercises, str(meta.get("grade_id")))
            solutions.setdefault(ex, []).append(len(cells))
        if index in by_test:
            ex = by_test[index]
            if student_nb is not None:
                released = strip_hidden(source_of(cell))
                note = _test_cell_note(ex, released, found.get(ex.id, []))
                notes += [note] if note else []
            cells.append(_code_cell(GUARD, "guard"))
            tests[ex.id] = len(cells)
        cells.append(cell)
    nb["cells"] = cells
    return Spliced(nb, tests, solutions, notes)


def splice_variants(source_nb, exercises: list[Exercise], variants: dict) -> Spliced:
    """Many wrong answers in one run: `variants[ex_id]` = [(label, solution source), ...].

    The stub replaces the solution; right after the exercise's test cell each variant's
    solution cell runs, then the guard and the test cell again. Results are keyed
    "<exercise>::stub" and "<exercise>::<label>". Exercises are leaves, so one exercise's
    variants cannot change another's verdict. For validating exercises (tests/test_exercises.py).
    """
    import copy

    base = splice(source_nb, None, exercises)
    cells, tests, solutions = [], {}, {}
    by_test = {i: ex for ex, i in base.tests.items()}
    sol_cells = {i: ex for ex, idx in base.solutions.items() for i in idx}
    for index, cell in enumerate(base.nb["cells"]):
        if index in sol_cells:
            cell["source"] = stub_solution(source_of(cell), sol_cells[index])
            solutions.setdefault(f"{sol_cells[index]}::stub", []).append(len(cells))
        cells.append(cell)
        ex = by_test.get(index)
        if ex is None:
            continue
        tests[f"{ex}::stub"] = len(cells) - 1
        for label, text in variants.get(ex, []):
            solutions[f"{ex}::{label}"] = [len(cells)]
            cells.append(_code_cell(text, "variant"))
            cells.append(_code_cell(GUARD, "guard"))
            tests[f"{ex}::{label}"] = len(cells)
            cells.append(copy.deepcopy(cell))
    base.nb["cells"] = cells
    return Spliced(base.nb, tests, solutions, [])


def variant_view(run: dict, exercise: str, label: str) -> dict:
    """The part of a `splice_variants` run that `verdict` needs for one variant."""
    key = f"{exercise}::{label}"
    return {"tests": {exercise: run["tests"][key]},
            "solutions": {exercise: run["solutions"].get(key, [])}}


# ---------------------------------------------------------------------------------------------
# Records and verdicts (computed here, never in the kernel)


def records_of(outputs: list) -> list:
    return [out["data"][sandbox.RECORD_MIME] for out in outputs
            if isinstance(out, dict) and out.get("output_type") == "display_data"
            and sandbox.RECORD_MIME in (out.get("data") or {})]


def _as_array(value):
    import numpy as np

    def number(x):
        if isinstance(x, str) and x in ("nan", "inf", "-inf"):
            return float(x)
        if isinstance(x, bool) or not isinstance(x, (int, float, list)):
            raise ValueError("not a number")
        return [number(v) for v in x] if isinstance(x, list) else float(x)

    return np.asarray(number(value), dtype=np.float64)


def compare_record(got: dict, ref: dict) -> str:
    """Empty when the student's record matches the reference's; else what differs."""
    import numpy as np

    name = str(ref.get("name"))
    if not isinstance(got, dict) or got.get("name") != ref.get("name") \
            or got.get("kind") != ref.get("kind"):
        return f"check {name!r} did not run where the reference's did"
    try:
        value = _as_array(got.get("value"))
        expected = _as_array(ref.get("value"))
    except (ValueError, TypeError):
        return f"check {name!r}: the value is not numeric"
    kind = ref.get("kind")
    if kind == "at_least":
        ok = value.size == 1 and float(value.reshape(-1)[0]) >= float(ref.get("threshold"))
        return "" if ok else f"check {name!r}: below the required {ref.get('threshold')}"
    if value.shape != expected.shape:
        return f"check {name!r}: shape {list(value.shape)}, expected {list(expected.shape)}"
    if kind in ("equal", "is_true") or ref.get("rtol") is None:
        same = (value == expected) | (np.isnan(value) & np.isnan(expected))
    else:
        rtol, atol = float(ref.get("rtol") or 0), float(ref.get("atol") or 0)
        same = np.isclose(value, expected, rtol=rtol, atol=atol, equal_nan=True)
    if bool(np.all(same)):
        return ""
    where = np.unravel_index(int(np.argmin(same)), same.shape) if same.shape else ()
    at = f" at index {tuple(int(i) for i in where)}" if where else ""
    return f"check {name!r}: differs from the reference{at} ({int((~same).sum())} of " \
           f"{same.size} values)"


def compare_records(got: list, ref: list) -> str:
    if len(got) != len(ref):
        names = [str(r.get("name")) for r in ref]
        return f"expected {len(ref)} checks to run ({', '.join(names)[:200]}), {len(got)} did"
    for g, r in zip(got, ref):
        message = compare_record(g, r)
        if message:
            return message
    return ""


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clean_message(text: str, hidden: list[str] = (), limit: int = 400) -> str:
    """One line, no colour codes, no addresses or sandbox paths, no hidden test source."""
    text = ANSI.sub("", str(text))
    text = re.sub(r"0x[0-9a-fA-F]{6,}", "0x...", text)
    text = re.sub(r"/tmp/course-sandbox-[^/\s]+", "<sandbox>", text)
    for line in hidden:
        text = text.replace(line, "[hidden test]")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def status_of_error(ename: str, evalue: str) -> tuple[str, str]:
    """Map a cell's error to a grade status and the start of its message."""
    low = f"{ename} {evalue}".lower()
    if "not implemented" in low or ename == "NotImplementedError":
        return "failed", evalue if "not implemented" in evalue.lower() else \
            "not implemented: " + evalue
    if ename == "MemoryError" or "bad_alloc" in low or "cannot allocate memory" in low:
        return "memory", f"out of memory ({ename}: {evalue})"
    if ename in ("SegmentationViolation", "BusError", "IllegalInstruction", "AbortSignal",
                 "CppCrash") or "segmentation" in low:
        return "crashed", f"{ename}: {evalue}"
    if ename in ("ExerciseFailure", "AssertionError"):
        return "failed", evalue
    if ename in ("SystemExit", "KeyboardInterrupt"):
        return "error", f"{ename}: the notebook tried to exit or was interrupted ({evalue})"
    return "error", f"{ename}: {evalue}"


def _cell_status(result: dict) -> tuple[str, str]:
    status = result.get("status")
    if status == "timeout":
        return "timeout", result.get("evalue") or "time limit reached"
    if status == "dead":
        return "crashed", result.get("evalue") or "the kernel died"
    if status == "error":
        return status_of_error(result.get("ename", ""), result.get("evalue", ""))
    return "", ""


def verdict(ex: Exercise, run: dict, reference: dict, hidden: list[str]) -> tuple:
    """(points, status, message) of one exercise from a run's cell results."""
    for sol in run["solutions"].get(ex.id, []):
        status, message = _cell_status(sol)
        if status:  # a solution cell must run cleanly: no exit, no crash, no error
            return 0.0, status, clean_message("solution cell: " + message, hidden)
    test = run["tests"].get(ex.id)
    if test is None:
        return 0.0, "error", "the test cell did not run"
    status, message = _cell_status(test)
    if status:
        return 0.0, status, clean_message(message, hidden)
    mismatch = compare_records(test.get("records", []), reference["tests"][ex.id]["records"])
    if mismatch:
        return 0.0, "failed", clean_message(mismatch, hidden)
    return ex.points, "passed", ""


# ---------------------------------------------------------------------------------------------
# Running: one notebook in a sandbox -> plain JSON results


def _result_json(result: sandbox.CellResult, with_records: bool) -> dict:
    out = {"status": result.status, "ename": result.ename, "evalue": result.evalue[:2000]}
    if with_records:
        out["records"] = records_of(result.outputs)
        out["truncated"] = result.truncated
    return out


def run_spliced(spliced: Spliced, limits: sandbox.Limits, isolation: sandbox.Isolation,
                env: dict | None = None) -> dict:
    """Execute a spliced notebook; results per exercise as plain JSON (no kernel objects)."""
    env = {"COURSE_RECORD": "1", **(env or {})}
    results = sandbox.run_notebook(spliced.nb, limits=limits, isolation=isolation, env=env)
    for result in results.values():
        if result.ename == "KernelStartFailed":  # before any notebook code: the grader's fault
            raise GradingError(f"the sandboxed kernel did not start: {result.evalue}")
    missing = sandbox.CellResult("dead", evalue="not run")
    return {
        "tests": {ex: _result_json(results.get(i, missing), True)
                  for ex, i in spliced.tests.items()},
        "solutions": {ex: [_result_json(results.get(i, missing), False) for i in idx]
                      for ex, idx in spliced.solutions.items()},
        "notes": spliced.notes,
    }


def passthrough_env() -> dict[str, str]:
    """The grader's settings the kernel needs (where the ONNX Runtime headers are)."""
    return {k: os.environ[k] for k in ("ORT_INCLUDE_DIR", "CONDA_PREFIX") if k in os.environ}


def reference_run(source_nb, exercises: list[Exercise], notebook: str,
                  limits: sandbox.Limits) -> dict:
    """Run the trusted source notebook (no sandbox: it needs the real sources) and check it."""
    run = run_spliced(splice(source_nb, None, exercises), limits, sandbox.Isolation(enabled=False),
                      passthrough_env())
    for ex in exercises:
        test = run["tests"][ex.id]
        if test["status"] != "ok" or not test["records"]:
            why = f"{test['ename']}: {test['evalue']}" if test["status"] != "ok" else \
                "no course.checks record (does the test cell call course.checks?)"
            raise GradingError(f"reference run of {notebook}: {ex.id} does not pass with the "
                               f"instructor's solution: {clean_message(why)}")
    return run


# ---------------------------------------------------------------------------------------------
# Submissions: what each student folder holds


def file_hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def load_submission(path: Path, max_bytes: int = MAX_FILE_BYTES):
    """(notebook, raw bytes, "") for a usable submission, or (None, b"", reason) if invalid."""
    import nbformat

    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return None, b"", f"{path.name} is not a regular file (links are not accepted)"
    if info.st_size > max_bytes:
        return None, b"", (f"{path.name} is {info.st_size / 2**20:.1f} MB, over the "
                           f"{max_bytes / 2**20:.0f} MB limit: clear all outputs and resubmit")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(max_bytes + 1)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, raw, f"{path.name} is not valid notebook JSON ({err})"
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        found = data.get("nbformat") if isinstance(data, dict) else type(data).__name__
        return None, raw, f"{path.name} has nbformat {found!r}; expected 4 (save from Jupyter)"
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(_cell_ok(c) for c in cells):
        return None, raw, f"{path.name}: the cells are malformed (each needs cell_type, source)"
    return nbformat.from_dict(data), raw, ""


def _cell_ok(cell) -> bool:
    if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
        return False
    src = cell.get("source", "")
    ok = isinstance(src, str) or (isinstance(src, list) and all(isinstance(s, str) for s in src))
    meta = cell.setdefault("metadata", {})
    return ok and isinstance(meta, dict) and len(source_of(cell)) <= MAX_SOLUTION_CHARS


@dataclass
class Folder:
    """A student folder: usable notebooks, invalid ones (reason), and unexpected files."""

    student: str
    notebooks: dict = field(default_factory=dict)  # name -> (nb, raw)
    invalid: dict = field(default_factory=dict)  # name -> reason
    extra: list = field(default_factory=list)
    empty: bool = False


def inspect_folder(folder: Path, expected: list[str]) -> Folder:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    result = Folder(folder.name, empty=not entries)
    for path in entries:
        if path.name not in expected:
            result.extra.append(path.name)
            continue
        nb, raw, reason = load_submission(path)
        if reason:
            result.invalid[path.name] = reason
        else:
            result.notebooks[path.name] = (nb, raw)
    return result


def missing_status(folder: Folder, notebook: str) -> tuple[str, str]:
    if folder.empty:
        return "invalid", "the submission folder is empty"
    if notebook in folder.invalid:
        return "invalid", folder.invalid[notebook]
    if folder.extra:
        return "invalid", (f"{notebook} not found; unexpected files: {', '.join(folder.extra)} "
                           "(submit with the released file names)")
    return "missing", f"{notebook} was not submitted"


# ---------------------------------------------------------------------------------------------
# Grading a batch


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stage_support(out: Path, repo: Path) -> Path:
    """What the sandbox may see of the course: the release's package and cpp_snippets."""
    from course import cpp

    package = Path(__file__).resolve().parent
    parts = [p.read_bytes() for p in sorted(package.glob("*.py"))]
    parts += [p.read_bytes() for p in sorted(Path(cpp.SNIPPETS).glob("*.h"))]
    stage = out / ".stage" / file_hash(*parts)[:16]
    if not (stage / "done").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=_private_dir(out / ".stage")))
        release_support(tmp, repo)
        (tmp / "done").write_text("ok\n")
        tmp.chmod(0o755)
        if stage.exists():
            shutil.rmtree(stage)
        os.replace(tmp, stage)
    (out / ".stage").chmod(0o711)
    return stage


def grading_isolation(stage: Path, hide: list[Path]) -> sandbox.Isolation:
    """Hide the repo (but the venv), submissions, OUT; show the staged package and snippets."""
    import course
    from course import cpp

    package = Path(course.__file__).resolve().parent
    snippets = Path(cpp.SNIPPETS).resolve()
    needed = [Path(sys.prefix).resolve(), package, snippets]
    repo = Path(course.REPO).resolve()
    candidates = [p for p in repo.iterdir() if p.is_dir() and not p.is_symlink()]
    candidates += [Path(p).resolve() for p in hide]
    hidden = []
    for path in candidates:
        inside = any(n == path or path in n.parents for n in needed)
        if path.exists() and not inside and path not in hidden:
            hidden.append(path)
    hidden = [p for p in hidden if not any(h in p.parents for h in hidden)]  # outermost only
    binds = {package: stage / "course"}
    if (stage / "cpp_snippets").is_dir():
        binds[snippets] = stage / "cpp_snippets"
    headers = ort_headers_root()
    if headers is not None and any(h == headers or h in headers.parents for h in hidden):
        binds[headers] = headers  # ONNX Runtime's C++ headers (course setup-ort) stay visible
    return sandbox.Isolation(hide=hidden, binds=binds)


def ort_headers_root() -> Path | None:
    """Where `course setup-ort` (or ORT_INCLUDE_DIR) put the ONNX Runtime C++ headers."""
    from course import ort_headers

    found = ort_headers.find_ort_headers()
    if found is None:
        return None
    cache = Path(ort_headers.ORT_CACHE).resolve()
    found = Path(found).resolve()
    return cache if cache in found.parents else found


@dataclass
class Batch:
    """Everything a grading run needs to know."""

    submissions: Path
    out: Path
    source_dir: Path
    limits: sandbox.Limits
    isolation: sandbox.Isolation | None = None
    sources: dict = field(default_factory=dict)  # notebook -> source nb
    exercises: dict = field(default_factory=dict)  # notebook -> [Exercise]
    hashes: dict = field(default_factory=dict)  # notebook -> source hash


def _reference(batch: Batch, notebook: str) -> dict:
    path = _private_dir(batch.out / ".reference") / f"{notebook}.{batch.hashes[notebook]}.json"
    cached = _read_json(path)
    if cached is not None:
        return cached
    run = reference_run(batch.sources[notebook], batch.exercises[notebook], notebook,
                        batch.limits)
    write_atomic(path, json.dumps(run))
    return run


def _cache_path(batch: Batch, student: str, notebook: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student)[:60]
    tag = hashlib.sha256(student.encode()).hexdigest()[:8]
    return _private_dir(batch.out / ".cache" / f"{safe}-{tag}") / f"{notebook}.json"


def _student_run(batch: Batch, student: str, notebook: str, raw: bytes, nb) -> dict:
    limits = json.dumps(batch.limits.__dict__, sort_keys=True).encode()
    key = file_hash(GRADER_VERSION.encode(), batch.hashes[notebook].encode(), limits, raw)
    path = _cache_path(batch, student, notebook)
    cached = _read_json(path)
    if cached is not None and cached.get("key") == key:
        return cached["run"]
    spliced = splice(batch.sources[notebook], nb, batch.exercises[notebook])
    run = run_spliced(spliced, batch.limits, batch.isolation, passthrough_env())
    write_atomic(path, json.dumps({"key": key, "run": run}))
    return run


def _rows(batch: Batch, folder: Folder, runs: dict, refs: dict) -> tuple[list, list]:
    rows, notes = [], []
    for notebook, exercises in batch.exercises.items():
        run = runs.get(notebook)
        cells = batch.sources[notebook]["cells"]
        hidden = [ln for ex in exercises for ln in hidden_lines(source_of(cells[ex.test_index]))]
        if run is not None:
            notes += [f"{notebook}: {n}" for n in run["notes"]]
        for ex in exercises:
            if run is None:
                status, message = missing_status(folder, notebook)
                points = 0.0
            else:
                points, status, message = verdict(ex, run, refs[notebook], hidden)
            rows.append({"student": folder.student, "notebook": notebook, "exercise": ex.id,
                         "points": points, "max_points": ex.points, "status": status,
                         "message": message})
    for name in folder.extra:
        rows.append({"student": folder.student, "notebook": name, "exercise": "", "points": 0.0,
                     "max_points": 0.0, "status": "invalid",
                     "message": "unexpected file, not graded: submit only the course notebooks"})
    return rows, notes


def prepare_batch(submissions, out, source_dir=None, limits=None, isolate=None) -> Batch:
    import course

    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder; expected SUBMISSIONS/<student>/"
                           "<notebook>.ipynb")
    out.mkdir(parents=True, exist_ok=True)
    batch = Batch(submissions, out, Path(source_dir or course.NOTEBOOKS).resolve(),
                  limits or sandbox.Limits())
    for path in source_notebooks(batch.source_dir):
        batch.sources[path.name] = read_notebook(path)
        batch.exercises[path.name] = exercises_of(batch.sources[path.name], path.name)
        batch.hashes[path.name] = file_hash(GRADER_VERSION.encode(), path.read_bytes())[:16]
    use_ns = (not sandbox.isolation_report()) if isolate is None else isolate
    if use_ns:
        stage = stage_support(out, Path(course.REPO))
        hide = [submissions, out, batch.source_dir]
        batch.isolation = grading_isolation(stage, hide)
    else:
        batch.isolation = sandbox.Isolation(enabled=False)
    return batch


def grade(submissions, out, source_dir=None, jobs: int = 1, limits=None, isolate=None,
          log=print) -> list[dict]:
    """Grade SUBMISSIONS/<student>/<notebook>.ipynb into OUT; returns the grades.csv rows."""
    batch = prepare_batch(submissions, out, source_dir, limits, isolate)
    folders = [inspect_folder(p, list(batch.sources))
               for p in sorted(batch.submissions.iterdir())
               if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    work = [(f.student, nb, raw, parsed) for f in folders
            for nb, (parsed, raw) in sorted(f.notebooks.items())]
    needed = sorted({nb for _, nb, _, _ in work})
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        ref_futures = {nb: pool.submit(_reference, batch, nb) for nb in needed}
        run_futures = {(s, nb): pool.submit(_student_run, batch, s, nb, raw, parsed)
                       for s, nb, raw, parsed in work}
        refs = {nb: fut.result() for nb, fut in ref_futures.items()}
        runs = {key: fut.result() for key, fut in run_futures.items()}
    rows, notes = [], {}
    for folder in folders:
        mine = {nb: runs[(s, nb)] for (s, nb) in runs if s == folder.student}
        student_rows, notes[folder.student] = _rows(batch, folder, mine, refs)
        rows += student_rows
        log(f"{folder.student}: {sum(r['points'] for r in student_rows):g} / "
            f"{sum(r['max_points'] for r in student_rows):g}")
    write_reports(batch, rows, notes)
    return rows


# ---------------------------------------------------------------------------------------------
# Reports: grades.csv, feedback/<student>.md, summary.md, scores.png


def _fmt_points(x: float) -> str:
    return f"{x:g}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def grades_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "points": _fmt_points(row["points"]),
                         "max_points": _fmt_points(row["max_points"])})
    return buffer.getvalue()


def feedback_md(student: str, rows: list[dict], notes: list[str]) -> str:
    total = sum(r["points"] for r in rows)
    possible = sum(r["max_points"] for r in rows)
    lines = [f"# Feedback: {_md(student)}", "", f"**Total: {total:g} / {possible:g} points**", ""]
    for notebook in dict.fromkeys(r["notebook"] for r in rows):
        lines += [f"## {_md(notebook)}", "", "| exercise | points | status | message |",
                  "| --- | --- | --- | --- |"]
        for r in (r for r in rows if r["notebook"] == notebook):
            lines.append(f"| {_md(r['exercise']) or '-'} | {r['points']:g} / "
                         f"{r['max_points']:g} | {r['status']} | {_md(r['message'])} |")
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {_md(n)}" for n in notes] + [""]
    lines += ["Statuses: passed, failed (a check or not implemented), error (an exception), "
              "timeout, memory, crashed (the kernel died), missing, invalid (unreadable file).",
              ""]
    return "\n".join(lines)


def summary_md(rows: list[dict], isolation: str) -> str:
    students = sorted({r["student"] for r in rows})
    lines = ["# Grading summary", "", f"Students: {len(students)}", ""]
    lines += [f"Isolation: {isolation or 'full (uid, namespaces, rlimits)'}", ""]
    lines += ["| notebook | exercise | max | pass rate | mean points | statuses |",
              "| --- | --- | --- | --- | --- | --- |"]
    graded = [r for r in rows if r["exercise"]]
    for key in dict.fromkeys((r["notebook"], r["exercise"]) for r in graded):
        mine = [r for r in graded if (r["notebook"], r["exercise"]) == key]
        passed = sum(r["status"] == "passed" for r in mine)
        counts = {s: sum(r["status"] == s for r in mine) for s in STATUSES}
        text = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
        mean = sum(r["points"] for r in mine) / len(mine)
        lines.append(f"| {key[0]} | {key[1]} | {mine[0]['max_points']:g} | "
                     f"{passed}/{len(mine)} ({100 * passed / len(mine):.0f}%) | {mean:.2f} | "
                     f"{text} |")
    totals = student_totals(rows)
    if totals:
        import statistics

        values = sorted(totals.values())
        lines += ["", f"Total scores: min {values[0]:g}, median {statistics.median(values):g}, "
                  f"max {values[-1]:g} (see scores.png)", ""]
    return "\n".join(lines)


def student_totals(rows: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in rows:
        totals[r["student"]] = totals.get(r["student"], 0.0) + r["points"]
    return totals


def scores_png(rows: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = list(student_totals(rows).values())
    possible = max((sum(r["max_points"] for r in rows if r["student"] == s)
                    for s in student_totals(rows)), default=1.0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(totals, bins=min(20, max(5, len(totals))), range=(0, max(possible, 1e-9)),
            color="#4c72b0", edgecolor="white")
    ax.set_xlabel(f"total points (of {possible:g})")
    ax.set_ylabel("students")
    ax.set_title("Score distribution")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write_reports(batch: Batch, rows: list[dict], notes: dict[str, list[str]]) -> None:
    out = batch.out
    write_atomic(out / "grades.csv", grades_csv(rows))
    for student in dict.fromkeys(r["student"] for r in rows):
        mine = [r for r in rows if r["student"] == student]
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", student)
        write_atomic(out / "feedback" / f"{safe}.md", feedback_md(student, mine, notes[student]))
    isolation = "" if batch.isolation.enabled is not False else (
        "reduced (rlimits and a fresh session only): " + (sandbox.isolation_report() or
                                                          "disabled by the caller"))
    write_atomic(out / "summary.md", summary_md(rows, isolation))
    write_atomic(out / "scores.png", scores_png(rows))


# ---------------------------------------------------------------------------------------------
# Learner self-check


def check(notebook_path, timeout: int = 600, quiet: bool = False) -> list[dict]:
    """Run a notebook's visible tests in a fresh kernel; print and return one row per exercise.

    From a notebook cell, save first: this runs the file on disk, not the open notebook.
    """
    path = Path(notebook_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook; pass the path to an .ipynb file")
    nb = read_notebook(path)
    exercises = exercises_of(nb, path.name)
    for ex in exercises:
        cell = nb["cells"][ex.test_index]
        cell["source"] = strip_hidden(source_of(cell))
    limits = sandbox.Limits(cell_timeout=timeout, notebook_timeout=timeout * 4, rlimits=False)
    env = {k: v for k, v in os.environ.items() if k != "COURSE_RECORD"}
    results = sandbox.run_notebook(nb, limits=limits, isolation=sandbox.Isolation(enabled=False),
                                   env=env, cwd=str(path.resolve().parent))
    rows = []
    for result in results.values():
        if result.ename == "KernelStartFailed":
            raise GradingError(f"the kernel did not start: {result.evalue}")
    for ex in exercises:
        result = results.get(ex.test_index, sandbox.CellResult("dead", evalue="not run"))
        status, message = _cell_status(_result_json(result, False))
        rows.append({"exercise": ex.id, "points": ex.points,
                     "status": status if status else "passed",
                     "message": clean_message(message, limit=300)})
    if not quiet:
        print(check_table(rows))
    return rows


def check_table(rows: list[dict]) -> str:
    width = max([len("exercise")] + [len(r["exercise"]) for r in rows])
    lines = [f"{'exercise':<{width}}  points  status   message"]
    for r in rows:
        lines.append(f"{r['exercise']:<{width}}  {r['points']:>6g}  {r['status']:<8} "
                     f"{r['message']}")
    passed = sum(r["points"] for r in rows if r["status"] == "passed")
    lines.append(f"visible tests: {passed:g} / {sum(r['points'] for r in rows):g} points "
                 "(hidden tests run only when grading)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line (dispatched by course/__main__.py)


def check_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="course check", description="Run a notebook's "
                                     "visible exercise tests and print a table.")
    parser.add_argument("notebook", help="path to a lesson notebook (.ipynb)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    try:
        rows = check(args.notebook, timeout=args.timeout)
    except (FileNotFoundError, GradingError) as err:
        print(f"course check: {err}", file=sys.stderr)
        return 2
    return 0 if all(r["status"] == "passed" for r in rows) else 1


def grade_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="course grade", description="Autograde "
                                     "SUBMISSIONS/<student>/<notebook>.ipynb into OUT.")
    parser.add_argument("submissions")
    parser.add_argument("--out", required=True)
    parser.add_argument("-j", "--jobs", type=int, default=1, help="notebooks run in parallel")
    parser.add_argument("--source", default=None, help="source notebooks (default notebooks/)")
    parser.add_argument("--cell-timeout", type=int, default=sandbox.Limits.cell_timeout)
    parser.add_argument("--notebook-timeout", type=int, default=sandbox.Limits.notebook_timeout)
    parser.add_argument("--memory-gb", type=float, default=sandbox.Limits.memory / 2**30)
    args = parser.parse_args(argv)
    limits = sandbox.Limits(cell_timeout=args.cell_timeout,
                            notebook_timeout=args.notebook_timeout,
                            memory=int(args.memory_gb * 2**30))
    if sandbox.isolation_report():
        print(f"course grade: reduced isolation: {sandbox.isolation_report()}", file=sys.stderr)
    try:
        rows = grade(args.submissions, args.out, args.source, args.jobs, limits)
    except GradingError as err:
        print(f"course grade: {err}", file=sys.stderr)
        return 2
    print(f"graded {len(student_totals(rows))} students: {Path(args.out) / 'grades.csv'}")
    return 0


# ---------------------------------------------------------------------------------------------
# nbgrader interop


NBGRADER_CPP_STUB = '// YOUR CODE HERE\nthrow std::logic_error("not implemented");'


def nbgrader_preprocessors() -> list:
    """nbgrader's generate_assignment preprocessors, with a C++ stub for `%%cpp` solution cells.

    In nbgrader_config.py: `c.GenerateAssignment.preprocessors = nbgrader_preprocessors()`.
    """
    from nbgrader.converters.generate_assignment import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    class ClearSolutionsCpp(ClearSolutions):
        """ClearSolutions that stubs `%%cpp` cells in C++ instead of the notebook's language."""

        def preprocess_cell(self, cell, resources, cell_index):
            if not is_cpp_cell(source_of(cell)):
                return super().preprocess_cell(cell, resources, cell_index)
            stubs, language = dict(self.code_stub), resources["language"]
            self.code_stub, resources["language"] = {**stubs, "cpp": NBGRADER_CPP_STUB}, "cpp"
            try:
                return super().preprocess_cell(cell, resources, cell_index)
            finally:
                self.code_stub, resources["language"] = stubs, language

    default = GenerateAssignment.class_traits()["preprocessors"].default()
    return [ClearSolutionsCpp if p is ClearSolutions else p for p in default]
