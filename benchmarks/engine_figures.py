"""The C++ engine's headline figures: digits test accuracy of models trained ONLY in C++.

Each model is built untrained in PyTorch or Keras, exported to ONNX, trained by
`course.engine.CppModel.fit` from those untrained weights, written back with `save_onnx`, and
scored by ONNX Runtime on the test split. Targets: MLP >= 95%, CNN >= 96%.
Run: python benchmarks/engine_figures.py  (about a minute on one core)
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from course import data, engine, export, models, runtime

MLP_FIT = dict(epochs=30, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9, seed=0)
CNN_FIT = dict(epochs=30, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=0.01, seed=0)


def _inputs(kind: str, framework: str, x: np.ndarray) -> np.ndarray:
    if kind == "mlp":
        return x
    return data.images(x) if framework == "torch" else data.images_nhwc(x)


def _export(kind: str, framework: str, path: Path) -> Path:
    d = data.load_digits()
    if framework == "keras":
        model = models.keras_mlp() if kind == "mlp" else models.keras_cnn()
        return export.keras_to_onnx(model, path)
    model = models.torch_mlp() if kind == "mlp" else models.torch_cnn()
    return export.torch_to_onnx(model, path, _inputs(kind, "torch", d.x_train[:2]))


def figure(kind: str, framework: str, progress: bool = False) -> dict:
    """Train one untrained export in C++ only; ORT scores the written-back model."""
    d = data.load_digits()
    x_train, x_test = (_inputs(kind, framework, x) for x in (d.x_train, d.x_test))
    with tempfile.TemporaryDirectory() as tmp:
        model = engine.CppModel.from_onnx(_export(kind, framework, Path(tmp) / "untrained.onnx"))
        settings = MLP_FIT if kind == "mlp" else CNN_FIT
        losses = model.fit(x_train, d.y_train, progress=progress, **settings)
        saved = model.save_onnx(Path(tmp) / "trained.onnx")
        ort_logits = runtime.ort_run(saved, x_test)
    cpp_logits = model.forward(x_test)
    return {"model": f"{framework} {kind}", "cpp_test_acc": model.accuracy(x_test, d.y_test),
            "ort_test_acc": float(np.mean(ort_logits.argmax(1) == d.y_test)),
            "max_rel_ort": float(np.max(np.abs(ort_logits - cpp_logits)) /
                                 np.max(np.abs(cpp_logits))),
            "last_epoch_loss": float(losses.reshape(settings["epochs"], -1)[-1].mean())}


def main() -> None:
    print(f"{'model':12} {'C++ test acc':>12} {'ORT test acc':>12} {'ORT vs C++':>11} "
          f"{'last epoch loss':>15}")
    for kind in ("mlp", "cnn"):
        for framework in ("torch", "keras"):
            r = figure(kind, framework)
            print(f"{r['model']:12} {r['cpp_test_acc']:12.4f} {r['ort_test_acc']:12.4f} "
                  f"{r['max_rel_ort']:11.2e} {r['last_epoch_loss']:15.4f}")


if __name__ == "__main__":
    main()
