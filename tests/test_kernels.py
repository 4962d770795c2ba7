"""The reference C++ kernels (cpp_snippets/) against PyTorch float64 and finite differences.

Every backward is also checked to ACCUMULATE (+=), optional pointers may be nullptr, the
optimizers follow torch.optim step by step, and the headers compile with plain g++.
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course import checks

SNIPPETS = Path(__file__).resolve().parent.parent / "cpp_snippets"
RTOL = 1e-4  # the contract: kernels match torch float64 within 1e-4 relative
CONTRACT = ["dense_forward", "dense_backward", "relu_forward", "relu_backward", "tanh_forward",
            "tanh_backward", "sigmoid_forward", "sigmoid_backward",
            "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "conv2d_forward",
            "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward", "sgd_update",
            "adamw_update"]
SHAPES = settings(max_examples=12, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def k():
    """The compiled reference kernels, through course.cpp (plain cppyy if it is missing)."""
    try:
        from course import cpp

        return cpp.kernels()
    except (ImportError, AttributeError):
        import cppyy

        cppyy.add_include_path(str(SNIPPETS))
        cppyy.include("kernels.h")
        return cppyy.gbl


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


def assert_matches(got, expected, what):
    """Within 1e-4 relative; elements near zero are judged against the tensor's size."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-6 * scale, err_msg=what)


def torch_grads(fn, arrays, dout):
    """float64 autograd of sum(dout * fn(*arrays)) with respect to every array."""
    ts = [t64(a).requires_grad_() for a in arrays]
    out = fn(*ts)
    out.backward(t64(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def run_backward_twice(call, buffers):
    """Backward into zeroed buffers, then again: the second call must add the same again."""
    for b in buffers:
        b[...] = 0
    call()
    first = [b.copy() for b in buffers]
    call()
    for b, f in zip(buffers, first):
        scale = max(1.0, float(np.abs(f).max()))  # the second sum rounds in a different order
        np.testing.assert_allclose(b, 2 * f, rtol=1e-5, atol=1e-6 * scale,
                                   err_msg="backward must accumulate (+=)")
    return first


# ---------------------------------------------------------------------------------------------
# dense


@SHAPES
@given(B=st.integers(1, 9), C=st.integers(1, 70), OC=st.integers(1, 20), seed=st.integers(0, 99))
def test_dense_matches_torch(k, B, C, OC, seed):
    rng = np.random.default_rng(seed)
    inp, weight, bias, dout = rand(rng, B, C), rand(rng, OC, C), rand(rng, OC), rand(rng, B, OC)
    out = np.empty((B, OC), np.float32)
    k.dense_forward(out, inp, weight, bias, B, C, OC)
    expected, (dinp, dweight, dbias) = torch_grads(F.linear, [inp, weight, bias], dout)
    assert_matches(out, expected, "out")
    grads = [np.empty_like(inp), np.empty_like(weight), np.empty_like(bias)]
    got = run_backward_twice(lambda: k.dense_backward(*grads, dout, inp, weight, B, C, OC), grads)
    for name, g, e in zip(("dinp", "dweight", "dbias"), got, (dinp, dweight, dbias)):
        assert_matches(g, e, name)


def test_dense_optional_pointers_may_be_null(k):
    import cppyy

    rng = np.random.default_rng(1)
    B, C, OC = 3, 4, 5
    inp, weight, dout = rand(rng, B, C), rand(rng, OC, C), rand(rng, B, OC)
    out = np.full((B, OC), 7.0, np.float32)
    k.dense_forward(out, inp, weight, cppyy.nullptr, B, C, OC)
    assert_matches(out, F.linear(t64(inp), t64(weight)).numpy(), "out without bias")
    dweight = np.zeros_like(weight)
    k.dense_backward(cppyy.nullptr, dweight, cppyy.nullptr, dout, inp, weight, B, C, OC)
    assert_matches(dweight, dout.astype(np.float64).T @ inp, "dweight alone")


@pytest.mark.parametrize("seed,shape", [(0, (4, 5, 3)), (1, (7, 64, 10)), (2, (1, 1, 1))])
def test_dense_backward_gradcheck(k, seed, shape):
    B, C, OC = shape
    report = checks.check_dense_backward(k.dense_backward, seed=seed, B=B, C=C, OC=OC)
    assert report.passed and set(report.errors) == {"dinp", "dweight", "dbias"}
    assert all(err < RTOL for errs in report.errors.values() for err in errs.values())


# ---------------------------------------------------------------------------------------------
# activations


@pytest.mark.parametrize("name,op,backward_uses", [("relu", torch.relu, "inp"),
                                                   ("tanh", torch.tanh, "out"),
                                                   ("sigmoid", torch.sigmoid, "out")])
@pytest.mark.parametrize("N,seed", [(1, 0), (17, 1), (1000, 2)])
def test_activation_matches_torch(k, name, op, backward_uses, N, seed):
    rng = np.random.default_rng(seed)
    inp, dout = rand(rng, N, scale=4.0), rand(rng, N)
    out = np.empty(N, np.float32)
    getattr(k, f"{name}_forward")(out, inp, N)
    expected, (dinp,) = torch_grads(op, [inp], dout)
    assert_matches(out, expected, f"{name} out")
    saved = inp if backward_uses == "inp" else out
    grad = np.empty(N, np.float32)
    got = run_backward_twice(lambda: getattr(k, f"{name}_backward")(grad, dout, saved, N),
                             [grad])
    assert_matches(got[0], dinp, f"{name} dinp")


def test_activations_extremes(k):
    inp = np.array([-1e4, -100.0, -0.0, 0.0, 100.0, 1e4], np.float32)
    out = np.empty_like(inp)
    k.sigmoid_forward(out, inp, inp.size)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, torch.sigmoid(t64(inp)).numpy(), rtol=RTOL, atol=1e-40)
    k.relu_backward(out := np.zeros_like(inp), np.ones_like(inp), inp, inp.size)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 1, 1])  # gradient 0 at exactly 0, as torch


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("seed", [0, 3])
def test_activation_gradcheck(k, name, seed):
    check = getattr(checks, f"check_{name}_backward")
    assert check(getattr(k, f"{name}_backward"), seed=seed, N=50).passed


# ---------------------------------------------------------------------------------------------
# softmax cross-entropy


@SHAPES
@given(B=st.integers(1, 12), V=st.integers(1, 15), scale=st.sampled_from([1.0, 5.0, 1e3]),
       seed=st.integers(0, 99))
def test_softmax_cross_entropy_matches_torch(k, B, V, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rand(rng, B, V, scale=scale)
    targets = rng.integers(0, V, B).astype(np.int32)
    losses, probs = np.empty(B, np.float32), np.empty((B, V), np.float32)
    k.softmax_cross_entropy_forward(losses, probs, logits, targets, B, V)
    lt = t64(logits).requires_grad_()
    ref = F.cross_entropy(lt, torch.tensor(targets, dtype=torch.int64), reduction="none")
    assert_matches(losses, ref.detach().numpy(), "losses")
    assert_matches(probs, torch.softmax(t64(logits), 1).numpy(), "probs")
    dlosses = np.full(B, 1.0 / B, np.float32)  # the mean loss
    ref.backward(t64(dlosses))
    dlogits = np.empty_like(logits)
    got = run_backward_twice(lambda: k.softmax_cross_entropy_backward(
        dlogits, dlosses, probs, targets, B, V), [dlogits])
    assert_matches(got[0], lt.grad.numpy(), "dlogits")


def test_softmax_cross_entropy_is_stable_for_huge_logits(k):
    logits = np.array([[1e4, -1e4, 0.0], [-1e38, 1e38, 1.0], [88.0, 89.0, 90.0]], np.float32)
    targets = np.array([1, 0, 2], np.int32)
    losses, probs = np.empty(3, np.float32), np.empty((3, 3), np.float32)
    k.softmax_cross_entropy_forward(losses, probs, logits, targets, 3, 3)
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(probs))
    ref = F.cross_entropy(t64(logits), torch.tensor(targets, dtype=torch.int64), reduction="none")
    np.testing.assert_allclose(losses, ref.numpy(), rtol=RTOL)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)


def test_softmax_cross_entropy_rejects_bad_targets(k):
    logits, losses, probs = np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.zeros(
        (2, 3), np.float32)
    with pytest.raises(Exception, match=r"targets\[1\] = 3 is outside \[0, 3\)"):
        k.softmax_cross_entropy_forward(losses, probs, logits, np.array([0, 3], np.int32), 2, 3)
    with pytest.raises(Exception, match=r"targets\[0\] = -1"):
        k.softmax_cross_entropy_backward(probs, losses, probs, np.array([-1, 0], np.int32), 2, 3)


@pytest.mark.parametrize("seed,B,V", [(0, 5, 7), (1, 1, 2), (2, 16, 10)])
def test_softmax_cross_entropy_gradcheck(k, seed, B, V):
    report = checks.check_softmax_cross_entropy_backward(k.softmax_cross_entropy_backward,
                                                         seed=seed, B=B, V=V)
    assert report.passed


# ---------------------------------------------------------------------------------------------
# conv2d


CONV_CASES = [  # B, C, H, W, OC, KH, KW, stride, pad
    (2, 3, 7, 6, 4, 3, 2, 1, 1), (1, 1, 8, 8, 8, 3, 3, 1, 1), (3, 2, 9, 7, 3, 3, 3, 2, 0),
    (2, 4, 5, 5, 2, 1, 1, 1, 0), (1, 2, 6, 9, 3, 4, 3, 3, 2), (2, 1, 3, 3, 2, 5, 5, 1, 2),
]


def conv_case(k, case, seed, bias=True):
    B, C, H, W, OC, KH, KW, stride, pad = case
    rng = np.random.default_rng(seed)
    inp, weight, b = rand(rng, B, C, H, W), rand(rng, OC, C, KH, KW), rand(rng, OC)
    fn = lambda x, w, bb: F.conv2d(x, w, bb, stride=stride, padding=pad)  # noqa: E731
    ref_out = fn(t64(inp), t64(weight), t64(b)).numpy()
    dout = rand(rng, *ref_out.shape)
    out = np.full(ref_out.shape, 9.0, np.float32)
    k.conv2d_forward(out, inp, weight, b, B, C, H, W, OC, KH, KW, stride, pad)
    return inp, weight, b, dout, out, fn


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(k, case):
    B, C, H, W, OC, KH, KW, stride, pad = case
    inp, weight, b, dout, out, fn = conv_case(k, case, seed=sum(case))
    expected, (dinp, dweight, dbias) = torch_grads(fn, [inp, weight, b], dout)
    assert_matches(out, expected, "out")
    grads = [np.empty_like(inp), np.empty_like(weight), np.empty_like(b)]
    got = run_backward_twice(lambda: k.conv2d_backward(
        *grads, dout, inp, weight, B, C, H, W, OC, KH, KW, stride, pad), grads)
    for name, g, e in zip(("dinp", "dweight", "dbias"), got, (dinp, dweight, dbias)):
        assert_matches(g, e, name)


@SHAPES
@given(B=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 9), W=st.integers(1, 9),
       OC=st.integers(1, 4), KH=st.integers(1, 4), KW=st.integers(1, 4),
       stride=st.integers(1, 3), pad=st.integers(0, 2))
def test_conv2d_gradcheck_random_shapes(k, B, C, H, W, OC, KH, KW, stride, pad):
    if H + 2 * pad < KH or W + 2 * pad < KW:
        return  # no output position: the kernel rejects it (tested below)
    report = checks.check_conv2d_backward(k.conv2d_backward, seed=H * W, B=B, C=C, H=H, W=W,
                                          OC=OC, KH=KH, KW=KW, stride=stride, pad=pad)
    assert report.passed


def test_conv2d_optional_pointers_may_be_null(k):
    import cppyy

    case = CONV_CASES[2]
    B, C, H, W, OC, KH, KW, stride, pad = case
    inp, weight, b, dout, _, fn = conv_case(k, case, seed=5)
    out = np.full((B, OC, 4, 3), 9.0, np.float32)
    k.conv2d_forward(out, inp, weight, cppyy.nullptr, B, C, H, W, OC, KH, KW, stride, pad)
    assert_matches(out, fn(t64(inp), t64(weight), None).numpy(), "out without bias")
    _, (_, dweight, _) = torch_grads(fn, [inp, weight, b], dout)
    got = np.zeros_like(weight)
    k.conv2d_backward(cppyy.nullptr, got, cppyy.nullptr, dout, inp, weight, B, C, H, W, OC, KH,
                      KW, stride, pad)
    assert_matches(got, dweight, "dweight alone")


def test_conv2d_rejects_bad_shapes(k):
    x = np.zeros(64, np.float32)
    with pytest.raises(Exception, match="conv2d_forward: the kernel is larger than"):
        k.conv2d_forward(x, x, x, x, 1, 1, 2, 2, 1, 5, 5, 1, 0)
    with pytest.raises(Exception, match="stride must be positive"):
        k.conv2d_backward(x, x, x, x, x, x, 1, 1, 2, 2, 1, 1, 1, 0, 0)


# ---------------------------------------------------------------------------------------------
# maxpool2d


@pytest.mark.parametrize("B,C,H,W,K,stride", [(2, 3, 6, 7, 2, 2), (1, 1, 8, 8, 2, 2),
                                              (2, 2, 7, 5, 3, 1), (1, 3, 9, 9, 3, 2),
                                              (3, 1, 4, 4, 4, 1)])
def test_maxpool2d_matches_torch(k, B, C, H, W, K, stride):
    rng = np.random.default_rng(H * W + K)
    inp = rand(rng, B, C, H, W)
    fn = lambda x: F.max_pool2d(x, K, stride)  # noqa: E731
    ref = fn(t64(inp)).numpy()
    dout = rand(rng, *ref.shape)
    out = np.empty(ref.shape, np.float32)
    k.maxpool2d_forward(out, inp, B, C, H, W, K, stride)
    expected, (dinp,) = torch_grads(fn, [inp], dout)
    assert_matches(out, expected, "out")
    grad = np.empty_like(inp)
    got = run_backward_twice(lambda: k.maxpool2d_backward(grad, dout, inp, B, C, H, W, K, stride),
                             [grad])
    assert_matches(got[0], dinp, "dinp")


@pytest.mark.parametrize("K,stride,seed", [(2, 2, 0), (3, 1, 1), (2, 1, 2), (3, 3, 3)])
def test_maxpool2d_gradcheck(k, K, stride, seed):
    assert checks.check_maxpool2d_backward(k.maxpool2d_backward, seed=seed, K=K,
                                           stride=stride).passed


def test_maxpool2d_propagates_nan(k):
    inp = np.array([1.0, np.nan, 3.0, 2.0], np.float32).reshape(1, 1, 2, 2)
    out = np.zeros((1, 1, 1, 1), np.float32)
    k.maxpool2d_forward(out, inp, 1, 1, 2, 2, 2, 2)
    assert np.isnan(out).all() and torch.isnan(F.max_pool2d(t64(inp), 2, 2)).all()


# ---------------------------------------------------------------------------------------------
# optimizers


@pytest.mark.parametrize("lr,momentum,weight_decay", [(0.1, 0.9, 0.0), (0.05, 0.5, 0.01),
                                                      (0.2, 0.0, 0.1), (0.01, 0.99, 5e-4)])
def test_sgd_matches_torch(k, lr, momentum, weight_decay):
    import cppyy

    rng = np.random.default_rng(7)
    N, steps = 257, 8
    param = rand(rng, N)
    p = t64(param).requires_grad_()
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    velocity = np.zeros(N, np.float32)
    for step in range(steps):
        grad = rand(rng, N)
        p.grad = t64(grad)
        opt.step()
        k.sgd_update(param, velocity if momentum else cppyy.nullptr, grad, N, lr, momentum,
                     weight_decay)
        assert_matches(param, p.detach().numpy(), f"param after step {step + 1}")
        if momentum:
            assert_matches(velocity, opt.state[p]["momentum_buffer"].numpy(), "velocity")


@pytest.mark.parametrize("lr,betas,eps,weight_decay", [(1e-3, (0.9, 0.999), 1e-8, 0.01),
                                                       (0.05, (0.8, 0.99), 1e-6, 0.0),
                                                       (0.01, (0.5, 0.9), 1e-3, 0.1)])
def test_adamw_matches_torch(k, lr, betas, eps, weight_decay):
    rng = np.random.default_rng(8)
    N, steps = 257, 10
    param = rand(rng, N)
    p = t64(param).requires_grad_()
    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    m, v = np.zeros(N, np.float32), np.zeros(N, np.float32)
    for t in range(1, steps + 1):
        grad = rand(rng, N)
        p.grad = t64(grad)
        opt.step()
        k.adamw_update(param, m, v, grad, N, lr, betas[0], betas[1], eps, weight_decay, t)
        assert_matches(param, p.detach().numpy(), f"param after step {t}")
        assert_matches(m, opt.state[p]["exp_avg"].numpy(), "m")
        assert_matches(v, opt.state[p]["exp_avg_sq"].numpy(), "v")


def test_optimizers_reject_bad_arguments(k):
    import cppyy

    x = np.zeros(4, np.float32)
    with pytest.raises(Exception, match="velocity may be nullptr only when momentum == 0"):
        k.sgd_update(x, cppyy.nullptr, x, 4, 0.1, 0.9, 0.0)
    with pytest.raises(Exception, match="t is the step number and counts from 1"):
        k.adamw_update(x, x.copy(), x.copy(), x, 4, 0.1, 0.9, 0.999, 1e-8, 0.0, 0)


def test_shape_errors_name_the_kernel(k):
    x = np.zeros(4, np.float32)
    with pytest.raises(Exception, match="dense_forward: B, C and OC must be positive"):
        k.dense_forward(x, x, x, x, 0, 2, 2)
    with pytest.raises(Exception, match="maxpool2d_forward: the window K is larger"):
        k.maxpool2d_forward(x, x, 1, 1, 2, 2, 3, 1)


# ---------------------------------------------------------------------------------------------
# plain g++: the headers are standard C++17, and build the student release's shared library

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ is not installed")
WARNINGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror"]


def gxx(tmp_path, *flags):
    unit = tmp_path / "unit.cpp"
    unit.write_text('#include "kernels.h"\n')
    return subprocess.run([GXX, *WARNINGS, f"-I{SNIPPETS}", *flags, str(unit)],
                          capture_output=True, text=True, cwd=tmp_path)


@needs_gxx
def test_headers_compile_with_gxx_warnings_as_errors(tmp_path):
    done = gxx(tmp_path, "-fsyntax-only")
    assert done.returncode == 0, done.stderr
    for header in sorted(SNIPPETS.glob("*.h")):  # each header stands on its own
        if header.name in {"kernels.h", "common.h", "dense.h", "activations.h", "conv2d.h",
                           "softmax_cross_entropy.h", "maxpool2d.h", "optim.h"}:
            (tmp_path / "unit.cpp").write_text(f'#include "{header.name}"\n')
            done = subprocess.run([GXX, *WARNINGS, f"-I{SNIPPETS}", "-fsyntax-only",
                                   "unit.cpp"], capture_output=True, text=True, cwd=tmp_path)
            assert done.returncode == 0, f"{header.name}:\n{done.stderr}"


@needs_gxx
def test_headers_compile_with_openmp(tmp_path):
    done = gxx(tmp_path, "-fsyntax-only", "-fopenmp", "-DCOURSE_USE_OPENMP")
    assert done.returncode == 0, done.stderr


@needs_gxx
def test_shared_library_exports_the_contract(tmp_path):
    import ctypes

    lib = tmp_path / "libkernels.so"
    done = gxx(tmp_path, "-DCOURSE_KERNEL=", "-shared", "-fPIC", "-o", str(lib))
    assert done.returncode == 0, done.stderr
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True,
                             text=True).stdout
    mangled = {re.search(r"_Z\d+(\w+?)P", s).group(1): s for s in re.findall(r"\b_Z\w+", symbols)
               if re.search(r"_Z\d+(\w+?)P", s)}
    missing = [name for name in CONTRACT if name not in mangled]
    assert not missing, f"not exported: {missing}"
    # the library computes what cppyy computes: call dense_forward through ctypes
    dense = getattr(ctypes.CDLL(str(lib)), mangled["dense_forward"])
    rng = np.random.default_rng(0)
    inp, weight, bias = rand(rng, 3, 4), rand(rng, 5, 4), rand(rng, 5)
    out = np.zeros((3, 5), np.float32)
    ptr = ctypes.c_void_p
    dense(*(ptr(a.ctypes.data) for a in (out, inp, weight, bias)), 3, 4, 5)
    assert_matches(out, F.linear(t64(inp), t64(weight), t64(bias)).numpy(), "out via .so")


def test_every_function_is_a_course_kernel():
    """The release ships declarations only, so every function must carry COURSE_KERNEL."""
    for header in sorted(SNIPPETS.glob("*.h")):
        if header.name not in {"common.h", "dense.h", "activations.h", "conv2d.h", "optim.h",
                               "softmax_cross_entropy.h", "maxpool2d.h"}:
            continue
        text = header.read_text()
        assert text.lstrip().startswith("//"), f"{header.name} must open with what it computes"
        assert "#pragma once" in text
        top_level = re.findall(r"^(?!\s)(?!//|#|COURSE_KERNEL)[^\n{}]*\w+\([^;]*?\)\s*\{", text,
                               re.M)
        assert not top_level, f"{header.name}: functions without COURSE_KERNEL: {top_level}"
