"""course.onnx_io: summaries, initializers <-> numpy, writing new weights into a copy."""
import numpy as np
import onnx
import pytest
import torch

from course import export, models, onnx_io, runtime


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "cnn.onnx"
    model = models.torch_cnn(seed=1, channels=(4, 6))
    return export.torch_to_onnx(model, path, np.zeros((2, 1, 8, 8), np.float32))


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "mlp.onnx"
    return export.torch_to_onnx(models.torch_mlp((16,), "tanh", seed=1), path,
                                np.zeros((2, 64), np.float32))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found; export one first"):
        onnx_io.load(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot onnx at all")
    with pytest.raises(ValueError, match=f"{bad} is not an ONNX model"):
        onnx_io.load(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="holds no ONNX graph"):
        onnx_io.load(empty)
    with pytest.raises(TypeError, match="onnx.ModelProto or a path"):
        onnx_io.summary(3)


def test_summary_lists_nodes_initializers_opset_and_io(cnn_path):
    text = onnx_io.summary(cnn_path)
    assert "ai.onnx 20" in text
    assert "input: float32[batch, 1, 8, 8]" in text and "logits: float32[batch, 10]" in text
    assert "nodes (8):" in text and "initializers (6," in text
    assert "kernel_shape=[3, 3]" in text and "pads=[1, 1, 1, 1]" in text
    assert "0.weight  (4, 1, 3, 3)  float32" in text
    node_rows = [line.split()[1] for line in text.splitlines()[7:15]]
    assert node_rows == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm"]
    assert onnx_io.summary(onnx_io.load(cnn_path)) == text


def test_initializers_are_the_torch_parameters(mlp_path):
    weights = onnx_io.initializers(mlp_path)
    model = models.torch_mlp((16,), "tanh", seed=1)
    assert list(weights) == list(model.state_dict())
    for name, p in model.state_dict().items():
        np.testing.assert_array_equal(weights[name], p.numpy())
    weights["0.weight"][:] = 0  # a copy: the file's model is untouched
    assert np.abs(onnx_io.initializers(mlp_path)["0.weight"]).max() > 0


def test_op_counts(cnn_path):
    assert onnx_io.op_counts(cnn_path) == {"Conv": 2, "Relu": 2, "MaxPool": 2, "Flatten": 1,
                                           "Gemm": 1}


def test_with_initializers_copies_and_replaces(mlp_path):
    original = onnx_io.load(mlp_path)
    new_bias = np.arange(10, dtype=np.float32)
    changed = onnx_io.with_initializers(original, {"2.bias": new_bias})
    np.testing.assert_array_equal(onnx_io.initializers(changed)["2.bias"], new_bias)
    assert np.abs(onnx_io.initializers(original)["2.bias"] - new_bias).max() > 0.5
    assert [n.op_type for n in changed.graph.node] == [n.op_type for n in original.graph.node]


def test_with_initializers_errors(mlp_path):
    with pytest.raises(KeyError, match=r"no initializer named \['fc.weight'\].*0.weight"):
        onnx_io.with_initializers(mlp_path, {"fc.weight": np.zeros((16, 64), np.float32)})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(16, 64\).*\(64, 16\)"):
        onnx_io.with_initializers(mlp_path, {"0.weight": np.zeros((64, 16), np.float32)})
    with pytest.raises(ValueError, match="'0.bias' is float32.*float64.*astype"):
        onnx_io.with_initializers(mlp_path, {"0.bias": np.zeros(16)})


def test_save_with_initializers_runs_the_new_weights(mlp_path, tmp_path):
    other = models.torch_mlp((16,), "tanh", seed=9)
    dst = onnx_io.save_with_initializers(mlp_path, tmp_path / "new.onnx",
                                         dict(other.state_dict()))
    x = np.random.default_rng(0).random((20, 64), dtype=np.float32)
    with torch.no_grad():
        want = other(torch.from_numpy(x)).numpy()
    assert runtime.parity(runtime.ort_run(dst, x), want)["max_abs"] <= 1e-5
    onnx.checker.check_model(onnx.load(str(dst)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        onnx_io.save_with_initializers(mlp_path, tmp_path / "no" / "x.onnx", {})
