"""course.checks: messages name expected/got/index/hint, records go out only when grading,
and the kernel checks catch seeded wrong C++ kernels (typical learner bugs)."""
import math

import numpy as np
import pytest
import torch

from course import checks
from course.checks import ExerciseFailure


@pytest.fixture(scope="module")
def k():
    try:
        from course import cpp

        return cpp.kernels()
    except (ImportError, AttributeError):
        import cppyy
        from pathlib import Path

        cppyy.add_include_path(str(Path(__file__).resolve().parent.parent / "cpp_snippets"))
        cppyy.include("kernels.h")
        return cppyy.gbl


def compile_cpp(text):
    """A learner's %%cpp cell: each text in its own namespace (course.cpp.load)."""
    try:
        from course import cpp

        return cpp.load(text)
    except (ImportError, AttributeError):
        import cppyy

        ns = f"mutant_{abs(hash(text))}"
        cppyy.cppdef(f"namespace {ns} {{\n{text}\n}}")
        return getattr(cppyy.gbl, ns)


@pytest.fixture(autouse=True)
def not_grading(monkeypatch):
    """Tests that need COURSE_RECORD=1 set it themselves."""
    monkeypatch.delenv("COURSE_RECORD", raising=False)


@pytest.fixture
def records(monkeypatch):
    """Capture what `record` displays."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    return shown


# ---------------------------------------------------------------------------------------------
# close / equal / at_least / is_true / trajectory_parity


def test_close_message_names_expected_got_index_and_hint():
    expected = np.zeros((4, 160))
    got = expected.copy()
    got[2, 5] = 0.5678
    expected[2, 5] = 0.1234
    got[0, :30] = 1.0
    with pytest.raises(ExerciseFailure) as err:
        checks.close("logits", got, expected, hint="did you add the bias?")
    msg = str(err.value)
    assert msg.startswith("logits: expected 0 at index (0, 0), got 1 (abs err 1.0e+00")
    assert "31 of 640 elements off" in msg and msg.endswith("Hint: did you add the bias?")


def test_close_reports_the_worst_element():
    expected = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ExerciseFailure, match=r"expected 3 at index 2, got 3\.5 .*rel err 1\.7e-01"
                                              r"; 2 of 3 elements off\)$"):
        checks.close("x", [1.1, 2.0, 3.5], expected)


def test_close_passes_within_tolerance(capsys):
    assert checks.close("x", np.float32([1.0, 2.0]) + 1e-7, [1.0, 2.0]) is None
    assert capsys.readouterr().out == "x: ok\n"


def test_close_says_nan_at_index():
    with pytest.raises(ExerciseFailure, match=r"loss: got NaN at index 1 \(expected 2;"):
        checks.close("loss", [1.0, math.nan, 3.0], [1.0, 2.0, 3.0])


def test_close_shape_mismatch():
    with pytest.raises(ExerciseFailure, match=r"expected shape \(3, 4\), got shape \(4, 3\)"
                                              r"\. Hint: transpose"):
        checks.close("w", np.zeros((4, 3)), np.zeros((3, 4)), hint="transpose")


@pytest.mark.parametrize("got,fragment", [(None, "got is None"),
                                          (NotImplemented, "got is NotImplemented"),
                                          ("abc", "got is not numeric"),
                                          (object(), "got is not numeric")])
def test_close_rejects_non_numbers(got, fragment):
    with pytest.raises(ExerciseFailure, match=fragment):
        checks.close("x", got, [1.0])


def test_close_rejects_permissive_eq():
    class Liar:
        def __eq__(self, other):
            return True

    with pytest.raises(ExerciseFailure):
        checks.close("x", Liar(), [1.0])
    with pytest.raises(ExerciseFailure):
        checks.equal("y", Liar(), [1, 2])


def test_close_accepts_torch_tensors_with_grad():
    x = torch.ones(3, requires_grad=True) * 2
    checks.close("t", x, [2.0, 2.0, 2.0], quiet=True)


def test_equal_names_first_difference():
    with pytest.raises(ExerciseFailure, match=r"labels: expected 3 at index 2, got 5 \(2 of 4 "
                                              r"elements differ\)\. Hint: argmax over axis 1"):
        checks.equal("labels", [0, 1, 5, 7], [0, 1, 3, 2], hint="argmax over axis 1")
    with pytest.raises(ExerciseFailure, match=r"shape \(2,\).*shape \(3,\)"):
        checks.equal("shape", (1, 2, 3), (1, 2))
    checks.equal("shape", (64, 10), (64, 10), quiet=True)


def test_at_least():
    with pytest.raises(ExerciseFailure, match=r"accuracy: expected at least 0\.95, got 0\.91\. "
                                              r"Hint: train longer"):
        checks.at_least("accuracy", 0.91, 0.95, hint="train longer")
    with pytest.raises(ExerciseFailure, match="got NaN"):
        checks.at_least("accuracy", math.nan, 0.95)
    checks.at_least("accuracy", np.float64(0.97), 0.95, quiet=True)


def test_is_true():
    with pytest.raises(ExerciseFailure, match=r"finite: all values should be finite \(got "
                                              r"False\)\. Hint: h"):
        checks.is_true("finite", False, "all values should be finite", hint="h")
    with pytest.raises(ExerciseFailure):
        checks.is_true("truthy", "yes", "a string is not a verdict")
    checks.is_true("ok", np.bool_(True), quiet=True)


def test_trajectory_parity_names_first_diverging_step():
    ref = np.linspace(2.3, 0.5, 20)
    got = ref.copy()
    got[7:] *= 1.01
    with pytest.raises(ExerciseFailure, match=r"step 7 diverges: expected loss 1\.637, got "
                                              r"1\.653 \(rel err 1\.0e-02\); steps 0\.\.6 match"):
        checks.trajectory_parity("sgd", got, ref)
    with pytest.raises(ExerciseFailure, match="expected 20 steps, got 19"):
        checks.trajectory_parity("sgd", ref[:19], ref)
    nan = ref.copy()
    nan[0] = math.nan
    with pytest.raises(ExerciseFailure, match="step 0 diverges: expected loss 2.3, got NaN"):
        checks.trajectory_parity("sgd", nan, ref)
    checks.trajectory_parity("sgd", ref * (1 + 1e-4), ref, quiet=True)


# ---------------------------------------------------------------------------------------------
# record


def test_record_is_silent_without_course_record(monkeypatch, records):
    monkeypatch.delenv("COURSE_RECORD", raising=False)
    checks.close("x", [1.0], [1.0], quiet=True)
    checks.record("y", 3.0)
    assert records == []


def test_record_emits_mime_payload_when_grading(monkeypatch, records):
    monkeypatch.setenv("COURSE_RECORD", "1")
    with pytest.raises(ExerciseFailure):
        checks.close("x", [[1.0, math.nan], [math.inf, -math.inf]], np.zeros((2, 2)),
                     rtol=1e-3, atol=1e-4)
    checks.at_least("acc", 0.97, 0.95, quiet=True)
    assert len(records) == 2
    payload = records[0][checks.RECORD_MIME]
    assert payload == {"name": "x", "kind": "close", "value": [[1.0, "nan"], ["inf", "-inf"]],
                       "shape": [2, 2], "rtol": 1e-3, "atol": 1e-4}
    acc = records[1][checks.RECORD_MIME]
    assert acc["kind"] == "at_least" and acc["threshold"] == 0.95 and acc["value"] == 0.97


def test_record_goes_through_ipython_display_hook(monkeypatch):
    """Without monkeypatching display: IPython's display publisher receives the raw MIME bundle."""
    from IPython.core.interactiveshell import InteractiveShell

    existed = InteractiveShell.initialized()
    shell = InteractiveShell.instance()
    published = []
    monkeypatch.setattr(shell.display_pub, "publish",
                        lambda data, metadata=None, **kw: published.append(data))
    monkeypatch.setenv("COURSE_RECORD", "1")
    try:
        checks.record("z", np.arange(3), kind="equal")
    finally:
        if not existed:  # leave no shell behind for other tests (course.start() looks for one)
            InteractiveShell.clear_instance()
    assert published == [{checks.RECORD_MIME: {"name": "z", "kind": "equal",
                                               "value": [0.0, 1.0, 2.0], "shape": [3],
                                               "rtol": None, "atol": None}}]


def test_record_never_raises(monkeypatch):
    import IPython.display

    monkeypatch.setenv("COURSE_RECORD", "1")

    def broken(*args, **kwargs):
        raise RuntimeError("display is broken")

    monkeypatch.setattr(IPython.display, "display", broken)
    checks.record("x", object())
    checks.record("x", [1.0], weird=object())


def test_record_happens_before_the_verdict(monkeypatch, records):
    monkeypatch.setenv("COURSE_RECORD", "1")
    with pytest.raises(ExerciseFailure):
        checks.close("x", None, [1.0])
    assert records[0][checks.RECORD_MIME]["value"] is None


# ---------------------------------------------------------------------------------------------
# gradcheck, generic form


def cube(x):
    return x ** 3


def test_gradcheck_generic_passes_and_reports():
    def backward(grads, dout, out, inputs):
        grads["x"] += 3 * inputs["x"] ** 2 * dout

    report = checks.gradcheck("cube", cube, backward, {"x": np.linspace(-1, 1, 9)}, ["x"],
                              quiet=True)
    assert report.passed and report.worst.gradient == "dx"
    assert report.errors["dx"]["autograd"] < 1e-5 and report.errors["dx"]["finite diff"] < 1e-5
    assert "dx: worst rel err vs autograd" in str(report)
    assert repr(report) == "<GradcheckReport cube: ok>"


def test_gradcheck_generic_catches_wrong_derivative(monkeypatch, records):
    monkeypatch.setenv("COURSE_RECORD", "1")

    def backward(grads, dout, out, inputs):
        grads["x"] += 2 * inputs["x"] * dout

    with pytest.raises(ExerciseFailure) as err:
        checks.gradcheck("cube", cube, backward, {"x": np.linspace(-1, 1, 9)}, ["x"],
                         hints={"dx": "d(x^3)/dx = 3x^2"})
    msg = str(err.value)
    assert msg.startswith("cube: dx: expected ") and " at index " in msg and ", got " in msg
    assert "rel err" in msg and "[reference: PyTorch autograd]" in msg
    assert msg.endswith("Hint: d(x^3)/dx = 3x^2")
    assert [r[checks.RECORD_MIME]["name"] for r in records] == ["cube/dx"]


def test_gradcheck_turns_exceptions_into_failures():
    def backward(grads, dout, out, inputs):
        raise RuntimeError("not implemented: ex06_dense_backward")

    with pytest.raises(ExerciseFailure, match=r"raised RuntimeError: not implemented: "
                                              r"ex06_dense_backward\. Hint: replace the stub line"):
        checks.gradcheck("cube", cube, backward, {"x": np.ones(3)}, ["x"])


# ---------------------------------------------------------------------------------------------
# the kernel checks accept the reference kernels ...


def test_reference_kernels_pass_every_check(k, capsys):
    for name in ["dense_forward", "dense_backward", "relu_forward", "relu_backward",
                 "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
                 "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
                 "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
                 "sgd_update", "adamw_update"]:
        getattr(checks, f"check_{name}")(getattr(k, name))
    out = capsys.readouterr().out
    assert out.count(": ok") == 16 and "FAILED" not in out


# ... and catch typical learner bugs, each with a message naming buffer, index and hint

DENSE_BACKWARD = """
void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                    const float* inp, const float* weight, int B, int C, int OC) {
    for (int b = 0; b < B; b++) {
        for (int o = 0; o < OC; o++) {
            float d = dout[b * OC + o];
            for (int c = 0; c < C; c++) {
                if (dinp) dinp[b * C + c] += d * weight[o * C + c];
                DWEIGHT_LINE
            }
            BIAS_LINE
        }
    }
}
"""
DENSE_OK = {"DWEIGHT_LINE": "dweight[o * C + c] += d * inp[b * C + c];",
            "BIAS_LINE": "if (dbias) dbias[o] += d;"}
DENSE_MUTANTS = {
    "forgot_bias_grad": ({"BIAS_LINE": ""}, "dbias was never written"),
    "transposed_weight": ({"DWEIGHT_LINE": "dweight[c * OC + o] += d * inp[b * C + c];"},
                          "dweight comes out transposed"),
    "assign_not_accumulate": ({"DWEIGHT_LINE": "dweight[o * C + c] = d * inp[b * C + c];"},
                              "dweight was overwritten (=) instead of accumulated (+=)"),
    "bias_assign": ({"BIAS_LINE": "if (dbias) dbias[o] = d;"},
                    "dbias was overwritten (=) instead of accumulated (+=)"),
}


def dense_source(**changes):
    text = DENSE_BACKWARD
    for key, line in {**DENSE_OK, **changes}.items():
        text = text.replace(key, line)
    return text


def test_dense_backward_written_by_hand_passes():
    report = checks.check_dense_backward(compile_cpp(dense_source()).dense_backward)
    assert report.passed and set(report.errors) == {"dinp", "dweight", "dbias"}


@pytest.mark.parametrize("bug", sorted(DENSE_MUTANTS))
def test_dense_backward_mutants_fail(bug):
    changes, fragment = DENSE_MUTANTS[bug]
    fn = compile_cpp(dense_source(**changes)).dense_backward
    with pytest.raises(ExerciseFailure) as err:
        checks.check_dense_backward(fn)
    msg = str(err.value)
    assert msg.startswith("dense_backward: d") and "expected" in msg and "got" in msg
    assert " at index " in msg and "Hint: " in msg and fragment in msg


def test_overwrite_is_diagnosed_as_missing_accumulate():
    fn = compile_cpp(dense_source(BIAS_LINE="if (dbias) dbias[o] = 0; if (dbias) dbias[o] += "
                                            "d;")).dense_backward
    with pytest.raises(ExerciseFailure, match=r"dbias.*Hint: dbias was overwritten \(=\) instead "
                                              r"of accumulated \(\+=\)"):
        checks.check_dense_backward(fn, B=1)


def test_dense_forward_mutants_fail():
    no_bias = compile_cpp("""
void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int C, int OC) {
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            float s = 0;
            for (int c = 0; c < C; c++) s += inp[b * C + c] * weight[o * C + c];
            out[b * OC + o] = s;
        }
}""")
    with pytest.raises(ExerciseFailure, match=r"dense_forward: expected .* at index \(\d, \d\), "
                                              r"got .*Hint: out\[b,o\] = sum_c"):
        checks.check_dense_forward(no_bias.dense_forward)
    accumulates = compile_cpp("""
void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int C, int OC) {
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            out[b * OC + o] += bias[o];
            for (int c = 0; c < C; c++) out[b * OC + o] += inp[b * C + c] * weight[o * C + c];
        }
}""")
    with pytest.raises(ExerciseFailure, match=r"added to \(\+=\) instead of written \(=\)"):
        checks.check_dense_forward(accumulates.dense_forward)


def test_relu_backward_mutant_fails():
    wrong = compile_cpp("""
void relu_backward(float* dinp, const float* dout, const float* inp, int N) {
    for (int i = 0; i < N; i++) dinp[i] += dout[i];   // forgot the mask
}""")
    with pytest.raises(ExerciseFailure, match=r"relu_backward: dinp: expected 0 at index \d+, "
                                              r"got .*Hint: dinp\[i\] \+= dout\[i\] where"):
        checks.check_relu_backward(wrong.relu_backward)


def test_relu_backward_gated_on_dout_fails():
    # Caught only if dout and inp have independent signs: the check draws them from two streams.
    wrong = compile_cpp("""
void relu_backward(float* dinp, const float* dout, const float* inp, int N) {
    for (int i = 0; i < N; i++) if (dout[i] > 0) dinp[i] += dout[i];   // masks on the wrong one
}""")
    with pytest.raises(ExerciseFailure, match=r"relu_backward: dinp"):
        checks.check_relu_backward(wrong.relu_backward)


def test_tanh_backward_using_input_fails():
    wrong = compile_cpp("""
#include <cmath>
void tanh_backward(float* dinp, const float* dout, const float* out, int N) {
    for (int i = 0; i < N; i++) dinp[i] += dout[i] * (1.0f - std::tanh(out[i]) * std::tanh(out[i]));
}""")
    with pytest.raises(ExerciseFailure, match="1 - out\\^2"):
        checks.check_tanh_backward(wrong.tanh_backward)


def test_softmax_cross_entropy_backward_mutants_fail():
    ignores_dlosses = compile_cpp("""
void softmax_cross_entropy_backward(float* dlogits, const float* dlosses, const float* probs,
                                    const int* targets, int B, int V) {
    for (int b = 0; b < B; b++)
        for (int v = 0; v < V; v++)
            dlogits[b * V + v] += probs[b * V + v] - (v == targets[b] ? 1.0f : 0.0f);
}""")
    with pytest.raises(ExerciseFailure, match=r"dlogits: expected .*multiply by dlosses\[b\]"):
        checks.check_softmax_cross_entropy_backward(ignores_dlosses.
                                                    softmax_cross_entropy_backward)
    unstable = compile_cpp("""
#include <cmath>
void softmax_cross_entropy_forward(float* losses, float* probs, const float* logits,
                                   const int* targets, int B, int V) {
    for (int b = 0; b < B; b++) {
        float sum = 0;
        for (int v = 0; v < V; v++) sum += std::exp(logits[b * V + v]);
        for (int v = 0; v < V; v++) probs[b * V + v] = std::exp(logits[b * V + v]) / sum;
        losses[b] = -std::log(probs[b * V + targets[b]]);
    }
}""")
    with pytest.raises(ExerciseFailure, match=r"got NaN at index 0 .*subtract each row's max"):
        checks.check_softmax_cross_entropy_forward(unstable.softmax_cross_entropy_forward)


def test_conv2d_backward_forgot_padding_fails(k):
    # a learner kernel that treats pad as 0: right for pad=0, wrong with padding
    wrong = compile_cpp("""
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int B, int C, int H, int W, int OC,
                     int KH, int KW, int stride, int pad) {
    int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    for (int b = 0; b < B; b++) for (int oc = 0; oc < OC; oc++)
    for (int oh = 0; oh < OH; oh++) for (int ow = 0; ow < OW; ow++) {
        float d = dout[((b * OC + oc) * OH + oh) * OW + ow];
        if (dbias) dbias[oc] += d;
        for (int c = 0; c < C; c++) for (int kh = 0; kh < KH; kh++)
        for (int kw = 0; kw < KW; kw++) {
            int ih = oh * stride + kh, iw = ow * stride + kw;
            if (ih >= H || iw >= W) continue;
            int wi = ((oc * C + c) * KH + kh) * KW + kw, ii = ((b * C + c) * H + ih) * W + iw;
            dweight[wi] += d * inp[ii];
            if (dinp) dinp[ii] += d * weight[wi];
        }
    }
}""")
    checks.check_conv2d_backward(wrong.conv2d_backward, pad=0)
    with pytest.raises(ExerciseFailure, match=r"conv2d_backward: d(inp|weight): expected .* at "
                                              r"index \(\d, \d, \d, \d\), got"):
        checks.check_conv2d_backward(wrong.conv2d_backward, pad=1)


def test_maxpool2d_backward_spreading_gradient_fails():
    wrong = compile_cpp("""
void maxpool2d_backward(float* dinp, const float* dout, const float* inp, int B, int C, int H,
                        int W, int K, int stride) {
    int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    for (int bc = 0; bc < B * C; bc++) for (int oh = 0; oh < OH; oh++)
    for (int ow = 0; ow < OW; ow++) for (int i = 0; i < K; i++) for (int j = 0; j < K; j++)
        dinp[(bc * H + oh * stride + i) * W + ow * stride + j] +=
            dout[(bc * OH + oh) * OW + ow] / (K * K);
}""")
    with pytest.raises(ExerciseFailure, match="only the maximum of each window gets dout"):
        checks.check_maxpool2d_backward(wrong.maxpool2d_backward)


def test_optimizer_mutants_fail():
    sgd = compile_cpp("""
void sgd_update(float* param, float* velocity, const float* grad, int N, float lr,
                float momentum, float weight_decay) {
    for (int i = 0; i < N; i++) {   // forgot weight decay
        velocity[i] = momentum * velocity[i] + grad[i];
        param[i] -= lr * velocity[i];
    }
}""")
    with pytest.raises(ExerciseFailure, match=r"sgd_update: param after step t=1: expected .* "
                                              r"at index \d+, got .*weight_decay \* param"):
        checks.check_sgd_update(sgd.sgd_update)
    adamw = compile_cpp("""
#include <cmath>
void adamw_update(float* param, float* m, float* v, const float* grad, int N, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
    for (int i = 0; i < N; i++) {   // no bias correction
        param[i] *= 1 - lr * weight_decay;
        m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
        v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i];
        param[i] -= lr * m[i] / (std::sqrt(v[i]) + eps);
    }
}""")
    with pytest.raises(ExerciseFailure, match=r"adamw_update: param after step t=1.*t counting "
                                              r"from 1"):
        checks.check_adamw_update(adamw.adamw_update)


def test_not_implemented_stub_fails_with_its_message():
    stub = compile_cpp("""
#include <stdexcept>
void relu_backward(float* dinp, const float* dout, const float* inp, int N) {
    throw std::logic_error("not implemented: ex06_relu_backward");
}""")
    with pytest.raises(ExerciseFailure, match=r"not implemented: ex06_relu_backward\. Hint: "
                                              r"replace the stub line"):
        checks.check_relu_backward(stub.relu_backward)


def test_kernel_checks_record_gradients_for_the_grader(k, monkeypatch, records):
    monkeypatch.setenv("COURSE_RECORD", "1")
    checks.check_dense_backward(k.dense_backward)
    names = [r[checks.RECORD_MIME]["name"] for r in records]
    assert names == ["dense_backward/dinp", "dense_backward/dweight", "dense_backward/dbias"]
    dweight = np.array(records[1][checks.RECORD_MIME]["value"])
    assert dweight.shape == (3, 5) and np.abs(dweight).max() > 0.1
