"""Exercise checks: each says what was expected, what came back, where, and one hint.

Every check first *records* the value it judges (see `record`), then raises `ExerciseFailure`
when the value is wrong. The grader reads the records, so a check's verdict in the learner's
process is feedback only. Kernel checks (`check_dense_backward`, ...) call a learner's C++
function with the reference signature from `cpp_snippets/kernels.h` on seeded inputs and compare
against PyTorch in float64 and, for gradients, against central finite differences.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

RECORD_MIME = "application/vnd.course.record+json"
NOT_IMPLEMENTED_HINT = (
    "replace the stub line (raise NotImplementedError / throw std::logic_error) in the "
    "exercise's solution cell with your code, then re-run that cell and this one"
)


class ExerciseFailure(AssertionError):
    """An exercise check failed; the message says expected, got, where, and a hint."""


# ---------------------------------------------------------------------------------------------
# Recording (what the grader reads)


def _json_value(value):
    """Nested lists of float, non-finite numbers as the strings "nan", "inf", "-inf"."""
    if value is None or value is NotImplemented:
        raise TypeError("no value")
    arr = np.asarray(value, dtype=np.float64)

    def convert(x):
        if isinstance(x, list):
            return [convert(v) for v in x]
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x

    return convert(arr.tolist()), list(arr.shape)


def _json_extra(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        return _json_value(value)[0]
    except (TypeError, ValueError):
        return str(value)


def record(name, value, kind="close", rtol=None, atol=None, **extra):
    """Emit the judged value as a display output when COURSE_RECORD=1; never raises."""
    if os.environ.get("COURSE_RECORD") != "1":
        return
    try:
        try:
            json_value, shape = _json_value(_to_numpy(value))
        except Exception:  # not numeric: the grader sees null and fails it
            json_value, shape = None, None
        payload = {"name": str(name), "kind": str(kind), "value": json_value, "shape": shape,
                   "rtol": _json_extra(rtol), "atol": _json_extra(atol)}
        payload.update({str(k): _json_extra(v) for k, v in extra.items()})
        from IPython.display import display

        display({RECORD_MIME: payload}, raw=True)
    except Exception:  # recording is best effort; the verdict comes from the grader
        pass


# ---------------------------------------------------------------------------------------------
# Value checks


def _to_numpy(value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, maybe with grad
        value = value.detach().cpu().numpy()
    return value


def _as_float_array(name, value, what="got"):
    """float64 array, or an ExerciseFailure that says why the value cannot be judged."""
    if value is None:
        raise ExerciseFailure(f"{name}: {what} is None. Hint: did the function `return` its "
                              "result (or fill the output buffer)?")
    if value is NotImplemented:
        raise ExerciseFailure(f"{name}: {what} is NotImplemented. Hint: {NOT_IMPLEMENTED_HINT}")
    try:
        arr = np.asarray(_to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ExerciseFailure(f"{name}: {what} is not numeric ({type(value).__name__}: {err}). "
                              "Hint: return a number or a numpy array") from None
    return arr


def _fmt_index(index):
    if len(index) == 0:
        return ""
    if len(index) == 1:
        return f" at index {index[0]}"
    return f" at index ({', '.join(str(i) for i in index)})"


def _fmt(x):
    return "NaN" if math.isnan(x) else f"{x:.4g}"


@dataclass
class Mismatch:
    """The worst element of a failed comparison."""
    index: tuple
    expected: float
    got: float
    abs_err: float
    rel_err: float
    n_off: int
    size: int

    def describe(self, name):
        where = _fmt_index(self.index)
        if math.isnan(self.got):
            return (f"{name}: got NaN{where} (expected {_fmt(self.expected)}; "
                    f"{self.n_off} of {self.size} elements off)")
        return (f"{name}: expected {_fmt(self.expected)}{where}, got {_fmt(self.got)} "
                f"(abs err {self.abs_err:.1e}, rel err {self.rel_err:.1e}; "
                f"{self.n_off} of {self.size} elements off)")


def _excess(got, expected, rtol, atol):
    """How far each element is beyond its tolerance (> 0: off); NaN counts as infinitely off."""
    with np.errstate(invalid="ignore", over="ignore"):
        excess = np.abs(got - expected) - (atol + rtol * np.abs(expected))
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))  # equal infs, shared NaN
    excess = np.where(same, -np.inf, excess)
    return np.where(np.isnan(excess), np.inf, excess)


def compare(got, expected, rtol, atol):
    """None when `got` matches `expected` within tolerance, else the worst `Mismatch`."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    excess = _excess(got, expected, rtol, atol)
    off = excess > 0
    if not off.any():
        return None
    index = np.unravel_index(int(np.argmax(excess)), got.shape)
    g, e = float(got[index]), float(expected[index])
    abs_err = abs(g - e)
    rel_err = abs_err / abs(e) if e != 0 else math.inf if abs_err else 0.0
    return Mismatch(tuple(int(i) for i in index), e, g, abs_err, rel_err, int(off.sum()), got.size)


def _fail(message, hint=""):
    raise ExerciseFailure(f"{message}. Hint: {hint}" if hint else message)


def _ok(name, quiet=False):
    if not quiet:
        print(f"{name}: ok")


def _check_shape(name, got, expected, hint):
    if got.shape == expected.shape:
        return got
    if got.size == 1 and expected.size == 1:  # a scalar in any wrapping is the same scalar
        return got.reshape(expected.shape)
    _fail(f"{name}: expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}", hint)


def close(name, got, expected, rtol=1e-5, atol=1e-6, hint="", quiet=False):
    """Check |got - expected| <= atol + rtol*|expected| elementwise; report the worst element."""
    record(name, got, kind="close", rtol=rtol, atol=atol)
    got = _as_float_array(name, got)
    expected = _as_float_array(name, expected, "expected")
    got = _check_shape(name, got, expected, hint)
    bad = compare(got, expected, rtol, atol)
    if bad is not None:
        _fail(bad.describe(name), hint)
    _ok(name, quiet)


def equal(name, got, expected, hint="", quiet=False):
    """Exact equality, for integers, labels and shapes."""
    record(name, got, kind="equal")
    if got is None:
        _fail(f"{name}: got None, expected {expected!r}", hint or "did the function return?")
    got_arr, exp_arr = np.asarray(_to_numpy(got)), np.asarray(_to_numpy(expected))
    if got_arr.shape != exp_arr.shape:
        _fail(f"{name}: expected {_short(expected)} (shape {exp_arr.shape}), got {_short(got)} "
              f"(shape {got_arr.shape})", hint)
    try:
        same = np.asarray(got_arr == exp_arr, dtype=bool)
    except (TypeError, ValueError):
        same = np.zeros(exp_arr.shape, dtype=bool)
    if same.shape != exp_arr.shape:  # an object with a permissive __eq__ gives one bool
        same = np.zeros(exp_arr.shape, dtype=bool)
    if not same.all():
        index = np.unravel_index(int(np.argmin(same)), exp_arr.shape)
        where = _fmt_index(tuple(int(i) for i in index))
        _fail(f"{name}: expected {exp_arr[index].item()!r}{where}, got {got_arr[index].item()!r} "
              f"({int((~same).sum())} of {same.size} elements differ)", hint)
    _ok(name, quiet)


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def at_least(name, got, threshold, hint="", quiet=False):
    """A scalar goal, e.g. test accuracy >= 0.95."""
    record(name, got, kind="at_least", threshold=float(threshold))
    arr = _as_float_array(name, got)
    if arr.size != 1:
        _fail(f"{name}: expected one number, got shape {arr.shape}", hint)
    value = float(arr.reshape(()))
    if not value >= threshold:  # also catches NaN
        _fail(f"{name}: expected at least {threshold:.4g}, got {_fmt(value)}", hint)
    _ok(name, quiet)


def is_true(name, cond, message="", hint="", quiet=False):
    """A yes/no condition; `message` says what should have been true."""
    value = cond.item() if isinstance(cond, np.ndarray) and cond.size == 1 else cond
    ok = isinstance(value, (bool, np.bool_)) and bool(value)
    record(name, float(ok), kind="is_true")
    if not ok:
        what = message or "expected the condition to be True"
        _fail(f"{name}: {what} (got {_short(cond)})", hint)
    _ok(name, quiet)


def trajectory_parity(name, losses, reference, rtol=5e-4, atol=1e-7, hint="", quiet=False):
    """Two loss trajectories agree step by step; the message names the first step that diverges."""
    record(name, losses, kind="trajectory", rtol=rtol, atol=atol)
    got = _as_float_array(name, losses).ravel()
    exp = _as_float_array(name, reference, "reference").ravel()
    if got.size != exp.size:
        _fail(f"{name}: expected {exp.size} steps, got {got.size}", hint)
    off = _excess(got, exp, rtol, atol) > 0
    if off.any():
        step = int(np.argmax(off))
        g, e = float(got[step]), float(exp[step])
        what = "NaN" if math.isnan(g) else f"{_fmt(g)} (rel err {abs(g - e) / abs(e):.1e})"
        _fail(f"{name}: step {step} diverges: expected loss {_fmt(e)}, got {what}; "
              f"steps 0..{step - 1} match, {int(off.sum())} of {got.size} steps off"
              if step else f"{name}: step 0 diverges: expected loss {_fmt(e)}, got {what}", hint)
    _ok(name, quiet)


# ---------------------------------------------------------------------------------------------
# Gradient check


@dataclass
class Worst:
    """The element furthest from its reference, over all gradients and both references."""
    gradient: str
    index: tuple
    expected: float
    got: float
    rel_err: float
    reference: str


@dataclass
class GradcheckReport:
    """Outcome of `gradcheck`; `str()` lists the worst relative error per gradient."""
    name: str
    passed: bool
    worst: Worst | None
    errors: dict = field(default_factory=dict)  # gradient -> {"autograd": e, "finite diff": e}
    worst_excess: float = -math.inf  # how far the worst element is beyond its tolerance

    def __str__(self):
        lines = [f"{self.name}: {'ok' if self.passed else 'FAILED'}"]
        for grad, errs in self.errors.items():
            parts = ", ".join(f"{ref} {err:.1e}" for ref, err in errs.items())
            lines.append(f"  {grad}: worst rel err vs {parts}")
        if self.worst is not None:
            w = self.worst
            lines.append(f"  worst: {w.gradient}{_fmt_index(w.index)} expected {_fmt(w.expected)}"
                         f" got {_fmt(w.got)} ({w.reference})")
        return "\n".join(lines)

    def __repr__(self):  # no numbers: notebook outputs stay identical across machines
        return f"<GradcheckReport {self.name}: {'ok' if self.passed else 'FAILED'}>"


def _call(name, fn, *args):
    """Call a learner's function; its exceptions become an ExerciseFailure naming the cause."""
    try:
        return fn(*args)
    except ExerciseFailure:
        raise
    except Exception as err:
        text = str(err).strip().splitlines()
        text = text[-1] if text else ""
        hint = NOT_IMPLEMENTED_HINT if "not implemented" in str(err).lower() else (
            "read the error above; check the argument order against the kernel contract")
        raise ExerciseFailure(f"{name}: your function raised {type(err).__name__}: {text}. "
                              f"Hint: {hint}") from err


def _torch_inputs(inputs, wrt):
    import torch

    out = {}
    for key, arr in inputs.items():
        if np.issubdtype(arr.dtype, np.integer):
            out[key] = torch.tensor(arr, dtype=torch.int64)
        else:
            out[key] = torch.tensor(arr, dtype=torch.float64, requires_grad=key in wrt)
    return out


def _c_inputs(inputs):
    """float32 / int32 C-contiguous copies: what the C++ kernel receives."""
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    return {k: np.ascontiguousarray(v, dtype=np.int32 if np.issubdtype(v.dtype, np.integer)
                                    else np.float32) for k, v in arrays.items()}


def _finite_differences(torch_fn, inputs64, dout, key, indices, eps):
    """Central differences of L = sum(dout * f(inputs)) in float64 at the given flat indices."""
    import torch

    with torch.no_grad():
        x = inputs64[key].detach().clone()
        flat = x.view(-1)
        fd = np.empty(len(indices))
        args = {k: v.detach() for k, v in inputs64.items()}
        for n, i in enumerate(indices):
            original = float(flat[i])
            flat[i] = original + eps
            plus = float((dout * torch_fn(**{**args, key: x})).sum())
            flat[i] = original - eps
            minus = float((dout * torch_fn(**{**args, key: x})).sum())
            flat[i] = original
            fd[n] = (plus - minus) / (2 * eps)
    return fd


def _diagnose(dname, delta, raw, twice, expected, rtol, atol):
    """Recognize the classic mistakes from the shape of the error.

    raw: the buffer after one call (pre-filled with noise); twice: after a second call on it.
    """
    def near(a, b):
        return a.shape == b.shape and compare(a, b, rtol * 10, atol * 10) is None

    if np.all(delta == 0) and np.any(expected != 0):
        return f"{dname} was never written (it still holds what the caller put there)"
    if near(raw, expected) or (twice is not None and near(twice, raw)):
        return (f"{dname} was overwritten (=) instead of accumulated (+=): backward kernels add "
                "into gradient buffers, the caller zeroes them")
    if delta.ndim == 2 and delta.shape[0] != delta.shape[1]:
        if near(delta.reshape(delta.shape[::-1]).T, expected):
            return f"{dname} comes out transposed: it has shape {delta.shape}, check your indexing"
    if near(delta, -expected):
        return f"{dname} has the wrong sign"
    ratio = delta.ravel() @ expected.ravel() / max(float(expected.ravel() @ expected.ravel()),
                                                     1e-300)
    if abs(ratio - 1) > 1e-3 and ratio != 0 and near(delta, ratio * expected):
        return f"{dname} is off by a constant factor {ratio:.4g} (a sum where a mean belongs?)"
    return ""


def gradcheck(name, torch_fn, cpp_backward, inputs, wrt, seed=0, rtol=1e-4, atol=1e-5,
              hints=None, fd_samples=48, fd_eps=1e-6, quiet=False):
    """Check a C++ backward against PyTorch autograd (float64) and central finite differences.

    torch_fn(**tensors) -> output: the forward in torch (float inputs arrive as float64 tensors,
        integer inputs as int64).
    cpp_backward(grads, dout, out, inputs): runs the C++ backward; `grads[key]` (float32, one
        per key in `wrt`) are PRE-FILLED with noise and must be added to (+=); `dout` is the
        upstream gradient, `out` the forward output (float32), `inputs` float32/int32 arrays.
    The loss whose gradient is checked is L = sum(dout * torch_fn(inputs)), dout seeded random.
    atol is scaled by the root-mean-square size of each gradient. `hints` maps gradient names
    ('dweight') to a hint. Returns a `GradcheckReport`; raises ExerciseFailure on a mismatch.
    """
    import torch

    rng = np.random.default_rng(seed)
    c_inputs = _c_inputs(inputs)
    inputs64 = _torch_inputs(c_inputs, wrt)  # the float32 values, exactly, in float64
    out64 = torch_fn(**inputs64)
    dout = rng.standard_normal(tuple(out64.shape)).astype(np.float32)
    out64.backward(torch.tensor(dout, dtype=torch.float64))
    prefill = {k: rng.standard_normal(c_inputs[k].shape).astype(np.float32) for k in wrt}
    grads = {k: v.copy() for k, v in prefill.items()}
    out32 = np.ascontiguousarray(out64.detach().numpy(), dtype=np.float32)
    _call(name, cpp_backward, grads, dout, out32, c_inputs)

    hints = hints or {}
    report = GradcheckReport(name, True, None)
    failures = []  # (how far beyond tolerance, gradient name, reference, Mismatch, key)
    for key in wrt:
        dname = f"d{key}"
        delta = grads[key].astype(np.float64) - prefill[key]
        expected = inputs64[key].grad.numpy()
        tol = atol * max(1.0, float(np.sqrt(np.mean(expected ** 2))))
        record(f"{name}/{dname}", delta, kind="close", rtol=rtol, atol=tol)
        idx = np.arange(expected.size) if expected.size <= fd_samples else np.sort(
            rng.choice(expected.size, fd_samples, replace=False))
        fd = _finite_differences(torch_fn, inputs64, torch.tensor(dout, dtype=torch.float64),
                                 key, idx, fd_eps)
        report.errors[dname] = {}
        for ref, got, exp in (("autograd", delta.ravel(), expected.ravel()),
                              ("finite diff", delta.ravel()[idx], fd)):
            flat_index = np.arange(expected.size) if ref == "autograd" else idx
            rel = np.abs(got - exp) / np.maximum(np.abs(exp), tol)
            rel = np.nan_to_num(rel, nan=np.inf)
            report.errors[dname][ref] = float(rel.max())
            excess = _excess(got, exp, rtol, tol)
            i = int(np.argmax(excess))
            index = tuple(int(j) for j in np.unravel_index(int(flat_index[i]), expected.shape))
            if report.worst is None or excess[i] > report.worst_excess:
                report.worst = Worst(dname, index, float(exp[i]), float(got[i]), float(rel[i]),
                                     ref)
                report.worst_excess = float(excess[i])
            bad = compare(got, exp, rtol, tol)
            if bad is not None:
                bad.index, bad.size = index, expected.size
                failures.append((float(excess[i]), dname, ref, bad, key))
    if failures:
        report.passed = False
        # against autograd first: finite differences only speak when autograd had no complaint
        failures.sort(key=lambda f: (f[2] == "autograd", f[0]), reverse=True)
        _, dname, ref, bad, key = failures[0]
        raw = grads[key].astype(np.float64)
        expected = inputs64[key].grad.numpy()
        again = {k: v.copy() for k, v in grads.items()}
        _call(name, cpp_backward, again, dout, out32, c_inputs)  # a second call must add again
        tol = atol * max(1.0, float(np.sqrt(np.mean(expected ** 2))))
        diagnosis = _diagnose(dname, raw - prefill[key], raw, again[key].astype(np.float64),
                              expected, rtol, tol)
        hint = "; ".join(h for h in (diagnosis, hints.get(dname, "")) if h)
        vs = "PyTorch autograd" if ref == "autograd" else "central finite differences"
        _fail(bad.describe(f"{name}: {dname}") + f" [reference: {vs}]", hint)
    if not quiet:
        grads_text = ", ".join(f"d{k}" for k in wrt)
        verb = "match" if len(wrt) > 1 else "matches"
        print(f"{name}: ok ({grads_text} {verb} autograd and finite differences; += kept)")
    return report


# ---------------------------------------------------------------------------------------------
# Forward checks


def _nullptr():
    import cppyy

    return cppyy.nullptr


def forward_check(name, fn_call, outputs, expected, rtol=1e-4, atol=1e-5, hint="", seed=0,
                  quiet=False):
    """Run `fn_call(*buffers)` on output buffers pre-filled with noise; compare to `expected`.

    outputs: list of output shapes; expected: list of float64 arrays, one per output.
    Forward kernels must overwrite (=) their outputs, so the noise must be gone afterwards.
    """
    rng = np.random.default_rng(seed + 1)
    buffers = [rng.standard_normal(shape).astype(np.float32) for shape in outputs]
    prefill = [b.astype(np.float64) for b in buffers]
    _call(name, fn_call, *buffers)
    labels = [f"{name}/out{i}" if len(buffers) > 1 else name for i in range(len(buffers))]
    for label, got in zip(labels, buffers):
        record(label, got, kind="close", rtol=rtol, atol=atol)
    for label, got, pre, exp in zip(labels, buffers, prefill, expected):
        bad = compare(got, exp, rtol, atol)
        if bad is None:
            continue
        extra = ""
        if compare(got - pre, exp, rtol * 10, atol * 10) is None:
            extra = "the output was added to (+=) instead of written (=); "
        _fail(bad.describe(label), extra + hint)
    _ok(name, quiet)


def _seeded(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _away_from_zero(x, margin=0.05):
    """Keep |x| >= margin so finite differences never straddle ReLU's kink."""
    return (np.sign(x) + (x == 0)) * (margin + np.abs(x))


def check_dense_forward(fn, seed=0, B=4, C=5, OC=3, bias=True):
    """fn(out, inp, weight, bias, B, C, OC): out = inp · weight^T + bias; bias=False: nullptr."""
    import torch

    rng = np.random.default_rng(seed)
    inp, weight, b = (rng.standard_normal(s).astype(np.float32) for s in ((B, C), (OC, C), (OC,)))
    expected = torch.nn.functional.linear(torch.tensor(inp, dtype=torch.float64),
                                          torch.tensor(weight, dtype=torch.float64),
                                          torch.tensor(b, dtype=torch.float64) if bias else None)
    forward_check("dense_forward", lambda out: fn(out, inp, weight, b if bias else _nullptr(),
                                                  B, C, OC),
                  [(B, OC)], [expected.numpy()], seed=seed,
                  hint="out[b,o] = sum_c inp[b,c] * weight[o,c] + bias[o]; weight is [OC, C]"
                  + ("" if bias else "; bias may be nullptr: skip it then"))


def check_dense_backward(fn, seed=0, B=4, C=5, OC=3, wrt=("inp", "weight", "bias")):
    """fn(dinp, dweight, dbias, dout, inp, weight, B, C, OC); leave 'inp'/'bias' out of wrt
    to pass nullptr for dinp/dbias."""
    import torch

    rng = np.random.default_rng(seed)
    inputs = {"inp": rng.standard_normal((B, C)), "weight": rng.standard_normal((OC, C)),
              "bias": rng.standard_normal(OC)}

    def backward(grads, dout, out, x):
        null = _nullptr()
        fn(grads.get("inp", null), grads["weight"], grads.get("bias", null), dout, x["inp"],
           x["weight"], B, C, OC)

    hints = {"dinp": "dinp[b,c] += sum_o dout[b,o] * weight[o,c] (dout · weight, no transpose)",
             "dweight": "dweight[o,c] += sum_b dout[b,o] * inp[b,c] (dout^T · inp, shape [OC, C])",
             "dbias": "dbias[o] += sum_b dout[b,o]: the bias gradient sums dout over the batch"}
    def torch_fn(inp, weight, bias):
        return torch.nn.functional.linear(inp, weight, bias)

    return gradcheck("dense_backward", torch_fn, backward, inputs, list(wrt), seed=seed,
                     hints=hints)


def _elementwise_backward(name, fn, torch_op, seed, N, uses, hint):
    # Inputs from another stream than gradcheck's dout: equal streams would give dout and inp the
    # same signs, and a relu_backward gated on dout > 0 would pass.
    rng = np.random.default_rng([seed, 1])
    x = rng.standard_normal(N) * 2
    inputs = {"inp": _away_from_zero(x) if uses == "inp" else x}

    def backward(grads, dout, out, x):
        fn(grads["inp"], dout, x["inp"] if uses == "inp" else out, N)

    return gradcheck(name, lambda inp: torch_op(inp), backward, inputs, ["inp"], seed=seed,
                     hints={"dinp": hint})


def check_relu_backward(fn, seed=0, N=37):
    """fn(dinp, dout, inp, N)."""
    import torch

    return _elementwise_backward("relu_backward", fn, torch.relu, seed, N, "inp",
                                 "dinp[i] += dout[i] where inp[i] > 0, nothing elsewhere")


def check_tanh_backward(fn, seed=0, N=37):
    """fn(dinp, dout, out, N) with out = tanh(inp)."""
    import torch

    return _elementwise_backward("tanh_backward", fn, torch.tanh, seed, N, "out",
                                 "tanh'(x) = 1 - tanh(x)^2 = 1 - out^2; dinp += dout * (1 - out^2)")


def check_sigmoid_backward(fn, seed=0, N=37):
    """fn(dinp, dout, out, N) with out = sigmoid(inp)."""
    import torch

    return _elementwise_backward("sigmoid_backward", fn, torch.sigmoid, seed, N, "out",
                                 "sigmoid'(x) = out * (1 - out); dinp += dout * out * (1 - out)")


def _elementwise_forward(name, fn, torch_op, seed, N, hint):
    x = np.random.default_rng(seed).standard_normal(N).astype(np.float32) * 3
    x[0] = 0.0
    expected = torch_op(_t64(x)).numpy()
    forward_check(name, lambda out: fn(out, x, N), [(N,)], [expected], seed=seed, hint=hint)


def _t64(a):
    import torch

    return torch.tensor(a, dtype=torch.float64)


def check_relu_forward(fn, seed=0, N=37):
    """fn(out, inp, N)."""
    import torch

    _elementwise_forward("relu_forward", fn, torch.relu, seed, N, "out[i] = max(inp[i], 0)")


def check_tanh_forward(fn, seed=0, N=37):
    """fn(out, inp, N)."""
    import torch

    _elementwise_forward("tanh_forward", fn, torch.tanh, seed, N, "out[i] = tanh(inp[i])")


def check_sigmoid_forward(fn, seed=0, N=37):
    """fn(out, inp, N)."""
    import torch

    _elementwise_forward("sigmoid_forward", fn, torch.sigmoid, seed, N,
                         "out[i] = 1 / (1 + exp(-inp[i]))")


def _ce_inputs(seed, B, V):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((B, V)).astype(np.float32) * 3
    logits[0] *= 400  # one row of huge logits: a naive exp() overflows here
    targets = rng.integers(0, V, B).astype(np.int32)
    return logits, targets


def check_softmax_cross_entropy_forward(fn, seed=0, B=5, V=7):
    """fn(losses, probs, logits, targets, B, V); one row has logits in the hundreds."""
    import torch

    logits, targets = _ce_inputs(seed, B, V)
    lt = _t64(logits)
    losses = torch.nn.functional.cross_entropy(lt, torch.tensor(targets, dtype=torch.int64),
                                               reduction="none")
    probs = torch.softmax(lt, dim=1)
    forward_check("softmax_cross_entropy_forward",
                  lambda l_, p_: fn(l_, p_, logits, targets, B, V), [(B,), (B, V)],
                  [losses.numpy(), probs.numpy()], seed=seed,
                  hint="subtract each row's max before exp (huge logits overflow otherwise); "
                  "losses[b] = log(sum_v exp(logits[b,v] - max)) - (logits[b,target] - max)")


def check_softmax_cross_entropy_backward(fn, seed=0, B=5, V=7):
    """fn(dlogits, dlosses, probs, targets, B, V) with probs = softmax(logits)."""
    import torch

    rng = np.random.default_rng(seed)
    inputs = {"logits": rng.standard_normal((B, V)) * 2,
              "targets": rng.integers(0, V, B).astype(np.int32)}

    def torch_fn(logits, targets):
        return torch.nn.functional.cross_entropy(logits, targets, reduction="none")

    def backward(grads, dout, out, x):
        probs = torch.softmax(_t64(x["logits"]), dim=1).numpy().astype(np.float32)
        fn(grads["logits"], dout, probs, x["targets"], B, V)

    hint = ("dlogits[b,v] += dlosses[b] * (probs[b,v] - (v == targets[b] ? 1 : 0)); "
            "multiply by dlosses[b], which already holds any 1/B of a mean")
    return gradcheck("softmax_cross_entropy_backward", torch_fn, backward, inputs, ["logits"],
                     seed=seed, hints={"dlogits": hint})


def _conv_out(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def check_conv2d_forward(fn, seed=0, B=2, C=3, H=7, W=6, OC=4, KH=3, KW=2, stride=1, pad=1,
                         bias=True):
    """fn(out, inp, weight, bias, B, C, H, W, OC, KH, KW, stride, pad); NCHW."""
    import torch

    rng = np.random.default_rng(seed)
    inp = rng.standard_normal((B, C, H, W)).astype(np.float32)
    weight = rng.standard_normal((OC, C, KH, KW)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    expected = torch.nn.functional.conv2d(_t64(inp), _t64(weight), _t64(b) if bias else None,
                                          stride=stride, padding=pad).numpy()
    shape = (B, OC, _conv_out(H, KH, stride, pad), _conv_out(W, KW, stride, pad))
    forward_check("conv2d_forward",
                  lambda out: fn(out, inp, weight, b if bias else _nullptr(), B, C, H, W, OC, KH,
                                 KW, stride, pad), [shape], [expected], seed=seed,
                  hint="out[b,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} weight[oc,c,kh,kw] * "
                  "inp[b,c,oh*stride-pad+kh, ow*stride-pad+kw], skipping padded positions; "
                  "OH = (H + 2*pad - KH)/stride + 1")


def check_conv2d_backward(fn, seed=0, B=2, C=3, H=7, W=6, OC=4, KH=3, KW=2, stride=1, pad=1,
                          wrt=("inp", "weight", "bias")):
    """fn(dinp, dweight, dbias, dout, inp, weight, B, C, H, W, OC, KH, KW, stride, pad)."""
    import torch

    rng = np.random.default_rng(seed)
    inputs = {"inp": rng.standard_normal((B, C, H, W)),
              "weight": rng.standard_normal((OC, C, KH, KW)), "bias": rng.standard_normal(OC)}

    def torch_fn(inp, weight, bias):
        return torch.nn.functional.conv2d(inp, weight, bias, stride=stride, padding=pad)

    def backward(grads, dout, out, x):
        null = _nullptr()
        fn(grads.get("inp", null), grads["weight"], grads.get("bias", null), dout, x["inp"],
           x["weight"], B, C, H, W, OC, KH, KW, stride, pad)

    hints = {"dinp": "dinp[b,c,oh*stride-pad+kh, ow*stride-pad+kw] += weight[oc,c,kh,kw] * "
                     "dout[b,oc,oh,ow], skipping positions in the padding",
             "dweight": "dweight[oc,c,kh,kw] += sum over b, oh, ow of dout[b,oc,oh,ow] * "
                        "inp[b,c,oh*stride-pad+kh, ow*stride-pad+kw]",
             "dbias": "dbias[oc] += dout summed over the batch and every output position"}
    return gradcheck("conv2d_backward", torch_fn, backward, inputs, list(wrt), seed=seed,
                     hints=hints)


def _distinct(seed, shape):
    """Values with gaps far wider than the finite-difference step: no ties inside a window."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) / n * 4 - 2).reshape(shape)


def check_maxpool2d_forward(fn, seed=0, B=2, C=3, H=6, W=7, K=2, stride=2):
    """fn(out, inp, B, C, H, W, K, stride)."""
    import torch

    inp = _distinct(seed, (B, C, H, W)).astype(np.float32)
    expected = torch.nn.functional.max_pool2d(_t64(inp), K, stride).numpy()
    shape = (B, C, (H - K) // stride + 1, (W - K) // stride + 1)
    forward_check("maxpool2d_forward", lambda out: fn(out, inp, B, C, H, W, K, stride), [shape],
                  [expected], seed=seed,
                  hint="out[b,c,oh,ow] = max over inp[b,c,oh*stride+i, ow*stride+j], i,j < K")


def check_maxpool2d_backward(fn, seed=0, B=2, C=3, H=6, W=7, K=2, stride=2):
    """fn(dinp, dout, inp, B, C, H, W, K, stride)."""
    import torch

    inputs = {"inp": _distinct(seed, (B, C, H, W))}

    def backward(grads, dout, out, x):
        fn(grads["inp"], dout, x["inp"], B, C, H, W, K, stride)

    hint = ("only the maximum of each window gets dout (dinp[argmax] += dout[b,c,oh,ow]); "
            "every other input of the window gets nothing")
    return gradcheck("maxpool2d_backward",
                     lambda inp: torch.nn.functional.max_pool2d(inp, K, stride), backward, inputs,
                     ["inp"], seed=seed, hints={"dinp": hint})


# ---------------------------------------------------------------------------------------------
# Optimizer checks


def _optimizer_check(name, make_torch_opt, cpp_step, state_names, torch_state, seed, N, steps,
                     hint):
    """Run `steps` updates in C++ and in torch.optim (float64) from the same start and grads."""
    import torch

    rng = np.random.default_rng(seed)
    param0 = rng.standard_normal(N).astype(np.float32)
    grads = [rng.standard_normal(N).astype(np.float32) for _ in range(steps)]
    p = torch.tensor(param0, dtype=torch.float64, requires_grad=True)
    opt = make_torch_opt([p])
    param = param0.copy()
    state = {k: np.zeros(N, np.float32) for k in state_names}
    got_traj, exp_traj = [], []
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        _call(name, cpp_step, param, state, g, t)
        got_traj.append(np.concatenate([param] + [state[k] for k in state_names]))
        exp_traj.append(np.concatenate(
            [p.detach().numpy()] + [torch_state(opt.state[p], k) for k in state_names]))
    record(name, np.array(got_traj), kind="close", rtol=1e-4, atol=1e-6)
    labels = ["param"] + state_names
    for t, (got, exp) in enumerate(zip(got_traj, exp_traj), start=1):
        for j, label in enumerate(labels):
            bad = compare(got[j * N:(j + 1) * N], exp[j * N:(j + 1) * N], 1e-4, 1e-6)
            if bad is not None:
                _fail(bad.describe(f"{name}: {label} after step t={t}"), hint)
    _ok(name)


def check_sgd_update(fn, seed=0, N=11, steps=3, lr=0.1, momentum=0.9, weight_decay=0.01):
    """fn(param, velocity, grad, N, lr, momentum, weight_decay) vs torch.optim.SGD."""
    import torch

    def make(params):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def step(param, state, grad, t):
        velocity = state["velocity"] if momentum != 0 else _nullptr()
        fn(param, velocity, grad, N, lr, momentum, weight_decay)

    def torch_state(st, key):
        buf = st.get("momentum_buffer")
        return np.zeros(N) if buf is None else buf.numpy()

    hint = ("torch.optim.SGD: g = grad + weight_decay * param; velocity = momentum * velocity "
            "+ g; param -= lr * velocity")
    _optimizer_check("sgd_update", make, step, ["velocity"] if momentum != 0 else [],
                     torch_state, seed, N, steps, hint)


def check_adamw_update(fn, seed=0, N=11, steps=3, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                       weight_decay=0.01):
    """fn(param, m, v, grad, N, lr, beta1, beta2, eps, weight_decay, t) vs torch.optim.AdamW."""
    import torch

    def make(params):
        return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps,
                                 weight_decay=weight_decay)

    def step(param, state, grad, t):
        fn(param, state["m"], state["v"], grad, N, lr, beta1, beta2, eps, weight_decay, t)

    def torch_state(st, key):
        return st["exp_avg" if key == "m" else "exp_avg_sq"].numpy()

    hint = ("torch.optim.AdamW: param *= 1 - lr*weight_decay; m = beta1*m + (1-beta1)*grad; "
            "v = beta2*v + (1-beta2)*grad^2; param -= lr/(1-beta1^t) * m / "
            "(sqrt(v)/sqrt(1-beta2^t) + eps), with t counting from 1")
    _optimizer_check("adamw_update", make, step, ["m", "v"], torch_state, seed, N, steps, hint)
