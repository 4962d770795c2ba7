"""Read an ONNX graph as tables, its weights (initializers) as numpy, and write new weights back.

Writing goes into a copy: the graph, names, shapes and dtypes stay; only initializer values change.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


def load(path) -> onnx.ModelProto:
    """Load an ONNX file; a missing or non-ONNX file raises an error that says so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} not found; export one first with "
                                "course.export.torch_to_onnx or keras_to_onnx")
    try:
        model = onnx.load(str(path))
    except Exception as err:
        raise ValueError(f"{path} is not an ONNX model ({type(err).__name__}: {err}); "
                         "export it again with course.export") from None
    if not model.graph.node and not model.graph.input:
        raise ValueError(f"{path} holds no ONNX graph; export a model into it")
    return model


def _model(model_or_path) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (str, Path)):
        return load(model_or_path)
    raise TypeError("expected an onnx.ModelProto or a path to an .onnx file, got "
                    f"{type(model_or_path).__name__}")


def _dims(value: onnx.ValueInfoProto) -> str:
    dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value")) else "?"
            for d in value.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    return f"{value.name}: {dtype}[{', '.join(dims)}]"


def _attr(a: onnx.AttributeProto) -> str:
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, bytes):
        value = value.decode()
    elif isinstance(value, onnx.TensorProto):
        array = numpy_helper.to_array(value)
        value = array.tolist() if array.size <= 8 else f"tensor{list(array.shape)}"
    elif isinstance(value, list):
        value = [v.decode() if isinstance(v, bytes) else v for v in value]
    return f"{a.name}={value}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def summary(model_or_path) -> str:
    """Opsets, inputs/outputs, a table of nodes and a table of initializers, as text."""
    model = _model(model_or_path)
    g = model.graph
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    lines = [f"producer: {model.producer_name} {model.producer_version}   opsets: {opsets}",
             "inputs:  " + "; ".join(_dims(v) for v in g.input),
             "outputs: " + "; ".join(_dims(v) for v in g.output), "",
             f"nodes ({len(g.node)}):"]
    rows = [[str(i), n.op_type, ", ".join(n.input), ", ".join(n.output),
             " ".join(_attr(a) for a in n.attribute)] for i, n in enumerate(g.node)]
    lines += _table(["#", "op", "inputs", "outputs", "attributes"], rows)
    lines += ["", f"initializers ({len(g.initializer)}, "
                  f"{sum(int(np.prod(t.dims)) for t in g.initializer)} values):"]
    rows = [[t.name, str(tuple(t.dims)),
             str(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))] for t in g.initializer]
    lines += _table(["name", "shape", "dtype"], rows)
    return "\n".join(lines)


def initializers(model_or_path) -> dict[str, np.ndarray]:
    """Every initializer as a numpy array (a copy), by name, in graph order."""
    model = _model(model_or_path)
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}


def with_initializers(model_or_path, new: dict) -> onnx.ModelProto:
    """A copy of the model whose initializers named in `new` hold the new values."""
    model = onnx.ModelProto()
    model.CopyFrom(_model(model_or_path))
    by_name = {t.name: t for t in model.graph.initializer}
    unknown = sorted(set(new) - set(by_name))
    if unknown:
        raise KeyError(f"no initializer named {unknown} in this model; its initializers are "
                       f"{list(by_name)} (see course.onnx_io.summary)")
    for name, value in new.items():
        old = by_name[name]
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        want = onnx.helper.tensor_dtype_to_np_dtype(old.data_type)
        if tuple(value.shape) != tuple(old.dims):
            raise ValueError(f"initializer {name!r} has shape {tuple(old.dims)}, the new value "
                             f"{tuple(value.shape)}; reshape it (for a Keras MatMul kernel "
                             "transpose a torch weight)")
        if value.dtype != want:
            raise ValueError(f"initializer {name!r} is {want}, the new value {value.dtype}; "
                             f"pass value.astype(np.{want})")
        old.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return model


def save_with_initializers(src, dst, new: dict) -> Path:
    """Write `src` with new initializer values to `dst` (checked by onnx.checker); returns dst."""
    dst = Path(dst)
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"folder {dst.parent} does not exist; create it first")
    model = with_initializers(src, new)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def op_counts(model_or_path) -> dict[str, int]:
    """How many nodes of each op type, e.g. {'Gemm': 2, 'Relu': 1}, in order of first use."""
    return dict(Counter(n.op_type for n in _model(model_or_path).graph.node))
