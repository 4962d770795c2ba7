"""The `course` command: one entry point for learners, instructors and maintainers.

    course setup-ort              fetch the ONNX Runtime C++ headers (once per machine)
    course run [--only 04]        execute every notebook headless into build/, print a summary
    course check NOTEBOOK         run a notebook's visible exercise tests and print a table
    course release --out DIR      write the student version (no solutions, no hidden tests)
    course grade SUBS --out OUT   autograde SUBS/<student>/<notebook>.ipynb into OUT/
"""
from __future__ import annotations

import sys

COMMANDS = {
    "setup-ort": ("course.ort_headers", "setup_ort", "fetch the ONNX Runtime C++ headers"),
    "run": ("course.run", "main", "execute every notebook into build/ and print a summary"),
    "check": ("course.grading", "check_main", "run a notebook's visible exercise tests"),
    "release": ("course.release", "release_main", "write the student version of the course"),
    "grade": ("course.grading", "grade_main", "autograde a folder of submissions"),
}


def usage() -> str:
    lines = ["usage: course COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`course COMMAND --help` describes a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"course: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    import importlib

    func = getattr(importlib.import_module(module_name), func_name)
    code = func(rest)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
