"""The C++ engine's headline figures, single-threaded.

1. Accuracy: each model is built untrained in PyTorch or Keras, exported to ONNX, trained ONLY by
   `course.engine.CppModel.fit`, written back with `save_onnx`, and scored by ONNX Runtime on the
   test split. Targets: MLP >= 95%, CNN >= 96%.
2. Trajectory parity, on models the notebooks do not use: the export and a torch and a Keras
   twin with the same weights, the same in-order batches, 20 SGD-momentum and 20 AdamW steps;
   the C++ losses vs PyTorch's and Keras' (`course.engine.torch_trajectory` /
   `keras_trajectory`). Target: max relative difference <= 5e-4. AdamW runs at lr 1e-3 and at
   lr 1e-2 (with eps 1e-8 and 1e-12: see the note at OPTIMIZERS).
3. Round trip on the same models: 3 epochs in C++, save_onnx, ONNX Runtime's logits vs
   CppModel.forward (max rel <= 1e-5) and the same test accuracy.
Run: .venv/bin/python benchmarks/engine_figures.py  (about 40 seconds, one core)
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from course import data, engine, export, models, runtime

TARGET_ACC = {"mlp": 0.95, "cnn": 0.96}
TARGET_TRAJECTORY, TARGET_ROUND_TRIP = 5e-4, 1e-5
STEPS, BATCH = 20, 32
OPTIMIZERS = {"sgd-momentum": dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3),
              "adamw": dict(optimizer="adamw", lr=1e-3, weight_decay=0.01),
              # At a large lr, parameters whose gradient is ~eps (float noise of a cancelling
              # sum) take lr-sized steps whose size follows that noise: frameworks that sum in
              # another order drift apart. eps=1e-12 makes those steps saturate at +-lr.
              "adamw lr=1e-2": dict(optimizer="adamw", lr=1e-2, weight_decay=0.01),
              "adamw lr=1e-2 eps=1e-12": dict(optimizer="adamw", lr=1e-2, weight_decay=0.01,
                                              eps=1e-12)}
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


# label, exported framework, torch builder, Keras builder, torch exporter dynamo
OTHER = [("torch mlp (32,16) tanh", "torch", lambda: models.torch_mlp((32, 16), "tanh", seed=3),
          lambda: models.keras_mlp((32, 16), "tanh"), False),
         ("torch mlp (32,16) tanh dynamo", "torch",
          lambda: models.torch_mlp((32, 16), "tanh", seed=3),
          lambda: models.keras_mlp((32, 16), "tanh"), True),
         ("keras mlp (24,) sigmoid", "keras", lambda: models.torch_mlp((24,), "sigmoid"),
          lambda: models.keras_mlp((24,), "sigmoid", seed=3), None),
         ("torch cnn (8,12)", "torch", lambda: models.torch_cnn(seed=3, channels=(8, 12)),
          lambda: models.keras_cnn(channels=(8, 12)), True),
         ("keras cnn (8,12)", "keras", lambda: models.torch_cnn(channels=(8, 12)),
          lambda: models.keras_cnn(seed=3, channels=(8, 12)), None)]


def other_models(folder: Path) -> list[dict]:
    """Models the notebooks do not use, exported, with a torch and a Keras twin of equal weights."""
    d = data.load_digits()
    cases = []
    for i, (label, framework, build_torch, build_keras, dynamo) in enumerate(OTHER):
        kind, path = ("cnn" if "cnn" in label else "mlp"), folder / f"model{i}.onnx"
        torch_model, keras_model = build_torch(), build_keras()
        if framework == "torch":
            models.copy_torch_to_keras(torch_model, keras_model)
            export.torch_to_onnx(torch_model, path, _inputs(kind, "torch", d.x_train[:2]),
                                 dynamo=dynamo)
        else:
            models.copy_keras_to_torch(models.nonzero_keras_biases(keras_model), torch_model)
            export.keras_to_onnx(keras_model, path)
        cases.append(dict(label=label, framework=framework, kind=kind, path=path,
                          torch=torch_model, keras=keras_model))
    return cases


def trajectory_figure(case: dict, settings: dict) -> tuple[float, float]:
    """Max relative difference of the C++ losses from PyTorch's and from Keras' over STEPS."""
    d = data.load_digits()
    n = STEPS * BATCH - 10  # the last batch is a partial one
    x, y = d.x_train[:n], d.y_train[:n]
    cpp = engine.CppModel.from_onnx(case["path"]).fit(
        _inputs(case["kind"], case["framework"], x), y, batch_size=BATCH, shuffle=False,
        progress=False, **settings)
    t = engine.torch_trajectory(case["torch"], _inputs(case["kind"], "torch", x), y, STEPS,
                                BATCH, **settings)
    k = engine.keras_trajectory(case["keras"], _inputs(case["kind"], "keras", x), y, STEPS,
                                BATCH, **settings)
    return float(np.max(np.abs(cpp - t) / t)), float(np.max(np.abs(cpp - k) / k))


def round_trip_figure(framework, path, kind, folder: Path) -> dict:
    """Train 3 epochs in C++, save_onnx, and compare ONNX Runtime with CppModel.forward."""
    d = data.load_digits()
    x_train, x_test = (_inputs(kind, framework, x) for x in (d.x_train, d.x_test))
    model = engine.CppModel.from_onnx(path)
    model.fit(x_train, d.y_train, epochs=3, optimizer="adamw", lr=5e-3, progress=False)
    ort_logits = runtime.ort_run(model.save_onnx(folder / "trained.onnx"), x_test)
    cpp_logits = model.forward(x_test)
    return {"max_rel": float(np.max(np.abs(ort_logits - cpp_logits)) /
                             np.max(np.abs(ort_logits))),
            "cpp_acc": float(np.mean(cpp_logits.argmax(1) == d.y_test)),
            "ort_acc": float(np.mean(ort_logits.argmax(1) == d.y_test))}


def _ok(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def main() -> None:
    torch.set_num_threads(1)
    print("1. C++-only training, scored by ONNX Runtime on the test split")
    print(f"{'model':12} {'C++ test acc':>12} {'ORT test acc':>12} {'ORT vs C++':>11} "
          f"{'last epoch loss':>15} {'target':>7}  ok")
    for kind in ("mlp", "cnn"):
        for framework in ("torch", "keras"):
            r = figure(kind, framework)
            print(f"{r['model']:12} {r['cpp_test_acc']:12.4f} {r['ort_test_acc']:12.4f} "
                  f"{r['max_rel_ort']:11.2e} {r['last_epoch_loss']:15.4f} "
                  f"{TARGET_ACC[kind]:7.2f}  {_ok(r['cpp_test_acc'] >= TARGET_ACC[kind])}")
    with tempfile.TemporaryDirectory() as tmp:
        cases = other_models(Path(tmp))
        print(f"\n2. Trajectory parity, {STEPS} steps of batch {BATCH}: max rel |C++ - ref| / ref"
              f" (target {TARGET_TRAJECTORY:.0e})")
        print(f"{'model':30} {'optimizer':>16} {'vs torch':>9}  ok   {'vs keras':>9}  ok")
        for case in cases:
            for name, settings in OPTIMIZERS.items():
                vs_torch, vs_keras = trajectory_figure(case, settings)
                print(f"{case['label']:30} {name:>16} {vs_torch:9.2e}  "
                      f"{_ok(vs_torch <= TARGET_TRAJECTORY)} {vs_keras:9.2e}  "
                      f"{_ok(vs_keras <= TARGET_TRAJECTORY)}")
        print(f"\n3. Round trip: 3 epochs in C++, save_onnx, ONNX Runtime vs CppModel.forward "
              f"(target {TARGET_ROUND_TRIP:.0e})")
        print(f"{'model':30} {'max rel':>9} {'C++ acc':>8} {'ORT acc':>8}  ok")
        for case in cases:
            label = case["label"]
            r = round_trip_figure(case["framework"], case["path"], case["kind"], Path(tmp))
            passed = r["max_rel"] <= TARGET_ROUND_TRIP and r["cpp_acc"] == r["ort_acc"]
            print(f"{label:30} {r['max_rel']:9.2e} {r['cpp_acc']:8.4f} {r['ort_acc']:8.4f}  "
                  f"{_ok(passed)}")


if __name__ == "__main__":
    main()
