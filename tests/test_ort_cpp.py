"""ONNX Runtime's C++ API through cppyy: parity with ORT Python, bad input, header discovery,
and `course setup-ort` (mirror from apt sources, Packages index, .deb extraction)."""
import hashlib
import io
import lzma
import tarfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from course import cpp, ort_headers


# --- models built with onnx.helper (small, not the notebooks' models) -----------------------

def _save(nodes, inits, in_shape, out_shape, path, opset=17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def mlp(path, widths=(64, 48, 10), act="Tanh", seed=0):
    """Gemm -> act -> MatMul + Add -> Sigmoid, dynamic batch."""
    rng = np.random.default_rng(seed)
    c, h, o = widths
    inits = {"W1": rng.normal(0, 0.3, (h, c)).astype(np.float32),
             "b1": rng.normal(0, 0.3, h).astype(np.float32),
             "W2": rng.normal(0, 0.3, (h, o)).astype(np.float32),
             "b2": rng.normal(0, 0.3, o).astype(np.float32)}
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node(act, ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "W2"], ["z"]),
             helper.make_node("Add", ["z", "b2"], ["s"]),
             helper.make_node("Sigmoid", ["s"], ["y"])]
    return _save(nodes, inits, ["batch", c], ["batch", o], path)


def cnn(path, seed=1):
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm on NCHW 1x8x8."""
    rng = np.random.default_rng(seed)
    inits = {"K": rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32),
             "kb": rng.normal(0, 0.1, 4).astype(np.float32),
             "W": rng.normal(0, 0.3, (10, 4 * 4 * 4)).astype(np.float32),
             "b": rng.normal(0, 0.1, 10).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1)]
    return _save(nodes, inits, ["batch", 1, 8, 8], ["batch", 10], path)


@pytest.fixture(scope="module")
def headers():
    """ORT's C++ headers: fetched into .cache by `course setup-ort` if this machine lacks them."""
    if cpp.find_ort_headers() is None:
        ort_headers.setup_ort([])
    found = cpp.find_ort_headers()
    if found is None:
        pytest.fail(cpp._missing_message())
    return found


def _ort_python(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts).run(None, {"x": x})[0]


@pytest.mark.parametrize("widths,act,batch", [((64, 48, 10), "Tanh", 7),
                                              ((13, 5, 3), "Relu", 1),
                                              ((30, 70, 4), "Sigmoid", 33)])
def test_mlp_parity_with_ort_python(tmp_path, headers, widths, act, batch):
    path = mlp(tmp_path / "mlp.onnx", widths, act)
    session = cpp.ort_cpp_session(path)
    assert (session.input_name, session.output_name) == ("x", "y")
    assert session.input_shape == (None, widths[0])
    assert session.output_shape == (None, widths[2])  # known: ORT writes into our array
    x = np.random.default_rng(batch).normal(size=(batch, widths[0])).astype(np.float32)
    got, want = session.run(x), _ort_python(path, x)
    assert got.shape == want.shape == (batch, widths[2]) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-6


def test_output_shape_known_only_after_the_run(tmp_path, headers):
    """Dynamic width too: ORT allocates the output and the session copies it out."""
    path = _save([helper.make_node("Softmax", ["x"], ["y"])], {}, ["batch", "n"],
                 ["batch", "n"], tmp_path / "softmax.onnx")
    session = cpp.ort_cpp_session(path)
    assert session.input_shape == session.output_shape == (None, None)
    for shape in [(2, 3), (4, 11)]:
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        got = session.run(x)
        assert got.shape == shape and np.abs(got - _ort_python(path, x)).max() <= 1e-6


def test_cnn_parity_any_batch(tmp_path, headers):
    path = cnn(tmp_path / "cnn.onnx")
    session = cpp.ort_cpp_session(path, intra_op_threads=1)
    assert session.input_shape == (None, 1, 8, 8)
    for batch in (1, 5, 64):
        x = np.random.default_rng(batch).normal(size=(batch, 1, 8, 8)).astype(np.float32)
        assert np.abs(session.run(x) - _ort_python(path, x)).max() <= 1e-6


def test_bad_inputs_give_clear_errors(tmp_path, headers):
    session = cpp.ort_cpp_session(mlp(tmp_path / "mlp.onnx", (16, 8, 3)))
    with pytest.raises(ValueError, match=r"expects shape \('batch', 16\), got x with shape "
                                         r"\(2, 15\)"):
        session.run(np.zeros((2, 15), np.float32))
    with pytest.raises(ValueError, match=r"dtype float64.*x.astype\(np.float32\)"):
        session.run(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="empty"):
        session.run(np.zeros((0, 16), np.float32))
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32))
    np.testing.assert_array_equal(session.run(x), session.run(np.ascontiguousarray(x)))


def test_not_onnx_missing_file_and_unsupported_opset(tmp_path, headers):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(cpp.OrtCppError, match=r"could not load .*junk.onnx: .*(?i:protobuf)"):
        cpp.ort_cpp_session(junk)
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        cpp.ort_cpp_session(tmp_path / "absent.onnx")
    model = onnx.load(mlp(tmp_path / "m.onnx", (4, 4, 2)))
    model.opset_import[0].version = 99
    onnx.save(model, tmp_path / "future.onnx")
    with pytest.raises(cpp.OrtCppError, match=r"could not load .*future.onnx: .*(?i:opset)"):
        cpp.ort_cpp_session(tmp_path / "future.onnx")


# --- header discovery ------------------------------------------------------------------------

def _fake_headers(base: Path) -> Path:
    base.mkdir(parents=True)
    (base / ort_headers.HEADER).write_text("// fake\n")
    return base


@pytest.fixture
def no_headers(monkeypatch, tmp_path):
    """A machine without headers: no env vars, no system dirs, an empty cache."""
    monkeypatch.delenv("ORT_INCLUDE_DIR", raising=False)
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    monkeypatch.setattr(ort_headers, "SYSTEM_HEADER_DIRS", ())
    monkeypatch.setattr(ort_headers, "ORT_CACHE", tmp_path / "cache")
    monkeypatch.setitem(cpp._STATE, "ort", False)
    return tmp_path


def test_header_discovery_order(no_headers, monkeypatch):
    tmp = no_headers
    assert ort_headers.find_ort_headers() is None
    cache = _fake_headers(tmp / "cache" / "include" / "onnxruntime")
    assert ort_headers.find_ort_headers() == cache
    system = _fake_headers(tmp / "usr" / "include" / "onnxruntime")
    monkeypatch.setattr(ort_headers, "SYSTEM_HEADER_DIRS", (system,))
    assert ort_headers.find_ort_headers() == system
    conda = _fake_headers(tmp / "conda" / "include" / "onnxruntime")
    monkeypatch.setenv("CONDA_PREFIX", str(tmp / "conda"))
    assert ort_headers.find_ort_headers() == conda
    explicit = _fake_headers(tmp / "mine")
    monkeypatch.setenv("ORT_INCLUDE_DIR", str(explicit))
    assert ort_headers.find_ort_headers() == explicit  # ORT_INCLUDE_DIR wins


def test_missing_headers_say_which_command_to_run(no_headers, tmp_path):
    with pytest.raises(cpp.OrtHeadersMissing) as err:
        cpp.ort_cpp_session(mlp(tmp_path / "m.onnx", (4, 4, 2)))
    msg = str(err.value)
    assert "course setup-ort" in msg and "conda install -c conda-forge onnxruntime-cpp" in msg
    assert "ORT_INCLUDE_DIR" in msg and ort_headers.HEADER in msg
    assert err.value._render_traceback_()[0].startswith("OrtHeadersMissing: ")


def test_setup_ort_reports_found_headers(no_headers, capsys):
    found = _fake_headers(no_headers / "cache" / "include" / "onnxruntime")
    assert ort_headers.setup_ort([]) == 0
    assert str(found) in capsys.readouterr().out


def test_setup_ort_without_debian_mirror_prints_the_other_ways(no_headers, monkeypatch, capsys):
    monkeypatch.setattr(ort_headers, "debian_mirror", lambda: None)
    assert ort_headers.setup_ort([]) == 1
    err = capsys.readouterr().err
    assert "conda install -c conda-forge onnxruntime-cpp" in err and "brew" in err


# --- setup-ort pieces, offline ---------------------------------------------------------------

DEB822 = """\
Types: deb
URIs: http://ports.example/ubuntu
Suites: noble noble-updates
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb
# a comment
URIs: https://mirror.example/debian/ http://second.example/debian
Suites: bookworm bookworm-updates
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://cloud.example/apt cloud-sdk main
deb http://old.example/debian-security bullseye-security main
deb http://mirror.example/debian/ bullseye main contrib
"""


def test_parse_apt_sources_picks_debian_suites_only():
    assert ort_headers.parse_apt_sources(DEB822, deb822=True) == [
        "https://mirror.example/debian", "http://second.example/debian"]
    assert ort_headers.parse_apt_sources(ONE_LINE, deb822=False) == ["http://mirror.example/debian"]


def test_debian_mirror_reads_the_machines_sources(tmp_path):
    apt = tmp_path / "etc" / "apt" / "sources.list.d"
    apt.mkdir(parents=True)
    (apt / "a-nodesource.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.example/node_20.x\nSuites: nodistro\n")
    (apt / "debian.sources").write_text(DEB822)
    (apt / "old.list.disabled").write_text("deb http://ignored.example/debian trixie main\n")
    assert ort_headers.debian_mirror(tmp_path) == "https://mirror.example/debian"
    (tmp_path / "etc" / "apt" / "sources.list").write_text(ONE_LINE)
    assert ort_headers.debian_mirror(tmp_path) == "http://mirror.example/debian"  # sources.list first
    assert ort_headers.debian_mirror(tmp_path / "nowhere") is None


PACKAGES = """\
Package: libonnxruntime1.21
Version: 1.21.0+dfsg-1
Filename: pool/main/o/onnxruntime/libonnxruntime1.21_1.21.0+dfsg-1_amd64.deb
SHA256: 00

Package: libonnxruntime-dev
Source: onnxruntime
Version: 1.21.0+dfsg-1
Description: cross-platform inference and training ML accelerator (dev files)
Filename: pool/main/o/onnxruntime/libonnxruntime-dev_1.21.0+dfsg-1_amd64.deb
Size: 85340
SHA256: 14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08
"""


def test_parse_packages_stanza():
    fields = ort_headers.parse_packages(PACKAGES, "libonnxruntime-dev")
    assert fields["Version"] == "1.21.0+dfsg-1"
    assert fields["Filename"].endswith("libonnxruntime-dev_1.21.0+dfsg-1_amd64.deb")
    assert fields["SHA256"].startswith("14f7d959")
    assert ort_headers.parse_packages(PACKAGES, "libonnxruntime") is None


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return out


def _fake_deb() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in [("./usr/include/onnxruntime/onnxruntime_cxx_api.h", b"// api\n"),
                           ("./usr/include/onnxruntime/core/providers/resource.h", b"// r\n"),
                           ("./usr/lib/x86_64-linux-gnu/libonnxruntime.so", b"ELF"),
                           ("./usr/include/onnxruntime/../../../etc/evil", b"no")]:
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return _ar({"debian-binary": b"2.0\n", "control.tar.xz": b"x", "data.tar.xz": buf.getvalue()})


def test_extract_headers_keeps_only_usr_include_onnxruntime(tmp_path):
    written = ort_headers.extract_headers(_fake_deb(), tmp_path)
    rel = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert rel == ["include/onnxruntime/core/providers/resource.h",
                   "include/onnxruntime/onnxruntime_cxx_api.h"]
    assert not (tmp_path / "etc").exists() and not list(tmp_path.rglob("*.so"))
    with pytest.raises(ValueError, match="not an ar archive"):
        ort_headers.extract_headers(b"PK\x03\x04 zip", tmp_path)


def _fake_mirror(root: Path, deb: bytes, sha: str) -> str:
    pool = root / "pool" / "main" / "o" / "onnxruntime"
    pool.mkdir(parents=True)
    (pool / "libonnxruntime-dev_1.21.0+dfsg-1_amd64.deb").write_bytes(deb)
    index = root / "dists" / "trixie" / "main" / "binary-amd64"
    index.mkdir(parents=True)
    stanza = PACKAGES.replace("14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08",
                              sha)
    (index / "Packages.xz").write_bytes(lzma.compress(stanza.encode()))
    return root.as_uri()


def test_fetch_checks_sha256_and_writes_only_headers(tmp_path):
    deb = _fake_deb()
    mirror = _fake_mirror(tmp_path / "mirror", deb, hashlib.sha256(deb).hexdigest())
    where = ort_headers.fetch_debian_headers(mirror, tmp_path / "cache", arch="amd64")
    assert (where / ort_headers.HEADER).read_bytes() == b"// api\n"
    assert "1.21.0+dfsg-1" in (tmp_path / "cache" / "VERSION").read_text()
    bad = _fake_mirror(tmp_path / "bad", deb, "0" * 64)
    with pytest.raises(RuntimeError, match="SHA256 mismatch"):
        ort_headers.fetch_debian_headers(bad, tmp_path / "cache2", arch="amd64")
    assert not (tmp_path / "cache2" / "include").exists()


def test_setup_ort_against_the_configured_debian_mirror(tmp_path, capsys):
    """The real thing: the machine's mirror, the real package, headers that ORT's API matches."""
    mirror = ort_headers.debian_mirror()
    if mirror is None:
        pytest.skip("no Debian mirror configured for apt on this machine")
    assert ort_headers.setup_ort(["--force", "--dest", str(tmp_path)]) == 0
    where = tmp_path / "include" / "onnxruntime"
    assert (where / ort_headers.HEADER).is_file() and (where / "onnxruntime_c_api.h").is_file()
    assert cpp._api_version(where) == 21
    assert not list(tmp_path.rglob("*.so*"))
    assert mirror in capsys.readouterr().out


def test_ort_session_header_compiles_with_gpp_too(tmp_path, headers):
    """cpp_snippets/ is plain C++17: the same header builds outside cppyy, warnings as errors."""
    import shutil
    import subprocess

    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    (tmp_path / "unit.cpp").write_text('#include "ort_session.h"\n')
    done = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                           f"-I{cpp.SNIPPETS}", f"-I{headers}", "unit.cpp"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
