"""The C++ training engine (course/engine.py + cpp_snippets/engine.h) on real exports.

Models here are NOT the notebooks' ones: other widths, tanh and sigmoid, a strided conv.
Trajectory parity: identical weights, the same in-order batches (the last one partial), 20 SGD
with momentum steps and 20 AdamW steps; C++ losses track PyTorch (torch exports) and Keras (Keras
exports) within 5e-4 relative. Round trip: save_onnx -> ONNX Runtime equals forward (1e-5 rel).
"""
from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from course import data, engine, export, models, runtime
from course.engine import CppModel, GraphError

STEPS, BATCH = 20, 32
N_PARITY = STEPS * BATCH - 10          # 630 samples: the 20th batch is a partial one (22 rows)
SGD = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3)
ADAMW = dict(optimizer="adamw", lr=1e-2, weight_decay=0.01)


def rel(a, b) -> float:
    """Largest |a - b| over the scale of the reference b."""
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------- models and exports

def torch_cnn_other():
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 2 * 2, 10))


def keras_cnn_other():
    _, keras = models._tf()
    keras.utils.set_random_seed(5)
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              L.Conv2D(6, 3, padding="same", activation="tanh"),
                              L.MaxPooling2D(2), L.Conv2D(8, 3, activation="relu"),
                              L.Flatten(), L.Dense(10)])
    return models.nonzero_keras_biases(model)


# name -> (framework, builder, exporter options, input layout)
CASES = {
    "torch_mlp": ("torch", lambda: models.torch_mlp((32, 16), "tanh", seed=3), False, "flat"),
    "torch_mlp_dynamo": ("torch", lambda: models.torch_mlp((32, 16), "tanh", seed=3), True,
                         "flat"),
    "keras_mlp": ("keras", lambda: models.nonzero_keras_biases(models.keras_mlp((24,), "sigmoid", seed=3)),
                  None, "flat"),
    "torch_cnn": ("torch", torch_cnn_other, False, "nchw"),
    "torch_cnn_dynamo": ("torch", torch_cnn_other, True, "nchw"),
    "keras_cnn": ("keras", keras_cnn_other, None, "nhwc"),
}
LAYOUT = {"flat": lambda x: x, "nchw": data.images, "nhwc": data.images_nhwc}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, digits):
    """Lazily export each case once: name -> (framework model, onnx path, layout function)."""
    folder, cache = tmp_path_factory.mktemp("engine"), {}

    def get(name):
        if name not in cache:
            framework, build, dynamo, layout = CASES[name]
            model, to_input = build(), LAYOUT[layout]
            path = folder / f"{name}.onnx"
            if framework == "torch":
                export.torch_to_onnx(model, path, to_input(digits.x_train[:2]), dynamo=dynamo)
            else:
                export.keras_to_onnx(model, path)
            cache[name] = (model, path, to_input)
        return cache[name]

    return get


# ---------------------------------------------------------------- loading and forward

@pytest.mark.parametrize("name", list(CASES))
def test_forward_matches_onnxruntime(exported, digits, name):
    _, path, to_input = exported(name)
    model = CppModel.from_onnx(path)
    x = to_input(digits.x_test)
    assert rel(model.forward(x), runtime.ort_run(path, x)) <= 1e-5


def test_loader_reads_what_each_exporter_emits(exported):
    ops = {name: [op["op_type"] for op in CppModel.from_onnx(exported(name)[1])._layers]
           for name in ("torch_mlp", "keras_mlp", "torch_cnn_dynamo", "keras_cnn")}
    assert ops["torch_mlp"] == ["Gemm", "Tanh", "Gemm", "Tanh", "Gemm"]
    assert ops["keras_mlp"] == ["MatMul+Add", "Sigmoid", "MatMul+Add"]
    assert ops["torch_cnn_dynamo"] == ["Conv", "Tanh", "MaxPool", "Conv", "Relu", "Gemm"]
    # Keras: NHWC input reshaped (C=1) into NCHW, a real Transpose back to NHWC before Flatten
    assert ops["keras_cnn"] == ["Conv", "Tanh", "MaxPool", "Conv", "Relu", "Transpose",
                                "MatMul+Add"]


# ---------------------------------------------------------------- trajectory parity

@pytest.mark.parametrize("opt", [SGD, ADAMW], ids=["sgd_momentum", "adamw"])
@pytest.mark.parametrize("name", list(CASES))
def test_trajectory_parity(exported, digits, name, opt):
    framework_model, path, to_input = exported(name)
    x, y = to_input(digits.x_train[:N_PARITY]), digits.y_train[:N_PARITY]
    cpp = CppModel.from_onnx(path).fit(x, y, batch_size=BATCH, shuffle=False, progress=False,
                                       **opt)
    reference = engine.torch_trajectory if CASES[name][0] == "torch" else engine.keras_trajectory
    ref = reference(framework_model, x, y, STEPS, BATCH, **opt)
    assert cpp.shape == (STEPS,)
    worst = np.abs(cpp - ref) / np.abs(ref)
    assert worst.max() <= 5e-4, f"step {worst.argmax()}: C++ {cpp[worst.argmax()]}, " \
                                f"{CASES[name][0]} {ref[worst.argmax()]}"
    assert ref[-1] < ref[0] - 0.05, "the trajectory should show learning, not a flat line"


def test_torch_and_keras_trajectories_agree_from_the_same_start(digits):
    """The two reference implementations agree with each other on copied weights."""
    t_model = models.torch_mlp((20,), "tanh", seed=7)
    k_model = models.copy_torch_to_keras(t_model, models.keras_mlp((20,), "tanh", seed=1))
    x, y = digits.x_train[:N_PARITY], digits.y_train[:N_PARITY]
    for opt in (SGD, ADAMW):
        t = engine.torch_trajectory(t_model, x, y, STEPS, BATCH, **opt)
        k = engine.keras_trajectory(k_model, x, y, STEPS, BATCH, **opt)
        assert np.max(np.abs(t - k) / t) <= 5e-4


# ---------------------------------------------------------------- round trip

@pytest.mark.parametrize("name", ["torch_mlp_dynamo", "keras_mlp", "torch_cnn", "keras_cnn"])
def test_round_trip_through_onnxruntime(exported, digits, tmp_path, name):
    _, path, to_input = exported(name)
    model = CppModel.from_onnx(path)
    x_train, x_test = to_input(digits.x_train), to_input(digits.x_test)
    before = model.accuracy(x_test, digits.y_test)
    model.fit(x_train, digits.y_train, epochs=3, optimizer="adamw", lr=5e-3, progress=False)
    saved = model.save_onnx(tmp_path / "trained.onnx")
    ort_logits, cpp_logits = runtime.ort_run(saved, x_test), model.forward(x_test)
    assert rel(cpp_logits, ort_logits) <= 1e-5
    assert np.array_equal(ort_logits.argmax(1), cpp_logits.argmax(1))
    assert model.accuracy(x_test, digits.y_test) > max(before, 0.8)
    original, written = onnx.load(str(path)), onnx.load(str(saved))
    assert [(n.op_type, list(n.input), list(n.output)) for n in original.graph.node] == \
           [(n.op_type, list(n.input), list(n.output)) for n in written.graph.node]
    changed = {t.name for t, u in zip(original.graph.initializer, written.graph.initializer)
               if not np.array_equal(numpy_helper.to_array(t), numpy_helper.to_array(u))}
    assert changed == set(model.parameters())


def test_keras_zero_bias_layers_train_without_bias(tmp_path, digits):
    """Keras drops all-zero biases from the export; the engine keeps that graph as it is."""
    path = export.keras_to_onnx(models.keras_mlp((16,), "relu", seed=2), tmp_path / "k.onnx")
    model = CppModel.from_onnx(path)
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["MatMul", "Relu", "MatMul"]
    assert sorted(a.shape for a in model.parameters().values()) == [(16, 10), (64, 16)]
    losses = model.fit(digits.x_train, digits.y_train, epochs=2, lr=0.1, momentum=0.9,
                       progress=False)
    assert losses[-10:].mean() < losses[:10].mean()
    saved = model.save_onnx(tmp_path / "trained.onnx")
    assert [n.op_type for n in onnx.load(str(saved)).graph.node] == ["MatMul", "Relu", "MatMul"]


# ---------------------------------------------------------------- fit behaviour

def test_shuffle_draws_a_permutation_from_the_seed(exported, digits):
    _, path, _ = exported("torch_mlp")
    x, y = digits.x_train[:200], digits.y_train[:200]

    def first_losses(**kw):
        return CppModel.from_onnx(path).fit(x, y, progress=False, **kw)

    # one full batch: the mean loss does not depend on the order, so every row was used once
    full = [first_losses(batch_size=200, shuffle=s, seed=3)[0] for s in (False, True)]
    assert math.isclose(full[0], full[1], rel_tol=1e-6)
    a, b = first_losses(seed=1, epochs=2), first_losses(seed=1, epochs=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, first_losses(seed=2, epochs=2))
    assert not np.array_equal(a, first_losses(shuffle=False, epochs=2))
    assert len(a) == 2 * math.ceil(200 / 32)


def test_parameters_are_the_live_zero_copy_weights(exported, digits):
    _, path, _ = exported("torch_mlp")
    model = CppModel.from_onnx(path)
    params = model.parameters()
    before = {k: v.copy() for k, v in params.items()}
    model.fit(digits.x_train[:64], digits.y_train[:64], lr=0.1, progress=False)
    assert all(model.parameters()[k] is params[k] for k in params)
    assert all(not np.array_equal(before[k], params[k]) for k in params)
    x = digits.x_test[:5]
    logits = model.forward(x)
    for array in params.values():
        array[...] = 0.0          # the engine reads these very arrays
    assert not np.allclose(model.forward(x), logits)
    assert np.allclose(model.forward(x), 0.0)


def test_summary_lists_every_layer(exported, capsys):
    model = CppModel.from_onnx(exported("keras_cnn")[1])
    model.summary()
    out = capsys.readouterr().out
    assert "Transpose" in out and "(8, 2, 2)" in out and "7 layers" in out


def test_nan_stops_training_with_step_and_layer(tmp_path, digits):
    # ReLU, not tanh: a saturated tanh keeps every value finite however large lr is
    path = export.torch_to_onnx(models.torch_mlp((32, 16), "relu", seed=3), tmp_path / "r.onnx",
                                digits.x_train[:2])
    model = CppModel.from_onnx(path)
    with pytest.raises(FloatingPointError, match=r"step \d+: layer '/\d/Gemm' produced nan or "
                                                 r"inf") as err:
        model.fit(digits.x_train, digits.y_train, lr=1e6, progress=False)
    assert "lower lr (now 1000000.0)" in str(err.value)


def test_overflowing_update_names_the_weight_and_layer(exported, digits):
    _, path, _ = exported("torch_mlp")
    model = CppModel.from_onnx(path)
    with pytest.raises(FloatingPointError, match=r"step 1: the update turned weight "
                                                 r"'\S+' of layer '/\d/Gemm' into nan or inf"):
        # AdamW's decoupled decay multiplies each weight by 1 - lr * weight_decay = -inf
        model.fit(digits.x_train, digits.y_train, optimizer="adamw", lr=1e38, weight_decay=1e3,
                  progress=False)


def test_nan_in_a_hidden_layer_names_that_layer(exported, digits):
    _, path, _ = exported("torch_mlp")
    model = CppModel.from_onnx(path)
    weight = model._layers[2]["weight"]   # the second Gemm
    model.parameters()[weight][0, 0] = np.inf
    with pytest.raises(FloatingPointError, match=r"step 1: layer '/2/Gemm'"):
        model.fit(digits.x_train, digits.y_train, progress=False)


BAD_FIT = [
    (dict(y=lambda y: y.astype(np.float32)), TypeError, "integers"),
    (dict(y=lambda y: y[:-1]), ValueError, r"shape \(100,\)"),
    (dict(y=lambda y: np.where(y == 3, 10, y)), ValueError, r"\[0, 10\)"),
    (dict(y=lambda y: y - 1), ValueError, r"y\[\d+\] = -1"),
    (dict(x=lambda x: x[:, :63]), ValueError, r"\('N', 64\)"),
    (dict(x=lambda x: (x * 16).astype(np.int64)), TypeError, "float"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(epochs=1.5), ValueError, "epochs"),
    (dict(optimizer="adam"), ValueError, "'sgd' or 'adamw'"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(lr="0.1"), ValueError, "lr"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(momentum=1.5), ValueError, "momentum"),
    (dict(optimizer="adamw", momentum=0.9), ValueError, "betas"),
]


@pytest.mark.parametrize("change,error,message", BAD_FIT)
def test_fit_rejects_bad_input(exported, digits, change, error, message):
    _, path, _ = exported("torch_mlp")
    model = CppModel.from_onnx(path)
    x, y = digits.x_train[:100], digits.y_train[:100]
    kw = {k: v for k, v in change.items() if k not in ("x", "y")}
    x = change.get("x", lambda a: a)(x)
    y = change.get("y", lambda a: a)(y)
    before = {k: v.copy() for k, v in model.parameters().items()}
    with pytest.raises(error, match=message):
        model.fit(x, y, progress=False, **kw)
    assert all(np.array_equal(before[k], v) for k, v in model.parameters().items())


def test_image_layout_mistake_gets_a_hint(exported, digits):
    model = CppModel.from_onnx(exported("torch_cnn")[1])
    with pytest.raises(ValueError, match=r"\('N', 1, 8, 8\).*images_nhwc"):
        model.forward(data.images_nhwc(digits.x_test))


def test_keras_multichannel_nhwc_input_goes_through_a_transpose(tmp_path):
    """With C > 1 Keras' export transposes NHWC -> NCHW first (C = 1 gave a plain Reshape)."""
    _, keras = models._tf()
    keras.utils.set_random_seed(4)
    L = keras.layers
    net = models.nonzero_keras_biases(keras.Sequential([
        keras.Input((6, 6, 3)), L.Conv2D(4, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2), L.Flatten(), L.Dense(10)]))
    path = export.keras_to_onnx(net, tmp_path / "rgb.onnx")
    model = CppModel.from_onnx(path)
    assert [op["op_type"] for op in model._layers][0] == "Transpose"
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6, 6, 3), dtype=np.float32), rng.integers(0, 10, 40)
    assert rel(model.forward(x), runtime.ort_run(path, x)) <= 1e-5
    cpp = model.fit(x, y, batch_size=8, shuffle=False, progress=False, **SGD)
    ref = engine.keras_trajectory(net, x, y, 5, 8, **SGD)
    assert np.max(np.abs(cpp - ref) / ref) <= 5e-4


class _GemmNet(nn.Module):
    """The torch twin of the hand-built Gemm graph below (alpha, beta, both weight layouts)."""

    def __init__(self, w1, b1, w2, b2):
        super().__init__()
        self.w1, self.b1, self.w2, self.b2 = (nn.Parameter(torch.tensor(a))
                                              for a in (w1, b1, w2, b2))

    def forward(self, x):
        h = torch.relu(0.5 * x @ self.w1 + 2.0 * self.b1)       # transB=0: w1 is (C, OC)
        return 1.5 * h @ self.w2.T + 0.25 * self.b2             # transB=1: w2 is (OC, C)


def test_gemm_alpha_beta_and_both_weight_layouts(digits):
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"], alpha=1.5, beta=0.25,
                              transB=1)]
    model = _graph(nodes, {"w1": (64, 24), "b1": (24,), "w2": (10, 24), "b2": (1, 10)})
    cpp = CppModel(model)
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    net = _GemmNet(arrays[0], arrays[1], arrays[2], arrays[3])
    x, y = digits.x_train[:N_PARITY], digits.y_train[:N_PARITY]
    with torch.no_grad():
        assert rel(cpp.forward(x), net(torch.from_numpy(x)).numpy()) <= 1e-5
    losses = cpp.fit(x, y, batch_size=BATCH, shuffle=False, progress=False, **SGD)
    ref = engine.torch_trajectory(net, x, y, STEPS, BATCH, **SGD)
    assert np.max(np.abs(losses - ref) / ref) <= 5e-4


# ---------------------------------------------------------------- graphs the engine refuses

def _graph(nodes, inits, in_shape=(64,), out="logits", name="g"):
    rng = np.random.default_rng(0)
    initializers = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), k)
                    for k, s in inits.items()]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 10])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_op_names_the_op_and_the_node(tmp_path):
    model = _graph([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
                    helper.make_node("LeakyRelu", ["h"], ["a"], name="act1", alpha=0.1),
                    helper.make_node("Gemm", ["a", "w2"], ["logits"], name="fc2", transB=1)],
                   {"w1": (16, 64), "b1": (16,), "w2": (10, 16)})
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "leaky.onnx")
    with pytest.raises(GraphError, match=r"LeakyRelu node 'act1'.*supported: Gemm, MatMul"):
        CppModel.from_onnx(tmp_path / "leaky.onnx")


@pytest.mark.parametrize("nodes,inits,in_shape,message", [
    ([helper.make_node("Gemm", ["x", "w"], ["logits"], name="g", transA=1)],
     {"w": (64, 10)}, (64,), r"Gemm node 'g': transA=1"),
    ([helper.make_node("Conv", ["x", "w"], ["c"], name="grouped", group=2),
      helper.make_node("Flatten", ["c"], ["f"]),
      helper.make_node("Gemm", ["f", "w2"], ["logits"], transB=1)],
     {"w": (4, 1, 3, 3), "w2": (10, 144)}, (2, 8, 8), r"Conv node 'grouped': only group=1"),
    ([helper.make_node("Conv", ["x", "w"], ["c"], name="lopsided", pads=[0, 0, 1, 1]),
      helper.make_node("Flatten", ["c"], ["f"]),
      helper.make_node("Gemm", ["f", "w2"], ["logits"], transB=1)],
     {"w": (4, 1, 3, 3), "w2": (10, 144)}, (1, 8, 8), r"'lopsided'.*symmetric pad"),
    ([helper.make_node("Transpose", ["x"], ["t"], name="swap", perm=[1, 0]),
      helper.make_node("Gemm", ["t", "w"], ["logits"], transB=1)],
     {"w": (10, 64)}, (64,), r"Transpose node 'swap'.*batch axis"),
    ([helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
      helper.make_node("Add", ["h", "h"], ["logits"], name="residual")],
     {"w1": (10, 64)}, (64,), r"Add node 'residual'.*right after a MatMul"),
])
def test_unsupported_graph_shapes_are_refused(nodes, inits, in_shape, message):
    with pytest.raises(GraphError, match=message):
        CppModel(_graph(nodes, inits, in_shape))


def test_reshape_target_folded_from_a_shape_subgraph():
    """Shape -> Gather -> Concat computes (batch, -1): folded at load, no data moved."""
    const = lambda name, v: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=numpy_helper.from_array(np.array(v, dtype=np.int64)))
    nodes = [const("idx", [0]), const("rest", [-1]),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "idx"], ["b"], axis=0),
             helper.make_node("Concat", ["b", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1)]
    model = _graph(nodes, {"w": (10, 64)}, in_shape=(4, 4, 4))
    cpp = CppModel(model)
    x = np.random.default_rng(1).standard_normal((3, 4, 4, 4)).astype(np.float32)
    w = numpy_helper.to_array(model.graph.initializer[0])
    assert np.allclose(cpp.forward(x), x.reshape(3, -1) @ w.T, rtol=1e-5, atol=1e-5)
    bad = _graph(nodes[:-2] + [helper.make_node("Reshape", ["x", "rest"], ["flat"]),
                               nodes[-1]], {"w": (10, 64)}, in_shape=(4, 4, 4))
    with pytest.raises(GraphError, match="moves the batch axis"):
        CppModel(bad)


def test_engine_header_compiles_with_gpp_warnings_as_errors(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed; the header is still compiled by cppyy above")
    unit = tmp_path / "unit.cpp"
    unit.write_text('#include "engine.h"\nint main() { engine::Engine e; return 0; }\n')
    done = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                           f"-I{engine.CPP_DIR}", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind,target", [("mlp", 0.95), ("cnn", 0.96)])
def test_cpp_only_training_reaches_the_headline_accuracy(tmp_path, digits, kind, target):
    """Untrained torch export -> trained only by the C++ engine -> scored by ONNX Runtime."""
    to_input = data.images if kind == "cnn" else (lambda x: x)
    net = models.torch_cnn() if kind == "cnn" else models.torch_mlp()
    path = export.torch_to_onnx(net, tmp_path / "untrained.onnx", to_input(digits.x_train[:2]))
    model = CppModel.from_onnx(path)
    settings = (dict(optimizer="adamw", lr=3e-3, weight_decay=0.01) if kind == "cnn"
                else dict(optimizer="sgd", lr=0.05, momentum=0.9))
    model.fit(to_input(digits.x_train), digits.y_train, epochs=30, progress=False, **settings)
    logits = runtime.ort_run(model.save_onnx(tmp_path / "trained.onnx"), to_input(digits.x_test))
    assert np.mean(logits.argmax(1) == digits.y_test) >= target


def test_keras_adamw_with_torch_epsilon_is_torch_adamw():
    """Keras' AdamW, given engine.keras_adamw_epsilon per step, takes torch.optim.AdamW's steps;
    with a constant epsilon it does not (gradients near eps make the placement matter)."""
    from course.models import _tf

    tf, keras = _tf()
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(50).astype(np.float32)
    grads = [(rng.standard_normal(50) * 10.0 ** rng.integers(-12, 0, 50)).astype(np.float32)
             for _ in range(20)]
    eps, lr, wd = 1e-8, 1e-2, 0.01
    param = torch.tensor(w0.copy(), requires_grad=True)
    opt = torch.optim.AdamW([param], lr=lr, weight_decay=wd, eps=eps)
    for g in grads:
        param.grad = torch.tensor(g)
        opt.step()
    expected = param.detach().numpy()

    def keras_run(schedule: bool) -> np.ndarray:
        var = keras.Variable(w0.copy())
        kopt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=wd, epsilon=eps)
        for t, g in enumerate(grads, start=1):
            if schedule:
                kopt.epsilon = engine.keras_adamw_epsilon(eps, 0.999, t)
            kopt.apply_gradients([(tf.constant(g), var)])
        return np.asarray(var)

    assert np.max(np.abs(keras_run(True) - expected)) < 1e-5
    assert np.max(np.abs(keras_run(False) - expected)) > 1e-3
