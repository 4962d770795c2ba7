"""`course release`: the student version of the course.

Notebooks with stubs instead of solutions, no hidden tests and no outputs; the `course` package;
`cpp_snippets/` with every `COURSE_KERNEL` body removed and the kernels shipped compiled
(`lib/libcourse_kernels.so`); the student README and Makefile from `docs/student/`. A scan of
every released file for every non-trivial solution line fails the release if anything leaked.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from course.exercises import (GradingError, is_solution, read_notebook, solution_lines,
                              source_notebooks, source_of, stub_solution, student_notebook)


# ---------------------------------------------------------------------------------------------
# C++ reference kernels: declarations only in the release


def _skip_literal(text: str, i: int) -> int:
    """Index just past the comment or string literal starting at text[i] (or i if none)."""
    if text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        return len(text) if end < 0 else end + 2
    if text[i] in "\"'":
        j = i + 1
        while j < len(text) and text[j] != text[i]:
            j += 2 if text[j] == "\\" else 1
        return j + 1
    return i


def _matching_brace(text: str, i: int) -> int:
    """Index of the `}` closing the `{` at text[i]."""
    depth = 0
    while i < len(text):
        j = _skip_literal(text, i)
        if j != i:
            i = j
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
        i += 1
    raise GradingError("unbalanced braces in a C++ kernel")


KERNEL_START = re.compile(r"^[ \t]*COURSE_KERNEL\b", re.M)


def kernel_bodies(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the `{...}` body of every COURSE_KERNEL function."""
    spans = []
    for match in KERNEL_START.finditer(text):
        i, depth = match.end(), 0
        while i < len(text):
            j = _skip_literal(text, i)
            if j != i:
                i = j
                continue
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
            elif text[i] == ";" and depth == 0:
                break  # already a declaration
            elif text[i] == "{" and depth == 0:
                spans.append((i, _matching_brace(text, i)))
                break
            i += 1
    return spans


def declarations_only(text: str) -> str:
    """A header with every COURSE_KERNEL body replaced by `;`."""
    for start, end in reversed(kernel_bodies(text)):
        text = text[:start].rstrip() + ";" + text[end + 1:]
    return text


def kernel_body_lines(snippets: Path) -> list[str]:
    lines = []
    for header in sorted(Path(snippets).glob("*.h")):
        text = header.read_text()
        for start, end in kernel_bodies(text):
            lines += [ln.strip() for ln in text[start + 1:end].splitlines() if ln.strip()]
    return lines


# ---------------------------------------------------------------------------------------------
# Release


SHIPPED_FILES = ("pyproject.toml", "environment.yml", "LICENSE")
STUDENT_FILES = ("README.md", "Makefile")  # from docs/student/: the student's own entry points


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a temporary file next to `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def release_support(out: Path, repo: Path, snippets: Path | None = None) -> None:
    """The `course` package and `cpp_snippets/` (declarations + prebuilt library) into `out`."""
    from course import cpp

    package = Path(__file__).resolve().parent
    shutil.copytree(package, out / "course", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    snippets = Path(snippets or cpp.SNIPPETS)
    if snippets.is_dir():
        (out / "cpp_snippets").mkdir(parents=True, exist_ok=True)
        for header in sorted(snippets.glob("*.h")):
            write_atomic(out / "cpp_snippets" / header.name, declarations_only(header.read_text()))
        if (snippets / "kernels.h").is_file():
            cpp.build_kernels_library(out / "cpp_snippets" / "lib", snippets_dir=snippets)
    for name in SHIPPED_FILES:
        if (repo / name).is_file():
            shutil.copy2(repo / name, out / name)
    for name in STUDENT_FILES:
        if (repo / "docs" / "student" / name).is_file():
            shutil.copy2(repo / "docs" / "student" / name, out / name)


def release(out, source_dir=None, repo=None, snippets=None) -> list[Path]:
    """Write the student version of the course to `out`; returns the notebooks written."""
    import nbformat
    import course

    repo = Path(repo or course.REPO)
    out = Path(out)
    written = []
    for path in source_notebooks(Path(source_dir or course.NOTEBOOKS)):
        nb = student_notebook(read_notebook(path), path.name)
        target = out / "notebooks" / path.name
        write_atomic(target, nbformat.writes(nb) + "\n")
        written.append(target)
    release_support(out, repo, snippets)
    return written


def public_text(source_dir: Path, snippets: Path | None) -> str:
    """What the source shows outside any solution: showing it again is not a leak."""
    parts = []
    for path in source_notebooks(source_dir):
        for cell in read_notebook(path)["cells"]:
            parts.append(stub_solution(source_of(cell), "x") if is_solution(cell)
                         else source_of(cell))
    if snippets and Path(snippets).is_dir():
        parts += [declarations_only(h.read_text()) for h in sorted(Path(snippets).glob("*.h"))]
    return "\n".join(parts)


def nontrivial(line: str, min_chars: int = 12) -> bool:
    """A line that says something: long enough, an operator or call, not a comment or opener."""
    return (len(line) >= min_chars and not line.startswith(("//", "#"))
            and re.search(r"[=+\-*/<>\[(]", line) is not None
            and not line.endswith(("(", "[", "{", ":")))


def secret_lines(source_dir: Path, snippets: Path | None) -> set[str]:
    """Every non-trivial solution line: from solution cells and from reference kernel bodies."""
    lines = []
    for path in source_notebooks(source_dir):
        for cell in read_notebook(path)["cells"]:
            if is_solution(cell):
                lines += solution_lines(source_of(cell))
    if snippets and Path(snippets).is_dir():
        lines += kernel_body_lines(Path(snippets))
    public = public_text(source_dir, snippets)
    return {ln for ln in lines if nontrivial(ln) and ln not in public}


def scan_release(out: Path, secrets: set[str]) -> list[tuple[str, str]]:
    """(file, line) for every secret line found anywhere under `out`."""
    hits = []
    for path in sorted(Path(out).rglob("*")):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="ignore")
            if path.suffix == ".ipynb":  # a JSON string escapes quotes and backslashes
                text += "\n" + "\n".join(source_of(c) for c in json.loads(text)["cells"])
            hits += [(str(path.relative_to(out)), ln) for ln in sorted(secrets) if ln in text]
    return hits


def release_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="course release", description="Write the student "
                                     "version: stubs, no hidden tests, prebuilt kernels.")
    parser.add_argument("--out", required=True, help="folder to write (DIR/notebooks/...)")
    parser.add_argument("--source", default=None, help="source notebooks (default notebooks/)")
    args = parser.parse_args(argv)
    try:
        written = release(args.out, args.source)
        secrets = secret_lines(Path(args.source or _default_source()), _default_snippets())
        leaks = scan_release(Path(args.out), secrets)
    except GradingError as err:
        print(f"course release: {err}", file=sys.stderr)
        return 2
    for path, line in leaks[:20]:
        print(f"course release: solution text in {path}: {line}", file=sys.stderr)
    print(f"wrote {len(written)} notebooks to {Path(args.out) / 'notebooks'}"
          f"{'' if not leaks else f'; {len(leaks)} solution lines leaked'}")
    return 1 if leaks else 0


def _default_source() -> Path:
    import course

    return course.NOTEBOOKS


def _default_snippets() -> Path:
    from course import cpp

    return Path(cpp.SNIPPETS)
