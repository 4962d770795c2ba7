"""`course run` and the `course` command line."""
import subprocess
import sys

import nbformat
import pytest

from course import run
from course.__main__ import main


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_execute_writes_copy_html_and_headline(tmp_path):
    src = _notebook(tmp_path / "01_demo.ipynb", "import course", "course.headline('acc', 0.97531)")
    result = run.execute(src, tmp_path / "build", timeout=60)
    assert result.status == "ok"
    assert result.headline == "acc = 0.9753"
    assert (tmp_path / "build" / "01_demo.ipynb").exists()
    assert "Headline: acc = 0.9753" in (tmp_path / "build" / "01_demo.html").read_text()


def test_execute_reports_the_failing_cell(tmp_path):
    src = _notebook(tmp_path / "02_bad.ipynb", "x = 1", "raise ValueError('broken lesson')")
    result = run.execute(src, tmp_path / "build", timeout=60)
    assert result.status.startswith("failed") and "broken lesson" in result.status
    assert result.headline == "-"


def test_table_lists_each_notebook_and_total():
    text = run.table([run.Result("01_a.ipynb", "ok", 1.25, "acc = 0.9"),
                      run.Result("02_b.ipynb", "timeout", 2.0, "-")])
    lines = text.splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds", "headline"]
    assert "01_a.ipynb" in lines[2] and "1.2" in lines[2]
    assert lines[-1].split() == ["total", "3.2"]


def test_command_line_usage_and_unknown_command(capsys):
    assert main([]) == 0
    assert "setup-ort" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_run_with_no_matching_notebook_fails():
    proc = subprocess.run([sys.executable, "-m", "course", "run", "--only", "no-such-lesson"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no notebook" in proc.stdout
