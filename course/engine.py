"""Train an exported ONNX model in C++: `CppModel.from_onnx(path)`, `.fit(x, y)`, `.save_onnx(p)`.

Python reads the graph with `onnx` and turns it into a short list of ops over numbered activation
tensors. The weights become float32 numpy arrays owned by the `CppModel`; the C++ engine
(`cpp_snippets/engine.h`) receives their pointers and updates them in place, zero-copy. `fit` runs
each whole epoch in one C++ call: batches, forward, mean softmax cross-entropy, backward, update.

What the loader understands (what torch's two exporters and Keras' `model.export` emit):
- Gemm (transB 0 or 1, alpha, beta; transA=1 is refused), MatMul, MatMul followed by Add of a
  bias: all become one dense layer that uses the weight in its stored layout.
- Relu, Tanh, Sigmoid, Conv (symmetric pads, equal strides, group=1, dilation=1), MaxPool
  (square window, no padding), Transpose that keeps the batch axis first.
- Flatten, Reshape, Identity and Dropout move no data: their output shares the input's buffer.
  Dropout is the identity here, in training as in inference (exports are made in eval mode).
- Nodes whose inputs are all constants (Keras' Shape/Gather/Cast/Slice/Concat/Unsqueeze
  subgraphs that compute a reshape target) are folded once at load with onnx's reference
  evaluator, at two batch sizes, so a target that follows the batch is recognised as such.

Bias decision: Keras' export folds a bias that is all zeros away (MatMul with no Add, Conv with
two inputs). Such a layer is trained WITHOUT a bias, so `save_onnx` writes the very same graph
with new initializer values and nothing else. Give the Keras layer a non-zero bias before
exporting (e.g. one training step) if you want it trained.

`fit` starts a fresh optimizer each call (velocity, Adam moments and the step count at zero).
"""
from __future__ import annotations

import copy
import math
import numbers
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from tqdm.auto import tqdm

from course import onnx_io

CPP_DIR = Path(__file__).resolve().parent.parent / "cpp_snippets"
SUPPORTED_OPS = ("Gemm", "MatMul", "Add (bias after MatMul)", "Relu", "Tanh", "Sigmoid", "Conv",
                 "MaxPool", "Flatten", "Reshape", "Transpose", "Identity", "Dropout")
DENSE, RELU, TANH, SIGMOID, CONV, MAXPOOL, TRANSPOSE = range(7)
_ACTIVATIONS = {"Relu": RELU, "Tanh": TANH, "Sigmoid": SIGMOID}
_ALIASES = ("Identity", "Dropout", "Flatten", "Reshape")
_BATCHES = (2, 3)  # shape subgraphs are folded at two batch sizes to see what follows the batch
_ENGINE = None


def _engine_class():
    """Compile cpp_snippets/engine.h (with the reference kernels) once per process."""
    global _ENGINE
    if _ENGINE is None:
        from course import cpp

        _ENGINE = cpp.load(CPP_DIR / "engine.h").engine.Engine
    return _ENGINE


class GraphError(ValueError):
    """The ONNX graph holds something the C++ engine cannot train."""


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return f"{node.op_type} node {node.name or '#' + str(index)!r}"


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Loader:
    """Walks the nodes once in graph order and builds the op list (used by CppModel.from_onnx)."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.consts = {name: (a, a) for name, a in self.init.items()}  # value at each batch
        self.dyn = {}        # name -> (tensor id, per-sample shape)
        self.tensors = []    # per-sample shape of each C++ tensor
        self.params = {}     # initializer name -> float32 array (the trained weights)
        self.param_layer = {}
        self.ops = []        # dicts for Engine.add_op, plus a description for summary()
        self.skip = set()    # Add nodes fused into the MatMul before them
        self.outputs = {o.name for o in self.graph.output}
        self.consumers = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    # ------------------------------------------------------------ walking the graph
    def run(self):
        inputs = [v for v in self.graph.input if v.name not in self.init]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise GraphError(f"the engine trains graphs with one input and one output, this one "
                             f"has inputs {[v.name for v in inputs]} and outputs "
                             f"{sorted(self.outputs)}; export a single-input classifier")
        self.input = inputs[0]
        dims = self.input.type.tensor_type.shape.dim
        if len(dims) < 2 or any(not d.HasField("dim_value") for d in dims[1:]):
            raise GraphError(f"input {self.input.name!r} must be (batch, fixed sizes...), got "
                             f"{onnx_io._dims(self.input)}; export with a fixed sample shape")
        self.input_shape = tuple(int(d.dim_value) for d in dims[1:])
        self._new_tensor(self.input.name, self.input_shape)
        for index, node in enumerate(self.graph.node):
            self.index, self.node = index, node
            if id(node) in self.skip:
                continue
            if node.op_type == "Shape":
                self._fold_shape(node)
            elif any(name in self.dyn for name in node.input):
                self._dynamic(node)
            else:
                self._fold(node)
        out = self.graph.output[0].name
        if out not in self.dyn or len(self.dyn[out][1]) != 1:
            raise GraphError(f"output {out!r} must be logits (batch, classes); this graph gives "
                             f"{'a constant' if out not in self.dyn else self.dyn[out][1]}")
        return self

    def _new_tensor(self, name, shape) -> int:
        self.tensors.append(tuple(int(s) for s in shape))
        self.dyn[name] = (len(self.tensors) - 1, self.tensors[-1])
        return len(self.tensors) - 1

    def _alias(self, name, source, shape):
        self.dyn[name] = (self.dyn[source][0], tuple(int(s) for s in shape))

    def _error(self, what: str) -> GraphError:
        return GraphError(f"{_node_label(self.node, self.index)}: {what}")

    # ------------------------------------------------------------ constant folding
    def _fold(self, node):
        from onnx.reference import ReferenceEvaluator

        for name in node.input:
            a = self.init.get(name)
            if a is not None and a.dtype.kind == "f" and a.size > 1:
                raise self._error(f"the float initializer {name!r} goes through this node before "
                                  "it is used; the engine trains initializers used directly")
        evaluator = ReferenceEvaluator(node, opsets=self.opsets)
        results = []
        for k in range(len(_BATCHES)):
            feeds = {n: self.consts[n][k] for n in node.input if n}
            results.append(evaluator.run(None, feeds))
        for i, name in enumerate(node.output):
            self.consts[name] = tuple(np.asarray(r[i]) for r in results)

    def _fold_shape(self, node):
        source = node.input[0]
        a = _attrs(node)
        if source in self.dyn:
            shapes = [np.array((b, *self.dyn[source][1]), dtype=np.int64) for b in _BATCHES]
        else:
            shapes = [np.array(v.shape, dtype=np.int64) for v in self.consts[source]]
        start, end = a.get("start", 0), a.get("end", None)
        self.consts[node.output[0]] = tuple(s[start:end] for s in shapes)

    # ------------------------------------------------------------ ops on activations
    def _dynamic(self, node):
        op = node.op_type
        if op in ("Gemm", "MatMul"):
            return self._dense(node)
        if op in _ACTIVATIONS:
            _, shape = self._input(0)
            self._add(_ACTIVATIONS[op], node.output[0], shape, [int(np.prod(shape))])
            return None
        handler = {"Conv": self._conv, "MaxPool": self._maxpool, "Transpose": self._transpose,
                   "Identity": self._identity, "Dropout": self._identity,
                   "Flatten": self._flatten, "Reshape": self._reshape, "Add": self._add_alone}
        if op not in handler:
            raise self._error(f"op {op} is not supported by the C++ engine; supported: "
                              f"{', '.join(SUPPORTED_OPS)} (constant shape subgraphs are folded "
                              "at load). Export the model without it, or add a kernel for it")
        return handler[op](node)

    def _input(self, i: int):
        name = self.node.input[i]
        if name not in self.dyn:
            raise self._error(f"input {i} ({name!r}) must come from the model input")
        return self.dyn[name]

    def _weight(self, i: int, what: str, ndim: int | None = None) -> np.ndarray:
        name = self.node.input[i] if i < len(self.node.input) else ""
        if not name:
            return None
        if name in self.dyn:
            raise self._error(f"the {what} ({name!r}) is computed from the input; the engine "
                              "trains layers whose weights are initializers")
        if name not in self.init:
            raise self._error(f"the {what} ({name!r}) is computed by other nodes, not stored as "
                              "an initializer; the engine trains initializers only")
        if self.init[name].dtype != np.float32:
            raise self._error(f"the {what} ({name!r}) is {self.init[name].dtype}; the engine "
                              "trains float32 weights")
        if ndim is not None and self.init[name].ndim != ndim:
            raise self._error(f"the {what} ({name!r}) has shape {self.init[name].shape}, "
                              f"expected {ndim} dimensions")
        if name not in self.params:
            self.params[name] = np.array(self.init[name], dtype=np.float32, order="C")
            self.param_layer[name] = self.node.name or f"#{self.index}"
        return name

    def _add(self, kind, out_name, out_shape, dims, weight=None, bias=None, alpha=1.0,
             beta=1.0, in_index=0, op_type=None):
        tid_in, shape_in = self._input(in_index)
        tid_out = self._new_tensor(out_name, out_shape)
        self.ops.append(dict(kind=kind, tin=tid_in, tout=tid_out, weight=weight, bias=bias,
                             dims=[int(d) for d in dims], alpha=float(alpha), beta=float(beta),
                             name=self.node.name or f"#{self.index} ({self.node.op_type})",
                             op_type=op_type or self.node.op_type, shape_in=shape_in,
                             shape_out=tuple(out_shape)))

    def _dense(self, node):
        a = _attrs(node)
        _, shape = self._input(0)
        if len(shape) != 1:
            raise self._error(f"the engine's dense layer takes (batch, features), got per-sample "
                              f"shape {shape}; flatten before it")
        if a.get("transA", 0):
            raise self._error("transA=1 (the input transposed, batch not first) is not "
                              "supported; export with transA=0")
        weight = self._weight(1, "weight", ndim=2)
        w = self.params[weight]
        oc_c = node.op_type == "Gemm" and a.get("transB", 0) == 1
        c, oc = (w.shape[1], w.shape[0]) if oc_c else w.shape
        if c != shape[0]:
            raise self._error(f"weight {weight!r} {w.shape} does not fit {shape[0]} inputs")
        bias, out_name, op_type = None, node.output[0], node.op_type
        if node.op_type == "Gemm":
            bias = self._weight(2, "bias")
        else:
            add = self._fusable_add(node, oc)
            if add is not None:
                self.skip.add(id(add))
                other = [n for n in add.input if n != node.output[0]][0]
                bias, out_name, op_type = self._bias(other, add, oc), add.output[0], "MatMul+Add"
        if bias is not None and self.params[bias].size != oc:
            raise self._error(f"bias {bias!r} {self.params[bias].shape} must hold one value "
                              f"per output feature ({oc})")
        self._add(DENSE, out_name, (oc,), [c, oc, int(oc_c)], weight, bias,
                  a.get("alpha", 1.0), a.get("beta", 1.0), op_type=op_type)

    def _fusable_add(self, node, oc):
        """The Add that adds a bias initializer to this MatMul's output, if there is one."""
        users = self.consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add" or node.output[0] in self.outputs:
            return None
        add = users[0]
        other = [n for n in add.input if n != node.output[0]]
        if len(other) != 1 or other[0] not in self.init:
            return None
        if self.init[other[0]].size != oc:
            return None
        return add

    def _bias(self, name, add, oc):
        saved = self.node
        self.node = add
        try:
            i = list(add.input).index(name)
            return self._weight(i, "bias")
        finally:
            self.node = saved

    def _add_alone(self, node):
        raise self._error("Add is supported only as the bias right after a MatMul (a float "
                          "initializer with one value per output feature); this one adds "
                          f"{list(node.input)}")

    def _conv(self, node):
        a = _attrs(node)
        _, shape = self._input(0)
        if len(shape) != 3:
            raise self._error(f"Conv needs NCHW input, got per-sample shape {shape}")
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self._error(f"only group=1 and dilations=1 are supported, got group="
                              f"{a.get('group', 1)}, dilations={a.get('dilations', [1, 1])}")
        weight = self._weight(1, "weight", ndim=4)
        oc, c, kh, kw = self.params[weight].shape
        if c != shape[0]:
            raise self._error(f"weight {weight!r} expects {c} channels, the input has {shape[0]}")
        stride, pad = self._window(a, shape, kh, kw)
        bias = self._weight(2, "bias")
        if bias is not None and self.params[bias].size != oc:
            raise self._error(f"bias {bias!r} must hold {oc} values")
        _, h, w = shape
        oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
        self._add(CONV, node.output[0], (oc, oh, ow), [c, h, w, oc, kh, kw, stride, pad],
                  weight, bias)

    def _window(self, a, shape, kh, kw):
        """(stride, pad) of a Conv/MaxPool, which the kernels take as one number each."""
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER") and strides == [1, 1] and kh == kw and kh % 2:
            pads = [kh // 2] * 4
        elif auto not in ("NOTSET", "VALID"):
            raise self._error(f"auto_pad={auto} is supported only for stride 1 and an odd square "
                              "kernel; export with explicit pads")
        if len(set(strides)) != 1 or len(set(pads)) != 1:
            raise self._error(f"the kernels take one stride and one symmetric pad, got strides="
                              f"{strides}, pads={pads}")
        return int(strides[0]), int(pads[0])

    def _maxpool(self, node):
        a = _attrs(node)
        _, shape = self._input(0)
        if len(shape) != 3:
            raise self._error(f"MaxPool needs NCHW input, got per-sample shape {shape}")
        k = list(a.get("kernel_shape", []))
        if len(k) != 2 or k[0] != k[1]:
            raise self._error(f"only square 2-D windows are supported, got kernel_shape={k}")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self._error("only dilations=1 is supported")
        stride, pad = self._window(a, shape, k[0], k[1])
        c, h, w = shape
        if pad:
            raise self._error(f"MaxPool with padding ({pad}) is not supported; use pads=0")
        if a.get("ceil_mode", 0) and ((h - k[0]) % stride or (w - k[0]) % stride):
            raise self._error("ceil_mode=1 that changes the output size is not supported")
        if len([o for o in node.output if o]) > 1 and self.consumers.get(node.output[1]):
            raise self._error("the Indices output of MaxPool is not supported")
        oh, ow = (h - k[0]) // stride + 1, (w - k[0]) // stride + 1
        self._add(MAXPOOL, node.output[0], (c, oh, ow), [c, h, w, k[0], stride])

    def _identity(self, node):
        extra = [o for o in node.output[1:] if o]
        if any(self.consumers.get(o) or o in self.outputs for o in extra):
            raise self._error("the Dropout mask output is not supported; export in eval mode")
        self._alias(node.output[0], node.input[0], self._input(0)[1])

    def _flatten(self, node):
        _, shape = self._input(0)
        axis = _attrs(node).get("axis", 1)
        axis = axis + len(shape) + 1 if axis < 0 else axis
        if axis < 1 or int(np.prod(shape[:axis - 1])) != 1:
            raise self._error(f"Flatten(axis={axis}) would mix the batch axis into features")
        self._alias(node.output[0], node.input[0], (int(np.prod(shape)),))

    def _reshape(self, node):
        _, shape = self._input(0)
        if node.input[1] not in self.consts:
            raise self._error("the target shape must be a constant (or a shape subgraph)")
        allowzero = _attrs(node).get("allowzero", 0)
        results = []
        for b, target in zip(_BATCHES, self.consts[node.input[1]]):
            new = _reshape_target((b, *shape), [int(t) for t in target], allowzero)
            if new is None or new[0] != b:
                raise self._error(f"Reshape to {list(target)} moves the batch axis (input "
                                  f"{(b, *shape)}); the engine keeps the batch first")
            results.append(new[1:])
        if results[0] != results[1]:
            raise self._error(f"Reshape target {results} changes with the batch size")
        self._alias(node.output[0], node.input[0], results[0])

    def _transpose(self, node):
        _, shape = self._input(0)
        perm = list(_attrs(node).get("perm", range(len(shape), -1, -1)))
        if sorted(perm) != list(range(len(shape) + 1)) or perm[0] != 0:
            raise self._error(f"perm={perm} moves the batch axis; only perms with 0 first are "
                              "supported")
        inner = [p - 1 for p in perm[1:]]
        new_shape = tuple(shape[p] for p in inner)
        if [p for p in inner if shape[p] != 1] == sorted(p for p in inner if shape[p] != 1):
            return self._alias(node.output[0], node.input[0], new_shape)  # moves size-1 axes only
        self._add(TRANSPOSE, node.output[0], new_shape, [len(shape), *shape, *inner])
        return None


def _reshape_target(full, target, allowzero):
    """ONNX Reshape's output shape for input shape `full`, or None if it cannot be done."""
    size = int(np.prod(full))
    out = [full[i] if t == 0 and not allowzero else t for i, t in enumerate(target)]
    if out.count(-1) > 1:
        return None
    known = int(np.prod([t for t in out if t != -1]))
    if -1 in out:
        if known == 0 or size % known:
            return None
        out[out.index(-1)] = size // known
    return tuple(out) if int(np.prod(out)) == size else None


# ---------------------------------------------------------------- the model

class CppModel:
    """An ONNX classifier whose weights are trained by the C++ engine (see the module doc)."""

    def __init__(self, model: onnx.ModelProto, source: str = "<model>"):
        loader = _Loader(model).run()
        self._model, self.source = model, source
        self.input_name, self.input_shape = loader.input.name, loader.input_shape
        self.num_classes = loader.dyn[model.graph.output[0].name][1][0]
        self._params, self._layers = loader.params, loader.ops
        self._engine = _engine_class()()
        for shape in loader.tensors:
            self._engine.add_tensor(int(np.prod(shape)))
        index = {}
        for name, array in self._params.items():
            label = f"{name!r} of layer {loader.param_layer[name]!r}"
            index[name] = self._engine.add_param(array, array.size, label)
        for op in self._layers:
            dims = np.array(op["dims"], dtype=np.int32)
            self._engine.add_op(op["kind"], op["tin"], op["tout"], index.get(op["weight"], -1),
                                index.get(op["bias"], -1), dims, len(dims), op["alpha"],
                                op["beta"], op["name"])
        self._engine.set_output(loader.dyn[model.graph.output[0].name][0], self.num_classes)

    @classmethod
    def from_onnx(cls, path) -> "CppModel":
        """Read an ONNX file exported from PyTorch or Keras (see course.export)."""
        return cls(onnx_io.load(path), source=str(path))

    # ------------------------------------------------------------ inference
    def _check_x(self, x, what="x") -> np.ndarray:
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{what} must be a float array, got dtype {x.dtype}; pass "
                            f"{what}.astype(np.float32)")
        want = ("N", *self.input_shape)
        if x.ndim != len(want) or tuple(x.shape[1:]) != self.input_shape or len(x) == 0:
            hint = ""
            if len(self.input_shape) == 3:
                hint = ("; for digits use course.data.images(x) (NCHW, PyTorch) or "
                        "images_nhwc(x) (NHWC, Keras), matching the model")
            raise ValueError(f"{what} must have shape {want} (the ONNX input "
                             f"{self.input_name!r}), got {x.shape}{hint}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def forward(self, x, chunk: int = 1024) -> np.ndarray:
        """Logits (N, classes), float32, computed by the C++ engine."""
        x = self._check_x(x)
        logits = np.empty((len(x), self.num_classes), dtype=np.float32)
        for start in range(0, len(x), chunk):
            part = x[start:start + chunk]
            out = np.empty((len(part), self.num_classes), dtype=np.float32)
            self._engine.forward(part, len(part), out)
            logits[start:start + chunk] = out
        return logits

    __call__ = forward

    def accuracy(self, x, y) -> float:
        """Fraction of samples whose largest logit is the label."""
        return float(np.mean(self.forward(x).argmax(axis=1) == np.asarray(y)))

    # ------------------------------------------------------------ training
    def _check_y(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind == "f":
            raise TypeError(f"y holds floats ({y.dtype}); class labels must be integers: pass "
                            "y.astype(np.int64)")
        if y.dtype.kind not in "iu":
            raise TypeError(f"y must be integer class labels, got dtype {y.dtype}")
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},), one label per sample of x, got "
                             f"{y.shape}")
        if y.min() < 0 or y.max() >= self.num_classes:
            bad = int(np.flatnonzero((y < 0) | (y >= self.num_classes))[0])
            raise ValueError(f"labels must be in [0, {self.num_classes}), got y[{bad}] = "
                             f"{y[bad]}; the model has {self.num_classes} classes")
        return np.ascontiguousarray(y, dtype=np.int32)

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, optimizer: str = "sgd",
            lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
            shuffle: bool = True, seed: int = 0, progress: bool = True,
            betas=(0.9, 0.999), eps: float = 1e-8) -> np.ndarray:
        """Train with mean softmax cross-entropy; returns the loss of every step (float32).

        Each epoch is one C++ call. shuffle=True draws a permutation in C++ from `seed`;
        shuffle=False takes the batches in order (last one partial), as torch's DataLoader.
        optimizer "sgd" = torch.optim.SGD(lr, momentum, weight_decay); "adamw" =
        torch.optim.AdamW(lr, betas, eps, weight_decay). A nan/inf stops with step and layer.
        """
        x = self._check_x(x)
        y = self._check_y(y, len(x))
        _check_hyper(epochs, batch_size, optimizer, lr, momentum, weight_decay, seed, betas, eps)
        steps = math.ceil(len(x) / batch_size)
        self._engine.start_fit(int(optimizer == "adamw"), lr, momentum, weight_decay, betas[0],
                               betas[1], eps, seed)
        losses = np.empty(epochs * steps, dtype=np.float32)
        bar = tqdm(range(epochs), desc="C++ fit", unit="epoch", disable=not progress)
        for epoch in bar:
            epoch_losses = np.empty(steps, dtype=np.float32)
            failed = self._engine.fit_epoch(x, y, len(x), batch_size, bool(shuffle),
                                            epoch_losses)
            if failed:
                bar.close()
                raise _fit_error(str(self._engine.error()), epoch, lr)
            losses[epoch * steps:(epoch + 1) * steps] = epoch_losses
            bar.set_postfix(loss=f"{epoch_losses.mean():.4f}")
        return losses

    # ------------------------------------------------------------ weights
    def parameters(self) -> dict[str, np.ndarray]:
        """The trained weights by initializer name: the live arrays the C++ engine updates."""
        return dict(self._params)

    def to_onnx(self) -> onnx.ModelProto:
        """The original graph with the current weights as initializers."""
        return onnx_io.with_initializers(self._model, self._params)

    def save_onnx(self, path) -> Path:
        """Write the same graph with the trained initializers; returns the path."""
        return onnx_io.save_with_initializers(self._model, path, self._params)

    def summary(self) -> None:
        """Print one row per C++ layer: ONNX node, op, shapes, weights."""
        print(self.summary_text())

    def summary_text(self) -> str:
        rows = [("layer", "op", "in (per sample)", "out", "weights")]
        for op in self._layers:
            n = sum(self._params[w].size for w in (op["weight"], op["bias"]) if w)
            rows.append((op["name"], op["op_type"], str(op["shape_in"]), str(op["shape_out"]),
                         str(n)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        total = sum(a.size for a in self._params.values())
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"{len(self._layers)} layers, {len(self._params)} weight tensors, "
                     f"{total} trainable values; input {self.input_name!r} "
                     f"(N, {', '.join(map(str, self.input_shape))})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"CppModel({self.source!r}, {len(self._layers)} layers, "
                f"{sum(a.size for a in self._params.values())} weights)")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _in_range(value, low, high, low_open=False) -> bool:
    """A real number with low <= value < high (low < value with low_open)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    return (value > low if low_open else value >= low) and value < high


def _check_hyper(epochs, batch_size, optimizer, lr, momentum, weight_decay, seed, betas, eps):
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    if not _in_range(lr, 0.0, math.inf, low_open=True):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not _in_range(momentum, 0.0, 1.0):
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
    if optimizer == "adamw" and momentum:
        raise ValueError("momentum is an SGD setting; AdamW uses betas=(0.9, 0.999)")
    if not _in_range(weight_decay, 0.0, math.inf):
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if (len(betas) != 2 or not all(_in_range(b, 0.0, 1.0) for b in betas)
            or not _in_range(eps, 0.0, math.inf, low_open=True)):
        raise ValueError(f"betas must be two numbers in [0, 1) and eps > 0, got {betas}, {eps}")


def _fit_error(message: str, epoch: int, lr: float) -> Exception:
    if "nan or inf" in message or "the loss is" in message:
        return FloatingPointError(f"training diverged at {message} (epoch {epoch + 1}); lower "
                                  f"lr (now {lr}). The weights hold the values of that step")
    return RuntimeError(f"the C++ engine stopped at {message} (epoch {epoch + 1})")


# ---------------------------------------------------------------- reference trajectories

def _batch_rows(n: int, batch_size: int, step: int) -> slice:
    """Rows of in-order batch `step` (wrapping over epochs), as CppModel.fit(shuffle=False)."""
    k = step % math.ceil(n / batch_size)
    return slice(k * batch_size, min(n, (k + 1) * batch_size))


def torch_trajectory(torch_model, x, y, steps: int, batch_size: int = 32, optimizer: str = "sgd",
                     lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                     betas=(0.9, 0.999), eps: float = 1e-8) -> np.ndarray:
    """Per-step losses of `steps` in-order batches on a copy of `torch_model` (left unchanged)."""
    import torch

    _check_hyper(steps, batch_size, optimizer, lr, momentum, weight_decay, 0, betas, eps)
    torch.set_num_threads(1)
    model = copy.deepcopy(torch_model).train()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                              weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps,
                                weight_decay=weight_decay)
    x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    losses = []
    for step in range(steps):
        rows = _batch_rows(len(x), batch_size, step)
        loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


def keras_adamw_epsilon(eps: float, beta2: float, t: int) -> float:
    """The epsilon that makes Keras' AdamW step t equal torch's AdamW step t with `eps`.

    Keras divides by sqrt(v) + eps' and folds the bias corrections into the step size; torch
    divides by sqrt(v / (1 - beta2^t)) + eps. Multiplying through: eps' = eps * sqrt(1 - beta2^t).
    """
    return eps * (1.0 - beta2 ** t) ** 0.5


def keras_trajectory(keras_model, x, y, steps: int, batch_size: int = 32, optimizer: str = "sgd",
                     lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                     betas=(0.9, 0.999), eps: float = 1e-8) -> np.ndarray:
    """The same as torch_trajectory, in Keras with a tf.GradientTape step on a model clone.

    Configured to follow torch: Keras' SGD keeps v = momentum*v - lr*g (torch: b = momentum*b +
    g, w -= lr*b), the same thing for a constant lr; torch's SGD weight decay is added to the
    gradient here (Keras would decay the weight). Keras' AdamW adds epsilon to sqrt(v) before
    the bias correction, torch after it: the same step needs Keras' epsilon set to
    eps * sqrt(1 - beta2^t) at step t, which is done here. (With a constant epsilon the two
    differ by up to ~1e-3 relative in 20 steps on a small CNN: more than the parity tolerance.)
    """
    from course.models import _tf

    tf, keras = _tf()
    _check_hyper(steps, batch_size, optimizer, lr, momentum, weight_decay, 0, betas, eps)
    model = keras.models.clone_model(keras_model)
    model.set_weights(keras_model.get_weights())
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    else:
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay,
                                     beta_1=betas[0], beta_2=betas[1], epsilon=eps)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    losses = []
    for step in range(steps):
        rows = _batch_rows(len(x), batch_size, step)
        with tf.GradientTape() as tape:
            logits = model(x[rows], training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y[rows], logits=logits))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        if optimizer == "sgd" and weight_decay:
            grads = [g + weight_decay * v for g, v in zip(grads, variables)]
        if optimizer == "adamw":
            opt.epsilon = keras_adamw_epsilon(eps, betas[1], step + 1)
        opt.apply_gradients(zip(grads, variables))
        losses.append(float(loss))
    return np.array(losses)
