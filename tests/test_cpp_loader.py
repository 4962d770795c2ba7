"""course.cpp: the cppyy loader, its error messages, argument checks, kernels() and %%cpp."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from course import cpp

ADD = "int add(int a, int b) { return a + b; }  // test_cpp_loader\n"
SCALE = """\
#include <vector>
#define SQUARE(v) ((v) * (v))
void scale(float* out, const float* inp, int n, float a) {
    for (int i = 0; i < n; i++) out[i] = SQUARE(inp[i]) * a;
}
double total(const double* x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}
long count(const int32_t* idx, const int64_t* big, int n) { return idx[n - 1] + big[n - 1]; }
struct Point { int x; int y; };
template <typename T> T twice(T v) { return v * 2; }
"""


@pytest.fixture(scope="module")
def scale():
    return cpp.load(SCALE)


# --- re-run, edit, go back -------------------------------------------------------------------

def test_same_text_is_a_no_op_and_returns_the_same_handle():
    first = cpp.load(ADD)
    assert cpp.load(ADD) is first
    assert first.add(2, 3) == 5


def test_edited_text_gets_new_behaviour_and_old_text_the_old_one():
    old = cpp.load(ADD)
    new = cpp.load(ADD.replace("a + b", "a * b"))
    assert new.add(2, 3) == 6
    assert cpp.load(ADD).add(2, 3) == 5  # back to the first text: first behaviour
    assert cpp.load(ADD) is old


def test_handle_lists_what_the_text_defines(scale):
    assert {"scale", "total", "count", "Point", "twice"} <= set(dir(scale))
    assert scale.twice(21) == 42
    p = scale.Point()
    p.x = 3
    assert p.x == 3
    with pytest.raises(AttributeError, match="defines no C.. name 'nope'.*scale"):
        scale.nope


def test_hoisted_include_and_define_work_and_line_numbers_stay(scale):
    out = np.zeros(3, np.float32)
    scale.scale(out, np.array([1, 2, 3], np.float32), 3, 0.5)
    np.testing.assert_array_equal(out, [0.5, 2.0, 4.5])
    with pytest.raises(cpp.CppCompileError, match=r"cell:4:\d+: error"):
        cpp.load("#include <vector>\n#include <string>\n\nint f() { return undeclared_y; }\n")


# --- learner mistakes and compile errors -----------------------------------------------------

def test_main_gets_a_clear_message():
    with pytest.raises(cpp.CppCompileError, match=r"cell:2: this code defines `main`.*functions"):
        cpp.load("#include <cstdio>\nint main() { return 0; }\n")
    assert cpp.load("int main_loop(int n) { return n; }  // not main\n").main_loop(3) == 3


def test_using_namespace_std_at_top_level_is_refused_but_fine_in_a_function():
    with pytest.raises(cpp.CppCompileError, match=r"cell:1: `using namespace std;`.*std::vector"):
        cpp.load("using namespace std;\nint f() { return 1; }\n")
    ok = cpp.load("#include <vector>\nint g() { using namespace std; vector<int> v(4);"
                  " return v.size(); }\n")
    assert ok.g() == 4


def test_compile_error_shows_the_cells_own_lines_without_cling_noise():
    text = "// line 1\n// line 2\nint f(int x) {\n    return x + y;\n}\n"
    with pytest.raises(cpp.CppCompileError) as err:
        cpp.load(text)
    msg = str(err.value)
    assert "cell:4:16: error: use of undeclared identifier 'y'" in msg
    assert "^" in msg and "return x + y;" in msg
    assert "input_line" not in msg and "Failed to parse" not in msg and "__course_" not in msg
    with pytest.raises(cpp.CppCompileError):  # the failed text is not half-defined
        cpp.load(text)


def test_compile_error_notes_from_system_headers_are_shortened():
    with pytest.raises(cpp.CppCompileError) as err:
        cpp.load("#include <vector>\nvoid f() { std::vector<int> v; v.push_back(\"a\"); }\n")
    msg = str(err.value)
    assert "cell:2:" in msg and "no matching member function" in msg
    assert "/usr/include" not in msg


def test_missing_header_error_points_at_the_cell_line():
    with pytest.raises(cpp.CppCompileError, match=r"cell:2:\d+: fatal error: 'no_such.h'"):
        cpp.load('// x\n#include "no_such.h"\nint f() { return 1; }\n')


# --- crashes and C++ exceptions --------------------------------------------------------------

CRASHY = """\
#include <stdexcept>
#include <cstdlib>
int deref(int* p) { return *p; }
void write_far(float* a) { a[1L << 40] = 1.0f; }
void boom() { std::abort(); }
void stub() { throw std::logic_error("not implemented: ex06_dense_backward"); }
void bad_arg(int n) { if (n < 0) throw std::runtime_error("n must be >= 0"); }
int ok() { return 7; }
"""


def test_segfaults_and_abort_become_cpp_crash_and_the_process_lives():
    h = cpp.load(CRASHY)
    with pytest.raises(cpp.CppCrash, match="segmentation fault.*null pointer"):
        h.deref(None)
    with pytest.raises(cpp.CppCrash, match=r"(?s)index past the end.*a: float32\[4\]"):
        h.write_far(np.zeros(4, np.float32))
    with pytest.raises(cpp.CppCrash, match="abort"):
        h.boom()
    assert h.ok() == 7  # still alive
    assert cpp.load(ADD).add(1, 1) == 2


def test_cpp_exceptions_arrive_with_their_message():
    h = cpp.load(CRASHY)
    with pytest.raises(Exception, match="not implemented: ex06_dense_backward"):
        h.stub()
    with pytest.raises(Exception, match="n must be >= 0"):
        h.bad_arg(-1)
    h.bad_arg(1)


# --- argument checks -------------------------------------------------------------------------

def test_wrong_dtype_names_the_argument_and_the_fix(scale):
    out = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"'inp' has dtype float64 .* const float\*: "
                                         r"pass inp.astype\(np.float32\)"):
        scale.scale(out, np.zeros(3), 3, 1.0)
    with pytest.raises(ValueError, match=r"'x' has dtype float32 .* double\*.*float64"):
        scale.total(np.zeros(3, np.float32), 3)
    with pytest.raises(ValueError, match=r"'idx' has dtype int64 .* int32_t\*"):
        scale.count(np.zeros(2, np.int64), np.zeros(2, np.int64), 2)
    assert scale.count(np.array([1, 2], np.int32), np.array([10, 20], np.int64), 2) == 22
    assert scale.total(np.arange(4.0), 4) == 6.0


def test_non_contiguous_read_only_and_empty_arrays_are_refused(scale):
    out = np.zeros(3, np.float32)
    strided = np.arange(6, dtype=np.float32)[::2]
    with pytest.raises(ValueError, match=r"'inp' is not C-contiguous.*np.ascontiguousarray\(inp\)"):
        scale.scale(out, strided, 3, 1.0)
    frozen = np.zeros(3, np.float32)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match=r"'out' is read-only.*out.copy\(\)"):
        scale.scale(frozen, out, 3, 1.0)
    scale.scale(out, frozen, 3, 1.0)  # read-only is fine behind const float*
    with pytest.raises(ValueError, match=r"'out' is empty"):
        scale.scale(np.zeros(0, np.float32), out, 0, 1.0)
    np.testing.assert_array_equal(frozen, 0.0)


def test_wrong_kind_of_argument(scale):
    out = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"'inp' is a list .* float\*: pass a numpy array"):
        scale.scale(out, [1.0, 2.0, 3.0], 3, 1.0)
    with pytest.raises(ValueError, match=r"'n' is a numpy array .* int, a single number"):
        scale.scale(out, out, np.array([3]), 1.0)
    with pytest.raises(TypeError, match=r"scale takes 4 arguments \(out, inp, n, a\), got 3"):
        scale.scale(out, out, 3)


def test_as_array_helper():
    x = np.zeros((2, 3), np.float32)
    assert cpp.as_array(x, np.float32, "x") is x
    with pytest.raises(ValueError, match=r"'w' has dtype float64.*w.astype\(np.float32\)"):
        cpp.as_array(np.zeros(3), np.float32, "w")
    with pytest.raises(ValueError, match="'w' is a list"):
        cpp.as_array([1.0], np.float32, "w")
    with pytest.raises(ValueError, match="not C-contiguous"):
        cpp.as_array(x.T, np.float32, "x")


def test_signature_parsing():
    params = cpp._signatures(type("F", (), {"__doc__": (
        "void ns::f(float*__restrict out, const double*const p, float[] arr, unsigned int k, "
        "int def = 3, std::vector<int>& v)")})())[0]
    assert [p.name for p in params] == ["out", "p", "arr", "k", "def", "v"]
    assert [p.pointer for p in params] == [True, True, True, False, False, False]
    assert [p.const for p in params[:3]] == [False, True, False]
    assert params[1].dtype == np.float64 and params[2].dtype == np.float32
    assert params[3].number and not params[5].number


# --- files, kernels() and the student release ------------------------------------------------

def test_file_is_included_once_and_relative_includes_work(tmp_path):
    (tmp_path / "helper.h").write_text(
        "#pragma once\nnamespace loader_ns { inline int helper() { return 40; } }\n")
    main = tmp_path / "main.h"
    main.write_text('#pragma once\n#include "helper.h"\n'
                    "namespace loader_ns { inline int answer() { return helper() + 2; } }\n")
    h = cpp.load(main)
    assert h.answer() == 42 and h.helper() == 40
    assert cpp.load(str(main)) is h
    # A cell that includes the same header shares it instead of compiling it again.
    cell = cpp.load(f'#include "{main}"\nint via() {{ return loader_ns::answer(); }}\n')
    assert cell.via() == 42
    main.write_text(main.read_text() + "// edited\n")
    with pytest.raises(cpp.CppCompileError, match="changed since it was loaded"):
        cpp.load(main)
    with pytest.raises(FileNotFoundError, match="no C.. file"):
        cpp.load(tmp_path / "absent.h")


def test_kernels_handle_is_cached_and_checked():
    k = cpp.kernels()
    assert cpp.kernels() is k
    assert "dense_forward" in dir(k)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    weight = np.ones((4, 3), np.float32)
    out = np.zeros((2, 4), np.float32)
    k.dense_forward(out, x, weight, None, 2, 3, 4)  # None -> nullptr for the optional bias
    np.testing.assert_allclose(out, x @ weight.T)
    with pytest.raises(ValueError, match=r"'weight' has dtype float64"):
        k.dense_forward(out, x, weight.astype(np.float64), None, 2, 3, 4)
    # A learner cell that includes kernels.h shares the compiled kernels.
    cell = cpp.load('#include "kernels.h"\nvoid fwd(float* out, const float* x, '
                    "const float* w, int B, int C, int OC) { dense_forward(out, x, w, nullptr, "
                    "B, C, OC); }\n")
    out2 = np.zeros((2, 4), np.float32)
    cell.fwd(out2, x, weight, 2, 3, 4)
    np.testing.assert_array_equal(out, out2)


STANDIN = """\
#pragma once
#ifndef COURSE_KERNEL
#define COURSE_KERNEL inline
#endif
namespace standin {
COURSE_KERNEL void axpy(float* y, const float* x, float a, int N)%s
}
"""

RELEASE_SCRIPT = """\
import sys, numpy as np
from course import cpp
k = cpp.kernels(sys.argv[1])
y = np.ones(3, np.float32)
k.axpy(y, np.arange(3, dtype=np.float32), 2.0, 3)
print(y.tolist())
"""


def test_student_release_uses_the_prebuilt_library(tmp_path):
    src, release = tmp_path / "src", tmp_path / "release"
    src.mkdir(), release.mkdir()
    body = " { for (int i = 0; i < N; i++) y[i] += a * x[i]; }"
    (src / "kernels.h").write_text(STANDIN % body)
    lib = cpp.build_kernels_library(release / "lib", src)
    assert lib == release / "lib" / "libcourse_kernels.so" and lib.stat().st_size > 0
    (release / "kernels.h").write_text(STANDIN % ";")  # declarations only, as shipped
    # A fresh process, like a student's kernel: the header alone cannot run, the library can.
    run = subprocess.run([sys.executable, "-c", RELEASE_SCRIPT, str(release)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[1.0, 3.0, 5.0]"


def test_build_kernels_library_reports_compiler_errors(tmp_path):
    (tmp_path / "kernels.h").write_text("void broken( {\n")
    with pytest.raises(cpp.CppCompileError, match="g\\+\\+.*failed"):
        cpp.build_kernels_library(tmp_path / "lib", tmp_path)


def test_names_parsed_from_headers():
    code = cpp._code_only(textwrap.dedent("""\
        #define MACRO(x) x
        namespace k { int f(int a = g(1)); struct S { void m(); }; }
        static const int N = compute(3);
        template <class T> T h(T v) { return helper(v); }
        enum class Color { red };
        using vec = int;
        """))
    names = cpp._names_in(code)
    assert ("k", "f") in names and ("k", "S") in names and ("", "h") in names
    assert ("", "Color") in names and ("", "vec") in names
    assert not {n for _, n in names} & {"g", "m", "compute", "helper", "MACRO"}


# --- %%cpp -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    cpp.register_magic(ip)
    return ip


def test_magic_binds_the_handle_and_rerun_after_edit_works(shell, capsys):
    shell.run_cell("%%cpp sq\nint sq(int v) { return v * v; }\n").raise_error()
    assert shell.user_ns["sq"].sq(5) == 25
    assert capsys.readouterr().out == ""  # nothing printed on success
    shell.run_cell("%%cpp sq\nint sq(int v) { return v * v * v; }\n").raise_error()
    assert shell.user_ns["sq"].sq(2) == 8
    shell.run_cell("%%cpp\nint one() { return 1; }\n").raise_error()
    assert shell.user_ns["cpp"].one() == 1


def test_magic_compile_error_is_shown_and_raised(shell, capsys):
    result = shell.run_cell("%%cpp broken\nint f() {\n  return nope;\n}\n")
    assert isinstance(result.error_in_exec, cpp.CppCompileError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "cell:2:10: error: use of undeclared identifier 'nope'" in text
    assert "Traceback" not in text  # only the cleaned message, not our frames
    result = shell.run_cell("%%cpp 2bad\nint f() { return 1; }\n")
    assert isinstance(result.error_in_exec, ValueError)
