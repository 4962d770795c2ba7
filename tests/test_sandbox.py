"""course.sandbox: real kernels under real limits. Namespace tests need root (CI runs as root)."""
import os
import socket
import sys
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

import course
from course import sandbox

FULL = not sandbox.isolation_report()
needs_isolation = pytest.mark.skipif(not FULL, reason=f"no isolation: {sandbox.isolation_report()}")
LIMITS = sandbox.Limits(cell_timeout=8, notebook_timeout=90, memory=2 << 30)
MARK = "876543"


def run(*sources, limits=LIMITS, isolation=None, env=None):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    results = sandbox.run_notebook(nb, limits=limits, isolation=isolation, env=env)
    return [results[i] for i in range(len(sources))]


def text(result):
    return "".join(o.get("text", "") for o in result.outputs if o.get("output_type") == "stream")


def alive_with(mark):
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark in (entry / "cmdline").read_bytes().decode():
                found.append(entry.name)
        except OSError:
            pass
    return found


@needs_isolation
def test_kernel_runs_as_a_leased_uid_in_a_private_home():
    (r,) = run("import os, resource\n"
               "print(os.getuid(), os.getgid(), os.getgroups())\n"
               "print(os.environ['HOME'] == os.getcwd(), oct(os.stat('.').st_mode & 0o777))\n"
               "print(resource.getrlimit(resource.RLIMIT_AS)[0], "
               "resource.getrlimit(resource.RLIMIT_CORE)[0])\n"
               "print(sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k))")
    uid_line, home_line, limits_line, secrets = text(r).splitlines()
    uid = int(uid_line.split()[0])
    assert sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_COUNT
    assert home_line == "True 0o700"
    assert limits_line == f"{LIMITS.memory} 0"
    assert secrets == "[]"


@needs_isolation
def test_no_network_not_even_the_graders_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        (r,) = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)")
    finally:
        listener.close()
    assert r.status == "error" and r.ename in ("ConnectionRefusedError", "OSError"), r


@pytest.fixture
def open_tmp():
    """A world-readable temporary folder (pytest's tmp_path sits under a 0700 folder)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="course-sandbox-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@needs_isolation
def test_hidden_paths_are_empty_and_binds_are_read_only(open_tmp):
    tmp_path = open_tmp
    secret = tmp_path / "secret"
    shown, target = tmp_path / "shown", tmp_path / "target"
    for folder in (secret, shown, target):
        folder.mkdir(mode=0o755)
    (secret / "answers.txt").write_text("42")
    (shown / "hello.txt").write_text("hi")
    iso = sandbox.Isolation(hide=[secret, Path(course.REPO) / "tests"], binds={target: shown})
    (r,) = run(f"import os\nprint(os.listdir({str(secret)!r}), "
               f"os.listdir({str(Path(course.REPO) / 'tests')!r}))\n"
               f"print(open({str(target / 'hello.txt')!r}).read())\n"
               f"open({str(target / 'new.txt')!r}, 'w')", isolation=iso)
    assert text(r).splitlines() == ["[] []", "hi"]
    assert r.ename in ("OSError", "PermissionError"), r
    assert not (shown / "new.txt").exists()


def test_a_timeout_interrupts_and_the_notebook_goes_on():
    loop, after = run("while True: pass", "print('after')")
    assert loop.status == "timeout"
    assert after.status == "ok" and text(after) == "after\n"


def test_an_uninterruptible_cell_stops_the_kernel():
    blocked, after = run("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                         "while True: pass", "print('after')")
    assert blocked.status == "timeout"
    assert after.status == "timeout" and "not run" in after.evalue


def test_a_dead_kernel_marks_the_rest_dead():
    died, after = run("import os\nos._exit(3)", "print('after')")
    assert died.status == "dead" and after.status == "dead"


def test_memory_limit_gives_memory_error():
    (r,) = run("x = bytearray(3 << 30)")
    assert (r.status, r.ename) == ("error", "MemoryError")


def test_outputs_are_capped():
    limits = sandbox.Limits(cell_timeout=30, cell_output=100_000)
    (r,) = run("for _ in range(200):\n    print('x' * 10_000)", limits=limits)
    assert r.truncated
    assert sum(len(o.get("text", "")) for o in r.outputs) <= 200_000


def test_no_process_outlives_the_run():
    (r,) = run(f"import subprocess\nsubprocess.Popen(['sleep', '{MARK}'], "
               "start_new_session=True)\nimport os\nif os.fork() == 0:\n"
               f"    os.execvp('sleep', ['sleep', '{MARK}1'])")
    assert r.status == "ok"
    if FULL:
        assert alive_with(MARK) == []


@needs_isolation
def test_uid_leases_are_exclusive_and_released():
    first, second = sandbox.UidLease(), sandbox.UidLease()
    assert first.uid != second.uid
    first.release()
    third = sandbox.UidLease()
    assert third.uid == first.uid
    second.release()
    third.release()


def test_kernel_env_does_not_inherit_the_graders_environment(monkeypatch):
    monkeypatch.setenv("COURSE_TEST_SECRET", "s3cret")
    env = sandbox.kernel_env(Path("/tmp/w"), {"COURSE_RECORD": "1"})
    assert "COURSE_TEST_SECRET" not in env and env["COURSE_RECORD"] == "1"
    assert env["HOME"] == "/tmp/w" and env["PATH"].startswith(os.path.dirname(sys.executable))


def test_paths_with_quotes_are_refused():
    iso = sandbox.Isolation(hide=[Path("/tmp/it's")])
    with pytest.raises(ValueError, match="contains a quote"):
        sandbox.wrapper_cmd(iso, LIMITS, 61000, Path("/tmp/stage"))


def test_kernel_stderr_does_not_reach_the_grader(capfd):
    (r,) = run("import os\nos.write(1, b'KERNEL-FD-OUT\\n')\nos.write(2, b'KERNEL-FD-ERR\\n')")
    assert r.status == "ok"
    captured = capfd.readouterr()
    assert "KERNEL-FD" not in captured.out + captured.err
