"""ONNX Runtime from Python: single-threaded sessions, running a model, and parity reports.

`ort_cpp_session` runs the same file through ONNX Runtime's C++ API (see `course.cpp`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ORT_MIN_OPSET = 7  # ONNX Runtime only guarantees opsets from 7 on


def _check_onnx_file(path: Path) -> None:
    """Fail early, naming the file and the fix, for a missing, non-ONNX or wrong-opset file."""
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} not found; export one first, e.g. with "
                                "course.export.torch_to_onnx(model, path, x)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ValueError(f"{path} is not an ONNX model ({err}); export it again with "
                         "course.export") from None
    highest = onnx.defs.onnx_opset_version()
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and not ORT_MIN_OPSET <= op.version <= highest:
            raise ValueError(f"{path} uses ONNX opset {op.version}, which ONNX Runtime "
                             f"{ort.__version__} does not support; export it again with an opset "
                             f"from {ORT_MIN_OPSET} to {highest} (e.g. opset=20)")
    if not model.graph.node:
        raise ValueError(f"{path} is an ONNX file with an empty graph; export a model into it")


def ort_session(path, threads: int = 1) -> ort.InferenceSession:
    """A CPU InferenceSession with `threads` threads (1: deterministic) and quiet logging."""
    path = Path(path)
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    _check_onnx_file(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT's pybind exceptions share no useful base class
        raise ValueError(f"ONNX Runtime cannot load {path}: {err}. Check that it was written by "
                         "course.export with opset 17-23, and export it again if not") from None


def _session(path_or_session) -> ort.InferenceSession:
    if isinstance(path_or_session, ort.InferenceSession):
        return path_or_session
    if isinstance(path_or_session, (str, Path)):
        return ort_session(path_or_session)
    raise TypeError("expected a path to an .onnx file or an onnxruntime.InferenceSession, got "
                    f"{type(path_or_session).__name__}")


def _feed(session: ort.InferenceSession, x) -> dict[str, np.ndarray]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"ort_run handles models with one input; this one has "
                         f"{[i.name for i in inputs]}: call session.run yourself")
    spec = inputs[0]
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if spec.type == "tensor(float)" and x.dtype != np.float32:
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"input {spec.name!r} takes float32, got {x.dtype}; "
                             "pass x.astype(np.float32)")
        x = x.astype(np.float32)
    if x.ndim != len(spec.shape):
        raise ValueError(f"input {spec.name!r} takes shape {spec.shape}, got {x.shape}; for "
                         "images use course.data.images (NCHW, torch) or images_nhwc (Keras)")
    return {spec.name: np.ascontiguousarray(x)}


def ort_run(path_or_session, x) -> np.ndarray:
    """Run a one-input model on `x` and return its first output (the logits)."""
    session = _session(path_or_session)
    return session.run(None, _feed(session, x))[0]


def _numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def parity(a, b) -> dict[str, float]:
    """How far `a` is from the reference `b`.

    max_abs: largest |a - b|; max_rel: max_abs divided by the largest |b| (the scale of the
    reference); argmax_agree: fraction of rows whose argmax over the last axis agrees.
    """
    a, b = _numpy(a), _numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}; "
                         "run both models on the same input")
    if a.size == 0:
        raise ValueError("cannot compare empty arrays")
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    agree = float(np.mean(a.argmax(axis=-1) == b.argmax(axis=-1))) if a.ndim else 1.0
    return {"max_abs": diff, "max_rel": diff / scale if scale > 0 else diff,
            "argmax_agree": agree}


def parity_report(*args, label: str | None = None) -> str:
    """A table of parity figures: `parity_report(a, b)` or `parity_report({label: (a, b), ...})`.

    Values of the dict may also be dicts returned by `parity`.
    """
    if len(args) == 2:
        rows = {label or "a vs b": args}
    elif len(args) == 1 and isinstance(args[0], dict):
        rows = args[0]
    else:
        raise TypeError("use parity_report(a, b) or parity_report({'label': (a, b), ...})")
    figures = {k: v if isinstance(v, dict) else parity(*v) for k, v in rows.items()}
    width = max([len("comparison")] + [len(k) for k in figures])
    lines = [f"{'comparison':<{width}}  {'max_abs':>9}  {'max_rel':>9}  {'argmax_agree':>12}"]
    for name, f in figures.items():
        lines.append(f"{name:<{width}}  {f['max_abs']:9.2e}  {f['max_rel']:9.2e}  "
                     f"{f['argmax_agree']:12.2%}")
    return "\n".join(lines)


def ort_cpp_session(path, **kw):
    """The same model through ONNX Runtime's C++ API, compiled by cppyy (`course.cpp`)."""
    from course.cpp import ort_cpp_session as f

    return f(path, **kw)
