"""course.grading: exercise discovery, stubs, verdicts, and a hostile batch graded end to end.

The batch grades real submissions of the fixture notebooks in tests/fixtures/grading/source in
real sandboxed kernels: a correct one, a stub, and one student per attack in attacks/.
"""
import csv
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course import exercises, grading, release, sandbox

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
SOURCE = FIXTURES / "source"
ATTACKS = FIXTURES / "attacks"
PY_NB, CPP_NB = "01_python.ipynb", "02_cpp.ipynb"
MARK = "987654"  # the background attack runs `sleep 987654`
LIMITS = sandbox.Limits(cell_timeout=15, notebook_timeout=120, memory=3 << 30)


def source(name=PY_NB):
    return exercises.read_notebook(SOURCE / name)


def released(name=PY_NB):
    return exercises.student_notebook(source(name), name)


def cell_by_id(nb, grade_id):
    return next(c for c in nb.cells if exercises.nbgrader_meta(c).get("grade_id") == grade_id)


# ---------------------------------------------------------------------------------------------
# Discovery and text transforms


def test_exercises_are_discovered_with_points_and_solution_cells():
    found = exercises.exercises_of(source(), PY_NB)
    assert [(e.id, e.points, e.solution_ids) for e in found] == [
        ("fx01_scale", 2.0, ["fx01_scale_solution"]), ("fx01_count", 1.0, ["fx01_count_solution"])]


def test_duplicate_test_ids_are_an_authoring_error():
    nb = source()
    test = cell_by_id(nb, "fx01_scale")
    nb.cells.append(nbformat.from_dict(json.loads(json.dumps(test))))
    with pytest.raises(exercises.GradingError, match="duplicate grade_id 'fx01_scale'"):
        exercises.exercises_of(nb, PY_NB)


def test_python_stub_keeps_indentation_and_names_the_exercise():
    text = exercises.stub_solution(exercises.source_of(cell_by_id(source(), "fx01_scale_solution")),
                                 "fx01_scale")
    assert "np.asarray(x, dtype=np.float64) * factor" not in text
    assert '    raise NotImplementedError("fx01_scale: not implemented yet' in text
    compile(text, "stub", "exec")


def test_cpp_stub_throws_logic_error():
    text = exercises.stub_solution(exercises.source_of(cell_by_id(source(CPP_NB),
                                                              "fx02_add_one_solution")),
                                 "fx02_add_one")
    assert text.startswith("%%cpp fx")
    assert '    throw std::logic_error("not implemented: fx02_add_one");' in text
    assert "inp[i] + 1.0f" not in text


def test_unterminated_solution_is_an_error():
    with pytest.raises(exercises.GradingError, match="without END SOLUTION"):
        exercises.stub_solution("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "ex")


def test_hidden_tests_are_removed():
    test = exercises.source_of(cell_by_id(source(), "fx01_scale"))
    visible = exercises.strip_hidden(test)
    assert "HIDDEN" not in visible and "x_hidden" not in visible
    assert 'checks.close("scale([1, 2, 3], 2)"' in visible
    assert "x_hidden = rng_hidden.normal(size=(4, 3))" in exercises.hidden_lines(test)


def test_released_notebook_is_stubbed_locked_and_output_free():
    nb = released()
    test = cell_by_id(nb, "fx01_scale")
    assert test.metadata.nbgrader["locked"] is True
    assert test.metadata.nbgrader["checksum"] == exercises.checksum(test)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "NotImplementedError" in exercises.source_of(cell_by_id(nb, "fx01_count_solution"))


def test_checksum_matches_nbgrader():
    utils = pytest.importorskip("nbgrader.utils")
    for cell in released().cells:
        if exercises.nbgrader_meta(cell):
            assert exercises.checksum(cell) == utils.compute_checksum(cell)


def test_cpp_kernel_bodies_become_declarations():
    text = ("// f\n#define COURSE_KERNEL inline\nCOURSE_KERNEL void f(float* out, int N) {\n"
            "    const char* s = \"}{\";  // a brace } in a comment\n"
            "    for (int i = 0; i < N; i++) { out[i] = 0; }\n}\n"
            "COURSE_KERNEL int g(int a);\nint h() { return 1; }\n")
    out = release.declarations_only(text)
    assert "COURSE_KERNEL void f(float* out, int N);" in out
    assert "out[i] = 0" not in out and "COURSE_KERNEL int g(int a);" in out
    assert "int h() { return 1; }" in out  # not a kernel: left alone


# ---------------------------------------------------------------------------------------------
# Verdicts from records


def rec(name, value, kind="close", **extra):
    return {"name": name, "kind": kind, "value": value, "shape": None, "rtol": 1e-5,
            "atol": 1e-6, **extra}


def test_records_match_within_the_reference_tolerance():
    ref = [rec("a", [1.0, 2.0])]
    assert grading.compare_records([rec("a", [1.0, 2.0 + 1e-7])], ref) == ""
    assert "index (1,)" in grading.compare_records([rec("a", [1.0, 2.1])], ref)


def test_records_must_match_in_count_name_kind_and_shape():
    ref = [rec("a", [1.0, 2.0]), rec("b", 3.0)]
    assert "expected 2 checks" in grading.compare_records([rec("a", [1.0, 2.0])], ref)
    assert "did not run" in grading.compare_records([rec("b", 3.0), rec("a", [1.0, 2.0])], ref)
    assert "shape" in grading.compare_records([rec("a", [1.0]), rec("b", 3.0)], ref)
    assert "not numeric" in grading.compare_records([rec("a", None), rec("b", 3.0)], ref)
    assert "not numeric" in grading.compare_records([rec("a", "x"), rec("b", {"y": 1})], ref)


def test_nan_and_exact_kinds():
    assert grading.compare_records([rec("n", "nan")], [rec("n", 1.0)]) != ""
    assert grading.compare_records([rec("e", 2, "equal")], [rec("e", 2, "equal")]) == ""
    assert grading.compare_records([rec("e", 2.0000001, "equal")], [rec("e", 2, "equal")])


def test_at_least_uses_the_reference_threshold():
    ref = [rec("acc", 0.99, "at_least", threshold=0.95)]
    assert grading.compare_records([rec("acc", 0.96, "at_least", threshold=0.0)], ref) == ""
    assert "below" in grading.compare_records([rec("acc", 0.9, "at_least", threshold=0.0)], ref)


def test_error_statuses():
    assert grading.status_of_error("NotImplementedError", "ex: not implemented yet")[0] == "failed"
    assert grading.status_of_error("MemoryError", "")[0] == "memory"
    assert grading.status_of_error("SegmentationViolation", "segfault")[0] == "crashed"
    assert grading.status_of_error("SystemExit", "0")[0] == "error"
    assert grading.status_of_error("ExerciseFailure", "expected 1, got 2") == (
        "failed", "expected 1, got 2")


def test_messages_hide_hidden_test_source_and_volatile_text():
    text = grading.clean_message("\x1b[31mboom at 0x7f00deadbeef in /tmp/course-sandbox-ab12/w "
                                 "x_hidden = f(3)", hidden=["x_hidden = f(3)"])
    assert text == "boom at 0x... in <sandbox>/w [hidden test]"


# ---------------------------------------------------------------------------------------------
# Malformed submissions


def test_invalid_files_get_a_reason(tmp_path):
    cases = {"bad.ipynb": b"{not json", "v3.ipynb": json.dumps({"nbformat": 3}).encode(),
             "cells.ipynb": json.dumps({"nbformat": 4, "cells": [{"source": 1}]}).encode()}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    reasons = {n: grading.load_submission(tmp_path / n)[2] for n in cases}
    assert "not valid notebook JSON" in reasons["bad.ipynb"]
    assert "nbformat 3" in reasons["v3.ipynb"]
    assert "malformed" in reasons["cells.ipynb"]
    big = tmp_path / "big.ipynb"
    big.write_bytes(b" " * 2048)
    assert "over the" in grading.load_submission(big, max_bytes=1024)[2]
    (tmp_path / "link.ipynb").symlink_to(SOURCE / PY_NB)
    assert "links are not accepted" in grading.load_submission(tmp_path / "link.ipynb")[2]


def test_splice_takes_only_solution_cells_and_restores_tests():
    student = released()
    test = cell_by_id(student, "fx01_scale")
    test.source = 'checks.close("x", 1, 1)'
    student.cells.append(nbformat.v4.new_code_cell("stolen = 1"))
    spliced = grading.splice(source(), student, exercises.exercises_of(source(), PY_NB))
    sources = [exercises.source_of(c) for c in spliced.nb.cells]
    assert "stolen = 1" not in sources
    assert exercises.source_of(cell_by_id(source(), "fx01_scale")) in sources  # hidden included
    assert any("test cell edited" in n for n in spliced.notes)
    assert spliced.nb.cells[spliced.tests["fx01_scale"] - 1].metadata["course_grader"] == "guard"


# ---------------------------------------------------------------------------------------------
# The hostile batch: real kernels, real sandbox


def write_nb(path, nb):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def with_solution(name, grade_id, text):
    nb = released(name)
    cell_by_id(nb, grade_id).source = text
    return nb


def correct(name):
    nb = released(name)
    for cell in source(name).cells:
        if exercises.is_solution(cell):
            cell_by_id(nb, exercises.nbgrader_meta(cell)["grade_id"]).source = cell.source
    return nb


def build_batch(root, out, port):
    """SUBMISSIONS/<student>/<notebook>.ipynb for every case; returns the folder."""
    subs = root / "subs"
    for name in (PY_NB, CPP_NB):
        write_nb(subs / "correct" / name, correct(name))
        write_nb(subs / "stub" / name, released(name))
    fills = {"{SOURCE}": str(SOURCE / PY_NB), "{OUT}": str(out), "{PORT}": str(port),
             "{MARK}": MARK}
    for attack in sorted(ATTACKS.glob("*.*")):
        text = attack.read_text()
        for key, value in fills.items():
            text = text.replace(key, value)
        if attack.suffix == ".py":
            write_nb(subs / attack.stem / PY_NB, with_solution(PY_NB, "fx01_scale_solution", text))
        elif attack.suffix == ".cpp":
            write_nb(subs / attack.stem / CPP_NB,
                     with_solution(CPP_NB, "fx02_add_one_solution", text))
    cell_attacks(subs)
    malformed(subs)
    return subs


def cell_attacks(subs):
    """A wrong answer with the test cell edited, deleted, duplicated or made markdown."""
    wrong = "def scale(x, factor):\n    return [0.0]"
    edited = with_solution(PY_NB, "fx01_scale_solution", wrong)
    cell_by_id(edited, "fx01_scale").source = 'from course import checks\n' \
        'checks.close("scale([1, 2, 3], 2)", [2.0, 4.0, 6.0], [2.0, 4.0, 6.0])'
    deleted = with_solution(PY_NB, "fx01_scale_solution", wrong)
    deleted.cells = [c for c in deleted.cells
                     if exercises.nbgrader_meta(c).get("grade_id") != "fx01_scale"]
    duplicated = with_solution(PY_NB, "fx01_scale_solution", wrong)
    test = cell_by_id(duplicated, "fx01_scale")
    copy = nbformat.from_dict(json.loads(json.dumps(test)))
    copy["id"] = "duplicated-test-cell"
    duplicated.cells.insert(duplicated.cells.index(test), copy)
    markdown = with_solution(PY_NB, "fx01_scale_solution", wrong)
    cell = cell_by_id(markdown, "fx01_scale")
    markdown.cells[markdown.cells.index(cell)] = nbformat.v4.new_markdown_cell(
        cell.source, metadata=cell.metadata)
    correct_but_deleted = correct(PY_NB)
    correct_but_deleted.cells = [c for c in correct_but_deleted.cells
                                 if exercises.nbgrader_meta(c).get("grade_id") != "fx01_scale"]
    for name, nb in [("test_edited", edited), ("test_deleted", deleted),
                     ("test_duplicated", duplicated), ("test_markdown", markdown),
                     ("correct_test_deleted", correct_but_deleted)]:
        write_nb(subs / name / PY_NB, nb)


def malformed(subs):
    (subs / "bad_json").mkdir()
    (subs / "bad_json" / PY_NB).write_text("{ this is not json")
    (subs / "old_format").mkdir()
    (subs / "old_format" / PY_NB).write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    (subs / "empty").mkdir()
    write_nb(subs / "renamed" / "01_python (1).ipynb", correct(PY_NB))
    write_nb(subs / "renamed" / CPP_NB, correct(CPP_NB))
    huge = correct(PY_NB)
    huge.cells[1].outputs = [nbformat.v4.new_output("stream", text="y" * (21 << 20))]
    write_nb(subs / "huge_file" / PY_NB, huge)


def sleepers():
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and MARK in (entry / "cmdline").read_bytes().decode():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    out = root / "out"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    subs = build_batch(root, out, listener.getsockname()[1])
    try:
        rows = grading.grade(subs, out, SOURCE, jobs=2, limits=LIMITS, log=lambda *a: None)
    finally:
        listener.close()
    table = {(r["student"], r["notebook"], r["exercise"]): r for r in rows}
    return {"root": root, "out": out, "subs": subs, "rows": rows, "table": table}


def row(batch, student, exercise="fx01_scale"):
    notebook = PY_NB if exercise.startswith("fx01") else CPP_NB
    return batch["table"][(student, notebook, exercise)]


def test_correct_submission_gets_full_marks(batch):
    for ex in ("fx01_scale", "fx01_count", "fx02_add_one"):
        assert row(batch, "correct", ex)["status"] == "passed", row(batch, "correct", ex)
    assert sum(r["points"] for r in batch["rows"] if r["student"] == "correct") == 6


def test_stub_gets_zero_with_not_implemented(batch):
    for ex in ("fx01_scale", "fx01_count", "fx02_add_one"):
        r = row(batch, "stub", ex)
        assert (r["points"], r["status"]) == (0, "failed")
        assert "not implemented" in r["message"]


ATTACK_STATUS = {
    "infinite_loop": "timeout", "memory_bomb": "memory", "os_exit": "crashed",
    "sys_exit": "error", "always_equal": "failed", "print_passed": "failed",
    "patch_checks": "failed", "patch_checks_expected": "failed", "input_transformer": "failed",
    "patch_numpy_assert": "failed", "fake_results": "failed", "background_process": "failed",
    "huge_output": "failed", "fork_bomb": "failed", "read_source": "error", "network": "error",
    "hide_traceback": "failed",
}


@pytest.mark.parametrize("attack", sorted(ATTACK_STATUS))
def test_attack_gets_zero_with_a_clear_status(batch, attack):
    r = row(batch, attack)
    assert r["points"] == 0, r
    assert r["status"] == ATTACK_STATUS[attack], r


def test_segfault_in_cpp_is_contained(batch):
    r = row(batch, "segfault", "fx02_add_one")
    assert (r["points"], r["status"]) == (0, "crashed"), r
    assert row(batch, "segfault", "fx01_scale")["status"] == "missing"


def test_os_exit_takes_down_the_rest_of_that_notebook(batch):
    r = row(batch, "os_exit", "fx01_count")
    assert (r["points"], r["status"]) == (0, "crashed")


def test_test_cells_are_graded_from_the_source(batch):
    for student in ("test_edited", "test_deleted", "test_duplicated", "test_markdown"):
        assert row(batch, student)["points"] == 0, row(batch, student)
    assert row(batch, "correct_test_deleted")["status"] == "passed"
    feedback = (batch["out"] / "feedback" / "test_markdown.md").read_text()
    assert "turned into markdown" in feedback


def test_malformed_input_is_invalid_with_a_reason(batch):
    assert "not valid notebook JSON" in row(batch, "bad_json")["message"]
    assert "nbformat 3" in row(batch, "old_format")["message"]
    assert "folder is empty" in row(batch, "empty", "fx02_add_one")["message"]
    assert "over the 20 MB limit" in row(batch, "huge_file")["message"]
    renamed = row(batch, "renamed")
    assert renamed["status"] == "invalid" and "01_python (1).ipynb" in renamed["message"]
    assert row(batch, "renamed", "fx02_add_one")["status"] == "passed"
    for student in ("bad_json", "old_format", "empty", "huge_file"):
        assert row(batch, student)["status"] == "invalid"


def test_every_student_has_every_exercise(batch):
    students = {p.name for p in batch["subs"].iterdir()}
    expected = {(s, nb, ex.id) for s in students
                for nb, exs in exercises.all_exercises(SOURCE).items() for ex in exs}
    assert expected <= set(batch["table"])
    assert {r["status"] for r in batch["rows"]} <= set(grading.STATUSES)


def test_no_process_outlives_grading(batch):
    assert sleepers() == []
    for n in range(sandbox.UID_COUNT):
        assert sandbox.pids_of_uid(sandbox.UID_BASE + n) == []


def test_fake_files_did_not_reach_the_output(batch):
    text = (batch["out"] / "grades.csv").read_text()
    assert "me,01,fx01_scale,2" not in text
    assert not (batch["out"] / ".reference" / "fake.json").exists()


def test_reports_are_written(batch):
    out = batch["out"]
    with open(out / "grades.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == grading.CSV_COLUMNS
        assert len(list(reader)) == len(batch["rows"])
    summary = (out / "summary.md").read_text()
    assert "| 01_python.ipynb | fx01_scale | 2 |" in summary
    assert (out / "scores.png").read_bytes().startswith(b"\x89PNG")
    hidden = [ln for p in SOURCE.glob("*.ipynb") for c in exercises.read_notebook(p).cells
              for ln in exercises.hidden_lines(exercises.source_of(c))]
    for feedback in (out / "feedback").glob("*.md"):
        text = feedback.read_text()
        assert not [ln for ln in hidden if ln in text], feedback.name


def test_rerun_resumes_and_gives_identical_grades(batch):
    before = (batch["out"] / "grades.csv").read_bytes()
    grading.grade(batch["subs"], batch["out"], SOURCE, jobs=2, limits=LIMITS,
                  log=lambda *a: None)
    assert (batch["out"] / "grades.csv").read_bytes() == before


def test_fresh_run_gives_identical_grades(batch, tmp_path):
    subs = tmp_path / "subs"
    for student in ("correct", "stub", "patch_checks_expected", "memory_bomb", "test_edited"):
        shutil.copytree(batch["subs"] / student, subs / student)
    rows = grading.grade(subs, tmp_path / "out", SOURCE, jobs=2, limits=LIMITS,
                         log=lambda *a: None)
    for r in rows:
        assert r == batch["table"][(r["student"], r["notebook"], r["exercise"])]


def test_grade_command_line(tmp_path):
    subs = tmp_path / "subs"
    write_nb(subs / "ann" / PY_NB, correct(PY_NB))
    cmd = [sys.executable, "-m", "course", "grade", "subs", "--out", "out",  # relative paths
           "--source", str(SOURCE), "-j", "2", "--cell-timeout", "30"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    grades = (tmp_path / "out" / "grades.csv").read_text()
    assert "ann,01_python.ipynb,fx01_scale,2,2,passed," in grades
    assert "ann,02_cpp.ipynb,fx02_add_one,0,3,missing," in grades


def test_bad_submissions_path_is_a_clear_error(tmp_path):
    with pytest.raises(exercises.GradingError, match="is not a folder"):
        grading.grade(tmp_path / "nope", tmp_path / "out", SOURCE)
