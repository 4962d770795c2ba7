"""course.export: both torch exporters and Keras' model.export, with checks and a dynamic batch."""
import numpy as np
import onnx
import pytest
import torch

from course import data, export, models, onnx_io, runtime


def io_spec(path):
    model = onnx.load(str(path))
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa
    return ([(v.name, dims(v)) for v in model.graph.input],
            [(v.name, dims(v)) for v in model.graph.output],
            {o.domain: o.version for o in model.opset_import}[""])


@pytest.mark.parametrize("dynamo", [False, True])
def test_torch_mlp_export(tmp_path, digits, dynamo):
    model = models.torch_mlp((32,), "tanh")
    model.train()
    path = export.torch_to_onnx(model, tmp_path / "mlp.onnx", digits.x_train[:1], dynamo=dynamo)
    assert path == tmp_path / "mlp.onnx" and not model.training
    inputs, outputs, opset = io_spec(path)
    assert inputs == [("input", ["batch", 64])] and outputs == [("logits", ["batch", 10])]
    assert opset == 20
    assert onnx_io.op_counts(path) == {"Gemm": 2, "Tanh": 1}
    session = runtime.ort_session(path)
    for n in (1, 7):  # the batch axis really is dynamic
        assert runtime.ort_run(session, digits.x_test[:n]).shape == (n, 10)


@pytest.mark.parametrize("dynamo", [False, True])
def test_torch_cnn_export(tmp_path, digits, dynamo):
    model = models.torch_cnn(channels=(4, 6))
    path = export.torch_to_onnx(model, tmp_path / "cnn.onnx", data.images(digits.x_train[:3]),
                                dynamo=dynamo, opset=17)
    inputs, _, opset = io_spec(path)
    assert inputs == [("input", ["batch", 1, 8, 8])] and opset == 17
    counts = onnx_io.op_counts(path)
    assert counts["Conv"] == 2 and counts["MaxPool"] == 2 and counts["Gemm"] == 1
    # shape inference ran: the hidden tensors carry their shapes
    shapes = {v.name for v in onnx.load(str(path)).graph.value_info}
    assert len(shapes) >= 6


@pytest.mark.parametrize("opset", [5, 16, 99, "20", 20.0])
def test_torch_export_rejects_unsupported_opset(tmp_path, opset):
    with pytest.raises(ValueError, match=f"opset {opset!r} is not supported.*from 17 to"):
        export.torch_to_onnx(models.torch_mlp(), tmp_path / "m.onnx", np.zeros((2, 64)),
                             opset=opset)


def test_torch_export_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it"):
        export.torch_to_onnx(models.torch_mlp(), tmp_path / "no" / "m.onnx", np.zeros((2, 64)))
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export.torch_to_onnx(models.torch_mlp(), tmp_path, np.zeros((2, 64)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        export.torch_to_onnx(lambda x: x, tmp_path / "m.onnx", np.zeros((2, 64)))
    with pytest.raises(ValueError, match="example_input must be a batch"):
        export.torch_to_onnx(models.torch_mlp(), tmp_path / "m.onnx", np.zeros(64))


def test_torch_export_is_quiet(tmp_path, capfd):
    export.torch_to_onnx(models.torch_mlp(), tmp_path / "m.onnx", np.zeros((2, 64)), dynamo=True)
    out, err = capfd.readouterr()
    assert "[torch.onnx]" not in out + err


def test_keras_mlp_export(keras, tmp_path, digits):
    model = models.keras_mlp((32,), "sigmoid")
    path = export.keras_to_onnx(model, tmp_path / "k.onnx")
    inputs, outputs, opset = io_spec(path)
    assert inputs == [("input", ["batch", 64])] and outputs == [("logits", ["batch", 10])]
    assert opset == 18
    # fresh Keras layers have zero biases, and the export folds them away: MatMul, no Add
    assert onnx_io.op_counts(path) == {"MatMul": 2, "Sigmoid": 1}
    models.copy_torch_to_keras(models.torch_mlp((32,), "sigmoid"), model)
    path = export.keras_to_onnx(model, tmp_path / "k2.onnx", opset=17)
    assert onnx_io.op_counts(path) == {"MatMul": 2, "Add": 2, "Sigmoid": 1}
    assert io_spec(path)[2] == 17
    assert runtime.ort_run(path, digits.x_test[:5]).shape == (5, 10)


def test_keras_cnn_export(keras, tmp_path):
    path = export.keras_to_onnx(models.keras_cnn(channels=(4, 6)), tmp_path / "kc.onnx")
    inputs, _, _ = io_spec(path)
    assert inputs == [("input", ["batch", 8, 8, 1])]
    counts = onnx_io.op_counts(path)
    assert counts["Conv"] == 2 and counts["Transpose"] >= 1 and "Shape" in counts


def test_keras_export_builds_an_unbuilt_model(keras, tmp_path):
    model = keras.Sequential([keras.layers.Dense(5)])
    with pytest.raises(ValueError, match="never built.*example_input"):
        export.keras_to_onnx(model, tmp_path / "k.onnx")
    path = export.keras_to_onnx(model, tmp_path / "k.onnx", example_input=np.ones((2, 3)))
    assert io_spec(path)[0] == [("input", ["batch", 3])]


def test_keras_export_bad_arguments(keras, tmp_path):
    with pytest.raises(ValueError, match="opset 20 is not supported by the Keras"):
        export.keras_to_onnx(models.keras_mlp(), tmp_path / "k.onnx", opset=20)
    with pytest.raises(TypeError, match="Keras model"):
        export.keras_to_onnx(models.torch_mlp(), tmp_path / "k.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.keras_to_onnx(models.keras_mlp(), tmp_path / "no" / "k.onnx")


def test_exported_torch_model_has_the_trained_weights(tmp_path, digits):
    model = models.torch_mlp((16,))
    models.train_torch(model, digits, num_epochs=1, progress=False)
    path = export.torch_to_onnx(model, tmp_path / "m.onnx", digits.x_train[:2])
    weights = onnx_io.initializers(path)
    for name, p in model.state_dict().items():
        np.testing.assert_array_equal(weights[name], p.numpy())
    assert torch.is_grad_enabled()
