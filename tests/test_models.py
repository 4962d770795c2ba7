"""course.models: twin models in torch and Keras, weight copying, training loops."""
import numpy as np
import pytest
import torch

from course import data, models

MLPS = [((64,), "relu"), ((32, 16), "tanh"), ((100,), "sigmoid")]


def keras_logits(model, x):
    return np.asarray(model(models.keras_inputs(model, x), training=False))


def test_torch_mlp_layers():
    model = models.torch_mlp(hidden=(32, 16), activation="tanh", num_classes=5, in_features=20)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(32, 20), (16, 32), (5, 16)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in model) == 2
    assert model(torch.zeros(3, 20)).shape == (3, 5)


def test_torch_models_are_seeded():
    a, b, c = models.torch_mlp(seed=1), models.torch_mlp(seed=1), models.torch_mlp(seed=2)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
    a, b = models.torch_cnn(seed=1), models.torch_cnn(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_torch_cnn_shapes():
    model = models.torch_cnn(channels=(4, 6))
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert model[-1].in_features == 6 * 2 * 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="gelu"), "activation"), (dict(hidden=(0,)), "hidden"),
    (dict(hidden=("a",)), "hidden")])
def test_torch_mlp_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.torch_mlp(**kwargs)


def test_torch_cnn_bad_channels():
    with pytest.raises(ValueError, match="channels"):
        models.torch_cnn(channels=(8,))


def test_keras_twins_have_torch_shapes(keras):
    for t_model, k_model in [(models.torch_mlp((32, 16)), models.keras_mlp((32, 16))),
                             (models.torch_cnn(channels=(4, 6)),
                              models.keras_cnn(channels=(4, 6)))]:
        t_shapes = sorted(p.numel() for p in t_model.parameters())
        k_shapes = sorted(int(np.prod(w.shape)) for w in k_model.get_weights())
        assert t_shapes == k_shapes
    assert models.keras_cnn().inputs[0].shape[1:] == (8, 8, 1)


@pytest.mark.parametrize("hidden, activation", MLPS)
def test_mlp_copy_both_ways_gives_same_logits(keras, digits, hidden, activation):
    t_model = models.torch_mlp(hidden, activation, seed=3)
    k_model = models.copy_torch_to_keras(t_model, models.keras_mlp(hidden, activation, seed=4))
    x = digits.x_test
    assert np.abs(models.torch_logits(t_model, x) - keras_logits(k_model, x)).max() <= 1e-5
    back = models.copy_keras_to_torch(k_model, models.torch_mlp(hidden, activation, seed=5))
    assert all(torch.equal(p, q) for p, q in zip(t_model.parameters(), back.parameters()))


@pytest.mark.parametrize("channels", [(16, 32), (4, 6)])
def test_cnn_copy_handles_layouts_and_flatten_order(keras, digits, channels):
    t_model = models.torch_cnn(seed=3, channels=channels)
    k_model = models.copy_torch_to_keras(t_model, models.keras_cnn(seed=4, channels=channels))
    x = digits.x_test
    t_out, k_out = models.torch_logits(t_model, x), keras_logits(k_model, x)
    assert np.abs(t_out - k_out).max() <= 1e-5 and np.abs(t_out).max() > 0.05
    k2 = models.keras_cnn(seed=6, channels=channels)
    t2 = models.copy_keras_to_torch(k2, models.torch_cnn(seed=7, channels=channels))
    assert np.abs(models.torch_logits(t2, x) - keras_logits(k2, x)).max() <= 1e-5


def test_copy_rejects_mismatched_models(keras):
    with pytest.raises(ValueError, match="shape mismatch"):
        models.copy_torch_to_keras(models.torch_mlp((32,)), models.keras_mlp((64,)))
    with pytest.raises(ValueError, match="same arguments"):
        models.copy_keras_to_torch(models.keras_mlp((8, 8)), models.torch_mlp((8,)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        models.copy_torch_to_keras("model", models.keras_mlp())
    with pytest.raises(TypeError, match="Keras model"):
        models.copy_torch_to_keras(models.torch_mlp(), models.torch_mlp())


def test_accuracy():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 1.0], [3.0, 4.0]])
    assert models.accuracy(logits, np.array([1, 0, 0, 0])) == 0.5
    assert models.accuracy(torch.tensor(logits), torch.tensor([1, 0, 1, 1])) == 1.0
    with pytest.raises(ValueError, match="logits"):
        models.accuracy(logits, np.array([1, 0]))


def test_train_torch_mlp_learns_and_is_deterministic(digits):
    runs = [models.train_torch(models.torch_mlp(), digits, num_epochs=4, progress=False)
            for _ in range(2)]
    history = runs[0]
    assert set(history) == {"loss", "train_acc", "test_acc"}
    assert all(len(v) == 4 for v in history.values())
    assert history["loss"][-1] < history["loss"][0] and history["test_acc"][-1] >= 0.9
    assert runs[0] == runs[1]


def test_train_torch_cnn_reaches_96_percent(digits):
    model = models.torch_cnn()
    history = models.train_torch(model, digits, num_epochs=20, lr=3e-3, progress=False)
    assert history["test_acc"][-1] >= 0.96
    assert models.accuracy(models.torch_logits(model, digits.x_test), digits.y_test) \
        == history["test_acc"][-1]


def test_train_torch_sgd_and_bad_arguments(digits):
    history = models.train_torch(models.torch_mlp(), digits, num_epochs=2, lr=0.1,
                                 optimizer="sgd", momentum=0.9, progress=False)
    assert history["loss"][1] < history["loss"][0]
    with pytest.raises(ValueError, match="optimizer"):
        models.train_torch(models.torch_mlp(), digits, num_epochs=1, optimizer="rmsprop")
    with pytest.raises(TypeError, match="load_digits"):
        models.train_torch(models.torch_mlp(), (digits.x_train, digits.y_train))
    for kwargs, match in [(dict(num_epochs=0), "num_epochs"), (dict(batch_size=2.5), "batch_size"),
                          (dict(lr=-1.0), "lr must be a positive")]:
        with pytest.raises(ValueError, match=match):
            models.train_torch(models.torch_mlp(), digits, **kwargs)


def test_train_keras_learns_and_is_deterministic(keras, digits):
    runs = [models.train_keras(models.keras_mlp(), digits, num_epochs=3, progress=False)
            for _ in range(2)]
    history = runs[0]
    assert all(len(history[k]) == 3 for k in ("loss", "train_acc", "test_acc"))
    assert history["loss"][-1] < history["loss"][0] and history["test_acc"][-1] >= 0.85
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match="optimizer"):
        models.train_keras(models.keras_mlp(), digits, num_epochs=1, optimizer="rmsprop")


def test_train_keras_cnn_takes_flat_digits(keras, digits):
    model = models.keras_cnn(channels=(4, 6))
    history = models.train_keras(model, digits, num_epochs=1, lr=3e-3, progress=False)
    assert history["test_acc"][0] > 0.3
