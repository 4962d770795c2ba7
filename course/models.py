"""The same digits MLP and CNN in PyTorch and in Keras, weight copying between them, and training.

Layouts differ between the frameworks, and copying has to undo that:
- Dense: Keras' kernel is (C, OC); torch's weight is (OC, C), so kernel = weight.T.
- Conv: Keras' kernel is (KH, KW, C, OC); torch's weight is (OC, C, KH, KW).
- Flatten: torch flattens NCHW feature maps as (C, H, W), Keras flattens NHWC as (H, W, C), so the
  first dense layer after a flatten sees its inputs in a different order; its rows are permuted.

TensorFlow is imported lazily (`_tf()`), so torch-only lessons never pay for it.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course.data import Digits, images, images_nhwc, minibatches

ACTIVATIONS = ("relu", "tanh", "sigmoid")
_TORCH_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_TF = None


def _tf():
    """Import TensorFlow and Keras once: quiet, single-threaded and deterministic."""
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf
        import keras

        try:  # only possible before TensorFlow's runtime starts; harmless if it already has
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        tf.config.experimental.enable_op_determinism()
        tf.get_logger().setLevel("ERROR")
        _TF = (tf, keras)
    return _TF


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _check_hidden(hidden) -> tuple[int, ...]:
    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if not all(isinstance(h, (int, np.integer)) and h > 0 for h in hidden):
        raise ValueError(f"hidden must be a tuple of positive layer widths, got {hidden!r}")
    return hidden


# ---------------------------------------------------------------- models

def torch_mlp(hidden=(64,), activation: str = "relu", num_classes: int = 10,
              in_features: int = 64, seed: int = 0) -> nn.Sequential:
    """Linear -> activation -> ... -> Linear(num_classes), logits out. Same seed, same weights."""
    _check_activation(activation)
    hidden = _check_hidden(hidden)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    layers, width = [], in_features
    for h in hidden:
        layers += [nn.Linear(width, h), _TORCH_ACT[activation]()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def keras_mlp(hidden=(64,), activation: str = "relu", num_classes: int = 10,
              in_features: int = 64, seed: int = 0):
    """The Keras twin of `torch_mlp`: Dense(h, activation) ... Dense(num_classes), logits out."""
    _check_activation(activation)
    hidden = _check_hidden(hidden)
    _, keras = _tf()
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((in_features,))]
    layers += [keras.layers.Dense(h, activation=activation) for h in hidden]
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers, name="mlp")


def _check_channels(channels) -> tuple[int, int]:
    channels = tuple(channels)
    if len(channels) != 2 or not all(isinstance(c, (int, np.integer)) and c > 0
                                     for c in channels):
        raise ValueError(f"channels must be two positive ints (conv1, conv2), got {channels!r}")
    return channels


def torch_cnn(seed: int = 0, channels=(16, 32), num_classes: int = 10) -> nn.Sequential:
    """Digits CNN on NCHW (N,1,8,8): two conv(3x3, pad 1)+ReLU+maxpool(2) blocks, then Linear.

    Shapes: (N,1,8,8) -> (N,c1,4,4) -> (N,c2,2,2) -> flatten (N,4*c2) -> (N,num_classes).
    """
    c1, c2 = _check_channels(channels)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 2 * 2, num_classes))


def keras_cnn(seed: int = 0, channels=(16, 32), num_classes: int = 10):
    """The Keras twin of `torch_cnn`, on NHWC input (N,8,8,1)."""
    c1, c2 = _check_channels(channels)
    _, keras = _tf()
    keras.utils.set_random_seed(seed)
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(c1, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(c2, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(num_classes)], name="cnn")


# ---------------------------------------------------------------- weight copying

def _torch_layers(model: nn.Module) -> list[nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _keras_layers(model) -> list[tuple[object, tuple | None]]:
    """Dense/Conv2D layers in order, each with the (H, W, C) of a Flatten right before it."""
    if not hasattr(model, "layers") or not hasattr(model, "get_weights"):
        raise TypeError(f"expected a Keras model, got {type(model).__name__}")
    out, flat_from = [], None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Flatten":
            shape = tuple(layer.input.shape[1:])
            flat_from = shape if len(shape) == 3 else None
        elif kind in ("Dense", "Conv2D"):
            if not layer.use_bias:
                raise ValueError(f"Keras layer {layer.name!r} has no bias; build it with "
                                 "use_bias=True so it matches torch's layers")
            out.append((layer, flat_from if kind == "Dense" else None))
            flat_from = None
        elif layer.weights:
            raise ValueError(f"cannot copy weights of Keras layer {layer.name!r} ({kind}); "
                             "only Dense and Conv2D are supported")
    return out


def _pair_layers(torch_model, keras_model):
    t_layers, k_layers = _torch_layers(torch_model), _keras_layers(keras_model)
    if len(t_layers) != len(k_layers):
        raise ValueError(f"the models differ: torch has {len(t_layers)} Linear/Conv2d layers, "
                         f"Keras has {len(k_layers)} Dense/Conv2D layers; build both with the "
                         "same arguments")
    return list(zip(t_layers, k_layers))


def _torch_to_keras_kernel(weight: np.ndarray, kind: str, flat_from) -> np.ndarray:
    if kind == "Conv2D":
        return weight.transpose(2, 3, 1, 0)               # (OC,C,KH,KW) -> (KH,KW,C,OC)
    if flat_from is not None:                             # rows (C,H,W) -> rows (H,W,C)
        h, w, c = flat_from
        return weight.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
    return weight.T


def _keras_to_torch_weight(kernel: np.ndarray, kind: str, flat_from) -> np.ndarray:
    if kind == "Conv2D":
        return kernel.transpose(3, 2, 0, 1)               # (KH,KW,C,OC) -> (OC,C,KH,KW)
    if flat_from is not None:
        h, w, c = flat_from
        return kernel.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
    return kernel.T


def copy_torch_to_keras(torch_model, keras_model):
    """Copy each Linear/Conv2d of `torch_model` into its Keras twin layer; returns keras_model."""
    for t_layer, (k_layer, flat_from) in _pair_layers(torch_model, keras_model):
        kind = type(k_layer).__name__
        weight = t_layer.weight.detach().cpu().numpy()
        kernel = _torch_to_keras_kernel(weight, kind, flat_from)
        bias = t_layer.bias.detach().cpu().numpy()
        _set_keras(k_layer, kernel, bias)
    return keras_model


def _set_keras(layer, kernel, bias) -> None:
    want = [tuple(w.shape) for w in layer.get_weights()]
    if want != [kernel.shape, bias.shape]:
        raise ValueError(f"shape mismatch copying into Keras layer {layer.name!r}: it has "
                         f"{want}, torch gives {[kernel.shape, bias.shape]}; build both models "
                         "with the same arguments")
    layer.set_weights([np.ascontiguousarray(kernel), bias])


def copy_keras_to_torch(keras_model, torch_model):
    """Copy each Dense/Conv2D of `keras_model` into its torch twin layer; returns torch_model."""
    for t_layer, (k_layer, flat_from) in _pair_layers(torch_model, keras_model):
        kind = type(k_layer).__name__
        kernel, bias = k_layer.get_weights()
        weight = _keras_to_torch_weight(kernel, kind, flat_from)
        if tuple(weight.shape) != tuple(t_layer.weight.shape):
            raise ValueError(f"shape mismatch copying Keras layer {k_layer.name!r} into torch: "
                             f"{tuple(weight.shape)} vs {tuple(t_layer.weight.shape)}; build both "
                             "models with the same arguments")
        with torch.no_grad():
            t_layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            t_layer.bias.copy_(torch.from_numpy(bias))
    return torch_model


# ---------------------------------------------------------------- training

def nonzero_keras_biases(keras_model, seed: int = 1):
    """Give every Keras layer random biases (in place) and return the model.

    Keras starts biases at 0 and its ONNX export drops an all-zero bias, leaving MatMul without
    Add; random biases keep every Add in the graph, as a trained model would have.
    """
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return keras_model


def accuracy(logits, y) -> float:
    """Fraction of rows whose largest logit is the label."""
    logits = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else logits
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
    logits, y = np.asarray(logits), np.asarray(y)
    if logits.ndim != 2 or len(logits) != len(y):
        raise ValueError(f"logits must be (N, classes) and y (N,), got {logits.shape} and "
                         f"{y.shape}")
    return float(np.mean(logits.argmax(axis=1) == y))


def torch_inputs(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    """Flat digits as the tensor `model` takes: NCHW images if it starts with a Conv2d."""
    layers = _torch_layers(model)
    if layers and isinstance(layers[0], nn.Conv2d) and np.ndim(x) == 2:
        x = images(x)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def torch_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's logits on flat digits (or images), as numpy, without building a graph."""
    with torch.no_grad():
        return model(torch_inputs(model, x)).numpy()


def keras_inputs(model, x: np.ndarray) -> np.ndarray:
    """Flat digits as the array `model` takes: NHWC images if its input is 4-D."""
    if len(model.inputs[0].shape) == 4 and np.ndim(x) == 2:
        x = images_nhwc(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_training(data, num_epochs, batch_size, lr) -> None:
    if not isinstance(data, Digits):
        raise TypeError(f"data must be a course.data.Digits, got {type(data).__name__}; "
                        "use course.data.load_digits()")
    for name, value in (("num_epochs", num_epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}; try lr=1e-3 for Adam")


def _torch_optimizer(model, optimizer: str, lr: float, momentum: float):
    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")


def train_torch(model: nn.Module, data: Digits, num_epochs: int = 20, batch_size: int = 32,
                lr: float = 1e-3, optimizer: str = "adam", seed: int = 0,
                momentum: float = 0.0, progress: bool = True) -> dict[str, list[float]]:
    """Train with mean cross-entropy; history has per-epoch `loss`, `train_acc`, `test_acc`.

    `loss` is the mean of the epoch's batch losses; the accuracies are measured at epoch end.
    Batches are reshuffled each epoch with seed `seed + epoch` (course.data.minibatches).
    """
    _check_training(data, num_epochs, batch_size, lr)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    opt = _torch_optimizer(model, optimizer, lr, momentum)
    x_train, y_train = torch_inputs(model, data.x_train), torch.from_numpy(data.y_train)
    x_test = torch_inputs(model, data.x_test)
    history = {"loss": [], "train_acc": [], "test_acc": []}
    bar = tqdm(range(num_epochs), desc="torch", disable=not progress)
    for epoch in bar:
        model.train()
        losses = []
        for idx, _ in minibatches(np.arange(len(y_train)), data.y_train, batch_size,
                                  seed=seed + epoch):
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            history["loss"].append(float(np.mean(losses)))
            history["train_acc"].append(accuracy(model(x_train), data.y_train))
            history["test_acc"].append(accuracy(model(x_test), data.y_test))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", test_acc=history["test_acc"][-1])
    return history


def train_keras(model, data: Digits, num_epochs: int = 20, batch_size: int = 32,
                lr: float = 1e-3, optimizer: str = "adam", seed: int = 0,
                momentum: float = 0.0, progress: bool = True,
                verbose: int = 0) -> dict[str, list[float]]:
    """Train with compile/fit; returns the same history as `train_torch` (per-epoch accuracies).

    Keras shuffles with its own seeded generator, so batches differ from `train_torch`'s.
    `verbose` is passed to `fit` (0: only the tqdm bar, if `progress`).
    """
    _check_training(data, num_epochs, batch_size, lr)
    tf, keras = _tf()
    keras.utils.set_random_seed(seed)
    if optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr)
    elif optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    model.compile(optimizer=opt,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_train, x_test = keras_inputs(model, data.x_train), keras_inputs(model, data.x_test)
    history = {"loss": [], "train_acc": [], "test_acc": []}
    bar = tqdm(total=num_epochs, desc="keras", disable=not progress)

    def on_epoch_end(epoch, logs):
        history["loss"].append(float(logs["loss"]))
        history["train_acc"].append(accuracy(model(x_train, training=False), data.y_train))
        history["test_acc"].append(accuracy(model(x_test, training=False), data.y_test))
        bar.update(1)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", test_acc=history["test_acc"][-1])

    callback = keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
    model.fit(x_train, data.y_train, epochs=num_epochs, batch_size=batch_size, shuffle=True,
              verbose=verbose, callbacks=[callback])
    bar.close()
    return history
