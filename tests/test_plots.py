"""course.plots: each function returns a Figure that shows what it was given."""
import matplotlib
import numpy as np
import pytest
from onnx import TensorProto, helper

from course import export, models, plots


def test_curves_draws_the_history():
    history = {"loss": [2.0, 1.0, 0.5], "train_acc": [0.5, 0.8, 0.9], "test_acc": [0.4, 0.7, 0.8]}
    fig = plots.curves(history)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 2
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), history["loss"])
    acc = {line.get_label(): list(line.get_ydata()) for line in fig.axes[1].lines}
    assert acc == {"train acc": history["train_acc"], "test acc": history["test_acc"]}


def test_curves_of_plain_losses():
    fig = plots.curves([3.0, 2.0, 1.5, 1.2])
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "step"
    with pytest.raises(ValueError, match="loss"):
        plots.curves({"train_acc": [0.1]})


def test_confusion_counts():
    y_true = np.array([0, 1, 2, 2, 1, 0])
    y_pred = np.array([0, 2, 2, 2, 1, 0])
    fig = plots.confusion(y_true, y_pred)
    counts = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(counts, [[2, 0, 0], [0, 1, 1], [0, 0, 2]])
    assert "83.3%" in fig.axes[0].get_title()
    assert plots.confusion(y_true, y_pred, num_classes=10).axes[0].images[0].get_array().shape \
        == (10, 10)


def test_confusion_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        plots.confusion([0, 1], [0])
    with pytest.raises(ValueError, match="argmax"):
        plots.confusion(np.array([0, 1]), np.array([0.2, 0.9]))


def box_texts(fig):
    return [t.get_text() for t in fig.axes[0].texts if t.get_text()]


def arrows(fig):
    return [t for t in fig.axes[0].texts
            if isinstance(t, matplotlib.text.Annotation) and not t.get_text()]


def test_onnx_graph_draws_every_node_and_edge(tmp_path):
    path = export.torch_to_onnx(models.torch_cnn(channels=(4, 6)), tmp_path / "cnn.onnx",
                                np.zeros((2, 1, 8, 8), np.float32))
    fig = plots.onnx_graph(path)
    texts = box_texts(fig)
    assert len(texts) == 8 + 2  # the nodes, plus input and output
    assert texts[2].startswith("Conv\n(4, 1, 3, 3)") and "Gemm\n(10, 24)" in texts[-1]
    assert len(arrows(fig)) == 9  # a chain: input -> 8 nodes -> output
    assert fig.axes[0].get_title() == "8 nodes, opset 20"


def test_onnx_graph_branches_get_their_own_column():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "diamond", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    fig = plots.onnx_graph(helper.make_model(graph))
    boxes = {t.get_text(): t.get_position() for t in fig.axes[0].texts if t.get_text()}
    assert boxes["Relu"][1] == boxes["Neg"][1] > boxes["Add"][1]
    assert boxes["Relu"][0] != boxes["Neg"][0]
    assert len(arrows(fig)) == 2 + 2 + 1  # x->Relu, x->Neg, Relu->Add, Neg->Add, Add->y


def test_onnx_graph_refuses_huge_graphs():
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(5)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("t5", TensorProto.FLOAT, [2])])
    with pytest.raises(ValueError, match="max_nodes"):
        plots.onnx_graph(helper.make_model(graph), max_nodes=4)
    assert len(box_texts(plots.onnx_graph(helper.make_model(graph)))) == 5 + 2
