"""`course run`: execute every lesson headless, in order, each in a fresh kernel.

Executed copies go to ``build/NN_name.ipynb`` with an HTML rendering beside them, and a summary
table (notebook, status, seconds, headline figure) is printed. Exit status 1 if any notebook failed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from course import NOTEBOOKS, REPO

HEADLINE = re.compile(r"^Headline: (.+)$", re.MULTILINE)


@dataclass
class Result:
    notebook: str
    status: str
    seconds: float
    headline: str


def headline_of(nb) -> str:
    """The last `course.headline(...)` line printed by the notebook, or '-'."""
    found = "-"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            for match in HEADLINE.finditer(text):
                found = match.group(1).strip()
    return found


def execute(path: Path, out_dir: Path, timeout: int) -> Result:
    """Run one notebook in a fresh kernel; write the executed copy and its HTML into out_dir."""
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    # Local IPC sockets: a kernel on this machine needs no TCP port (and warns when given one).
    sockets = Path(tempfile.mkdtemp(prefix="course-run-"))
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "kernel"))
    client = NotebookClient(nb, km=km, timeout=timeout,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    status = "ok"
    try:
        try:
            client.execute()
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
            shutil.rmtree(sockets, ignore_errors=True)
    except CellTimeoutError:
        status = "timeout"
    except CellExecutionError as err:
        first = str(err).strip().splitlines()
        status = "failed: " + (first[-1][:60] if first else "cell error")
    except Exception as err:  # the kernel died or could not start
        status = f"failed: {type(err).__name__}: {err}"[:80]
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (out_dir / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    return Result(path.name, status, seconds, headline_of(nb))


def table(results: list[Result]) -> str:
    rows = [("notebook", "status", "seconds", "headline")]
    rows += [(r.notebook, r.status, f"{r.seconds:.1f}", r.headline) for r in results]
    total = sum(r.seconds for r in results)
    rows.append(("total", "", f"{total:.1f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course run", description=__doc__)
    parser.add_argument("--only", default="", help="run only notebooks whose name contains this")
    parser.add_argument("--out", type=Path, default=REPO / "build", help="folder for executed copies")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if args.only in p.name)
    if not paths:
        print(f"course run: no notebook in {NOTEBOOKS} matches {args.only!r}")
        return 1
    results = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        result = execute(path, args.out, args.timeout)
        print(f"  {result.status} in {result.seconds:.1f} s", flush=True)
        results.append(result)
    print()
    print(table(results))
    print(f"\nExecuted notebooks and HTML: {args.out}")
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
