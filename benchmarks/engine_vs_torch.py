"""Time the C++ engine against PyTorch eager, both single-threaded, on the digits MLP.

Both train the same exported 64-64-10 ReLU MLP with SGD (momentum 0.9), batch 32, batches in
order, for the same number of epochs; the script prints seconds per epoch and the ratio
C++ / torch (below 1 means the C++ engine is faster). Run: python benchmarks/engine_vs_torch.py
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from course import data, engine, export, models


def torch_epochs(model, x, y, epochs, batch_size, lr, momentum) -> float:
    """Seconds for `epochs` of in-order minibatch SGD in eager PyTorch."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    start = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, len(x), batch_size):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + batch_size]),
                                                     y[i:i + batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def measure(epochs: int = 10, batch_size: int = 32, hidden=(64,), repeats: int = 3) -> dict:
    """Best-of-`repeats` seconds for torch and for the C++ engine, and their ratio."""
    torch.set_num_threads(1)
    d = data.load_digits()
    net = models.torch_mlp(hidden=hidden, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = export.torch_to_onnx(net, Path(tmp) / "mlp.onnx", d.x_train[:2])
        cpp = engine.CppModel.from_onnx(path)
    cpp.fit(d.x_train, d.y_train, epochs=1, progress=False)  # warm-up: compile and allocate
    t_torch, t_cpp = [], []
    for _ in range(repeats):
        model = models.torch_mlp(hidden=hidden, seed=0)
        t_torch.append(torch_epochs(model, d.x_train, d.y_train, epochs, batch_size, 0.05, 0.9))
        start = time.perf_counter()
        cpp.fit(d.x_train, d.y_train, epochs=epochs, batch_size=batch_size, lr=0.05,
                momentum=0.9, shuffle=False, progress=False)
        t_cpp.append(time.perf_counter() - start)
    best_torch, best_cpp = min(t_torch), min(t_cpp)
    return {"torch_s_per_epoch": best_torch / epochs, "cpp_s_per_epoch": best_cpp / epochs,
            "ratio_cpp_over_torch": best_cpp / best_torch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    r = measure(args.epochs, args.batch_size)
    print(f"digits MLP 64-64-10, batch {args.batch_size}, {args.epochs} epochs, 1 thread")
    print(f"torch eager : {r['torch_s_per_epoch'] * 1e3:8.2f} ms/epoch")
    print(f"C++ engine  : {r['cpp_s_per_epoch'] * 1e3:8.2f} ms/epoch")
    print(f"ratio C++ / torch = {r['ratio_cpp_over_torch']:.3f}  (target: <= 2)")


if __name__ == "__main__":
    main()
