"""Export PyTorch and Keras models to ONNX, then check the file and infer its shapes.

Both exporters give the same interface: one input named `input` with a dynamic batch axis
`batch`, one output named `logits`. Keras' own names (`keras_tensor_3`, `Identity:0`) change with
the session, so they are renamed after export.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx

MIN_OPSET = 17
TORCH_MAX_OPSET = 23   # highest opset both torch exporters and ONNX Runtime handle here
KERAS_MAX_OPSET = 18   # tf2onnx (behind keras' model.export) stops at 18
INPUT_NAME, OUTPUT_NAME, BATCH = "input", "logits", "batch"


def _check_opset(opset, highest: int, who: str) -> int:
    if not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= highest:
        raise ValueError(f"opset {opset!r} is not supported by the {who} export; "
                         f"use an opset from {MIN_OPSET} to {highest}")
    return int(opset)


def _check_path(path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist; create it first "
                                f"(Path({str(path.parent)!r}).mkdir(parents=True))")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as {path}/model.onnx")
    return path


@contextlib.contextmanager
def _quiet():
    """Silence exporter chatter: prints, warnings and logging."""
    out = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(out):
            warnings.simplefilter("ignore")
            yield out
    finally:
        logging.disable(previous)


def _finish(path: Path) -> Path:
    """Check the saved model, infer shapes, require a dynamic batch, and save it again."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if dim.HasField("dim_value"):
            raise RuntimeError(f"export of {path} gave a fixed batch size {dim.dim_value} for "
                               f"{value.name!r}; expected a dynamic batch axis")
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------- PyTorch

def _torch_example(example_input):
    import torch

    x = torch.as_tensor(np.asarray(example_input) if not isinstance(example_input, torch.Tensor)
                        else example_input).float()
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"example_input must be a batch (N, ...), got shape {tuple(x.shape)}; "
                         "pass e.g. data.x_train[:2]")
    # A batch of one lets torch.export treat the batch size as the constant 1.
    return x.repeat(2, *([1] * (x.ndim - 1))) if x.shape[0] == 1 else x


def torch_to_onnx(model, path, example_input, dynamo: bool = False, opset: int = 20) -> Path:
    """Export a torch model (in eval mode) with a dynamic batch axis; returns the checked path."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    opset = _check_opset(opset, TORCH_MAX_OPSET, "PyTorch")
    path = _check_path(path)
    x = _torch_example(example_input)
    model.eval()
    names = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    with _quiet(), torch.no_grad():
        if dynamo:
            batch = torch.export.Dim(BATCH)
            torch.onnx.export(model, (x,), str(path), dynamic_shapes=({0: batch},),
                              dynamo=True, external_data=False, verbose=False, **names)
        else:
            axes = {INPUT_NAME: {0: BATCH}, OUTPUT_NAME: {0: BATCH}}
            torch.onnx.export(model, (x,), str(path), dynamic_axes=axes, dynamo=False, **names)
    return _finish(path)


# ---------------------------------------------------------------- Keras

def _is_keras_model(model) -> bool:
    return all(hasattr(model, a) for a in ("export", "get_weights", "layers"))


def _build_keras(model, example_input) -> None:
    """`model.export` needs a model that has been called once."""
    if example_input is None:
        try:
            inputs = model.inputs
        except AttributeError:  # a Sequential without keras.Input, never called
            inputs = None
        if not inputs:
            raise ValueError("this Keras model was never built, so its input shape is unknown; "
                             "pass example_input=x[:2] or start it with keras.Input(shape)")
        example_input = np.zeros((2, *inputs[0].shape[1:]), dtype=np.float32)
    model(np.asarray(example_input, dtype=np.float32), training=False)


def _rename_io(model: onnx.ModelProto) -> onnx.ModelProto:
    """Call the single input `input`, the single output `logits`, and the batch axis `batch`."""
    graph = model.graph
    renames = {graph.input[0].name: INPUT_NAME, graph.output[0].name: OUTPUT_NAME}
    for value in (graph.input[0], graph.output[0]):
        value.name = renames[value.name]
        value.type.tensor_type.shape.dim[0].dim_param = BATCH
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    return model


def keras_to_onnx(model, path, opset: int = 18, example_input=None) -> Path:
    """Export with `model.export(path, format="onnx")` (tf2onnx behind it); returns the path."""
    if not _is_keras_model(model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    opset = _check_opset(opset, KERAS_MAX_OPSET, "Keras")
    path = _check_path(path)
    try:
        import tf2onnx  # noqa: F401  (keras' ONNX export runs on it)
    except ImportError as err:
        raise ImportError("Keras' ONNX export needs tf2onnx: pip install 'tf2onnx>=1.17'") from err
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _build_keras(model, example_input)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("keras_to_onnx handles models with one input and one output")
    with _quiet():
        model.export(str(path), format="onnx", verbose=False, opset_version=opset)
    onnx.save(_rename_io(onnx.load(str(path))), str(path))
    return _finish(path)
