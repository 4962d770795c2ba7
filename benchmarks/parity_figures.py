"""Parity of the same logits across runtimes, on models the notebooks do not use.

Each MLP/CNN is trained a few epochs (so logits are not tiny), exported, and run on the digits
test split (360 rows). Compared: torch vs ONNX Runtime (Python) for both torch exporters
(dynamo=False and True); Keras vs ORT, with torch's weights copied into Keras and with a model
trained in Keras; ORT's C++ API (cppyy) vs ORT Python on every exported file.
Targets (max abs): torch/Keras vs ORT <= 1e-5, ORT C++ vs ORT Python <= 1e-6. Single-threaded.
Needs the ONNX Runtime C++ headers (`.venv/bin/python -m course setup-ort`).
Run: .venv/bin/python benchmarks/parity_figures.py  (about 20 seconds)
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from course import data, export, models, runtime

TARGET_FRAMEWORK, TARGET_CPP = 1e-5, 1e-6
MLPS = [((48,), "relu"), ((32, 16), "tanh"), ((100,), "sigmoid"), ((24, 24, 24), "relu")]
CNN_CHANNELS = (12, 24)  # the notebooks use (16, 32)
EPOCHS = 3


def build(spec, seed: int = 1):
    """(label, torch model, keras twin builder) for an MLP (hidden, activation) or "cnn"."""
    if spec == "cnn":
        return (f"cnn {CNN_CHANNELS}", models.torch_cnn(seed=seed, channels=CNN_CHANNELS),
                lambda: models.keras_cnn(seed=seed, channels=CNN_CHANNELS))
    hidden, act = spec
    return (f"mlp {hidden} {act}", models.torch_mlp(hidden, act, seed=seed),
            lambda: models.keras_mlp(hidden, act, seed=seed))


def rows_for(spec, d: data.Digits, tmp: Path) -> list[tuple]:
    """(model, comparison, parity dict, target) rows for one architecture."""
    label, net, keras_twin = build(spec)
    models.train_torch(net, d, num_epochs=EPOCHS, progress=False)
    x_torch = models.torch_inputs(net, d.x_test).numpy()
    ref = models.torch_logits(net, d.x_test)
    files, rows = {}, []
    for dynamo in (False, True):
        name = f"torch dynamo={dynamo}"
        files[name] = (export.torch_to_onnx(net, tmp / f"t{int(dynamo)}.onnx", x_torch[:2],
                                            dynamo=dynamo), x_torch)
        rows.append((label, f"torch vs ORT ({name})",
                     runtime.parity(runtime.ort_run(files[name][0], x_torch), ref)))
    copied = models.copy_torch_to_keras(net, keras_twin())
    trained = keras_twin()
    models.train_keras(trained, d, num_epochs=EPOCHS, progress=False)
    for stem, name, km in (("copied", "keras copied from torch", copied),
                           ("trained", "keras trained", trained)):
        x_keras = models.keras_inputs(km, d.x_test)
        files[name] = (export.keras_to_onnx(km, tmp / f"keras_{stem}.onnx"), x_keras)
        k_logits = km(x_keras, training=False).numpy()
        rows.append((label, f"Keras vs ORT ({name})",
                     runtime.parity(runtime.ort_run(files[name][0], x_keras), k_logits)))
    for name, (path, x) in files.items():
        cpp_logits = runtime.ort_cpp_session(path).run(x)
        rows.append((label, f"ORT C++ vs ORT Python ({name})",
                     runtime.parity(cpp_logits, runtime.ort_run(path, x))))
    return [(m, c, p, TARGET_CPP if c.startswith("ORT C++") else TARGET_FRAMEWORK)
            for m, c, p in rows]


def main() -> None:
    start = time.perf_counter()
    d = data.load_digits()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(MLPS + ["cnn"]):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            rows += rows_for(spec, d, folder)
    print(f"{'model':24} {'comparison':50} {'max abs':>9} {'max rel':>9} {'target':>7} "
          f"{'argmax':>7}  ok")
    for model, comparison, p, target in rows:
        ok = "PASS" if p["max_abs"] <= target else "FAIL"
        print(f"{model:24} {comparison:50} {p['max_abs']:9.2e} {p['max_rel']:9.2e} "
              f"{target:7.0e} {p['argmax_agree']:7.2%}  {ok}")
    failed = sum(p["max_abs"] > target for _, _, p, target in rows)
    print(f"{len(rows) - failed}/{len(rows)} comparisons within target "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
