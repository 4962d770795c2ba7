"""C++ from notebooks: compile with cppyy, call with checked arguments, run ONNX Runtime's C++ API.

``load(text)`` compiles a piece of C++ (a ``%%cpp`` cell) and returns a handle whose attributes
are the functions and classes it defines. Cling, the C++ interpreter inside cppyy, cannot
redefine a function, so the rule is:

* **Text is namespaced.** Each distinct text compiles once, into its own namespace
  ``__course_<sha1[:12]>``. Loading the same text again returns the same handle (a no-op); an
  edited text gets a new namespace; going back to an earlier text gives the earlier handle.
* **Preprocessor lines are hoisted.** ``#include`` and ``#define`` lines of a text are moved
  in front of the namespace (an ``#include <vector>`` inside a namespace breaks), so every header
  is compiled once, at global scope, guarded by its ``#pragma once``. A header included by a
  cell and by the engine (``kernels.h``) is therefore the same code. Definitions from one cell
  are not visible in another: share code through a header in ``cpp_snippets/``.
* **Files are included.** ``load(path)`` ``#include``s the file once at global scope (so its
  own ``#include "x.h"`` resolves next to it, and it is compiled once per process), and the
  handle exposes the names declared in it and in the local headers it includes. A file that
  changed after its first load needs a kernel restart (cling cannot redefine).

Functions on a handle are wrapped (`CppFunction`); classes, variables and namespaces are the
plain cppyy objects, so calls on a class's methods are not checked.

``cpp_snippets/`` is on the include path. Compile errors arrive as ``CppCompileError`` with the
cell's own line numbers; a segfault or abort arrives as ``CppCrash`` and the kernel lives;
numpy arrays are checked (dtype, contiguity, writeability, non-empty) before they reach a
``float*``. ``kernels()`` is the handle to the reference kernels, ``%%cpp NAME`` the magic, and
``ort_cpp_session(path)`` runs an ONNX model through ONNX Runtime's C++ API, whose headers
`course.ort_headers` finds or fetches (``course setup-ort``).
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from course import ort_headers
from course.ort_headers import find_ort_headers, missing_message

REPO = Path(__file__).resolve().parent.parent
SNIPPETS = REPO / "cpp_snippets"
KERNELS_LIB = "libcourse_kernels.so"
CELL_FILE = "cell"  # the file name compile errors show for a cell's lines

__all__ = [
    "CppCompileError", "CppCrash", "OrtHeadersMissing", "OrtCppError", "load", "kernels",
    "as_array", "build_kernels_library", "register_magic", "find_ort_headers",
    "ort_cpp_session",
]


# ----------------------------------------------------------------------------------------------
# Errors. `_render_traceback_` makes IPython show only the message, not our internal frames.

class _ShortTraceback(Exception):
    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


class CppCompileError(_ShortTraceback):
    """The C++ did not compile; the message holds the compiler's errors, cell line numbers."""


class CppCrash(_ShortTraceback, RuntimeError):
    """C++ crashed (segfault, abort, ...); cling reset its state and Python goes on."""


class OrtHeadersMissing(_ShortTraceback, RuntimeError):
    """ONNX Runtime's C++ headers are not on this machine; the message says what to run."""


class OrtCppError(_ShortTraceback, RuntimeError):
    """ONNX Runtime's C++ API refused a model or an input."""


# ----------------------------------------------------------------------------------------------
# cppyy, started lazily: `course setup-ort` must not need a C++ interpreter.

_STATE: dict = {}


def _cppyy():
    """Import cppyy once: signals as exceptions, no gdb stack dump, cpp_snippets on the path."""
    if "cppyy" not in _STATE:
        import cppyy
        import cppyy.ll

        cppyy.ll.set_signals_as_exception(True)
        try:  # a crash would otherwise run gdb and print a long stack trace first
            cppyy.gbl.CppyyLegacy.gEnv.SetValue("Root.Stacktrace", "no")
        except AttributeError:  # pragma: no cover - other cppyy backends
            pass
        cppyy.add_include_path(str(SNIPPETS))
        cppyy.cppdef("namespace __course_empty {}")
        _STATE["baseline"] = set(dir(cppyy.gbl.__course_empty))
        _STATE["cppyy"] = cppyy
    return _STATE["cppyy"]


# ----------------------------------------------------------------------------------------------
# Reading C++ text: blank out comments and literals, find top-level mistakes and names.

_TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def _code_only(text: str) -> str:
    """The text with comments and string/char literals blanked; line numbers are kept."""
    return _TOKEN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _top_level_mask(code: str) -> list[bool]:
    """For each character: is it outside every (...) and every {...} but a namespace's?"""
    mask, stack, parens = [], [], 0
    for i, ch in enumerate(code):
        mask.append(parens == 0 and "body" not in stack)
        if ch == "{":
            head = code[max(0, i - 200):i].split(";")[-1].split("}")[-1]
            is_ns = re.search(r"\b(?:namespace\b[\w\s:]*|extern\s*)$", head) is not None
            stack.append("ns" if is_ns else "body")
        elif ch == "}" and stack:
            stack.pop()
        elif ch in "()":
            parens = max(0, parens + (1 if ch == "(" else -1))
    return mask


def _check_mistakes(text: str, where: str = CELL_FILE, std_rule: bool = True) -> None:
    """Raise a teaching message for a `main` or a top-level `using namespace std;`."""
    code = _code_only(text)
    top = _top_level_mask(code)
    m = re.search(r"\b(?:int|void|auto)\s+main\s*\(", code)
    if m and top[m.start()]:
        raise CppCompileError(
            f"{where}:{_line_of(code, m.start())}: this code defines `main`. Cells are not "
            "programs: cppyy compiles them into this Python process, where `main` already "
            "exists. Define functions and call them from Python (e.g. `cpp.my_function(...)`).")
    for m in re.finditer(r"\busing\s+namespace\s+std\s*;", code):
        if std_rule and top[m.start()]:
            raise CppCompileError(
                f"{CELL_FILE}:{_line_of(code, m.start())}: `using namespace std;` at the top "
                "level. All cells share one C++ interpreter, so it would pour every std name "
                "into scope and clash with your own names (std::data, std::size, ...). Write "
                "`std::vector`, or put `using namespace std;` inside a function body.")


_DECL = re.compile(
    r"\b(?:struct|class|union|enum(?:\s+class)?)\s+(\w+)\s*(?:final\s*)?[:{;]"  # types
    r"|\busing\s+(\w+)\s*="  # aliases
    r"|(\w+)\s*\(")  # functions: the identifier before the first parenthesis
_NOT_NAMES = {"if", "for", "while", "switch", "return", "sizeof", "decltype", "alignof",
              "static_assert", "defined", "__attribute__", "operator", "noexcept", "throw"}


def _names_in(code: str) -> list[tuple[str, str]]:
    """(namespace, name) of each top-level type, alias and function declared in `code`."""
    found, top = [], _top_level_mask(code)
    spaces = [(m.start(), m.group(1))
              for m in re.finditer(r"\bnamespace\s+([\w:]+)\s*\{", code)]
    for m in _DECL.finditer(code):
        name = next(g for g in m.groups() if g)
        line = code[code.rfind("\n", 0, m.start()) + 1:m.start()]
        if not top[m.start()] or name in _NOT_NAMES or line.lstrip().startswith("#"):
            continue
        before = code[:m.start()].rstrip()[-1:]
        if m.group(3) and not (before.isalnum() or before in "_*&>:"):
            continue  # a call in an initializer, not a declaration
        found.append((_enclosing_namespace(code, m.start(), spaces), name))
    return list(dict.fromkeys(found))


def _enclosing_namespace(code: str, pos: int, spaces) -> str:
    """The namespace (`a::b`) that contains position `pos`, '' for global."""
    names = []
    for start, name in spaces:
        if start >= pos:
            break
        open_at = code.index("{", start)
        if code.count("{", open_at, pos) > code.count("}", open_at, pos):
            names.append(name)
    return "::".join(names)


def _local_headers(path: Path, seen: set | None = None) -> list[Path]:
    """`path` and every `#include "x.h"` it reaches that lies in this project."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    out = [path]
    for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(), re.M):
        for base in (path.parent, SNIPPETS):
            if (base / inc).is_file():
                out += _local_headers(base / inc, seen)
                break
    return out


# ----------------------------------------------------------------------------------------------
# Compiling: wrap a text in its namespace, clean the compiler's message.

_HOIST = re.compile(r"^\s*#\s*(include|define|pragma\s+once)\b")


def _wrap(text: str, namespace: str) -> str:
    """Hoist #include/#define lines in front of `namespace { ... }`, keeping line numbers."""
    head, body = [], text.split("\n")
    i = 0
    while i < len(body):
        m = _HOIST.match(body[i])
        if not m:
            i += 1
            continue
        start = i
        while body[i].rstrip().endswith("\\") and i + 1 < len(body):  # multi-line #define
            i += 1
        if not m.group(1).startswith("pragma"):
            head.append(f'#line {start + 1} "{CELL_FILE}"')
            head += body[start:i + 1]
        body[start:i + 1] = [""] * (i + 1 - start)
        i += 1
    return "\n".join(head + [f"namespace {namespace} {{", f'#line 1 "{CELL_FILE}"']
                     + body + ["}"])


_DIAG = re.compile(r"^(.*?):(\d+):(\d+): (fatal error|error|warning|note): (.*)$")


def _clean_errors(message: str, max_errors: int = 10) -> str:
    """Keep the compiler's diagnostics (line, source, caret); drop cling's preamble and noise."""
    blocks, current = [], None
    for line in message.splitlines():
        m = _DIAG.match(line)
        if m:
            current = [m, []]
            blocks.append(current)
        elif current is not None and line.strip() and not line.startswith("In file included"):
            current[1].append(line)
    out, errors = [], 0
    for m, context in blocks:
        where, kind = m.group(1), m.group(4)
        mine = where == CELL_FILE
        if kind == "warning" and not mine:
            continue
        errors += kind in ("error", "fatal error")
        if errors > max_errors:
            continue
        shown = where if mine or where.startswith("input_line") else Path(where).name
        out.append(f"{shown}:{m.group(2)}:{m.group(3)}: {kind}: {m.group(5)}")
        if mine or kind != "note":
            out += context[:3]
    if errors > max_errors:
        out.append(f"... and {errors - max_errors} more errors")
    text = "\n".join(out) if out else message.replace("Failed to parse the given C++ code", "")
    return re.sub(r"__course_[0-9a-f]{12}::", "", text).strip()


def _compile(code: str, what: str) -> None:
    cppyy = _cppyy()
    try:
        ok = cppyy.cppdef(code)
    except SyntaxError as exc:
        raise CppCompileError(f"{what} did not compile:\n{_clean_errors(str(exc))}") from None
    if ok is False:  # pragma: no cover - older cppyy returned False instead of raising
        raise CppCompileError(f"{what} did not compile (see the messages above)")


# ----------------------------------------------------------------------------------------------
# Arguments: numpy arrays are checked against the C++ parameter types.

_DTYPES = {
    "float": np.float32, "double": np.float64, "int": np.intc, "int32_t": np.int32,
    "int64_t": np.int64, "long": np.int_, "long long": np.longlong, "int16_t": np.int16,
    "short": np.int16, "int8_t": np.int8, "uint8_t": np.uint8, "unsigned char": np.uint8,
    "unsigned int": np.uintc, "uint32_t": np.uint32, "uint64_t": np.uint64,
    "size_t": np.uintp, "bool": np.bool_,
}
_TYPE_WORDS = {"int", "float", "double", "char", "long", "short", "unsigned", "signed", "bool",
               "void", "const", "volatile", "auto"} | set(_DTYPES)


class _Param:
    """One C++ parameter: its type text, name, and (for T*) the numpy dtype and constness."""

    def __init__(self, text: str):
        self.has_default = "=" in text
        text = text.split("=")[0].strip()
        text = re.sub(r"\b(?:__restrict__|__restrict|restrict)\b", " ", text)
        text = re.sub(r"\s*\[\s*\]", "*", text)  # float[] x -> float* x
        m = re.match(r"^(.*?[\w*&>\s])\s*\b([A-Za-z_]\w*)$", text)
        if m and m.group(2) not in _TYPE_WORDS and m.group(1).strip():
            self.type, self.name = m.group(1).strip(), m.group(2)
        else:
            self.type, self.name = text.strip(), None
        stars = self.type.count("*")
        base = self.type.split("*")[0]
        self.const = bool(re.search(r"\bconst\b", base))
        base = re.sub(r"\b(?:const|volatile|std::)\b|std::", " ", base)
        base = " ".join(base.split())
        self.pointer = stars == 1 and "&" not in self.type
        self.dtype = np.dtype(_DTYPES[base]) if self.pointer and base in _DTYPES else None
        self.number = stars == 0 and "&" not in self.type and base in _DTYPES

    def label(self, pos: int) -> str:
        return f"argument '{self.name}'" if self.name else f"argument {pos + 1}"


def _split_params(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += {"<": 1, "(": 1, ">": -1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in parts + [cur] if p.strip()]


def _signatures(func) -> list[list[_Param]]:
    """Parameter lists of each overload, read from cppyy's signature text (func.__doc__)."""
    sigs = []
    for line in (getattr(func, "__doc__", "") or "").splitlines():
        start, end = line.find("("), line.rfind(")")
        if start < 0 or end < start or "template proxy" in line:
            continue
        sigs.append([_Param(p) for p in _split_params(line[start + 1:end])])
    return sigs


def as_array(x, dtype, name: str = "x", writable: bool = False) -> np.ndarray:
    """`x` as a C-contiguous, non-empty numpy array of `dtype`, or a ValueError saying the fix."""
    dtype = np.dtype(dtype)
    if not isinstance(x, np.ndarray):
        raise ValueError(f"argument '{name}' is a {type(x).__name__}, but C++ wants a "
                         f"{dtype} array: pass np.asarray({name}, dtype=np.{dtype})")
    _check_array(x, dtype, f"argument '{name}'", name, f"{dtype} array", writable)
    return x


def _check_array(x: np.ndarray, dtype, label: str, name: str, ctype: str, writable: bool):
    __tracebackhide__ = True  # IPython shows the learner's line, not ours
    if x.dtype != dtype:
        raise ValueError(f"{label} has dtype {x.dtype} but the C++ parameter is {ctype}: "
                         f"pass {name}.astype(np.{np.dtype(dtype).name})")
    if x.size == 0:
        raise ValueError(f"{label} is empty (shape {x.shape}); C++ would read past its end: "
                         "pass an array with at least one element")
    if not x.flags.c_contiguous:
        raise ValueError(f"{label} is not C-contiguous (a transpose or a strided slice?), so "
                         f"its elements are not where C++ looks: pass np.ascontiguousarray({name})")
    if writable and not x.flags.writeable:
        raise ValueError(f"{label} is read-only but the C++ parameter {ctype} may write into "
                         f"it: pass {name}.copy()")


def _check_args(params: list[_Param], args: tuple, nullptr) -> list:
    """The arguments, checked against `params`; None for a pointer becomes nullptr."""
    __tracebackhide__ = True  # IPython shows the learner's line, not ours
    out = []
    for pos, (param, arg) in enumerate(zip(params, args)):
        label, name = param.label(pos), param.name or "x"
        if param.pointer and arg is None:
            arg = nullptr
        elif param.dtype is not None and isinstance(arg, np.ndarray):
            _check_array(arg, param.dtype, label, name, param.type, not param.const)
        elif param.dtype is not None and isinstance(arg, (list, tuple, int, float, np.generic)):
            raise ValueError(f"{label} is a {type(arg).__name__} but the C++ parameter is "
                             f"{param.type}: pass a numpy array, "
                             f"np.asarray({name}, dtype=np.{param.dtype.name})")
        elif param.number and isinstance(arg, np.ndarray):
            raise ValueError(f"{label} is a numpy array of shape {arg.shape} but the C++ "
                             f"parameter is {param.type}, a single number: pass a number")
        out.append(arg)
    return out


def _describe(args: tuple, params) -> str:
    parts = []
    for pos, arg in enumerate(args):
        name = params[pos].name if params and pos < len(params) and params[pos].name else \
            f"#{pos + 1}"
        if isinstance(arg, np.ndarray):
            parts.append(f"{name}: {arg.dtype}{list(arg.shape)} ({arg.size} elements)")
        elif arg is None or isinstance(arg, (int, float, np.generic)):
            parts.append(f"{name}={arg}")
    return ", ".join(parts)


_HINTS = {
    "SegmentationViolation": (
        "a segmentation fault: the code read or wrote memory it does not own. Likely: an index "
        "past the end of an array (check loop bounds), a null pointer (an optional argument "
        "passed as None?), or a size argument larger than the array you passed."),
    "BusError": "a bus error: a misaligned or truncated memory access (wrong pointer type?).",
    "AbortSignal": (
        "abort(): a failed assert(...), or an exception thrown where none may escape "
        "(a destructor or noexcept function)."),
    "IllegalInstruction": "an illegal instruction: usually a function that returns a value "
                          "reached its end without `return`.",
}


def _crash(exc, name: str, args: tuple, params) -> CppCrash:
    kind = type(exc).__name__
    hint = _HINTS.get(kind, f"{kind}: a fatal signal.")
    described = _describe(args, params)
    return CppCrash(f"C++ crashed in {name}: {hint} The kernel is still alive; cling reset "
                    f"its state.\n  called with: {described or 'no arguments'}")


class CppFunction:
    """A compiled C++ function; calls check numpy arguments and turn crashes into CppCrash."""

    def __init__(self, func, name: str):
        self.func, self.__name__ = func, name
        self.__doc__ = getattr(func, "__doc__", None)
        self.signatures = _signatures(func)

    def __repr__(self):
        return f"<C++ function {self.__doc__ or self.__name__}>"

    def _params_for(self, args: tuple) -> list[_Param] | None:
        fits = [s for s in self.signatures if len(s) == len(args)]
        if len(fits) == 1:
            return fits[0]
        if not fits and len(self.signatures) == 1 and not any(
                p.has_default for p in self.signatures[0]):
            names = ", ".join(p.name or p.type for p in self.signatures[0])
            raise TypeError(f"{self.__name__} takes {len(self.signatures[0])} arguments "
                            f"({names}), got {len(args)}")
        for sig in fits:  # the first overload whose arrays all fit; else report on the first
            try:
                _check_args(sig, args, None)
                return sig
            except ValueError:
                continue
        return fits[0] if fits else None

    def __call__(self, *args):
        __tracebackhide__ = True  # IPython shows the learner's line, not ours
        cppyy = _cppyy()
        params = self._params_for(args)
        try:
            call_args = _check_args(params, args, cppyy.nullptr) if params else list(args)
        except ValueError as exc:
            raise ValueError(f"{self.__name__}: {exc}") from None  # one short frame for the learner
        try:
            return self.func(*call_args)
        except cppyy.ll.FatalError as exc:
            raise _crash(exc, self.__name__, args, params) from None


def _wrap_member(obj, name: str):
    """Functions get checked calls; classes, variables and namespaces are returned as they are."""
    if type(obj).__name__ in ("CPPOverload", "TemplateProxy"):
        return CppFunction(obj, name)
    return obj


# ----------------------------------------------------------------------------------------------
# The handle and `load`.

class CppHandle:
    """The names one C++ text or file defines, as attributes: `handle.dense_forward(...)`."""

    def __init__(self, scope, names: dict[str, str], source: str, origin: str):
        self._scope, self._qualified = scope, names
        self._cache: dict = {}
        self.source, self.origin = source, origin

    def __getattr__(self, name: str):
        if name.startswith("__") or name not in self._qualified:
            raise AttributeError(f"{self.origin} defines no C++ name {name!r}; it defines: "
                                 f"{', '.join(sorted(self._qualified)) or 'nothing'}")
        if name not in self._cache:
            obj = _cppyy().gbl
            for part in self._qualified[name].split("::"):
                obj = getattr(obj, part)
            self._cache[name] = _wrap_member(obj, name)
        return self._cache[name]

    def __dir__(self):
        return sorted(self._qualified)

    def __repr__(self):
        return f"<{self.origin}: {', '.join(sorted(self._qualified))}>"


_HANDLES: dict[str, CppHandle] = {}


def load(source_or_path) -> CppHandle:
    """Compile C++ text (namespaced) or a .h/.cpp file (included once); return its handle."""
    if isinstance(source_or_path, Path) or (
            isinstance(source_or_path, str) and "\n" not in source_or_path
            and re.search(r"\.(h|hh|hpp|hxx|c|cc|cpp|cxx)$", source_or_path.strip())):
        return _load_file(Path(source_or_path))
    if not isinstance(source_or_path, str):
        raise TypeError(f"load() takes C++ text or a path, got {type(source_or_path).__name__}")
    return _load_text(source_or_path)


def _load_text(text: str) -> CppHandle:
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    if key in _HANDLES:
        return _HANDLES[key]
    _check_mistakes(text)
    cppyy = _cppyy()
    _prepare_kernels_library()
    namespace = f"__course_{key}"
    _compile(_wrap(text, namespace), "the C++ cell")
    scope = getattr(cppyy.gbl, namespace)
    found = set(dir(scope)) - _STATE["baseline"]
    found |= {name for ns, name in _names_in(_code_only(text))
              if not ns and hasattr(scope, name)}
    names = {n: f"{namespace}::{n}" for n in found if not n.startswith("__")}
    _HANDLES[key] = CppHandle(scope, names, text, "C++ cell")
    return _HANDLES[key]


def _load_file(path: Path) -> CppHandle:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no C++ file at {path}")
    key = "file:" + str(path)
    text = path.read_text()
    if key in _HANDLES:
        if _HANDLES[key].source != text:
            raise CppCompileError(
                f"{path} changed since it was loaded, and C++ cannot redefine what it already "
                f"compiled. Restart the kernel, or load its text instead: "
                f"course.cpp.load(Path({str(path)!r}).read_text())")
        return _HANDLES[key]
    _check_mistakes(text, str(path), std_rule=False)
    cppyy = _cppyy()
    _prepare_kernels_library()
    _compile(f'#include "{path}"', str(path))
    names = {}
    for header in _local_headers(path):
        for ns, name in _names_in(_code_only(header.read_text())):
            names.setdefault(name, f"{ns}::{name}" if ns else name)
            if ns:
                names.setdefault(ns.split("::")[0], ns.split("::")[0])
    _HANDLES[key] = CppHandle(cppyy.gbl, names, text, path.name)
    return _HANDLES[key]


# ----------------------------------------------------------------------------------------------
# Reference kernels: header-only in the course, a prebuilt library in the student release.

def _prepare_kernels_library(snippets: Path = SNIPPETS) -> None:
    """Load `snippets/lib/libcourse_kernels.so` (student release) once, before any header."""
    lib = snippets / "lib" / KERNELS_LIB
    if not lib.is_file() or str(lib) in _STATE.setdefault("libs", set()):
        return
    cppyy = _cppyy()
    cppyy.load_library(str(lib))
    cppyy.cppdef("#ifndef COURSE_KERNEL\n#define COURSE_KERNEL\n#endif")  # declarations only
    _STATE["libs"].add(str(lib))


def kernels(snippets_dir=None) -> CppHandle:
    """The compiled reference kernels of `cpp_snippets/kernels.h` (once per process)."""
    snippets = Path(snippets_dir or SNIPPETS).resolve()
    header = snippets / "kernels.h"
    if not header.is_file():
        raise FileNotFoundError(f"no {header}: the reference kernels are missing")
    if snippets != SNIPPETS.resolve():
        _cppyy().add_include_path(str(snippets))
    _prepare_kernels_library(snippets)
    return load(header)


def build_kernels_library(out_dir, snippets_dir=None, compiler: str = "g++") -> Path:
    """Compile kernels.h into `out_dir/libcourse_kernels.so` (for the student release)."""
    snippets = Path(snippets_dir or SNIPPETS).resolve()
    out = Path(out_dir).resolve() / KERNELS_LIB
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / "kernels.cpp"
        unit.write_text('#include "kernels.h"\n')
        cmd = [compiler, "-std=c++17", "-O2", "-shared", "-fPIC", "-DCOURSE_KERNEL=",
               f"-I{snippets}", str(unit), "-o", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise CppCompileError(f"{compiler} not found: install a C++17 compiler (g++) "
                                  "to build the kernels library") from None
    if done.returncode != 0:
        raise CppCompileError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return out


# ----------------------------------------------------------------------------------------------
# %%cpp

def cpp_magic(line: str, cell: str, user_ns: dict | None = None):
    """`%%cpp NAME`: compile the cell and bind its handle to NAME (default `cpp`)."""
    name = line.strip() or "cpp"
    if not name.isidentifier():
        raise ValueError(f"%%cpp {name}: the name after %%cpp must be a Python identifier, "
                         "e.g. `%%cpp dense`")
    handle = load(cell)
    if user_ns is not None:
        user_ns[name] = handle
    return None


def register_magic(ipython) -> None:
    """Register `%%cpp` with an IPython shell (course.start() does this)."""
    def cpp(line, cell):
        return cpp_magic(line, cell, ipython.user_ns)

    cpp.__doc__ = cpp_magic.__doc__
    ipython.register_magic_function(cpp, magic_kind="cell", magic_name="cpp")


# ----------------------------------------------------------------------------------------------
# ONNX Runtime's C++ API through cppyy.

def _ort_library() -> Path:
    if os.environ.get("ORT_LIBRARY"):
        return Path(os.environ["ORT_LIBRARY"])
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    libs = sorted(glob.glob(str(capi / "libonnxruntime.so*")) +
                  glob.glob(str(capi / "libonnxruntime*.dylib")))
    if not libs:
        raise OrtCppError(f"no libonnxruntime in {capi}: reinstall onnxruntime, or set "
                          "ORT_LIBRARY to the library's path")
    return Path(libs[-1])


def _api_version(headers: Path) -> int:
    text = (headers / "onnxruntime_c_api.h").read_text(errors="replace")
    m = re.search(r"#define\s+ORT_API_VERSION\s+(\d+)", text)
    return int(m.group(1)) if m else 0


def _load_ort() -> None:
    """Headers on the include path, the wheel's library loaded, ort_session.h compiled."""
    if _STATE.get("ort"):
        return
    headers = find_ort_headers()
    if headers is None:
        raise OrtHeadersMissing(missing_message())
    import onnxruntime

    lib_minor = int(onnxruntime.__version__.split(".")[1])
    if _api_version(headers) > lib_minor:
        raise OrtHeadersMissing(
            f"the headers in {headers} are for ONNX Runtime API {_api_version(headers)}, newer "
            f"than the installed library {onnxruntime.__version__}: use headers <= 1."
            f"{lib_minor} (set ORT_INCLUDE_DIR), or upgrade onnxruntime")
    cppyy = _cppyy()
    cppyy.add_include_path(str(headers))
    cppyy.load_library(str(_ort_library()))
    load(SNIPPETS / "ort_session.h")
    _STATE["ort"] = True


class OrtCppSession:
    """An ONNX model run by ONNX Runtime's C++ API (`Ort::Session`), called from Python."""

    def __init__(self, path, intra_op_threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}")
        _load_ort()
        cppyy = _cppyy()
        try:
            self.model = cppyy.gbl.course_ort.OrtModel(str(path), int(intra_op_threads))
        except cppyy.ll.FatalError as exc:
            raise _crash(exc, "OrtModel", (), None) from None
        except Exception as exc:  # Ort::Exception, std::runtime_error
            raise OrtCppError(f"ONNX Runtime (C++) could not load {path}: "
                              f"{_cpp_message(exc)}") from None
        self.path = path
        self.input_name = str(self.model.input_name())
        self.output_name = str(self.model.output_name())
        self.input_shape = _dims(self.model.input_dim, self.model.input_rank())
        self.output_shape = _dims(self.model.model_output_dim, self.model.model_output_rank())

    def __repr__(self):
        return (f"<ORT C++ session {self.path.name}: {self.input_name}{list(self.input_shape)}"
                f" -> {self.output_name}>")

    def _check_input(self, x) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise ValueError(f"x is a {type(x).__name__}: pass a numpy float32 array")
        if x.dtype != np.float32:
            raise ValueError(f"x has dtype {x.dtype} but the model's input "
                             f"{self.input_name!r} is float32: pass x.astype(np.float32)")
        want = self.input_shape
        fits = x.ndim == len(want) and all(w is None or w == g for w, g in zip(want, x.shape))
        if not fits:
            shown = tuple(w if w is not None else "batch" if i == 0 else "any"
                          for i, w in enumerate(want))
            raise ValueError(f"the model's input {self.input_name!r} expects shape {shown}, "
                             f"got x with shape {x.shape}")
        if x.size == 0:
            raise ValueError("x is empty: pass at least one sample")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's output for input `x` (float32, shape (batch, ...))."""
        x = self._check_input(x)
        shape = np.asarray(x.shape, dtype=np.int64)
        known = self.output_shape and None not in self.output_shape[1:]
        try:
            if known:  # only the batch is dynamic: ORT writes straight into `out`
                out = np.empty((x.shape[0],) + self.output_shape[1:], dtype=np.float32)
                self.model.run_into(x, shape, x.ndim, out,
                                    np.asarray(out.shape, dtype=np.int64), out.ndim)
                return out
            self.model.run(x, shape, x.ndim)
        except _cppyy().ll.FatalError as exc:
            raise _crash(exc, "OrtModel.run", (x,), None) from None
        except Exception as exc:
            raise OrtCppError(f"ONNX Runtime (C++) failed on {self.path.name}: "
                              f"{_cpp_message(exc)}") from None
        out = np.empty(_dims(self.model.output_dim, self.model.output_rank()), np.float32)
        self.model.copy_output(out, out.size)
        return out


def _dims(dim, rank: int) -> tuple:
    """A shape from C++ (dim(i) for i < rank), None where it is dynamic (-1)."""
    return tuple(int(dim(i)) if dim(i) >= 0 else None for i in range(rank))


def _cpp_message(exc) -> str:
    """The what() text of a C++ exception that cppyy raised, without ORT's source locations."""
    text = str(exc).strip().splitlines()
    text = text[-1].split(": ", 1)[-1].strip() if text else type(exc).__name__
    text = re.sub(r"/\S+?\.(?:h|cc|cpp):\d+ [^\n]*?\)\s", "", text)
    return text.replace("failed:", "failed: ")


def ort_cpp_session(path, intra_op_threads: int = 1) -> OrtCppSession:
    """Open `path` with ONNX Runtime's C++ API; `.run(x)` returns the model's output."""
    return OrtCppSession(path, intra_op_threads)


if __name__ == "__main__":
    if sys.argv[1:2] == ["setup-ort"]:
        sys.exit(ort_headers.setup_ort(sys.argv[2:]))
    print("usage: python -m course.cpp setup-ort [--mirror URL] [--force]", file=sys.stderr)
    sys.exit(2)


def show_source(header: str, start: str) -> None:
    """Display the C++ function of cpp_snippets/<header> whose first line holds `start`.

    In a student release the kernels ship compiled and the header holds declarations only: then
    the declaration is shown, with a note saying so.
    """
    from IPython.display import Markdown, display

    lines = (SNIPPETS / header).read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if start in line)
    j = next(n for n, line in enumerate(lines[i:], i) if line.endswith(("{", ");")))
    note = ""
    if lines[j].endswith(");"):
        note = ("\n\n(This copy of the course ships the reference kernels compiled; the "
                "declaration above is what is included.)")
    else:
        j = next(n for n, line in enumerate(lines[j:], j) if line == "}")
    body = "\n".join(lines[i:j + 1])
    display(Markdown(f"`cpp_snippets/{header}`\n```cpp\n{body}\n```{note}"))
