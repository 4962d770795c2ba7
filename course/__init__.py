"""Support package for the course "Train an ONNX model further in C++".

Lessons import what they reuse from here; `docs/architecture.md` lists the modules.
The first cell of every notebook is::

    import course
    course.start()
"""
from __future__ import annotations

import os
import random
from pathlib import Path

# Before TensorFlow or torch are imported anywhere: quiet TensorFlow's C++ logging and keep
# oneDNN's reordering off so results do not depend on the CPU's code path.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("PYTHONHASHSEED", "0")

__version__ = "0.1.0"

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
CPP_SNIPPETS = REPO / "cpp_snippets"
SEED = 0


def seed_everything(seed: int = SEED) -> None:
    """Seed Python, numpy and (if imported) torch, so every run draws the same numbers."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # reductions in one order: identical outputs run after run


def versions() -> dict[str, str]:
    """Versions of the stack this course was run with (TensorFlow only if already imported)."""
    import sys
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("numpy", "torch", "tensorflow-cpu", "keras", "onnx", "onnxruntime", "cppyy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def start(seed: int = SEED, quiet: bool = False) -> dict[str, str]:
    """Prepare a notebook: fixed seeds, one thread, the ``%%cpp`` magic, and print versions."""
    seed_everything(seed)
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:  # pragma: no cover
        ip = None
    if ip is not None:
        from course import cpp

        cpp.register_magic(ip)
    info = versions()
    if not quiet:
        width = max(len(k) for k in info)
        for name, version in info.items():
            print(f"{name:<{width}}  {version}")
    return info


def headline(label: str, value) -> None:
    """Print the figure that `course run` shows for this notebook in its summary table."""
    if isinstance(value, float):
        value = f"{value:.4g}"
    print(f"Headline: {label} = {value}")
