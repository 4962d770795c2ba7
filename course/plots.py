"""Training curves, a confusion matrix, and a drawing of an ONNX graph (matplotlib only).

Each function returns its Figure, closed from pyplot's state: a notebook shows it once when it is
the cell's last expression (or with `display(fig)`); `fig.savefig(path)` writes it to a file.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from course import onnx_io


def _figure(**kw):
    fig, axes = plt.subplots(**kw)
    plt.close(fig)  # the caller decides when to show it
    return fig, axes


def curves(history) -> "plt.Figure":
    """Loss (left) and accuracies (right) per epoch, from a `train_torch`/`train_keras` history.

    A plain list of losses (e.g. per-step losses of the C++ engine) draws the loss alone.
    """
    if not isinstance(history, dict):
        history = {"loss": list(history)}
    if not history.get("loss"):
        raise ValueError("history needs a non-empty 'loss' list, e.g. the dict train_torch returns")
    accs = [k for k in ("train_acc", "test_acc") if history.get(k)]
    fig, axes = _figure(ncols=2 if accs else 1, figsize=(9 if accs else 5, 3.2))
    axes = np.atleast_1d(axes)
    loss = history["loss"]
    axes[0].plot(np.arange(1, len(loss) + 1), loss, marker="o" if len(loss) <= 30 else None)
    axes[0].set(xlabel="epoch" if accs else "step", ylabel="loss", title="training loss")
    for key in accs:
        values = history[key]
        axes[1].plot(np.arange(1, len(values) + 1), values, label=key.replace("_", " "))
    if accs:
        axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion(y_true, y_pred, num_classes: int | None = None) -> "plt.Figure":
    """Counts of (true label, predicted label); the diagonal holds the correct answers."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}; "
                         "y_pred should be logits.argmax(axis=1)")
    if not (np.issubdtype(y_true.dtype, np.integer) and np.issubdtype(y_pred.dtype, np.integer)):
        raise ValueError("labels must be integers; for logits pass logits.argmax(axis=1)")
    n = num_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    fig, ax = _figure(figsize=(4.5, 4))
    ax.imshow(counts, cmap="Blues")
    for i, j in zip(*np.nonzero(counts)):
        color = "white" if counts[i, j] > counts.max() / 2 else "black"
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
           title=f"confusion (accuracy {np.trace(counts) / max(counts.sum(), 1):.1%})")
    fig.tight_layout()
    return fig


def _levels(graph) -> list[int]:
    """Depth of each node: one more than the deepest node feeding it (nodes are topological)."""
    made_by, level = {}, []
    for i, node in enumerate(graph.node):
        level.append(1 + max((level[made_by[n]] for n in node.input if n in made_by), default=-1))
        for out in node.output:
            made_by[out] = i
    return level


def _label(node, shapes: dict) -> str:
    weights = [f"{shapes[n]}" for n in node.input if n in shapes]
    return node.op_type + ("\n" + " ".join(weights) if weights else "")


def onnx_graph(model_or_path, max_nodes: int = 60) -> "plt.Figure":
    """Nodes as boxes, top to bottom in topological order, arrows along the tensors between them.

    Each box shows the op and the shapes of the initializers (weights) it reads.
    """
    model = onnx_io._model(model_or_path)
    graph = model.graph
    if len(graph.node) > max_nodes:
        raise ValueError(f"graph has {len(graph.node)} nodes, more than max_nodes={max_nodes}; "
                         "pass a larger max_nodes or use course.onnx_io.summary")
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    levels = _levels(graph)
    rows: dict[int, list[int]] = {}
    for i, lv in enumerate(levels):
        rows.setdefault(lv, []).append(i)
    width = max(len(r) for r in rows.values())
    pos = {i: (k - (len(r) - 1) / 2, -lv) for lv, r in rows.items() for k, i in enumerate(r)}
    depth = len(rows) + 2
    fig, ax = _figure(figsize=(2.6 * max(width, 2), 0.75 * depth + 0.5))
    made_by = {out: i for i, n in enumerate(graph.node) for out in n.output}
    inputs, outputs = [v.name for v in graph.input], [v.name for v in graph.output]
    for i, node in enumerate(graph.node):
        for name in node.input:
            start = pos[made_by[name]] if name in made_by else (
                (0, 1) if name in inputs else None)
            if start is not None:
                _arrow(ax, start, pos[i])
        for name in node.output:
            if name in outputs:
                _arrow(ax, pos[i], (pos[i][0], -len(rows)))
    _box(ax, (0, 1), "input\n" + ", ".join(inputs), "#e8e8e8")
    _box(ax, (0, -len(rows)), "output\n" + ", ".join(outputs), "#e8e8e8")
    for i, node in enumerate(graph.node):
        _box(ax, pos[i], _label(node, shapes), "#cfe2f3" if _reads_weights(node, shapes)
             else "#fff2cc")
    ax.set_xlim(-width / 2 - 0.3, width / 2 + 0.3)
    ax.set_ylim(-len(rows) - 0.6, 1.6)
    ax.axis("off")
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    ax.set_title(f"{len(graph.node)} nodes, opset {opset[0] if opset else '?'}")
    return fig


def _reads_weights(node, shapes: dict) -> bool:
    return any(n in shapes and len(shapes[n]) >= 2 for n in node.input)


def _box(ax, xy, text: str, color: str) -> None:
    ax.text(*xy, text, ha="center", va="center", fontsize=8, zorder=3,
            bbox=dict(boxstyle="round,pad=0.35", facecolor=color, edgecolor="#555555"))


def _arrow(ax, start, end) -> None:
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops=dict(arrowstyle="->", color="#777777", shrinkA=12, shrinkB=12))
